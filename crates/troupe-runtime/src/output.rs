//! Structured outputs: pull the JSON out of an answer (fenced or not) and check it against the
//! task's schema, with errors worded for the model to fix.

use serde_json::Value;

/// The JSON value in an answer: the whole text, a fenced ```json block, or the outermost
/// `{…}` / `[…]` span.
pub fn extract_json(answer: &str) -> Result<Value, String> {
    let t = answer.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Ok(v);
    }
    if let Some(start) = t.find("```") {
        let after = &t[start + 3..];
        let body_start = after.find('\n').map_or(0, |i| i + 1);
        if let Some(end) = after[body_start..].find("```")
            && let Ok(v) = serde_json::from_str(after[body_start..body_start + end].trim())
        {
            return Ok(v);
        }
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(a), Some(b)) = (t.find(open), t.rfind(close))
            && a < b
            && let Ok(v) = serde_json::from_str(&t[a..=b])
        {
            return Ok(v);
        }
    }
    Err(match serde_json::from_str::<Value>(t) {
        Err(e) => format!("the answer is not JSON ({e})"),
        Ok(_) => "the answer is not JSON".into(),
    })
}

/// Checks `value` against `schema`; the errors, one per line, with the JSON pointer of each.
pub fn check(schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    let validator = jsonschema::validator_for(schema).map_err(|e| vec![e.to_string()])?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| {
            let at = e.instance_path().as_str().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("at `{at}`: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_plain_fenced_and_embedded_json() {
        assert_eq!(extract_json("{\"a\":1}").unwrap(), json!({"a": 1}));
        assert_eq!(
            extract_json("Here:\n```json\n{\"a\": 2}\n```\nDone.").unwrap(),
            json!({"a": 2})
        );
        assert_eq!(
            extract_json("Sure! {\"a\": [1, 2]} hope it helps").unwrap(),
            json!({"a": [1, 2]})
        );
        assert!(extract_json("no json here").is_err());
    }

    #[test]
    fn reports_schema_errors_with_paths() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n", "m"]});
        let errs = check(&schema, &json!({"n": "x"})).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("at `/n`")), "{errs:?}");
        assert!(check(&schema, &json!({"n": 1, "m": 0})).is_ok());
    }
}
