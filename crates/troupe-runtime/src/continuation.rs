//! A run that continues a stored one: a resume (the same run, after a crash, a kill, a limit or
//! a failure), a replay from a task (a new run, linked to its parent, that keeps what does not
//! depend on that task) or a run answered from another run's recorded model calls.
//!
//! Loading reads the store; which tasks are kept is decided once the crew is prepared (for-each
//! tasks expand to one instance per document only then).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use troupe_crew::Crew;
use troupe_store::{CallRow, RunStore, StoreError};

use crate::cassette::{Cassette, Mode};
use crate::record::{TaskRecord, TaskStatus};

/// What kind of continuation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContinueMode {
    /// Continue `run` itself: its completed tasks are kept, its own record answers the calls
    /// the re-run tasks make again.
    Resume { run: String },
    /// A new run from `parent`: `from` (a task id, or a for-each task's id for all its
    /// instances) and everything that depends on it run again; the rest is kept.
    Replay { parent: String, from: String },
    /// A new run whose model calls are all answered from `source`'s recording.
    ReplayCalls { source: String },
}

impl ContinueMode {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Resume { .. } => "resume",
            Self::Replay { .. } => "replay",
            Self::ReplayCalls { .. } => "replay_calls",
        }
    }

    /// The stored run this continues.
    pub fn from_run(&self) -> &str {
        match self {
            Self::Resume { run } => run,
            Self::Replay { parent, .. } => parent,
            Self::ReplayCalls { source } => source,
        }
    }
}

/// How a stored run was started, beyond its crew file and inputs: what resuming or replaying it
/// needs to make the same requests. Kept in the store's `options`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StartOptions {
    /// The prompt fence's tag: requests fence data with it, so a resume must use the same.
    #[serde(default)]
    pub fence: Option<String>,
    /// Where the documents were read from.
    #[serde(default)]
    pub documents: Option<DocumentSource>,
    /// What each model (by `llm.model`) is, as far as requests depend on it, so that a run
    /// answered from this recording makes the same requests without loading or reaching it.
    #[serde(default)]
    pub models: std::collections::BTreeMap<String, ModelTraits>,
    /// The run whose recording answered this run's model calls, when it was one.
    #[serde(default)]
    pub replay_calls: Option<String>,
}

/// What of a model shapes the requests made to it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelTraits {
    pub name: String,
    /// `ChatModel::context_window`: prompts are cut to fit it.
    pub window: Option<u32>,
    /// `ChatModel::constrained_decoding`: structured answers are asked for differently.
    pub constrained: bool,
}

/// The document specs of a run and the directory they are relative to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocumentSource {
    pub specs: Vec<String>,
    pub base: std::path::PathBuf,
    pub skip_unreadable: bool,
}

/// A continuation, loaded from the store.
pub struct Continuation {
    pub mode: ContinueMode,
    /// The tasks of the run continued, as recorded.
    pub recorded: Vec<TaskRecord>,
    /// The recording that answers calls, when one does.
    pub cassette: Option<Arc<Cassette>>,
    pub options: StartOptions,
    /// For a resume: the calls already paid for, which the run's budget continues from.
    pub prepaid: Vec<CallRow>,
    /// Crew-file limits changed since the run started (a resume may raise a budget).
    pub changed_limits: Vec<String>,
}

impl Continuation {
    /// Reads what `mode` needs from the store.
    pub fn load(store: &dyn RunStore, mode: ContinueMode) -> Result<Self, StoreError> {
        let from = mode.from_run().to_string();
        let source = store.source(&from)?;
        let options: StartOptions = serde_json::from_value(source.options).unwrap_or_default();
        let recorded = store
            .tasks(&from)?
            .into_iter()
            .filter_map(|t| serde_json::from_value::<TaskRecord>(t.record).ok())
            .collect();
        let (cassette, prepaid) = match &mode {
            ContinueMode::Resume { .. } => {
                let calls = store.calls(&from)?;
                let cassette = Cassette::from_calls(&from, Mode::Resume, calls.clone());
                (Some(Arc::new(cassette)), calls)
            }
            ContinueMode::ReplayCalls { .. } => (
                Some(Arc::new(Cassette::load(store, &from, Mode::Only)?)),
                Vec::new(),
            ),
            ContinueMode::Replay { .. } => (None, Vec::new()),
        };
        Ok(Self {
            mode,
            recorded,
            cassette,
            options,
            prepaid,
            changed_limits: Vec::new(),
        })
    }

