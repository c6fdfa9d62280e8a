//! Citations in task outputs, and their checks against the documents.
//!
//! A citation is a chunk id plus the words quoted from it. In a JSON output it is any object with
//! a string `chunk` (and, normally, a string `quote`). In text it is a chunk id in square brackets,
//! `"quoted words" [contract.pdf:0-1830]`, the quote being the quoted words right before it.

use serde::Serialize;
use serde_json::Value;
use troupe_docs::{CitationCheck, Corpus};

/// One citation found in an output, with its check.
#[derive(Debug, Clone, Serialize)]
pub struct Citation {
    pub chunk: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    pub check: CitationCheck,
}

impl Citation {
    pub fn problem(&self) -> Option<String> {
        self.check
            .problem(&self.chunk, self.quote.as_deref().unwrap_or_default())
    }
}

/// Every citation in an output: JSON objects with `chunk`, and `[chunk-id]` markers in text (and
/// in the JSON's strings), each checked against `corpus`. Duplicates are kept once.
pub fn find(corpus: &Corpus, text: &str, value: Option<&Value>) -> Vec<Citation> {
    let mut raw: Vec<(String, Option<String>)> = Vec::new();
    match value {
        Some(v) => walk(v, &mut raw),
        None => raw.extend(markers(text).into_iter().map(|m| (m.chunk, m.quote))),
    }
    let mut out: Vec<Citation> = Vec::new();
    for (chunk, quote) in raw {
        if out.iter().any(|c| c.chunk == chunk && c.quote == quote) {
            continue;
        }
        let check = match &quote {
            Some(q) => corpus.check_citation(&chunk, q),
            None => match corpus.chunk(&chunk) {
                Some(c) => CitationCheck::Verified {
                    document: corpus.document_of(c).id.clone(),
                    lines: corpus.location(c),
                },
                None => CitationCheck::UnknownChunk { found_in: None },
            },
        };
        out.push(Citation {
            chunk,
            quote,
            check,
        });
    }
    out
}

fn walk(v: &Value, out: &mut Vec<(String, Option<String>)>) {
    match v {
        Value::Object(m) => {
            if let Some(chunk) = m.get("chunk").and_then(Value::as_str) {
                let quote = m.get("quote").and_then(Value::as_str).map(str::to_string);
                out.push((chunk.trim().to_string(), quote));
            }
            for (k, x) in m {
                if k != "chunk" && k != "quote" {
                    walk(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
        Value::String(s) => out.extend(markers(s).into_iter().map(|m| (m.chunk, m.quote))),
        _ => {}
    }
}

/// A `[chunk-id]` marker in text.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Byte range of the marker, brackets included.
    pub start: usize,
    pub end: usize,
    pub chunk: String,
    pub quote: Option<String>,
}

/// Whether `s` looks like a chunk id: `<document>:<start>-<end>`.
fn is_chunk_id(s: &str) -> bool {
    let Some((doc, span)) = s.rsplit_once(':') else {
        return false;
    };
    let Some((a, b)) = span.split_once('-') else {
        return false;
    };
    !doc.is_empty()
        && !doc.contains(['[', ']', '\n'])
        && !a.is_empty()
        && !b.is_empty()
        && a.bytes().all(|c| c.is_ascii_digit())
        && b.bytes().all(|c| c.is_ascii_digit())
}

/// Chunk-id markers in `text`, each with the quoted words just before it (if any).
pub fn markers(text: &str) -> Vec<Marker> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find('[').map(|i| from + i) {
        let Some(close) = text[open..].find(']').map(|i| open + i) else {
            break;
        };
        let inner = text[open + 1..close].trim();
        // `[see contract.pdf:0-10]` style prefixes are tolerated.
        let id = inner.rsplit(' ').next().unwrap_or(inner);
        if is_chunk_id(id) {
            out.push(Marker {
                start: open,
                end: close + 1,
                chunk: id.to_string(),
                quote: quote_before(&text[..open]),
            });
            from = close + 1;
        } else {
            from = open + 1;
        }
    }
    out
}

/// The quoted words ending right before a marker: `"…"` or `“…”`, separated from the marker by
/// at most a few spaces or punctuation marks.
fn quote_before(before: &str) -> Option<String> {
    let trimmed = before.trim_end_matches(|c: char| {
        c.is_whitespace() || matches!(c, ',' | ';' | ':' | '(' | '—' | '-')
    });
    let (close_len, open_chars): (usize, &[char]) = if trimmed.ends_with('"') {
        (1, &['"'])
    } else if trimmed.ends_with('\u{201d}') {
        ('\u{201d}'.len_utf8(), &['\u{201c}', '"'])
    } else {
        return None;
    };
    let inner_end = trimmed.len() - close_len;
    let inner = &trimmed[..inner_end];
    let (open, mark) = inner
        .char_indices()
        .rev()
        .find(|(_, c)| open_chars.contains(c))?;
    let quote = &inner[open + mark.len_utf8()..];
    let quote = quote.trim();
    (!quote.is_empty() && quote.len() < 1000 && !quote.contains("\n\n")).then(|| quote.to_string())
}

/// `schema` with every `chunk` property that is a plain string limited to `ids`. For a
/// per-document task the answer can then only name chunks that exist: a structured-output API
/// enforces it, and the local model's grammar cannot produce anything else. The quote is still
/// checked.
pub fn constrain_chunk_ids(schema: &Value, ids: &[String]) -> Value {
    let mut schema = schema.clone();
    constrain(&mut schema, ids);
    schema
}

fn constrain(v: &mut Value, ids: &[String]) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get_mut("properties")
                && let Some(Value::Object(chunk)) = props.get_mut("chunk")
                && chunk.get("type").and_then(Value::as_str) == Some("string")
                && !chunk.contains_key("enum")
                && !chunk.contains_key("const")
            {
                chunk.insert("enum".into(), Value::from(ids.to_vec()));
            }
            for x in m.values_mut() {
                constrain(x, ids);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| constrain(x, ids)),
        _ => {}
    }
}

