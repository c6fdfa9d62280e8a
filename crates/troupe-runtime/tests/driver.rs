//! One task from start to end through `troupe_runtime::run`, with a scripted model: review
//! rounds, and a review that cannot run.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use troupe_llm::LlmError;
use troupe_llm::scripted::{ScriptedModel, text};
use troupe_runtime::RunStatus;
use troupe_runtime::record::TaskStatus;

fn reviewed(max_rounds: u32) -> serde_json::Value {
    json!({
        "name": "reviewed",
        "llm": {"model": "m"},
        "agents": [
            {"id": "w", "role": "Technical writer", "goal": "g"},
            {"id": "r", "role": "Exacting editor", "goal": "g"}
        ],
        "tasks": [{"id": "report", "agent": "w", "description": "Write the report.",
                   "review": {"by": "r", "max_rounds": max_rounds}, "output_file": "report.md"}]
    })
}

/// The reviewer sends the first draft back with feedback; the writer gets the feedback in the
/// same conversation and revises; the revision is approved and is the output.
#[tokio::test]
async fn a_review_that_asks_for_one_revision_then_approves() {
    let model = Arc::new(ScriptedModel::new(|r| {
        Ok(if is(r, "Technical writer") {
            if last(r).contains("Cite the research notes") {
                text("# Report v2")
            } else {
                text("# Report v1")
            }
        } else if task_prompt(r).contains("Report v2") {
            text(r#"{"verdict": "approve", "feedback": "Good."}"#)
        } else {
            text(r#"{"verdict": "revise", "feedback": "Cite the research notes."}"#)
        })
    }));
    let ran = run(crew(&reviewed(3)), &model).await;
    assert_eq!(ran.report.status, RunStatus::Completed);
    let t = ran.task("report");
    assert_eq!(t.status, TaskStatus::Completed);
    assert_eq!(t.output.as_deref(), Some("# Report v2"));
    assert_eq!(t.attempts, 2);
    let rounds: Vec<(u32, bool, &str)> = t
        .review
        .iter()
        .map(|r| (r.round, r.approved, r.feedback.as_str()))
        .collect();
    assert_eq!(
        rounds,
        vec![(1, false, "Cite the research notes."), (2, true, "Good.")]
    );
    // The revision continued the writer's conversation: its first draft is in it.
    let revision = model
        .requests()
        .into_iter()
        .filter(|r| is(r, "Technical writer"))
        .nth(1)
        .unwrap();
    assert!(revision.messages.iter().any(|m| matches!(
        m,
        troupe_llm::Message::Assistant { content: Some(c), .. } if c == "# Report v1"
    )));
    assert_eq!(ran.of_type("review_verdict").len(), 2);
    let file = std::fs::read_to_string(ran.dir.path().join("out/report.md")).unwrap();
    assert_eq!(file, "# Report v2\n");
}

/// The reviewer's model call fails: the task is `unreviewed` (its output kept, not approved),
/// a warning says why, and the run does not report success.
#[tokio::test]
async fn a_review_that_cannot_run_leaves_the_task_unreviewed() {
    let model = Arc::new(ScriptedModel::new(|r| {
        if is(r, "Technical writer") {
            Ok(text("# Draft"))
        } else {
            Err(LlmError::Api {
                status: 503,
                message: "overloaded".into(),
                attempts: 4,
                hint: None,
            })
        }
    }));
    let ran = run(crew(&reviewed(2)), &model).await;
    let t = ran.task("report");
    assert_eq!(t.status, TaskStatus::Unreviewed);
    assert_eq!(t.output.as_deref(), Some("# Draft"));
    assert!(t.review.is_empty(), "no verdict was recorded");
    let why = t.error.as_deref().unwrap();
    assert!(
        why.contains("could not run") && why.contains("503"),
        "{why}"
    );
    assert_ne!(ran.report.status, RunStatus::Completed);
    assert!(
        ran.of_type("warning")
            .iter()
            .any(|w| w["message"].as_str().unwrap().contains("unreviewed")),
        "{:#?}",
        ran.of_type("warning")
    );
}
