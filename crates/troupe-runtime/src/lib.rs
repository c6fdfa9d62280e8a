//! # troupe-runtime
//!
//! Runs a validated crew: a coordinator hands tasks to agent actors over tokio channels, agents
//! think with a [`troupe_llm::ChatModel`] and act with [`tool::Tool`]s, every step is an
//! [`events::Event`], every limit is enforced and reported.
//!
//! Layout:
//! - [`coordinator`]: [`run`] — set-up, scheduling (sequential / parallel / hierarchical),
//!   checkpoints, stop conditions, shutdown;
//! - [`driver`]: one task from start to end — delegation, work, review rounds, acceptance;
//! - [`agent`]: agents as actors (inbox, handle, one tracked task per job);
//! - [`executor`]: the model ⇄ tool loop of one job, with its limits;
//! - [`prompt`]: every prompt the runtime sends;
//! - [`output`]: structured outputs (JSON extraction, schema check);
//! - [`tool`] and [`builtin`]: the tool trait, registry and the built-in tools;
//! - [`docs_tools`]: `docs.list`, `docs.search`, `docs.read` over the run's documents;
//! - [`fanout`]: `for_each` tasks become one instance per document;
//! - [`budget`]: the context window — token estimates, cutting prompts to fit;
//! - [`citations`] and [`report`]: citations found and checked, `report.md` / `report.json`;
//! - [`cited`]: the constrained writer's cited statements, rendered to Markdown;
//! - [`grounding`]: every statement of a text output checked: cited, verified, supported;
//! - [`launch`]: what a front end does before a run: documents read, a stored run made ready
//!   to resume (or refused, saying what changed);
//! - [`prepare`]: every check before a run, at once — the one path `validate` and `run` share;
//! - [`models`]: which model serves an agent;
//! - [`ledger`]: tokens, calls, cost, budgets;
//! - [`outdir`]: the output directory — locked, written beneath it only, atomically;
//! - [`record`]: `run.json` and task outputs on disk;
//! - [`recorded`]: every model call of a stored run, recorded in the run store;
//! - [`events`]: what happened, in order.

pub mod agent;
pub mod approval;
pub mod budget;
pub mod builtin;
pub mod call_writer;
pub mod cassette;
pub mod citations;
pub mod cited;
pub mod continuation;
pub mod coordinator;
pub mod diff;
pub mod docs_tools;
mod driver;
pub mod events;
pub mod executor;
pub mod fanout;
pub mod grounding;
pub mod launch;
pub mod ledger;
pub mod mcp;
pub mod models;
pub mod outdir;
pub mod output;
pub mod plugins;
pub mod prepare;
pub mod prompt;
pub mod record;
pub mod recorded;
pub mod report;
pub mod tool;

pub use coordinator::{EventSink, RunDocuments, RunError, RunOptions, RunReport, RunStatus, run};
pub use events::{Event, EventKind};
pub use tool::{Tool, ToolError, ToolRegistry};

/// The registry with every built-in tool.
pub fn default_tools() -> ToolRegistry {
    let mut r = ToolRegistry::default();
    builtin::register(&mut r);
    r
}
