//! The crew file as written on disk: serde + schemars types, nothing validated beyond shape.
//!
//! Every struct denies unknown keys, so a typo is an error rather than a silently ignored key.
//! Names follow CrewAI where the concept is the same (`role`, `goal`, `backstory`, `description`,
//! `expected_output`, `context`, `output_file`, `allow_delegation`) so that migrating is easy.
//! [`crate::validate`] turns these into the checked domain types in [`crate::model`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A crew: agents, the tasks they own, how tasks are run, and the limits that bound the run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrewFile {
    /// Path or URL of this file's JSON Schema, for editors. Ignored by Troupe.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Name of the crew; names the default output directory `runs/<name>`.
    pub name: String,
    /// What the crew is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Default model settings for every agent (an agent's own `llm` overrides them key by key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSpec>,
    /// Default values for `{placeholder}` inputs; `--input key=value` overrides them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// The agents of the crew.
    pub agents: Vec<AgentSpec>,
    /// The tasks, each owned by an agent (or assigned by the manager in `hierarchical`).
    pub tasks: Vec<TaskSpec>,
    /// How tasks are scheduled.
    #[serde(default)]
    pub process: Process,
    /// The agent that manages a `hierarchical` crew. Absent: a manager is generated from `llm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// Limits for the whole run and defaults for every task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
    /// WebAssembly tool plugins; their tools are `<id>.<tool>` in agents' `tools`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginSpec>,
    /// Documents the crew works on; agents read them with the `docs.*` tools, and tasks with
    /// `for_each` run once per document. `troupe run --docs` replaces `paths`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<DocumentsSpec>,
    /// MCP servers whose tools agents may use, as `<id>.<tool>`: a local server started as a
    /// process (`command`, over stdio) or a remote one (`url`, streamable HTTP). An MCP server
    /// runs outside the WebAssembly sandbox, with the rights of the process it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_servers: Vec<McpServerSpec>,
    /// Settings of tools (built-in or plugin) by name or `prefix.*` pattern, e.g.
    /// `{"docs.read": {"approve": true}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ToolSettingsSpec>,
}

/// How the tools a pattern names are used.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolSettingsSpec {
    /// Ask a person before each call (`troupe approve`, the server's approval endpoint, or a
    /// prompt when `troupe run` is on a terminal); a declined call reaches the model as an
    /// error. Default: false.
    #[serde(default)]
    pub approve: bool,
}

/// A person's approval of a task's output before the run goes on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// Whether the output needs a person's approval, after its checks and review. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// What the person is asked, shown with the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A tool plugin: a WebAssembly component or core module of the `troupe:plugin/tool-plugin`
/// world, run in a sandbox that grants nothing unless `grants` says so.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// Name of the plugin in tool names (`<id>.<tool>`): letters, digits, `_`, `-`.
    pub id: String,
    /// The `.wasm` (or `.wat`) file, relative to the crew file.
    pub path: String,
    /// Host capabilities the plugin may use. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<GrantsSpec>,
    /// Values the plugin reads with `host.config(key)`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Limits of each call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PluginLimitsSpec>,
    /// The SHA-256 of the file (64 hex digits): a file with another hash is refused before it
    /// runs. `troupe plugin lock FILE` writes it for every plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl CrewFile {
    /// The crew's `{placeholder}` inputs, each with its default when the file gives one (the
    /// placeholders filled per document are not inputs).
    pub fn inputs_wanted(&self) -> BTreeMap<String, Option<String>> {
        let mut inputs: BTreeMap<String, Option<String>> = BTreeMap::new();
        for t in &self.tasks {
            for text in std::iter::once(&t.description).chain(t.expected_output.iter()) {
                for p in crate::template::placeholders(text) {
                    if !crate::template::DOCUMENT_VARS.contains(&p.as_str()) {
                        inputs.entry(p).or_insert(None);
                    }
                }
            }
        }
        for (k, v) in &self.inputs {
            inputs.insert(k.clone(), Some(v.clone()));
        }
        inputs
    }

    /// Whether the crew works on documents (`for_each` tasks, `docs.*` tools, or a
    /// `documents` block).
    pub fn uses_documents(&self) -> bool {
        self.documents.is_some()
            || self.tasks.iter().any(|t| t.for_each.is_some())
            || self
                .agents
                .iter()
                .any(|a| a.tools.iter().any(|t| t.starts_with("docs.")))
    }
}

