//! The one trait every model provider implements.

use std::future::Future;
use std::pin::Pin;

use crate::{ChatRequest, ChatResponse, LlmError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A chat model: messages (+ tools, + output format) in, one assistant message + usage out.
///
/// Object-safe on purpose: the runtime holds `Arc<dyn ChatModel>` per agent, shared across tasks.
pub trait ChatModel: Send + Sync {
    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>>;

    /// `provider:model`, for events and run records.
    fn name(&self) -> String;

    /// Tokens the model can attend to (prompt and answer), when the provider knows it.
    fn context_window(&self) -> Option<u32> {
        None
    }

    /// Whether output schemas are enforced token by token (a grammar), so that a large `enum`
    /// costs nothing and guarantees the value: the runtime then narrows quotes to the document's
    /// own sentences.
    fn constrained_decoding(&self) -> bool {
        false
    }
}
