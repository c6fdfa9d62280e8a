//! Event sequences written out by hand, in the order the runtime emits them, sent through a
//! real OTLP/HTTP export to a receiver in the test: the span tree, the attributes, the
//! timestamps, what happens to spans whose closing event never comes, and two runs at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use troupe_otel::Tracing;
use troupe_runtime::record::TaskStatus;
use troupe_runtime::{Event, EventKind};

const T0: u64 = 1_700_000_000_000;

/// Events at `T0 + offset` milliseconds, numbered in order.
fn events(list: Vec<(u64, EventKind)>) -> Vec<Event> {
    list.into_iter()
        .enumerate()
        .map(|(i, (offset, kind))| Event {
            seq: i as u64 + 1,
            ts_ms: T0 + offset,
            elapsed_ms: offset,
            kind,
        })
        .collect()
}

fn run_started(crew: &str) -> EventKind {
    EventKind::RunStarted {
        crew: crew.into(),
        process: "sequential".into(),
        tasks: 2,
        agents: 2,
        out_dir: "out".into(),
    }
}

fn task_started(task: &str, agent: &str) -> EventKind {
    EventKind::TaskStarted {
        task: task.into(),
        agent: agent.into(),
    }
}

fn request(task: &str, agent: &str, iteration: u32) -> EventKind {
    EventKind::LlmRequest {
        task: task.into(),
        agent: agent.into(),
        model: "gpt-test".into(),
        iteration,
        messages: 2,
        tools: 1,
    }
}

fn response(
    task: &str,
    agent: &str,
    iteration: u32,
    tokens: (u64, u64),
    finish: &str,
) -> EventKind {
    EventKind::LlmResponse {
        task: task.into(),
        agent: agent.into(),
        iteration,
        input_tokens: tokens.0,
        output_tokens: tokens.1,
        cached_input_tokens: 0,
        latency_ms: 5,
        tool_calls: usize::from(finish == "tool_calls"),
        finish_reason: Some(finish.into()),
    }
}

fn tool(task: &str, ok: bool, duration_ms: u64, result: &str) -> EventKind {
    EventKind::ToolCall {
        task: task.into(),
        agent: "writer".into(),
        tool: "text.stats".into(),
        arguments: r#"{"text": "one two"}"#.into(),
        ok,
        duration_ms,
        result: result.into(),
    }
}

fn finished(task: &str, status: TaskStatus, duration_ms: u64, error: Option<&str>) -> EventKind {
    EventKind::TaskFinished {
        task: task.into(),
        agent: "writer".into(),
        status,
        duration_ms,
        input_tokens: 400,
        output_tokens: 90,
        output_file: Some(format!("{task}.md")),
        error: error.map(str::to_string),
    }
}

fn review_started(round: u32) -> EventKind {
    EventKind::ReviewStarted {
        task: "draft".into(),
        reviewer: "editor".into(),
        round,
    }
}

fn verdict(round: u32, approved: bool, feedback: &str) -> EventKind {
    EventKind::ReviewVerdict {
        task: "draft".into(),
        reviewer: "editor".into(),
        round,
        approved,
        feedback: feedback.into(),
    }
}

