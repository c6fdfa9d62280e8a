//! Checking a citation: the chunk exists and contains the quoted words.

use serde::Serialize;

use crate::corpus::Corpus;

/// The result of checking one citation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CitationCheck {
    /// The chunk exists and contains the quote.
    Verified { document: String, lines: String },
    /// No chunk has this id.
    UnknownChunk {
        #[serde(skip_serializing_if = "Option::is_none")]
        found_in: Option<String>,
    },
    /// The chunk exists but the quote is not in it.
    NotInChunk {
        document: String,
        lines: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        found_in: Option<String>,
    },
    /// The quote has no words to check.
    EmptyQuote,
    /// The chunk exists but the citation quotes nothing, so nothing could be checked: it is not
    /// a verified citation.
    Unchecked { document: String, lines: String },
}

impl CitationCheck {
    pub fn is_verified(&self) -> bool {
        matches!(self, CitationCheck::Verified { .. })
    }

    /// One line for the agent (feedback) and the report: what is wrong and how to fix it.
    pub fn problem(&self, chunk: &str, quote: &str) -> Option<String> {
        let short = shorten(quote, 80);
        match self {
            CitationCheck::Verified { .. } => None,
            CitationCheck::Unchecked { .. } => Some(format!(
                "citation of {chunk} quotes nothing, so it could not be checked: write the exact words from the chunk in quotation marks right before the id"
            )),
            CitationCheck::EmptyQuote => Some(format!(
                "citation of {chunk} has an empty quote: copy the exact words from the chunk"
            )),
            CitationCheck::UnknownChunk {
                found_in: Some(other),
            } => Some(format!(
                "there is no chunk '{chunk}'; the quote \"{short}\" is in chunk {other}: cite that id"
            )),
            CitationCheck::UnknownChunk { found_in: None } => Some(format!(
                "there is no chunk '{chunk}' and no document contains \"{short}\": use docs.search to find the passage and cite its chunk id with words copied exactly"
            )),
            CitationCheck::NotInChunk {
                found_in: Some(other),
                ..
            } => Some(format!(
                "chunk {chunk} does not contain \"{short}\", but chunk {other} does: cite that id"
            )),
            CitationCheck::NotInChunk { found_in: None, .. } => Some(format!(
                "chunk {chunk} does not contain \"{short}\" and no other chunk does either: quote words that appear in the document exactly (docs.read shows the chunk)"
            )),
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Text as compared by citation checks: case folded, typographic quotes and dashes made plain,
/// every run of whitespace one space, trimmed. Models re-flow lines and straighten quotes; they
/// must not change words.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        let c = match c {
            '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{2032}' | '`' => '\'',
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{2033}' => '"',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            '\u{a0}' => ' ',
            c => c,
        };
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.extend(c.to_lowercase());
    }
    // ``TeX quotes'' as in many licence texts.
    out.replace("''", "\"")
}

/// The quote's parts: an ellipsis (`...` or `…`) in a quote stands for omitted words, so each
/// part must appear, in order. Surrounding quote marks are not part of the quote.
fn parts(quote: &str) -> Vec<String> {
    let quote = normalise(quote);
    let quote = quote.trim_matches(|c: char| c == '"' || c == '\'' || c.is_whitespace());
    quote
        .replace('…', "...")
        .split("...")
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn contains_in_order(haystack: &str, parts: &[String]) -> bool {
    let mut from = 0;
    for part in parts {
        match haystack[from..].find(part.as_str()) {
            Some(at) => from += at + part.len(),
            None => return false,
        }
    }
    true
}

impl Corpus {
    /// Checks that chunk `chunk_id` exists and contains `quote` (see [`normalise`]). When it does
    /// not, says which chunk does, if any, so the agent can correct the id.
    pub fn check_citation(&self, chunk_id: &str, quote: &str) -> CitationCheck {
        let parts = parts(quote);
        if parts.is_empty() {
            return CitationCheck::EmptyQuote;
        }
        let normalised = self.normalised_chunks();
        let found_elsewhere = || {
            normalised
                .iter()
                .position(|text| contains_in_order(text, &parts))
                .map(|i| self.chunks()[i].id.clone())
        };
        match self.position(chunk_id) {
            None => CitationCheck::UnknownChunk {
                found_in: found_elsewhere(),
            },
            Some(at) => {
                let chunk = &self.chunks()[at];
                let document = self.document_of(chunk).id.clone();
                let lines = self.location(chunk);
                if contains_in_order(&normalised[at], &parts) {
                    CitationCheck::Verified { document, lines }
                } else {
                    CitationCheck::NotInChunk {
                        document,
                        lines,
                        found_in: found_elsewhere(),
                    }
                }
            }
        }
    }
}

impl Corpus {
    /// The sentence (or sentences) of chunk `chunk_id` that hold `quote`, normalised: what the
    /// quoted words say in their place. `None` when the chunk does not contain the quote.
    pub fn quote_context(&self, chunk_id: &str, quote: &str) -> Option<String> {
        let parts = parts(quote);
        let at = self.position(chunk_id)?;
        let text = &self.normalised_chunks()[at];
        let (first, last) = (parts.first()?, parts.last()?);
        let start = text.find(first.as_str())?;
        let end = start + text[start..].rfind(last.as_str())? + last.len();
        let is_end = |c: char| matches!(c, '.' | ';' | '!' | '?' | '\n');
        let from = text[..start].rfind(is_end).map_or(0, |i| i + 1);
        let to = text[end..].find(is_end).map_or(text.len(), |i| end + i + 1);
        Some(text[from..to].trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_folds_case_quotes_dashes_and_whitespace() {
        assert_eq!(
            normalise("  \u{201c}AS  IS\u{201d}\n and \u{2014} Don\u{2019}t "),
            "\"as is\" and - don't"
        );
    }

    #[test]
    fn ellipsis_parts_must_appear_in_order() {
        let hay =
            normalise("Redistributions of source code must retain the above copyright notice");
        assert!(contains_in_order(
            &hay,
            &parts("redistributions … must retain")
        ));
        assert!(contains_in_order(
            &hay,
            &parts("\"source code ... notice\"")
        ));
        assert!(!contains_in_order(&hay, &parts("notice ... source code")));
    }
}
