//! A loaded plugin: compiled once, instantiated fresh for every call in a bounded store.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, PoolingAllocationConfig, Store,
    StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::cache::{self, CacheOutcome, Code};
use crate::error::PluginError;
use crate::host::ToolPluginPre;
use crate::load::{self, Kind};
use crate::sandbox::{Grants, Limits, LogLine, Services, State};

/// Host resources (WASI streams, pollables, …) one call may hold at once: a plugin creating
/// them in a loop without dropping them fails instead of growing the host.
const MAX_RESOURCES: usize = 10_000;

/// How often the engine's epoch advances: the granularity of deadlines and of yielding to the
/// async runtime while a plugin computes.
const TICK: Duration = Duration::from_millis(5);

/// One tool of a plugin, as `describe` gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "empty_object")]
    pub parameters: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({"type": "object"})
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Description {
    pub name: String,
    #[serde(default)]
    pub version: String,
    pub tools: Vec<ToolInfo>,
    /// The grants it says it needs; `None` when it says nothing (then nothing is compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

/// The host capabilities a plugin declares it uses, as a crew grants them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub documents: bool,
    #[serde(default)]
    pub kv: bool,
    /// Hosts it sends HTTP GET requests to (`*.example.org` for subdomains).
    #[serde(default)]
    pub http: Vec<String>,
}

impl Capabilities {
    /// Whether `grants` lets the plugin reach `host` (exactly, or as a subdomain of a
    /// `*.` grant).
    pub fn host_granted(grants: &[String], host: &str) -> bool {
        grants.iter().any(|g| {
            g == host
                || g.strip_prefix("*.").is_some_and(|base| {
                    host.strip_prefix("*.")
                        .unwrap_or(host)
                        .ends_with(&format!(".{base}"))
                        || host == format!("*.{base}")
                })
        })
    }
}

/// The result of one call and what it used.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The tool's output, or why the call failed (the tool's own error, a trap, a limit).
    pub result: Result<String, String>,
    pub logs: Vec<LogLine>,
    /// Log lines over `limits.log_lines`, not kept.
    pub logs_dropped: usize,
    /// Captured stdout and stderr (bounded by `limits.stdio_bytes`).
    pub stdout: String,
    pub stderr: String,
    /// Whether stdout or stderr reached `limits.stdio_bytes` (later writes failed).
    pub stdio_full: bool,
    /// Capabilities asked for without a grant, each naming the key that grants it: the first
    /// `MAX_DENIAL_MESSAGES` distinct messages.
    pub denied: Vec<String>,
    /// Every request denied in the call (at most `MAX_DENIALS_PER_CALL`: the call stops there).
    pub denied_total: usize,
    pub duration: Duration,
    /// Which limit ended the call, as its crew-file key (`limits.deadline_ms`,
    /// `limits.memory_mb`, `limits.output_kb`), or the grant (`grants.kv`, `grants.documents`,
    /// `grants.http`) whose requests were denied `MAX_DENIALS_PER_CALL` times.
    pub limit: Option<&'static str>,
    /// Limits hit during the call that did not end it (the plugin got an error instead), each once.
    pub hits: Vec<&'static str>,
}

struct Shared {
    engine: Engine,
    /// For components: WASI preview 2 and the host interface.
    linker: Linker<State>,
    /// For core modules: WASI preview 1 and the host interface (see `core_module`).
    core: wasmtime::Linker<State>,
}

