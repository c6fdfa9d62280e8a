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
                Some(c) => CitationCheck::Unchecked {
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

/// `schema` with every object that has a plain-string `chunk` and `quote` turned into a choice,
/// one branch per chunk given (every passage of each is offered; the caller gives the chunks the
/// prompt shows, so the grammar is bounded by the context window): `chunk` is that chunk's id and `quote` one of its
/// passages (sentences, or clauses of long ones, within the quote's `maxLength`). For a model
/// with grammar-constrained decoding every citation is then words of the chunk it names.
pub fn constrain_quotes(schema: &Value, chunks: &[(String, &str)]) -> Value {
    let mut schema = schema.clone();
    constrain_pairs(&mut schema, chunks);
    schema
}

fn is_plain_string(v: Option<&Value>) -> bool {
    v.and_then(Value::as_object).is_some_and(|o| {
        o.get("type").and_then(Value::as_str) == Some("string")
            && !o.contains_key("enum")
            && !o.contains_key("const")
    })
}

fn constrain_pairs(v: &mut Value, chunks: &[(String, &str)]) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                constrain_pairs(x, chunks);
            }
            let props = m.get("properties").and_then(Value::as_object);
            if !props
                .is_some_and(|p| is_plain_string(p.get("chunk")) && is_plain_string(p.get("quote")))
            {
                return;
            }
            let max = props
                .and_then(|p| p["quote"].get("maxLength"))
                .and_then(Value::as_u64)
                .map_or(usize::MAX, |m| m as usize);
            let mut branches = Vec::new();
            for (id, text) in chunks {
                let list = passages(text, max);
                if list.is_empty() {
                    continue;
                }
                let mut branch = m.clone();
                if let Some(Value::Object(p)) = branch.get_mut("properties") {
                    p.insert("chunk".into(), serde_json::json!({"const": id}));
                    p.insert("quote".into(), serde_json::json!({"enum": list}));
                }
                branches.push(Value::Object(branch));
            }
            if !branches.is_empty() {
                *v = serde_json::json!({ "anyOf": branches });
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| constrain_pairs(x, chunks)),
        _ => {}
    }
}

/// Sentences of `text` (whitespace collapsed) of at least three words, split into clauses and
/// regrouped when longer than `max` characters.
pub fn passages(text: &str, max: usize) -> Vec<String> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        let s = s.trim();
        if s.split_whitespace().count() >= 3
            && s.chars().count() <= max
            && !out.iter().any(|o| o == s)
        {
            out.push(s.to_string());
        }
    };
    for sentence in split_keep(&flat, &[". ", "; ", ": ", "? ", "! "]) {
        for piece in pieces(sentence, max) {
            push(piece);
        }
    }
    out
}

