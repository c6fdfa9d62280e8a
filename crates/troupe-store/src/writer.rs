//! The store's one writer: a thread that owns the write connection and commits what every
//! caller hands it together, in shared transactions (group commit). A server with a thousand
//! runs writing events, calls and checkpoints at once makes a few dozen commits a second
//! instead of thousands, with one thread instead of two per run, and readers (the API, the
//! event streams) never wait for it: they have their own connections (WAL lets them read
//! while it writes).
//!
//! Each write runs in its own savepoint inside the shared transaction, so one that fails is
//! undone alone and the others commit. A caller hears back only after the commit: what it is
//! told is written, any reader can read.

use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};

use rusqlite::Connection;

use crate::StoreError;

/// Writes committed together at most; the rest wait for the next transaction.
const MAX_BATCH: usize = 512;

/// One write, waiting for its transaction.
trait Pending: Send {
    /// Runs the write inside the shared transaction.
    fn apply(&mut self, conn: &Connection);
    /// Hands the result over once the transaction ended: `Err` when it did not commit.
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

struct Job<R, F, D> {
    op: Option<F>,
    result: Option<Result<R, StoreError>>,
    done: D,
}

impl<R, F, D> Pending for Job<R, F, D>
where
    R: Send,
    F: FnOnce(&Connection) -> Result<R, StoreError> + Send,
    D: FnOnce(Result<R, StoreError>) + Send,
{
    fn apply(&mut self, conn: &Connection) {
        let Some(op) = self.op.take() else { return };
        // Cached statements: parsed once, not for every write.
        let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
        let result = match run("SAVEPOINT write") {
            Err(e) => Err(StoreError::Sql(e)),
            Ok(_) => {
                let r = op(conn);
                let undone = if r.is_ok() {
                    Ok(0)
                } else {
                    run("ROLLBACK TO write")
                };
                match undone.and_then(|_| run("RELEASE write")) {
                    Ok(_) => r,
                    Err(e) => Err(StoreError::Sql(e)),
                }
            }
        };
        self.result = Some(result);
    }

    fn finish(self: Box<Self>, committed: Result<(), &str>) {
        let result = match (self.result, committed) {
            (Some(Err(e)), _) => Err(e),
            (_, Err(why)) => Err(StoreError::Commit(why.to_string())),
            (Some(Ok(r)), Ok(())) => Ok(r),
            (None, Ok(())) => Err(StoreError::Commit("the write never ran".into())),
        };
        (self.done)(result);
    }
}

/// The sending side of the writer thread; the thread ends when the store is dropped.
pub(crate) struct Writer {
    tx: Sender<Box<dyn Pending>>,
}

impl Writer {
    /// Starts the writer on `conn` (already opened and migrated).
    pub(crate) fn start(conn: Connection) -> std::io::Result<Self> {
        // Every statement the writer runs stays parsed.
        conn.set_prepared_statement_cache_capacity(64);
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("troupe-store".into())
            .spawn(move || run(&conn, &rx))?;
        Ok(Self { tx })
    }

    /// Hands `op` to the writer; `done` gets its result after the commit, on the writer's
    /// thread (it must not block).
    pub(crate) fn submit<R, F, D>(&self, op: F, done: D)
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        D: FnOnce(Result<R, StoreError>) + Send + 'static,
    {
        let job = Box::new(Job {
            op: Some(op),
            result: None,
            done,
        });
        if let Err(std::sync::mpsc::SendError(job)) = self.tx.send(job) {
            job.finish(Err("the store's writer stopped"));
        }
    }

    /// Runs `op` and waits for its commit.
    pub(crate) fn write<R, F>(&self, op: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = sync_channel(1);
        self.submit(op, move |r| {
            let _ = tx.send(r);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::Commit("the store's writer stopped".into())))
    }
}

/// Waits for another process's write to end: `BEGIN IMMEDIATE` waits the busy timeout (5 s)
/// each try, and one long writer elsewhere must not fail every run's writes at once.
const BEGIN_TRIES: u32 = 6;

fn begin(run: &impl Fn(&str) -> rusqlite::Result<usize>) -> Result<(), String> {
    let mut tries = 0;
    loop {
        match run("BEGIN IMMEDIATE") {
            Ok(_) => return Ok(()),
            Err(e)
                if tries + 1 < BEGIN_TRIES
                    && e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) =>
            {
                tries += 1;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn run(conn: &Connection, rx: &Receiver<Box<dyn Pending>>) {
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(MAX_BATCH - 1));
        // IMMEDIATE: another process writing the same store is waited for here, not in the
        // middle of the batch.
        let committed = match begin(&run) {
            Err(e) => Err(e),
            Ok(()) => {
                let mut aborted = None;
                for job in &mut batch {
                    // A panic in one write fails that write, not the writer (and with it every
                    // later write of the process).
                    let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        job.apply(conn);
                    }));
                    if applied.is_err() {
                        aborted = Some("a write panicked".to_string());
                        break;
                    }
                    // SQLite ends the whole transaction on some errors (a full disk, an I/O
                    // error): nothing after may run outside it, and nothing of it committed.
                    if conn.is_autocommit() {
                        aborted = Some("the transaction was rolled back by SQLite".to_string());
                        break;
                    }
                }
                match aborted {
                    Some(why) => {
                        let _ = conn.execute_batch("ROLLBACK");
                        Err(why)
                    }
                    None => run("COMMIT").map(|_| ()).map_err(|e| {
                        let _ = conn.execute_batch("ROLLBACK");
                        e.to_string()
                    }),
                }
            }
        };
        let committed = committed.as_ref().map(|_| ()).map_err(String::as_str);
        for job in batch {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                job.finish(committed);
            }));
        }
    }
}
