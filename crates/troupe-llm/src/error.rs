//! Errors of model calls.

/// Why a model call failed (after any retries).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("the model endpoint answered HTTP {status} after {attempts} attempt(s): {message}")]
    Api {
        status: u16,
        message: String,
        attempts: u32,
    },
    #[error("cannot reach the model endpoint after {attempts} attempt(s): {message}")]
    Connection { message: String, attempts: u32 },
    #[error("the model endpoint sent an answer Troupe cannot read: {0}")]
    Decode(String),
    #[error("{message}\n  hint: {hint}")]
    Config { message: String, hint: String },
    #[error("{0}")]
    Other(String),
}
