//! A person in the loop, in-process: a task's output and a tool's calls wait for a person's
//! answer, given here by a scripted gate (the CLI's terminal prompt and the store are the real
//! ones; they are tested through the binary).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;
use troupe_llm::scripted::{ScriptedModel, text, tool_call};
use troupe_runtime::RunStatus;
use troupe_runtime::approval::{ApprovalGate, ApprovalKind, ApprovalRequest, Decision, Verdict};
use troupe_runtime::record::TaskStatus;

/// Answers requests in order from a list, and keeps what it was asked.
struct Script {
    answers: Mutex<VecDeque<Option<Decision>>>,
    asked: Mutex<Vec<ApprovalRequest>>,
}

impl Script {
    fn new(answers: Vec<Option<(Verdict, &str)>>) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(
                answers
                    .into_iter()
                    .map(|a| {
                        a.map(|(verdict, f)| Decision {
                            verdict,
                            feedback: Some(f.to_string()).filter(|f| !f.is_empty()),
                            by: Some("tester".into()),
                        })
                    })
                    .collect(),
            ),
            asked: Mutex::new(Vec::new()),
        })
    }
    fn asked(&self) -> Vec<ApprovalRequest> {
        self.asked.lock().unwrap().clone()
    }
}

impl ApprovalGate for Script {
    fn ask<'a>(&'a self, r: &'a ApprovalRequest) -> troupe_llm::BoxFuture<'a, Option<Decision>> {
        self.asked.lock().unwrap().push(r.clone());
        let next = self.answers.lock().unwrap().pop_front().flatten();
        Box::pin(async move { next })
    }
}

fn memo_crew() -> serde_json::Value {
    json!({
        "name": "memo",
        "llm": {"model": "m"},
        "agents": [
            {"id": "writer", "role": "Writer", "goal": "g"},
            {"id": "editor", "role": "Editor", "goal": "g"}
        ],
        "tasks": [
            {"id": "memo", "agent": "writer", "description": "Write the memo.",
             "approval": {"message": "Send this memo to the board?"}},
            {"id": "cover", "agent": "editor", "context": ["memo"], "description": "Cover note."}
        ]
    })
}

/// Each answer the writer gives is numbered, so the test knows which version stood.
fn writer() -> Arc<ScriptedModel> {
    let n = Arc::new(Mutex::new(0));
    Arc::new(ScriptedModel::new(move |r| {
        Ok(if is(r, "Writer") {
            let mut n = n.lock().unwrap();
            *n += 1;
            text(format!("MEMO v{n}"))
        } else {
            text(format!("COVER for: {}", task_prompt(r).contains("MEMO")))
        })
    }))
}

/// A revision goes back to the author with the person's words, the new version is asked about
/// again (request 2), and only the approved version reaches the next task.
#[tokio::test]
async fn a_person_asks_for_a_revision_then_approves() {
    let gate = Script::new(vec![
        Some((Verdict::Revise, "Shorter, and name the budget.")),
        Some((Verdict::Approve, "")),
    ]);
    let model = writer();
    let ran = run_gated(
        crew(&memo_crew()),
        &model,
        None,
        Some(gate.clone()),
        std::future::pending(),
    )
    .await;
    assert_eq!(ran.report.status, RunStatus::Completed);
    let asked = gate.asked();
    assert_eq!(asked.len(), 2);
    assert_eq!((asked[0].n, asked[1].n), (1, 2));
    assert_eq!(asked[0].kind, ApprovalKind::Task);
    assert_eq!(asked[0].output.as_deref(), Some("MEMO v1"));
    assert_eq!(asked[1].output.as_deref(), Some("MEMO v2"));
    assert_eq!(
        asked[0].message.as_deref(),
        Some("Send this memo to the board?")
    );
    // The revision request carried the person's feedback, fenced as data.
    let revision = model
        .requests()
        .into_iter()
        .find(|r| is(r, "Writer") && last(r).contains("Shorter, and name the budget."))
        .expect("the writer was asked to revise with the feedback");
    assert!(last(&revision).contains("<<<DATA"), "{}", last(&revision));
    let memo = ran.task("memo");
    assert_eq!(memo.status, TaskStatus::Completed);
    assert_eq!(memo.output.as_deref(), Some("MEMO v2"));
    assert_eq!(memo.approvals.len(), 2);
    assert_eq!(memo.approvals[0].decision, Verdict::Revise);
    assert_eq!(ran.of_type("approval_requested").len(), 2);
    assert_eq!(ran.of_type("approval_decided").len(), 2);
    assert_eq!(ran.task("cover").output.as_deref(), Some("COVER for: true"));
}

