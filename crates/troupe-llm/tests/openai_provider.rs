//! The OpenAI-compatible provider against the fake server, over real HTTP.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use troupe_llm::openai::{OpenAiConfig, OpenAiModel};
use troupe_llm::retry::RetryPolicy;
use troupe_llm::{ChatModel, ChatRequest, LlmError, Message, OutputFormat, ToolSpec};
use troupe_testkit::{FakeServer, Reply};

fn model(url: &str, attempts: u32) -> OpenAiModel {
    model_capped(url, attempts, Duration::from_secs(2))
}

fn model_capped(url: &str, attempts: u32, max_wait: Duration) -> OpenAiModel {
    OpenAiModel::new(OpenAiConfig {
        base_url: url.to_string(),
        api_key: Some("sk-test".into()),
        model: "fake-model".into(),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: attempts,
            base: Duration::from_millis(10),
            max_wait,
        },
        limiter: None,
        max_response_bytes: 1 << 20,
    })
    .unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::system("You are a tester"), Message::user("hello")],
        tools: vec![ToolSpec {
            name: "text.stats".into(),
            description: "count words".into(),
            parameters: json!({"type": "object", "properties": {"text": {"type": "string"}}}),
        }],
        output: Some(OutputFormat {
            name: "answer".into(),
            schema: json!({"type": "object"}),
        }),
        require_tool: false,
        temperature: Some(0.2),
        max_tokens: Some(64),
    }
}

#[tokio::test]
async fn sends_the_openai_wire_format_and_reads_text_and_usage() {
    let server = FakeServer::start(|_| Reply::text("hi there"));
    let resp = model(&server.url, 1).chat(&request()).await.unwrap();
    assert_eq!(resp.content.as_deref(), Some("hi there"));
    assert_eq!(resp.usage.input_tokens, 100);
    assert_eq!(resp.usage.output_tokens, 20);
    let body = &server.requests()[0];
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["tools"][0]["function"]["name"], "text.stats");
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["stream"], false);
}

#[tokio::test]
async fn reads_tool_calls_keeping_malformed_arguments_verbatim() {
    let server = FakeServer::start(|_| {
        Reply::tool_calls(&[
            ("text.stats", "{\"text\": \"a b\"}"),
            ("text.stats", "{not json"),
        ])
    });
    let resp = model(&server.url, 1).chat(&request()).await.unwrap();
    assert_eq!(resp.tool_calls.len(), 2);
    assert_eq!(resp.tool_calls[0].arguments, "{\"text\": \"a b\"}");
    assert_eq!(resp.tool_calls[1].arguments, "{not json");
    assert_ne!(resp.tool_calls[0].id, resp.tool_calls[1].id);
}

/// The wait itself is timed on tokio's paused clock in `retry.rs`'s unit tests (real HTTP cannot
/// run on a paused clock: it would fire the request timeout); here, what the wire gave the loop.
#[tokio::test]
async fn retries_429_honouring_retry_after_then_succeeds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let server = FakeServer::start(move |_| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::error(429, Some("1"))
        } else {
            Reply::text("ok")
        }
    });
    let resp = model(&server.url, 3).chat(&request()).await.unwrap();
    assert_eq!(resp.content.as_deref(), Some("ok"));
    assert_eq!(resp.retries.len(), 1);
    assert_eq!(resp.retries[0].reason, "429");
    assert!(
        resp.retries[0].retry_after,
        "the wait came from Retry-After"
    );
    assert_eq!(resp.retries[0].wait_ms, 1000);
    assert_eq!(resp.retries[0].retry_after_ms, Some(1000));
    assert!(!resp.retries[0].capped);
    assert_eq!(server.requests().len(), 2);
}

/// A `Retry-After` longer than the cap is cut to the cap, and the retry says so.
#[tokio::test]
async fn a_retry_after_over_the_cap_is_capped_visibly() {
    let server = FakeServer::start(|r| {
        if r.index == 0 {
            Reply::error(503, Some("3600"))
        } else {
            Reply::text("ok")
        }
    });
    let m = model_capped(&server.url, 2, Duration::from_millis(50));
    let resp = m.chat(&request()).await.unwrap();
    assert_eq!(resp.content.as_deref(), Some("ok"));
    let r = &resp.retries[0];
    assert_eq!(r.wait_ms, 50);
    assert_eq!(r.retry_after_ms, Some(3_600_000));
    assert!(r.capped);
}

