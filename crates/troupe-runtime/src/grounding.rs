//! Every statement of a text output checked against the documents: a statement that makes a claim
//! must carry a citation, each citation must resolve and contain its quote, and the quoted words
//! must support the statement ([`troupe_docs::support`]). A body that repeats its own prompt, or
//! states nothing checkable, is flagged as such.
//!
//! Nothing here counts as passed unless it was checked: a citation without a quote is
//! `unchecked`, not verified, and a statement citing only such citations is not supported.

use serde::Serialize;
use troupe_docs::{Corpus, StatementKind};

use crate::citations::{self, Citation};

/// A statement with fewer content words than this (headings aside) makes no claim to check,
/// unless it cites something.
const CLAIM_WORDS: usize = 3;

/// The outcome for one statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StatementCheck {
    /// A heading, or too few words to claim anything.
    NotAClaim,
    /// A claim with no citation.
    Uncited,
    /// A citation does not resolve, or its quote is not in the chunk.
    CitationFailed { problem: String },
    /// Every citation quotes nothing: there was nothing to check the statement against.
    Unchecked,
    /// The quoted words do not support the statement.
    Unsupported {
        score: f32,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        negation_differs: bool,
    },
    /// Cited, verified, and supported by its quotes.
    Supported { score: f32 },
}

impl StatementCheck {
    pub fn is_claim(&self) -> bool {
        !matches!(self, Self::NotAClaim)
    }

    pub fn passed(&self) -> bool {
        matches!(self, Self::NotAClaim | Self::Supported { .. })
    }

    /// Why the statement fails, for the author and the report.
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::NotAClaim | Self::Supported { .. } => None,
            Self::Uncited => Some(
                "it cites nothing: end it with the quoted words and the chunk id it comes from"
                    .into(),
            ),
            Self::CitationFailed { problem } => Some(problem.clone()),
            Self::Unchecked => Some(
                "its citation quotes nothing, so it could not be checked: put the exact words \
                 from the chunk in quotation marks before the id"
                    .into(),
            ),
            Self::Unsupported {
                negation_differs: true,
                ..
            } => Some(
                "the quoted words say the opposite (one of them is negated): state what the \
                 quote says"
                    .into(),
            ),
            Self::Unsupported { score, .. } => Some(format!(
                "the quoted words do not support it (only {:.0}% of its words are in the quote): \
                 say only what the quote says, or cite the words that say it",
                score * 100.0
            )),
        }
    }
}

/// One statement and its check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedStatement {
    /// Byte range in the checked text.
    #[serde(skip)]
    pub start: usize,
    #[serde(skip)]
    pub end: usize,
    pub text: String,
    #[serde(flatten)]
    pub check: StatementCheck,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<Citation>,
}

/// What a body says about itself, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Statements that make a claim.
    pub statements: usize,
    /// Claims with at least one citation.
    pub cited: usize,
    /// Cited claims whose every citation resolved and contains its quote.
    pub verified: usize,
    /// Verified claims whose quotes support them.
    pub supported: usize,
}

/// The whole check of one text.
#[derive(Debug, Clone, Serialize)]
pub struct Grounding {
    pub statements: Vec<CheckedStatement>,
    /// The text repeats its own prompt.
    pub echoes_prompt: bool,
}

impl Grounding {
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for s in self.statements.iter().filter(|s| s.check.is_claim()) {
            t.statements += 1;
            if !matches!(s.check, StatementCheck::Uncited) {
                t.cited += 1;
            }
            if matches!(
                s.check,
                StatementCheck::Unsupported { .. } | StatementCheck::Supported { .. }
            ) {
                t.verified += 1;
            }
            if matches!(s.check, StatementCheck::Supported { .. }) {
                t.supported += 1;
            }
        }
        t
    }

    pub fn failed(&self) -> impl Iterator<Item = &CheckedStatement> {
        self.statements.iter().filter(|s| !s.check.passed())
    }

    /// The text states nothing that could be checked.
    pub fn states_nothing(&self) -> bool {
        self.tally().statements == 0
    }

    /// Every claim supported, at least one claim, and no echo of the prompt.
    pub fn passed(&self) -> bool {
        !self.echoes_prompt && !self.states_nothing() && self.failed().next().is_none()
    }

    /// One line for events and summaries.
    pub fn summary(&self) -> String {
        let t = self.tally();
        let mut s = format!(
            "{} statement(s), {} cited, {} verified, {} supported",
            t.statements, t.cited, t.verified, t.supported
        );
        if self.echoes_prompt {
            s.push_str("; it repeats its own prompt");
        } else if self.states_nothing() {
            s.push_str("; it states nothing checkable");
        }
        s
    }

    /// What failed, one line per problem (for the author and the events).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.echoes_prompt {
            out.push(
                "the answer repeats the instructions and inputs it was given instead of \
                 answering"
                    .to_string(),
            );
        }
        if self.states_nothing() {
            out.push(
                "the answer makes no statement that can be checked against the documents".into(),
            );
        }
        for st in self.failed() {
            if let Some(r) = st.check.reason() {
                out.push(format!("\"{}\": {r}", shorten(&st.text, 160)));
            }
        }
        out
    }
}