/// Two tasks: `draft` calls a tool, is reviewed twice (the reviewer's model call inside the
/// round) and completes; `summary` has a failing tool and a model call that is never answered,
/// and fails; the run fails.
fn two_tasks() -> Vec<Event> {
    events(vec![
        (0, run_started("research")),
        (1, task_started("draft", "writer")),
        (10, request("draft", "writer", 1)),
        (
            150,
            EventKind::LlmRetry {
                task: "draft".into(),
                agent: "writer".into(),
                attempt: 1,
                reason: "429 Too Many Requests".into(),
                wait_ms: 100,
                retry_after: true,
                retry_after_ms: Some(100),
                retry_after_capped: false,
            },
        ),
        (210, response("draft", "writer", 1, (120, 30), "tool_calls")),
        (260, tool("draft", true, 40, r#"{"words": 2}"#)),
        (270, request("draft", "writer", 2)),
        (300, response("draft", "writer", 2, (200, 50), "stop")),
        (310, review_started(1)),
        (320, request("draft", "editor", 1)),
        (350, response("draft", "editor", 1, (80, 10), "stop")),
        (360, verdict(1, false, "Cite the notes.")),
        (370, request("draft", "writer", 1)),
        (
            380,
            EventKind::LimitHit {
                task: Some("draft".into()),
                agent: Some("writer".into()),
                limit: "max_tokens_per_answer".into(),
                value: "64".into(),
                key: "llm.max_tokens".into(),
                action: "the answer was cut off at the cap".into(),
            },
        ),
        (400, response("draft", "writer", 1, (300, 64), "length")),
        (410, review_started(2)),
        (420, verdict(2, true, "Good.")),
        (430, finished("draft", TaskStatus::Completed, 429, None)),
        (440, task_started("summary", "writer")),
        (
            445,
            EventKind::Warning {
                task: Some("summary".into()),
                message: "a warning about the summary".into(),
            },
        ),
        (448, tool("summary", false, 3, "no such file")),
        (450, request("summary", "writer", 1)),
        (
            500,
            finished(
                "summary",
                TaskStatus::Failed,
                60,
                Some("model call failed: boom"),
            ),
        ),
        (
            510,
            EventKind::RunFinished {
                status: "failed".into(),
                duration_ms: 510,
                input_tokens: 700,
                output_tokens: 154,
                cost_usd: Some(0.25),
            },
        ),
    ])
}

#[test]
fn a_run_becomes_a_tree_of_spans_with_the_events_timestamps() {
    let collector = Collector::start();
    let tracing = Tracing::start(&collector.endpoint, "troupe-test").unwrap();
    assert_eq!(
        tracing.endpoint(),
        format!("{}/v1/traces", collector.endpoint)
    );
    let mut sink = tracing.run_sink(Some("run-1".into()));
    for e in two_tasks() {
        sink(&e);
    }
    drop(sink);
    tracing.shutdown().unwrap();
    let got = collector.take();
    assert!(
        got.content_types
            .iter()
            .all(|c| c == "application/x-protobuf"),
        "{:?}",
        got.content_types
    );
    assert!(got.services.iter().all(|s| s == "troupe-test"));
    let spans = &got.spans;
    assert_eq!(
        spans.len(),
        1 + 2 + 2 + 5 + 2,
        "run, tasks, reviews, model calls, tools"
    );

    // The run: the one root, every span in its trace.
    let run = one(spans, "troupe.run research");
    assert!(run.is_root());
    assert_eq!(spans.iter().filter(|s| s.is_root()).count(), 1);
    assert!(spans.iter().all(|s| s.trace_id == run.trace_id));
    assert_eq!((run.start_ms(), run.end_ms()), (T0, T0 + 510));
    assert_eq!(run.str("troupe.crew").as_deref(), Some("research"));
    assert_eq!(run.str("troupe.run.id").as_deref(), Some("run-1"));
    assert_eq!(run.str("troupe.process").as_deref(), Some("sequential"));
    assert_eq!(run.str("troupe.run.status").as_deref(), Some("failed"));
    assert_eq!(run.int("troupe.usage.input_tokens"), Some(700));
    assert_eq!(run.int("troupe.usage.output_tokens"), Some(154));
    assert_eq!(double(&run.attributes, "troupe.cost_usd"), Some(0.25));
    assert!(run.is_error(), "a run that did not complete is an error");

    // The tasks: children of the run, from task_started to task_finished.
    let draft = one(spans, "troupe.task draft");
    let summary = one(spans, "troupe.task summary");
    for t in [draft, summary] {
        assert!(t.is_child_of(run));
    }
    assert_eq!((draft.start_ms(), draft.end_ms()), (T0 + 1, T0 + 430));
    assert_eq!(draft.str("troupe.task.id").as_deref(), Some("draft"));
    assert_eq!(draft.str("troupe.task.agent").as_deref(), Some("writer"));
    assert_eq!(
        draft.str("troupe.task.status").as_deref(),
        Some("completed")
    );
    assert_eq!(draft.int("troupe.usage.input_tokens"), Some(400));
    assert!(!draft.is_error());
    assert_eq!(summary.str("troupe.task.status").as_deref(), Some("failed"));
    assert!(summary.is_error());
    assert_eq!(summary.error_message(), "model call failed: boom");
    assert_eq!(
        summary.str("troupe.task.error").as_deref(),
        Some("model call failed: boom")
    );
    assert_eq!(summary.event_names(), vec!["warning"]);

    // The review rounds: children of their task, one per round.
    let reviews = named(spans, "troupe.review draft");
    assert_eq!(reviews.len(), 2);
    assert!(reviews.iter().all(|r| r.is_child_of(draft)));
    assert_eq!(
        (reviews[0].start_ms(), reviews[0].end_ms()),
        (T0 + 310, T0 + 360)
    );
    assert_eq!(reviews[0].int("troupe.review.round"), Some(1));
    assert_eq!(reviews[0].flag("troupe.review.approved"), Some(false));
    assert_eq!(
        reviews[0].str("troupe.review.feedback").as_deref(),
        Some("Cite the notes.")
    );
    assert_eq!(reviews[1].flag("troupe.review.approved"), Some(true));
    assert!(
        !reviews[0].is_error(),
        "a revision asked for is not an error"
    );

    // Model calls: request → response of the same task, agent and iteration, with the GenAI
    // attributes; the reviewer's call is in its round.
    let calls = named(spans, "chat gpt-test");
    assert_eq!(calls.len(), 5);
    let first = calls[0];
    assert!(first.is_child_of(draft));
    assert_eq!((first.start_ms(), first.end_ms()), (T0 + 10, T0 + 210));
    assert_eq!(first.kind, 3, "SPAN_KIND_CLIENT");
    assert_eq!(first.str("gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(
        first.str("gen_ai.request.model").as_deref(),
        Some("gpt-test")
    );
    assert_eq!(first.str("gen_ai.agent.name").as_deref(), Some("writer"));
    assert_eq!(first.int("gen_ai.usage.input_tokens"), Some(120));
    assert_eq!(first.int("gen_ai.usage.output_tokens"), Some(30));
    assert_eq!(
        strings(&first.attributes, "gen_ai.response.finish_reasons"),
        Some(vec!["tool_calls".to_string()])
    );
    assert_eq!(first.event_names(), vec!["llm_retry"]);
    let retry = &first.events[0];
    assert_eq!(retry.time_unix_nano, (T0 + 150) * 1_000_000);
    assert_eq!(int(&retry.attributes, "troupe.attempt"), Some(1));
    assert_eq!(int(&retry.attributes, "troupe.wait_ms"), Some(100));

    let second = calls[1];
    assert!(second.is_child_of(draft));
    assert_eq!(second.int("gen_ai.usage.input_tokens"), Some(200));
    assert_eq!(second.int("gen_ai.usage.output_tokens"), Some(50));

    let reviewer = calls[2];
    assert_eq!(reviewer.str("gen_ai.agent.name").as_deref(), Some("editor"));
    assert!(
        reviewer.is_child_of(reviews[0]),
        "the reviewer's call is in its round"
    );
    assert_eq!(reviewer.int("gen_ai.usage.input_tokens"), Some(80));

    // The revision (iteration 1 again, after the round closed): under the task, with the
    // limit that cut its answer as an event on it.
    let revision = calls[3];
    assert!(revision.is_child_of(draft));
    assert_eq!(
        (revision.start_ms(), revision.end_ms()),
        (T0 + 370, T0 + 400)
    );
    assert_eq!(revision.event_names(), vec!["limit_hit"]);
    assert_eq!(
        string(&revision.events[0].attributes, "troupe.key").as_deref(),
        Some("llm.max_tokens")
    );

    // The call that never got an answer ends with its task, as not finished.
    let unanswered = calls[4];
    assert!(unanswered.is_child_of(summary));
    assert_eq!(
        (unanswered.start_ms(), unanswered.end_ms()),
        (T0 + 450, T0 + 500)
    );
    assert_eq!(unanswered.flag("troupe.unfinished"), Some(true));
    assert!(unanswered.is_error());
    assert_eq!(unanswered.int("gen_ai.usage.input_tokens"), None);

    // Tool calls: emitted when they end; they started `duration_ms` before.
    let tools = named(spans, "execute_tool text.stats");
    assert_eq!(tools.len(), 2);
    assert!(tools[0].is_child_of(draft));
    assert_eq!(
        (tools[0].start_ms(), tools[0].end_ms()),
        (T0 + 220, T0 + 260)
    );
    assert_eq!(
        tools[0].str("gen_ai.tool.name").as_deref(),
        Some("text.stats")
    );
    assert_eq!(tools[0].flag("troupe.tool.ok"), Some(true));
    assert!(!tools[0].is_error());
    assert!(tools[1].is_child_of(summary));
    assert_eq!(
        (tools[1].start_ms(), tools[1].end_ms()),
        (T0 + 445, T0 + 448)
    );
    assert_eq!(tools[1].flag("troupe.tool.ok"), Some(false));
    assert!(tools[1].is_error());
    assert_eq!(tools[1].error_message(), "no such file");
}

/// A hierarchical task: the manager's call comes before `task_started`, which comes twice.
/// The sink is dropped before `run_finished` (the run crashed): everything still open ends at
/// the last timestamp seen, as not finished.
#[test]
fn a_hierarchical_task_is_one_span_and_an_unfinished_run_still_ends() {
    let collector = Collector::start();
    let tracing = Tracing::start(&collector.endpoint, "troupe-test").unwrap();
    let mut trace = tracing.run(None);
    assert_eq!(trace.trace_id(), None);
    for e in events(vec![
        (
            0,
            EventKind::RunStarted {
                crew: "managed".into(),
                process: "hierarchical".into(),
                tasks: 1,
                agents: 3,
                out_dir: "out".into(),
            },
        ),
        (5, request("t", "manager", 1)),
        (9, response("t", "manager", 1, (50, 8), "stop")),
        (
            11,
            EventKind::TaskDelegated {
                task: "t".into(),
                agent: "a".into(),
                by: "manager".into(),
                delegation: 1,
                reason: "a knows".into(),
            },
        ),
        (12, task_started("t", "a")),
        (40, task_started("t", "b")),
        (60, request("t", "b", 1)),
    ]) {
        trace.on_event(&e);
    }
    let trace_id = trace.trace_id().expect("known once the run started");
    drop(trace);
    tracing.shutdown().unwrap();
    let spans = collector.take().spans;
    assert_eq!(spans.len(), 4, "run, task, two model calls");
    let run = one(&spans, "troupe.run managed");
    assert_eq!(hex(&run.trace_id), trace_id);
    assert!(run.is_root());
    assert_eq!((run.start_ms(), run.end_ms()), (T0, T0 + 60));
    assert_eq!(run.flag("troupe.unfinished"), Some(true));
    assert!(run.is_error());
    assert_eq!(run.str("troupe.run.id"), None);

    let task = one(&spans, "troupe.task t");
    assert!(task.is_child_of(run));
    assert_eq!(
        task.start_ms(),
        T0 + 5,
        "the task starts at its first event"
    );
    assert_eq!(task.end_ms(), T0 + 60);
    assert_eq!(task.flag("troupe.unfinished"), Some(true));
    assert_eq!(task.str("troupe.task.agent").as_deref(), Some("b"));
    // Each hand-over is an event on the one span.
    assert_eq!(
        task.event_names(),
        vec!["task_delegated", "task_started", "task_started"]
    );
    let agents: Vec<Option<String>> = task
        .events
        .iter()
        .map(|e| string(&e.attributes, "troupe.agent"))
        .collect();
    assert_eq!(
        agents,
        [Some("a"), Some("a"), Some("b")].map(|a| a.map(String::from))
    );
    assert_eq!(task.events[2].time_unix_nano, (T0 + 40) * 1_000_000);

    let calls = named(&spans, "chat gpt-test");
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.is_child_of(task)));
    assert_eq!(
        calls[0].str("gen_ai.agent.name").as_deref(),
        Some("manager")
    );
    assert_eq!(calls[0].flag("troupe.unfinished"), None);
    assert_eq!(calls[1].flag("troupe.unfinished"), Some(true));
    assert_eq!((calls[1].start_ms(), calls[1].end_ms()), (T0 + 60, T0 + 60));
}

/// One `Tracing`, two runs whose events interleave (a server): two traces, each task under its
/// own run.
#[test]
fn runs_traced_at_once_keep_their_own_spans() {
    let collector = Collector::start();
    let tracing = Tracing::start(&format!("{}/", collector.endpoint), "troupe-test").unwrap();
    let mut a = tracing.run_sink(Some("run-a".into()));
    let mut b = tracing.run_sink(Some("run-b".into()));
    let run = |crew: &str| {
        events(vec![
            (0, run_started(crew)),
            (1, task_started("t", "writer")),
            (2, request("t", "writer", 1)),
            (3, response("t", "writer", 1, (1, 1), "stop")),
            (4, finished("t", TaskStatus::Completed, 3, None)),
            (
                5,
                EventKind::RunFinished {
                    status: "completed".into(),
                    duration_ms: 5,
                    input_tokens: 1,
                    output_tokens: 1,
                    cost_usd: None,
                },
            ),
        ])
    };
    for (ea, eb) in run("alpha").iter().zip(run("beta").iter()) {
        a(ea);
        b(eb);
    }
    drop((a, b));
    tracing.flush().unwrap();
    let spans = collector.take().spans;
    assert_eq!(spans.len(), 6);
    let alpha = one(&spans, "troupe.run alpha");
    let beta = one(&spans, "troupe.run beta");
    assert_ne!(alpha.trace_id, beta.trace_id);
    assert_eq!(alpha.str("troupe.run.id").as_deref(), Some("run-a"));
    assert_eq!(beta.str("troupe.run.id").as_deref(), Some("run-b"));
    assert!(!alpha.is_error() && !beta.is_error());
    for run in [alpha, beta] {
        let task = spans
            .iter()
            .find(|s| s.name == "troupe.task t" && s.trace_id == run.trace_id)
            .unwrap();
        assert!(task.is_child_of(run));
        let call = spans
            .iter()
            .find(|s| s.name == "chat gpt-test" && s.trace_id == run.trace_id)
            .unwrap();
        assert!(call.is_child_of(task));
    }
    tracing.shutdown().unwrap();
    tracing.shutdown().unwrap();
}

/// Nothing listens: the export error is reported, not hidden.
#[test]
fn an_unreachable_collector_is_an_error_of_the_flush() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tracing = Tracing::start(&format!("http://127.0.0.1:{port}"), "troupe-test").unwrap();
    let mut sink = tracing.run_sink(None);
    for e in events(vec![(0, run_started("lost"))]) {
        sink(&e);
    }
    drop(sink);
    let err = tracing.flush().unwrap_err().to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{port}/v1/traces")),
        "{err}"
    );
    assert!(Tracing::start("127.0.0.1:4318", "x").is_err());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
