//! A model that answers from a script: for tests of the layers above, and for dry runs.

use std::sync::Mutex;

use crate::model::BoxFuture;
use crate::{ChatModel, ChatRequest, ChatResponse, LlmError, ToolCall, Usage};

type Script = dyn Fn(&ChatRequest) -> Result<ChatResponse, LlmError> + Send + Sync;

/// Answers each request with a function of it, and records every request it saw.
pub struct ScriptedModel {
    script: Box<Script>,
    seen: Mutex<Vec<ChatRequest>>,
    record: bool,
}

impl ScriptedModel {
    pub fn new(
        script: impl Fn(&ChatRequest) -> Result<ChatResponse, LlmError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            script: Box::new(script),
            seen: Mutex::new(Vec::new()),
            record: true,
        }
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
            let answer = (self.script)(request);
            if self.record
                && let Ok(mut s) = self.seen.lock()
            {
                s.push(request.clone());
            }
            answer
        })
    }

    fn name(&self) -> String {
        "scripted".into()
    }
}