/// What the author is asked to do about failed statements.
pub const FIX_STATEMENTS: &str = "Every statement must end with the exact words it comes from, \
    in quotation marks, and the chunk id: \"quoted words\" [chunk id]. Fix or remove the \
    statements listed and reply with the complete corrected answer.";

fn shorten(s: &str, max: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}

/// Checks every statement of `text` against `corpus`; `prompt` is what its author was given (to
/// tell a report from an echo of its instructions).
pub fn check(corpus: &Corpus, text: &str, prompt: &[&str]) -> Grounding {
    let found = citations::find(corpus, text, None);
    let markers = citations::markers(text);
    let mut statements = Vec::new();
    for st in troupe_docs::statements(text) {
        let piece = &text[st.start..st.end];
        let cited: Vec<Citation> = markers
            .iter()
            .filter(|m| m.start >= st.start && m.start < st.end)
            .filter_map(|m| {
                found
                    .iter()
                    .find(|c| c.chunk == m.chunk && c.quote == m.quote)
                    .cloned()
            })
            .collect();
        let own = troupe_docs::strip_quotes(piece);
        let check = if st.kind == StatementKind::Heading
            || (cited.is_empty() && troupe_docs::content_words(&own).len() < CLAIM_WORDS)
        {
            StatementCheck::NotAClaim
        } else if cited.is_empty() {
            StatementCheck::Uncited
        } else if let Some(problem) = cited
            .iter()
            .filter(|c| !matches!(c.check, troupe_docs::CitationCheck::Unchecked { .. }))
            .find_map(Citation::problem)
        {
            StatementCheck::CitationFailed { problem }
        } else if cited.iter().all(|c| c.quote.is_none()) {
            StatementCheck::Unchecked
        } else {
            let quotes: Vec<&str> = cited.iter().filter_map(|c| c.quote.as_deref()).collect();
            // Negation and must/may are judged on the quotes' whole sentences, so that a quote
            // cut to leave out its "not" does not support the opposite.
            let context: Vec<String> = cited
                .iter()
                .filter_map(|c| corpus.quote_context(&c.chunk, c.quote.as_deref()?))
                .collect();
            let support = troupe_docs::support_in(
                &own,
                &quotes.join(" "),
                (!context.is_empty()).then(|| context.join(" ")).as_deref(),
            );
            if support.supported() {
                StatementCheck::Supported {
                    score: support.score,
                }
            } else {
                StatementCheck::Unsupported {
                    score: support.score,
                    negation_differs: support.negation_differs,
                }
            }
        };
        statements.push(CheckedStatement {
            start: st.start,
            end: st.end,
            text: piece.to_string(),
            check,
            citations: cited,
        });
    }
    Grounding {
        echoes_prompt: echoes(text, prompt),
        statements,
    }
}

/// Checks an agent's answer `text` given the conversation that produced it: what it was told
/// (system and user turns) is its prompt.
pub fn check_answer(corpus: &Corpus, text: &str, messages: &[troupe_llm::Message]) -> Grounding {
    let prompt: Vec<&str> = messages
        .iter()
        .filter_map(|m| match m {
            troupe_llm::Message::System { content } | troupe_llm::Message::User { content } => {
                Some(content.as_str())
            }
            _ => None,
        })
        .collect();
    check(corpus, text, &prompt)
}

