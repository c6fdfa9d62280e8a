//! `troupe run`: run a crew, render progress, summarise, exit with the run's status.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use troupe_runtime::continuation::{Continuation, ContinueMode};
use troupe_runtime::models::{ModelFactory, ProviderFactory, RecordingOnly};
use troupe_runtime::record::TaskStatus;
use troupe_runtime::{RunError, RunOptions, RunStatus};

use crate::cli::{ProgressArgs, RunArgs};
use crate::exit::{AWAITING_APPROVAL, Failure, INTERRUPTED, OK, RUN_FAILED};
use crate::render::Renderer;

pub fn run(args: RunArgs) -> Result<u8, Failure> {
    let inputs = crate::inputs::collect(&args.inputs)?;
    let crew = super::load(&args.crew, &inputs)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(troupe_crew::slug(&crew.name)));
    let documents = super::load_documents(&args.docs.docs, args.docs.skip_unreadable, &crew)?;
    let store = super::open_store(&args.store)?;
    let (continuation, models): (_, Arc<dyn ModelFactory>) = match &args.replay_calls {
        Some(run) => {
            let id = store.resolve(run).map_err(Failure::user)?;
            let c = Continuation::load(&*store, ContinueMode::ReplayCalls { source: id })
                .map_err(Failure::user)?;
            let models = Arc::new(RecordingOnly {
                models: c.options.models.clone(),
            });
            (Some(c), models)
        }
        None => (None, Arc::new(ProviderFactory::from_env())),
    };
    execute(Execution {
        crew,
        out,
        documents,
        store,
        continuation,
        models,
        progress: args.progress,
        approvals: super::approve::terminal_gate(),
        otlp: args.otlp.otlp.clone(),
    })
}

/// What one run needs, whichever command starts it.
pub struct Execution {
    pub crew: troupe_crew::Crew,
    pub out: PathBuf,
    pub documents: Option<troupe_runtime::RunDocuments>,
    pub store: Arc<troupe_store::Store>,
    pub continuation: Option<Continuation>,
    pub models: Arc<dyn ModelFactory>,
    pub progress: ProgressArgs,
    /// Asks a person on the terminal; `None`: a task that needs an approval pauses the run.
    pub approvals: Option<Arc<dyn troupe_runtime::approval::ApprovalGate>>,
    /// The OpenTelemetry collector that receives the run's trace.
    pub otlp: Option<String>,
}

/// Runs a crew (new, resumed or replayed), renders it, summarises it, and gives its exit code.
pub fn execute(x: Execution) -> Result<u8, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::internal(anyhow!("cannot start the async runtime: {e}")))?;
    let mut renderer = Renderer::new(x.progress.quiet, x.progress.events);
    // A new run's id is chosen here, so that its trace carries it; a resume keeps its own.
    let resumed = x.continuation.as_ref().and_then(|c| match &c.mode {
        ContinueMode::Resume { run } => Some(run.clone()),
        _ => None,
    });
    let run_id = resumed.is_none().then(troupe_store::new_run_id);
    let tracing = match &x.otlp {
        Some(url) => Some(troupe_otel::Tracing::start(url, "troupe").map_err(|e| {
            Failure::user(anyhow!(
                "{e}\n  hint: give the collector's OTLP/HTTP address, e.g. `--otlp http://127.0.0.1:4318`"
            ))
        })?),
        None => None,
    };
    let mut trace = tracing
        .as_ref()
        .map(|t| t.run(run_id.clone().or_else(|| resumed.clone())));
    let opts = RunOptions {
        out_dir: x.out,
        models: x.models,
        tools: troupe_runtime::default_tools(),
        on_event: Some(Box::new(move |e| {
            renderer.event(e);
            if let Some(t) = trace.as_mut() {
                t.on_event(e);
            }
        })),
        documents: x.documents,
        store: Some(x.store.clone()),
        continuation: x.continuation,
        run_id,
        approvals: x.approvals,
    };
    let report = runtime.block_on(troupe_runtime::run(x.crew, opts, ctrl_c()));
    if let Some(t) = tracing
        && let Err(e) = t.shutdown()
    {
        crate::term::err_line(&format!("warning: the run's trace was not delivered: {e}"));
    }
    let report = match report {
        Ok(r) => r,
        Err(
            e @ (RunError::Setup(_)
            | RunError::OutDir(_)
            | RunError::Store(_)
            | RunError::Owner(_)
            | RunError::Continue(_)),
        ) => {
            return Err(Failure::user(e));
        }
        Err(e @ RunError::Io { .. }) => return Err(Failure::internal(e)),
    };
    summary(&report, x.store.path());
    Ok(match report.status {
        RunStatus::Completed => OK,
        RunStatus::Interrupted => INTERRUPTED,
        RunStatus::AwaitingApproval => AWAITING_APPROVAL,
        _ => RUN_FAILED,
    })
}

/// Resolves on the first Ctrl-C. If the signal cannot be watched, never resolves (rather than
/// stopping the run at once).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn summary(report: &troupe_runtime::RunReport, store: &std::path::Path) {
    let r = &report.record;
    let done = r
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Completed)
        .count();
    let mut s = format!(
        "{} `{}` {} in {:.1} s · {}/{} task(s) completed · {} tokens ({} in, {} out) · {} model call(s)",
        match report.status {
            RunStatus::Completed => "✔",
            RunStatus::AwaitingApproval => "⏸",
            _ => "✘",
        },
        r.crew,
        report.status.as_str().replace('_', " "),
        r.duration_ms as f64 / 1000.0,
        done,
        r.tasks.len(),
        r.totals.input_tokens + r.totals.output_tokens,
        r.totals.input_tokens,
        r.totals.output_tokens,
        r.totals.model_calls,
    );
    if let Some(c) = r.totals.cost_usd {
        s.push_str(&format!(" · ${c:.4}"));
    }
    if report.replayed_calls > 0 {
        s.push_str(&format!(
            " · {} answered from the recording, not paid again",
            report.replayed_calls
        ));
    }
    let files: Vec<&str> = r
        .tasks
        .iter()
        .flat_map(|t| t.files.iter())
        .map(String::as_str)
        .collect();
    let report_files = if report.out_dir.join("report.json").exists() {
        "report.md, report.json, "
    } else {
        ""
    };
    s.push_str(&format!(
        "\n  outputs in {}: {}{report_files}run.json, events.jsonl",
        report.out_dir.display(),
        files
            .iter()
            .filter(|f| report_files.is_empty() || *f != &"report.md")
            .map(|f| format!("{f}, "))
            .collect::<String>()
    ));
    if let Some(id) = &report.run_id {
        s.push_str(&format!(
            "\n  run {id} in the store {} (`troupe show {}`)",
            store.display(),
            &id[..id.len().min(13)]
        ));
    }
    if let Some(checks) = &report.report {
        s.push_str(&format!("\n  checked: {}", checks.describe()));
    }
    let waiting: Vec<&str> = r
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::AwaitingApproval)
        .map(|t| t.id.as_str())
        .collect();
    if let (false, Some(id)) = (waiting.is_empty(), &report.run_id) {
        let short = &id[..id.len().min(13)];
        s.push_str(&format!(
            "\n  paused: waiting for a person's approval of {}",
            waiting
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for t in &waiting {
            s.push_str(&format!(
                "\n    troupe approve {short} '{t}'   (or --revise \"what to change\", or --reject)"
            ));
        }
    }
    for t in r.tasks.iter().filter(|t| t.status != TaskStatus::Completed) {
        s.push_str(&format!("\n  {}", t.status_line()));
    }
    crate::term::err_line(&s);
}
