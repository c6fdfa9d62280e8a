//! A real crew run in-process (the runtime, a scripted model, a built-in tool, a review), traced
//! through `RunOptions.on_event` and exported over OTLP/HTTP to a receiver in the test: the span
//! tree matches the run's own events, timestamps included.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;
use troupe_crew::{Crew, LlmSettings, Source};
use troupe_llm::scripted::{ScriptedModel, text, tool_call};
use troupe_llm::{ChatModel, ChatRequest, LlmError, Message};
use troupe_otel::Tracing;
use troupe_runtime::models::ModelFactory;
use troupe_runtime::{Event, EventKind, EventSink, RunOptions, RunStatus};

/// Every agent gets the same scripted model; the script tells them apart by their persona.
struct Fixed(Arc<ScriptedModel>);

impl ModelFactory for Fixed {
    fn model(&self, _: &LlmSettings) -> Result<Arc<dyn ChatModel>, LlmError> {
        Ok(self.0.clone())
    }
}

fn crew() -> Crew {
    let json = json!({
        "name": "otel-crew",
        "llm": {"model": "m"},
        "agents": [
            {"id": "w", "role": "Technical writer", "goal": "g", "tools": ["text.stats"]},
            {"id": "r", "role": "Exacting editor", "goal": "g"}
        ],
        "tasks": [
            {"id": "report", "agent": "w", "description": "Write the report.",
             "review": {"by": "r", "max_rounds": 2}},
            {"id": "summary", "agent": "w", "description": "Summarise the findings."}
        ]
    });
    troupe_crew::parse(
        Source::new("crew.json", json.to_string()),
        ".".into(),
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("invalid test crew: {e}"))
}

fn system(r: &ChatRequest) -> &str {
    r.messages
        .iter()
        .find_map(|m| match m {
            Message::System { content } => Some(content.as_str()),
            _ => None,
        })
        .unwrap_or_default()
}

fn first_user(r: &ChatRequest) -> &str {
    r.messages
        .iter()
        .find_map(|m| match m {
            Message::User { content } => Some(content.as_str()),
            _ => None,
        })
        .unwrap_or_default()
}

fn last_user(r: &ChatRequest) -> &str {
    match r.messages.last() {
        Some(Message::User { content }) => content,
        _ => "",
    }
}

fn has_tool_result(r: &ChatRequest) -> bool {
    r.messages.iter().any(|m| matches!(m, Message::Tool { .. }))
}

