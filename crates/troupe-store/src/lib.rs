//! # troupe-store
//!
//! The run store: every run, its tasks, its events (with their sequence numbers) and its model
//! and tool calls, in one embedded SQLite database (WAL), so that a run outlives the process that
//! ran it. The output directory is still written as before; the store is what `troupe runs` and
//! `troupe show` read, and what resuming a run will read.
//!
//! Layout:
//! - [`Store`]: open (creating and migrating the schema), write a run as it goes, read runs back;
//! - [`RunStore`]: what the runtime needs of a store, as a trait, so that another backend can
//!   follow; [`Store`] implements it;
//! - [`owner`]: which process owns a live run (an OS file lock, so a run whose process is gone —
//!   `kill -9`, a crash, a reboot — is seen as `crashed`, and two processes cannot own one run).
//!
//! Why `rusqlite` (with SQLite bundled): the writer is the runtime's event thread, synchronous by
//! nature, and one connection serves it; `sqlx`'s async pool and compile-time query checks buy
//! nothing here and cost a second async runtime's worth of dependencies. Bundling pins the SQLite
//! version, so WAL and JSON functions behave the same on every machine.

pub mod owner;
pub mod run_store;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

pub use owner::Owner;
pub use run_store::{OwnerGuard, RunStore};

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id           TEXT PRIMARY KEY,
    parent       TEXT REFERENCES runs(id),
    crew         TEXT NOT NULL,
    crew_file    TEXT NOT NULL,
    crew_text    TEXT NOT NULL,
    crew_sha256  TEXT NOT NULL,
    inputs       TEXT NOT NULL,
    documents    TEXT NOT NULL,
    out_dir      TEXT NOT NULL,
    status       TEXT NOT NULL,
    owner_pid    INTEGER NOT NULL,
    owner_host   TEXT NOT NULL,
    started_ms   INTEGER NOT NULL,
    finished_ms  INTEGER,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd     REAL,
    ended_by     TEXT,
    record       TEXT,
    options      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_by_crew ON runs(crew, started_ms);
CREATE TABLE IF NOT EXISTS tasks (
    run     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    ord     INTEGER NOT NULL,
    status  TEXT NOT NULL,
    record  TEXT NOT NULL,
    PRIMARY KEY (run, key)
);
CREATE TABLE IF NOT EXISTS events (
    run   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq   INTEGER NOT NULL,
    kind  TEXT NOT NULL,
    body  TEXT NOT NULL,
    PRIMARY KEY (run, seq)
);
CREATE TABLE IF NOT EXISTS calls (
    run            TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    task           TEXT,
    agent          TEXT,
    request_sha256 TEXT NOT NULL,
    request        TEXT NOT NULL,
    response       TEXT,
    error          TEXT,
    input_tokens   INTEGER,
    output_tokens  INTEGER,
    duration_ms    INTEGER NOT NULL,
    PRIMARY KEY (run, seq)
);
CREATE INDEX IF NOT EXISTS calls_by_request ON calls(run, request_sha256);
CREATE TABLE IF NOT EXISTS approvals (
    run            TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task           TEXT NOT NULL,
    n              INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    request        TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    requested_ms   INTEGER NOT NULL,
    decision       TEXT,
    feedback       TEXT,
    decided_by     TEXT,
    decided_ms     INTEGER,
    PRIMARY KEY (run, task, n)
);
";

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the run store `{}`: {error}\n  hint: choose another place with `--store PATH` or `TROUPE_STORE`", path.display())]
    Open { path: PathBuf, error: String },
    #[error("the run store `{}` was written by a newer Troupe (schema {found}, this build knows {SCHEMA_VERSION})\n  hint: upgrade Troupe, or use another store with `--store PATH`", path.display())]
    Newer { path: PathBuf, found: i64 },
    #[error("run store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "run store: the write was not committed: {0}\n  hint: check that the store's disk has room and that no other program holds the database locked"
    )]
    Commit(String),
    #[error("no run `{0}` in the store\n  hint: `troupe runs` lists the stored runs and their ids")]
    NoSuchRun(String),
    #[error(
        "run {0} completed (perhaps just now, in another process): there is nothing to resume\n  hint: `troupe replay RUN --from TASK` runs a task again, with what depends on it, as a new run"
    )]
    Completed(String),
    #[error("a run `{0}` is already in the store")]
    Exists(String),
    #[error("`{prefix}` matches {n} runs\n  hint: give more of the id (`troupe runs` lists them)")]
    Ambiguous { prefix: String, n: usize },
    #[error(
        "task `{task}` of run {run} is not waiting for an approval\n  hint: `troupe show {run}` shows which tasks wait (status `awaiting_approval`)"
    )]
    NoPendingApproval { run: String, task: String },
}

