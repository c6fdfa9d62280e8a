//! The coordinator through `troupe_runtime::run`, with a scripted model on tokio's paused clock:
//! what runs at once is the scripted model's count of calls in flight, and how long a run takes
//! is the paused clock's reading — both exact, neither a wall-clock measurement.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::time::Instant;
use troupe_docs::{ChunkOptions, Corpus, Format};
use troupe_llm::scripted::{ScriptedModel, text, tool_call};
use troupe_runtime::RunStatus;
use troupe_runtime::record::TaskStatus;

const TURN: Duration = Duration::from_secs(10);

fn analysts(process: &str) -> serde_json::Value {
    json!({
        "name": "briefing",
        "llm": {"model": "m"},
        "agents": [
            {"id": "market", "role": "Market analyst", "goal": "g"},
            {"id": "risk", "role": "Risk analyst", "goal": "g"},
            {"id": "editor", "role": "Editor", "goal": "g"}
        ],
        "tasks": [
            {"id": "m", "agent": "market", "description": "Market."},
            {"id": "r", "agent": "risk", "description": "Risks."},
            {"id": "brief", "agent": "editor", "context": ["m", "r"], "description": "Brief."}
        ],
        "process": process
    })
}

fn analyst_model() -> Arc<ScriptedModel> {
    Arc::new(
        ScriptedModel::new(|r| {
            Ok(if is(r, "Market analyst") {
                text("MARKET NOTES")
            } else if is(r, "Risk analyst") {
                text("RISK NOTES")
            } else {
                text(format!("BRIEFING from: {}", task_prompt(r)))
            })
        })
        .with_latency(|_| TURN),
    )
}

/// Parallel: the two analyses are in flight together, the brief starts once both are done and
/// gets both: two turns of the clock, not three.
#[tokio::test(start_paused = true)]
async fn a_parallel_crew_runs_independent_tasks_at_once() {
    let model = analyst_model();
    let start = Instant::now();
    let ran = run(crew(&analysts("parallel")), &model).await;
    assert_eq!(ran.report.status, RunStatus::Completed);
    assert_eq!(model.max_in_flight(), 2);
    assert_eq!(start.elapsed(), 2 * TURN);
    let reqs = model.requests();
    assert!(is(&reqs[2], "Editor"));
    let brief = ran.task("brief").output.as_deref().unwrap();
    assert!(
        brief.contains("MARKET NOTES") && brief.contains("RISK NOTES"),
        "{brief}"
    );
}

/// Sequential: one task at a time in file order, even independent ones.
#[tokio::test(start_paused = true)]
async fn a_sequential_crew_runs_one_task_at_a_time_in_file_order() {
    let model = analyst_model();
    let start = Instant::now();
    let ran = run(crew(&analysts("sequential")), &model).await;
    assert_eq!(ran.report.status, RunStatus::Completed);
    assert_eq!(model.max_in_flight(), 1);
    assert_eq!(start.elapsed(), 3 * TURN);
    let order: Vec<bool> = model
        .requests()
        .iter()
        .map(|r| is(r, "Market analyst"))
        .collect();
    assert_eq!(order, vec![true, false, false]);
    assert!(is(&model.requests()[1], "Risk analyst"));
}

/// `limits.max_parallel` holds a ready task back until a slot is free, and says so once.
#[tokio::test(start_paused = true)]
async fn max_parallel_caps_the_tasks_in_flight() {
    let model = Arc::new(ScriptedModel::new(|_| Ok(text("done"))).with_latency(|_| TURN));
    let mut c = analysts("parallel");
    c["tasks"][2]["context"] = json!([]);
    c["limits"] = json!({"max_parallel": 2});
    let start = Instant::now();
    let ran = run(crew(&c), &model).await;
    assert_eq!(ran.report.status, RunStatus::Completed);
    assert_eq!(model.max_in_flight(), 2);
    assert_eq!(start.elapsed(), 2 * TURN);
    let hits: Vec<_> = ran
        .of_type("limit_hit")
        .into_iter()
        .filter(|e| e["key"] == "limits.max_parallel")
        .collect();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0]["task"], "brief");
}

