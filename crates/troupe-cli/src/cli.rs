//! Command-line arguments (clap derive), kept apart from what the commands do.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "troupe",
    version,
    about = "Run crews of AI agents described in a JSON file",
    long_about = "Run crews of AI agents described in a JSON file.\n\nA crew names agents (role, goal, tools), the tasks they own and how they run. `troupe run` executes it and writes the outputs, run.json and events.jsonl to the output directory."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a crew
    Run(RunArgs),
    /// Check a crew file and report every problem in it
    Validate(ValidateArgs),
    /// List the runs in the run store
    Runs(RunsArgs),
    /// Show one stored run: its tasks, their status, usage and output, and what ended it
    Show(ShowArgs),
    /// Continue a stored run that crashed, was interrupted or stopped by a limit or a failure:
    /// completed tasks are kept, recorded calls are not paid for again
    Resume(ResumeArgs),
    /// Run a stored run again from one task: a new run keeps every output that does not depend
    /// on it and re-runs the task and what depends on it
    Replay(ReplayArgs),
    /// Write a stored run's output directory (outputs, run.json, events.jsonl) again
    Export(ExportArgs),
    /// Serve the HTTP API, live events and the web page: start runs, watch them, approve their
    /// tasks, read their reports
    Serve(ServeArgs),
    /// Answer a task's approval request (approve, revise with feedback, or reject) and continue
    /// the paused run
    Approve(ApproveArgs),
    /// Print the crew file's JSON Schema (or a plugin policy's)
    Schema(SchemaArgs),
    /// Inspect or try a WebAssembly tool plugin
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Serve plugins and crews to MCP clients
    #[command(subcommand)]
    Mcp(McpCommand),
}

#[derive(Subcommand, Debug)]
pub enum McpCommand {
    /// Serve WebAssembly plugins (in the sandbox, with the grants and limits of a policy) and
    /// crews as tools to an MCP client, over stdio: the client starts this command
    Serve(McpServeArgs),
}

