//! Crew tools: a crew file as one tool whose arguments are the crew's inputs (and the documents
//! to work on). A call runs the crew as `troupe run` does — in the run store, so `troupe runs`,
//! `show`, `resume` and `approve` know it — reports each task as a progress notification, and
//! answers with the report and the run id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, Tool};
use serde_json::{Value, json};
use troupe_crew::Crew;
use troupe_runtime::continuation::DocumentSource;
use troupe_runtime::models::ModelFactory;
use troupe_runtime::record::TaskStatus;
use troupe_runtime::{Event, EventKind, RunOptions, RunReport, RunStatus};
use troupe_store::Store;

use crate::served::{BoxFuture, Call, Log, Served, object_schema};

/// Where crew tools' runs go, what they think with, and what they may read.
pub struct Runs {
    pub store: Arc<Store>,
    /// Each run's outputs go to `<out_root>/<crew>-<run id>` (absolute: a client starts the
    /// server in a directory of its choosing).
    pub out_root: PathBuf,
    pub models: Arc<dyn ModelFactory>,
    /// The directories a call's `documents` may name files under (absolute, symbolic links
    /// resolved): a client is not the user, and what a run reads goes to its model.
    pub docs_roots: Vec<PathBuf>,
}

/// A crew file served as a tool.
pub struct CrewTool {
    file: PathBuf,
    definition: Tool,
    /// Whether this tool's `documents` argument names documents (else it is an input).
    documents_arg: bool,
    runs: Arc<Runs>,
    log: Log,
}

/// The key of a crew tool's arguments that names its documents.
pub const DOCUMENTS_ARG: &str = "documents";

