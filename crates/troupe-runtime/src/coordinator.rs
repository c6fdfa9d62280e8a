//! The coordinator: sets a run up, starts each task as soon as its context is done, writes every
//! finished task to disk before anything that depends on it starts, and stops cleanly on a
//! limit, a failure (per `on_failure`/`on_limit`), the run deadline or the shutdown signal.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use troupe_crew::{Crew, Diagnostics, OnFailure, Process};

use troupe_docs::Corpus;
use troupe_store::RunStore;

use crate::agent::AgentHandle;
use crate::budget;
use crate::continuation::{Continuation, ContinueMode, DocumentSource, StartOptions};
use crate::driver::{self, Progress, RunCtx};
use crate::events::{Event, EventKind, Events, ms};
use crate::executor::AgentCtx;
use crate::ledger::Ledger;
use crate::models::ModelFactory;
use crate::outdir::{self, OutDir, OutDirError};
use crate::prepare;
use crate::record::{self, RunRecord, RunState, TaskRecord, TaskStatus};
use crate::recorded::{CallLog, Recorder, request_hash};
use crate::report;
use crate::tool::ToolRegistry;

/// Receives every event, in order, on the event thread.
pub type EventSink = Box<dyn FnMut(&Event) + Send>;

/// How to run a crew.
pub struct RunOptions {
    /// Where outputs, `run.json` and `events.jsonl` go.
    pub out_dir: PathBuf,
    pub models: Arc<dyn ModelFactory>,
    pub tools: ToolRegistry,
    pub on_event: Option<EventSink>,
    /// The run's documents, loaded by the caller (see [`RunDocuments`]).
    pub documents: Option<RunDocuments>,
    /// The run store: when given, the run, its tasks, events and model calls are recorded
    /// there as they happen, under a new run id that this process owns while it runs.
    pub store: Option<Arc<dyn RunStore>>,
    /// The stored run this one continues (a resume, a replay), when it does.
    pub continuation: Option<Continuation>,
    /// The id a new stored run gets, when the caller chose it (a server answers with the id
    /// before the run starts, and may have recorded it as queued); else a new one.
    pub run_id: Option<String>,
    /// Asks a person for an approval while the run runs (a terminal prompt). `None`: requests
    /// are answered only through the store, and a task that needs an answer pauses the run.
    pub approvals: Option<Arc<dyn crate::approval::ApprovalGate>>,
}

/// Documents loaded for a run: the corpus, what was left out and how long loading took.
pub struct RunDocuments {
    pub corpus: Arc<Corpus>,
    /// Files left out (`on_unreadable: skip`), each with the reason.
    pub skipped: Vec<String>,
    /// Files left out on purpose (hidden, link loops, duplicates), each with why.
    pub ignored: Vec<String>,
    pub load_ms: u64,
    /// Where they were read from, recorded so that a resume reads the same files.
    pub source: Option<DocumentSource>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Completed,
    /// A task failed and `on_failure` (or `on_limit`) stopped the run.
    Failed,
    Interrupted,
    TimedOut,
    BudgetExhausted,
    /// A task waits for a person's answer; the run goes on when it comes (a resume).
    AwaitingApproval,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::TimedOut => "timed_out",
            Self::BudgetExhausted => "budget_exhausted",
            Self::AwaitingApproval => "awaiting_approval",
        }
    }
}

impl From<RunStatus> for RunState {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Completed => Self::Completed,
            RunStatus::Failed => Self::Failed,
            RunStatus::Interrupted => Self::Interrupted,
            RunStatus::TimedOut => Self::TimedOut,
            RunStatus::BudgetExhausted => Self::BudgetExhausted,
            RunStatus::AwaitingApproval => Self::AwaitingApproval,
        }
    }
}

/// The end of a run.
#[derive(Debug)]
pub struct RunReport {
    pub status: RunStatus,
    pub record: RunRecord,
    pub out_dir: PathBuf,
    /// What the checks of `report.md` found, when the run had documents.
    pub report: Option<report::ReportChecks>,
    /// The run's id in the store, when it was stored.
    pub run_id: Option<String>,
    /// Model calls answered from a recording instead of being made.
    pub replayed_calls: usize,
}

