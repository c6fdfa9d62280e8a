//! Cited statements: how a model with grammar-constrained decoding writes the report's body.
//!
//! A small local model asked for "a report citing its sources" echoes its prompt. Given the
//! verified citations of the findings as numbered sources, its answer is instead constrained to
//! `{"statements": [{"source": n, "text": "…"}]}`, and Troupe renders each statement to Markdown
//! with its source's quote and chunk id: every statement then cites a real passage, and the
//! statement check still decides whether the quote supports what the statement says.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::citations::Citation;
use crate::prompt::Fence;

/// At most this many statements in a body (the grammar's `maxItems`).
const MAX_STATEMENTS: usize = 8;
/// At most this many characters in a statement.
const MAX_STATEMENT_CHARS: usize = 240;

/// A source a statement can cite: a verified citation of an earlier task.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub chunk: String,
    pub quote: String,
}

/// The verified, quoted citations among `found`, each once.
pub fn sources<'a>(found: impl IntoIterator<Item = &'a Citation>) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for c in found {
        let Some(quote) = c.quote.as_ref().filter(|_| c.check.is_verified()) else {
            continue;
        };
        let s = Source {
            chunk: c.chunk.clone(),
            quote: quote.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// What the writer is asked to do about failed statements.
pub const FIX: &str = "Each statement must say only what the quoted words of its source say, \
    and name the source that says it. Fix or remove the statements listed and reply with the \
    complete corrected JSON.";

/// The answer's schema: statements, each naming one of `n` sources.
pub fn schema(n: usize) -> Value {
    let numbers: Vec<usize> = (1..=n).collect();
    json!({
        "type": "object",
        "properties": {
            "statements": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_STATEMENTS,
                "items": {
                    "type": "object",
                    "properties": {
                        "source": {"type": "integer", "enum": numbers},
                        "text": {"type": "string", "minLength": 12, "maxLength": MAX_STATEMENT_CHARS}
                    },
                    "required": ["source", "text"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["statements"],
        "additionalProperties": false
    })
}

/// What the writer is told on top of its task: the numbered sources (fenced: they are document
/// words) and the answer's form.
pub fn instructions(fence: &Fence, sources: &[Source]) -> String {
    let mut list = String::new();
    for (i, s) in sources.iter().enumerate() {
        let _ = writeln!(list, "{}. \"{}\"", i + 1, s.quote);
    }
    format!(
        "\n\n## Sources you can cite\n{}\n\n## Answer format\nAnswer with JSON only: an object \
         with `statements`, a list of at most {MAX_STATEMENTS} statements. Each statement has \
         `source`, the number of one source above, and `text`, one short sentence in plain words \
         that says what that source says and nothing more. Troupe adds the quote and the \
         citation.",
        fence.wrap("numbered sources", &list)
    )
}

/// The answer as Markdown: one paragraph per statement, each ending with its source's quote and
/// chunk id (`… "quoted words" [chunk id].`).
pub fn render(value: &Value, sources: &[Source]) -> String {
    let mut out = String::new();
    for st in value["statements"].as_array().into_iter().flatten() {
        let text = st["text"].as_str().unwrap_or_default();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = text.trim_end_matches(['.', ' ']);
        let source = st["source"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| sources.get(i));
        if text.is_empty() {
            continue;
        }
        // Each sentence of the statement claims what its source says: each gets the citation.
        let sentences: Vec<&str> = troupe_docs::statements(text)
            .iter()
            .map(|s| text[s.start..s.end].trim_end_matches(['.', ' ']))
            .filter(|s| !s.is_empty())
            .collect();
        let line: Vec<String> = sentences
            .iter()
            .map(|t| match source {
                Some(s) => format!("{t} \"{}\" [{}].", s.quote, s.chunk),
                None => format!("{t}."),
            })
            .collect();
        let _ = writeln!(out, "{}\n", line.join(" "));
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_render_with_their_sources() {
        let sources = vec![
            Source {
                chunk: "a.txt:0-90".into(),
                quote: "must retain the notice".into(),
            },
            Source {
                chunk: "a.txt:80-200".into(),
                quote: "may sell copies".into(),
            },
        ];
        let v = json!({"statements": [
            {"source": 2, "text": "You  can sell copies."},
            {"source": 1, "text": "Keep the notice. Always"},
            {"source": 9, "text": "Out of range"}
        ]});
        let v_schema = jsonschema::validator_for(&schema(2)).unwrap();
        assert!(!v_schema.is_valid(&v), "source 9 is not one of 2");
        assert_eq!(
            render(&v, &sources),
            "You can sell copies \"may sell copies\" [a.txt:80-200].\n\nKeep the notice \
             \"must retain the notice\" [a.txt:0-90]. Always \"must retain the notice\" \
             [a.txt:0-90].\n\nOut of range."
        );
    }
}