impl CrewTool {
    /// Reads and validates the crew file (with a stand-in for each input it has no default
    /// for), and describes it as a tool named after the crew.
    pub fn new(file: &Path, runs: Arc<Runs>, log: Log) -> Result<Self, String> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "cannot read crew file `{}`: {e}\n  hint: check the path given to `--crew`",
                file.display()
            )
        })?;
        let parse = |inputs: &BTreeMap<String, String>| {
            troupe_runtime::launch::parse(file, text.clone(), inputs).map_err(|e| e.message)
        };
        let Ok(wire) = serde_json::from_str::<troupe_crew::wire::CrewFile>(&text) else {
            // The crew's own validation says what is wrong, and where.
            parse(&BTreeMap::new())?;
            return Err(format!(
                "crew file `{}` cannot be read as a crew\n  hint: `troupe validate {}` says why",
                file.display(),
                file.display()
            ));
        };
        let wanted = wire.inputs_wanted();
        let stand_ins: BTreeMap<String, String> = wanted
            .iter()
            .filter(|(_, default)| default.is_none())
            .map(|(k, _)| (k.clone(), format!("<{k}>")))
            .collect();
        let crew = parse(&stand_ins)?;
        let mut properties = serde_json::Map::new();
        let mut required = Vec::new();
        for (name, default) in &wanted {
            let mut p = json!({
                "type": "string",
                "description": format!("`{{{name}}}` in the crew's tasks"),
            });
            match default {
                Some(d) => p["default"] = d.clone().into(),
                None => required.push(name.clone()),
            }
            properties.insert(name.clone(), p);
        }
        let documents_arg = wire.uses_documents() && !properties.contains_key(DOCUMENTS_ARG);
        if documents_arg {
            // The crew's own, as the paths a client would send back.
            let base = std::path::absolute(&crew.dir).unwrap_or_else(|_| crew.dir.clone());
            let default: Vec<String> = crew
                .documents
                .as_ref()
                .map(|d| {
                    d.paths
                        .iter()
                        .map(|p| base.join(p).display().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let roots: Vec<String> = runs
                .docs_roots
                .iter()
                .map(|r| format!("`{}`", r.display()))
                .collect();
            let mut p = json!({
                "type": "array",
                "items": {"type": "string"},
                "description": format!(
                    "The documents to work on: files, directories or globs (txt, Markdown, HTML, PDF) on the machine that runs Troupe, under {}. Relative paths are relative to the first of these.",
                    roots.join(" or ")
                )
            });
            if default.is_empty() {
                if crew.tasks.iter().any(|t| t.for_each.is_some()) {
                    required.push(DOCUMENTS_ARG.into());
                }
            } else {
                p["default"] = default.into();
            }
            properties.insert(DOCUMENTS_ARG.into(), p);
        }
        let schema = json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        });
        let ids: Vec<&str> = crew.tasks.iter().map(|t| t.id.as_str()).collect();
        let description = format!(
            "{}Runs the Troupe crew `{}` ({} task(s): {}) and returns its report and run id. Each finished task is a progress notification. The run is stored: `troupe show RUN` shows it, `troupe resume RUN` continues it.",
            wire.description
                .as_deref()
                .map(|d| format!("{}\n\n", d.trim()))
                .unwrap_or_default(),
            crew.name,
            ids.len(),
            ids.join(", ")
        );
        Ok(Self {
            file: file.to_path_buf(),
            definition: Tool::new(
                troupe_crew::slug(&crew.name),
                description,
                object_schema(&schema),
            ),
            documents_arg,
            runs,
            log,
        })
    }

    async fn run(&self, args: Value, call: Call) -> Result<CallToolResult, String> {
        let mut inputs = BTreeMap::new();
        let mut documents: Option<Vec<String>> = None;
        if let Value::Object(map) = args {
            for (k, v) in map {
                if self.documents_arg && k == DOCUMENTS_ARG {
                    let specs: Vec<String> = serde_json::from_value(v)
                        .map_err(|e| format!("`documents` must be a list of paths: {e}"))?;
                    documents = Some(specs);
                } else if let Value::String(s) = v {
                    inputs.insert(k, s);
                }
            }
        }
        let roots = self.runs.docs_roots.clone();
        if let Some(specs) = &documents {
            for spec in specs {
                within(spec, &roots)?;
            }
        }
        let file = self.file.clone();
        let (crew, docs) = tokio::task::spawn_blocking(move || {
            let crew = troupe_crew::load(&file, &inputs).map_err(|e| e.to_string())?;
            let source = match documents {
                Some(specs) => DocumentSource {
                    specs,
                    base: roots.first().cloned().unwrap_or_default(),
                    skip_unreadable: false,
                },
                None => DocumentSource {
                    specs: crew
                        .documents
                        .as_ref()
                        .map(|d| d.paths.clone())
                        .unwrap_or_default(),
                    base: std::path::absolute(&crew.dir).unwrap_or_else(|_| crew.dir.clone()),
                    skip_unreadable: false,
                },
            };
            let docs = troupe_runtime::launch::documents(&source, &crew).map_err(|e| {
                // The CLI's hint names a flag a client does not have.
                e.message
                    .split("\n  hint: fix or remove these files, or pass --skip-unreadable")
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })?;
            Ok::<_, String>((crew, docs))
        })
        .await
        .map_err(|e| format!("the crew could not be prepared: {e}"))??;

        let run_id = troupe_store::new_run_id();
        let out_dir = self
            .runs
            .out_root
            .join(format!("{}-{run_id}", troupe_crew::slug(&crew.name)));
        (self.log)(&format!(
            "crew `{}`: run {run_id} started, outputs in {}",
            crew.name,
            out_dir.display()
        ));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(f64, Option<f64>, String)>();
        // Progress only grows (MCP requires it): the run's start at 0, then each finished task.
        let mut done = 0usize;
        let mut total = None::<usize>;
        let on_event = move |e: &Event| {
            let message = match &e.kind {
                EventKind::RunStarted { tasks, .. } => {
                    total = Some(*tasks);
                    format!("started: {tasks} task(s)")
                }
                EventKind::TaskFinished {
                    task,
                    agent,
                    status,
                    ..
                } => {
                    done += 1;
                    format!("`{task}` {} ({agent})", status.as_str())
                }
                _ => return,
            };
            let _ = tx.send((done as f64, total.map(|t| t as f64), message));
        };
        let progress = call.progress.clone();
        let notifier = tokio::spawn(async move {
            while let Some((done, total, message)) = rx.recv().await {
                progress.report(done, total, message).await;
            }
        });
        let crew_for_outputs = crew.clone();
        let opts = RunOptions {
            out_dir,
            models: self.runs.models.clone(),
            tools: troupe_runtime::default_tools(),
            on_event: Some(Box::new(on_event)),
            documents: docs,
            store: Some(self.runs.store.clone()),
            continuation: None,
            run_id: Some(run_id.clone()),
            approvals: None,
        };
        let cancel = call.cancel.clone();
        let report = troupe_runtime::run(crew, opts, async move { cancel.cancelled().await }).await;
        // The sender went with the run's options: the last notifications go out first (a
        // client that stopped reading does not hold the answer up for long).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), notifier).await;
        let report = report.map_err(|e| e.to_string())?;
        (self.log)(&format!(
            "crew `{}`: run {run_id} {}",
            report.record.crew,
            report.status.as_str()
        ));
        Ok(answer(&crew_for_outputs, &report))
    }
}

impl Served for CrewTool {
    fn definition(&self) -> &Tool {
        &self.definition
    }

    fn call(&self, args: Value, call: Call) -> BoxFuture<'_, CallToolResult> {
        Box::pin(async move {
            match self.run(args, call).await {
                Ok(r) => r,
                Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
            }
        })
    }
}

/// Refuses a `documents` path outside the allowed directories (or with `..` in it).
fn within(spec: &str, roots: &[PathBuf]) -> Result<(), String> {
    let refuse = |why: &str| {
        let roots: Vec<String> = roots.iter().map(|r| format!("`{}`", r.display())).collect();
        format!(
            "`documents`: `{spec}` {why}: this server reads documents only under {} (`troupe mcp serve --docs-root DIR` adds a directory)",
            roots.join(", ")
        )
    };
    let path = Path::new(spec);
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(refuse("goes up with `..`"));
    }
    // The part before any glob character, with symbolic links resolved where it exists.
    let base = roots.first().cloned().unwrap_or_default();
    let mut fixed = PathBuf::new();
    for c in base.join(path).components() {
        if c.as_os_str()
            .to_string_lossy()
            .contains(['*', '?', '[', '{'])
        {
            break;
        }
        fixed.push(c);
    }
    let resolved = fixed.canonicalize().unwrap_or(fixed);
    if roots.iter().any(|r| resolved.starts_with(r)) {
        Ok(())
    } else {
        Err(refuse("is outside the directories it may read"))
    }
}

