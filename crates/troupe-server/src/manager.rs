//! The runs of this server: at most `max_runs` executing at once, up to `max_queue` more
//! waiting (a new run beyond is refused: 429). A new run is recorded `queued` in the store
//! before it is accepted, so the queue outlives the process: the next start runs what was left
//! queued. A run waiting for a person's approval holds no slot and no memory here: it ended
//! `awaiting_approval` in the store, and an answer resumes it.
//!
//! Stopping (Ctrl-C, SIGTERM) refuses new work, interrupts every running run (each writes its
//! state as it ends, and can be resumed) and waits for them.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use troupe_crew::Crew;
use troupe_runtime::continuation::DocumentSource;
use troupe_runtime::launch::{self, Resume, ResumeCrew};
use troupe_runtime::{RunOptions, RunStatus};
use troupe_store::{RunFilter, Standing};

use crate::AppState;

/// A run to execute.
pub enum Job {
    /// A new run, validated and recorded as queued under `id`.
    New {
        id: String,
        crew: Box<Crew>,
        documents: Option<DocumentSource>,
        out_dir: PathBuf,
    },
    /// A stored run that goes on (a resume; an answered approval).
    Resume { id: String, resume: Box<Resume> },
}

impl Job {
    pub fn id(&self) -> &str {
        match self {
            Self::New { id, .. } | Self::Resume { id, .. } => id,
        }
    }
}

/// Where a submitted run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    Started,
    /// Waiting, with this many runs before it.
    Queued(usize),
}

/// Why a run was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_runs` run and `max_queue` wait.
    Full,
    /// The server is stopping.
    Stopping,
}

/// What a cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It was running: it is being interrupted.
    Running,
    /// It was waiting for a slot: it will not start.
    Queued,
    /// It is not running here.
    NotHere,
}

struct Slots {
    queue: VecDeque<Job>,
    running: usize,
    stopping: bool,
    /// Runs being made ready to resume (read back, documents loaded): one at a time each.
    resuming: std::collections::HashSet<String>,
}

/// The runs of this server.
pub struct Manager {
    state: Weak<AppState>,
    max_runs: usize,
    max_queue: usize,
    slots: Mutex<Slots>,
    /// Runs executing here, with what interrupts them.
    live: DashMap<String, CancellationToken>,
    tracker: TaskTracker,
}

impl Manager {
    pub fn new(state: Weak<AppState>, max_runs: usize, max_queue: usize) -> Self {
        Self {
            state,
            max_runs: max_runs.max(1),
            max_queue,
            slots: Mutex::new(Slots {
                queue: VecDeque::new(),
                running: 0,
                stopping: false,
                resuming: std::collections::HashSet::new(),
            }),
            live: DashMap::new(),
            tracker: TaskTracker::new(),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `job` now when a slot is free, else queues it, else refuses it.
    pub fn submit(&self, job: Job) -> Result<Submitted, Refused> {
        let mut slots = self.slots();
        if slots.stopping {
            return Err(Refused::Stopping);
        }
        if slots.running < self.max_runs {
            slots.running += 1;
            drop(slots);
            self.launch(job);
            return Ok(Submitted::Started);
        }
        if slots.queue.len() >= self.max_queue {
            return Err(Refused::Full);
        }
        slots.queue.push_back(job);
        Ok(Submitted::Queued(slots.queue.len() - 1))
    }

    /// Whether a run submitted now would be taken (started or queued): checked before the work
    /// of making a run ready (loading documents and plugins, starting its MCP servers) is done
    /// for one that would be refused. `submit` decides; this only spares the work.
    pub fn would_take(&self) -> Result<(), Refused> {
        let slots = self.slots();
        if slots.stopping {
            return Err(Refused::Stopping);
        }
        if slots.running >= self.max_runs && slots.queue.len() >= self.max_queue {
            return Err(Refused::Full);
        }
        Ok(())
    }

    /// Runs executing now, and runs waiting for a slot.
    pub fn load(&self) -> (usize, usize) {
        let slots = self.slots();
        (slots.running, slots.queue.len())
    }

    pub fn is_live(&self, id: &str) -> bool {
        self.live.contains_key(id)
    }

    /// Whether `id` waits in this server's queue (or is being made ready to resume).
    pub fn is_queued(&self, id: &str) -> bool {
        let slots = self.slots();
        slots.queue.iter().any(|j| j.id() == id) || slots.resuming.contains(id)
    }

    /// Interrupts a running run, or takes a queued one out of the queue.
    pub fn cancel(&self, id: &str) -> Cancelled {
        if let Some(token) = self.live.get(id) {
            token.cancel();
            return Cancelled::Running;
        }
        let mut slots = self.slots();
        if let Some(i) = slots.queue.iter().position(|j| j.id() == id) {
            slots.queue.remove(i);
            return Cancelled::Queued;
        }
        Cancelled::NotHere
    }

    /// Executes `job` in a slot already counted.
    fn launch(&self, job: Job) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let token = CancellationToken::new();
        self.live.insert(job.id().to_string(), token.clone());
        self.tracker.spawn(async move {
            let id = job.id().to_string();
            let status = execute(&state, job, token).await;
            state.runs.live.remove(&id);
            state.runs.ended();
            if status == Some(RunStatus::AwaitingApproval) {
                state.runs.continue_if_answered(&id).await;
            }
        });
    }

    /// A slot is free: the next queued run takes it.
    fn ended(&self) {
        let next = {
            let mut slots = self.slots();
            match slots.queue.pop_front() {
                Some(job) if !slots.stopping => Some(job),
                _ => {
                    slots.running -= 1;
                    None
                }
            }
        };
        if let Some(job) = next {
            self.launch(job);
        }
    }

    /// A paused run goes on when a person answered a task it waits for (while it was still
    /// running other tasks, or before it paused).
    pub async fn continue_if_answered(&self, id: &str) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let (store, run) = (state.store.clone(), id.to_string());
        let answered = tokio::task::spawn_blocking(move || answered_waiting(&store, &run))
            .await
            .unwrap_or(false);
        if answered {
            let _ = self.resume(id).await;
        }
    }

