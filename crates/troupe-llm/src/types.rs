//! Provider-neutral chat types. Provider wire formats stay private to each provider module.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        call_id: String,
        content: String,
    },
}

impl Message {
    pub fn system(s: impl Into<String>) -> Self {
        Self::System { content: s.into() }
    }
    pub fn user(s: impl Into<String>) -> Self {
        Self::User { content: s.into() }
    }
}

/// A tool call the model asked for. `arguments` is the raw JSON text the model produced, which
/// may be malformed: the caller parses it and reports a bad one back to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// A structured-output request: the final answer must be JSON matching `schema`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFormat {
    pub name: String,
    pub schema: Value,
}

/// One model call. Serialised as the run store records it (and matches it on resume).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub output: Option<OutputFormat>,
    /// The model must call one of `tools` rather than answer (OpenAI's `tool_choice: required`).
    pub require_tool: bool,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

/// Tokens of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of `input_tokens`, those served from a cache instead of computed again: the embedded
    /// model's reused KV prefix, an API's cached prompt tokens (OpenAI's
    /// `prompt_tokens_details.cached_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_input_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Self) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cached_input_tokens += o.cached_input_tokens;
    }
}

/// A retry the provider made before the call succeeded or gave up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// Why: `429`, `503`, `connection refused`, …
    pub reason: String,
    /// How long the provider waited before the next attempt.
    pub wait_ms: u64,
    /// Whether the wait came from the server's `Retry-After` header.
    pub retry_after: bool,
    /// The wait the server asked for in `Retry-After`, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Whether the wait asked for was longer than the policy's cap, so `wait_ms` is the cap.
    #[serde(default)]
    pub capped: bool,
}

/// A form of request the endpoint rejected, and the form the model uses instead from then on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderFallback {
    /// What degraded: `structured_output`.
    pub feature: String,
    /// The form rejected (`json_schema`, `json_object`).
    pub from: String,
    /// The form used instead (`json_object`, `prompt`).
    pub to: String,
    /// The server's rejection: its status and message, shortened.
    pub reason: String,
}

/// The model's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub finish_reason: Option<String>,
    /// Retries made for this call (empty when the first attempt succeeded).
    pub retries: Vec<Retry>,
    /// Forms of request the endpoint rejected during this call, each learned once per model
    /// (not recorded: a replayed answer made no request).
    #[serde(skip)]
    pub fallbacks: Vec<ProviderFallback>,
}
