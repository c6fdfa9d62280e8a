//! What a front end (the CLI, the server) does before [`crate::run`]: reads a run's documents
//! from where they are, and makes a stored run ready to resume — refusing, with what changed and
//! what to do instead, when it cannot make the requests the run made. One path, so that
//! `troupe resume` and `POST /v1/runs/{id}/resume` refuse and keep the same things.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use troupe_crew::{Crew, Source};
use troupe_docs::{ChunkOptions, Corpus, DocError, LoadOptions};
use troupe_store::{RunSource, Standing, Store};

use crate::RunDocuments;
use crate::continuation::{self, Continuation, ContinueMode, DocumentSource};
use crate::diff::first_difference;

/// Why a run cannot start or continue as asked: a message for the user, with its `hint:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LaunchError {
    pub kind: LaunchErrorKind,
    pub message: String,
}

/// What kind of refusal it is, for a front end that answers with a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchErrorKind {
    /// No such run, or not enough of its id.
    NotFound,
    /// The run cannot be continued in the state it is in (completed, running, …).
    Conflict,
    /// What the run needs (its crew file, documents) is gone, changed or invalid.
    Invalid,
}

impl LaunchError {
    fn new(kind: LaunchErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(LaunchErrorKind::Invalid, message)
    }
}

impl From<troupe_store::StoreError> for LaunchError {
    fn from(e: troupe_store::StoreError) -> Self {
        let kind = match e {
            troupe_store::StoreError::NoSuchRun(_) | troupe_store::StoreError::Ambiguous { .. } => {
                LaunchErrorKind::NotFound
            }
            troupe_store::StoreError::Completed(_) => LaunchErrorKind::Conflict,
            _ => LaunchErrorKind::Invalid,
        };
        Self::new(kind, e.to_string())
    }
}

/// The documents named by `specs` (files, directories, globs) relative to `base`, loaded and
/// chunked as the crew's `documents` settings say; `None` when `specs` names none.
pub fn documents(
    source: &DocumentSource,
    crew: &Crew,
) -> Result<Option<RunDocuments>, LaunchError> {
    let settings = crew.documents.clone().unwrap_or_default();
    let (specs, base, skip_unreadable) = (&source.specs, &source.base, source.skip_unreadable);
    if specs.is_empty() {
        return Ok(None);
    }
    let started = Instant::now();
    let load = LoadOptions {
        skip_unreadable: skip_unreadable
            || settings.on_unreadable == troupe_crew::OnUnreadable::Skip,
        max_file_bytes: u64::from(settings.max_file_mb) << 20,
        pdf_timeout: settings.pdf_timeout,
    };
    let chunks = ChunkOptions {
        tokens: settings.chunk_tokens as usize,
        overlap: settings.chunk_overlap as usize,
    };
    let (corpus, report) = Corpus::load(specs, base, &load, chunks).map_err(|e| {
        let hint = if matches!(e, DocError::Unreadable(_)) {
            "\n  hint: fix or remove these files, or pass --skip-unreadable (crew file: \"documents\": {\"on_unreadable\": \"skip\"}) to go on without them"
        } else {
            ""
        };
        LaunchError::invalid(format!("documents: {e}{hint}"))
    })?;
    Ok(Some(RunDocuments {
        corpus: Arc::new(corpus),
        skipped: report.skipped.iter().map(ToString::to_string).collect(),
        ignored: report.ignored.iter().map(ToString::to_string).collect(),
        load_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        source: Some(source.clone()),
    }))
}

/// Which crew file a resume runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeCrew {
    /// The file as it is on disk now, which may have changed its `limits` since (the CLI).
    OnDisk,
    /// The text the run started from, as stored (a server, whose crews are not edited under a
    /// run).
    Stored,
}

/// A stored run, ready to go on: pass these to [`crate::run`].
pub struct Resume {
    pub crew: Crew,
    pub out_dir: PathBuf,
    pub documents: Option<RunDocuments>,
    pub continuation: Continuation,
}

