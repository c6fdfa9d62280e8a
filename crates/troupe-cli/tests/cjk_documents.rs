//! End to end with a Chinese document: the prompts Troupe sends stay inside a small
//! `llm.context_window`, counted by a rule that is not the code under test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use troupe_testkit::{FakeServer, Reply};

const WINDOW: usize = 2048;
const ANSWER: usize = 128;
/// Role markers and separators a chat template adds around each message.
const PER_MESSAGE: usize = 8;

/// Han ideographs, kana, CJK punctuation and full-width forms.
fn is_cjk(c: char) -> bool {
    matches!(u32::from(c), 0x2E80..=0x9FFF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF)
}

/// Tokens of `text` by a rule independent of `troupe_docs::estimate_tokens`: one per CJK
/// character (what GPT-4's `cl100k_base` spends on Chinese; Gemma and `o200k_base` spend less),
/// and one per four characters of anything else (English runs at ~4.2).
fn tokens(text: &str) -> usize {
    let cjk = text.chars().filter(|&c| is_cjk(c)).count();
    let other = text.chars().count() - cjk;
    cjk + other.div_ceil(4)
}

/// Everything a request sends: each message's text and tool calls, and the tool definitions.
fn request_tokens(body: &Value) -> usize {
    let messages: usize = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            PER_MESSAGE
                + tokens(m["content"].as_str().unwrap_or(""))
                + m["tool_calls"].as_array().map_or(0, |calls| {
                    calls
                        .iter()
                        .map(|c| tokens(&c["function"].to_string()))
                        .sum()
                })
        })
        .sum();
    let tools = body["tools"]
        .as_array()
        .map_or(0, |t| t.iter().map(|t| tokens(&t.to_string())).sum());
    messages + tools
}

fn policy() -> std::path::PathBuf {
    repo().join("examples/documents/zh/data-protection-policy.md")
}

/// A crew over a 3 900-character Chinese policy, with a 2 048-token window: the extraction task
/// gets the document in its prompt and answers at length; the summary gets that answer as
/// context. No request the server sees exceeds the window
/// with room for the answer, and the prompt was cut to get there (so the check is not vacuous).
#[test]
fn no_request_over_a_chinese_document_exceeds_the_window() {
    let doc = std::fs::read_to_string(policy()).unwrap();
    // A long answer in Chinese: the policy's first 1 500 characters, as a model might quote it.
    let long_answer: String = doc.chars().take(1500).collect();
    // The summary is the report's body: it states one cited sentence of the policy.
    let cited = cited_statement(&policy());
    let server = FakeServer::start(move |r| {
        if r.is("Compliance analyst") {
            Reply::text(&long_answer)
        } else {
            Reply::text(&cited)
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "zh.json",
        &json!({
            "name": "zh-window",
            "llm": {"provider": "openai", "model": "m", "context_window": WINDOW, "max_tokens": ANSWER},
            "agents": [
                {"id": "analyst", "role": "Compliance analyst", "goal": "找出删除个人信息的义务"},
                {"id": "writer", "role": "Summary writer", "goal": "用中文写摘要"}
            ],
            "tasks": [
                {"id": "extract", "agent": "analyst", "for_each": "document",
                 "description": "列出本文件中关于删除个人信息的全部义务。\n\n{document_text}"},
                {"id": "summary", "agent": "writer", "context": ["extract"],
                 "description": "根据分析写一段摘要。"}
            ]
        }),
    );
    let out = tmp.path().join("out");
    let o = run_crew(
        &server.url,
        &crew,
        &out,
        &["--docs", policy().to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the extraction, the summary");
    for (i, body) in requests.iter().enumerate() {
        let n = request_tokens(body);
        assert!(
            n + ANSWER <= WINDOW,
            "request {i} takes {n} tokens + {ANSWER} for the answer, over the window of {WINDOW}"
        );
    }
    // The document was in the first prompt, cut to fit, and the cut is an event.
    let first = requests[0]["messages"][1]["content"].as_str().unwrap();
    assert!(first.contains("第一条"), "{first}");
    assert!(
        first.contains("left out to fit the context window"),
        "{first}"
    );
    let ev = events(&out);
    let cuts = of_type(&ev, "context_cut");
    assert!(
        cuts.iter()
            .any(|c| c["task"] == "extract[data-protection-policy.md]"
                && !c["dropped_chunks"].as_array().unwrap().is_empty()),
        "{cuts:#?}"
    );
    // The summary's context (the 1 500-character answer) was cut too, not sent whole.
    let summary = requests[1]["messages"][1]["content"].as_str().unwrap();
    assert!(!summary.contains(&doc.chars().take(1500).collect::<String>()));
    assert!(
        cuts.iter().any(|c| c["task"] == "summary"),
        "the context output was cut: {cuts:#?}"
    );
}