/// Why a run could not start or could not record itself.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The crew file asks for something this setup cannot provide (unknown tool, missing key).
    #[error(transparent)]
    Setup(#[from] Diagnostics),
    /// The output directory is held by another run, or cannot be used.
    #[error(transparent)]
    OutDir(#[from] OutDirError),
    /// The run store cannot record the run.
    #[error(transparent)]
    Store(#[from] troupe_store::StoreError),
    #[error(transparent)]
    Owner(#[from] troupe_store::owner::OwnerError),
    /// The run to continue cannot be continued as asked (`--from` names no task).
    #[error("{0}")]
    Continue(String),
    /// The OS error is part of the message, not a `source`: printed once.
    #[error("cannot write `{}`: {error}\n  hint: check that the output directory is writable, or choose another with `--out`", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

fn io_err(path: PathBuf) -> impl FnOnce(std::io::Error) -> RunError {
    move |error| RunError::Io { path, error }
}

/// Runs `crew` until every task is done, or a limit, a failure or `shutdown` stops it.
/// Everything finished is on disk when this returns, whatever the status.
pub async fn run(
    crew: Crew,
    opts: RunOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunReport, RunError> {
    let corpus = opts.documents.as_ref().map(|d| d.corpus.clone());
    let (events, rx) = Events::channel();
    let prepared =
        prepare::prepare(crew, &*opts.models, opts.tools, corpus.clone(), &events).await?;
    let crew = Arc::new(prepared.crew);
    let continuation = opts.continuation;
    let kept = match &continuation {
        Some(c) => c
            .kept(&crew, corpus.as_deref())
            .map_err(RunError::Continue)?,
        None => Vec::new(),
    };
    let out = opts.out_dir.clone();
    // File-system and store set-up runs on the blocking pool: a server starting many runs at
    // once must not stall the runtime threads that drive the running ones.
    let outdir = {
        let out = out.clone();
        Arc::new(off(move || OutDir::open(&out)).await??)
    };
    let started_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms);
    // The checks above are the same as `troupe validate`'s; building a model (loading a GGUF
    // file) can still fail, rarely (a corrupt file).
    let mut problems = Vec::new();
    let mut setup = Vec::new();
    for (agent, tools) in prepared.agents {
        match opts.models.model(&agent.llm) {
            Ok(model) => setup.push((agent, model, tools)),
            Err(e) => problems.push(prepare::model_problem(&crew, &agent, e)),
        }
    }
    if !problems.is_empty() {
        return Err(Diagnostics(problems).into());
    }
    // A resumed run, and one answered from a recording, fence data as the recorded run did:
    // otherwise no request would be the same.
    let fence = match continuation
        .as_ref()
        .and_then(|c| c.options.fence.as_deref())
    {
        Some(tag) => crate::prompt::Fence::with_tag(tag),
        None => crate::prompt::Fence::new(),
    };
    let options = StartOptions {
        fence: Some(fence.tag().to_string()),
        documents: opts.documents.as_ref().and_then(|d| d.source.clone()),
        models: setup
            .iter()
            .map(|(a, m, _)| {
                let traits = crate::continuation::ModelTraits {
                    name: m.name(),
                    window: m.context_window(),
                    constrained: m.constrained_decoding(),
                };
                (a.llm.model.clone(), traits)
            })
            .collect(),
        replay_calls: match continuation.as_ref().map(|c| &c.mode) {
            Some(ContinueMode::ReplayCalls { source }) => Some(source.clone()),
            _ => None,
        },
    };
    let resuming = match continuation.as_ref().map(|c| &c.mode) {
        Some(ContinueMode::Resume { run }) => Some(run.clone()),
        _ => None,
    };
    let stored = match (&opts.store, &resuming) {
        (Some(store), Some(run)) => {
            let (store, run, out) = (store.clone(), run.clone(), out.clone());
            Some(off(move || take_over_stored(&store, &run, &out)).await??)
        }
        (Some(store), None) => {
            let parent = match continuation.as_ref().map(|c| &c.mode) {
                Some(ContinueMode::Replay { parent, .. }) => Some(parent.clone()),
                _ => None,
            };
            let (store, crew, corpus, out, options, id) = (
                store.clone(),
                crew.clone(),
                corpus.clone(),
                out.clone(),
                options.clone(),
                opts.run_id.clone(),
            );
            Some(
                off(move || {
                    start_stored(
                        &store,
                        &crew,
                        corpus.as_deref(),
                        &out,
                        started_at_ms,
                        parent.as_deref(),
                        &options,
                        id,
                    )
                })
                .await??,
            )
        }
        (None, _) => None,
    };
    let cassette = continuation.as_ref().and_then(|c| c.cassette.clone());
    // The store keeps `limits.keep_runs` ended runs of a crew; said when older ones go.
    let pruning = match (&stored, &resuming) {
        (Some(s), None) => {
            let (store, name, keep) = (
                s.store.clone(),
                crew.name.clone(),
                crew.limits.keep_runs as usize,
            );
            Some(off(move || store.prune(&name, keep)).await?)
        }
        _ => None,
    };
    let pruned = match pruning {
        Some(done) => match done {
            Ok(ids) => ids.len(),
            Err(e) => {
                events.emit(EventKind::Warning {
                    task: None,
                    message: format!("the run store could not delete old runs: {e}"),
                });
                0
            }
        },
        _ => 0,
    };
    let fallbacks = prepared.fallbacks;
    let warnings = prepared.warnings;
    // Plugin tools hold an event sender: nothing of the set-up may outlive the agents, or the
    // event pump would wait for it forever. MCP servers (their stderr readers hold one) are
    // stopped once the agents are done.
    drop(prepared.plugins);
    let mcp = prepared.mcp;

    // A resumed run's log goes on where it stopped: appended, numbered on from its last event.
    let events_path = out.join(outdir::EVENTS_FILE);
    let (events_file, first_seq) = match &stored {
        Some(s) if resuming.is_some() => {
            let in_file = last_logged_seq(&events_path);
            let in_store = s.store.last_event_seq(&s.id)?;
            let file = outdir
                .append_log(outdir::EVENTS_FILE)
                .map_err(io_err(events_path.clone()))?;
            (file, in_file.max(in_store))
        }
        _ => (
            outdir
                .create_log(outdir::EVENTS_FILE)
                .map_err(io_err(events_path.clone()))?,
            0,
        ),
    };
    // The pump is the events' consumer: it must not hold a sender (the channel would never
    // close), so it gets the store and the run id, not a `Recorder`.
    let pump_store = stored.as_ref().map(|s| (s.store.clone(), s.id.clone()));
    let pump = tokio::spawn(pump(rx, events_file, opts.on_event, pump_store, first_seq));

    let ledger = Arc::new(Ledger::new(
        crew.limits.max_tokens,
        crew.limits.max_cost_usd,
    ));
    // A resumed run's budget continues from what it already spent.
    if let Some(c) = &continuation {
        for call in &c.prepaid {
            let Some((agent, _, _)) = setup
                .iter()
                .find(|(a, _, _)| Some(a.id.as_str()) == call.agent.as_deref())
            else {
                continue;
            };
            match call.kind.as_str() {
                "model" if call.response.is_some() => ledger.prepaid_call(
                    &agent.id,
                    troupe_llm::Usage {
                        input_tokens: call.input_tokens.unwrap_or(0),
                        output_tokens: call.output_tokens.unwrap_or(0),
                        ..Default::default()
                    },
                    &agent.llm,
                ),
                "tool" => ledger.prepaid_tool(&agent.id),
                _ => {}
            }
        }
    }
    let approvals = crate::approval::Approvals::new(
        stored.as_ref().map(|s| {
            Recorder::new(
                s.store.clone(),
                s.id.clone(),
                events.clone(),
                s.calls.clone(),
            )
        }),
        opts.approvals.clone(),
    );
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let mut agents = HashMap::new();
    let mut manager = None;
    for (agent, model, tools) in setup {
        let is_manager = crew.manager.as_ref().is_some_and(|m| m.id == agent.id);
        let window = budget::window(&agent, model.as_ref());
        let handle = AgentHandle::spawn(
            Arc::new(AgentCtx {
                agent,
                model,
                tools,
                events: events.clone(),
                ledger: ledger.clone(),
                window,
                fence: fence.clone(),
                calls: CallLog {
                    recorder: stored.as_ref().map(|s| {
                        Recorder::new(
                            s.store.clone(),
                            s.id.clone(),
                            events.clone(),
                            s.calls.clone(),
                        )
                    }),
                    cassette: cassette.clone(),
                },
                approvals: approvals.clone(),
            }),
            &tracker,
            cancel.clone(),
        );
        if is_manager {
            manager = Some(handle.clone());
        }
        agents.insert(handle.id.clone(), handle);
    }

    let run_ctx = Arc::new(RunCtx {
        crew: crew.clone(),
        events: events.clone(),
        cancel,
        board: DashMap::new(),
        agents,
        manager,
        delegations: AtomicU32::new(0),
        corpus: corpus.clone(),
        fence,
        approvals,
    });
    let started = Instant::now();
    events.emit(EventKind::RunStarted {
        crew: crew.name.clone(),
        process: process_name(crew.process).into(),
        tasks: crew.tasks.len(),
        agents: crew.agents.len(),
        out_dir: out.display().to_string(),
    });
    for w in warnings {
        events.emit(EventKind::Warning {
            task: None,
            message: match &w.hint {
                Some(h) => format!("{} ({}); hint: {h}", w.message, w.path),
                None => format!("{} ({})", w.message, w.path),
            },
        });
    }
    for (agent, f) in fallbacks {
        events.emit(EventKind::ModelFallback {
            agent,
            requested: f.requested,
            used: f.used,
            reason: f.reason,
        });
    }
    if pruned > 0 {
        events.emit(EventKind::RunsPruned {
            removed: pruned,
            keep: crew.limits.keep_runs as usize,
            key: "limits.keep_runs".into(),
        });
    }
    if let Some(c) = &continuation {
        events.emit(EventKind::RunContinued {
            mode: c.mode.name().into(),
            from_run: c.mode.from_run().into(),
            kept: kept.iter().map(|&i| crew.tasks[i].id.clone()).collect(),
            rerun: (0..crew.tasks.len())
                .filter(|i| !kept.contains(i))
                .map(|i| crew.tasks[i].id.clone())
                .collect(),
            recorded_calls: cassette.as_ref().map_or(0, |c| c.model_calls()),
            changed_limits: c.changed_limits.clone(),
        });
    }
    if let Some(d) = &opts.documents {
        events.emit(EventKind::DocumentsLoaded {
            documents: d.corpus.documents().len(),
            chunks: d.corpus.chunks().len(),
            tokens: d
                .corpus
                .documents()
                .iter()
                .map(|doc| troupe_docs::estimate_tokens(&doc.text))
                .sum(),
            duration_ms: d.load_ms,
            skipped: d.skipped.clone(),
            ignored: d.ignored.clone(),
            encodings: d
                .corpus
                .documents()
                .iter()
                .filter_map(|doc| doc.encoding.map(|e| (doc.id.clone(), e.to_string())))
                .collect(),
        });
    }

    let mut c = Coordinator {
        crew: &crew,
        run: run_ctx.clone(),
        ledger: &ledger,
        records: crew
            .tasks
            .iter()
            .map(|t| TaskRecord::new(&t.id, t.agent.as_deref()))
            .collect(),
        out: outdir.clone(),
        started,
        started_at_ms,
        stored: stored.as_ref().map(|s| {
            Recorder::new(
                s.store.clone(),
                s.id.clone(),
                events.clone(),
                s.calls.clone(),
            )
        }),
    };
    // Kept tasks are done: their records (and files, for a new output directory) as they were.
    if let Some(cont) = &continuation {
        for &i in &kept {
            let Some(rec) = cont.record(&crew.tasks[i].id) else {
                continue;
            };
            let (o, file, r) = (
                outdir.clone(),
                crew.tasks[i].output_file.clone(),
                rec.clone(),
            );
            blocking(move || record::write_task_output(&o, &r, file.as_deref()))
                .await
                .map_err(io_err(out.clone()))?;
            ledger.keep_task(i, rec.usage.clone());
            run_ctx.board.insert(i, rec.clone());
            c.records[i] = rec.clone();
        }
    }
    c.checkpoint(RunState::Running).await?;
    let status = c.schedule(shutdown).await?;

    run_ctx.cancel.cancel();
    tracker.close();
    tracker.wait().await;
    crate::mcp::stop_all(mcp).await;
    // Every call of the run is in the store before the run says it ended.
    if let Some(r) = &c.stored {
        r.flush().await;
    }
    for r in &mut c.records {
        // A paused run's waiting tasks run when it goes on.
        let waits = status == RunStatus::AwaitingApproval && r.status == TaskStatus::Pending;
        if matches!(r.status, TaskStatus::Pending | TaskStatus::Running) && !waits {
            r.status = TaskStatus::Skipped;
        }
        r.usage = ledger.task(crew.task_index(&r.id).unwrap_or(usize::MAX));
    }
    let mut report_checks = None;
    if let Some(corpus) = &corpus {
        let (out, crew, records, corpus) = (
            outdir.clone(),
            crew.clone(),
            c.records.clone(),
            corpus.clone(),
        );
        match blocking(move || report::write(&out, &crew, &records, &corpus)).await {
            Ok((files, checks)) => {
                events.emit(EventKind::ReportWritten {
                    files,
                    checks: checks.clone(),
                });
                report_checks = Some(checks);
            }
            Err(e) => events.emit(EventKind::Warning {
                task: None,
                message: format!("cannot write report.md / report.json: {e}"),
            }),
        }
    }
    // The run's end is recorded before it is announced: whoever reads `run_finished` (a
    // server's event stream) finds the run ended in the store.
    let record = c.checkpoint(status.into()).await?;
    let total = ledger.total();
    events.emit(EventKind::RunFinished {
        status: status.as_str().into(),
        duration_ms: ms(started.elapsed()),
        input_tokens: total.input_tokens,
        output_tokens: total.output_tokens,
        cost_usd: total.cost_usd,
    });
    drop(c);
    drop(run_ctx);
    drop(events);
    let _ = pump.await;
    let run_id = stored.map(|s| s.id);
    Ok(RunReport {
        status,
        record,
        out_dir: out,
        report: report_checks,
        run_id,
        replayed_calls: cassette.map_or(0, |c| c.used()),
    })
}

fn process_name(p: Process) -> &'static str {
    match p {
        Process::Sequential => "sequential",
        Process::Parallel => "parallel",
        Process::Hierarchical => "hierarchical",
    }
}

/// A stored run: its id, the store, and the lock that makes this process its owner.
struct Stored {
    id: String,
    /// Where this run's calls are written, off the agents' path.
    calls: crate::call_writer::CallWriter,
    store: Arc<dyn RunStore>,
    _owner: troupe_store::OwnerGuard,
}

/// Takes a stored run over (a resume): this process becomes its owner, or is refused with the
/// owner's pid when the run still has one.
fn take_over_stored(
    store: &Arc<dyn RunStore>,
    run: &str,
    out: &std::path::Path,
) -> Result<Stored, RunError> {
    let owner = store.own(run)?;
    let out = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
    store.take_over(run, &out.display().to_string())?;
    Ok(Stored {
        calls: crate::call_writer::CallWriter::start(store.clone(), run.to_string()),
        id: run.to_string(),
        store: store.clone(),
        _owner: owner,
    })
}

/// The sequence number of the last event in a log (0 when there is none). Reads only its
/// tail: an event line is far shorter than the 64 KiB read.
fn last_logged_seq(path: &std::path::Path) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut tail = Vec::new();
    if file
        .seek(SeekFrom::Start(len.saturating_sub(64 << 10)))
        .is_err()
        || file.read_to_end(&mut tail).is_err()
    {
        return 0;
    }
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64))
        })
        .unwrap_or(0)
}