    /// Makes a stored run ready to go on and submits it; refused as `troupe resume` refuses.
    pub async fn resume(&self, id: &str) -> Result<Submitted, crate::error::ApiError> {
        let Some(state) = self.state.upgrade() else {
            return Err(crate::error::ApiError::internal("the server is stopping"));
        };
        {
            // Checked and reserved at once: two answers arriving together resume it once.
            let mut slots = self.slots();
            let queued = slots.queue.iter().any(|j| j.id() == id);
            if self.live.contains_key(id) || queued || !slots.resuming.insert(id.to_string()) {
                return Err(crate::error::ApiError::conflict(format!(
                    "run {id} is already running or queued here"
                ))
                .hint("it goes on by itself; `GET /v1/runs/{id}/events` follows it"));
            }
        }
        let (store, run) = (state.store.clone(), id.to_string());
        let resume = tokio::task::spawn_blocking(move || {
            launch::resume(&store, &run, ResumeCrew::Stored, None)
        })
        .await
        .map_err(crate::error::ApiError::internal)
        .and_then(|r| r.map_err(crate::error::ApiError::from));
        // A run started elsewhere (`troupe run` on a crew file of its own) does not get to start
        // programs here: MCP servers only from the crews this server offers.
        let offered = |file: &std::path::Path| {
            state.config.crews_dir.as_ref().is_some_and(|dir| {
                let (dir, file) = (std::path::absolute(dir), std::path::absolute(file));
                matches!((dir, file), (Ok(d), Ok(f)) if f.starts_with(&d))
            })
        };
        let resume = resume.and_then(|r| {
            if r.crew.mcp_servers.is_empty() || offered(&r.crew.source.file) {
                Ok(r)
            } else {
                Err(crate::error::ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    format!("run {id}'s crew declares MCP servers and is not one of this server's crews"),
                )
                .hint("resume it with `troupe resume` where it was started, or put its crew in the server's `--crews` directory"))
            }
        });
        let submitted = resume.and_then(|resume| {
            self.submit(Job::Resume {
                id: id.to_string(),
                resume: Box::new(resume),
            })
            .map_err(refusal)
        });
        self.slots().resuming.remove(id);
        submitted
    }

    /// Queues again the runs an earlier start of the server accepted and never started.
    pub fn recover(&self) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let filter = RunFilter {
            status: Some("queued".into()),
            ..RunFilter::default()
        };
        let Ok(mut queued) = state.store.runs(&filter) else {
            return;
        };
        queued.reverse(); // oldest first
        for row in queued {
            let job = stored_job(&state, &row.id);
            match job {
                Ok(job) => {
                    if self.submit(job).is_err() {
                        break;
                    }
                }
                Err(why) => {
                    let _ = state.store.end_waiting(&row.id, "failed", &why, now_ms());
                }
            }
        }
    }

    /// Refuses new runs, interrupts the running ones and waits until each has written its
    /// state. Queued runs stay queued in the store, for the next start.
    pub async fn shutdown(&self) {
        {
            let mut slots = self.slots();
            slots.stopping = true;
            slots.queue.clear();
        }
        for token in self.live.iter() {
            token.cancel();
        }
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// The HTTP refusal of a run not taken.
pub fn refusal(r: Refused) -> crate::error::ApiError {
    let mut e = match r {
        Refused::Full => crate::error::ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "the server runs as many runs as it may (`--max-runs`) and its queue is full (`--max-queue`)",
        )
        .hint("retry after the time `Retry-After` gives, or start the server with a larger `--max-queue`"),
        Refused::Stopping => crate::error::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping",
        )
        .hint("retry once it has restarted; queued runs are kept"),
    };
    e.retry_after = Some(5);
    e
}

