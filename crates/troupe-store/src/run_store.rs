//! What the runtime needs of a run store, as a trait: [`crate::Store`] (SQLite) is the one
//! implementation today; another backend (a server's database) implements the same.

use crate::owner::OwnerError;
use crate::{CallRow, Checkpoint, Done, MakeCalls, NewRun, RunSource, StoreError, TaskRow};

/// Held while this process owns a run; dropping it gives the run up.
pub type OwnerGuard = Box<dyn Send + Sync>;

/// A run store as a running, resuming or replaying run uses it.
pub trait RunStore: Send + Sync {
    /// Where the store is, for messages (`~/.local/share/troupe/runs.db`).
    fn location(&self) -> String;
    /// Makes this process `run`'s only owner, or says who owns it.
    fn own(&self, run: &str) -> Result<OwnerGuard, OwnerError>;
    fn create_run(&self, run: &NewRun<'_>) -> Result<(), StoreError>;
    /// Records this process as the owner of `run` again (a resume), writing into `out_dir`;
    /// refused for a run that completed.
    fn take_over(&self, run: &str, out_dir: &str) -> Result<(), StoreError>;
    fn append_events(&self, run: &str, events: &[(u64, String, String)]) -> Result<(), StoreError>;
    /// Appends events without waiting: `done` gets the result once they are stored (it must not
    /// block). A backend that cannot write in the background writes them now.
    fn append_events_then(&self, run: &str, events: Vec<(u64, String, String)>, done: Done) {
        done(self.append_events(run, &events));
    }
    /// `done` runs once every write handed over before (`…_then`) is stored.
    fn written_then(&self, done: Done) {
        done(Ok(()));
    }
    /// Records calls without waiting; see [`RunStore::append_events_then`].
    fn record_calls_then(&self, run: &str, calls: MakeCalls, done: Done) {
        let calls = calls();
        let borrowed: Vec<crate::Call<'_>> = calls.iter().map(crate::Call::from).collect();
        done(self.record_calls(run, &borrowed));
    }
    #[allow(clippy::too_many_arguments)]
    fn checkpoint(
        &self,
        run: &str,
        status: &str,
        tasks: &[(&str, &str, serde_json::Value)],
        totals: (u64, u64, Option<f64>),
        ended_by: Option<&str>,
        finished_ms: Option<u64>,
        record: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// Writes a checkpoint without waiting; see [`RunStore::append_events_then`].
    fn checkpoint_then(&self, run: &str, cp: Checkpoint, done: Done) {
        let tasks: Vec<(&str, &str, serde_json::Value)> = cp
            .tasks
            .iter()
            .map(|(k, s, r)| {
                let record = serde_json::from_str(r).unwrap_or(serde_json::Value::Null);
                (k.as_str(), s.as_str(), record)
            })
            .collect();
        let record = serde_json::from_str(&cp.record).unwrap_or(serde_json::Value::Null);
        done(self.checkpoint(
            run,
            &cp.status,
            &tasks,
            cp.totals,
            cp.ended_by.as_deref(),
            cp.finished_ms,
            &record,
        ));
    }
    /// Records calls in one transaction, in order.
    fn record_calls(&self, run: &str, calls: &[crate::Call<'_>]) -> Result<(), StoreError>;
    /// Deletes the oldest ended runs of `crew` beyond `keep`; returns their ids.
    fn prune(&self, crew: &str, keep: usize) -> Result<Vec<String>, StoreError>;
    fn last_event_seq(&self, run: &str) -> Result<u64, StoreError>;
    fn source(&self, run: &str) -> Result<RunSource, StoreError>;
    fn tasks(&self, run: &str) -> Result<Vec<TaskRow>, StoreError>;
    fn calls(&self, run: &str) -> Result<Vec<CallRow>, StoreError>;
    /// Records an approval request (see [`crate::Store::request_approval`]); the recorded
    /// answer, when a person gave one.
    fn request_approval(
        &self,
        run: &str,
        row: &crate::ApprovalRow,
    ) -> Result<Option<crate::Decided>, StoreError>;
    /// Answers the open approval request of `task`; returns its number.
    fn decide_approval(
        &self,
        run: &str,
        task: &str,
        decided: &crate::Decided,
    ) -> Result<u32, StoreError>;
}

impl RunStore for crate::Store {
    fn location(&self) -> String {
        self.path().display().to_string()
    }
    fn own(&self, run: &str) -> Result<OwnerGuard, OwnerError> {
        Ok(Box::new(crate::Owner::acquire(self.path(), run)?))
    }
    fn create_run(&self, run: &NewRun<'_>) -> Result<(), StoreError> {
        crate::Store::create_run(self, run)
    }
    fn take_over(&self, run: &str, out_dir: &str) -> Result<(), StoreError> {
        crate::Store::take_over(self, run, out_dir)
    }
    fn append_events(&self, run: &str, events: &[(u64, String, String)]) -> Result<(), StoreError> {
        crate::Store::append_events(self, run, events)
    }
    fn checkpoint(
        &self,
        run: &str,
        status: &str,
        tasks: &[(&str, &str, serde_json::Value)],
        totals: (u64, u64, Option<f64>),
        ended_by: Option<&str>,
        finished_ms: Option<u64>,
        record: &serde_json::Value,
    ) -> Result<(), StoreError> {
        crate::Store::checkpoint(
            self,
            run,
            status,
            tasks,
            totals,
            ended_by,
            finished_ms,
            record,
        )
    }
    fn record_calls(&self, run: &str, calls: &[crate::Call<'_>]) -> Result<(), StoreError> {
        crate::Store::record_calls(self, run, calls)
    }
    fn append_events_then(&self, run: &str, events: Vec<(u64, String, String)>, done: Done) {
        crate::Store::append_events_then(self, run, events, done);
    }
    fn record_calls_then(&self, run: &str, calls: MakeCalls, done: Done) {
        crate::Store::record_calls_then(self, run, calls, done);
    }
    fn written_then(&self, done: Done) {
        crate::Store::written_then(self, done);
    }
    fn checkpoint_then(&self, run: &str, cp: Checkpoint, done: Done) {
        crate::Store::checkpoint_then(self, run, cp, done);
    }
    fn prune(&self, crew: &str, keep: usize) -> Result<Vec<String>, StoreError> {
        crate::Store::prune(self, crew, keep)
    }
    fn last_event_seq(&self, run: &str) -> Result<u64, StoreError> {
        crate::Store::last_event_seq(self, run)
    }
    fn source(&self, run: &str) -> Result<RunSource, StoreError> {
        crate::Store::source(self, run)
    }
    fn tasks(&self, run: &str) -> Result<Vec<TaskRow>, StoreError> {
        crate::Store::tasks(self, run)
    }
    fn calls(&self, run: &str) -> Result<Vec<CallRow>, StoreError> {
        crate::Store::calls(self, run)
    }
    fn request_approval(
        &self,
        run: &str,
        row: &crate::ApprovalRow,
    ) -> Result<Option<crate::Decided>, StoreError> {
        crate::Store::request_approval(self, run, row)
    }
    fn decide_approval(
        &self,
        run: &str,
        task: &str,
        decided: &crate::Decided,
    ) -> Result<u32, StoreError> {
        crate::Store::decide_approval(self, run, task, decided)
    }
}
