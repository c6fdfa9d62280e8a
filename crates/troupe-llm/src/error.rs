//! Errors of model calls.

/// Why a model call failed (after any retries).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("the model endpoint answered HTTP {status} after {attempts} attempt(s): {message}{}", hint.as_ref().map_or(String::new(), |h| format!("\n  hint: {h}")))]
    Api {
        status: u16,
        message: String,
        attempts: u32,
        /// What to change, when the status says it (a 404 from a base URL without `/v1`).
        hint: Option<String>,
    },
    #[error("cannot reach the model endpoint after {attempts} attempt(s): {message}")]
    Connection { message: String, attempts: u32 },
    /// The answer did not arrive in time (`llm.timeout_s`): the endpoint was reached.
    #[error(
        "the model endpoint did not finish its answer within {seconds} s (`llm.timeout_s`) after {attempts} attempt(s)"
    )]
    Timeout { seconds: f64, attempts: u32 },
    /// The response body grew past the cap (`llm.max_response_kb`); the rest was not read.
    #[error("the model endpoint's response is larger than {} KiB (`llm.max_response_kb`); it was not read further", limit_bytes >> 10)]
    ResponseTooLarge { limit_bytes: usize },
    #[error("the model endpoint sent an answer Troupe cannot read: {0}")]
    Decode(String),
    #[error("{message}\n  hint: {hint}")]
    Config { message: String, hint: String },
    #[error("{0}")]
    Other(String),
}

impl LlmError {
    /// The crew-file limit that ended the call, if one did: `(limit, value, key)`.
    pub fn limit(&self) -> Option<(&'static str, String, &'static str)> {
        match self {
            LlmError::ResponseTooLarge { limit_bytes } => Some((
                "max_response_kb",
                (limit_bytes >> 10).to_string(),
                "llm.max_response_kb",
            )),
            LlmError::Timeout { seconds, .. } => {
                Some(("timeout_s", seconds.to_string(), "llm.timeout_s"))
            }
            _ => None,
        }
    }
}