/// The plugins `troupe mcp serve` offers and what each may do: a crew's `plugins`, on their own.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Path or URL of this file's JSON Schema, for editors. Ignored by Troupe.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Each plugin as a crew's `plugins[]` entry writes it (`path` relative to this file).
    pub plugins: Vec<PluginSpec>,
}

/// An MCP server: `command` (a local process, spoken to over stdio) or `url` (streamable
/// HTTP), not both.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerSpec {
    /// Name of the server in tool names (`<id>.<tool>`): letters, digits, `_`, `-`.
    pub id: String,
    /// The program of a local server, found on `PATH` or relative to the crew file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Its environment, which is otherwise empty: variables and their values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Variables passed on from Troupe's own environment, by name (e.g. `PATH`, `HOME`, or a
    /// token the server needs), so that no secret is written in the crew file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<String>,
    /// Its working directory, relative to the crew file. Default: the crew file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The endpoint of a remote server (`https://…/mcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Request headers of a remote server, each taken from an environment variable: header
    /// name → variable name, e.g. `{"Authorization": "GITHUB_MCP_AUTH"}` sends the variable's
    /// value as it is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_env: BTreeMap<String, String>,
    /// Limits of the server and of each call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<McpLimitsSpec>,
}

/// Limits of an MCP server.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpLimitsSpec {
    /// How long a call may take, in milliseconds; a call that takes longer is abandoned (and
    /// cancelled at the server) and fails. Calls are never retried. Default: 30000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
    /// Size of a call's result given to the model, in KiB; a longer result is cut. Default: 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_kb: Option<u32>,
    /// How long the server may take to start and list its tools, in milliseconds. Default:
    /// 20000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout_ms: Option<u64>,
    /// A local server's stderr kept for the run's events, in KiB. Default: 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_kb: Option<u32>,
}

/// What a plugin may use beyond computing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantsSpec {
    /// List, read and search the run's documents.
    #[serde(default)]
    pub documents: bool,
    /// A key-value space private to this plugin for this run.
    #[serde(default)]
    pub kv: bool,
    /// Hosts the plugin may send HTTP GET requests to (`*.example.org` for its subdomains);
    /// redirects are followed only to these hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<String>,
}

/// Limits of one plugin call.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginLimitsSpec {
    /// Wall-clock deadline of a call, in milliseconds. Default: 2000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Memory of the plugin's instance, in MiB. Default: 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// Size of a call's result, in KiB. Default: 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_kb: Option<u32>,
    /// stdout and stderr kept per call, each, in KiB. Default: 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio_kb: Option<u32>,
    /// `host.log` lines kept per call. Default: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_lines: Option<u32>,
    /// Body size of one `http-get` response, in KiB; a larger one is refused. Default: 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_kb: Option<u32>,
    /// Keys plus values the plugin's key-value space holds over the run, in KiB; a `kv-set`
    /// beyond is refused to the plugin. Default: 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_kb: Option<u32>,
    /// Keys the plugin's key-value space holds over the run; a `kv-set` of a new key beyond is
    /// refused to the plugin. Default: 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_keys: Option<u32>,
}

/// Where the documents are and how they are cut into chunks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentsSpec {
    /// Files, directories (read recursively) and glob patterns, relative to the crew file.
    /// txt, Markdown, HTML and PDF are read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Size of a chunk in tokens (estimated). Default: 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_tokens: Option<u32>,
    /// Tokens shared by consecutive chunks when a boundary falls inside a paragraph. Default: 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_overlap: Option<u32>,
    /// What to do with a file that cannot be read: `fail` the run (default) or `skip` it
    /// (it is reported, never dropped silently).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_unreadable: Option<OnUnreadable>,
    /// Largest document file read, in MiB; a larger one is unreadable (reported with the
    /// reason). Default: 128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_mb: Option<u32>,
    /// Time one PDF may take to extract, in seconds; a slower one is unreadable. Default: 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf_timeout_s: Option<f64>,
}