/// Records a new run in the store, owned by this process, under `id` when the caller chose it.
#[allow(clippy::too_many_arguments)]
fn start_stored(
    store: &Arc<dyn RunStore>,
    crew: &Crew,
    corpus: Option<&Corpus>,
    out: &std::path::Path,
    started_at_ms: u64,
    parent: Option<&str>,
    options: &StartOptions,
    id: Option<String>,
) -> Result<Stored, RunError> {
    let id = id.unwrap_or_else(troupe_store::new_run_id);
    let owner = store.own(&id)?;
    let documents: Vec<serde_json::Value> = crate::continuation::document_hashes(corpus)
        .into_iter()
        .map(|(id, sha)| serde_json::json!({"id": id, "sha256": sha}))
        .collect();
    let inputs = serde_json::to_value(&crew.inputs).unwrap_or_default();
    store.create_run(&troupe_store::NewRun {
        id: &id,
        parent,
        crew: &crew.name,
        // Absolute, so that `troupe resume` finds it from any directory.
        crew_file: &std::path::absolute(&crew.source.file)
            .unwrap_or_else(|_| crew.source.file.clone())
            .display()
            .to_string(),
        crew_text: &crew.source.text,
        crew_sha256: &request_hash(&crew.source.text),
        inputs: &inputs,
        documents: &serde_json::Value::Array(documents),
        out_dir: &std::path::absolute(out)
            .unwrap_or_else(|_| out.to_path_buf())
            .display()
            .to_string(),
        started_ms: started_at_ms,
        options: &serde_json::to_value(options).unwrap_or_default(),
    })?;
    Ok(Stored {
        calls: crate::call_writer::CallWriter::start(store.clone(), id.clone()),
        id,
        store: store.clone(),
        _owner: owner,
    })
}