/// The message that sends failed citations back to the agent.
pub fn feedback(failed: &[&Citation], total: usize) -> String {
    let mut s = format!(
        "The citation check failed for {} of your {total} citation(s):\n",
        failed.len()
    );
    for c in failed {
        if let Some(p) = c.problem() {
            s.push_str(&format!("- {p}\n"));
        }
    }
    s.push_str(
        "\nEvery citation must name a chunk id you were given and quote words copied exactly \
         from that chunk. Fix the citations (or remove claims you cannot support) and reply with \
         the complete corrected answer.",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_properties_are_limited_to_the_given_ids() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/$defs/p"}},
                "chunk": {"type": "string", "enum": ["kept"]}
            },
            "$defs": {"p": {"type": "object", "properties": {"chunk": {"type": "string"}}}}
        });
        let ids = vec!["a.txt:0-10".to_string(), "a.txt:8-20".to_string()];
        let out = constrain_chunk_ids(&schema, &ids);
        assert_eq!(
            out["$defs"]["p"]["properties"]["chunk"]["enum"],
            serde_json::json!(ids)
        );
        assert_eq!(
            out["properties"]["chunk"]["enum"],
            serde_json::json!(["kept"])
        );
    }

    #[test]
    fn markers_with_and_without_quotes() {
        let text = "The licence says \u{201c}AS IS\u{201d} [BSD.txt:0-120]. It also requires \
                    notices (\"retain the above copyright notice\", [BSD.txt:0-120]) and more \
                    [see MPL-2.0.txt:10-400]; not a citation: [1] or [a:b-c].";
        let m = markers(text);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[0].chunk, "BSD.txt:0-120");
        assert_eq!(m[0].quote.as_deref(), Some("AS IS"));
        assert_eq!(
            m[1].quote.as_deref(),
            Some("retain the above copyright notice")
        );
        assert_eq!(m[2].chunk, "MPL-2.0.txt:10-400");
        assert_eq!(m[2].quote, None);
        assert_eq!(&text[m[0].start..m[0].end], "[BSD.txt:0-120]");
    }
}
