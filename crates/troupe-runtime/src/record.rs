//! What a run leaves on disk: each task's output, `run.json`, written as soon as a task ends and
//! before anything that depends on it starts.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ledger::Stats;
use crate::outdir::{self, OutDir};

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    Running,
    Completed,
    /// A limit ended the task; `output` holds what it had.
    LimitReached,
    /// The task has a `review` that could not run (the reviewer's call failed or its prompt
    /// could not fit): the output is kept, but nobody approved it, so the run does not succeed.
    Unreviewed,
    /// The task has a `review` whose rounds ran out without an approval (by the reviewer, or
    /// because the deterministic checks kept failing): the latest version is kept, not approved,
    /// so the run does not succeed.
    NotApproved,
    Failed,
    Cancelled,
    /// Never started because the run stopped first.
    Skipped,
    /// Waits for a person's answer (`approval`, or a call of a tool marked `approve`): the
    /// output so far is kept; the run pauses and goes on when the answer comes.
    AwaitingApproval,
    /// A person rejected the output (or it stopped at a rejected call): kept, not used.
    Rejected,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::LimitReached => "limit_reached",
            Self::Unreviewed => "unreviewed",
            Self::NotApproved => "not_approved",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Rejected => "rejected",
        }
    }
}

/// One review round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewRound {
    pub round: u32,
    /// The reviewing agent, or `troupe checks` when the deterministic checks failed and the
    /// reviewer was not asked.
    pub reviewer: String,
    pub approved: bool,
    pub feedback: String,
    /// The deterministic checks that failed this round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_checks: Vec<String>,
}

/// A person's answer to a task's approval request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalRound {
    pub n: u32,
    pub decision: crate::approval::Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// One delegation by the manager.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delegation {
    pub agent: String,
    pub instructions: String,
    pub accepted: Option<bool>,
    pub feedback: Option<String>,
}

/// Everything known about one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub agent: Option<String>,
    pub status: TaskStatus,
    pub output: Option<String>,
    /// The parsed output of a task with `output_schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_output: Option<Value>,
    /// Files written with the output, relative to the output directory.
    pub files: Vec<String>,
    /// Work attempts: the first, each revision, each re-assignment.
    pub attempts: u32,
    pub review: Vec<ReviewRound>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegations: Vec<Delegation>,
    /// A person's answers to the output's approval requests (`approval`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalRound>,
    /// The limit that ended the task, as its crew-file key.
    pub limit: Option<String>,
    pub error: Option<String>,
    pub started_ms: Option<u64>,
    pub wall_ms: Option<u64>,
    /// Model calls made for this task, by every agent involved (author, reviewer, manager).
    pub usage: Stats,
}

impl TaskRecord {
    /// ``task `id`: status — error``, as a run's summary lists a task that did not complete.
    pub fn status_line(&self) -> String {
        format!(
            "task `{}`: {}{}",
            self.id,
            self.status.as_str(),
            self.error
                .as_ref()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default()
        )
    }

    pub fn new(id: &str, agent: Option<&str>) -> Self {
        Self {
            id: id.into(),
            agent: agent.map(Into::into),
            status: TaskStatus::Pending,
            output: None,
            structured_output: None,
            files: Vec::new(),
            attempts: 0,
            review: Vec::new(),
            delegations: Vec::new(),
            approvals: Vec::new(),
            limit: None,
            error: None,
            started_ms: None,
            wall_ms: None,
            usage: Stats::default(),
        }
    }

    /// Whether later tasks may use this output.
    pub fn usable(&self) -> bool {
        matches!(
            self.status,
            TaskStatus::Completed
                | TaskStatus::LimitReached
                | TaskStatus::Unreviewed
                | TaskStatus::NotApproved
        ) && self.output.is_some()
    }
}

/// Where a run is, as `run.json` and the run store say: running, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Completed,
    Failed,
    Interrupted,
    TimedOut,
    BudgetExhausted,
    /// Paused: a task waits for a person's answer, and nothing else can go on until it comes.
    AwaitingApproval,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::TimedOut => "timed_out",
            Self::BudgetExhausted => "budget_exhausted",
            Self::AwaitingApproval => "awaiting_approval",
        }
    }
}

/// `run.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The run's id in the run store, when it is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub crew: String,
    pub crew_file: String,
    pub status: RunState,
    pub process: String,
    pub started_at_ms: u64,
    pub duration_ms: u64,
    pub inputs: BTreeMap<String, String>,
    pub tasks: Vec<TaskRecord>,
    pub agents: BTreeMap<String, Stats>,
    pub totals: Stats,
}

/// Writes a finished task's output to its `output_file` (every output is also in `run.json`).
/// Returns the files written, relative to `out`.
pub fn write_task_output(
    out: &OutDir,
    record: &TaskRecord,
    output_file: Option<&Path>,
) -> std::io::Result<Vec<String>> {
    let (Some(text), Some(file)) = (&record.output, output_file) else {
        return Ok(Vec::new());
    };
    let mut body = text.clone();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    out.write(file, body.as_bytes())?;
    Ok(vec![file.display().to_string()])
}

pub fn write_run_record(out: &OutDir, record: &RunRecord) -> std::io::Result<()> {
    let mut json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    json.push(b'\n');
    out.write(Path::new(outdir::RUN_FILE), &json)
}