/// The `type` of a serialised event. `Event` serialises `seq`, `ts_ms` and `elapsed_ms` (numbers)
/// before its flattened kind, whose tag comes first: the first `"type":"` is the tag.
fn event_type(line: &str) -> &str {
    line.split("\"type\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("unknown")
}

/// Writes events to `events.jsonl` (what has arrived, one write per batch), to the run store (in
/// batches, committed by the store's writer with every other run's writes), then hands them to
/// the sink. A task of its own, so that no agent waits for the disk or the store.
async fn pump(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    file: std::fs::File,
    mut sink: Option<EventSink>,
    mut store: Option<(Arc<dyn RunStore>, String)>,
    first_seq: u64,
) {
    // One write to the log per batch: a few microseconds into the page cache, short enough to
    // make on a runtime thread (a thread per run costs more than it saves with many runs). The
    // batch is built in a buffer that holds no memory between batches.
    let mut w = file;
    let mut lines: Vec<u8> = Vec::new();
    let mut seq = first_seq;
    let mut batch: Vec<(u64, String, String)> = Vec::new();
    let mut arrived: Vec<Event> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(mut e) = next.take() {
            seq += 1;
            e.seq = seq;
            if let Ok(line) = serde_json::to_string(&e) {
                lines.extend_from_slice(line.as_bytes());
                lines.push(b'\n');
                if store.is_some() {
                    batch.push((seq, event_type(&line).to_string(), line));
                }
            }
            arrived.push(e);
            next = rx.try_recv().ok();
        }
        let _ = w.write_all(&lines);
        lines = Vec::new();
        let mut failed = None;
        if let Some((st, run)) = &store
            && !batch.is_empty()
        {
            // Committed by the store's one writer together with every other run's writes.
            let (tx, stored) = tokio::sync::oneshot::channel();
            st.append_events_then(
                run,
                std::mem::take(&mut batch),
                Box::new(move |r| {
                    let _ = tx.send(r.map_err(|e| e.to_string()));
                }),
            );
            let outcome = stored
                .await
                .unwrap_or_else(|_| Err("the store's writer stopped".into()));
            if let Err(e) = outcome {
                // Said once, in the log and to the sink; the store gets no more events.
                seq += 1;
                let warning = Event {
                    seq,
                    ts_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms),
                    elapsed_ms: 0,
                    kind: EventKind::Warning {
                        task: None,
                        message: format!(
                            "the run store `{}` could not record events: {e}; the output directory is complete, the store is not",
                            st.location()
                        ),
                    },
                };
                if let Ok(line) = serde_json::to_string(&warning) {
                    let _ = writeln!(w, "{line}");
                }
                failed = Some(warning);
            }
        }
        if failed.is_some() {
            store = None;
        }
        batch.clear();
        // The sink sees an event once it is in the store: what a reader of the store is told
        // has happened, it can read.
        if let Some(s) = sink.as_mut() {
            for e in arrived.iter().chain(failed.iter()) {
                s(e);
            }
        }
        arrived = Vec::new();
    }
}

