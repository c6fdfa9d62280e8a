//! The validated crew: ids resolved, templates filled, limits defaulted. Built by [`crate::validate`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::diag::Source;
pub use crate::wire::{ForEach, OnFailure, OnUnreadable, Process, Provider, RepeatPolicy};

/// A crew ready to run.
#[derive(Debug, Clone)]
pub struct Crew {
    pub name: String,
    pub description: Option<String>,
    /// Directory of the crew file; relative paths in it are resolved from here.
    pub dir: PathBuf,
    pub source: Arc<Source>,
    pub agents: Vec<Agent>,
    /// In file order. Indexes into this vector are task indexes everywhere in the runtime.
    pub tasks: Vec<Task>,
    pub process: Process,
    /// The manager of a hierarchical crew: an agent of the crew or a generated one.
    pub manager: Option<Agent>,
    pub limits: RunLimits,
    /// The inputs the templates were filled with.
    pub inputs: BTreeMap<String, String>,
    /// The crew file's `documents` block (paths relative to `dir`), if any.
    pub documents: Option<Documents>,
    pub plugins: Vec<PluginDecl>,
    /// MCP servers whose tools agents may use; the runtime starts or contacts them.
    pub mcp_servers: Vec<McpServerDecl>,
    /// Tool names and `prefix.*` patterns whose every call waits for a person's approval
    /// (`tools.<pattern>.approve`), as written; the runtime resolves them.
    pub approve_tools: Vec<String>,
}

/// An MCP server as the crew declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServerDecl {
    pub id: String,
    pub transport: McpTransport,
    /// `limits.call_timeout_ms`.
    pub call_timeout: Duration,
    /// `limits.output_kb`, in bytes.
    pub output_bytes: usize,
    /// `limits.start_timeout_ms`.
    pub start_timeout: Duration,
    /// `limits.stderr_kb`, in bytes.
    pub stderr_bytes: usize,
    /// Position in `mcp_servers`, for locating diagnostics.
    pub index: usize,
}

/// How an MCP server is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum McpTransport {
    /// A local process over stdio; its environment holds only `env` and the `env_from` names.
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        env_from: Vec<String>,
        /// Resolved against the crew file's directory.
        cwd: PathBuf,
    },
    /// Streamable HTTP; each header's value is read from the named environment variable.
    Http {
        url: String,
        headers_env: BTreeMap<String, String>,
    },
}

/// A plugin as the crew declares it; the runtime loads it.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginDecl {
    pub id: String,
    /// Resolved against the crew file's directory.
    pub path: PathBuf,
    pub documents: bool,
    pub kv: bool,
    pub http: Vec<String>,
    pub config: BTreeMap<String, String>,
    pub deadline: Duration,
    pub memory_bytes: usize,
    pub output_bytes: usize,
    pub stdio_bytes: usize,
    pub log_lines: usize,
    pub http_bytes: usize,
    /// Bytes of keys plus values of the plugin's key-value space (`limits.kv_kb`).
    pub kv_bytes: usize,
    /// Keys of the plugin's key-value space (`limits.kv_keys`).
    pub kv_keys: usize,
    /// The SHA-256 the file must have (`sha256`, lowercase hex), when pinned.
    pub sha256: Option<String>,
    /// Position in `plugins`, for locating diagnostics.
    pub index: usize,
}

/// Where a crew's documents are and how they are chunked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Documents {
    pub paths: Vec<String>,
    pub chunk_tokens: u32,
    pub chunk_overlap: u32,
    pub on_unreadable: OnUnreadable,
    /// `documents.max_file_mb`.
    pub max_file_mb: u32,
    /// `documents.pdf_timeout_s`.
    pub pdf_timeout: Duration,
}

impl Default for Documents {
    fn default() -> Self {
        Documents {
            paths: Vec::new(),
            chunk_tokens: 400,
            chunk_overlap: 60,
            on_unreadable: OnUnreadable::Fail,
            max_file_mb: 128,
            pdf_timeout: Duration::from_secs(30),
        }
    }
}

impl Crew {
    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents
            .iter()
            .chain(self.manager.iter())
            .find(|a| a.id == id)
    }
    pub fn task_index(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }
}

