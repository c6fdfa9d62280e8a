//! Whether quoted words support a statement: a deterministic score from the stemmed content words
//! they share, with the English stemmer the search index uses (tantivy's `en_stem`), so that
//! "retain" in a quote matches "retained" in a statement and "warranties" matches "warranty".
//!
//! The score is the share of the statement's content words (stop words dropped) that the quote
//! also has. A statement whose negation differs from its quote's ("may" vs "may not") is not
//! supported whatever its overlap, nor is one that makes an obligation of a permission ("must"
//! vs "may") or the reverse. The threshold was chosen on labelled statement/quote pairs from
//! the example licences (`tests/support_pairs.json`; the figures are in that test).

use std::collections::BTreeSet;

use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};

/// At or above this score a quote supports a statement.
pub const SUPPORT_THRESHOLD: f32 = 0.5;

/// Words that carry no claim of their own. Modal verbs (`must`, `may`, `shall`) and negations are
/// not here: in a licence they are the claim.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "being",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "each",
    "either",
    "else",
    "etc",
    "even",
    "every",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "him",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "out",
    "over",
    "own",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "us",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "says",
    "said",
    "states",
    "document",
    "documents",
    "licence",
    "license",
    "text",
    "section",
    "clause",
];

const NEGATIONS: &[&str] = &[
    "not",
    "no",
    "never",
    "nor",
    "neither",
    "none",
    "nothing",
    "cannot",
    "can't",
    "won't",
    "don't",
    "doesn't",
    "isn't",
    "aren't",
    "mustn't",
    "shouldn't",
    "prohibited",
    "forbidden",
];

/// How well a quote supports a statement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Support {
    /// Share of the statement's content words found in the quote, 0–1.
    pub score: f32,
    /// Content words of the statement.
    pub words: usize,
    /// Whether exactly one of statement and quote is negated.
    pub negation_differs: bool,
    /// Whether one states an obligation (`must`) where the other states a permission (`may`).
    pub modality_differs: bool,
}

impl Support {
    pub fn supported(&self) -> bool {
        !self.negation_differs
            && !self.modality_differs
            && self.words > 0
            && self.score >= SUPPORT_THRESHOLD
    }
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// Whether `c` is written without spaces between words: Han, Hiragana, Katakana (and Hangul,
/// whose words are long runs of syllables). Such runs are compared by overlapping character
/// pairs, as search engines index them (Lucene's CJK bigrams): no dictionary, no guessing.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // Han extension A
        | 0x4E00..=0x9FFF    // Han
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // Han compatibility
        | 0x20000..=0x2FFFF) // Han extensions B–F
}

/// The character pairs of a run of CJK text (the character itself when it stands alone).
fn bigrams(run: &[char], out: &mut BTreeSet<String>) {
    if run.len() == 1 {
        out.insert(run[0].to_string());
    }
    for pair in run.windows(2) {
        out.insert(pair.iter().collect());
    }
}

/// The stemmed content words of `text`, stop words left out; CJK runs as character pairs.
pub fn content_words(text: &str) -> BTreeSet<String> {
    let mut analyzer = analyzer();
    let mut out = BTreeSet::new();
    let mut latin = String::with_capacity(text.len());
    let mut run: Vec<char> = Vec::new();
    for c in text.chars() {
        if is_cjk(c) {
            run.push(c);
            latin.push(' ');
        } else {
            if !run.is_empty() {
                bigrams(&run, &mut out);
                run.clear();
            }
            latin.push(c);
        }
    }
    bigrams(&run, &mut out);
    // Stop words are checked before stemming, on the lower-cased word.
    for word in latin.split(|c: char| !c.is_alphanumeric() && c != '\'') {
        let lower = word.to_lowercase();
        if lower.is_empty()
            || STOP_WORDS.contains(&lower.as_str())
            || NEGATIONS.contains(&lower.as_str())
        {
            continue;
        }
        let mut stream = analyzer.token_stream(&lower);
        while stream.advance() {
            out.insert(stream.token().text.clone());
        }
    }
    out
}

/// Whole words, lower-cased, punctuation trimmed; hyphenated words stay one word (`no-charge`
/// is not a negation).
fn plain_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split_whitespace().map(|w| {
        w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
            .to_lowercase()
    })
}

/// Negations of Chinese and Japanese, found as written (no spaces to split on): 不 (not), 不得
/// (must not), 没有/无/未 (no, none, not yet), 禁止 (prohibited); ない/ません (not).
const CJK_NEGATIONS: &[&str] = &["不", "没有", "无", "未", "禁止", "ない", "ません"];

fn negated(text: &str) -> bool {
    plain_words(text).any(|w| NEGATIONS.contains(&w.as_str()) || w.ends_with("n't"))
        || CJK_NEGATIONS.iter().any(|n| text.contains(n))
}

