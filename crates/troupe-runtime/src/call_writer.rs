//! The run's calls, written to the run store off the agents' path: an agent hands a call over
//! (the request as it is, not yet serialised) and goes on; the store's writer thread serialises,
//! hashes and writes it, committed with whatever else every run handed over meanwhile. The
//! coordinator flushes before the run ends, so a finished run's store has every call.
//!
//! Nothing here holds an event sender (the event channel must be able to close): a failed write
//! is kept and handed to whoever flushes.

use std::sync::{Arc, Mutex};

use troupe_llm::{ChatRequest, ChatResponse};
use troupe_store::{NewCall, RunStore};

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

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct CallWriter {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn RunStore>,
    run: String,
    /// The first failed write.
    failed: Mutex<Option<String>>,
}

impl Inner {
    fn failed(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CallWriter {
    /// The writer of `run`'s calls into `store`.
    pub fn start(store: Arc<dyn RunStore>, run: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                run,
                failed: Mutex::new(None),
            }),
        }
    }

    pub fn send(&self, call: PendingCall) {
        let inner = self.inner.clone();
        self.inner.store.record_calls_then(
            &self.inner.run,
            Box::new(move || vec![row(call)]),
            Box::new(move |r| {
                if let Err(e) = r {
                    inner.failed().get_or_insert_with(|| e.to_string());
                }
            }),
        );
    }

    /// Waits until every call sent before is written; the first write error, if any.
    pub async fn flush(&self) -> Option<String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.store.written_then(Box::new(move |_| {
            let _ = tx.send(());
        }));
        if rx.await.is_err() {
            return Some("the run store's writer stopped".into());
        }
        self.inner.failed().clone()
    }
}

/// What a call is stored as: owned text (made on the store's writer thread).
fn row(c: PendingCall) -> NewCall {
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
    NewCall {
        kind: c.kind.to_string(),
        task: Some(c.task),
        agent: Some(c.agent),
        request_sha256: request_hash(&request),
        request,
        response,
        error,
        input_tokens: tokens.map(|t| t.0),
        output_tokens: tokens.map(|t| t.1),
        duration_ms: c.duration_ms,
    }
}