/// An agent with its model settings fully merged.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub role: String,
    pub goal: String,
    pub backstory: Option<String>,
    pub llm: LlmSettings,
    /// Tool patterns as written (`name` or `prefix.*`); the runtime resolves them.
    pub tools: Vec<String>,
    pub allow_delegation: bool,
    pub limits: TaskLimits,
    /// Index in `crew.agents`, for locating diagnostics (`None` for a generated manager).
    pub index: Option<usize>,
}

/// Merged model settings of one agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmSettings {
    /// As the crew names it; `None`: not named (see [`crate::wire::LlmSpec::provider`]). The
    /// runtime decides from the environment for `None` and `auto`.
    pub provider: Option<Provider>,
    pub model: String,
    pub base_url: Option<String>,
    pub api_key_env: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub context_window: Option<u32>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub requests_per_minute: Option<u32>,
    /// `llm.max_response_kb`; `None`: derived from `max_tokens` by the provider.
    pub max_response_kb: Option<u32>,
    pub input_cost_per_mtok: Option<f64>,
    pub output_cost_per_mtok: Option<f64>,
    /// `llm.cached_input_cost_per_mtok`; `None`: cached input costs `input_cost_per_mtok`.
    pub cached_input_cost_per_mtok: Option<f64>,
}

/// Whether a model name is a GGUF file (a path ending in `.gguf`), as opposed to a name an
/// endpoint or the models directory knows. A `/` alone does not make a path:
/// `Qwen/Qwen2.5-7B-Instruct` is a model name.
pub fn is_gguf(model: &str) -> bool {
    model.len() > 5 && model[model.len() - 5..].eq_ignore_ascii_case(".gguf")
}

/// A task with its templates filled.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub description: String,
    pub expected_output: Option<String>,
    /// `None` only in hierarchical crews, where the manager assigns it.
    pub agent: Option<String>,
    /// Indexes of the tasks whose output this one receives.
    pub context: Vec<usize>,
    pub output_file: Option<PathBuf>,
    pub output_schema: Option<serde_json::Value>,
    pub review: Option<Review>,
    /// The output waits for a person's approval after its checks and review.
    pub approval: Option<Approval>,
    pub limits: TaskLimits,
    /// `for_each` as written; the runtime replaces such a task by one instance per document.
    pub for_each: Option<ForEach>,
    /// For an instance of a `for_each` task: the document it works on.
    pub document: Option<String>,
    /// For an instance of a `for_each` task: the id of the task it was made from.
    pub group: Option<String>,
    /// Position of the task (of the task it was made from, for an instance) in the crew file's
    /// `tasks`, for locating diagnostics.
    pub origin: usize,
}

#[derive(Debug, Clone)]
pub struct Review {
    pub by: String,
    pub max_rounds: u32,
    pub criteria: Option<String>,
}

/// A person's approval a task's output needs (`approval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// What the person is asked.
    pub message: Option<String>,
}

/// Limits of one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskLimits {
    pub max_iterations: u32,
    pub timeout: Duration,
    pub max_repeated_tool_calls: u32,
    pub on_repeat: RepeatPolicy,
    pub max_output_retries: u32,
}

impl Default for TaskLimits {
    fn default() -> Self {
        Self {
            max_iterations: 10,
            timeout: Duration::from_secs(600),
            max_repeated_tool_calls: 2,
            on_repeat: RepeatPolicy::Stop,
            max_output_retries: 2,
        }
    }
}

/// Limits of the whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunLimits {
    pub timeout: Duration,
    pub max_tokens: u64,
    pub max_cost_usd: Option<f64>,
    pub max_delegations: u32,
    /// Tasks running at once.
    pub max_parallel: usize,
    /// Ended runs of this crew kept in the run store.
    pub keep_runs: u32,
    pub on_failure: OnFailure,
    pub on_limit: OnFailure,
}

pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(3600);
pub const DEFAULT_MAX_TOKENS: u64 = 1_000_000;
pub const DEFAULT_MAX_PARALLEL: u32 = 8;
pub const DEFAULT_KEEP_RUNS: u32 = 100;
pub const DEFAULT_MAX_ROUNDS: u32 = 2;