/// Makes run `id` ready to resume, into `out` (default: its own output directory), or says
/// why it cannot be: completed, owned by a live process, its crew file (other than `limits`),
/// inputs or documents changed, its output directory taken by another run.
pub fn resume(
    store: &Store,
    id: &str,
    crew_file: ResumeCrew,
    out: Option<PathBuf>,
) -> Result<Resume, LaunchError> {
    let row = store.run(id)?;
    match &row.standing {
        Standing::Ended(s) if s == "completed" => {
            return Err(LaunchError::new(
                LaunchErrorKind::Conflict,
                format!(
                    "run {id} completed: there is nothing to resume\n  hint: `troupe replay {} --from TASK` runs a task again, with what depends on it, as a new run",
                    short(id)
                ),
            ));
        }
        Standing::Running => {
            return Err(LaunchError::new(
                LaunchErrorKind::Conflict,
                format!(
                    "run {id} is running (pid {} on {})\n  hint: wait for it to end, or stop it; a run has one owner at a time",
                    row.owner_pid, row.owner_host
                ),
            ));
        }
        Standing::Queued => {
            return Err(LaunchError::new(
                LaunchErrorKind::Conflict,
                format!(
                    "run {id} is queued: it has not started yet\n  hint: it starts when a slot is free; cancel it to stop it"
                ),
            ));
        }
        _ => {}
    }
    let source = store.source(id)?;
    let file = PathBuf::from(&source.crew_file);
    let (text, changed_limits) = match crew_file {
        ResumeCrew::Stored => (source.crew_text.clone(), Vec::new()),
        ResumeCrew::OnDisk => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                LaunchError::invalid(format!(
                    "cannot read `{}`, the crew file run {id} started from: {e}\n  hint: put it back, or start a new run from this one with `troupe replay {} --from TASK --crew FILE`",
                    file.display(),
                    short(id)
                ))
            })?;
            let changed = compare_crew(id, &file, &source.crew_text, &text)?;
            (text, changed)
        }
    };
    let inputs = stored_inputs(&source);
    let crew = parse(&file, text, &inputs)?;
    let mut cont = Continuation::load(
        store,
        ContinueMode::Resume {
            run: id.to_string(),
        },
    )?;
    cont.changed_limits = changed_limits;
    if let Some(source_run) = &cont.options.replay_calls {
        return Err(LaunchError::new(
            LaunchErrorKind::Conflict,
            format!(
                "run {id} answered its model calls from run {source_run}'s recording: resuming it would call a model\n  hint: run it again as it was: `troupe run {} --replay-calls {}`",
                file.display(),
                short(source_run)
            ),
        ));
    }
    if cont.options.fence.is_none() {
        return Err(LaunchError::new(
            LaunchErrorKind::Conflict,
            format!(
                "run {id} was recorded by an older Troupe, without what a resume needs to make the same requests\n  hint: `troupe replay {} --from TASK` runs it again as a new run, keeping the tasks before TASK",
                short(id)
            ),
        ));
    }
    let out_dir = match out {
        Some(dir) => dir,
        None => {
            let dir = PathBuf::from(&source.out_dir);
            if let Some(other) = run_in(&dir).filter(|other| other != id) {
                return Err(LaunchError::new(
                    LaunchErrorKind::Conflict,
                    format!(
                        "the output directory `{}` of run {id} now holds run {other}: resuming there would overwrite it\n  hint: continue in another directory with `troupe resume {} --out DIR`",
                        dir.display(),
                        short(id)
                    ),
                ));
            }
            dir
        }
    };
    let documents = match &cont.options.documents {
        Some(d) => documents(d, &crew)?,
        None => None,
    };
    compare_documents(id, &cont.documents, documents.as_ref().map(|d| &*d.corpus))?;
    Ok(Resume {
        crew,
        out_dir,
        documents,
        continuation: cont,
    })
}

/// The id of the run whose `run.json` is in `dir`, when there is one.
fn run_in(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("run.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("run_id")?.as_str().map(str::to_string)
}

/// The start of a run id that `troupe` commands accept.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(13)]
}

