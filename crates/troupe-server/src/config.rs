//! What a server is started with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use troupe_runtime::models::ModelFactory;

/// Makes the extra sink of one run's events (given the run id) as the run starts; the sink is
/// dropped when the run ends, however it ends (the OTLP exporter: one trace per run).
pub type RunSinks = Arc<dyn Fn(&str) -> troupe_runtime::EventSink + Send + Sync>;

/// A server's settings.
#[derive(Clone)]
pub struct ServeConfig {
    /// The crews the server offers by name: every `*.json` crew file in this directory.
    pub crews_dir: Option<PathBuf>,
    /// The run store (SQLite).
    pub store: PathBuf,
    /// Uploaded documents and the runs' output directories.
    pub data_dir: PathBuf,
    /// Runs executing at once; more wait in the queue.
    pub max_runs: usize,
    /// Runs waiting for a slot; beyond, a new run is refused with 429 and `Retry-After`.
    pub max_queue: usize,
    /// The bearer token every request must carry. Required to listen beyond loopback.
    pub token: Option<String>,
    /// Largest JSON request body, in KiB.
    pub max_body_kb: usize,
    /// Largest document upload (one request, all its files), in MiB.
    pub max_upload_mb: usize,
    pub models: Arc<dyn ModelFactory>,
    /// A sink of each run's events besides the live streams (tracing).
    pub run_sinks: Option<RunSinks>,
    /// Tools served over MCP (streamable HTTP) at `/mcp`, behind the same token.
    pub mcp: Option<troupe_mcp::McpService>,
}

/// Why a server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {addr} without a token: anyone who can reach it could start runs and read their outputs\n  hint: set a token in an environment variable and name it with `--token-env VAR`, or bind to 127.0.0.1"
    )]
    NoToken { addr: SocketAddr },
    #[error(transparent)]
    Store(troupe_store::StoreError),
    #[error("{0}")]
    Io(std::io::Error),
}

impl ServeConfig {
    /// Refuses an address beyond loopback without a token.
    pub fn check_bind(&self, addr: SocketAddr) -> Result<(), ServeError> {
        if !addr.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(ServeError::NoToken { addr });
        }
        Ok(())
    }
}
