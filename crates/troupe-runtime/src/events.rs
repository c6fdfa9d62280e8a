//! Every step of a run is an [`Event`]. Nothing in the runtime prints; the CLI renders events,
//! `events.jsonl` records them.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

/// One thing that happened, with when.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Order in `events.jsonl`, from 1 (assigned by the single consumer, so it is total).
    pub seq: u64,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Milliseconds since the run started.
    pub elapsed_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted {
        crew: String,
        process: String,
        tasks: usize,
        agents: usize,
        out_dir: String,
    },
    /// The run continues an earlier one: `resume` (the same run, after a crash or a stop),
    /// `replay` (a new run from a task of `from_run`) or `replay_calls` (a new run whose model
    /// calls are answered from `from_run`'s recording).
    RunContinued {
        mode: String,
        from_run: String,
        /// Tasks kept as they were, with their outputs.
        kept: Vec<String>,
        /// Tasks that run (again).
        rerun: Vec<String>,
        /// Recorded model calls that can answer requests of this run.
        recorded_calls: usize,
        /// Crew-file `limits` that differ from the run's start (a resume may raise a budget).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        changed_limits: Vec<String>,
    },
    /// A model or tool call was answered from a recording instead of being made: no tokens
    /// were spent on it.
    CallReplayed {
        /// `model` or `tool`.
        kind: String,
        task: String,
        agent: String,
        from_run: String,
        /// The call's number in `from_run`'s record.
        call: u64,
    },
    /// Older runs of this crew were deleted from the run store (`store.keep_runs`).
    RunsPruned {
        removed: usize,
        keep: usize,
        key: String,
    },
    /// The run's documents were read, chunked and indexed.
    DocumentsLoaded {
        documents: usize,
        chunks: usize,
        tokens: usize,
        duration_ms: u64,
        /// Files left out (`on_unreadable: skip`), each with why.
        skipped: Vec<String>,
        /// Files left out on purpose (hidden, symlink loops, the same file twice), each with why.
        ignored: Vec<String>,
        /// The text encoding each text document was decoded from (`windows-1252`, `UTF-8`, …).
        encodings: std::collections::BTreeMap<String, String>,
    },
    TaskStarted {
        task: String,
        agent: String,
    },
    /// A prompt was cut to fit the model's context window (`llm.context_window`).
    ContextCut {
        task: String,
        agent: String,
        window: u32,
        tokens_before: usize,
        tokens_after: usize,
        /// Document chunks left out, least relevant first.
        dropped_chunks: Vec<String>,
        /// Outputs of earlier tasks that were shortened.
        truncated_context: Vec<String>,
        /// Earlier tool results removed from the conversation.
        dropped_tool_results: usize,
    },
    /// A plugin was loaded: compiled, or its compiled code taken from the on-disk cache.
    PluginLoaded {
        plugin: String,
        path: String,
        /// `component`, or `core_module` (run as a core module, WASI preview 1 from the host).
        kind: String,
        tools: Vec<String>,
        /// `hit` (not compiled), `stored` (compiled and cached) or `compiled` (cache off).
        cache: troupe_plugin::CacheOutcome,
        /// Why the cache could not be used, when it could not.
        cache_note: Option<String>,
        /// The SHA-256 of the file that was loaded (what `sha256` pins).
        sha256: String,
        duration_ms: u64,
    },
    /// An MCP server was started (stdio) or contacted (http), and listed its tools.
    McpServerStarted {
        server: String,
        /// `stdio` or `http`.
        transport: String,
        /// Its tools, as the server names them (agents name them `<server>.<tool>`).
        tools: Vec<String>,
        duration_ms: u64,
    },
    /// A tool of an MCP server was called (once: MCP calls are never retried).
    McpCall {
        server: String,
        tool: String,
        ok: bool,
        duration_ms: u64,
        /// The limit that ended the call, as its key's last part.
        limit: Option<String>,
        /// The start of the error, when it failed.
        error: Option<String>,
    },
    /// A line a local MCP server wrote on stderr (kept up to `limits.stderr_kb`).
    McpStderr {
        server: String,
        line: String,
    },
    /// A plugin tool ran in its sandbox.
    PluginCall {
        plugin: String,
        tool: String,
        ok: bool,
        duration_ms: u64,
        /// The limit that stopped the call, as its key.
        limit: Option<String>,
        /// Capabilities asked for without a grant, each naming the key that grants it.
        denied: Vec<String>,
        /// Every capability request denied in the call (more than `denied` keeps when the
        /// plugin asked in a loop; the 64th stops the call).
        denied_total: usize,
        logs: Vec<String>,
        stdout: String,
        stderr: String,
    },
    /// The citations of an answer were checked against the documents.
    CitationsChecked {
        task: String,
        agent: String,
        attempt: u32,
        total: usize,
        verified: usize,
        /// What is wrong with each failed citation.
        failed: Vec<String>,
    },
    /// The statements of a text answer were checked against the documents.
    StatementsChecked {
        task: String,
        agent: String,
        attempt: u32,
        /// Statements that make a claim.
        statements: usize,
        cited: usize,
        verified: usize,
        supported: usize,
        echoes_prompt: bool,
        /// Each failed statement with why.
        failed: Vec<String>,
    },
    /// A manager handed a task to an agent (hierarchical process).
    TaskDelegated {
        task: String,
        agent: String,
        by: String,
        delegation: u32,
        reason: String,
    },
    LlmRequest {
        task: String,
        agent: String,
        model: String,
        iteration: u32,
        messages: usize,
        tools: usize,
    },
    LlmRetry {
        task: String,
        agent: String,
        attempt: u32,
        reason: String,
        /// The wait made before the next attempt.
        wait_ms: u64,
        /// Whether the wait came from the server's `Retry-After`.
        retry_after: bool,
        /// The wait the server asked for, when it sent `Retry-After`.
        retry_after_ms: Option<u64>,
        /// The server asked for longer than the cap; `wait_ms` is the cap.
        retry_after_capped: bool,
    },
    /// The model's server rejected a form of request; this call and the model's later calls use
    /// the next form (`structured_output`: `json_schema` → `json_object` → `prompt`).
    ProviderFallback {
        task: String,
        agent: String,
        feature: String,
        from: String,
        to: String,
        /// The server's rejection: status and message.
        reason: String,
    },
    LlmResponse {
        task: String,
        agent: String,
        iteration: u32,
        input_tokens: u64,
        output_tokens: u64,
        /// Of `input_tokens`, those served from a cache (the embedded model's reused KV prefix,
        /// an API's cached prompt tokens).
        #[serde(default)]
        cached_input_tokens: u64,
        latency_ms: u64,
        tool_calls: usize,
        finish_reason: Option<String>,
    },
    ToolCall {
        task: String,
        agent: String,
        tool: String,
        arguments: String,
        ok: bool,
        duration_ms: u64,
        /// The start of the result or error, for display.
        result: String,
    },
    /// An answer failed its `output_schema` and went back to the model.
    OutputInvalid {
        task: String,
        agent: String,
        attempt: u32,
        errors: Vec<String>,
    },
    /// A review round began: the deterministic checks, then (when they pass) the reviewer.
    ReviewStarted {
        task: String,
        /// The reviewing agent.
        reviewer: String,
        round: u32,
    },
    ReviewVerdict {
        task: String,
        reviewer: String,
        round: u32,
        approved: bool,
        feedback: String,
    },
    /// A person is asked to approve a task's output or a tool call. `answered`: the store
    /// already holds the answer (a resumed run reaching a request that was decided).
    ApprovalRequested {
        task: String,
        kind: crate::approval::ApprovalKind,
        /// The request's number among the task's requests, from 1.
        n: u32,
        message: Option<String>,
        agent: String,
        /// The start of the output, or the tool call, for display.
        subject: String,
        answered: bool,
    },
    /// A person answered an approval request (`recorded`: the answer was given before this
    /// process asked, through the store).
    ApprovalDecided {
        task: String,
        kind: crate::approval::ApprovalKind,
        n: u32,
        decision: crate::approval::Verdict,
        feedback: Option<String>,
        by: Option<String>,
        recorded: bool,
    },
    /// `max_rounds` reviews were used up: the latest version stands.
    ReviewRoundsExhausted {
        task: String,
        rounds: u32,
    },
    /// A limit ended or changed something. `key` is the crew-file key that sets it.
    LimitHit {
        task: Option<String>,
        agent: Option<String>,
        limit: String,
        value: String,
        key: String,
        action: String,
    },
    Warning {
        task: Option<String>,
        message: String,
    },
    /// The embedded model stands in for the model an agent names: the crew asked for
    /// `"provider": "auto"` and no endpoint is configured.
    ModelFallback {
        agent: String,
        requested: String,
        used: String,
        reason: String,
    },
    TaskFinished {
        task: String,
        agent: String,
        status: crate::record::TaskStatus,
        duration_ms: u64,
        input_tokens: u64,
        output_tokens: u64,
        output_file: Option<String>,
        error: Option<String>,
    },
    /// `report.md` and `report.json` were written: what their checks found.
    ReportWritten {
        files: Vec<String>,
        checks: crate::report::ReportChecks,
    },
    RunFinished {
        status: String,
        duration_ms: u64,
        input_tokens: u64,
        output_tokens: u64,
        cost_usd: Option<f64>,
    },
}

/// Emits events in order to one consumer (the run's event pump). Cheap to clone.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::UnboundedSender<Event>,
    start: Instant,
}

impl Events {
    /// A new emitter and the stream of what it emits. Unbounded on purpose: an agent never waits
    /// for a slow terminal; events are small and a run emits a bounded number of them.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                inner: Arc::new(Inner {
                    tx,
                    start: Instant::now(),
                }),
            },
            rx,
        )
    }

    pub fn emit(&self, kind: EventKind) {
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let _ = self.inner.tx.send(Event {
            seq: 0,
            ts_ms,
            elapsed_ms: ms(self.inner.start.elapsed()),
            kind,
        });
    }
}

pub(crate) fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The first `n` characters of `s`, with an ellipsis when cut.
pub(crate) fn preview(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().nth(n).is_some() {
        out.push('…');
    }
    out
}
