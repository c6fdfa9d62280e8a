//! What a plugin may do and use: grants, limits, and the per-call state of the sandbox.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use troupe_docs::Corpus;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Capabilities granted to a plugin in the crew file (`plugins[].grants`). Nothing by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// `grants.documents`: list, read and search the run's documents.
    pub documents: bool,
    /// `grants.kv`: a key-value space private to this plugin for this run.
    pub kv: bool,
    /// `grants.http`: hosts the plugin may GET from.
    pub http: Vec<String>,
}

/// Per-call limits (`plugins[].limits`), each with a default.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Wall-clock deadline of one call. Default 2 s.
    pub deadline: Duration,
    /// Linear memory (and tables) of the instance. Default 64 MiB.
    pub memory_bytes: usize,
    /// Size of the result. Default 256 KiB.
    pub output_bytes: usize,
    /// Bytes of stdout, and of stderr, kept per call (writes beyond fail; the call reports it).
    /// Default 16 KiB.
    pub stdio_bytes: usize,
    /// Log lines kept per call (the rest are counted and reported). Default 100.
    pub log_lines: usize,
    /// Body size of one `http-get` response; a larger one is refused. Default 1 MiB.
    pub http_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(2),
            memory_bytes: 64 << 20,
            output_bytes: 256 << 10,
            stdio_bytes: 16 << 10,
            log_lines: 100,
            http_bytes: 1 << 20,
        }
    }
}

/// The host services a plugin's calls share for a run: the documents, its key-value space, its
/// configuration.
#[derive(Clone, Default)]
pub struct Services {
    pub documents: Option<Arc<Corpus>>,
    pub kv: Arc<Mutex<HashMap<String, String>>>,
    pub config: BTreeMap<String, String>,
    /// The HTTP client for `http-get`, made by `Plugin::load` when `grants.http` names hosts.
    pub http: Option<reqwest::Client>,
}

/// A log line a plugin wrote with `host.log`, or a denial the host recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogLine {
    pub level: String,
    pub message: String,
}

/// The store's data for one call.
pub(crate) struct State {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: StoreLimits,
    pub grants: Grants,
    pub services: Services,
    pub logs: Vec<LogLine>,
    pub max_logs: usize,
    pub logs_dropped: usize,
    /// Capabilities the plugin asked for without a grant, with the key that would grant them.
    pub denied: Vec<String>,
    /// When the call must end (`limits.deadline_ms`): host calls that wait stop by then too.
    pub deadline: std::time::Instant,
    pub http_bytes: usize,
    /// Limits hit during the call that did not end it (the plugin got an error), as keys.
    pub hits: Vec<&'static str>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