/// What to do with an unreadable document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnUnreadable {
    #[default]
    Fail,
    Skip,
}

/// What a task fans out over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForEach {
    /// One instance of the task per document, run in parallel; `{document}`,
    /// `{document_title}` and `{document_text}` are filled per instance.
    Document,
}

/// How tasks are scheduled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Process {
    /// One task at a time, in file order (a task still waits for its `context`).
    #[default]
    Sequential,
    /// Every task starts as soon as every task in its `context` is done.
    Parallel,
    /// A manager agent decides which agent does each task and may re-assign it.
    Hierarchical,
}

/// Model settings. Every key is optional so that agents can override a single one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmSpec {
    /// Which provider serves the model. Absent: `openai` when an endpoint is configured
    /// (`base_url`, `OPENAI_BASE_URL` or the API key variable), else the embedded model — but
    /// only for a model it has (a GGUF file, an installed name, or none named): an API model
    /// name with no endpoint is an error, never a silent stand-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Model name as the endpoint knows it (`gpt-4o-mini`, `Qwen/Qwen2.5-7B-Instruct`: a name,
    /// even with a `/`), or for `local` a GGUF file (a path ending in `.gguf`, relative to the
    /// crew file) or a name in `$TROUPE_MODELS_DIR` (default `~/.cache/troupe/models`). Absent
    /// for `local`: the default model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// API base URL, e.g. `http://localhost:11434/v1`. Default: `$OPENAI_BASE_URL`, else OpenAI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key. Default: `OPENAI_API_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Cap on tokens generated per model call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The model's context window in tokens. Prompts are cut to fit it (least relevant document
    /// chunks first, with a `context_cut` event) and never sent over it. Default: the local
    /// model's window, or 128000 for an API model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// Timeout of one HTTP request, in seconds. Default: 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Attempts per model call on 429, 5xx and connection errors. Default: 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Requests per minute to this endpoint, shared by every agent using it. Default: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Largest response body read from the endpoint, in KiB: a server that never ends its
    /// answer, or sends far more than an answer needs, is cut off there (with a `limit_hit`
    /// event). Default: 64 bytes per token of `max_tokens` (16384 if unset), at least 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_kb: Option<u32>,
    /// Price in USD per million input (prompt) tokens, for cost accounting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cost_per_mtok: Option<f64>,
    /// Price in USD per million output (completion) tokens, for cost accounting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cost_per_mtok: Option<f64>,
    /// Price in USD per million input tokens served from the provider's prompt cache (OpenAI's
    /// `cached_tokens`): usually a fraction of `input_cost_per_mtok`, which applies when this is
    /// not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_cost_per_mtok: Option<f64>,
}

/// An agent: a persona with a model, tools and limits.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Identifier used by tasks (`agent`, `review.by`). Letters, digits, `_` and `-`.
    pub id: String,
    /// The agent's role, e.g. `Senior research analyst`.
    pub role: String,
    /// What the agent is trying to achieve.
    pub goal: String,
    /// Background that shapes how the agent works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backstory: Option<String>,
    /// Model settings for this agent, merged over the crew's `llm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSpec>,
    /// Tools this agent may call: exact names or `prefix.*` patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// In a `hierarchical` crew, whether the manager may hand this agent work. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_delegation: Option<bool>,
    /// Limits for this agent's tasks, over the crew's `limits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AgentLimitsSpec>,
}