/// A queued run, read back from the store: its crew file as stored, inputs and documents.
fn stored_job(state: &AppState, id: &str) -> Result<Job, String> {
    let source = state.store.source(id).map_err(|e| e.to_string())?;
    let file = PathBuf::from(&source.crew_file);
    let crew = launch::parse(
        &file,
        source.crew_text.clone(),
        &launch::stored_inputs(&source),
    )
    .map_err(|e| e.to_string())?;
    let documents = source
        .options
        .get("documents")
        .cloned()
        .and_then(|d| serde_json::from_value::<DocumentSource>(d).ok());
    Ok(Job::New {
        id: id.to_string(),
        crew: Box::new(crew),
        documents,
        out_dir: PathBuf::from(&source.out_dir),
    })
}

/// Whether a task `id` waits for has an answer now (its newest request is decided).
fn answered_waiting(store: &troupe_store::Store, id: &str) -> bool {
    let (Ok(tasks), Ok(approvals)) = (store.tasks(id), store.approvals(id)) else {
        return false;
    };
    tasks
        .iter()
        .filter(|t| t.status == "awaiting_approval")
        .any(|t| {
            approvals
                .iter()
                .filter(|a| a.task == t.key)
                .max_by_key(|a| a.n)
                .is_some_and(|a| a.decision.is_some())
        })
}

/// Runs one job to its end; the run's status, or `None` when it could not start (then the
/// store says why).
async fn execute(state: &Arc<AppState>, job: Job, cancel: CancellationToken) -> Option<RunStatus> {
    let id = job.id().to_string();
    let (crew, documents, continuation, out_dir, run_id) = match job {
        Job::New {
            id,
            crew,
            documents,
            out_dir,
        } => {
            let loaded = match documents {
                Some(source) => {
                    let c = crew.clone();
                    tokio::task::spawn_blocking(move || launch::documents(&source, &c))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.message))
                }
                None => Ok(None),
            };
            match loaded {
                Ok(docs) => (*crew, docs, None, out_dir, Some(id)),
                Err(why) => {
                    let st = state.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        st.store.end_waiting(&id, "failed", &why, now_ms())
                    })
                    .await;
                    return None;
                }
            }
        }
        Job::Resume { resume, .. } => {
            let r = *resume;
            (r.crew, r.documents, Some(r.continuation), r.out_dir, None)
        }
    };
    let hub_state = state.clone();
    let run = id.clone();
    let mut extra = state.config.run_sinks.as_ref().map(|make| make(&id));
    let opts = RunOptions {
        out_dir,
        models: state.config.models.clone(),
        tools: troupe_runtime::default_tools(),
        on_event: Some(Box::new(move |e| {
            hub_state.hub.publish(&run, e);
            if let Some(sink) = extra.as_mut() {
                sink(e);
            }
        })),
        documents,
        store: Some(state.store.clone()),
        continuation,
        run_id,
        approvals: None,
    };
    let result = troupe_runtime::run(crew, opts, cancel.cancelled_owned()).await;
    state.hub.release(&id);
    match result {
        Ok(report) => Some(report.status),
        Err(e) => {
            let _ = state
                .store
                .end_waiting(&id, "failed", &e.to_string(), now_ms());
            None
        }
    }
}

/// Whether a stored run can be answered and continued here: paused, or ended without
/// completing. Running elsewhere: its owner continues it.
pub fn owned_elsewhere(standing: &Standing, live_here: bool) -> bool {
    matches!(standing, Standing::Running) && !live_here
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