/// The inputs a stored run was started with.
pub fn stored_inputs(source: &RunSource) -> BTreeMap<String, String> {
    serde_json::from_value(source.inputs.clone()).unwrap_or_default()
}

/// Validates crew-file text as if read from `file` (relative paths in it are relative to
/// `file`'s directory).
pub fn parse(
    file: &Path,
    text: String,
    inputs: &BTreeMap<String, String>,
) -> Result<Crew, LaunchError> {
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    troupe_crew::parse(Source::new(file, text), dir, inputs)
        .map_err(|e| LaunchError::invalid(e.to_string()))
}

/// Refuses a crew file that changed in anything but its limits; returns the limits that did.
fn compare_crew(id: &str, file: &Path, was: &str, now: &str) -> Result<Vec<String>, LaunchError> {
    if was == now {
        return Ok(Vec::new());
    }
    let (Ok(mut a), Ok(mut b)) = (
        serde_json::from_str::<Value>(was),
        serde_json::from_str::<Value>(now),
    ) else {
        return Err(changed(id, file, "it is no longer valid JSON".into()));
    };
    let limits_a = take_limits(&mut a);
    let limits_b = take_limits(&mut b);
    if let Some(d) = first_difference(&a, &b) {
        return Err(changed(id, file, format!("it differs at {d}")));
    }
    let mut keys: Vec<String> = Vec::new();
    for (at, la) in &limits_a {
        let lb = limits_b.get(at).cloned().unwrap_or(Value::Null);
        let (ea, eb) = (la.as_object(), lb.as_object());
        let names: std::collections::BTreeSet<&String> =
            ea.into_iter().chain(eb).flat_map(|o| o.keys()).collect();
        for k in names {
            if ea.and_then(|o| o.get(k)) != eb.and_then(|o| o.get(k)) {
                keys.push(format!("{at}.{k}"));
            }
        }
    }
    for at in limits_b.keys().filter(|k| !limits_a.contains_key(*k)) {
        keys.push(at.clone());
    }
    Ok(keys)
}

/// Removes every `limits` object (the crew's, each agent's, each task's), by where it was.
fn take_limits(v: &mut Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(l) = v.as_object_mut().and_then(|o| o.remove("limits")) {
        out.insert("limits".into(), l);
    }
    for list in ["agents", "tasks"] {
        if let Some(items) = v.get_mut(list).and_then(Value::as_array_mut) {
            for (i, item) in items.iter_mut().enumerate() {
                if let Some(l) = item.as_object_mut().and_then(|o| o.remove("limits")) {
                    out.insert(format!("{list}[{i}].limits"), l);
                }
            }
        }
    }
    out
}

fn changed(id: &str, file: &Path, what: String) -> LaunchError {
    LaunchError::invalid(format!(
        "the crew file `{}` changed since run {id} started: {what}; a resume must make the requests the run made\n  hint: `troupe replay {} --from TASK` runs the changed crew as a new run and keeps what the change does not touch (only `limits` may change for a resume)",
        file.display(),
        short(id)
    ))
}

/// Refuses documents that changed, appeared or went away since the run started.
fn compare_documents(
    id: &str,
    was: &BTreeMap<String, String>,
    corpus: Option<&Corpus>,
) -> Result<(), LaunchError> {
    let now = continuation::document_hashes(corpus);
    let mut changes = Vec::new();
    for (doc, sha) in was {
        match now.get(doc) {
            None => changes.push(format!("`{doc}` is gone")),
            Some(s) if s != sha => changes.push(format!("`{doc}` changed")),
            Some(_) => {}
        }
    }
    for doc in now.keys().filter(|d| !was.contains_key(*d)) {
        changes.push(format!("`{doc}` is new"));
    }
    if changes.is_empty() {
        return Ok(());
    }
    Err(LaunchError::invalid(format!(
        "the documents of run {id} changed since it started: {}\n  hint: put them back as they were, or run the crew on them as a new run with `troupe replay {} --from TASK`",
        changes.join(", "),
        short(id)
    )))
}