/// A task: what to do, who does it, what it needs, where its output goes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Identifier used by other tasks' `context`. Letters, digits, `_` and `-`.
    pub id: String,
    /// What to do. `{name}` placeholders are filled from the run's inputs.
    pub description: String,
    /// What a good answer looks like. `{name}` placeholders are filled from the run's inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_output: Option<String>,
    /// The agent that does the task. Required unless the process is `hierarchical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Tasks whose outputs this task receives; it starts only when they are done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    /// File (relative to the output directory) that receives the task's final output. For a
    /// `for_each` task, each instance writes `<name>.<document>.<ext>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<String>,
    /// Run the task once per document (`"document"`), in parallel; tasks that take it as
    /// `context` receive every instance's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<ForEach>,
    /// JSON Schema the output must satisfy; the answer is then JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json_object")]
    pub output_schema: Option<serde_json::Value>,
    /// Send the output to a reviewer that approves it or asks for a revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewSpec>,
    /// Wait for a person to approve the output (after its checks and review), ask for a
    /// revision, or reject it. The run pauses (`awaiting_approval`) until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
    /// Limits for this task, over its agent's and the crew's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AgentLimitsSpec>,
}

/// The review of a task's output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewSpec {
    /// The reviewing agent.
    pub by: String,
    /// Most review rounds; after the last the latest version stands. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rounds: Option<u32>,
    /// What the reviewer checks, added to its instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria: Option<String>,
}

/// The provider of an agent's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Any OpenAI-compatible API: OpenAI, Ollama, vLLM, llama.cpp server, LM Studio, …
    Openai,
    /// A GGUF model run in-process (llama.cpp).
    Local,
    /// `openai` when an endpoint is configured, else the embedded model, standing in for a
    /// model it does not have (with a `model_fallback` event saying so).
    Auto,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Local => "local",
            Self::Auto => "auto",
        }
    }
}

/// What to do when the same tool is called with the same arguments again and again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RepeatPolicy {
    /// End the task with what it has.
    #[default]
    Stop,
    /// Tell the model the call is a repeat and let it go on (still bounded by `max_iterations`).
    Warn,
}

/// What the run does after a task ends on a limit or an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Keep going: later tasks get whatever the failed task produced, marked as incomplete.
    Continue,
    /// Stop the run; finished outputs stay on disk.
    #[default]
    Stop,
}

/// Limits that apply per task; settable on the crew, an agent or a task.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentLimitsSpec {
    /// Model calls per task attempt. Default: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    /// Wall time per task in seconds, review rounds included. Default: 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_timeout_s: Option<f64>,
    /// Identical tool calls (same tool, same arguments) allowed in one task before `on_repeat`
    /// applies. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_repeated_tool_calls: Option<u32>,
    /// What a repeated identical tool call does. Default: `stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_repeat: Option<RepeatPolicy>,
    /// Attempts to fix an answer that fails `output_schema`. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_retries: Option<u32>,
}

/// Limits for the whole run, plus per-task defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Model calls per task attempt. Default: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    /// Wall time per task in seconds, review rounds included. Default: 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_timeout_s: Option<f64>,
    /// Identical tool calls allowed in one task before `on_repeat` applies. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_repeated_tool_calls: Option<u32>,
    /// What a repeated identical tool call does. Default: `stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_repeat: Option<RepeatPolicy>,
    /// Attempts to fix an answer that fails `output_schema`. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_retries: Option<u32>,
    /// Wall time of the whole run in seconds. Default: 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_timeout_s: Option<f64>,
    /// Tokens (prompt + completion) for the whole run. Default: 1000000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Cost of the whole run in USD, when prices are set in `llm`. Default: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// Tasks running at the same time (per-document instances, parallel and hierarchical
    /// crews): the rest wait for a free slot. Default: 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// Ended runs of this crew kept in the run store: when a run starts, older ones are deleted
    /// (running and crashed runs are always kept: they can be resumed). Default: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_runs: Option<u32>,
    /// Delegations (assignments and re-assignments) a manager may make in one run. Default: 3 per task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delegations: Option<u32>,
    /// What the run does when a task fails (ends with no usable output). Default: `stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    /// What the run does when a limit ends a task early (its partial output is kept and marked).
    /// Default: `continue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_limit: Option<OnFailure>,
}

fn any_json_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "A JSON Schema (draft 2020-12 or draft 7) that the task's output must satisfy."
    })
}