/// Runs blocking work (file system, store set-up) on the blocking pool.
async fn off<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, RunError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RunError::Io {
            path: PathBuf::new(),
            error: std::io::Error::other(e),
        })
}

/// Runs blocking file I/O off the runtime threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

struct Coordinator<'a> {
    crew: &'a Crew,
    run: Arc<RunCtx>,
    ledger: &'a Ledger,
    records: Vec<TaskRecord>,
    out: Arc<OutDir>,
    started: Instant,
    started_at_ms: u64,
    /// Where the run is stored, when it is.
    stored: Option<Recorder>,
}

impl Coordinator<'_> {
    /// Writes `run.json` on the blocking pool (file-system calls cost ~0.3 ms each here, far
    /// more when a file system is busy, and must not stall the runtime threads that drive other
    /// runs), then the store's checkpoint through its writer, and waits for both.
    async fn checkpoint(&self, status: RunState) -> Result<RunRecord, RunError> {
        let mut tasks = self.records.clone();
        for (i, t) in tasks.iter_mut().enumerate() {
            t.usage = self.ledger.task(i);
        }
        let record = RunRecord {
            run_id: self.stored.as_ref().map(|r| r.run.clone()),
            crew: self.crew.name.clone(),
            crew_file: self.crew.source.file.display().to_string(),
            status,
            process: process_name(self.crew.process).into(),
            started_at_ms: self.started_at_ms,
            duration_ms: ms(self.started.elapsed()),
            inputs: self.crew.inputs.clone(),
            tasks,
            agents: self.ledger.agents(),
            totals: self.ledger.total(),
        };
        // `run.json` first: a store that says the run ended always has the record beside it.
        let record = Arc::new(record);
        let (out, written) = (self.out.clone(), record.clone());
        blocking(move || record::write_run_record(&out, &written))
            .await
            .map_err(io_err(self.out.path().join(outdir::RUN_FILE)))?;
        if let Some(r) = &self.stored {
            let (tx, rx) = tokio::sync::oneshot::channel();
            r.store.checkpoint_then(
                &r.run,
                self.store_checkpoint(&record, status),
                Box::new(move |result| {
                    let _ = tx.send(result.map_err(|e| e.to_string()));
                }),
            );
            let result = rx
                .await
                .unwrap_or_else(|_| Err("the store's writer stopped".into()));
            if let Err(e) = result {
                r.failed("the run's state", &e);
            }
        }
        Ok(Arc::unwrap_or_clone(record))
    }

    /// The store's copy of a checkpoint: each task's record, the totals, what ended the run.
    fn store_checkpoint(&self, record: &RunRecord, status: RunState) -> troupe_store::Checkpoint {
        let tasks = record
            .tasks
            .iter()
            .map(|t| {
                (
                    t.id.clone(),
                    t.status.as_str().to_string(),
                    serde_json::to_string(t).unwrap_or_default(),
                )
            })
            .collect();
        let ended_by = (!matches!(status, RunState::Running | RunState::Completed))
            .then(|| {
                record
                    .tasks
                    .iter()
                    .find(|t| t.limit.is_some() || t.error.is_some())
                    .map(|t| {
                        format!(
                            "task `{}`: {}",
                            t.id,
                            t.limit
                                .as_deref()
                                .or(t.error.as_deref())
                                .unwrap_or_default()
                        )
                    })
            })
            .flatten();
        let finished_ms = (status != RunState::Running)
            .then(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms));
        troupe_store::Checkpoint {
            status: status.as_str().to_string(),
            tasks,
            totals: (
                record.totals.input_tokens,
                record.totals.output_tokens,
                record.totals.cost_usd,
            ),
            ended_by,
            finished_ms,
            record: serde_json::to_string(record).unwrap_or_default(),
        }
    }

    /// Whether task `i` can start: every context task is finished and usable (or failed under
    /// `on_failure: continue`).
    fn ready(&self, i: usize) -> bool {
        self.records[i].status == TaskStatus::Pending
            && self.crew.tasks[i].context.iter().all(|&d| {
                let r = &self.records[d];
                r.usable()
                    || (matches!(r.status, TaskStatus::Failed | TaskStatus::Rejected)
                        && self.crew.limits.on_failure == OnFailure::Continue)
            })
    }

    async fn schedule(
        &mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<RunStatus, RunError> {
        let max_running = match self.crew.process {
            Process::Sequential => 1,
            Process::Parallel | Process::Hierarchical => usize::MAX,
        };
        let deadline = tokio::time::sleep(self.crew.limits.timeout);
        tokio::pin!(deadline);
        tokio::pin!(shutdown);
        let mut running: JoinSet<(usize, TaskRecord)> = JoinSet::new();
        let mut stop: Option<RunStatus> = None;
        let max_parallel = self.crew.limits.max_parallel;
        let mut waited = false;
        loop {
            if stop.is_none() {
                for i in 0..self.crew.tasks.len() {
                    if running.len() >= max_parallel {
                        if !waited && self.ready(i) {
                            waited = true;
                            self.run.events.emit(EventKind::LimitHit {
                                task: Some(self.crew.tasks[i].id.clone()),
                                agent: None,
                                limit: "max_parallel".into(),
                                value: max_parallel.to_string(),
                                key: "limits.max_parallel".into(),
                                action: "ready tasks wait for a running one to finish".into(),
                            });
                        }
                        continue;
                    }
                    // Instances of one `for_each` task are independent: they run together even
                    // in a sequential crew.
                    let same_group = self.crew.tasks[i].group.is_some()
                        && self.records.iter().enumerate().all(|(j, r)| {
                            r.status != TaskStatus::Running
                                || self.crew.tasks[j].group == self.crew.tasks[i].group
                        });
                    if running.len() >= max_running && !same_group {
                        continue;
                    }
                    if self.ready(i) {
                        self.start(i, &mut running);
                    }
                }
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                joined = running.join_next() => {
                    let Some(joined) = joined else { break };
                    let (i, rec) = match joined {
                        Ok(x) => x,
                        Err(e) => {
                            // A driver panicked: a bug; the run ends as failed, still recorded.
                            self.run.events.emit(EventKind::Warning {
                                task: None,
                                message: format!("internal error in a task driver: {e}"),
                            });
                            stop.get_or_insert(RunStatus::Failed);
                            self.run.cancel.cancel();
                            continue;
                        }
                    };
                    let verdict = self.finish(i, rec).await?;
                    if stop.is_none() && let Some(s) = verdict {
                        stop = Some(s);
                        self.run.cancel.cancel();
                    }
                }
                () = &mut shutdown, if stop != Some(RunStatus::Interrupted) => {
                    self.run.events.emit(EventKind::Warning {
                        task: None,
                        message: "interrupted: cancelling running tasks; finished outputs are kept".into(),
                    });
                    stop = Some(RunStatus::Interrupted);
                    self.run.cancel.cancel();
                }
                () = &mut deadline, if stop.is_none() => {
                    self.run.events.emit(EventKind::LimitHit {
                        task: None,
                        agent: None,
                        limit: "run_timeout_s".into(),
                        value: format!("{}", self.crew.limits.timeout.as_secs_f64()),
                        key: "limits.run_timeout_s".into(),
                        action: "run stopped; running tasks cancelled".into(),
                    });
                    stop = Some(RunStatus::TimedOut);
                    self.run.cancel.cancel();
                }
            }
        }
        if let Some(s) = stop {
            return Ok(s);
        }
        if self.ledger.exhausted().is_some() {
            return Ok(RunStatus::BudgetExhausted);
        }
        if self
            .records
            .iter()
            .any(|r| r.status == TaskStatus::AwaitingApproval)
        {
            return Ok(RunStatus::AwaitingApproval);
        }
        let failed = self.records.iter().any(|r| {
            matches!(
                r.status,
                TaskStatus::Failed
                    | TaskStatus::Pending
                    | TaskStatus::Unreviewed
                    | TaskStatus::NotApproved
                    | TaskStatus::Rejected
            )
        });
        Ok(if failed {
            RunStatus::Failed
        } else {
            RunStatus::Completed
        })
    }

    fn start(&mut self, i: usize, running: &mut JoinSet<(usize, TaskRecord)>) {
        let task = &self.crew.tasks[i];
        let rec = &mut self.records[i];
        rec.status = TaskStatus::Running;
        rec.started_ms = Some(ms(self.started.elapsed()));
        let progress: Progress = Arc::new(Mutex::new(rec.clone()));
        let run = self.run.clone();
        let timeout = task.limits.timeout;
        let started = Instant::now();
        running.spawn(async move {
            let driven =
                tokio::time::timeout(timeout, driver::drive(run.clone(), i, progress.clone()));
            let mut rec = match driven.await {
                Ok(rec) => rec,
                Err(_) => {
                    let mut rec = driver::current(&progress);
                    run.events.emit(EventKind::LimitHit {
                        task: Some(rec.id.clone()),
                        agent: rec.agent.clone(),
                        limit: "task_timeout_s".into(),
                        value: format!("{}", timeout.as_secs_f64()),
                        key: "limits.task_timeout_s".into(),
                        action: "task ended with its latest version".into(),
                    });
                    rec.status = if rec.output.is_some() {
                        TaskStatus::LimitReached
                    } else {
                        TaskStatus::Failed
                    };
                    rec.limit = Some("limits.task_timeout_s".into());
                    rec.error = Some(format!("timed out after {:.1} s", timeout.as_secs_f64()));
                    rec
                }
            };
            rec.wall_ms = Some(ms(started.elapsed()));
            (i, rec)
        });
    }

    /// Records a finished task and writes it out; `Some(status)` when the run must stop.
    async fn finish(
        &mut self,
        i: usize,
        mut rec: TaskRecord,
    ) -> Result<Option<RunStatus>, RunError> {
        let task = &self.crew.tasks[i];
        if rec.usable() {
            let (out, file, r) = (self.out.clone(), task.output_file.clone(), rec.clone());
            match blocking(move || record::write_task_output(&out, &r, file.as_deref())).await {
                Ok(files) => rec.files = files,
                // The output is kept in run.json; the task did not deliver its file.
                Err(e) => {
                    let file = task
                        .output_file
                        .as_ref()
                        .map_or(String::new(), |f| f.display().to_string());
                    rec.status = TaskStatus::Failed;
                    rec.error = Some(format!(
                        "cannot write `{file}` in the output directory: {e} (the output is kept in run.json)"
                    ));
                }
            }
        }
        let usage = self.ledger.task(i);
        self.run.events.emit(EventKind::TaskFinished {
            task: rec.id.clone(),
            agent: rec.agent.clone().unwrap_or_default(),
            status: rec.status,
            duration_ms: rec.wall_ms.unwrap_or(0),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            output_file: task.output_file.as_ref().map(|f| f.display().to_string()),
            error: rec.error.clone(),
        });
        let status = rec.status;
        self.run.board.insert(i, rec.clone());
        self.records[i] = rec;
        self.checkpoint(RunState::Running).await?;
        Ok(match status {
            _ if self.ledger.exhausted().is_some() => Some(RunStatus::BudgetExhausted),
            TaskStatus::Failed | TaskStatus::Rejected
                if self.crew.limits.on_failure == OnFailure::Stop =>
            {
                Some(RunStatus::Failed)
            }
            TaskStatus::LimitReached if self.crew.limits.on_limit == OnFailure::Stop => {
                Some(RunStatus::Failed)
            }
            _ => None,
        })
    }
}