/// One approval a run asked a person for, and the answer when there is one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalRow {
    pub task: String,
    /// The request's number among the task's requests, from 1.
    pub n: u32,
    /// `task` (the output) or `tool` (a call).
    pub kind: String,
    /// What was asked: the message, the output or the tool call.
    pub request: serde_json::Value,
    pub request_sha256: String,
    pub requested_ms: u64,
    pub decision: Option<Decided>,
}

/// A person's answer to an approval request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decided {
    /// `approve`, `revise` or `reject`.
    pub decision: String,
    pub feedback: Option<String>,
    pub by: Option<String>,
    pub at_ms: u64,
}

/// A run's id: a UUIDv7, so ids sort by start time.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What a run is started with.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub id: &'a str,
    pub parent: Option<&'a str>,
    pub crew: &'a str,
    pub crew_file: &'a str,
    pub crew_text: &'a str,
    pub crew_sha256: &'a str,
    pub inputs: &'a serde_json::Value,
    /// `[{"id": …, "sha256": …}]` of the run's documents.
    pub documents: &'a serde_json::Value,
    pub out_dir: &'a str,
    pub started_ms: u64,
    /// How the run was started, as needed to resume or replay it (documents and where they were
    /// read from, the prompt fence, each agent's context window): the runtime's to define.
    pub options: &'a serde_json::Value,
}

/// How a run stands, as the store says: a run recorded as running whose owner is gone is
/// `Crashed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Accepted but not started: waiting for a free slot (a server's `--max-runs`).
    Queued,
    Running,
    Crashed,
    /// Ended: `completed`, `failed`, `interrupted`, `timed_out`, `budget_exhausted`.
    Ended(String),
}

impl Standing {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Crashed => "crashed",
            Self::Ended(s) => s,
        }
    }
}

/// One stored run, as `troupe runs` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: String,
    pub parent: Option<String>,
    pub crew: String,
    pub crew_file: String,
    pub standing: Standing,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: Option<f64>,
    pub out_dir: String,
    pub owner_pid: u32,
    pub owner_host: String,
    /// What ended the run when it did not complete: the limit or the error.
    pub ended_by: Option<String>,
}

/// One stored task.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRow {
    pub key: String,
    pub status: String,
    /// The task's record as `run.json` has it.
    pub record: serde_json::Value,
}

/// One recorded model or tool call.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub kind: &'a str,
    pub task: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub request_sha256: &'a str,
    pub request: &'a str,
    pub response: Option<&'a str>,
    pub error: Option<&'a str>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub duration_ms: u64,
}

/// What a run was started from.
#[derive(Debug, Clone)]
pub struct RunSource {
    pub crew_file: String,
    pub crew_text: String,
    pub crew_sha256: String,
    pub inputs: serde_json::Value,
    pub documents: serde_json::Value,
    pub out_dir: String,
    pub options: serde_json::Value,
}

/// One recorded call, as read back.
#[derive(Debug, Clone)]
pub struct CallRow {
    pub seq: u64,
    pub kind: String,
    pub task: Option<String>,
    pub agent: Option<String>,
    pub request_sha256: String,
    pub request: String,
    pub response: Option<String>,
    pub error: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub crew: Option<String>,
    /// `running`, `crashed`, `completed`, `failed`, …
    pub status: Option<String>,
    pub limit: Option<usize>,
}

/// Read connections: the API and the event streams read side by side, and never wait for the
/// writer.
const READERS: usize = 4;

/// The run store: one writer thread (every write of every run, committed together; see
/// [`writer`]) and a few read connections.
pub struct Store {
    path: PathBuf,
    writer: writer::Writer,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// The store's default place: `$TROUPE_STORE`, else `$XDG_DATA_HOME/troupe/runs.db`, else
/// `~/.local/share/troupe/runs.db`.
pub fn default_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(p) = env("TROUPE_STORE") {
        return PathBuf::from(p);
    }
    let data = env("XDG_DATA_HOME").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env("HOME").unwrap_or_else(|| ".".into())).join(".local/share")
    });
    data.join("troupe/runs.db")
}