const OBLIGATION: &[&str] = &[
    "must",
    "shall",
    "required",
    "requires",
    "obliged",
    "obligated",
];
const PERMISSION: &[&str] = &["may", "can", "permitted", "allowed", "free"];

/// Obligation and permission in Chinese and Japanese: 必须/应当/应/须 (must), 可以/允许/有权
/// (may); なければならない/必要 (must), できる/よい (may).
const CJK_OBLIGATION: &[&str] = &["必须", "应当", "应该", "须", "なければならない", "必要"];
const CJK_PERMISSION: &[&str] = &["可以", "允许", "有权", "できる", "よい"];

/// What a text says one must or may do: `(obligation, permission)`.
fn modality(text: &str) -> (bool, bool) {
    let words: Vec<String> = plain_words(text).collect();
    let has = |list: &[&str], cjk: &[&str]| {
        words.iter().any(|w| list.contains(&w.as_str())) || cjk.iter().any(|m| text.contains(m))
    };
    (
        has(OBLIGATION, CJK_OBLIGATION),
        has(PERMISSION, CJK_PERMISSION),
    )
}

/// A statement of obligation backed only by a permission, or of permission backed only by an
/// obligation, says something its quote does not.
fn modality_differs(statement: &str, quote: &str) -> bool {
    let (s_must, s_may) = modality(statement);
    let (q_must, q_may) = modality(quote);
    (s_must && !s_may && q_may && !q_must) || (s_may && !s_must && q_must && !q_may)
}

/// How well `quote` supports `statement` (the statement's own words, its quotes and citation
/// markers left out). `context` is the sentence of the document the quote was taken from, when
/// known: a quote cut to leave out its sentence's "not" is judged by its sentence.
pub fn support_in(statement: &str, quote: &str, context: Option<&str>) -> Support {
    let mut s = support(statement, quote);
    if let Some(sentence) = context {
        s.negation_differs = negated(statement) != negated(sentence);
        s.modality_differs = modality_differs(statement, sentence);
    }
    s
}

/// How well `quote` supports `statement` (the statement's own words, its quotes and citation
/// markers left out).
pub fn support(statement: &str, quote: &str) -> Support {
    let claim = content_words(statement);
    let source = content_words(quote);
    let shared = claim.intersection(&source).count();
    Support {
        score: if claim.is_empty() {
            0.0
        } else {
            shared as f32 / claim.len() as f32
        },
        words: claim.len(),
        negation_differs: negated(statement) != negated(quote),
        modality_differs: modality_differs(statement, quote),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chinese has no spaces: its statements are claims and are compared by character pairs,
    /// with its own negations and modal verbs.
    #[test]
    fn chinese_statements_are_words_too() {
        let w = content_words("本公司必须删除个人信息");
        assert!(
            w.contains("删除") && w.contains("个人") && w.contains("信息"),
            "{w:?}"
        );
        assert!(w.len() >= 3, "a Chinese sentence makes a claim: {w:?}");
        let quote = "本公司应当及时删除个人信息";
        let s = support("公司必须删除个人信息", quote);
        assert!(s.supported(), "{s:?}");
        // "may not delete" against "must delete".
        let s = support("公司不得删除个人信息", quote);
        assert!(s.negation_differs && !s.supported(), "{s:?}");
        // "may delete" against "must delete".
        let s = support("公司可以删除个人信息", quote);
        assert!(s.modality_differs && !s.supported(), "{s:?}");
        // Another clause altogether.
        let s = support("用户可以随时撤回同意", quote);
        assert!(!s.supported(), "{s:?}");
        // Mixed scripts: Latin words keep their stems beside the pairs.
        let w = content_words("Troupe 删除 notices");
        assert!(w.contains("notic") && w.contains("删除"), "{w:?}");
    }

    #[test]
    fn stems_and_stop_words() {
        let w = content_words("You must retain the copyright notices of the Works.");
        assert!(
            w.contains("retain") && w.contains("copyright") && w.contains("notic"),
            "{w:?}"
        );
        assert!(!w.contains("the") && !w.contains("you"), "{w:?}");
        assert!(w.contains("must"), "modal verbs are content: {w:?}");
    }

    #[test]
    fn overlap_and_negation() {
        let q = "Redistributions of source code must retain the above copyright notice";
        assert!(
            support(
                "Copies of the source code must retain the copyright notice.",
                q
            )
            .supported()
        );
        assert!(!support("You may sue the authors for damages.", q).supported());
        let n = support(
            "Redistributions of source code need not retain the copyright notice.",
            q,
        );
        assert!(n.negation_differs && !n.supported(), "{n:?}");
        assert!(!support("", q).supported());
    }
}
