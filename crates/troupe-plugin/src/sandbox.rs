//! What a plugin may do and use: grants, limits, and the per-call state of the sandbox.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use troupe_docs::Corpus;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
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
    /// Bytes of keys plus values the plugin's key-value space may hold (`limits.kv_kb`), over all
    /// calls of the run: a `kv-set` beyond fails. Default 1 MiB.
    pub kv_bytes: usize,
    /// Keys the key-value space may hold (`limits.kv_keys`). Default 1000.
    pub kv_keys: usize,
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
            kv_bytes: 1 << 20,
            kv_keys: 1000,
        }
    }
}

/// Longest key of the key-value space, in bytes: a key names a value, it is not the value.
pub const MAX_KV_KEY_BYTES: usize = 1024;

/// Denied requests after which a call is stopped: a plugin asking again and again for a
/// capability it was not granted is looping on the error, and every denial is work and a record
/// on the host. The call fails with a message naming the grant; its report counts the denials.
pub const MAX_DENIALS_PER_CALL: usize = 64;

/// Distinct denial messages kept in a call's report (the rest are only counted).
pub const MAX_DENIAL_MESSAGES: usize = 8;

/// A plugin's key-value space for a run, shared by its calls, with the bytes it holds counted.
#[derive(Debug, Default)]
pub struct KvSpace {
    entries: HashMap<String, String>,
    bytes: usize,
}

/// Why a `kv-set` was refused: the limit's key, and the message for the plugin.
pub(crate) struct KvRefusal {
    pub limit: Option<&'static str>,
    pub message: String,
}

impl KvSpace {
    pub fn get(&self, key: &str) -> Option<&String> {
        self.entries.get(key)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of keys plus values held: what `limits.kv_kb` bounds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Sets `key` to `value` if the space stays within `limits` (replacing a value frees the old
    /// one's bytes first); otherwise changes nothing.
    pub(crate) fn set(
        &mut self,
        key: String,
        value: String,
        limits: &Limits,
    ) -> Result<(), KvRefusal> {
        let shown: String = key.chars().take(40).collect();
        let shown = if shown.len() < key.len() {
            format!("{shown}…")
        } else {
            shown
        };
        if key.len() > MAX_KV_KEY_BYTES {
            return Err(KvRefusal {
                limit: None,
                message: format!(
                    "kv key `{shown}` is {} bytes long; keys are at most {MAX_KV_KEY_BYTES} bytes (put the data in the value)",
                    key.len()
                ),
            });
        }
        let old = self.entries.get(&key).map(|v| key.len() + v.len());
        if old.is_none() && self.entries.len() >= limits.kv_keys {
            return Err(KvRefusal {
                limit: Some("limits.kv_keys"),
                message: format!(
                    "the key-value space is full: it holds {} keys, the limit (`limits.kv_keys`); `{shown}` was not set (reuse keys, or raise `limits.kv_keys` in the crew file)",
                    self.entries.len()
                ),
            });
        }
        let after = self.bytes - old.unwrap_or(0) + key.len() + value.len();
        if after > limits.kv_bytes {
            return Err(KvRefusal {
                limit: Some("limits.kv_kb"),
                message: format!(
                    "the key-value space is full: setting `{shown}` ({} bytes) would make it hold {after} bytes, over the limit of {} KiB (`limits.kv_kb`); it was not set (store less, or raise `limits.kv_kb` in the crew file)",
                    key.len() + value.len(),
                    limits.kv_bytes >> 10
                ),
            });
        }
        self.bytes = after;
        self.entries.insert(key, value);
        Ok(())
    }
}

/// The host services a plugin's calls share for a run: the documents, its key-value space, its
/// configuration.
#[derive(Clone, Default)]
pub struct Services {
    pub documents: Option<Arc<Corpus>>,
    pub kv: Arc<Mutex<KvSpace>>,
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
    /// WASI preview 2, for components (`None` for a core module).
    pub wasi: Option<WasiCtx>,
    pub table: ResourceTable,
    /// WASI preview 1, for core modules (`None` for a component).
    pub p1: Option<WasiP1Ctx>,
    pub limits: StoreLimits,
    pub grants: Grants,
    pub services: Services,
    pub logs: Vec<LogLine>,
    pub max_logs: usize,
    pub logs_dropped: usize,
    /// Capabilities the plugin asked for without a grant, with the key that would grant them
    /// (the first `MAX_DENIAL_MESSAGES` distinct ones).
    pub denied: Vec<String>,
    /// Every denied request of the call, kept or not.
    pub denied_total: usize,
    /// When the call must end (`limits.deadline_ms`): host calls that wait stop by then too.
    pub deadline: std::time::Instant,
    /// The call's limits (`http_bytes`, `kv_bytes`, `kv_keys` are read during the call).
    pub call_limits: Limits,
    /// Limits hit during the call that did not end it (the plugin got an error), as keys, each once.
    pub hits: Vec<&'static str>,
}

impl State {
    /// Records that the limit `key` was hit (once per call, however often).
    pub fn hit(&mut self, key: &'static str) {
        if !self.hits.contains(&key) {
            self.hits.push(key);
        }
    }
}

impl State {
    /// The preview-1 context of a core module's call. A component's store has none; should a
    /// preview-1 function ever be reached there, it gets a context that grants nothing.
    pub fn p1(&mut self) -> &mut WasiP1Ctx {
        self.p1
            .get_or_insert_with(|| wasmtime_wasi::WasiCtxBuilder::new().build_p1())
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            // A core module's store has none; reached there, it is a context granting nothing.
            ctx: self.wasi.get_or_insert_with(|| WasiCtx::builder().build()),
            table: &mut self.table,
        }
    }
}
