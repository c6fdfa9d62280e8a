//! Any OpenAI-compatible chat API (OpenAI, Azure-compatible gateways, Ollama, vLLM, llama.cpp
//! server, LM Studio, OpenRouter, Groq, …) through async-openai.
//!
//! async-openai provides the client, configuration, HTTP execution and error decoding. Requests and
//! responses go through its "bring your own types" entry point with the private, tolerant wire
//! structs below: OpenAI-compatible servers differ in small ways (missing `object`/`created`,
//! arguments as an object instead of a string, absent tool-call ids) that strict typed decoding
//! rejects, and a run should not fail on them.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::BoxFuture;
use crate::retry::{
    Attempt, CallLog, RETRY_LOG, RateLimiter, RetryPolicy, log_failure, log_status, retry_after,
    retryable, retrying,
};
use crate::{
    ChatModel, ChatRequest, ChatResponse, LlmError, Message, OutputFormat, ProviderFallback, Retry,
    ToolCall, Usage,
};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Settings of one OpenAI-compatible endpoint + model.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Shared limiter, when the endpoint has a requests-per-minute cap.
    pub limiter: Option<Arc<RateLimiter>>,
    /// Largest response body read (`llm.max_response_kb`): a server that never ends its body,
    /// or sends far more than any answer needs, is cut off here instead of filling memory.
    pub max_response_bytes: usize,
}

/// The cap on a response body when the crew sets none: a generous 64 bytes per token of the
/// answer cap (JSON escaping, tool-call arguments and the envelope included), at least 1 MiB.
pub fn default_max_response_bytes(max_tokens: Option<u32>) -> usize {
    (max_tokens.unwrap_or(16_384) as usize)
        .saturating_mul(64)
        .max(1 << 20)
}

/// The OpenAI-compatible provider.
pub struct OpenAiModel {
    client: async_openai::Client<OpenAIConfig>,
    model: String,
    timeout: Duration,
    base_url: String,
    /// How this endpoint takes a JSON Schema for the answer (a [`Structured`]), learned from its
    /// rejections: only ever steps down.
    structured: AtomicU8,
}

/// How an endpoint is asked for an answer that follows a JSON Schema, best first. A server that
/// rejects the form in use gets the next one, for this call and the model's later calls; the
/// answer is checked against the schema (with feedback to the model) whichever form is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Structured {
    /// `response_format: {"type": "json_schema", …}`: the server constrains the answer.
    JsonSchema = 0,
    /// `response_format: {"type": "json_object", "schema": …}` (servers that take a schema there
    /// use it; the others still return JSON), and the schema in the system prompt.
    JsonObject = 1,
    /// The schema in the system prompt only.
    Prompt = 2,
}

impl Structured {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Structured::JsonSchema,
            1 => Structured::JsonObject,
            _ => Structured::Prompt,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Structured::JsonSchema => "json_schema",
            Structured::JsonObject => "json_object",
            Structured::Prompt => "prompt",
        }
    }

    fn next(self) -> Option<Self> {
        match self {
            Structured::JsonSchema => Some(Structured::JsonObject),
            Structured::JsonObject => Some(Structured::Prompt),
            Structured::Prompt => None,
        }
    }
}

/// Whether an error answer rejects the request's `response_format`, rather than failing for
/// another reason: a client error (400, 422), or a server's validation error (llama.cpp's Python
/// server answers 500 "Input should be 'text' or 'json_object'"), that names it. Never guessed
/// from the model's name.
fn rejects_output_format(status: u16, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    matches!(status, 400 | 422 | 500 | 501)
        && ["response_format", "json_schema", "json_object"]
            .iter()
            .any(|w| m.contains(w))
}