    /// The indexes of `crew`'s tasks that are kept as recorded, or why `--from` names no task.
    pub fn kept(&self, crew: &Crew) -> Result<Vec<usize>, String> {
        let completed = |id: &str| {
            self.recorded
                .iter()
                .any(|r| r.id == id && r.status == TaskStatus::Completed && r.output.is_some())
        };
        let keep = match &self.mode {
            ContinueMode::Resume { .. } => (0..crew.tasks.len())
                .filter(|&i| completed(&crew.tasks[i].id))
                .collect(),
            ContinueMode::ReplayCalls { .. } => Vec::new(),
            ContinueMode::Replay { from, .. } => {
                let rerun = downstream(crew, from)?;
                (0..crew.tasks.len())
                    .filter(|i| !rerun.contains(i) && completed(&crew.tasks[*i].id))
                    .collect()
            }
        };
        Ok(keep)
    }

    /// The recorded task `id`.
    pub fn record(&self, id: &str) -> Option<&TaskRecord> {
        self.recorded.iter().find(|r| r.id == id)
    }
}

/// `from` and every task that depends on it, directly or not. `from` is a task's id, or a
/// for-each task's id (all its instances).
pub fn downstream(crew: &Crew, from: &str) -> Result<BTreeSet<usize>, String> {
    let mut set: BTreeSet<usize> = crew
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.id == from || t.group.as_deref() == Some(from))
        .map(|(i, _)| i)
        .collect();
    if set.is_empty() {
        let ids: Vec<&str> = crew.tasks.iter().map(|t| t.id.as_str()).collect();
        return Err(format!(
            "the crew has no task `{from}`\n  hint: give one of: {}",
            ids.join(", ")
        ));
    }
    // Context points backwards only (the crew is checked for cycles), but not necessarily to
    // lower indexes: iterate to a fixed point.
    loop {
        let before = set.len();
        for (i, t) in crew.tasks.iter().enumerate() {
            if t.context.iter().any(|d| set.contains(d)) {
                set.insert(i);
            }
        }
        if set.len() == before {
            return Ok(set);
        }
    }
}

/// For a replay with a changed crew: every task kept (not `from`, not depending on it) must be
/// the same task in both crews — the same prompt, agent, context and output — or its kept
/// output would answer a question nobody asks any more. Compared before for-each expansion
/// (`extract[a.txt]` is compared as `extract`).
pub fn unchanged_upstream(parent: &Crew, new: &Crew, from: &str) -> Result<(), String> {
    let base = from.split_once('[').map_or(from, |(b, _)| b);
    let rerun = downstream(new, base)?;
    for (i, task) in new.tasks.iter().enumerate() {
        if rerun.contains(&i) {
            continue;
        }
        let Some(old) = parent.tasks.iter().find(|t| t.id == task.id) else {
            continue;
        };
        let (was, now) = (fingerprint(parent, old), fingerprint(new, task));
        if let Some(d) = crate::diff::first_difference(&was, &now) {
            return Err(format!(
                "task `{}` is not downstream of `{from}`, so its output would be kept, but the new crew changes it ({d})\n  hint: replay from `{}` (or from a task it depends on) so that it runs again",
                task.id, task.id
            ));
        }
    }
    Ok(())
}

/// What a task's output depends on in the crew file.
fn fingerprint(crew: &Crew, task: &troupe_crew::Task) -> serde_json::Value {
    let agent = task
        .agent
        .as_ref()
        .and_then(|a| crew.agents.iter().find(|x| &x.id == a));
    serde_json::json!({
        "description": task.description,
        "expected_output": task.expected_output,
        "agent": task.agent,
        "context": task.context.iter().map(|&d| crew.tasks.get(d).map(|t| t.id.clone())).collect::<Vec<_>>(),
        "output_file": task.output_file,
        "output_schema": task.output_schema,
        "review": format!("{:?}", task.review),
        "for_each": format!("{:?}", task.for_each),
        "agent_settings": agent.map(|a| serde_json::json!({
            "role": a.role,
            "goal": a.goal,
            "backstory": a.backstory,
            "llm": format!("{:?}", a.llm),
            "tools": a.tools,
        })),
    })
}