/// Word 6-grams: a body of which at least half the 6-grams outside quotations appear, outside
/// quotations, in its prompt is repeating the prompt, not reporting.
const SHINGLE: usize = 6;

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn echoes(text: &str, prompt: &[&str]) -> bool {
    let own = words(&troupe_docs::strip_quotes(text));
    if own.len() < SHINGLE {
        return false;
    }
    let mut seen = std::collections::HashSet::new();
    for p in prompt {
        // Quoted text (every string of a JSON context, the findings' quotes) is left out on both
        // sides: a body restating the documents' words is not echoing its instructions.
        let w = words(&troupe_docs::strip_quotes(p));
        for g in w.windows(SHINGLE) {
            seen.insert(g.join(" "));
        }
    }
    // Restating a quote is not echoing: 6-grams of the body's own quotations are neutral.
    let quoted: std::collections::HashSet<String> = citations::markers(text)
        .iter()
        .filter_map(|m| m.quote.as_deref())
        .flat_map(|q| {
            words(q)
                .windows(SHINGLE)
                .map(|g| g.join(" "))
                .collect::<Vec<_>>()
        })
        .collect();
    let grams: Vec<String> = own
        .windows(SHINGLE)
        .map(|g| g.join(" "))
        .filter(|g| !quoted.contains(g))
        .collect();
    if grams.is_empty() {
        return false;
    }
    let copied = grams.iter().filter(|g| seen.contains(*g)).count();
    copied * 2 >= grams.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use troupe_docs::{ChunkOptions, Corpus, Format};

    fn corpus() -> Corpus {
        let text = "Redistributions of source code must retain the above copyright notice, this \
                    list of conditions and the following disclaimer. Neither the name of the \
                    copyright holder nor the names of its contributors may be used to endorse or \
                    promote products derived from this software without specific prior written \
                    permission.";
        Corpus::from_texts(
            vec![("BSD.txt".into(), Format::Text, text.into())],
            ChunkOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn each_statement_is_checked() {
        let corpus = corpus();
        let id = corpus.chunks()[0].id.clone();
        let text = format!(
            "# Summary\n\nIf you share the source code you must retain the copyright notice \
             \"Redistributions of source code must retain the above copyright notice\" [{id}]. \
             You may sue the authors for any damages \"this list of conditions\" [{id}]. The \
             licence lets you sell the software. You may use the holder's name \
             \"may be used to endorse\" [{id}]. You may sell it \"the names of its \
             sponsors\" [{id}]. It is short [{id}]. Ok."
        );
        let g = check(&corpus, &text, &[]);
        let checks: Vec<&StatementCheck> = g.statements.iter().map(|s| &s.check).collect();
        assert_eq!(checks[0], &StatementCheck::NotAClaim, "heading");
        assert!(
            matches!(checks[1], StatementCheck::Supported { .. }),
            "{checks:?}"
        );
        assert!(
            matches!(checks[2], StatementCheck::Unsupported { .. }),
            "{checks:?}"
        );
        assert_eq!(checks[3], &StatementCheck::Uncited);
        // The quote is in the chunk, but its sentence says "Neither … may be used".
        assert!(
            matches!(
                checks[4],
                StatementCheck::Unsupported {
                    negation_differs: true,
                    ..
                }
            ),
            "{checks:?}"
        );
        assert!(
            matches!(checks[5], StatementCheck::CitationFailed { .. }),
            "{checks:?}"
        );
        // `Ok.` is too short to stand alone: it joins the statement before it.
        assert_eq!(checks[6], &StatementCheck::Unchecked);
        assert_eq!(checks.len(), 7);
        assert_eq!(
            g.tally(),
            Tally {
                statements: 6,
                cited: 5,
                verified: 3,
                supported: 1
            }
        );
        assert!(!g.passed());
        let problems = g.problems();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("The licence lets you sell the software.")
                    && p.contains("cites nothing")),
            "{problems:?}"
        );
    }

    #[test]
    fn an_echo_of_the_prompt_is_flagged() {
        let corpus = corpus();
        let prompt = "You are Plain-language writer. Your goal: Explain legal documents to \
                      people who are not lawyers, citing the exact words.";
        let g = check(&corpus, prompt, &[prompt]);
        assert!(g.echoes_prompt && !g.passed());
        let empty = check(&corpus, "Done.", &[prompt]);
        assert!(empty.states_nothing() && !empty.passed());
    }
}
