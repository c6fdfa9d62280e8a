//! End to end: the `troupe` binary runs real crew files against the fake OpenAI-compatible server.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use troupe_testkit::{FakeServer, Reply};

/// The research-report crew: the researcher uses a tool, the writer's first draft is sent back by
/// the reviewer, the revision is approved.
#[test]
fn sequential_crew_with_tool_use_and_a_review_that_asks_for_one_revision() {
    let server = FakeServer::start(|r| {
        if r.is("Senior research analyst") {
            if r.tool_results().is_empty() {
                Reply::tool_call("text.stats", r#"{"text": "Weights licences vary widely."}"#)
            } else {
                Reply::text("- Finding one: licences vary.\n- Finding two: terms are unclear.")
            }
        } else if r.is("Technical writer") {
            if r.last().contains("A reviewer asked for a revision") {
                Reply::text("# Report v2\n\nSummary with sources.")
            } else {
                Reply::text("# Report v1\n\nSummary.")
            }
        } else if r.is("Exacting editor") {
            if r.task().contains("Report v2") {
                Reply::text(r#"{"verdict": "approve", "feedback": "Good."}"#)
            } else {
                Reply::text(r#"{"verdict": "revise", "feedback": "Cite the research notes."}"#)
            }
        } else {
            Reply::error(400, None)
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_crew(
        &server.url,
        &repo().join("crews/research-report.json"),
        &out,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // The approved revision is the report; every task output is on disk.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.starts_with("# Report v2"), "{report}");
    let run = read_json(&out.join("run.json"));
    assert!(
        task(&run, "research")["output"]
            .as_str()
            .unwrap()
            .contains("Finding one")
    );

    assert_eq!(run["status"], "completed");
    let rep = task(&run, "report");
    assert_eq!(rep["status"], "completed");
    assert_eq!(rep["attempts"], 2);
    assert_eq!(rep["review"].as_array().unwrap().len(), 2);
    assert_eq!(rep["review"][0]["approved"], false);
    assert_eq!(rep["review"][0]["feedback"], "Cite the research notes.");
    assert_eq!(rep["review"][1]["approved"], true);
    // writer ×2 + reviewer ×2, each answer counted 100 in / 20 out by the fake server
    assert_eq!(rep["usage"]["model_calls"], 4);
    assert_eq!(rep["usage"]["input_tokens"], 400);
    let research = task(&run, "research");
    assert_eq!(research["usage"]["tool_calls"], 1);
    assert_eq!(run["agents"]["reviewer"]["model_calls"], 2);
    assert_eq!(run["totals"]["model_calls"], 6);
    assert_eq!(run["totals"]["output_tokens"], 120);
    // priced crew: 600 in × 0.15 + 120 out × 0.6 per million
    let cost = run["totals"]["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - (600.0 * 0.15 + 120.0 * 0.6) / 1e6).abs() < 1e-12,
        "{cost}"
    );

    // The writer received the research as context; the reviewer saw the criteria.
    let reqs = server.requests();
    let writer_first = reqs
        .iter()
        .find(|b| {
            b["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("Technical writer")
        })
        .unwrap();
    assert!(
        writer_first["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("Finding one")
    );
    assert!(reqs.iter().any(|b| {
        b["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("Every claim must come from the research notes")
    }));

    // events.jsonl: ordered, complete.
    let ev = events(&out);
    let seqs: Vec<u64> = ev.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=ev.len() as u64).collect::<Vec<_>>());
    assert_eq!(ev.first().unwrap()["type"], "run_started");
    assert_eq!(ev.last().unwrap()["type"], "run_finished");
    assert_eq!(of_type(&ev, "review_verdict").len(), 2);
    assert_eq!(of_type(&ev, "tool_call")[0]["tool"], "text.stats");
    assert_eq!(of_type(&ev, "tool_call")[0]["ok"], true);
    // progress on stderr
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("review round 1: reviewer asked for a revision"),
        "{err}"
    );
    assert!(err.contains("completed in"), "{err}");
}

/// The parallel example crew runs end to end and the editor gets both analyses. That the
/// analyses run at the same time is shown in-process on tokio's paused clock
/// (`troupe-runtime/tests/coordinator.rs`), not by timing replies here.
#[test]
fn parallel_crew_runs_and_the_editor_gets_both_analyses() {
    let server = FakeServer::start(|r| {
        if r.is("Market analyst") {
            Reply::text("MARKET NOTES")
        } else if r.is("Risk analyst") {
            Reply::text("RISK NOTES")
        } else {
            Reply::text(&format!("BRIEFING from: {}", r.task()))
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_crew(
        &server.url,
        &repo().join("crews/parallel-briefing.json"),
        &out,
        &["--quiet"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let briefing = std::fs::read_to_string(out.join("briefing.md")).unwrap();
    assert!(
        briefing.contains("MARKET NOTES") && briefing.contains("RISK NOTES"),
        "{briefing}"
    );
    // --quiet: no progress lines, only the summary
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("▸"), "{err}");
    assert!(err.contains("3/3 task(s) completed"), "{err}");
}

/// Hierarchical: the manager delegates, rejects one result, re-assigns, accepts.
#[test]
fn hierarchical_crew_delegates_and_reassigns() {
    let server = FakeServer::start(|r| {
        if r.is("Crew manager") {
            let t = r.task();
            if t.contains("Choose the agent") {
                if t.contains("Task `personas`") && !t.contains("already tried") {
                    Reply::text(r#"{"agent": "copywriter", "instructions": "be vivid"}"#)
                } else if t.contains("Task `personas`") {
                    Reply::text(r#"{"agent": "analyst", "instructions": "use research"}"#)
                } else {
                    Reply::text(r#"{"agent": "copywriter", "instructions": "short"}"#)
                }
            } else if t.contains("`copywriter` finished task `personas`") {
                Reply::text(r#"{"decision": "reassign", "feedback": "needs real user research"}"#)
            } else {
                Reply::text(r#"{"decision": "accept", "feedback": "fine"}"#)
            }
        } else if r.is("Product analyst") {
            Reply::text("PERSONAS by analyst")
        } else {
            Reply::text("COPY by copywriter")
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_crew(
        &server.url,
        &repo().join("crews/hierarchical-team.json"),
        &out,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    let personas = task(&run, "personas");
    assert_eq!(personas["agent"], "analyst");
    assert_eq!(personas["output"], "PERSONAS by analyst");
    let d = personas["delegations"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0]["agent"], "copywriter");
    assert_eq!(d[0]["accepted"], false);
    assert_eq!(d[0]["feedback"], "needs real user research");
    assert_eq!(d[1]["accepted"], true);
    assert_eq!(task(&run, "landing_copy")["agent"], "copywriter");
    assert_eq!(
        std::fs::read_to_string(out.join("landing.md")).unwrap(),
        "COPY by copywriter\n"
    );
    // The engineer does not take delegated work: the manager is not offered it.
    let choice = server
        .requests()
        .into_iter()
        .find(|b| {
            b["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("Choose the agent")
        })
        .unwrap();
    let allowed =
        &choice["response_format"]["json_schema"]["schema"]["properties"]["agent"]["enum"];
    assert_eq!(allowed, &json!(["analyst", "copywriter"]));
    assert_eq!(of_type(&events(&out), "task_delegated").len(), 3);
}

/// A structured output that fails its schema goes back to the model with the errors, then passes.
#[test]
fn structured_output_is_validated_and_corrected() {
    let server = FakeServer::start(|r| {
        if r.last()
            .contains("does not satisfy the required JSON Schema")
        {
            Reply::text(
                "```json\n{\"obligations\": [{\"party\": \"Licensee\", \"obligation\": \"pay EUR 12,000\", \"deadline\": \"1 March\"}]}\n```",
            )
        } else {
            Reply::text(r#"{"obligations": [{"party": "Licensee"}]}"#)
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_crew(
        &server.url,
        &repo().join("crews/structured-extraction.json"),
        &out,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = events(&out);
    let invalid = of_type(&ev, "output_invalid");
    assert_eq!(invalid.len(), 1);
    assert!(
        invalid[0]["errors"][0]
            .as_str()
            .unwrap()
            .contains("obligation"),
        "{:?}",
        invalid[0]
    );
    let v = read_json(&out.join("obligations.json"));
    assert_eq!(v["obligations"][0]["deadline"], "1 March");
    assert_eq!(
        task(&read_json(&out.join("run.json")), "obligations")["structured_output"],
        v
    );
    // the schema was sent as the response format, and the feedback named the missing key
    let reqs = server.requests();
    assert_eq!(reqs[0]["response_format"]["type"], "json_schema");
    assert!(reqs[1]["messages"].to_string().contains("obligation"));
}

/// A structured output that never fits fails the task after `max_output_retries`, and the run
/// stops (`on_failure: stop`) without starting the dependent task.
#[test]
fn structured_output_that_never_fits_fails_the_task_and_stops_the_run() {
    let server = FakeServer::start(|_| Reply::text("I cannot do JSON, sorry."));
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "never-fits",
        "llm": {"model": "m"},
        "agents": [{"id": "a", "role": "Extractor", "goal": "g"}],
        "tasks": [
            {"id": "first", "agent": "a", "description": "d", "output_schema": {"type": "object"}},
            {"id": "second", "agent": "a", "description": "d", "context": ["first"]}
        ],
        "limits": {"max_output_retries": 1}
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &path, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    assert_eq!(run["status"], "failed");
    assert_eq!(task(&run, "first")["status"], "failed");
    assert!(
        task(&run, "first")["error"]
            .as_str()
            .unwrap()
            .contains("output_schema")
    );
    assert_eq!(task(&run, "second")["status"], "skipped");
    assert_eq!(server.requests().len(), 2, "one answer + one retry");
    // An agent without tools is not told to use them (words it would pay for, to no end).
    let system = server.requests()[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(system.starts_with("You are Extractor."), "{system}");
    assert!(!system.contains("Use a tool"), "{system}");
}

/// An agent that keeps calling tools is stopped by `max_iterations`: on its last step the tools
/// are withdrawn and it is asked for its final answer, which is kept and marked.
#[test]
fn iteration_limit_withdraws_tools_and_keeps_the_final_answer() {
    let server = FakeServer::start(|r| {
        if r.tool_names().is_empty() {
            Reply::text("best effort answer")
        } else {
            Reply::tool_call("text.stats", &format!(r#"{{"text": "step {}"}}"#, r.index))
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "loopy",
        "llm": {"model": "m"},
        "agents": [
            {"id": "a", "role": "Looper", "goal": "g", "tools": ["text.stats"]},
            {"id": "b", "role": "Follower", "goal": "g"}
        ],
        "tasks": [
            {"id": "t", "agent": "a", "description": "d", "output_file": "t.md"},
            {"id": "after", "agent": "b", "description": "uses t", "context": ["t"]}
        ],
        "limits": {"max_iterations": 3}
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &path, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    let t = task(&run, "t");
    assert_eq!(t["status"], "limit_reached");
    assert_eq!(t["limit"], "limits.max_iterations");
    assert_eq!(t["output"], "best effort answer");
    assert_eq!(t["usage"]["model_calls"], 3);
    assert_eq!(t["usage"]["tool_calls"], 2);
    // on_limit defaults to continue: the dependent task ran and was told the input is partial
    assert_eq!(task(&run, "after")["status"], "completed");
    let reqs = server.requests();
    assert!(
        reqs[3]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("limit_reached")
    );
    let ev = events(&out);
    let limit = of_type(&ev, "limit_hit");
    assert_eq!(limit.len(), 1);
    assert_eq!(limit[0]["key"], "limits.max_iterations");
    assert_eq!(limit[0]["value"], "3");
    assert!(String::from_utf8_lossy(&o.stderr).contains("limit `max_iterations` = 3 reached"));
}

/// The same tool call with the same arguments, again and again, ends the task.
#[test]
fn repeated_identical_tool_calls_stop_the_task() {
    let server = FakeServer::start(|_| Reply::tool_call("text.keywords", r#"{"text": "same"}"#));
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "repeater",
        "llm": {"model": "m"},
        "agents": [{"id": "a", "role": "Repeater", "goal": "g", "tools": ["text.*"]}],
        "tasks": [{"id": "t", "agent": "a", "description": "d"}],
        "limits": {"max_repeated_tool_calls": 2, "on_limit": "stop"}
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &path, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    assert_eq!(task(&run, "t")["status"], "limit_reached");
    assert_eq!(task(&run, "t")["limit"], "limits.max_repeated_tool_calls");
    assert_eq!(
        server.requests().len(),
        3,
        "two allowed calls, the third is the repeat"
    );
    let ev = events(&out);
    let limit = of_type(&ev, "limit_hit");
    assert_eq!(limit[0]["limit"], "max_repeated_tool_calls");
}

/// With `on_repeat: warn` the model is told and may go on.
#[test]
fn repeated_tool_calls_can_warn_instead() {
    let server = FakeServer::start(|r| {
        if r.tool_results()
            .iter()
            .any(|t| t.contains("already called"))
        {
            Reply::text("ok, answering now")
        } else {
            Reply::tool_call("text.keywords", r#"{"text": "same"}"#)
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "warner",
        "llm": {"model": "m"},
        "agents": [{"id": "a", "role": "Repeater", "goal": "g", "tools": ["text.keywords"],
                    "limits": {"max_repeated_tool_calls": 1, "on_repeat": "warn"}}],
        "tasks": [{"id": "t", "agent": "a", "description": "d"}]
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &path, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    assert_eq!(task(&run, "t")["status"], "completed");
    assert_eq!(task(&run, "t")["output"], "ok, answering now");
}

/// A 429 with Retry-After is retried after the wait the server asked for; the run completes and
/// the retry is an event.
#[test]
fn rate_limited_call_is_retried_after_retry_after() {
    let server = FakeServer::start(|r| {
        if r.index == 0 {
            Reply::error(429, Some("1"))
        } else {
            Reply::text("fine")
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "retry",
        "llm": {"model": "m"},
        "agents": [{"id": "a", "role": "Solo", "goal": "g"}],
        "tasks": [{"id": "t", "agent": "a", "description": "d"}]
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &path, &out, &["--events", "jsonl"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let retries = of_type(&events(&out), "llm_retry")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0]["reason"], "429");
    assert_eq!(retries[0]["wait_ms"], 1000);
    assert_eq!(retries[0]["retry_after"], true);
    assert_eq!(retries[0]["retry_after_ms"], 1000);
    assert_eq!(retries[0]["retry_after_capped"], false);
    // --events jsonl: the same events on stdout
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.lines().count(), events(&out).len());
    assert!(stdout.contains("\"type\":\"llm_retry\""));
}

/// A model endpoint that keeps failing fails the task with the status and attempts in the error.
#[test]
fn persistent_server_errors_fail_the_task_with_a_clear_error() {
    let server = FakeServer::start(|_| Reply::error(503, Some("0")));
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "down",
        "llm": {"model": "m", "max_attempts": 2},
        "agents": [{"id": "a", "role": "Solo", "goal": "g"}],
        "tasks": [{"id": "t", "agent": "a", "description": "d"}]
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &path, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    let err = task(&run, "t")["error"].as_str().unwrap().to_string();
    assert!(err.contains("HTTP 503 after 2 attempt(s)"), "{err}");
    assert_eq!(server.requests().len(), 2);
    // The call failed, and its retry is still an event.
    let ev = events(&out);
    let retries = of_type(&ev, "llm_retry");
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(retries[0]["reason"], "503");
    assert_eq!(retries[0]["attempt"], 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("model call attempt 1 failed (503)"), "{err}");
}

/// The token budget stops the run once spent, with an event naming the key.
#[test]
fn token_budget_stops_the_run() {
    let server = FakeServer::start(|_| Reply::text("answer"));
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "budget",
        "llm": {"model": "m"},
        "agents": [{"id": "a", "role": "Solo", "goal": "g"}],
        "tasks": [
            {"id": "one", "agent": "a", "description": "d"},
            {"id": "two", "agent": "a", "description": "d"}
        ],
        "limits": {"max_tokens": 100}
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &path, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    assert_eq!(run["status"], "budget_exhausted");
    assert_eq!(task(&run, "one")["status"], "completed");
    assert_eq!(task(&run, "two")["status"], "skipped");
    assert_eq!(server.requests().len(), 1);
    // the request was capped to what was left of the budget
    assert_eq!(server.requests()[0]["max_tokens"], 100);
}

/// Ctrl-C during the second task: the first task's output is on disk, the second is cancelled,
/// run.json says the run was interrupted, the exit code is 130.
#[test]
fn interrupt_keeps_finished_outputs_and_records_the_interruption() {
    let server = FakeServer::start(|r| {
        if r.task().contains("FIRST") {
            Reply::text("first output")
        } else {
            Reply::text("too late").after(Duration::from_secs(30))
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "interrupted",
        "llm": {"model": "m"},
        "agents": [{"id": "a", "role": "Solo", "goal": "g"}],
        "tasks": [
            {"id": "first", "agent": "a", "description": "FIRST", "output_file": "first.md"},
            {"id": "second", "agent": "a", "description": "SECOND", "context": ["first"]}
        ]
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    let child = troupe(&server.url)
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the second task's model call is in flight: a bounded number of polls, not a
    // timing assertion.
    let mut polls = 0;
    while server.requests().len() < 2 {
        polls += 1;
        assert!(polls < 1000, "second task never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("first.md")).unwrap(),
        "first output\n"
    );
    let run = read_json(&out.join("run.json"));
    assert_eq!(run["status"], "interrupted");
    assert_eq!(task(&run, "first")["status"], "completed");
    assert_eq!(task(&run, "second")["status"], "cancelled");
    assert_eq!(events(&out).last().unwrap()["status"], "interrupted");
}

/// Without an endpoint or a key, the run refuses to start and says how to fix it.
#[test]
fn missing_api_key_is_a_user_error_with_a_hint() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .arg("run")
        .arg(repo().join("crews/research-report.json"))
        .arg("--out")
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`OPENAI_API_KEY` is not set"), "{err}");
    assert!(err.contains("hint: export OPENAI_API_KEY="), "{err}");
    assert!(err.contains("research-report.json:"), "{err}");
}

/// One agent owning two independent tasks in a parallel crew keeps their conversations apart
/// (CrewAI crashes on this, crewAIInc/crewAI#7332). That both run at once is shown in-process on
/// the paused clock (`troupe-runtime/tests/coordinator.rs`).
#[test]
fn one_agent_with_two_tasks_keeps_their_conversations_apart() {
    let server = FakeServer::start(|r| {
        let t = r.task();
        let which = if t.contains("ALPHA") { "alpha" } else { "beta" };
        if r.tool_results().is_empty() {
            Reply::tool_call("text.stats", &format!(r#"{{"text": "{which}"}}"#))
        } else {
            // the tool result in this conversation must be its own task's
            let own = r
                .messages()
                .iter()
                .any(|m| m["role"] == "assistant" && m["tool_calls"].to_string().contains(which));
            Reply::text(&format!("{which} done, own history: {own}"))
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "twins",
        "llm": {"model": "m"},
        "agents": [{"id": "solo", "role": "Solo", "goal": "g", "tools": ["text.stats"]}],
        "tasks": [
            {"id": "alpha", "agent": "solo", "description": "ALPHA"},
            {"id": "beta", "agent": "solo", "description": "BETA"}
        ],
        "process": "parallel"
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &path, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    assert_eq!(
        task(&run, "alpha")["output"],
        "alpha done, own history: true"
    );
    assert_eq!(task(&run, "beta")["output"], "beta done, own history: true");
}

/// An answer cut off at the token cap is not silent: an event names the key that sets the cap.
#[test]
fn an_answer_cut_at_max_tokens_is_reported() {
    let server = FakeServer::start(|_| {
        Reply::Body(json!({
            "choices": [{"message": {"role": "assistant", "content": "half an ans"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 32}
        }))
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "capped",
        "llm": {"model": "m", "max_tokens": 32},
        "agents": [{"id": "a", "role": "Solo", "goal": "g"}],
        "tasks": [{"id": "t", "agent": "a", "description": "d"}]
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &path, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = events(&out);
    let limit = of_type(&ev, "limit_hit");
    assert_eq!(limit.len(), 1, "{limit:?}");
    assert_eq!(limit[0]["key"], "llm.max_tokens");
    assert_eq!(limit[0]["value"], "32");
    assert_eq!(server.requests()[0]["max_tokens"], 32);
}

/// Against a server that takes `json_object` but not `json_schema` (llama.cpp's Python server
/// answers 500 with a validation message), the structured-output crew still completes: the
/// rejection is not retried, the run says what it fell back to, and the answer is still checked
/// against the schema.
#[test]
fn structured_output_falls_back_when_the_server_rejects_json_schema() {
    let server = FakeServer::start(|r| {
        if r.body["response_format"]["type"] == "json_schema" {
            Reply::Status {
                code: 500,
                headers: vec![],
                body: json!({"error": {"message": "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\"}]", "type": "internal_server_error"}}).to_string(),
            }
        } else {
            Reply::text(
                r#"{"obligations": [{"party": "Licensee", "obligation": "pay EUR 12,000", "deadline": "1 March"}]}"#,
            )
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_crew(
        &server.url,
        &repo().join("crews/structured-extraction.json"),
        &out,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = events(&out);
    let fallbacks = of_type(&ev, "provider_fallback");
    assert_eq!(fallbacks.len(), 1, "{fallbacks:?}");
    assert_eq!(fallbacks[0]["feature"], "structured_output");
    assert_eq!(fallbacks[0]["from"], "json_schema");
    assert_eq!(fallbacks[0]["to"], "json_object");
    assert!(of_type(&ev, "llm_retry").is_empty());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("the server rejected structured_output as json_schema"),
        "{}",
        text(&o)
    );
    let v = read_json(&out.join("obligations.json"));
    assert_eq!(v["obligations"][0]["deadline"], "1 March");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[1]["response_format"]["type"], "json_object");
    // This agent has a tool, and is told it may use it.
    let system = reqs[0]["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("Use a tool when it helps."), "{system}");
}

/// A provider's prompt cache: cached input tokens (OpenAI's `prompt_tokens_details`) are counted
/// per task, agent and run, and priced at `cached_input_cost_per_mtok`.
#[test]
fn cached_input_tokens_are_counted_and_priced_at_their_own_rate() {
    let server = FakeServer::start(|_| {
        Reply::Body(json!({
            "id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010,
                      "prompt_tokens_details": {"cached_tokens": 800}}
        }))
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "cached",
        "llm": {"model": "m", "input_cost_per_mtok": 2.0, "output_cost_per_mtok": 8.0,
                "cached_input_cost_per_mtok": 0.5},
        "agents": [{"id": "a", "role": "Analyst", "goal": "g"}],
        "tasks": [
            {"id": "first", "agent": "a", "description": "d"},
            {"id": "second", "agent": "a", "description": "d", "context": ["first"]}
        ]
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &path, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    assert_eq!(task(&run, "first")["usage"]["cached_input_tokens"], 800);
    assert_eq!(run["agents"]["a"]["cached_input_tokens"], 1600);
    assert_eq!(run["totals"]["cached_input_tokens"], 1600);
    assert_eq!(run["totals"]["input_tokens"], 2000);
    // Per call: 200 fresh × 2.0 + 800 cached × 0.5 + 10 out × 8.0, per million; two calls.
    let cost = run["totals"]["cost_usd"].as_f64().unwrap();
    let want = 2.0 * (200.0 * 2.0 + 800.0 * 0.5 + 10.0 * 8.0) / 1e6;
    assert!((cost - want).abs() < 1e-12, "{cost} != {want}");
    let ev = events(&out);
    let responses = of_type(&ev, "llm_response");
    assert!(
        responses.iter().all(|r| r["cached_input_tokens"] == 800),
        "{responses:?}"
    );
}
