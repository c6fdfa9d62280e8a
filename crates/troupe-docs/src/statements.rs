//! A text output cut into statements: the unit the verification layer checks.
//!
//! Markdown blocks first (headings, list items, table rows, paragraphs; code blocks are left
//! out), then
//! Unicode sentence boundaries (UAX #29, with ICU4X's segmenter) inside each block. A sentence
//! break inside a quotation does not end the statement, and a citation written after the full
//! stop (`… notice. "retain the notice" [a.txt:0-90]`) belongs to the statement before it.

use std::sync::LazyLock;

use icu_segmenter::options::SentenceBreakInvariantOptions;
use icu_segmenter::{SentenceSegmenter, SentenceSegmenterBorrowed};

static SENTENCES: LazyLock<SentenceSegmenterBorrowed<'static>> =
    LazyLock::new(|| SentenceSegmenter::new(SentenceBreakInvariantOptions::default()));

/// What a piece of text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// A sentence of a paragraph or list item.
    Sentence,
    /// A Markdown heading: a title, not a claim.
    Heading,
}

/// One statement: a byte range of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub start: usize,
    pub end: usize,
    pub kind: StatementKind,
}

/// The statements of `text`, in order. Blank text has none.
pub fn statements(text: &str) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut block: Option<(usize, usize)> = None;
    let mut in_code = false;
    let mut offset = 0;
    let flush = |block: &mut Option<(usize, usize)>, out: &mut Vec<Statement>| {
        if let Some((s, e)) = block.take() {
            sentences(text, s, e, out);
        }
    };
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            flush(&mut block, &mut out);
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if trimmed.is_empty() || is_rule(trimmed) {
            flush(&mut block, &mut out);
            continue;
        }
        let lead = line.len() - line.trim_start().len();
        if trimmed.starts_with('#') {
            flush(&mut block, &mut out);
            out.push(Statement {
                start: start + lead,
                end: start + lead + trimmed.len(),
                kind: StatementKind::Heading,
            });
            continue;
        }
        if trimmed.starts_with('|') {
            // A table row is a statement of its own; the separator row is none.
            flush(&mut block, &mut out);
            if !trimmed.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ')) {
                out.push(Statement {
                    start: start + lead,
                    end: start + lead + trimmed.len(),
                    kind: StatementKind::Sentence,
                });
            }
            continue;
        }
        if is_list_item(trimmed) {
            flush(&mut block, &mut out);
        }
        let end = start + line.trim_end().len();
        block = Some(match block {
            Some((s, _)) => (s, end),
            None => (start + lead, end),
        });
    }
    flush(&mut block, &mut out);
    out
}

fn is_rule(line: &str) -> bool {
    line.len() >= 3 && line.chars().all(|c| matches!(c, '-' | '*' | '_' | ' '))
}

fn is_list_item(line: &str) -> bool {
    if line.starts_with("- ") || line.starts_with("* ") || line.starts_with("+ ") {
        return true;
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && (line[digits..].starts_with(". ") || line[digits..].starts_with(") "))
}

/// Sentences of `text[start..end]`, merged where a break falls inside a quotation or leaves a
/// citation on its own.
fn sentences(text: &str, start: usize, end: usize, out: &mut Vec<Statement>) {
    let block = &text[start..end];
    let bounds: Vec<usize> = SENTENCES.segment_str(block).collect();
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    let mut open: Option<usize> = None;
    for w in bounds.windows(2) {
        let (a, b) = (w[0], w[1]);
        let from = open.take().unwrap_or(a);
        if unbalanced_quotes(&block[from..b]) && b < block.len() {
            open = Some(from);
            continue;
        }
        pieces.push((from, b));
    }
    if let Some(from) = open {
        pieces.push((from, block.len()));
    }
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in pieces {
        match merged.last_mut() {
            Some(last) if too_short(&block[a..b]) => last.1 = b,
            _ => merged.push((a, b)),
        }
    }
    for (a, b) in merged {
        let piece = &block[a..b];
        let lead = piece.len() - piece.trim_start().len();
        let trimmed = piece.trim();
        if trimmed.is_empty() {
            continue;
        }
        out.push(Statement {
            start: start + a + lead,
            end: start + a + lead + trimmed.len(),
            kind: StatementKind::Sentence,
        });
    }
}

/// Too little outside quotations to stand alone (a citation after its full stop, `Next.`): fewer
/// than two words and fewer than four letters (a CJK sentence is one "word" of many letters).
fn too_short(s: &str) -> bool {
    words_outside_quotes(s) < 2
        && strip_quotes(s)
            .chars()
            .filter(|c| c.is_alphabetic())
            .count()
            < 4
}

fn unbalanced_quotes(s: &str) -> bool {
    let straight = s.matches('"').count();
    straight % 2 == 1 || s.matches('\u{201c}').count() > s.matches('\u{201d}').count()
}

/// Words of `s` outside quotations and `[…]` brackets.
pub fn words_outside_quotes(s: &str) -> usize {
    strip_quotes(s)
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphabetic))
        .count()
}

/// `s` without its quotations (`"…"`, `“…”`) and bracketed parts (`[…]`).
pub fn strip_quotes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut close: Option<char> = None;
    for c in s.chars() {
        match close {
            Some(end) if c == end => close = None,
            Some(_) => {}
            None => match c {
                '"' => close = Some('"'),
                '\u{201c}' => close = Some('\u{201d}'),
                '[' => close = Some(']'),
                _ => out.push(c),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(t: &str) -> Vec<&str> {
        statements(t).iter().map(|s| &t[s.start..s.end]).collect()
    }

    #[test]
    fn blocks_and_sentences() {
        let t = "# Report\n\nYou may copy the code. You must keep the notice \"retain the above \
                 copyright notice. This list\" [BSD.txt:0-90].\n\n- First item, e.g. this one.\n- \
                 Second item. \"a quote\" [a.txt:0-9]\n\n```\nnot a claim.\n```\nSmith wrote it.";
        let s = statements(t);
        assert_eq!(s[0].kind, StatementKind::Heading);
        assert_eq!(
            texts(t),
            vec![
                "# Report",
                "You may copy the code.",
                "You must keep the notice \"retain the above copyright notice. This list\" \
                 [BSD.txt:0-90].",
                "- First item, e.g. this one.",
                "- Second item. \"a quote\" [a.txt:0-9]",
                "Smith wrote it.",
            ]
        );
    }

    #[test]
    fn cjk_sentences() {
        let t = "许可证允许复制。必须保留版权声明。";
        assert_eq!(texts(t).len(), 2);
        assert!(statements("  \n\n").is_empty());
    }
}