/// The call's answer: the report (`report.md` when the run wrote one, else the outputs of the
/// tasks nothing else takes as context), then what the run was; `isError` unless it completed
/// or waits for an approval.
fn answer(crew: &Crew, report: &RunReport) -> CallToolResult {
    let record = &report.record;
    let body = std::fs::read_to_string(report.out_dir.join("report.md")).ok();
    let body = body.unwrap_or_else(|| {
        let finals: Vec<&str> = crew
            .tasks
            .iter()
            .enumerate()
            .filter(|(i, _)| !crew.tasks.iter().any(|t| t.context.contains(i)))
            .map(|(_, t)| t.id.as_str())
            .collect();
        let outputs: Vec<(&str, &str)> = record
            .tasks
            .iter()
            .filter(|t| {
                finals
                    .iter()
                    .any(|f| t.id == *f || t.id.starts_with(&format!("{f}[")))
            })
            .filter_map(|t| Some((t.id.as_str(), t.output.as_deref()?)))
            .collect();
        match outputs.as_slice() {
            [(_, only)] => (*only).to_string(),
            many => many
                .iter()
                .map(|(id, out)| format!("## {id}\n\n{out}"))
                .collect::<Vec<_>>()
                .join("\n\n"),
        }
    });
    let done = record
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Completed)
        .count();
    let id = report.run_id.clone().unwrap_or_default();
    let short = troupe_runtime::launch::short(&id);
    let mut summary = format!(
        "run {id} {}: {done}/{} task(s) completed; outputs in {}",
        report.status.as_str().replace('_', " "),
        record.tasks.len(),
        report.out_dir.display()
    );
    if let Some(checks) = &report.report {
        summary.push_str(&format!("; checked: {}", checks.describe()));
    }
    let waiting: Vec<&str> = record
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::AwaitingApproval)
        .map(|t| t.id.as_str())
        .collect();
    for t in &waiting {
        summary.push_str(&format!(
            "\npaused for a person's approval of `{t}`: `troupe approve {short} '{t}'` answers it and continues the run"
        ));
    }
    for t in record.tasks.iter().filter(|t| {
        !matches!(
            t.status,
            TaskStatus::Completed | TaskStatus::AwaitingApproval
        )
    }) {
        summary.push_str(&format!("\n{}", t.status_line()));
    }
    if !matches!(
        report.status,
        RunStatus::Completed | RunStatus::AwaitingApproval
    ) {
        summary.push_str(&format!(
            "\n`troupe resume {short}` continues it, keeping what is done"
        ));
    }
    let content = if body.trim().is_empty() {
        vec![ContentBlock::text(summary)]
    } else {
        vec![ContentBlock::text(body), ContentBlock::text(summary)]
    };
    let mut result = match report.status {
        RunStatus::Completed | RunStatus::AwaitingApproval => CallToolResult::success(content),
        _ => CallToolResult::error(content),
    };
    result.structured_content = Some(json!({
        "run_id": id,
        "status": report.status.as_str(),
        "out_dir": report.out_dir.display().to_string(),
        "tasks": record.tasks.iter().map(|t| json!({
            "id": t.id,
            "status": t.status.as_str(),
            "error": t.error,
        })).collect::<Vec<_>>(),
    }));
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A call's `documents` stay under the allowed directories: relative paths and globs under
    /// them pass; `..`, absolute paths elsewhere and links out of them do not.
    #[test]
    fn documents_are_read_only_under_the_allowed_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("docs").canonicalize().unwrap_or_else(|_| {
            std::fs::create_dir_all(tmp.path().join("docs")).unwrap();
            tmp.path().join("docs").canonicalize().unwrap()
        });
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/x.txt"), "x").unwrap();
        let outside = tmp.path().join("secret");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let roots = vec![root.clone()];

        assert!(within("a/x.txt", &roots).is_ok());
        assert!(within("a/*.txt", &roots).is_ok());
        assert!(within("not-yet/there.txt", &roots).is_ok());
        assert!(within(&root.join("a").display().to_string(), &roots).is_ok());
        let up = within("a/../../secret", &roots).unwrap_err();
        assert!(
            up.contains("goes up with `..`") && up.contains("--docs-root"),
            "{up}"
        );
        let abs = within("/etc/passwd", &roots).unwrap_err();
        assert!(abs.contains("outside"), "{abs}");
        assert!(within(&format!("{}/*", outside.display()), &roots).is_err());
        assert!(within("link", &roots).is_err(), "a link out of the root");
    }
}