/// A rejection ends the task `rejected`; what depends on it does not run.
#[tokio::test]
async fn a_rejected_output_ends_the_task_and_the_run_fails() {
    let gate = Script::new(vec![Some((Verdict::Reject, "Wrong audience."))]);
    let ran = run_gated(
        crew(&memo_crew()),
        &writer(),
        None,
        Some(gate),
        std::future::pending(),
    )
    .await;
    assert_eq!(ran.report.status, RunStatus::Failed);
    let memo = ran.task("memo");
    assert_eq!(memo.status, TaskStatus::Rejected);
    assert_eq!(memo.output.as_deref(), Some("MEMO v1"));
    assert!(
        memo.error.as_deref().unwrap().contains("Wrong audience."),
        "{:?}",
        memo.error
    );
    assert_eq!(ran.task("cover").status, TaskStatus::Skipped);
}

/// With nobody to ask, the task pauses with its output kept, its dependants wait (pending, not
/// skipped), and the run ends `awaiting_approval`.
#[tokio::test]
async fn without_anyone_to_ask_the_run_pauses() {
    let model = writer();
    let ran = run_gated(
        crew(&memo_crew()),
        &model,
        None,
        None,
        std::future::pending(),
    )
    .await;
    assert_eq!(ran.report.status, RunStatus::AwaitingApproval);
    let memo = ran.task("memo");
    assert_eq!(memo.status, TaskStatus::AwaitingApproval);
    assert_eq!(memo.output.as_deref(), Some("MEMO v1"));
    assert_eq!(ran.task("cover").status, TaskStatus::Pending);
    assert_eq!(model.requests().len(), 1, "nothing ran after the pause");
    let asked = ran.of_type("approval_requested");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["answered"], false);
    assert!(ran.of_type("approval_decided").is_empty());
}

fn tool_crew() -> serde_json::Value {
    json!({
        "name": "tools",
        "llm": {"model": "m"},
        "agents": [{"id": "analyst", "role": "Analyst", "goal": "g", "tools": ["text.*"]}],
        "tasks": [{"id": "t", "agent": "analyst", "description": "Measure it."}],
        "tools": {"text.stats": {"approve": true}}
    })
}

/// The model calls `text.stats` once, then answers with the tool results it saw.
fn analyst() -> Arc<ScriptedModel> {
    Arc::new(ScriptedModel::new(|r| {
        Ok(if tool_results(r).is_empty() {
            tool_call("text.stats", &json!({"text": "One two three."}).to_string())
        } else {
            text(format!("SAW: {}", tool_results(r).join(" | ")))
        })
    }))
}

/// A declined call never runs; the model reads the refusal and the person's note.
#[tokio::test]
async fn a_declined_tool_call_does_not_run_and_the_model_is_told() {
    let gate = Script::new(vec![Some((Verdict::Reject, "not on this text"))]);
    let ran = run_gated(
        crew(&tool_crew()),
        &analyst(),
        None,
        Some(gate.clone()),
        std::future::pending(),
    )
    .await;
    assert_eq!(ran.report.status, RunStatus::Completed);
    let asked = gate.asked();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].kind, ApprovalKind::Tool);
    assert_eq!(asked[0].tool.as_deref(), Some("text.stats"));
    let out = ran.task("t").output.clone().unwrap();
    assert!(
        out.contains("a person declined this call of `text.stats`"),
        "{out}"
    );
    assert!(out.contains("not on this text"), "{out}");
    let calls = ran.of_type("tool_call");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["ok"], false);
    assert_eq!(ran.report.record.totals.tool_calls, 0, "the tool never ran");
}

/// An approved call runs as usual; a tool not marked `approve` is never asked about.
#[tokio::test]
async fn an_approved_tool_call_runs() {
    let gate = Script::new(vec![Some((Verdict::Approve, ""))]);
    let ran = run_gated(
        crew(&tool_crew()),
        &analyst(),
        None,
        Some(gate.clone()),
        std::future::pending(),
    )
    .await;
    assert_eq!(ran.report.status, RunStatus::Completed);
    assert_eq!(gate.asked().len(), 1);
    let out = ran.task("t").output.clone().unwrap();
    assert!(
        out.contains("words"),
        "the tool's result reached the model: {out}"
    );
    assert_eq!(ran.of_type("tool_call")[0]["ok"], true);
}
