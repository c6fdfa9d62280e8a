//! Where two JSON values first differ, said so that a person can see it: the JSON path and a
//! short window of each side around the first differing character. Used to explain a request
//! that is not in a recording, and what changed in a crew file since a run started.

use serde_json::Value;

/// The first difference between two values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// JSON path, e.g. `messages[3].content`; empty for the whole value.
    pub path: String,
    /// The left side at `path`, shortened around the first differing character.
    pub was: String,
    /// The right side at `path`, likewise.
    pub now: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.path.is_empty() {
            "the whole value".to_string()
        } else {
            format!("`{}`", self.path)
        };
        write!(f, "{at}: was {}, now {}", self.was, self.now)
    }
}

/// Characters of context shown on each side of the first differing character.
const CONTEXT: usize = 40;

/// The first place (in document order) where `a` and `b` differ, or `None` when equal.
pub fn first_difference(a: &Value, b: &Value) -> Option<Difference> {
    let mut path = String::new();
    walk(a, b, &mut path)
}

fn walk(a: &Value, b: &Value, path: &mut String) -> Option<Difference> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let d = match y.get(k) {
                    Some(vb) => walk(va, vb, path),
                    None => Some(Difference {
                        path: path.clone(),
                        was: show(va),
                        now: "(absent)".into(),
                    }),
                };
                if d.is_some() {
                    return d;
                }
                path.truncate(len);
            }
            y.iter().find(|(k, _)| !x.contains_key(*k)).map(|(k, vb)| {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                Difference {
                    path: path.clone(),
                    was: "(absent)".into(),
                    now: show(vb),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if let Some(d) = walk(va, vb, path) {
                    return Some(d);
                }
                path.truncate(len);
            }
            (x.len() != y.len()).then(|| Difference {
                path: path.clone(),
                was: format!("{} item(s)", x.len()),
                now: format!("{} item(s)", y.len()),
            })
        }
        (Value::String(x), Value::String(y)) if x != y => {
            let (was, now) = windows(x, y);
            Some(Difference {
                path: path.clone(),
                was,
                now,
            })
        }
        _ if a == b => None,
        _ => Some(Difference {
            path: path.clone(),
            was: show(a),
            now: show(b),
        }),
    }
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 2 * CONTEXT {
        format!("{}…", s.chars().take(2 * CONTEXT).collect::<String>())
    } else {
        s
    }
}

/// Both strings cut to a window around their first differing character, quoted.
fn windows(x: &str, y: &str) -> (String, String) {
    let common = x.chars().zip(y.chars()).take_while(|(a, b)| a == b).count();
    let cut = |s: &str| {
        let start = common.saturating_sub(CONTEXT);
        let body: String = s.chars().skip(start).take(2 * CONTEXT).collect();
        let more = s.chars().count() > start + 2 * CONTEXT;
        format!(
            "\"{}{}{}\"",
            if start > 0 { "…" } else { "" },
            body.replace('\n', "\\n"),
            if more { "…" } else { "" }
        )
    };
    (cut(x), cut(y))
}

/// How many leading characters the two texts share: how close a recorded request is.
pub fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_first_differing_path_and_shows_both_sides() {
        let a = json!({"messages": [{"role": "user", "content": "Summarise the tides"}], "t": 1});
        let b = json!({"messages": [{"role": "user", "content": "Summarise the moon"}], "t": 1});
        let d = first_difference(&a, &b).unwrap();
        assert_eq!(d.path, "messages[0].content");
        assert_eq!(d.was, "\"Summarise the tides\"");
        assert_eq!(d.now, "\"Summarise the moon\"");
        assert_eq!(first_difference(&a, &a), None);
    }

    #[test]
    fn missing_keys_items_and_types_are_differences() {
        let d = first_difference(&json!({"a": 1}), &json!({"a": 1, "b": 2})).unwrap();
        assert_eq!((d.path.as_str(), d.was.as_str()), ("b", "(absent)"));
        let d = first_difference(&json!([1, 2]), &json!([1])).unwrap();
        assert_eq!((d.was.as_str(), d.now.as_str()), ("2 item(s)", "1 item(s)"));
        let d = first_difference(&json!({"x": "1"}), &json!({"x": 1})).unwrap();
        assert_eq!((d.path.as_str(), d.now.as_str()), ("x", "1"));
    }

    #[test]
    fn long_strings_are_cut_around_the_difference() {
        let a = format!("{}A{}", "x".repeat(500), "y".repeat(500));
        let b = format!("{}B{}", "x".repeat(500), "y".repeat(500));
        let d = first_difference(&json!(a), &json!(b)).unwrap();
        assert!(
            d.was.starts_with("\"…") && d.was.ends_with("…\""),
            "{}",
            d.was
        );
        assert!(d.was.contains("xA") && d.now.contains("xB"));
        assert!(d.was.chars().count() < 100);
    }
}