/// Whether the body of a 5xx answer is the server rejecting the request as invalid (a
/// validation error), which sending it again cannot change: it is not retried.
fn rejects_request(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).to_ascii_lowercase();
    [
        "validation error",
        "input should be",
        "response_format",
        "json_schema",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// What the system prompt says when the server does not constrain the answer to the schema.
fn schema_instruction(output: &OutputFormat) -> String {
    format!(
        "Answer with one JSON object and nothing else (no prose, no code fence). It must conform \
         to this JSON Schema:\n{}",
        output.schema
    )
}

impl OpenAiModel {
    pub fn new(cfg: OpenAiConfig) -> Result<Self, LlmError> {
        let http = shared_http().map_err(|e| LlmError::Config {
            message: format!("cannot build the HTTP client: {e}"),
            hint: "this is a bug in Troupe; please report it".into(),
        })?;
        let timeout = cfg.timeout;
        let base_url = cfg.base_url.trim_end_matches('/').to_string();
        let mut config = OpenAIConfig::new().with_api_base(&base_url);
        config = config.with_api_key(cfg.api_key.clone().unwrap_or_default());
        let policy = Arc::new(cfg.retry.clone());
        let limiter = cfg.limiter.clone();
        let cap = cfg.max_response_bytes;
        let sender = http.clone();
        let service = tower::service_fn(move |factory: HttpRequestFactory| {
            send_with_retries(
                sender.clone(),
                factory,
                timeout,
                policy.clone(),
                limiter.clone(),
                cap,
            )
        });
        // `build` with the shared client: `with_config` would make (and load the TLS roots of)
        // a client of its own that no request uses.
        let client = async_openai::Client::build(http, config).with_http_service(service);
        Ok(Self {
            client,
            model: cfg.model,
            timeout: cfg.timeout,
            base_url,
            structured: AtomicU8::new(Structured::JsonSchema as u8),
        })
    }
}

/// The HTTP client every OpenAI-compatible model of the process shares: one connection pool,
/// and the TLS roots loaded once, not per model of every run (a server starting a thousand runs
/// would otherwise build two thousand clients). Timeouts are set per request.
fn shared_http() -> Result<reqwest::Client, String> {
    static HTTP: std::sync::OnceLock<Result<reqwest::Client, String>> = std::sync::OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())
    })
    .clone()
}

/// Sends one request, retrying 429/408/5xx and connection errors with backoff (or the server's
/// `Retry-After`, capped), each attempt through the rate limiter. The answer's body is read here,
/// up to `cap` bytes.
async fn send_with_retries(
    http: reqwest::Client,
    factory: HttpRequestFactory,
    timeout: Duration,
    policy: Arc<RetryPolicy>,
    limiter: Option<Arc<RateLimiter>>,
    cap: usize,
) -> Result<reqwest::Response, OpenAIError> {
    let (http, factory) = (&http, &factory);
    retrying(&policy, limiter.as_deref(), move |_| async move {
        let mut request = match factory.build().await {
            Ok(r) => r,
            Err(e) => return Attempt::Done(Err(e)),
        };
        *request.timeout_mut() = Some(timeout);
        match http.execute(request).await {
            Ok(resp) => {
                let status = resp.status();
                log_status((!status.is_success()).then_some(status.as_u16()));
                if retryable(status) {
                    let retry_after = retry_after(resp.headers());
                    match read_capped(resp, cap).await {
                        // A server error that says the request is invalid: the same request
                        // would be refused again.
                        Ok((resp, rejected)) if rejected => Attempt::Done(Ok(resp)),
                        last => Attempt::Retry {
                            reason: status.as_u16().to_string(),
                            retry_after,
                            last: last.map(|(resp, _)| resp),
                        },
                    }
                } else {
                    Attempt::Done(read_capped(resp, cap).await.map(|(resp, _)| resp))
                }
            }
            Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => Attempt::Retry {
                reason: error_chain(&e),
                retry_after: None,
                last: Err(OpenAIError::Reqwest(e)),
            },
            Err(e) => Attempt::Done(Err(OpenAIError::Reqwest(e))),
        }
    })
    .await
}

