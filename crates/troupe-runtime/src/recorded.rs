//! Every model call of a stored run, recorded: the request (and its SHA-256, by which a resumed
//! run will find it), the response or the error, the tokens and the time it took.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};
use troupe_llm::{BoxFuture, ChatModel, ChatRequest, ChatResponse, LlmError};
use troupe_store::{Call, Store};

use crate::events::{EventKind, Events};

/// The run a call belongs to, and where it is recorded.
#[derive(Clone)]
pub struct Recorder {
    pub store: Arc<Store>,
    pub run: String,
    pub events: Events,
    /// Whether a failed write was already reported (once per run, not once per call).
    warned: Arc<AtomicBool>,
}

impl Recorder {
    pub fn new(store: Arc<Store>, run: String, events: Events) -> Self {
        Self {
            store,
            run,
            events,
            warned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Reports a failed write once: the run goes on (its output directory is still written),
    /// but the store will not have all of it.
    pub fn failed(&self, what: &str, e: &troupe_store::StoreError) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            self.events.emit(EventKind::Warning {
                task: None,
                message: format!(
                    "the run store `{}` could not record {what}: {e}; the output directory is complete, the store is not",
                    self.store.path().display()
                ),
            });
        }
    }
}

/// The SHA-256 of a request as recorded, hex.
pub fn request_hash(request_json: &str) -> String {
    let digest = Sha256::digest(request_json.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A model whose every call is recorded in the run store.
pub struct Recorded {
    pub inner: Arc<dyn ChatModel>,
    pub recorder: Recorder,
    pub agent: String,
}

impl ChatModel for Recorded {
    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.chat(request).await;
            let request_json = serde_json::to_string(request).unwrap_or_default();
            let (response, error, usage) = match &result {
                Ok(r) => (serde_json::to_string(r).ok(), None, Some(r.usage)),
                Err(e) => (None, Some(e.to_string()), None),
            };
            let call = Call {
                kind: "model",
                task: None,
                agent: Some(&self.agent),
                request_sha256: &request_hash(&request_json),
                request: &request_json,
                response: response.as_deref(),
                error: error.as_deref(),
                input_tokens: usage.map(|u| u.input_tokens),
                output_tokens: usage.map(|u| u.output_tokens),
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
            if let Err(e) = self.recorder.store.record_call(&self.recorder.run, &call) {
                self.recorder.failed("a model call", &e);
            }
            result
        })
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    fn context_window(&self) -> Option<u32> {
        self.inner.context_window()
    }

    fn constrained_decoding(&self) -> bool {
        self.inner.constrained_decoding()
    }
}
