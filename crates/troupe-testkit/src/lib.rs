//! # troupe-testkit
//!
//! A fake OpenAI-compatible server for tests: it listens on `127.0.0.1:0`, answers
//! `POST /v1/chat/completions` with whatever a per-test script returns (answers, tool calls,
//! malformed arguments, errors with `Retry-After`, delays), and records every request and the
//! highest number of requests it was serving at once.
//!
//! It runs on its own thread and runtime, so tests may be plain `#[test]` functions that start the
//! `troupe` binary, as well as async ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// What the fake server answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this body (a full chat-completion object).
    Body(Value),
    /// Any status, with headers and a body.
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Wait, then answer.
    Delay(Duration, Box<Reply>),
    /// 200 with a body that starts like a chat completion and never ends (a hostile or broken
    /// server): 64 KiB chunks for as long as the client reads.
    Endless,
}

impl Reply {
    /// A final text answer.
    pub fn text(content: &str) -> Self {
        Self::Body(completion(
            json!({"role": "assistant", "content": content}),
            "stop",
        ))
    }

    /// A call of one tool with raw `arguments` text (which may be malformed on purpose).
    pub fn tool_call(name: &str, arguments: &str) -> Self {
        Self::tool_calls(&[(name, arguments)])
    }

    /// Several tool calls in one answer.
    pub fn tool_calls(calls: &[(&str, &str)]) -> Self {
        let calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (n, a))| {
                json!({"id": format!("call_{i}_{n}"), "type": "function",
                       "function": {"name": n, "arguments": a}})
            })
            .collect();
        Self::Body(completion(
            json!({"role": "assistant", "content": null, "tool_calls": calls}),
            "tool_calls",
        ))
    }

    /// An error status with a JSON error body like OpenAI's.
    pub fn error(code: u16, retry_after: Option<&str>) -> Self {
        Self::Status {
            code,
            headers: retry_after
                .map(|r| vec![("retry-after".to_string(), r.to_string())])
                .unwrap_or_default(),
            body: json!({"error": {"message": format!("fake error {code}"), "type": "fake", "param": null, "code": null}})
                .to_string(),
        }
    }

    /// A text answer with this `finish_reason` (e.g. `length`).
    pub fn text_finished(content: &str, finish: &str) -> Self {
        Self::Body(completion(
            json!({"role": "assistant", "content": content}),
            finish,
        ))
    }

    pub fn after(self, d: Duration) -> Self {
        Self::Delay(d, Box::new(self))
    }
}

fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A request as the script sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// 0-based arrival order.
    pub index: usize,
    pub body: Value,
}

impl Request {
    /// The system prompt (the agent's persona).
    pub fn system(&self) -> &str {
        self.messages()
            .iter()
            .find(|m| m["role"] == "system")
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
    }
    /// The first user message (the task prompt).
    pub fn task(&self) -> &str {
        self.messages()
            .iter()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
    }
    /// The last message's text.
    pub fn last(&self) -> &str {
        self.messages()
            .last()
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
    }
    pub fn messages(&self) -> &[Value] {
        self.body["messages"].as_array().map_or(&[], Vec::as_slice)
    }
    /// Tool results so far in this conversation, without the fence Troupe puts around them.
    pub fn tool_results(&self) -> Vec<&str> {
        self.messages()
            .iter()
            .filter(|m| m["role"] == "tool")
            .filter_map(|m| m["content"].as_str())
            .map(unfence)
            .collect()
    }
    /// Names of the tools offered.
    pub fn tool_names(&self) -> Vec<&str> {
        self.body["tools"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["function"]["name"].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Whether the prompt's persona is the given role (matches "You are <role>").
    pub fn is(&self, role: &str) -> bool {
        self.system().contains(&format!("You are {role}"))
    }
}

/// The text inside a fenced block (`<<<DATA <tag> <label>>>>` … `<<<END DATA <tag>>>>`), as
/// Troupe sends untrusted text; text without a fence as it is.
pub fn unfence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("<<<DATA ") else {
        return text;
    };
    let Some((_, body)) = rest.split_once(">>>\n") else {
        return text;
    };
    match body.rfind("\n<<<END DATA ") {
        Some(end) => &body[..end],
        None => body,
    }
}

struct Shared {
    handler: Box<Handler>,
    seen: Mutex<Vec<Value>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running fake server. Dropping it stops it.
pub struct FakeServer {
    /// Base URL to give as `llm.base_url` / `OPENAI_BASE_URL`, e.g. `http://127.0.0.1:4242/v1`.
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    /// Starts a server whose answers come from `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            seen: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/v1/chat/completions", post(chat))
                    .with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        Self {
            url: format!("http://{addr}/v1"),
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Every request body received, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The most requests that were in progress at the same moment.
    pub fn max_concurrency(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn chat(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad JSON: {e}")).into_response(),
    };
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let index = {
        let mut seen = shared.seen.lock().unwrap();
        seen.push(body.clone());
        seen.len() - 1
    };
    let reply = (shared.handler)(&Request { index, body });
    let resp = respond(reply).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    resp
}

async fn respond(mut reply: Reply) -> Response {
    loop {
        match reply {
            Reply::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
            Reply::Body(v) => return axum::Json(v).into_response(),
            Reply::Endless => {
                let start = Bytes::from_static(br#"{"id":"x","choices":[{"message":{"content":""#);
                let chunk = Bytes::from(vec![b'a'; 64 << 10]);
                let chunks = futures_util::stream::iter(
                    std::iter::once(start).chain(std::iter::repeat(chunk)),
                )
                .map(Ok::<Bytes, std::convert::Infallible>);
                let mut h = HeaderMap::new();
                h.insert("content-type", HeaderValue::from_static("application/json"));
                return (StatusCode::OK, h, axum::body::Body::from_stream(chunks)).into_response();
            }
            Reply::Status {
                code,
                headers,
                body,
            } => {
                let mut h = HeaderMap::new();
                h.insert("content-type", HeaderValue::from_static("application/json"));
                for (k, v) in headers {
                    h.insert(
                        HeaderName::try_from(k).unwrap(),
                        HeaderValue::try_from(v).unwrap(),
                    );
                }
                let status = StatusCode::from_u16(code).unwrap();
                return (status, h, body).into_response();
            }
        }
    }
}