/// One engine and linker per process, with the epoch ticker.
fn shared() -> Result<&'static Shared, String> {
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let mut config = Config::new();
            config.wasm_component_model(true);
            config.epoch_interruption(true);
            let engine = if pooling_wanted() {
                config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool()));
                // A machine that cannot reserve the pool's address space still runs plugins.
                Engine::new(&config).or_else(|_| {
                    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                    Engine::new(&config)
                })
            } else {
                Engine::new(&config)
            }
            .map_err(|e| format!("cannot start wasmtime: {e}"))?;
            let mut linker = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)
                .map_err(|e| format!("cannot link WASI: {e}"))?;
            crate::host::ToolPlugin::add_to_linker::<State, wasmtime::component::HasSelf<State>>(
                &mut linker,
                |s| s,
            )
            .map_err(|e| format!("cannot link the host interface: {e}"))?;
            let mut core = wasmtime::Linker::new(&engine);
            crate::core_module::add_to_linker(&mut core)
                .map_err(|e| format!("cannot link the host interface for core modules: {e}"))?;
            let ticker = engine.weak();
            std::thread::Builder::new()
                .name("troupe-plugin-epoch".into())
                .spawn(move || {
                    while let Some(engine) = ticker.upgrade() {
                        engine.increment_epoch();
                        drop(engine);
                        std::thread::sleep(TICK);
                    }
                })
                .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
            Ok(Shared {
                engine,
                linker,
                core,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `TROUPE_PLUGIN_POOLING=off` allocates each instance's memory on demand instead of from a
/// pool (for machines that limit virtual memory).
fn pooling_wanted() -> bool {
    std::env::var("TROUPE_PLUGIN_POOLING").map_or(true, |v| v != "off" && v != "0")
}

/// The instance pool: every call instantiates afresh, so memories, tables and stacks are
/// reused slots instead of new mappings. Sized for many concurrent calls of components as
/// large as a Python interpreter; the per-plugin memory cap is enforced by the store's limiter.
fn pool() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(256)
        .total_core_instances(2048)
        .total_memories(1024)
        .total_tables(2048)
        .total_stacks(256)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(32)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(4 << 20)
        .table_elements(200_000)
        .max_memory_size(4 << 30)
        .max_unused_warm_slots(64)
        // A freed slot keeps up to 1 MiB of memory and of tables resident, reset in place (only
        // the pages the call dirtied, where the kernel has PAGEMAP_SCAN): the next call takes
        // no page faults there. Halves a small plugin's instantiate + call (8 → 4 µs).
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(1 << 20);
    pool
}

/// A plugin ready to be called.
pub struct Plugin {
    pub id: String,
    pub path: PathBuf,
    pub kind: Kind,
    pub description: Description,
    pub grants: Grants,
    pub limits: Limits,
    /// Whether the compiled code came from the on-disk cache.
    pub cache: CacheOutcome,
    /// Why the cache was not used, when it could not be.
    pub cache_note: Option<String>,
    /// Time to read, convert and compile (or load from the cache) and describe the plugin.
    pub load_time: Duration,
    /// The SHA-256 of the file, lowercase hex.
    pub sha256: String,
    pre: Pre,
    services: Services,
}

/// A plugin's code, linked and ready to instantiate.
#[derive(Clone)]
enum Pre {
    Component(ToolPluginPre<State>),
    Core(InstancePre<State>),
}

impl Pre {
    fn engine(&self) -> &Engine {
        match self {
            Pre::Component(pre) => pre.engine(),
            Pre::Core(pre) => pre.module().engine(),
        }
    }
}

impl Plugin {
    /// The same plugin — compiled code, grants, limits, documents and config shared — with a
    /// key-value space of its own, empty: for callers that must not see each other's (each
    /// session of an MCP server).
    pub fn with_own_kv(&self) -> Plugin {
        Plugin {
            id: self.id.clone(),
            path: self.path.clone(),
            kind: self.kind,
            description: self.description.clone(),
            grants: self.grants.clone(),
            limits: self.limits.clone(),
            cache: self.cache,
            cache_note: self.cache_note.clone(),
            load_time: self.load_time,
            sha256: self.sha256.clone(),
            pre: self.pre.clone(),
            services: Services {
                kv: Default::default(),
                ..self.services.clone()
            },
        }
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("tools", &self.description.tools.len())
            .finish()
    }
}

impl Plugin {
    /// Loads, compiles and describes the plugin at `path`.
    pub async fn load(
        id: &str,
        path: &Path,
        grants: Grants,
        limits: Limits,
        services: Services,
    ) -> Result<Plugin, PluginError> {
        Self::load_pinned(id, path, None, grants, limits, services).await
    }

    /// [`Plugin::load`], refusing a file whose SHA-256 is not `pin` (lowercase hex) before
    /// anything of it runs. The hash is of the bytes that are then compiled, not of a second
    /// read that could differ.
    pub async fn load_pinned(
        id: &str,
        path: &Path,
        pin: Option<&str>,
        grants: Grants,
        limits: Limits,
        services: Services,
    ) -> Result<Plugin, PluginError> {
        let err = |reason: String, hint: &str| PluginError::Load {
            path: path.to_path_buf(),
            reason,
            hint: hint.to_string(),
        };
        let started = Instant::now();
        let shared = shared().map_err(|e| err(e, "report this bug"))?;
        let bytes = std::fs::read(path).map_err(|e| {
            err(
                format!("cannot read: {e}"),
                "check the plugin's `path` (relative to the crew file)",
            )
        })?;
        let sha256 = crate::sha256_hex(&bytes);
        if let Some(pin) = pin
            && pin != sha256
        {
            return Err(err(
                format!(
                    "refused: the file's SHA-256 is {sha256}, but its `sha256` pins {pin}; it changed since it was pinned"
                ),
                "review the new file; if you trust it, `troupe plugin lock FILE` pins it again (or write its hash in `sha256`)",
            ));
        }
        // Converting and compiling are CPU work of up to seconds: off the async threads.
        let engine = shared.engine.clone();
        let owned = path.to_path_buf();
        let (code, kind, cache, cache_note) = tokio::task::spawn_blocking(move || {
            let (binary, kind) = load::binary(&owned, &bytes)?;
            let (code, cache, note) =
                cache::compile(&engine, &binary, kind).map_err(|e| PluginError::Load {
                    path: owned.clone(),
                    reason: format!(
                        "not a valid {}: {e:#}",
                        match kind {
                            Kind::Component => "component",
                            Kind::CoreModule => "module",
                        }
                    ),
                    hint: "rebuild the plugin; see plugins/README.md".into(),
                })?;
            Ok::<_, PluginError>((code, kind, cache, note))
        })
        .await
        .map_err(|e| err(format!("compiling stopped: {e}"), "report this bug"))??;
        let mut services = services;
        if !grants.http.is_empty() {
            services.http =
                Some(crate::http::client(&grants.http).map_err(|e| err(e, "report this bug"))?);
        }
        let world_hint = "build the plugin against crates/troupe-plugin/wit/world.wit (`troupe:plugin/tool-plugin@0.1.0`); it may import only the `host` interface and WASI";
        let imports_err = |e: wasmtime::Error| {
            err(
                format!("imports something this host does not provide: {e:#}"),
                world_hint,
            )
        };
        let pre = match code {
            Code::Component(component) => {
                let instance_pre = shared
                    .linker
                    .instantiate_pre(&component)
                    .map_err(imports_err)?;
                Pre::Component(ToolPluginPre::new(instance_pre).map_err(|e| {
                    err(
                        format!("does not export the tool-plugin world: {e:#}"),
                        world_hint,
                    )
                })?)
            }
            Code::Module(module) => {
                crate::core_module::check_exports(&module).map_err(|e| {
                    err(
                        format!("not a module of the tool-plugin world: {e}"),
                        load::WORLD_HINT,
                    )
                })?;
                Pre::Core(shared.core.instantiate_pre(&module).map_err(imports_err)?)
            }
        };
        let mut plugin = Plugin {
            id: id.to_string(),
            path: path.to_path_buf(),
            kind,
            description: Description {
                name: id.to_string(),
                version: String::new(),
                tools: Vec::new(),
                capabilities: None,
            },
            grants,
            limits,
            cache,
            cache_note,
            load_time: Duration::ZERO,
            sha256,
            pre,
            services,
        };
        let described = plugin.run(None).await;
        let text = described.result.map_err(|e| {
            err(
                format!("`describe` failed: {e}"),
                "run `troupe plugin inspect` on it",
            )
        })?;
        plugin.description = serde_json::from_str(&text).map_err(|e| {
            err(
                format!("`describe` did not return the expected JSON: {e}"),
                "return {\"name\": …, \"version\": …, \"tools\": [{\"name\", \"description\", \"parameters\"}]}",
            )
        })?;
        plugin.load_time = started.elapsed();
        Ok(plugin)
    }

    /// Calls `tool` with JSON `args` in a fresh instance, within the plugin's limits.
    pub async fn call(&self, tool: &str, args: &str) -> CallReport {
        self.run(Some((tool, args))).await
    }

    async fn run(&self, call: Option<(&str, &str)>) -> CallReport {
        let started = Instant::now();
        let stdout = MemoryOutputPipe::new(self.limits.stdio_bytes);
        let stderr = MemoryOutputPipe::new(self.limits.stdio_bytes);
        // WASI grants nothing: no files, no environment, no arguments, no sockets.
        let mut builder = WasiCtx::builder();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // A random-bytes request cannot be larger than the memory it would go into.
            .max_random_size(self.limits.memory_bytes as u64);
        let (wasi, p1) = match &self.pre {
            Pre::Component(_) => (Some(builder.build()), None),
            Pre::Core(_) => (None, Some(builder.build_p1())),
        };
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = State {
            wasi,
            table,
            p1,
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .table_elements(1 << 16)
                .instances(16)
                .trap_on_grow_failure(true)
                .build(),
            grants: self.grants.clone(),
            services: self.services.clone(),
            logs: Vec::new(),
            max_logs: self.limits.log_lines,
            logs_dropped: 0,
            denied: Vec::new(),
            denied_total: 0,
            deadline: started + self.limits.deadline,
            call_limits: self.limits.clone(),
            hits: Vec::new(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        let deadline = started + self.limits.deadline;
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);

        // Epoch interruption stops running code; a host call the plugin waits in (a WASI sleep,
        // a poll) is bounded here, by the same deadline.
        let outcome: Result<Result<String, String>, wasmtime::Error> =
            tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), async {
                match &self.pre {
                    Pre::Component(pre) => {
                        let instance = pre.instantiate_async(&mut store).await?;
                        match call {
                            None => Ok(Ok(instance.call_describe(&mut store).await?)),
                            Some((tool, args)) => {
                                instance.call_invoke(&mut store, tool, args).await
                            }
                        }
                    }
                    Pre::Core(pre) => crate::core_module::run(pre, &mut store, call).await,
                }
            })
            .await
            .unwrap_or_else(|_| Err(wasmtime::Trap::Interrupt.into()));
        let mut limit = None;
        let result = match outcome {
            Ok(Ok(out)) if out.len() > self.limits.output_bytes => {
                limit = Some("limits.output_kb");
                Err(format!(
                    "the plugin's output ({} bytes) is over the limit of {} bytes (`limits.output_kb`)",
                    out.len(),
                    self.limits.output_bytes
                ))
            }
            Ok(r) => r,
            Err(e) => {
                let (message, which) = describe_trap(&e, &self.limits);
                limit = which;
                Err(message)
            }
        };
        let state = store.into_data();
        let (out, err) = (stdout.contents(), stderr.contents());
        CallReport {
            result,
            logs: state.logs,
            logs_dropped: state.logs_dropped,
            stdio_full: out.len() >= self.limits.stdio_bytes
                || err.len() >= self.limits.stdio_bytes,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
            denied: state.denied,
            denied_total: state.denied_total,
            duration: started.elapsed(),
            limit,
            hits: state.hits,
        }
    }
}

/// A trap in words, and the limit that caused it, if one did.
fn describe_trap(e: &wasmtime::Error, limits: &Limits) -> (String, Option<&'static str>) {
    if let Some(stopped) = e.downcast_ref::<crate::host::Stopped>() {
        return (stopped.message.clone(), Some(stopped.limit));
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => (
            format!(
                "the plugin ran past its deadline of {:.1} s (`limits.deadline_ms`) and was stopped",
                limits.deadline.as_secs_f64()
            ),
            Some("limits.deadline_ms"),
        ),
        Some(wasmtime::Trap::MemoryOutOfBounds) | Some(wasmtime::Trap::AllocationTooLarge) => {
            (format!("the plugin trapped: {e}"), None)
        }
        _ if format!("{e:#}").contains("forcing trap when growing memory") => (
            format!(
                "the plugin tried to use more than {} MiB of memory (`limits.memory_mb`) and was stopped",
                limits.memory_bytes >> 20
            ),
            Some("limits.memory_mb"),
        ),
        Some(trap) => (format!("the plugin trapped: {trap}"), None),
        None => (format!("the plugin failed: {e:#}"), None),
    }
}
