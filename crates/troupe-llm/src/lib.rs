//! # troupe-llm
//!
//! One [`ChatModel`] trait over provider-neutral [`types`]; providers keep their wire formats
//! private. Retries, `Retry-After`, timeouts and rate limits live in [`retry`], once.
//!
//! Layout:
//! - [`types`]: messages, tool specs and calls, requests, responses, usage;
//! - [`model`]: the [`ChatModel`] trait;
//! - [`openai`]: any OpenAI-compatible endpoint, through async-openai;
//! - `local` (feature `local`, on by default): a GGUF model in-process through llama.cpp;
//! - [`scripted`]: a model that answers from a function (tests, dry runs);
//! - [`retry`]: backoff with jitter, `Retry-After`, the requests-per-minute limiter;
//! - [`error`]: the [`LlmError`] type.

pub mod error;
#[cfg(feature = "local")]
pub mod local;
pub mod model;
pub mod openai;
pub mod retry;
pub mod scripted;
pub mod types;

pub use error::LlmError;
pub use model::{BoxFuture, ChatModel};
pub use types::*;
