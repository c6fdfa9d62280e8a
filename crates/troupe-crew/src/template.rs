//! `{placeholder}` templates in task descriptions and expected outputs.
//!
//! Only identifier-like braces are placeholders (`{topic}`, `{doc_name}`), so JSON examples or other
//! braces in a description stay as written. `{{` and `}}` are literal braces.

use std::collections::BTreeMap;

/// The placeholder names used in `text`, in order of first appearance.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    scan(text, |piece| {
        if let Piece::Placeholder(name) = piece
            && !out.iter().any(|n| n == name)
        {
            out.push(name.to_string());
        }
    });
    out
}

/// Fills the placeholders of `text`; a placeholder without an input is left as written
/// (validation reports it before this is called).
pub fn render(text: &str, inputs: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    scan(text, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Placeholder(name) => match inputs.get(name) {
            Some(v) => out.push_str(v),
            None => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
        },
    });
    out
}

/// Placeholders filled per document in a `for_each: "document"` task, at run time.
pub const DOCUMENT_VARS: [&str; 3] = ["document", "document_title", "document_text"];

/// The marker a document placeholder becomes at validation, for the runtime to fill: characters
/// from Unicode's private use area, which no crew file or input contains by accident.
pub fn slot(name: &str) -> String {
    format!("\u{e000}{name}\u{e001}")
}

/// Fills the [`slot`]s in `text` with `value(name)`.
pub fn fill_slots(text: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = text.to_string();
    for name in DOCUMENT_VARS {
        let marker = slot(name);
        if out.contains(&marker) {
            out = out.replace(&marker, &value(name).unwrap_or_default());
        }
    }
    out
}

enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

fn scan<'a>(text: &'a str, mut emit: impl FnMut(Piece<'a>)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut start = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'}' if bytes.get(i + 1) == Some(&bytes[i]) => {
                emit(Piece::Text(&text[start..=i]));
                i += 2;
                start = i;
            }
            b'{' => {
                let rest = &text[i + 1..];
                let len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(rest.len());
                let name = &rest[..len];
                let starts_ok = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
                if starts_ok && rest[len..].starts_with('}') {
                    emit(Piece::Text(&text[start..i]));
                    emit(Piece::Placeholder(name));
                    i += len + 2;
                    start = i;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    emit(Piece::Text(&text[start..]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_fills_placeholders() {
        let t = "Study {topic} for {audience}; again {topic}. JSON: {\"a\": 1} {{literal}} {9x}";
        assert_eq!(placeholders(t), vec!["topic", "audience"]);
        let inputs = BTreeMap::from([
            ("topic".to_string(), "AI".to_string()),
            ("audience".to_string(), "CFOs".to_string()),
        ]);
        assert_eq!(
            render(t, &inputs),
            "Study AI for CFOs; again AI. JSON: {\"a\": 1} {literal} {9x}"
        );
    }
}