/// The writer counts words with a tool, then drafts; the editor sends the first draft back and
/// approves the second.
fn model() -> Arc<ScriptedModel> {
    Arc::new(ScriptedModel::new(|r| {
        Ok(if system(r).contains("You are Technical writer") {
            if first_user(r).contains("Summarise the findings") {
                text("Summary.")
            } else if last_user(r).contains("Cite the notes") {
                text("# Report v2")
            } else if !has_tool_result(r) {
                tool_call("text.stats", r#"{"text": "one two three"}"#)
            } else {
                text("# Report v1")
            }
        } else if first_user(r).contains("Report v2") {
            text(r#"{"verdict": "approve", "feedback": "Good."}"#)
        } else {
            text(r#"{"verdict": "revise", "feedback": "Cite the notes."}"#)
        })
    }))
}

fn ts(e: &Event) -> u64 {
    e.ts_ms
}

#[tokio::test]
async fn a_real_run_is_traced_from_its_events() {
    let collector = Collector::start();
    let tracing = Tracing::start(&collector.endpoint, "troupe-test").unwrap();

    // The trace's sink, chained with another one that keeps the events, as a front end does
    // with its own renderer.
    let seen = Arc::new(Mutex::new(Vec::<Event>::new()));
    let keep = seen.clone();
    let mut other: EventSink = Box::new(move |e| keep.lock().unwrap().push(e.clone()));
    let mut trace = tracing.run(Some("run-42".into()));
    let on_event: EventSink = Box::new(move |e| {
        other(e);
        trace.on_event(e);
    });

    let dir = tempfile::tempdir().unwrap();
    let report = troupe_runtime::run(
        crew(),
        RunOptions {
            out_dir: dir.path().join("out"),
            models: Arc::new(Fixed(model())),
            tools: troupe_runtime::default_tools(),
            on_event: Some(on_event),
            documents: None,
            store: None,
            continuation: None,
            run_id: None,
            approvals: None,
        },
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    tracing.shutdown().unwrap();

    let events = std::mem::take(&mut *seen.lock().unwrap());
    let spans = collector.take().spans;
    let of = |f: &dyn Fn(&EventKind) -> bool| -> Vec<&Event> {
        events.iter().filter(|e| f(&e.kind)).collect()
    };

    // The run: the root of one trace, from run_started to run_finished.
    let run = one(&spans, "troupe.run otel-crew");
    assert!(run.is_root());
    assert!(spans.iter().all(|s| s.trace_id == run.trace_id));
    let started = of(&|k| matches!(k, EventKind::RunStarted { .. }));
    let finished = of(&|k| matches!(k, EventKind::RunFinished { .. }));
    assert_eq!(run.start_ms(), ts(started[0]));
    assert_eq!(run.end_ms(), ts(finished[0]));
    assert_eq!(run.str("troupe.run.id").as_deref(), Some("run-42"));
    assert_eq!(run.str("troupe.run.status").as_deref(), Some("completed"));
    assert!(!run.is_error());
    let EventKind::RunFinished {
        input_tokens,
        output_tokens,
        ..
    } = &finished[0].kind
    else {
        unreachable!()
    };
    assert_eq!(
        run.int("troupe.usage.input_tokens"),
        Some(*input_tokens as i64)
    );
    assert_eq!(
        run.int("troupe.usage.output_tokens"),
        Some(*output_tokens as i64)
    );

    // The tasks: children of the run, from their task_started to their task_finished.
    for id in ["report", "summary"] {
        let task = one(&spans, &format!("troupe.task {id}"));
        assert!(task.is_child_of(run), "{id}");
        let start = of(&|k| matches!(k, EventKind::TaskStarted { task, .. } if task == id));
        let end = of(&|k| matches!(k, EventKind::TaskFinished { task, .. } if task == id));
        assert_eq!(task.start_ms(), ts(start[0]), "{id}");
        assert_eq!(task.end_ms(), ts(end[0]), "{id}");
        assert_eq!(task.str("troupe.task.status").as_deref(), Some("completed"));
        assert_eq!(task.str("troupe.task.agent").as_deref(), Some("w"));
    }
    let report_task = one(&spans, "troupe.task report");
    let summary_task = one(&spans, "troupe.task summary");

    // Review rounds: under their task, the editor's verdicts.
    let reviews = named(&spans, "troupe.review report");
    assert_eq!(reviews.len(), 2);
    assert!(reviews.iter().all(|r| r.is_child_of(report_task)));
    let approved: Vec<Option<bool>> = reviews
        .iter()
        .map(|r| r.flag("troupe.review.approved"))
        .collect();
    assert_eq!(approved, vec![Some(false), Some(true)]);

    // Model calls: one span per llm_request, ended by its llm_response, with the scripted
    // model's usage (10 in, 5 out) as GenAI attributes; the editor's under its round.
    let requests = of(&|k| matches!(k, EventKind::LlmRequest { .. }));
    let responses = of(&|k| matches!(k, EventKind::LlmResponse { .. }));
    let calls = named(&spans, "chat scripted");
    assert_eq!(calls.len(), requests.len());
    assert_eq!(
        calls.len(),
        6,
        "tool call, draft, review, revision, review, summary"
    );
    for (call, (req, resp)) in calls.iter().zip(requests.iter().zip(&responses)) {
        assert_eq!(call.start_ms(), ts(req), "{:?}", req.kind);
        assert_eq!(call.end_ms(), ts(resp), "{:?}", resp.kind);
        assert_eq!(call.str("gen_ai.operation.name").as_deref(), Some("chat"));
        assert_eq!(
            call.str("gen_ai.request.model").as_deref(),
            Some("scripted")
        );
        assert_eq!(call.int("gen_ai.usage.input_tokens"), Some(10));
        assert_eq!(call.int("gen_ai.usage.output_tokens"), Some(5));
        let EventKind::LlmResponse { finish_reason, .. } = &resp.kind else {
            unreachable!()
        };
        assert_eq!(
            strings(&call.attributes, "gen_ai.response.finish_reasons"),
            finish_reason.clone().map(|f| vec![f])
        );
        let agent = call.str("gen_ai.agent.name").unwrap();
        let parent_ok = match agent.as_str() {
            "r" => reviews.iter().any(|r| call.is_child_of(r)),
            _ => call.is_child_of(report_task) || call.is_child_of(summary_task),
        };
        assert!(parent_ok, "{agent}'s call under the wrong span");
    }
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.str("gen_ai.agent.name").as_deref() == Some("r"))
            .count(),
        2
    );

    // The tool call: under its task, ending at its event, starting its duration before.
    let tool = one(&spans, "execute_tool text.stats");
    assert!(tool.is_child_of(report_task));
    let call = of(&|k| matches!(k, EventKind::ToolCall { .. }));
    let EventKind::ToolCall { duration_ms, .. } = &call[0].kind else {
        unreachable!()
    };
    assert_eq!(tool.end_ms(), ts(call[0]));
    assert_eq!(tool.start_ms(), ts(call[0]) - duration_ms);
    assert_eq!(tool.str("gen_ai.tool.name").as_deref(), Some("text.stats"));
    assert_eq!(tool.flag("troupe.tool.ok"), Some(true));

    // Nothing was left open.
    assert!(spans.iter().all(|s| s.flag("troupe.unfinished").is_none()));
    assert_eq!(spans.len(), 1 + 2 + 2 + 6 + 1);
}