fn millis(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens the store at `path`, creating it (and its directory) if needed.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |error: String| StoreError::Open {
            path: path.to_path_buf(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| open_err(e.to_string()))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_err(e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(format!(
                "the database would not switch to WAL (journal mode `{mode}`)"
            )));
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| open_err(e.to_string()))?;
        // Read and migrate in one write transaction: two processes opening an old store at once
        // migrate it once, and a crash mid-way leaves it as it was.
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| open_err(e.to_string()))?;
        let migrated = (|| -> Result<(), StoreError> {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version > SCHEMA_VERSION {
                return Err(StoreError::Newer {
                    path: path.to_path_buf(),
                    found: version,
                });
            }
            if version == 1 {
                // Schema 1 had no `options` (how the run was started: documents, fence, models).
                conn.execute_batch(
                    "ALTER TABLE runs ADD COLUMN options TEXT NOT NULL DEFAULT '{}'",
                )?;
            }
            conn.execute_batch(SCHEMA)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            Ok(())
        })();
        match migrated {
            Ok(()) => conn
                .execute_batch("COMMIT")
                .map_err(|e| open_err(e.to_string()))?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        let readers = (0..READERS)
            .map(|_| {
                let c = Connection::open(path)?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c.execute_batch("PRAGMA query_only = ON;")?;
                Ok(Mutex::new(c))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| open_err(e.to_string()))?;
        let writer = writer::Writer::start(conn).map_err(|e| open_err(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A read connection: a free one, else the next in turn.
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        for r in &self.readers {
            if let Ok(c) = r.try_lock() {
                return c;
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `op` on the writer and waits for its commit.
    fn write<R: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.writer.write(op)
    }

    /// Records a new run, owned by this process. A run recorded as queued under the same id
    /// ([`Store::queue_run`]) becomes this one; any other run with the id is an error.
    pub fn create_run(&self, run: &NewRun<'_>) -> Result<(), StoreError> {
        self.insert_run(run, "running")
    }

    /// Records a run that is accepted but waits for a slot, with what it will start from, so
    /// that it outlives the process that accepted it. No process owns it.
    pub fn queue_run(&self, run: &NewRun<'_>) -> Result<(), StoreError> {
        self.insert_run(run, "queued")
    }

    fn insert_run(&self, run: &NewRun<'_>, status: &str) -> Result<(), StoreError> {
        let (pid, host) = if status == "queued" {
            (0, String::new())
        } else {
            (std::process::id(), owner::host())
        };
        let values = (
            run.id.to_string(),
            run.parent.map(str::to_string),
            run.crew.to_string(),
            run.crew_file.to_string(),
            run.crew_text.to_string(),
            run.crew_sha256.to_string(),
            run.inputs.to_string(),
            run.documents.to_string(),
            run.out_dir.to_string(),
            pid,
            host,
            sql_int(run.started_ms),
            run.options.to_string(),
            status.to_string(),
        );
        let n = self.write(move |conn| {
            Ok(conn.execute(
                "INSERT INTO runs (id, parent, crew, crew_file, crew_text, crew_sha256, inputs,
                               documents, out_dir, status, owner_pid, owner_host, started_ms,
                               options)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?14, ?10, ?11, ?12, ?13)
             ON CONFLICT (id) DO UPDATE SET
                 parent = excluded.parent, crew = excluded.crew, crew_file = excluded.crew_file,
                 crew_text = excluded.crew_text, crew_sha256 = excluded.crew_sha256,
                 inputs = excluded.inputs, documents = excluded.documents,
                 out_dir = excluded.out_dir, status = excluded.status,
                 owner_pid = excluded.owner_pid, owner_host = excluded.owner_host,
                 started_ms = excluded.started_ms, options = excluded.options
             WHERE runs.status = 'queued'",
                params![
                    values.0, values.1, values.2, values.3, values.4, values.5, values.6, values.7,
                    values.8, values.9, values.10, values.11, values.12, values.13,
                ],
            )?)
        })?;
        if n == 0 {
            return Err(StoreError::Exists(run.id.to_string()));
        }
        Ok(())
    }

    /// Ends a run that is not running — queued (never started), or paused for an approval — as
    /// `status` (`interrupted` when cancelled, `failed` when it could not start), by `why`.
    /// `false` when the run was not waiting (it started, or ended, meanwhile).
    pub fn end_waiting(
        &self,
        run: &str,
        status: &str,
        why: &str,
        finished_ms: u64,
    ) -> Result<bool, StoreError> {
        let (run, status, why) = (run.to_string(), status.to_string(), why.to_string());
        let n = self.write(move |conn| {
            Ok(conn.execute(
                "UPDATE runs SET status = ?2, ended_by = ?3, finished_ms = ?4
                 WHERE id = ?1 AND status IN ('queued', 'awaiting_approval')",
                params![run, status, why, sql_int(finished_ms)],
            )?)
        })?;
        Ok(n == 1)
    }

    /// Events of a run after `after` (a sequence number), in order, at most `limit`.
    pub fn events_after(
        &self,
        run: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, kind, body FROM events WHERE run = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![run, sql_int(after), sql_int(limit as u64)], |r| {
                Ok((millis(r.get(0)?), r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Records approval request `n` of `task` unless it is recorded with the same request
    /// already; returns the recorded answer, when a person gave one. A request recorded under
    /// the same number but different content is replaced (its answer was for something else).
    pub fn request_approval(
        &self,
        run: &str,
        row: &ApprovalRow,
    ) -> Result<Option<Decided>, StoreError> {
        let (run, row) = (run.to_string(), row.clone());
        self.write(move |tx| {
            // The recorded request's hash, and its answer when it has one.
            let found: Option<(String, Option<Decided>)> = tx
            .query_row(
                "SELECT request_sha256, decision, feedback, decided_by, decided_ms FROM approvals
                 WHERE run = ?1 AND task = ?2 AND n = ?3",
                params![run, row.task, row.n],
                |r| Ok((r.get(0)?, decided_at(r, 1)?)),
            )
            .optional()?;
            let answer = match found {
                Some((sha, answer)) if sha == row.request_sha256 => answer,
                _ => {
                    tx.execute(
                    "INSERT OR REPLACE INTO approvals (run, task, n, kind, request, request_sha256,
                                                      requested_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        run,
                        row.task,
                        row.n,
                        row.kind,
                        row.request.to_string(),
                        row.request_sha256,
                        sql_int(row.requested_ms),
                    ],
                )?;
                    None
                }
            };
            Ok(answer)
        })
    }

    /// Answers the open approval request of `task` (the newest without an answer). Returns its
    /// number.
    pub fn decide_approval(
        &self,
        run: &str,
        task: &str,
        decided: &Decided,
    ) -> Result<u32, StoreError> {
        let (run, task, decided) = (run.to_string(), task.to_string(), decided.clone());
        self.write(move |conn| {
            let n: Option<u32> = conn
                .query_row(
                    "SELECT n FROM approvals WHERE run = ?1 AND task = ?2 AND decision IS NULL
                 ORDER BY n DESC LIMIT 1",
                    params![run, task],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(n) = n else {
                return Err(StoreError::NoPendingApproval { run, task });
            };
            conn.execute(
            "UPDATE approvals SET decision = ?4, feedback = ?5, decided_by = ?6, decided_ms = ?7
             WHERE run = ?1 AND task = ?2 AND n = ?3",
            params![
                run,
                task,
                n,
                decided.decision,
                decided.feedback,
                decided.by,
                sql_int(decided.at_ms),
            ],
        )?;
            Ok(n)
        })
    }

    /// A run's approval requests, oldest first.
    pub fn approvals(&self, run: &str) -> Result<Vec<ApprovalRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT task, n, kind, request, request_sha256, requested_ms, decision, feedback,
                    decided_by, decided_ms
             FROM approvals WHERE run = ?1 ORDER BY requested_ms, task, n",
        )?;
        let rows = stmt
            .query_map([run], |r| {
                let request: String = r.get(3)?;
                Ok(ApprovalRow {
                    task: r.get(0)?,
                    n: r.get(1)?,
                    kind: r.get(2)?,
                    request: serde_json::from_str(&request).unwrap_or(serde_json::Value::Null),
                    request_sha256: r.get(4)?,
                    requested_ms: millis(r.get(5)?),
                    decision: decided_at(r, 6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Makes this process the recorded owner of `run` again (a resume): running, not ended.
    /// A run that completed is never taken over (another resume may have finished it since
    /// this one looked). The caller holds the run's [`Owner`] lock.
    pub fn take_over(&self, run: &str, out_dir: &str) -> Result<(), StoreError> {
        let (run, out_dir) = (run.to_string(), out_dir.to_string());
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE runs SET status = 'running', owner_pid = ?2, owner_host = ?3,
                             finished_ms = NULL, ended_by = NULL, out_dir = ?4
             WHERE id = ?1 AND status != 'completed'",
                params![run, std::process::id(), owner::host(), out_dir],
            )?;
            if n == 0 {
                let exists: Option<i64> = conn
                    .query_row("SELECT 1 FROM runs WHERE id = ?1", [&run], |r| r.get(0))
                    .optional()?;
                return Err(match exists {
                    Some(_) => StoreError::Completed(run),
                    None => StoreError::NoSuchRun(run),
                });
            }
            Ok(())
        })
    }

    /// What a run was started from: its crew file, inputs, documents and options.
    pub fn source(&self, run: &str) -> Result<RunSource, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT crew_file, crew_text, crew_sha256, inputs, documents, out_dir, options
                 FROM runs WHERE id = ?1",
                [run],
                |r| {
                    let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
                        let s: String = r.get(i)?;
                        Ok(serde_json::from_str(&s).unwrap_or(serde_json::Value::Null))
                    };
                    Ok(RunSource {
                        crew_file: r.get(0)?,
                        crew_text: r.get(1)?,
                        crew_sha256: r.get(2)?,
                        inputs: json(3)?,
                        documents: json(4)?,
                        out_dir: r.get(5)?,
                        options: json(6)?,
                    })
                },
            )
            .optional()?;
        row.ok_or_else(|| StoreError::NoSuchRun(run.to_string()))
    }

    /// A run's recorded calls, in the order they were made.
    pub fn calls(&self, run: &str) -> Result<Vec<CallRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, kind, task, agent, request_sha256, request, response, error,
                    input_tokens, output_tokens
             FROM calls WHERE run = ?1 ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([run], |r| {
                Ok(CallRow {
                    seq: millis(r.get(0)?),
                    kind: r.get(1)?,
                    task: r.get(2)?,
                    agent: r.get(3)?,
                    request_sha256: r.get(4)?,
                    request: r.get(5)?,
                    response: r.get(6)?,
                    error: r.get(7)?,
                    input_tokens: r.get::<_, Option<i64>>(8)?.map(millis),
                    output_tokens: r.get::<_, Option<i64>>(9)?.map(millis),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// A run's last `run.json` record, as its latest checkpoint wrote it.
    pub fn record(&self, run: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let text: Option<Option<String>> = self
            .conn()
            .query_row("SELECT record FROM runs WHERE id = ?1", [run], |r| r.get(0))
            .optional()?;
        let text = text.ok_or_else(|| StoreError::NoSuchRun(run.to_string()))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// The highest event sequence number of a run (0 when it has none).
    pub fn last_event_seq(&self, run: &str) -> Result<u64, StoreError> {
        let seq: i64 = self.conn().query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run = ?1",
            [run],
            |r| r.get(0),
        )?;
        Ok(millis(seq))
    }

    /// Deletes the oldest ended runs of `crew` beyond the newest `keep` (a run that is queued,
    /// running or crashed is never deleted: it may be resumed; nor a running replay's parent, nor a
    /// recording some run answers its calls from). Returns the ids deleted.
    pub fn prune(&self, crew: &str, keep: usize) -> Result<Vec<String>, StoreError> {
        // Counted first (an index lookup): a crew with no more runs than it keeps, the usual
        // case, costs the writer nothing.
        let stored: i64 =
            self.conn()
                .query_row("SELECT COUNT(*) FROM runs WHERE crew = ?1", [crew], |r| {
                    r.get(0)
                })?;
        if usize::try_from(stored).unwrap_or(usize::MAX) <= keep {
            return Ok(Vec::new());
        }
        let crew = crew.to_string();
        let ids = self.write(move |conn| {
            let ids: Vec<String> = {
                let mut stmt = conn.prepare(
                    "SELECT id FROM runs WHERE crew = ?1 AND status NOT IN ('running', 'queued', 'awaiting_approval')
                       AND id NOT IN (SELECT parent FROM runs
                                      WHERE status = 'running' AND parent IS NOT NULL)
                       AND id NOT IN (SELECT json_extract(options, '$.replay_calls') FROM runs
                                      WHERE json_extract(options, '$.replay_calls') IS NOT NULL)
                     ORDER BY id DESC LIMIT -1 OFFSET ?2",
                )?;
                stmt.query_map(params![crew, sql_int(keep as u64)], |r| r.get(0))?
                    .collect::<Result<_, _>>()?
            };
            for id in &ids {
                // Children keep their outputs; only the link to a deleted parent goes.
                conn.execute("UPDATE runs SET parent = NULL WHERE parent = ?1", [id])?;
                conn.execute("DELETE FROM runs WHERE id = ?1", [id])?;
            }
            Ok(ids)
        })?;
        for id in &ids {
            owner::forget(&self.path, id);
        }
        Ok(ids)
    }

    /// Appends events (sequence number, type, JSON body) in one transaction.
    pub fn append_events(
        &self,
        run: &str,
        events: &[(u64, String, String)],
    ) -> Result<(), StoreError> {
        let (run, events) = (run.to_string(), events.to_vec());
        self.write(move |conn| insert_events(conn, &run, &events))
    }

    /// [`Store::append_events`] without waiting: `done` gets the result once committed, on the
    /// store's writer thread (it must not block).
    pub fn append_events_then(&self, run: &str, events: Vec<(u64, String, String)>, done: Done) {
        let run = run.to_string();
        self.writer
            .submit(move |conn| insert_events(conn, &run, &events), done);
    }

    /// Writes the run's state: every task's record, the run's status, totals and `run.json`
    /// record, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn checkpoint(
        &self,
        run: &str,
        status: &str,
        tasks: &[(&str, &str, serde_json::Value)],
        totals: (u64, u64, Option<f64>),
        ended_by: Option<&str>,
        finished_ms: Option<u64>,
        record: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let cp = Checkpoint {
            status: status.to_string(),
            tasks: tasks
                .iter()
                .map(|(k, s, r)| (k.to_string(), s.to_string(), r.to_string()))
                .collect(),
            totals,
            ended_by: ended_by.map(str::to_string),
            finished_ms,
            record: record.to_string(),
        };
        let run = run.to_string();
        self.write(move |conn| write_checkpoint(conn, &run, &cp))
    }

    /// [`Store::checkpoint`] without waiting: `done` gets the result once committed.
    pub fn checkpoint_then(&self, run: &str, cp: Checkpoint, done: Done) {
        let run = run.to_string();
        self.writer
            .submit(move |conn| write_checkpoint(conn, &run, &cp), done);
    }

    /// Records calls in one transaction, numbered on after the run's last one.
    pub fn record_calls(&self, run: &str, calls: &[Call<'_>]) -> Result<(), StoreError> {
        let run = run.to_string();
        let calls: Vec<NewCall> = calls.iter().map(NewCall::from).collect();
        self.write(move |conn| insert_calls(conn, &run, &calls).map(|_| ()))
    }

    /// [`Store::record_calls`] without waiting: `calls` is made on the writer's thread (so a
    /// caller can hand over what is not yet serialised), `done` gets the result once committed.
    pub fn record_calls_then(&self, run: &str, calls: MakeCalls, done: Done) {
        let run = run.to_string();
        self.writer.submit(
            move |conn| insert_calls(conn, &run, &calls()).map(|_| ()),
            done,
        );
    }

    /// `done` runs once every write handed over before is committed (the writer takes them in
    /// order).
    pub fn written_then(&self, done: Done) {
        self.writer.submit(|_| Ok(()), done);
    }

    /// Records one model or tool call; returns its sequence number within the run.
    pub fn record_call(&self, run: &str, call: &Call<'_>) -> Result<u64, StoreError> {
        let (run, call) = (run.to_string(), NewCall::from(call));
        self.write(move |conn| insert_calls(conn, &run, std::slice::from_ref(&call)))
    }

    /// The full id of the run whose id is or starts with `prefix`.
    pub fn resolve(&self, prefix: &str) -> Result<String, StoreError> {
        let conn = self.conn();
        // A whole id (what the API and the page use) is a key lookup; only a prefix scans.
        let exact: Option<String> = conn
            .prepare_cached("SELECT id FROM runs WHERE id = ?1")?
            .query_row([prefix], |r| r.get(0))
            .optional()?;
        if let Some(id) = exact {
            return Ok(id);
        }
        let mut stmt =
            conn.prepare("SELECT id FROM runs WHERE id LIKE ?1 || '%' ESCAPE '\\' LIMIT 2")?;
        let escaped = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let ids: Vec<String> = stmt
            .query_map([escaped], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(StoreError::NoSuchRun(prefix.to_string())),
            _ => {
                let n: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM runs WHERE substr(id, 1, length(?1)) = ?1",
                    [prefix],
                    |r| r.get(0),
                )?;
                Err(StoreError::Ambiguous {
                    prefix: prefix.to_string(),
                    n: usize::try_from(n).unwrap_or(usize::MAX),
                })
            }
        }
    }

    /// The stored runs, newest first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, parent, crew, crew_file, status, started_ms, finished_ms, input_tokens,
                    output_tokens, cost_usd, out_dir, owner_pid, owner_host, ended_by
             FROM runs WHERE (?1 IS NULL OR crew = ?1) ORDER BY id DESC",
        )?;
        let rows = stmt
            .query_map([filter.crew.as_deref()], row_of)?
            .collect::<Result<Vec<_>, _>>()?;
        drop(stmt);
        drop(conn);
        let mut out: Vec<RunRow> = rows
            .into_iter()
            .map(|mut r| {
                if r.standing == Standing::Running && !owner::is_live(&self.path, &r.id) {
                    r.standing = Standing::Crashed;
                }
                r
            })
            .filter(|r| {
                filter
                    .status
                    .as_deref()
                    .is_none_or(|s| r.standing.as_str() == s)
            })
            .collect();
        if let Some(n) = filter.limit {
            out.truncate(n);
        }
        Ok(out)
    }

    /// One run.
    pub fn run(&self, id: &str) -> Result<RunRow, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT id, parent, crew, crew_file, status, started_ms, finished_ms, input_tokens,
                        output_tokens, cost_usd, out_dir, owner_pid, owner_host, ended_by
                 FROM runs WHERE id = ?1",
                [id],
                row_of,
            )
            .optional()?;
        let mut row = row.ok_or_else(|| StoreError::NoSuchRun(id.to_string()))?;
        if row.standing == Standing::Running && !owner::is_live(&self.path, &row.id) {
            row.standing = Standing::Crashed;
        }
        Ok(row)
    }

    /// A run's tasks, in the crew's order.
    pub fn tasks(&self, run: &str) -> Result<Vec<TaskRow>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT key, status, record FROM tasks WHERE run = ?1 ORDER BY ord")?;
        let rows = stmt
            .query_map([run], |r| {
                let record: String = r.get(2)?;
                Ok(TaskRow {
                    key: r.get(0)?,
                    status: r.get(1)?,
                    record: serde_json::from_str(&record).unwrap_or(serde_json::Value::Null),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// A run's events, in order: `(seq, type, body)`.
    pub fn events(&self, run: &str) -> Result<Vec<(u64, String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT seq, kind, body FROM events WHERE run = ?1 ORDER BY seq")?;
        let rows = stmt
            .query_map([run], |r| Ok((millis(r.get(0)?), r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// How many calls a run has recorded, by kind.
    pub fn call_counts(&self, run: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT kind, COUNT(*) FROM calls WHERE run = ?1 GROUP BY kind ORDER BY kind",
        )?;
        let rows = stmt
            .query_map([run], |r| Ok((r.get(0)?, millis(r.get(1)?))))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

/// The answer in columns `decision, feedback, decided_by, decided_ms` from `first` on.
fn decided_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Option<Decided>> {
    let decision: Option<String> = r.get(first)?;
    Ok(match decision {
        Some(decision) => Some(Decided {
            decision,
            feedback: r.get(first + 1)?,
            by: r.get(first + 2)?,
            at_ms: r.get::<_, Option<i64>>(first + 3)?.map_or(0, millis),
        }),
        None => None,
    })
}

fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let status: String = r.get(4)?;
    Ok(RunRow {
        id: r.get(0)?,
        parent: r.get(1)?,
        crew: r.get(2)?,
        crew_file: r.get(3)?,
        standing: match status.as_str() {
            "running" => Standing::Running,
            "queued" => Standing::Queued,
            _ => Standing::Ended(status),
        },
        started_ms: millis(r.get(5)?),
        finished_ms: r.get::<_, Option<i64>>(6)?.map(millis),
        input_tokens: millis(r.get(7)?),
        output_tokens: millis(r.get(8)?),
        cost_usd: r.get(9)?,
        out_dir: r.get(10)?,
        owner_pid: u32::try_from(r.get::<_, i64>(11)?).unwrap_or(0),
        owner_host: r.get(12)?,
        ended_by: r.get(13)?,
    })
}

/// What a write handed over without waiting gets: its result, once committed.
pub type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Calls to record, made on the store's writer thread.
pub type MakeCalls = Box<dyn FnOnce() -> Vec<NewCall> + Send>;

/// One model or tool call to record, owned (see [`Call`] for a borrowed one).
#[derive(Debug, Clone, Default)]
pub struct NewCall {
    pub kind: String,
    pub task: Option<String>,
    pub agent: Option<String>,
    pub request_sha256: String,
    pub request: String,
    pub response: Option<String>,
    pub error: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub duration_ms: u64,
}

impl<'a> From<&'a NewCall> for Call<'a> {
    fn from(c: &'a NewCall) -> Self {
        Self {
            kind: &c.kind,
            task: c.task.as_deref(),
            agent: c.agent.as_deref(),
            request_sha256: &c.request_sha256,
            request: &c.request,
            response: c.response.as_deref(),
            error: c.error.as_deref(),
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            duration_ms: c.duration_ms,
        }
    }
}

impl From<&Call<'_>> for NewCall {
    fn from(c: &Call<'_>) -> Self {
        Self {
            kind: c.kind.to_string(),
            task: c.task.map(str::to_string),
            agent: c.agent.map(str::to_string),
            request_sha256: c.request_sha256.to_string(),
            request: c.request.to_string(),
            response: c.response.map(str::to_string),
            error: c.error.map(str::to_string),
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            duration_ms: c.duration_ms,
        }
    }
}

fn insert_events(
    conn: &Connection,
    run: &str,
    events: &[(u64, String, String)],
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO events (run, seq, kind, body) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (seq, kind, body) in events {
        stmt.execute(params![run, sql_int(*seq), kind, body])?;
    }
    Ok(())
}

/// Inserts `calls` numbered on after the run's last one; the last number.
fn insert_calls(conn: &Connection, run: &str, calls: &[NewCall]) -> Result<u64, StoreError> {
    let mut seq: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM calls WHERE run = ?1")?
        .query_row([run], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO calls (run, seq, kind, task, agent, request_sha256, request, response,
                            error, input_tokens, output_tokens, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for call in calls {
        seq += 1;
        stmt.execute(params![
            run,
            seq,
            call.kind,
            call.task,
            call.agent,
            call.request_sha256,
            call.request,
            call.response,
            call.error,
            call.input_tokens.map(sql_int),
            call.output_tokens.map(sql_int),
            sql_int(call.duration_ms),
        ])?;
    }
    Ok(millis(seq))
}

/// A run's state at a checkpoint, owned (see [`Store::checkpoint`]).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub status: String,
    /// Each task's key, status and record (JSON text), in the crew's order.
    pub tasks: Vec<(String, String, String)>,
    /// Input tokens, output tokens, cost.
    pub totals: (u64, u64, Option<f64>),
    pub ended_by: Option<String>,
    pub finished_ms: Option<u64>,
    /// The `run.json` record, as JSON text.
    pub record: String,
}

fn write_checkpoint(conn: &Connection, run: &str, cp: &Checkpoint) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO tasks (run, key, ord, status, record) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (run, key) DO UPDATE SET status = excluded.status, record = excluded.record",
    )?;
    for (ord, (key, status, record)) in cp.tasks.iter().enumerate() {
        stmt.execute(params![run, key, ord, status, record])?;
    }
    conn.prepare_cached(
        "UPDATE runs SET status = ?2, input_tokens = ?3, output_tokens = ?4, cost_usd = ?5,
                         ended_by = ?6, finished_ms = ?7, record = ?8
         WHERE id = ?1",
    )?
    .execute(params![
        run,
        cp.status,
        sql_int(cp.totals.0),
        sql_int(cp.totals.1),
        cp.totals.2,
        cp.ended_by,
        cp.finished_ms.map(sql_int),
        cp.record,
    ])?;
    Ok(())
}
