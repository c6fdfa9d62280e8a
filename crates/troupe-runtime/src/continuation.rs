//! A run that continues a stored one: a resume (the same run, after a crash, a kill, a limit or
//! a failure), a replay from a task (a new run, linked to its parent, that keeps what does not
//! depend on that task) or a run answered from another run's recorded model calls.
//!
//! Loading reads the store; which tasks are kept is decided once the crew is prepared (for-each
//! tasks expand to one instance per document only then).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use troupe_crew::Crew;
use troupe_docs::Corpus;
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
    /// The SHA-256 of each document the run continued had, by id.
    pub documents: BTreeMap<String, String>,
}

impl Continuation {
    /// Reads what `mode` needs from the store.
    pub fn load(store: &dyn RunStore, mode: ContinueMode) -> Result<Self, StoreError> {
        let from = mode.from_run().to_string();
        let source = store.source(&from)?;
        let options: StartOptions = serde_json::from_value(source.options).unwrap_or_default();
        let documents = recorded_documents(&source.documents);
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
            documents,
        })
    }

    /// The indexes of `crew`'s tasks that are kept as recorded, or why `--from` names no task.
    /// A task is kept only when every task it depends on is kept too (a dependent of a re-run
    /// task would be built on an output that no longer exists). A replay on documents that
    /// differ from the parent's keeps only the per-document instances of unchanged documents.
    pub fn kept(&self, crew: &Crew, corpus: Option<&Corpus>) -> Result<Vec<usize>, String> {
        let completed = |id: &str| {
            self.recorded
                .iter()
                .any(|r| r.id == id && r.status == TaskStatus::Completed && r.output.is_some())
        };
        let mut keep: BTreeSet<usize> = match &self.mode {
            ContinueMode::Resume { .. } => (0..crew.tasks.len())
                .filter(|&i| completed(&crew.tasks[i].id))
                .collect(),
            ContinueMode::ReplayCalls { .. } => BTreeSet::new(),
            ContinueMode::Replay { from, .. } => {
                let rerun = downstream(crew, from)?;
                (0..crew.tasks.len())
                    .filter(|i| !rerun.contains(i) && completed(&crew.tasks[*i].id))
                    .collect()
            }
        };
        if matches!(self.mode, ContinueMode::Replay { .. }) {
            let now = document_hashes(corpus);
            if now != self.documents {
                keep.retain(|&i| {
                    crew.tasks[i]
                        .document
                        .as_ref()
                        .is_some_and(|d| now.contains_key(d) && now.get(d) == self.documents.get(d))
                });
            }
        }
        loop {
            let before = keep.len();
            let now = keep.clone();
            keep.retain(|&i| crew.tasks[i].context.iter().all(|d| now.contains(d)));
            if keep.len() == before {
                return Ok(keep.into_iter().collect());
            }
        }
    }

    /// The recorded task `id`.
    pub fn record(&self, id: &str) -> Option<&TaskRecord> {
        self.recorded.iter().find(|r| r.id == id)
    }
}

/// The SHA-256 of each document's text, by id: what a run records of its documents.
pub fn document_hashes(corpus: Option<&Corpus>) -> BTreeMap<String, String> {
    corpus
        .map(|c| {
            c.documents()
                .iter()
                .map(|d| (d.id.clone(), crate::recorded::request_hash(&d.text)))
                .collect()
        })
        .unwrap_or_default()
}

/// The store's record of a run's documents (`[{"id", "sha256"}]`), by id.
pub fn recorded_documents(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some((
                d.get("id")?.as_str()?.to_string(),
                d.get("sha256")?.as_str()?.to_string(),
            ))
        })
        .collect()
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
        // One instance of a for-each task re-runs; its siblings are kept, so the task they
        // are instances of must be unchanged.
        if rerun.contains(&i) && !(task.id == base && from != base) {
            continue;
        }
        let Some(old) = parent.tasks.iter().find(|t| t.id == task.id) else {
            continue;
        };
        let (was, now) = (fingerprint(parent, old), fingerprint(new, task));
        if let Some(d) = crate::diff::first_difference(&was, &now) {
            if task.id == base && from != base {
                return Err(format!(
                    "the new crew changes the for-each task `{base}` ({d}), but only its instance `{from}` would run again: the others would keep outputs of the old task\n  hint: replay from `{base}` to run every instance again"
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn crew() -> Crew {
        let text = serde_json::json!({
            "name": "c", "llm": {"model": "m"},
            "agents": [{"id": "a", "role": "R", "goal": "G"}],
            "tasks": [
                {"id": "first", "agent": "a", "description": "one"},
                {"id": "second", "agent": "a", "description": "two", "context": ["first"]},
                {"id": "other", "agent": "a", "description": "three"}
            ]
        })
        .to_string();
        troupe_crew::parse(
            troupe_crew::Source::new("c.json", text),
            ".".into(),
            &Default::default(),
        )
        .unwrap()
    }

    fn record(id: &str, status: TaskStatus) -> TaskRecord {
        let mut r = TaskRecord::new(id, Some("a"));
        r.status = status;
        r.output = Some(format!("output of {id}"));
        r
    }

    fn resume(recorded: Vec<TaskRecord>) -> Continuation {
        Continuation {
            mode: ContinueMode::Resume { run: "r".into() },
            recorded,
            cassette: None,
            options: StartOptions::default(),
            prepaid: Vec::new(),
            changed_limits: Vec::new(),
            documents: Default::default(),
        }
    }

    /// `second` completed on `first`'s partial output (a limit ended `first`; `on_limit:
    /// continue` let `second` run): `first` runs again, so `second` must too.
    #[test]
    fn a_task_is_kept_only_when_what_it_depends_on_is_kept() {
        let crew = crew();
        let c = resume(vec![
            record("first", TaskStatus::LimitReached),
            record("second", TaskStatus::Completed),
            record("other", TaskStatus::Completed),
        ]);
        assert_eq!(c.kept(&crew, None).unwrap(), [2]);
        let c = resume(vec![
            record("first", TaskStatus::Completed),
            record("second", TaskStatus::Failed),
            record("other", TaskStatus::Completed),
        ]);
        assert_eq!(c.kept(&crew, None).unwrap(), [0, 2]);
    }

    #[test]
    fn a_replay_keeps_what_is_not_downstream_and_names_unknown_tasks() {
        let crew = crew();
        let mut c = resume(vec![
            record("first", TaskStatus::Completed),
            record("second", TaskStatus::Completed),
            record("other", TaskStatus::Completed),
        ]);
        c.mode = ContinueMode::Replay {
            parent: "p".into(),
            from: "first".into(),
        };
        assert_eq!(c.kept(&crew, None).unwrap(), [2]);
        c.mode = ContinueMode::Replay {
            parent: "p".into(),
            from: "nope".into(),
        };
        let err = c.kept(&crew, None).unwrap_err();
        assert!(
            err.contains("no task `nope`") && err.contains("first, second, other"),
            "{err}"
        );
    }
}
