//! The run's calls, written to the run store off the agents' path: an agent hands a call over
//! (the request as it is, not yet serialised) and goes on; one thread per run serialises,
//! hashes and writes whatever has arrived, one transaction per batch. The coordinator flushes
//! it before the run ends, so a finished run's store has every call.
//!
//! The thread holds no event sender (the event channel must be able to close): a failed write
//! is kept and handed to whoever flushes.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use troupe_llm::{ChatRequest, ChatResponse};
use troupe_store::{Call, RunStore};

use crate::recorded::request_hash;

/// A request as handed over: already serialised (a run with a recording serialises it to look
/// it up), or not yet.
pub enum RequestBody {
    Json(String),
    Chat(ChatRequest),
}

/// One call to record.
pub struct PendingCall {
    pub kind: &'static str,
    pub task: String,
    pub agent: String,
    pub request: RequestBody,
    /// The answer: a model response, or a tool's result; `Err` is the error's text.
    pub response: Result<Response, String>,
    pub duration_ms: u64,
}

pub enum Response {
    Chat(ChatResponse),
    Text(String),
}

enum Message {
    Call(Box<PendingCall>),
    Flush(Sender<Option<String>>),
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct CallWriter {
    tx: Sender<Message>,
}

impl CallWriter {
    /// Starts the writer of `run`'s calls. The thread ends when every sender is gone.
    pub fn start(store: Arc<dyn RunStore>, run: String) -> Self {
        let (tx, rx) = channel();
        std::thread::spawn(move || write_all(&*store, &run, &rx));
        Self { tx }
    }

    pub fn send(&self, call: PendingCall) {
        let _ = self.tx.send(Message::Call(Box::new(call)));
    }

    /// Waits until every call sent before is written; the first write error, if any.
    pub fn flush(&self) -> Option<String> {
        let (tx, rx) = channel();
        if self.tx.send(Message::Flush(tx)).is_err() {
            return Some("the call writer stopped".into());
        }
        rx.recv()
            .unwrap_or_else(|_| Some("the call writer stopped".into()))
    }
}

/// What a call is stored as: owned text.
struct Row {
    kind: &'static str,
    task: String,
    agent: String,
    sha: String,
    request: String,
    response: Option<String>,
    error: Option<String>,
    tokens: Option<(u64, u64)>,
    duration_ms: u64,
}

fn row(c: PendingCall) -> Row {
    let request = match c.request {
        RequestBody::Json(j) => j,
        RequestBody::Chat(r) => serde_json::to_string(&r).unwrap_or_default(),
    };
    let (response, error, tokens) = match c.response {
        Ok(Response::Chat(r)) => (
            serde_json::to_string(&r).ok(),
            None,
            Some((r.usage.input_tokens, r.usage.output_tokens)),
        ),
        Ok(Response::Text(t)) => (Some(t), None, None),
        Err(e) => (None, Some(e), None),
    };
    Row {
        kind: c.kind,
        task: c.task,
        agent: c.agent,
        sha: request_hash(&request),
        request,
        response,
        error,
        tokens,
        duration_ms: c.duration_ms,
    }
}

fn write_all(store: &dyn RunStore, run: &str, rx: &Receiver<Message>) {
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut rows = Vec::new();
        let mut flushes = Vec::new();
        for m in batch {
            match m {
                Message::Call(c) => rows.push(row(*c)),
                Message::Flush(reply) => flushes.push(reply),
            }
        }
        if !rows.is_empty() {
            let calls: Vec<Call<'_>> = rows
                .iter()
                .map(|r| Call {
                    kind: r.kind,
                    task: Some(&r.task),
                    agent: Some(&r.agent),
                    request_sha256: &r.sha,
                    request: &r.request,
                    response: r.response.as_deref(),
                    error: r.error.as_deref(),
                    input_tokens: r.tokens.map(|t| t.0),
                    output_tokens: r.tokens.map(|t| t.1),
                    duration_ms: r.duration_ms,
                })
                .collect();
            if let Err(e) = store.record_calls(run, &calls)
                && failed.is_none()
            {
                failed = Some(e.to_string());
            }
        }
        for reply in flushes {
            let _ = reply.send(failed.clone());
        }
    }
}