/// The response with its whole body read, refused past `cap` bytes (the failure is logged for
/// the call, so that it maps to a typed error), and whether the body rejects the request as
/// invalid ([`rejects_request`]).
async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<(reqwest::Response, bool), OpenAIError> {
    let too_large = || {
        log_failure(LlmError::ResponseTooLarge { limit_bytes: cap });
        OpenAIError::InvalidArgument(format!("the response is larger than {cap} bytes"))
    };
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut builder = http::Response::builder()
        .status(resp.status())
        .version(resp.version());
    if let Some(h) = builder.headers_mut() {
        *h = resp.headers().clone();
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(OpenAIError::Reqwest)? {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let rejected = rejects_request(&body);
    builder
        .body(body)
        .map(|b| (reqwest::Response::from(b), rejected))
        .map_err(|e| OpenAIError::InvalidArgument(e.to_string()))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

impl ChatModel for OpenAiModel {
    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        Box::pin(async move {
            let mut fallbacks = Vec::new();
            loop {
                let form = Structured::from_u8(self.structured.load(Ordering::Relaxed));
                let result = self.send(request, form).await;
                if let Err(LlmError::Api {
                    status, message, ..
                }) = &result
                    && request.output.is_some()
                    && rejects_output_format(*status, message)
                    && let Some(next) = form.next()
                {
                    // Calls running at once may have stepped down already: never back up.
                    self.structured.fetch_max(next as u8, Ordering::Relaxed);
                    let message: String = message.chars().take(300).collect();
                    fallbacks.push(ProviderFallback {
                        feature: "structured_output".into(),
                        from: form.name().into(),
                        to: next.name().into(),
                        reason: format!("HTTP {status}: {message}"),
                    });
                    continue;
                }
                return result.map(|mut r| {
                    r.fallbacks = fallbacks;
                    r
                });
            }
        })
    }

    fn name(&self) -> String {
        format!("openai:{}", self.model)
    }
}

impl OpenAiModel {
    /// One request in the structured-output form `form`, with the provider's retries.
    async fn send(
        &self,
        request: &ChatRequest,
        form: Structured,
    ) -> Result<ChatResponse, LlmError> {
        let instruction = request
            .output
            .as_ref()
            .filter(|_| form != Structured::JsonSchema)
            .map(schema_instruction);
        let wire = WireRequest::from_request(&self.model, request, form, instruction.as_deref());
        let log = Arc::new(Mutex::new(CallLog::default()));
        let result: Result<WireResponse, OpenAIError> = RETRY_LOG
            .scope(log.clone(), self.client.chat().create_byot(wire))
            .await;
        let (retries, failure, status) = log
            .lock()
            .map(|mut l| (l.retries.clone(), l.failure.take(), l.status))
            .unwrap_or_default();
        let attempts = u32::try_from(retries.len()).unwrap_or(u32::MAX) + 1;
        match (result, failure) {
            (Ok(resp), _) => resp.into_response(retries),
            (Err(_), Some(failure)) => Err(failure),
            (Err(e), None) => Err(self.map_error(e, attempts, status)),
        }
    }

    /// The typed error for a failed call; `status` is the last answer's HTTP status when it was
    /// not a success (the client library drops it when the body is not an OpenAI error object).
    fn map_error(&self, e: OpenAIError, attempts: u32, status: Option<u16>) -> LlmError {
        let api = |status: u16, message: String| LlmError::Api {
            status,
            message,
            attempts,
            hint: (status == 404)
                .then(|| not_found_hint(&self.base_url))
                .flatten(),
        };
        match e {
            OpenAIError::ApiError(r) => api(r.status_code.as_u16(), r.api_error.message),
            OpenAIError::Reqwest(e) if e.is_timeout() => LlmError::Timeout {
                seconds: self.timeout.as_secs_f64(),
                attempts,
            },
            OpenAIError::Reqwest(e) if e.is_body() || e.is_decode() => LlmError::Decode(format!(
                "the response body could not be read: {}",
                error_chain(&e)
            )),
            OpenAIError::Reqwest(e) => LlmError::Connection {
                message: error_chain(&e),
                attempts,
            },
            OpenAIError::JSONDeserialize(e, body) => {
                let body: String = body.chars().take(300).collect();
                match status {
                    // An error status whose body is not an OpenAI error object (a plain 404 page).
                    Some(status) if body.trim().is_empty() => api(status, "(empty body)".into()),
                    Some(status) => api(status, body),
                    None => LlmError::Decode(format!("{e} (body starts: {body})")),
                }
            }
            other => LlmError::Other(other.to_string()),
        }
    }
}

/// A 404 from a base URL with no version segment is almost always a missing `/v1`: servers
/// (OpenAI, Ollama, vLLM, llama.cpp, LM Studio) serve `…/v1/chat/completions`.
fn not_found_hint(base_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(base_url).ok()?;
    let versioned = url.path_segments().is_some_and(|mut segs| {
        segs.any(|s| {
            s.len() > 1 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_digit())
        })
    });
    (!versioned).then(|| {
        format!(
            "the base URL `{base_url}` has no `/v1`; OpenAI-compatible servers answer under it: \
             set `llm.base_url` (or `OPENAI_BASE_URL`) to `{base_url}/v1`"
        )
    })
}

// ---- wire format (private) ----

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    stream: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

impl<'a> WireRequest<'a> {
    /// The wire request; `instruction` (the schema, for a server that does not take it in
    /// `response_format`) ends the first system message, or is one when there is none.
    fn from_request(
        model: &'a str,
        r: &'a ChatRequest,
        form: Structured,
        instruction: Option<&'a str>,
    ) -> Self {
        let mut instruction = instruction;
        let mut messages: Vec<WireMessage<'a>> = r
            .messages
            .iter()
            .map(|m| match m {
                Message::System { content } => WireMessage {
                    role: "system",
                    content: Some(match instruction.take() {
                        Some(i) => Cow::Owned(format!("{content}\n\n{i}")),
                        None => Cow::Borrowed(content.as_str()),
                    }),
                    tool_calls: vec![],
                    tool_call_id: None,
                },
                Message::User { content } => WireMessage {
                    role: "user",
                    content: Some(Cow::Borrowed(content.as_str())),
                    tool_calls: vec![],
                    tool_call_id: None,
                },
                Message::Assistant {
                    content,
                    tool_calls,
                } => WireMessage {
                    role: "assistant",
                    content: content.as_deref().map(Cow::Borrowed),
                    tool_calls: tool_calls
                        .iter()
                        .map(|c| {
                            serde_json::json!({
                                "id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments}
                            })
                        })
                        .collect(),
                    tool_call_id: None,
                },
                Message::Tool { call_id, content } => WireMessage {
                    role: "tool",
                    content: Some(Cow::Borrowed(content.as_str())),
                    tool_calls: vec![],
                    tool_call_id: Some(call_id),
                },
            })
            .collect();
        if let Some(i) = instruction {
            messages.insert(
                0,
                WireMessage {
                    role: "system",
                    content: Some(Cow::Borrowed(i)),
                    tool_calls: vec![],
                    tool_call_id: None,
                },
            );
        }
        let tools = r
            .tools
            .iter()
            .map(|t| {
                serde_json::json!({
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters}
                })
            })
            .collect();
        let response_format = r.output.as_ref().and_then(|o| match form {
            Structured::JsonSchema => Some(serde_json::json!({
                "type": "json_schema",
                "json_schema": {"name": o.name, "schema": o.schema, "strict": false}
            })),
            Structured::JsonObject => Some(serde_json::json!({
                "type": "json_object",
                "schema": o.schema
            })),
            Structured::Prompt => None,
        });
        Self {
            model,
            messages,
            tools,
            tool_choice: (r.require_tool && !r.tools.is_empty()).then_some("required"),
            response_format,
            temperature: r.temperature,
            max_tokens: r.max_tokens,
            stream: false,
        }
    }
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireOutMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireOutMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<WirePromptDetails>,
}

#[derive(Deserialize)]
struct WirePromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl WireResponse {
    fn into_response(self, retries: Vec<Retry>) -> Result<ChatResponse, LlmError> {
        let Some(choice) = self.choices.into_iter().next() else {
            return Err(LlmError::Decode("the answer has no `choices`".into()));
        };
        let msg = choice.message.unwrap_or(WireOutMessage {
            content: None,
            tool_calls: None,
        });
        let tool_calls = msg
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: c
                    .id
                    .filter(|s| !s.is_empty())
                    .unwrap_or(format!("call_{i}")),
                name: c.function.name,
                arguments: match c.function.arguments {
                    Value::String(s) => s,
                    Value::Null => "{}".into(),
                    other => other.to_string(),
                },
            })
            .collect();
        let usage = self.usage.map_or(Usage::default(), |u| Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cached_input_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
        });
        Ok(ChatResponse {
            content: msg.content.filter(|c| !c.is_empty()),
            tool_calls,
            usage,
            finish_reason: choice.finish_reason,
            retries,
            fallbacks: Vec::new(),
        })
    }
}
