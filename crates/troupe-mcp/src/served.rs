//! A tool Troupe serves over MCP, and what one call of it gets: where to report progress, and
//! the client's cancellation.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::model::{CallToolResult, ProgressNotificationParam, ProgressToken, Tool};
use rmcp::service::Peer;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the server writes what its tools did (a line each: a plugin call's events as JSON, a
/// crew run's start and end). `troupe mcp serve` writes them to stderr, which MCP clients keep
/// as the server's log.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A tool of the server.
pub trait Served: Send + Sync {
    /// Its name, description and argument schema, as `tools/list` gives them.
    fn definition(&self) -> &Tool;
    /// Runs it on arguments that already fit its schema. A failure of the tool is a result with
    /// `isError` (the client's model reads it), never a protocol error.
    fn call(&self, args: Value, call: Call) -> BoxFuture<'_, CallToolResult>;
    /// This tool as one session of a shared server gets it, when that differs (a plugin's
    /// key-value space is the session's own); `copies` holds the plugins copied so far, so the
    /// tools of one plugin keep sharing one space.
    fn for_session(&self, copies: &mut PluginCopies) -> Option<Arc<dyn Served>> {
        let _ = copies;
        None
    }
}

/// Plugins copied for a session, by the address of the original.
pub type PluginCopies = HashMap<usize, Arc<troupe_plugin::Plugin>>;

/// What one call gets besides its arguments.
pub struct Call {
    pub progress: Progress,
    /// Cancelled when the client cancels the request or goes away.
    pub cancel: CancellationToken,
}

/// Progress notifications of one call, when the client asked for them (a progress token).
#[derive(Clone, Default)]
pub struct Progress {
    to: Option<(Peer<RoleServer>, ProgressToken)>,
}

impl Progress {
    pub fn new(peer: Peer<RoleServer>, token: Option<ProgressToken>) -> Self {
        Self {
            to: token.map(|t| (peer, t)),
        }
    }

    /// Whether the client asked for progress.
    pub fn wanted(&self) -> bool {
        self.to.is_some()
    }

    /// Reports `done` of `total`; a client that went away is not an error of the call.
    pub async fn report(&self, done: f64, total: Option<f64>, message: String) {
        let Some((peer, token)) = &self.to else {
            return;
        };
        let mut p = ProgressNotificationParam::new(token.clone(), done).with_message(message);
        if let Some(t) = total {
            p = p.with_total(t);
        }
        let _ = peer.notify_progress(p).await;
    }
}

/// A JSON Schema as MCP wants a tool's `inputSchema`: an object schema. A schema without a
/// type gets `"type": "object"`; one that is not an object schema (a plugin's arguments are a
/// JSON object, always) is `{"type": "object"}`.
pub fn object_schema(schema: &Value) -> Arc<rmcp::model::JsonObject> {
    let mut obj = match schema {
        Value::Object(o) if o.get("type").is_none_or(|t| t == "object") => o.clone(),
        _ => rmcp::model::JsonObject::new(),
    };
    obj.entry("type")
        .or_insert_with(|| Value::String("object".into()));
    Arc::new(obj)
}