#[derive(Args, Debug)]
pub struct McpServeArgs {
    /// A plugin to serve (.wasm or .wat): its tools are `<id>.<tool>`, the id from its policy
    /// entry, else its file name. Repeatable
    #[arg(long = "plugin", value_name = "FILE", num_args = 1..)]
    pub plugins: Vec<PathBuf>,
    /// What the plugins may do: `{"plugins": [...]}`, each entry as in a crew's `plugins`
    /// (id, path, grants, limits, config). Without `--plugin`, every plugin it lists is served;
    /// a plugin it does not list gets no grants and the default limits
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// A crew to serve as one tool, named after the crew, whose arguments are its inputs (and
    /// documents). Repeatable
    #[arg(long = "crew", value_name = "FILE", num_args = 1..)]
    pub crews: Vec<PathBuf>,
    /// Documents for the plugins granted `documents` (files, directories, globs)
    #[arg(long = "docs", value_name = "PATH", num_args = 1..)]
    pub docs: Vec<String>,
    /// Where crew runs write their outputs: a directory `<crew>-<run id>` each
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub out: PathBuf,
    /// A directory the `documents` of a crew tool's call may name files under (repeatable;
    /// default: the current directory). A client is not you: what a run reads goes to its model
    #[arg(long = "docs-root", value_name = "DIR")]
    pub docs_roots: Vec<PathBuf>,
    /// Print nothing on stderr but errors (else: what is served, each plugin call's events,
    /// each crew run's start and end)
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Show a plugin's world version, kind and tools with their argument schemas
    Inspect {
        /// The plugin (.wasm component or core module, or .wat)
        file: PathBuf,
    },
    /// Run one call in the sandbox and print its result and what it used
    Call(PluginCallArgs),
    /// Pin every plugin of a crew file (or a plugin policy) to the SHA-256 of its file as it is
    /// now: a `sha256` in each `plugins[]` entry, the rest of the file kept as written
    Lock {
        /// The crew file or policy
        file: PathBuf,
    },
    /// Make a new plugin from a skeleton that `plugins/build.sh` builds
    New {
        /// The plugin's name (lowercase letters, digits, `_`)
        name: String,
        /// c, cpp, zig, go, assemblyscript, js or python
        #[arg(long)]
        lang: String,
        /// Where to make the plugin's directory
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct PluginCallArgs {
    /// The plugin (.wasm component or core module, or .wat)
    pub file: PathBuf,
    /// The tool to call
    pub tool: String,
    /// Its arguments, as JSON
    #[arg(default_value = "{}")]
    pub args: String,
    /// Grant a capability: `documents`, `kv`, or `http=HOST` (repeatable)
    #[arg(long = "grant", value_name = "GRANT")]
    pub grants: Vec<String>,
    /// Documents for the `documents` grant (files, directories, globs)
    #[arg(long = "docs", value_name = "PATH", num_args = 1..)]
    pub docs: Vec<String>,
    /// A config value the plugin reads with `host.config` (repeatable)
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Deadline of the call in milliseconds
    #[arg(long, default_value_t = 2000)]
    pub deadline_ms: u64,
    /// Memory cap in MiB
    #[arg(long, default_value_t = 64)]
    pub memory_mb: usize,
}

#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Fill the `{KEY}` placeholders of task descriptions (repeatable)
    #[arg(long = "input", short = 'i', value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// Fill `{KEY}` with the contents of a file (repeatable)
    #[arg(long = "input-file", value_name = "KEY=PATH")]
    pub input_files: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct DocArgs {
    /// Documents to work on: files, directories (read recursively) or globs; txt, Markdown, HTML
    /// and PDF. Repeatable. Replaces the crew file's `documents.paths`
    #[arg(long = "docs", short = 'd', value_name = "PATH", num_args = 1..)]
    pub docs: Vec<String>,
    /// Leave out documents that cannot be read (each is reported) instead of failing
    #[arg(long)]
    pub skip_unreadable: bool,
}

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The run store (SQLite) [default: $TROUPE_STORE, else $XDG_DATA_HOME/troupe/runs.db, else
    /// ~/.local/share/troupe/runs.db]
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only runs of this crew (its `name`)
    #[arg(long)]
    pub crew: Option<String>,
    /// Only runs with this status: queued, running, crashed, awaiting_approval, completed, failed,
    /// interrupted, timed_out, budget_exhausted
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many runs, newest first
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The run's id, or enough of its start to be unique
    pub run: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ProgressArgs {
    /// Print no progress, only the final summary and errors
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Also print every event to stdout
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub events: Option<EventFormat>,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// The run's id, or enough of its start to be unique
    pub run: String,
    /// Continue in this output directory instead of the run's own (which another run may have
    /// written since); the kept outputs are written there too
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The run to start from: its id, or enough of its start to be unique
    pub run: String,
    /// The task to run again, with everything that depends on it (a for-each task's id re-runs
    /// all its instances; `extract[a.txt]` one of them)
    #[arg(long, value_name = "TASK")]
    pub from: String,
    /// Run this crew file instead of the run's own (as it is now on disk)
    #[arg(long, value_name = "FILE")]
    pub crew: Option<PathBuf>,
    /// Change inputs of the run (the others stay as they were)
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Documents instead of the run's own
    #[command(flatten)]
    pub docs: DocArgs,
    /// Output directory [default: the run's, with `-replay` appended]
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs `--token-env`
    #[arg(long, default_value = "127.0.0.1:7700", value_name = "ADDR")]
    pub bind: String,
    /// Offer the crew files of this directory by name (`GET /v1/crews`)
    #[arg(long, value_name = "DIR")]
    pub crews: Option<PathBuf>,
    /// Where uploaded documents and the runs' output directories go [default: the store's
    /// directory, `server/`]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Runs executing at once; more wait in the queue
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub max_runs: usize,
    /// Runs waiting for a slot; beyond, a new run is refused (429, with `Retry-After`)
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_queue: usize,
    /// The environment variable holding the token every request must carry
    /// (`Authorization: Bearer …`)
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Largest JSON request body, in KiB
    #[arg(long, default_value_t = 1024, value_name = "KIB")]
    pub max_body_kb: usize,
    /// Largest document upload (one request), in MiB
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub max_upload_mb: usize,
    /// Serve this plugin's tools over MCP at `/mcp` (streamable HTTP), in the sandbox, as
    /// `troupe mcp serve --plugin` does. Repeatable
    #[arg(long = "mcp-plugin", value_name = "FILE", num_args = 1..)]
    pub mcp_plugins: Vec<PathBuf>,
    /// What the plugins served at `/mcp` may do (as `troupe mcp serve --policy`); without
    /// `--mcp-plugin`, every plugin it lists is served
    #[arg(long, value_name = "FILE")]
    pub mcp_policy: Option<PathBuf>,
    #[command(flatten)]
    pub otlp: OtlpArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The run's id, or enough of its start to be unique
    pub run: String,
    /// The task that waits (its key, e.g. `report` or `extract[a.txt]`)
    pub task: String,
    /// Send the output back to its author with this feedback (for a tool call: decline it, and
    /// the model reads the feedback)
    #[arg(long, value_name = "FEEDBACK", conflicts_with = "reject")]
    pub revise: Option<String>,
    /// Reject the output: the task ends `rejected` (for a tool call: decline it)
    #[arg(long)]
    pub reject: bool,
    /// A note kept with the answer (the reason of a rejection)
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Only record the answer; do not continue the run here
    #[arg(long)]
    pub no_continue: bool,
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The run's id, or enough of its start to be unique
    pub run: String,
    /// Where to write it
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The crew file (JSON)
    pub crew: PathBuf,
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Output directory [default: runs/<crew name>]
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub docs: DocArgs,
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Answer every model call from this stored run's recording, and fail on the first request
    /// it did not record (showing how it differs): a regression run without a model or a key
    #[arg(long, value_name = "RUN")]
    pub replay_calls: Option<String>,
    #[command(flatten)]
    pub otlp: OtlpArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug, Clone)]
pub struct OtlpArgs {
    /// Send each run's trace (spans of the run, its tasks, review rounds, model and tool calls)
    /// to this OpenTelemetry collector over OTLP/HTTP, e.g. `http://127.0.0.1:4318`
    #[arg(long, value_name = "URL")]
    pub otlp: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFormat {
    /// One JSON object per line
    Jsonl,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The crew file (JSON)
    pub crew: PathBuf,
    #[command(flatten)]
    pub inputs: InputArgs,
    /// The documents the run will get (`--docs`), checked as `run` checks them
    #[command(flatten)]
    pub docs: DocArgs,
}

#[derive(Args, Debug)]
pub struct SchemaArgs {
    /// The schema of a plugin policy (`troupe mcp serve --policy`) instead of a crew file's
    #[arg(long)]
    pub policy: bool,
    /// Write the schema to this file instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}
