//! A model that answers from a script: for tests of the layers above, and for dry runs.
//!
//! An answer can take time ([`ScriptedModel::with_latency`]): a `tokio::time::sleep`, so that
//! tests run it on tokio's paused clock and show concurrency, timeouts and cancellation without
//! a wall clock. The model counts the calls in progress and the most there were at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::model::BoxFuture;
use crate::{ChatModel, ChatRequest, ChatResponse, LlmError, ToolCall, Usage};

type Script = dyn Fn(&ChatRequest) -> Result<ChatResponse, LlmError> + Send + Sync;
type Latency = dyn Fn(&ChatRequest) -> Duration + Send + Sync;

/// Answers each request with a function of it, and records every request it saw.
pub struct ScriptedModel {
    script: Box<Script>,
    latency: Option<Box<Latency>>,
    seen: Mutex<Vec<ChatRequest>>,
    record: bool,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    context_window: Option<u32>,
}

/// Counts a call in progress until it ends, answered or dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ScriptedModel {
    pub fn new(
        script: impl Fn(&ChatRequest) -> Result<ChatResponse, LlmError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            script: Box::new(script),
            latency: None,
            seen: Mutex::new(Vec::new()),
            record: true,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            context_window: None,
        }
    }

    /// Each answer takes `latency(request)` on tokio's clock (paused in tests) before it is given.
    pub fn with_latency(
        mut self,
        latency: impl Fn(&ChatRequest) -> Duration + Send + Sync + 'static,
    ) -> Self {
        self.latency = Some(Box::new(latency));
        self
    }

    /// The context window the model reports.
    pub fn with_context_window(mut self, tokens: u32) -> Self {
        self.context_window = Some(tokens);
        self
    }

    /// Calls in progress now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most calls that were in progress at the same moment.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Does not keep the requests (for benchmarks, where copying them would dominate).
    pub fn without_recording(mut self) -> Self {
        self.record = false;
        self
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// A plain text answer with a token count of 10 in, 5 out.
pub fn text(s: impl Into<String>) -> ChatResponse {
    ChatResponse {
        content: Some(s.into()),
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Default::default()
        },
        finish_reason: Some("stop".into()),
        ..Default::default()
    }
}

/// An answer that calls one tool.
pub fn tool_call(name: &str, arguments: &str) -> ChatResponse {
    ChatResponse {
        tool_calls: vec![ToolCall {
            id: format!("call_{name}"),
            name: name.into(),
            arguments: arguments.into(),
        }],
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Default::default()
        },
        finish_reason: Some("tool_calls".into()),
        ..Default::default()
    }
}

impl ChatModel for ScriptedModel {
    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            let _in_flight = InFlight(&self.in_flight);
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            // Recorded on arrival, so that a test sees a call that is still in progress.
            if self.record
                && let Ok(mut s) = self.seen.lock()
            {
                s.push(request.clone());
            }
            if let Some(latency) = &self.latency {
                tokio::time::sleep(latency(request)).await;
            }
            (self.script)(request)
        })
    }

    fn name(&self) -> String {
        "scripted".into()
    }

    fn context_window(&self) -> Option<u32> {
        self.context_window
    }
}
