//! A person in the loop: a task whose output needs approval (`approval`), and a tool whose every
//! call does (`tools.<name>.approve`), wait here for a person's answer — approve, revise with
//! feedback, or reject.
//!
//! The answer comes from one of two places, in this order:
//! 1. the run store, when a person already answered this request (`troupe approve`, the server's
//!    endpoint). Requests are numbered per task, and a resumed run makes the same requests in the
//!    same order (its recorded calls answer it), so a resume finds each answer where it asked;
//! 2. the front end's [`ApprovalGate`], when it has one that can ask now (a terminal).
//!
//! Otherwise the request is *pending*: the task ends `awaiting_approval`, its output kept, and
//! the run ends `awaiting_approval` once nothing else can go on. A paused run holds no process,
//! no model and no call: it is a row in the store, and answering it resumes it. That one path
//! serves the CLI without a terminal, the server, and a server restart alike.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use troupe_llm::BoxFuture;

use crate::events::{EventKind, Events, preview};
use crate::recorded::{Recorder, request_hash};

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// A task's output, after its checks and review.
    Task,
    /// One call of a tool marked `approve`.
    Tool,
}

impl ApprovalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Tool => "tool",
        }
    }
}

/// One question to a person.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRequest {
    pub task: String,
    pub kind: ApprovalKind,
    /// The request's number among this task's requests, from 1.
    pub n: u32,
    /// The crew's `approval.message`, when it has one.
    pub message: Option<String>,
    /// The agent whose work (or call) it is.
    pub agent: String,
    /// The output to approve (kind `task`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The tool and its arguments (kind `tool`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// A person's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The output stands (the call runs).
    Approve,
    /// The author revises with the feedback (the call is declined, and the feedback reaches
    /// the model with the refusal).
    Revise,
    /// The task ends `rejected` (the call is declined).
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Revise => "revise",
            Self::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approve" => Some(Self::Approve),
            "revise" => Some(Self::Revise),
            "reject" => Some(Self::Reject),
            _ => None,
        }
    }
}

/// A decided request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub feedback: Option<String>,
    /// Who answered (`terminal`, a server user, `troupe approve`), when known.
    pub by: Option<String>,
}

/// How a front end answers requests while a run runs.
pub trait ApprovalGate: Send + Sync {
    /// Asks a person now; `None` when nobody can answer now (the request stays pending and
    /// the task waits, paused, for an answer through the store).
    fn ask<'a>(&'a self, request: &'a ApprovalRequest) -> BoxFuture<'a, Option<Decision>>;
}

/// Where a run's approvals are decided: the store's recorded answers, then the front end's
/// gate. Cheap to clone.
#[derive(Clone, Default)]
pub struct Approvals {
    pub(crate) store: Option<Recorder>,
    pub(crate) gate: Option<Arc<dyn ApprovalGate>>,
}

impl Approvals {
    pub(crate) fn new(store: Option<Recorder>, gate: Option<Arc<dyn ApprovalGate>>) -> Self {
        Self { store, gate }
    }

    /// The answer to `request`, or `None` when it stays pending. Every request is an
    /// `approval_requested` event; every answer an `approval_decided` event.
    pub(crate) async fn decide(
        &self,
        events: &Events,
        request: &ApprovalRequest,
    ) -> Option<Decision> {
        let body = serde_json::to_value(request).unwrap_or(Value::Null);
        let sha = request_hash(&body.to_string());
        let recorded = match &self.store {
            Some(r) => {
                let row = troupe_store::ApprovalRow {
                    task: request.task.clone(),
                    n: request.n,
                    kind: request.kind.as_str().into(),
                    request: body.clone(),
                    request_sha256: sha,
                    requested_ms: now_ms(),
                    decision: None,
                };
                let store = r.store.clone();
                let run = r.run.clone();
                let asked = tokio::task::spawn_blocking(move || store.request_approval(&run, &row))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                match asked {
                    Ok(found) => found,
                    Err(e) => {
                        r.failed("an approval request", &e);
                        None
                    }
                }
            }
            None => None,
        };
        let recorded = recorded.and_then(|d| {
            Verdict::parse(&d.decision).map(|verdict| Decision {
                verdict,
                feedback: d.feedback,
                by: d.by,
            })
        });
        events.emit(EventKind::ApprovalRequested {
            task: request.task.clone(),
            kind: request.kind,
            n: request.n,
            message: request.message.clone(),
            agent: request.agent.clone(),
            subject: match request.kind {
                ApprovalKind::Task => preview(request.output.as_deref().unwrap_or_default(), 300),
                ApprovalKind::Tool => format!(
                    "{}({})",
                    request.tool.as_deref().unwrap_or_default(),
                    preview(request.arguments.as_deref().unwrap_or_default(), 300)
                ),
            },
            answered: recorded.is_some(),
        });
        let (decision, recorded_before) = match recorded {
            Some(d) => (Some(d), true),
            None => match &self.gate {
                Some(g) => (g.ask(request).await, false),
                None => (None, false),
            },
        };
        let decision = decision?;
        if !recorded_before && let Some(r) = &self.store {
            let decided = troupe_store::Decided {
                decision: decision.verdict.as_str().into(),
                feedback: decision.feedback.clone(),
                by: decision.by.clone(),
                at_ms: now_ms(),
            };
            let (store, run, task) = (r.store.clone(), r.run.clone(), request.task.clone());
            let written =
                tokio::task::spawn_blocking(move || store.decide_approval(&run, &task, &decided))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()));
            if let Err(e) = written {
                r.failed("an approval", &e);
            }
        }
        events.emit(EventKind::ApprovalDecided {
            task: request.task.clone(),
            kind: request.kind,
            n: request.n,
            decision: decision.verdict,
            feedback: decision.feedback.clone(),
            by: decision.by.clone(),
            recorded: recorded_before,
        });
        Some(decision)
    }
}

/// The request body a tool call is asked with, as the store and the API show it.
pub fn tool_request(
    task: &str,
    agent: &str,
    n: u32,
    tool: &str,
    arguments: &str,
) -> ApprovalRequest {
    ApprovalRequest {
        task: task.into(),
        kind: ApprovalKind::Tool,
        n,
        message: None,
        agent: agent.into(),
        output: None,
        tool: Some(tool.into()),
        arguments: Some(arguments.into()),
    }
}

/// What a declined tool call returns to the model.
pub fn declined(tool: &str, decision: &Decision) -> String {
    let mut s = format!("a person declined this call of `{tool}`");
    if let Some(f) = decision
        .feedback
        .as_deref()
        .filter(|f| !f.trim().is_empty())
    {
        s.push_str(&format!("; their note: {}", json!(f)));
    }
    s
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
