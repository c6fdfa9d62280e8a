//! Built-in tools, always available: `text.stats` and `text.keywords`. Small, deterministic text
//! analysis that a document crew calls on passages it is working with.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use troupe_llm::{BoxFuture, ToolSpec};

use crate::tool::{Tool, ToolError, ToolRegistry};

/// Adds the built-in tools to `registry`.
pub fn register(registry: &mut ToolRegistry) {
    registry.register(Arc::new(TextStats::new()));
    registry.register(Arc::new(Keywords::new()));
}

fn text_arg(args: &Value) -> Result<&str, ToolError> {
    args["text"]
        .as_str()
        .ok_or_else(|| ToolError("`text` must be a string".into()))
}

/// Word, sentence and character counts plus a readability grade.
pub struct TextStats {
    spec: ToolSpec,
}

impl TextStats {
    fn new() -> Self {
        Self {
            spec: ToolSpec {
                name: "text.stats".into(),
                description: "Counts words, sentences, paragraphs and characters in a text and \
                              gives its Flesch reading-ease score (higher = easier, 60-70 = plain \
                              English)."
                    .into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"text": {"type": "string", "description": "The text to measure"}},
                    "required": ["text"],
                    "additionalProperties": false
                }),
            },
        }
    }
}

/// Statistics of a text.
pub fn text_stats(text: &str) -> Value {
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect();
    let sentences = text
        .split(['.', '!', '?'])
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .count()
        .max(usize::from(!words.is_empty()));
    let paragraphs = text.split("\n\n").filter(|p| !p.trim().is_empty()).count();
    let syllables: usize = words.iter().map(|w| syllable_count(w)).sum();
    let flesch = if words.is_empty() {
        0.0
    } else {
        let wps = words.len() as f64 / sentences as f64;
        let spw = syllables as f64 / words.len() as f64;
        206.835 - 1.015 * wps - 84.6 * spw
    };
    json!({
        "words": words.len(),
        "sentences": sentences,
        "paragraphs": paragraphs,
        "characters": text.chars().count(),
        "avg_words_per_sentence": if sentences == 0 { 0.0 } else { round1(words.len() as f64 / sentences as f64) },
        "flesch_reading_ease": round1(flesch),
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Vowel groups, a standard approximation for English.
fn syllable_count(word: &str) -> usize {
    let w: Vec<char> = word
        .chars()
        .filter(|c| c.is_alphabetic())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let vowel = |c: char| "aeiouy".contains(c);
    let mut n = 0;
    let mut prev = false;
    for &c in &w {
        let v = vowel(c);
        if v && !prev {
            n += 1;
        }
        prev = v;
    }
    if w.len() > 2 && w.ends_with(&['e']) && !w.ends_with(&['l', 'e']) && n > 1 {
        n -= 1;
    }
    n.max(1)
}

impl Tool for TextStats {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call(&self, args: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move { Ok(text_stats(text_arg(&args)?).to_string()) })
    }
}

/// The most frequent content words of a text.
pub struct Keywords {
    spec: ToolSpec,
}

impl Keywords {
    fn new() -> Self {
        Self {
            spec: ToolSpec {
                name: "text.keywords".into(),
                description: "Ranks the most frequent content words of a text (common English \
                              stop words left out), with their counts."
                    .into(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "description": "The text to analyse"},
                        "top": {"type": "integer", "minimum": 1, "maximum": 100, "description": "How many keywords (default 10)"}
                    },
                    "required": ["text"],
                    "additionalProperties": false
                }),
            },
        }
    }
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does", "for",
    "from", "had", "has", "have", "he", "her", "his", "i", "if", "in", "into", "is", "it", "its",
    "may", "more", "no", "not", "of", "on", "or", "our", "shall", "she", "so", "such", "than",
    "that", "the", "their", "them", "then", "there", "these", "they", "this", "to", "under",
    "upon", "was", "we", "were", "what", "when", "which", "who", "will", "with", "would", "you",
    "your", "any", "all", "other", "also", "each",
];

/// The `top` most frequent non-stop-words, ties broken alphabetically.
pub fn keywords(text: &str, top: usize) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for w in text
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\''))
        .map(|w| w.trim_matches(['-', '\'']).to_lowercase())
        .filter(|w| w.chars().count() > 2 && !STOP_WORDS.contains(&w.as_str()))
        .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
    {
        *counts.entry(w).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(top);
    v
}

impl Tool for Keywords {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call(&self, args: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let top = args["top"]
                .as_u64()
                .map_or(10, |t| usize::try_from(t).unwrap_or(10));
            let kw: Vec<Value> = keywords(text_arg(&args)?, top)
                .into_iter()
                .map(|(w, n)| json!({"word": w, "count": n}))
                .collect();
            Ok(json!({ "keywords": kw }).to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_known_text() {
        let s = text_stats("The cat sat on the mat. It was happy!\n\nA second paragraph here.");
        assert_eq!(s["words"], 13);
        assert_eq!(s["sentences"], 3);
        assert_eq!(s["paragraphs"], 2);
        assert!(s["flesch_reading_ease"].as_f64().unwrap() > 80.0, "{s}");
    }

    #[test]
    fn keywords_skip_stop_words_and_rank_by_count() {
        let k = keywords(
            "The licensee shall indemnify the licensor. The licensee pays fees; fees are due.",
            3,
        );
        assert_eq!(
            k,
            vec![
                ("fees".to_string(), 2),
                ("licensee".to_string(), 2),
                ("due".to_string(), 1)
            ]
        );
    }

    #[tokio::test]
    async fn registry_checks_arguments_at_the_boundary() {
        let mut r = ToolRegistry::default();
        register(&mut r);
        let tools = r.resolve(&["text.*".to_string()]).unwrap();
        assert_eq!(tools.specs().len(), 2);
        let err = tools.call("text.stats", "{\"txt\": 1}").await.unwrap_err();
        assert!(err.0.contains("do not match"), "{err}");
        let err = tools.call("text.stats", "{oops").await.unwrap_err();
        assert!(err.0.contains("not valid JSON"), "{err}");
        let err = tools.call("nope", "{}").await.unwrap_err();
        assert!(err.0.contains("text.keywords, text.stats"), "{err}");
        let ok = tools
            .call("text.stats", "{\"text\": \"one two\"}")
            .await
            .unwrap();
        assert!(ok.contains("\"words\":2"), "{ok}");
        assert_eq!(
            r.resolve(&["web.*".to_string()]).err(),
            Some("web.*".into())
        );
    }
}