/// Hierarchical: the manager assigns each task; independent tasks run at once, the dependent
/// one after them.
#[tokio::test(start_paused = true)]
async fn a_hierarchical_crew_assigns_every_task_and_runs_independent_ones_at_once() {
    let model = Arc::new(
        ScriptedModel::new(|r| {
            let t = task_prompt(r);
            Ok(if is(r, "Crew manager") {
                if t.contains("Choose the agent") {
                    text(r#"{"agent": "writer", "instructions": "be brief"}"#)
                } else {
                    text(r#"{"decision": "accept", "feedback": "fine"}"#)
                }
            } else {
                text(format!("DONE: {}", t.lines().next().unwrap_or_default()))
            })
        })
        // Only the work takes time: the manager's calls are instant.
        .with_latency(|r| {
            if is(r, "Crew manager") {
                Duration::ZERO
            } else {
                TURN
            }
        }),
    );
    let c = json!({
        "name": "h",
        "llm": {"model": "m"},
        "agents": [{"id": "writer", "role": "Writer", "goal": "g"}],
        "tasks": [
            {"id": "a", "description": "A."},
            {"id": "b", "description": "B."},
            {"id": "c", "context": ["a", "b"], "description": "C."}
        ],
        "process": "hierarchical"
    });
    let start = Instant::now();
    let ran = run(crew(&c), &model).await;
    assert_eq!(ran.report.status, RunStatus::Completed);
    assert_eq!(start.elapsed(), 2 * TURN);
    for id in ["a", "b", "c"] {
        let t = ran.task(id);
        assert_eq!(t.agent.as_deref(), Some("writer"), "{id}");
        assert_eq!(t.delegations.len(), 1, "{id}");
        assert_eq!(t.delegations[0].accepted, Some(true), "{id}");
    }
    assert_eq!(ran.of_type("task_delegated").len(), 3);
}

/// The run deadline stops a run whose model never answers: at exactly `run_timeout_s` on the
/// clock, the running task is cancelled and the model call dropped.
#[tokio::test(start_paused = true)]
async fn the_run_timeout_stops_the_run_and_cancels_what_runs() {
    let model = Arc::new(
        ScriptedModel::new(|_| Ok(text("late"))).with_latency(|_| Duration::from_secs(3600)),
    );
    let c = json!({
        "name": "slow",
        "llm": {"model": "m"},
        "agents": [{"id": "a", "role": "Solo", "goal": "g"}],
        "tasks": [{"id": "t", "agent": "a", "description": "d"}],
        "limits": {"run_timeout_s": 30}
    });
    let start = Instant::now();
    let ran = run(crew(&c), &model).await;
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(ran.report.status, RunStatus::TimedOut);
    assert_eq!(ran.task("t").status, TaskStatus::Cancelled);
    assert_eq!(model.in_flight(), 0, "the model call was dropped");
    let hits = ran.of_type("limit_hit");
    assert!(
        hits.iter().any(|e| e["key"] == "limits.run_timeout_s"),
        "{hits:#?}"
    );
}

/// A task past `task_timeout_s` ends there; with no output yet it fails, naming the limit.
#[tokio::test(start_paused = true)]
async fn a_task_timeout_without_output_fails_the_task() {
    let model = Arc::new(
        ScriptedModel::new(|_| Ok(text("slow"))).with_latency(|_| Duration::from_secs(20)),
    );
    let c = json!({
        "name": "slow",
        "llm": {"model": "m"},
        "agents": [{"id": "a", "role": "Solo", "goal": "g"}],
        "tasks": [{"id": "t", "agent": "a", "description": "d", "limits": {"task_timeout_s": 0.5}}]
    });
    let start = Instant::now();
    let ran = run(crew(&c), &model).await;
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    assert_eq!(ran.report.status, RunStatus::Failed);
    let t = ran.task("t");
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.limit.as_deref(), Some("limits.task_timeout_s"));
    assert_eq!(t.output, None);
    let hits = ran.of_type("limit_hit");
    assert_eq!(hits[0]["key"], "limits.task_timeout_s");
}

/// A task that times out during its review keeps the version it had: `limit_reached`, with
/// the draft as output.
#[tokio::test(start_paused = true)]
async fn a_task_timeout_during_review_keeps_the_latest_version() {
    let model = Arc::new(
        ScriptedModel::new(|r| {
            Ok(if is(r, "Writer") {
                text("DRAFT")
            } else {
                text(r#"{"verdict": "approve", "feedback": "ok"}"#)
            })
        })
        .with_latency(|r| {
            if is(r, "Writer") {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(3600)
            }
        }),
    );
    let c = json!({
        "name": "review-slow",
        "llm": {"model": "m"},
        "agents": [
            {"id": "w", "role": "Writer", "goal": "g"},
            {"id": "r", "role": "Reviewer", "goal": "g"}
        ],
        "tasks": [{"id": "t", "agent": "w", "description": "d",
                   "review": {"by": "r"}, "limits": {"task_timeout_s": 5}}]
    });
    let start = Instant::now();
    let ran = run(crew(&c), &model).await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    let t = ran.task("t");
    assert_eq!(t.status, TaskStatus::LimitReached);
    assert_eq!(t.output.as_deref(), Some("DRAFT"));
    assert_eq!(t.limit.as_deref(), Some("limits.task_timeout_s"));
    assert_eq!(model.in_flight(), 0);
}

/// The shutdown signal during the second task: the first task's output is on disk, the second
/// is cancelled with its model call dropped, and the run is `interrupted`.
#[tokio::test(start_paused = true)]
async fn shutdown_cancels_running_work_and_keeps_finished_outputs() {
    let model = Arc::new(
        ScriptedModel::new(|r| {
            Ok(if task_prompt(r).contains("FIRST") {
                text("first output")
            } else {
                text("too late")
            })
        })
        .with_latency(|r| {
            if task_prompt(r).contains("FIRST") {
                Duration::ZERO
            } else {
                Duration::from_secs(3600)
            }
        }),
    );
    let c = json!({
        "name": "interrupted",
        "llm": {"model": "m"},
        "agents": [{"id": "a", "role": "Solo", "goal": "g"}],
        "tasks": [
            {"id": "first", "agent": "a", "description": "FIRST", "output_file": "first.md"},
            {"id": "second", "agent": "a", "description": "SECOND", "context": ["first"]}
        ]
    });
    let start = Instant::now();
    let ran = run_with(
        crew(&c),
        &model,
        None,
        tokio::time::sleep(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(ran.report.status, RunStatus::Interrupted);
    assert_eq!(ran.task("first").status, TaskStatus::Completed);
    assert_eq!(ran.task("second").status, TaskStatus::Cancelled);
    assert_eq!(model.requests().len(), 2, "the second task had started");
    assert_eq!(model.in_flight(), 0, "its model call was dropped");
    let first = std::fs::read_to_string(ran.dir.path().join("out/first.md")).unwrap();
    assert_eq!(first, "first output\n");
}

/// One agent owning two tasks of a parallel crew works both at once, each with its own
/// conversation (CrewAI crashes on this, crewAIInc/crewAI#7332).
#[tokio::test(start_paused = true)]
async fn one_agent_holds_two_tasks_at_once_without_mixing_them() {
    let model = Arc::new(
        ScriptedModel::new(|r| {
            let which = if task_prompt(r).contains("ALPHA") {
                "alpha"
            } else {
                "beta"
            };
            if tool_results(r).is_empty() {
                return Ok(tool_call("text.stats", &json!({"text": which}).to_string()));
            }
            // The tool call in this conversation must be its own task's.
            let own = r.messages.iter().any(|m| match m {
                troupe_llm::Message::Assistant { tool_calls, .. } => {
                    tool_calls.iter().any(|c| c.arguments.contains(which))
                }
                _ => false,
            });
            Ok(text(format!("{which} done, own history: {own}")))
        })
        .with_latency(|_| TURN),
    );
    let c = json!({
        "name": "twins",
        "llm": {"model": "m"},
        "agents": [{"id": "solo", "role": "Solo", "goal": "g", "tools": ["text.stats"]}],
        "tasks": [
            {"id": "alpha", "agent": "solo", "description": "ALPHA"},
            {"id": "beta", "agent": "solo", "description": "BETA"}
        ],
        "process": "parallel"
    });
    let start = Instant::now();
    let ran = run(crew(&c), &model).await;
    assert_eq!(ran.report.status, RunStatus::Completed);
    assert_eq!(model.max_in_flight(), 2);
    assert_eq!(
        start.elapsed(),
        2 * TURN,
        "tool turn and answer turn, both tasks together"
    );
    assert_eq!(
        ran.task("alpha").output.as_deref(),
        Some("alpha done, own history: true")
    );
    assert_eq!(
        ran.task("beta").output.as_deref(),
        Some("beta done, own history: true")
    );
}

fn three_documents() -> Corpus {
    let texts = [
        "Alpha licence text.",
        "Beta licence text.",
        "Gamma licence text.",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| (format!("doc{i}.txt"), Format::Text, (*t).to_string()))
    .collect();
    Corpus::from_texts(texts, ChunkOptions::default()).unwrap()
}

fn fan_out_crew(max_parallel: Option<u32>) -> serde_json::Value {
    let mut c = json!({
        "name": "fan",
        "llm": {"model": "m"},
        "agents": [
            {"id": "a", "role": "Analyst", "goal": "g"},
            {"id": "m", "role": "Manager", "goal": "g"}
        ],
        "tasks": [
            {"id": "per", "agent": "a", "for_each": "document",
             "description": "Read {document}:\n{document_text}"},
            {"id": "all", "agent": "m", "context": ["per"], "description": "Sum up."}
        ],
        // The summary is the report's body and cites nothing: its statement check fails once
        // and is accepted as it is (no re-ask), so the timing shows scheduling only.
        "limits": {"max_output_retries": 0}
    });
    if let Some(n) = max_parallel {
        c["limits"]["max_parallel"] = json!(n);
    }
    c
}

fn fan_out_model() -> Arc<ScriptedModel> {
    Arc::new(
        ScriptedModel::new(|r| {
            Ok(if is(r, "Analyst") {
                let doc = ["doc0", "doc1", "doc2"]
                    .into_iter()
                    .find(|d| task_prompt(r).contains(&format!("{d}.txt")))
                    .unwrap_or("?");
                text(format!("NOTES on {doc}"))
            } else {
                text(format!(
                    "SUMMARY of {}",
                    task_prompt(r).matches("NOTES on").count()
                ))
            })
        })
        .with_latency(|_| TURN),
    )
}

/// A `for_each` task's instances are independent: they run together even in a sequential
/// crew, and the task that depends on them gets every output.
#[tokio::test(start_paused = true)]
async fn fan_out_instances_run_at_once_and_the_reduce_gets_them_all() {
    let model = fan_out_model();
    let start = Instant::now();
    let ran = run_with(
        crew(&fan_out_crew(None)),
        &model,
        Some(three_documents()),
        std::future::pending(),
    )
    .await;
    assert_eq!(ran.report.status, RunStatus::Completed);
    assert_eq!(model.max_in_flight(), 3);
    assert_eq!(start.elapsed(), 2 * TURN);
    assert_eq!(ran.task("all").output.as_deref(), Some("SUMMARY of 3"));
}

/// `limits.max_parallel` caps the fan-out: two instances at a time, the third after them.
#[tokio::test(start_paused = true)]
async fn max_parallel_caps_the_fan_out() {
    let model = fan_out_model();
    let start = Instant::now();
    let ran = run_with(
        crew(&fan_out_crew(Some(2))),
        &model,
        Some(three_documents()),
        std::future::pending(),
    )
    .await;
    assert_eq!(ran.report.status, RunStatus::Completed);
    assert_eq!(model.max_in_flight(), 2);
    assert_eq!(start.elapsed(), 3 * TURN);
    let hits: Vec<_> = ran
        .of_type("limit_hit")
        .into_iter()
        .filter(|e| e["key"] == "limits.max_parallel")
        .collect();
    assert_eq!(hits.len(), 1, "{hits:#?}");
}