/// `sentence` cut into consecutive pieces of at most `max` characters, at a clause boundary (after
/// `,` or `;`) when there is one within reach, else at a word boundary.
fn pieces(sentence: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = sentence.trim();
    while rest.chars().count() > max {
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let mut spaces: Vec<usize> = rest[..limit]
            .match_indices(' ')
            .map(|(i, _)| i)
            .filter(|&i| i > 0)
            .collect();
        if rest[limit..].starts_with(' ') {
            spaces.push(limit);
        }
        let cut = spaces
            .iter()
            .rev()
            .find(|&&i| rest[..i].ends_with([',', ';']))
            .or_else(|| spaces.last())
            .copied()
            .unwrap_or(limit);
        out.push(rest[..cut].trim());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// `s` cut after each separator, separators kept with the part before (trailing space dropped).
fn split_keep<'a>(s: &'a str, seps: &[&str]) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        if let Some(sep) = seps.iter().find(|sep| s[i..].starts_with(**sep)) {
            let keep = sep.trim_end().len();
            parts.push(&s[start..i + keep]);
            i += sep.len();
            start = i;
        } else {
            i += s[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    if start < s.len() {
        parts.push(&s[start..]);
    }
    parts
}

/// What is wrong with each failed citation, one line each (for the author and the events).
pub fn problems(failed: &[&Citation]) -> Vec<String> {
    failed.iter().filter_map(|c| c.problem()).collect()
}

/// What the author is asked to do about failed citations.
pub const FIX_CITATIONS: &str = "Every citation must name a chunk id you were given and quote \
    words copied exactly from that chunk. Fix the citations (or remove claims you cannot support) \
    and reply with the complete corrected answer.";

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
    fn constrained_citations_pair_each_chunk_with_its_own_passages() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"findings": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "summary": {"type": "string"},
                    "chunk": {"type": "string"},
                    "quote": {"type": "string", "maxLength": 80}
                },
                "required": ["summary", "chunk", "quote"],
                "additionalProperties": false
            }}},
            "required": ["findings"]
        });
        let chunks = vec![
            (
                "d:0-50".to_string(),
                "The licensee must keep the notice. It may sell copies.",
            ),
            (
                "d:40-90".to_string(),
                "The licence ends on breach of any condition.",
            ),
        ];
        let constrained = constrain_quotes(&schema, &chunks);
        let v = jsonschema::validator_for(&constrained).unwrap();
        let finding = |chunk: &str, quote: &str| serde_json::json!({"findings": [{"summary": "s", "chunk": chunk, "quote": quote}]});
        assert!(v.is_valid(&finding("d:0-50", "The licensee must keep the notice.")));
        assert!(v.is_valid(&finding(
            "d:40-90",
            "The licence ends on breach of any condition."
        )));
        // A real passage under the wrong chunk, or words of no chunk, cannot be produced.
        assert!(!v.is_valid(&finding("d:40-90", "The licensee must keep the notice.")));
        assert!(!v.is_valid(&finding("d:0-50", "The licensee may do anything.")));
    }

    #[test]
    fn the_chunk_restriction_survives_the_quote_grammar() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "findings": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"chunk": {"type": "string"}, "quote": {"type": "string"}},
                    "required": ["chunk", "quote"]
                }},
                "see_also": {"type": "object", "properties": {"chunk": {"type": "string"}}}
            }
        });
        let chunks = vec![("d:0-50".to_string(), "The licensee must keep the notice.")];
        let ids = vec!["d:0-50".to_string(), "d:40-90".to_string()];
        let out = constrain_chunk_ids(&constrain_quotes(&schema, &chunks), &ids);
        let v = jsonschema::validator_for(&out).unwrap();
        let pair = |c: &str| serde_json::json!({"findings": [{"chunk": c, "quote": "The licensee must keep the notice."}]});
        assert!(v.is_valid(&pair("d:0-50")));
        assert!(!v.is_valid(&pair("other.txt:0-50")));
        // A chunk field outside a pair is still limited to the document's chunks.
        assert!(v.is_valid(&serde_json::json!({"see_also": {"chunk": "d:40-90"}})));
        assert!(!v.is_valid(&serde_json::json!({"see_also": {"chunk": "other.txt:0-9"}})));
    }

    #[test]
    fn passages_are_sentences_or_clauses_within_the_limit() {
        let text = "Redistributions of source code must retain the above copyright notice, \
                    this list of conditions and the following disclaimer.\n  Neither the name \
                    may be used. Short one. «Ünïcödé» wörds ârë çût ŝäfély évèn whên thé ŝéntéñcé \
                    ïs löñgér thâñ thé lïmït ôf sïxty çhâràctérs.";
        let p = passages(text, 60);
        assert!(p.iter().all(|s| s.chars().count() <= 60), "{p:?}");
        assert!(
            p.contains(&"Neither the name may be used.".to_string()),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|s| s.starts_with("Redistributions of source code")),
            "{p:?}"
        );
        assert!(
            !p.iter().any(|s| s == "Short one."),
            "fewer than three words: {p:?}"
        );
        // Every passage is words of the text.
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(p.iter().all(|s| flat.contains(s.as_str())), "{p:?}");
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
