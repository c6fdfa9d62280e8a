//! `troupe resume RUN` and `troupe replay RUN --from TASK`: runs that continue a stored one.
//!
//! A resume continues the run itself and must make the same requests, so it refuses when the
//! crew file (other than its `limits`), the inputs or the documents changed since the run
//! started, and says what changed. A replay is a new run and may change them; the tasks it keeps
//! must be unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
use serde_json::Value;
use troupe_crew::{Crew, Source};
use troupe_runtime::continuation::{self, Continuation, ContinueMode, DocumentSource};
use troupe_runtime::diff::first_difference;
use troupe_runtime::models::ProviderFactory;
use troupe_store::{RunSource, Standing};

use crate::cli::{ReplayArgs, ResumeArgs};
use crate::exit::Failure;

use super::run::{Execution, execute};

pub fn resume(args: ResumeArgs) -> Result<u8, Failure> {
    let store = super::open_store(&args.store)?;
    let id = store.resolve(&args.run).map_err(Failure::user)?;
    let row = store.run(&id).map_err(Failure::user)?;
    match &row.standing {
        Standing::Ended(s) if s == "completed" => {
            return Err(Failure::user(anyhow!(
                "run {id} completed: there is nothing to resume\n  hint: `troupe replay {} --from TASK` runs a task again, with what depends on it, as a new run",
                short(&id)
            )));
        }
        Standing::Running => {
            return Err(Failure::user(anyhow!(
                "run {id} is running (pid {} on {})\n  hint: wait for it to end, or stop it; a run has one owner at a time",
                row.owner_pid,
                row.owner_host
            )));
        }
        _ => {}
    }
    let source = store.source(&id).map_err(Failure::user)?;
    let file = PathBuf::from(&source.crew_file);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Failure::user(anyhow!(
            "cannot read `{}`, the crew file run {id} started from: {e}\n  hint: put it back, or start a new run from this one with `troupe replay {} --from TASK --crew FILE`",
            file.display(),
            short(&id)
        ))
    })?;
    let changed_limits = compare_crew(&id, &file, &source.crew_text, &text)?;
    let inputs = stored_inputs(&source);
    let crew = parse(&file, text, &inputs)?;
    let mut cont = Continuation::load(&*store, ContinueMode::Resume { run: id.clone() })
        .map_err(Failure::user)?;
    cont.changed_limits = changed_limits;
    if let Some(source_run) = &cont.options.replay_calls {
        return Err(Failure::user(anyhow!(
            "run {id} answered its model calls from run {source_run}'s recording: resuming it would call a model\n  hint: run it again as it was: `troupe run {} --replay-calls {}`",
            file.display(),
            short(source_run)
        )));
    }
    if cont.options.fence.is_none() {
        return Err(Failure::user(anyhow!(
            "run {id} was recorded by an older Troupe, without what a resume needs to make the same requests\n  hint: `troupe replay {} --from TASK` runs it again as a new run, keeping the tasks before TASK",
            short(&id)
        )));
    }
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => {
            let dir = PathBuf::from(&source.out_dir);
            if let Some(other) = run_in(&dir).filter(|other| other != &id) {
                return Err(Failure::user(anyhow!(
                    "the output directory `{}` of run {id} now holds run {other}: resuming there would overwrite it\n  hint: continue in another directory with `troupe resume {} --out DIR`",
                    dir.display(),
                    short(&id)
                )));
            }
            dir
        }
    };
    let documents = match &cont.options.documents {
        Some(d) => super::load_documents_from(d, &crew)?,
        None => None,
    };
    compare_documents(&id, &cont.documents, documents.as_ref().map(|d| &*d.corpus))?;
    execute(Execution {
        crew,
        out,
        documents,
        store,
        continuation: Some(cont),
        models: Arc::new(ProviderFactory::from_env()),
        progress: args.progress,
    })
}

pub fn replay(args: ReplayArgs) -> Result<u8, Failure> {
    let store = super::open_store(&args.store)?;
    let id = store.resolve(&args.run).map_err(Failure::user)?;
    let source = store.source(&id).map_err(Failure::user)?;
    let recorded_file = PathBuf::from(&source.crew_file);
    let mut inputs = stored_inputs(&source);
    inputs.extend(crate::inputs::collect(&args.inputs)?);
    let parent = parse(
        &recorded_file,
        source.crew_text.clone(),
        &stored_inputs(&source),
    )?;
    let file = args.crew.clone().unwrap_or(recorded_file);
    let crew = super::load(&file, &inputs)?;
    continuation::unchanged_upstream(&parent, &crew, &args.from)
        .map_err(|e| Failure::user(anyhow!("{e}")))?;
    let cont = Continuation::load(
        &*store,
        ContinueMode::Replay {
            parent: id.clone(),
            from: args.from.clone(),
        },
    )
    .map_err(Failure::user)?;
    let documents = if args.docs.docs.is_empty() {
        match &cont.options.documents {
            Some(d) => super::load_documents_from(
                &DocumentSource {
                    skip_unreadable: d.skip_unreadable || args.docs.skip_unreadable,
                    ..d.clone()
                },
                &crew,
            )?,
            None => super::load_documents(&[], args.docs.skip_unreadable, &crew)?,
        }
    } else {
        super::load_documents(&args.docs.docs, args.docs.skip_unreadable, &crew)?
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let mut dir = PathBuf::from(&source.out_dir).into_os_string();
        dir.push("-replay");
        PathBuf::from(dir)
    });
    execute(Execution {
        crew,
        out,
        documents,
        store,
        continuation: Some(cont),
        models: Arc::new(ProviderFactory::from_env()),
        progress: args.progress,
    })
}

/// The id of the run whose `run.json` is in `dir`, when there is one.
fn run_in(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("run.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("run_id")?.as_str().map(str::to_string)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(13)]
}

fn stored_inputs(source: &RunSource) -> BTreeMap<String, String> {
    serde_json::from_value(source.inputs.clone()).unwrap_or_default()
}

fn parse(file: &Path, text: String, inputs: &BTreeMap<String, String>) -> Result<Crew, Failure> {
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    troupe_crew::parse(Source::new(file, text), dir, inputs).map_err(Failure::user)
}

/// Refuses a crew file that changed in anything but its limits; returns the limits that did.
fn compare_crew(id: &str, file: &Path, was: &str, now: &str) -> Result<Vec<String>, Failure> {
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

fn changed(id: &str, file: &Path, what: String) -> Failure {
    Failure::user(anyhow!(
        "the crew file `{}` changed since run {id} started: {what}; a resume must make the requests the run made\n  hint: `troupe replay {} --from TASK` runs the changed crew as a new run and keeps what the change does not touch (only `limits` may change for a resume)",
        file.display(),
        short(id)
    ))
}

/// Refuses documents that changed, appeared or went away since the run started.
fn compare_documents(
    id: &str,
    was: &BTreeMap<String, String>,
    corpus: Option<&troupe_docs::Corpus>,
) -> Result<(), Failure> {
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
    Err(Failure::user(anyhow!(
        "the documents of run {id} changed since it started: {}\n  hint: put them back as they were, or run the crew on them as a new run with `troupe replay {} --from TASK`",
        changes.join(", "),
        short(id)
    )))
}