/// A call that fails after its retries has no response to carry them: `observe` still sees each.
#[tokio::test]
async fn the_retries_of_a_call_that_fails_are_observed() {
    let server = FakeServer::start(|_| Reply::error(500, Some("0")));
    let m = model(&server.url, 3);
    let (result, retries) = troupe_llm::retry::observe(m.chat(&request())).await;
    assert!(
        matches!(
            result,
            Err(LlmError::Api {
                status: 500,
                attempts: 3,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(
        retries
            .iter()
            .map(|r| (r.attempt, r.reason.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "500"), (2, "500")]
    );
}

/// `http://host:port` without `/v1` answers 404 on `/chat/completions`: the error says to add it.
#[tokio::test]
async fn a_404_from_a_base_url_without_v1_hints_at_it() {
    let server = FakeServer::start(|_| Reply::text("unreachable"));
    let bare = server.url.trim_end_matches("/v1").to_string();
    let err = model(&bare, 3).chat(&request()).await.unwrap_err();
    match &err {
        LlmError::Api {
            status: 404,
            attempts: 1,
            hint: Some(hint),
            ..
        } => assert!(hint.contains(&format!("`{bare}/v1`")), "{hint}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("\n  hint: the base URL"), "{err}");
    assert!(
        server.requests().is_empty(),
        "the server never saw a chat request"
    );
}

/// A 404 from a `/v1` URL (an unknown model, say) is the server's word alone: no `/v1` hint.
#[tokio::test]
async fn a_404_from_a_v1_url_has_no_such_hint() {
    let server = FakeServer::start(|_| Reply::error(404, None));
    let err = model(&server.url, 3).chat(&request()).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Api { status: 404, hint: None, message, .. } if message == "fake error 404"),
        "{err:?}"
    );
}

#[tokio::test]
async fn gives_up_after_max_attempts_on_5xx() {
    let server = FakeServer::start(|_| Reply::error(500, None));
    let err = model(&server.url, 3).chat(&request()).await.unwrap_err();
    match err {
        LlmError::Api {
            status, attempts, ..
        } => {
            assert_eq!(status, 500);
            assert_eq!(attempts, 3);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn does_not_retry_a_client_error() {
    let server = FakeServer::start(|_| Reply::error(400, None));
    let err = model(&server.url, 4).chat(&request()).await.unwrap_err();
    assert!(
        matches!(
            err,
            LlmError::Api {
                status: 400,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn retries_connection_errors_then_reports_them() {
    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = model(&format!("http://127.0.0.1:{port}/v1"), 2)
        .chat(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Connection { attempts: 2, .. }),
        "{err:?}"
    );
}

/// llama.cpp's Python server takes `response_format` of type `text` or `json_object` only, and
/// says so with a 500 and a validation message.
fn llama_cpp_python_rejection() -> Reply {
    Reply::Status {
        code: 500,
        headers: vec![],
        body: json!({"error": {
            "message": "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}]",
            "type": "internal_server_error", "param": null, "code": null}})
        .to_string(),
    }
}

/// A server that rejects `json_schema` is asked again at once with `json_object` and the schema
/// in the system prompt — the rejection is not retried as if it were an outage — and the model
/// keeps the form that worked for its later calls.
#[tokio::test]
async fn a_rejected_json_schema_falls_back_to_json_object_once() {
    let server = FakeServer::start(|req| match req.body["response_format"]["type"].as_str() {
        Some("json_schema") => llama_cpp_python_rejection(),
        _ => Reply::text(r#"{"ok": true}"#),
    });
    let model = model(&server.url, 4);
    let resp = model.chat(&request()).await.unwrap();
    assert_eq!(resp.content.as_deref(), Some(r#"{"ok": true}"#));
    assert_eq!(resp.fallbacks.len(), 1, "{:?}", resp.fallbacks);
    let f = &resp.fallbacks[0];
    assert_eq!(
        (f.feature.as_str(), f.from.as_str(), f.to.as_str()),
        ("structured_output", "json_schema", "json_object")
    );
    assert!(f.reason.starts_with("HTTP 500: ") && f.reason.contains("json_object"));
    assert!(resp.retries.is_empty(), "{:?}", resp.retries);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "the rejection was not sent again");
    assert_eq!(reqs[1]["response_format"]["type"], "json_object");
    assert_eq!(
        reqs[1]["response_format"]["schema"],
        json!({"type": "object"})
    );
    let system = reqs[1]["messages"][0]["content"].as_str().unwrap();
    assert!(system.starts_with("You are a tester\n\n"), "{system}");
    assert!(system.contains("conform to this JSON Schema"), "{system}");
    // The next call goes straight to the form that works, and says nothing new.
    let again = model.chat(&request()).await.unwrap();
    assert!(again.fallbacks.is_empty());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[2]["response_format"]["type"], "json_object");
    // A request without an output schema is untouched by what was learned.
    let plain = ChatRequest {
        output: None,
        ..request()
    };
    model.chat(&plain).await.unwrap();
    let reqs = server.requests();
    assert!(reqs[3].get("response_format").is_none(), "{}", reqs[3]);
    assert_eq!(reqs[3]["messages"][0]["content"], "You are a tester");
}

/// A server that takes no `response_format` at all (a 400 that names it) ends with the schema
/// in the prompt only; an unrelated server error is still retried.
#[tokio::test]
async fn a_server_without_response_format_gets_the_schema_in_the_prompt() {
    let server = FakeServer::start(|req| {
        if req.body.get("response_format").is_some() {
            Reply::Status {
                code: 400,
                headers: vec![],
                body: json!({"error": {"message": "Unrecognized request argument: response_format", "type": "invalid_request_error", "param": "response_format", "code": null}}).to_string(),
            }
        } else {
            Reply::text(r#"{"ok": true}"#)
        }
    });
    let resp = model(&server.url, 4).chat(&request()).await.unwrap();
    let steps: Vec<(&str, &str)> = resp
        .fallbacks
        .iter()
        .map(|f| (f.from.as_str(), f.to.as_str()))
        .collect();
    assert_eq!(
        steps,
        [("json_schema", "json_object"), ("json_object", "prompt")]
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs[2].get("response_format").is_none());
    assert!(
        reqs[2]["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("\"type\":\"object\""),
        "{}",
        reqs[2]
    );

    let flaky = Arc::new(AtomicUsize::new(0));
    let seen = flaky.clone();
    let server = FakeServer::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::error(500, None)
        } else {
            Reply::text(r#"{"ok": true}"#)
        }
    });
    let resp = model(&server.url, 4).chat(&request()).await.unwrap();
    assert_eq!(resp.retries.len(), 1, "an outage is retried");
    assert!(resp.fallbacks.is_empty());
    assert_eq!(
        server.requests()[1]["response_format"]["type"],
        "json_schema"
    );
}
