//! The model ⇄ tool loop through `troupe_runtime::run`, with a scripted model: tool results go
//! back to the model, and every per-task limit ends the loop where it says.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{Value, json};
use troupe_llm::scripted::{ScriptedModel, text, tool_call};
use troupe_runtime::prompt::FINAL_ANSWER_NOW;
use troupe_runtime::record::TaskStatus;

fn solo(limits: Value, task: Value) -> Value {
    let mut t = json!({"id": "t", "agent": "a", "description": "Count the words."});
    if let (Some(t), Some(extra)) = (t.as_object_mut(), task.as_object()) {
        t.extend(extra.clone());
    }
    json!({
        "name": "solo",
        "llm": {"model": "m"},
        "agents": [{"id": "a", "role": "Counter", "goal": "g", "tools": ["text.stats"],
                    "limits": limits}],
        "tasks": [t]
    })
}

/// A tool call is run and its result is the next message the model sees; the answer after it
/// ends the task.
#[tokio::test]
async fn a_tool_result_reaches_the_model_and_the_answer_ends_the_task() {
    let model = Arc::new(ScriptedModel::new(|r| {
        Ok(match tool_results(r).first() {
            None => tool_call("text.stats", r#"{"text": "one two three"}"#),
            Some(result) => {
                let words = result
                    .split("\"words\":")
                    .nth(1)
                    .and_then(|s| s.split([',', '}']).next())
                    .unwrap_or("?")
                    .trim()
                    .to_string();
                text(format!("{words} words"))
            }
        })
    }));
    let ran = run(crew(&solo(json!({}), json!({}))), &model).await;
    let t = ran.task("t");
    assert_eq!(t.status, TaskStatus::Completed);
    assert_eq!(t.output.as_deref(), Some("3 words"));
    assert_eq!(t.usage.tool_calls, 1);
    assert_eq!(t.usage.model_calls, 2);
    let calls = ran.of_type("tool_call");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["tool"], "text.stats");
    assert_eq!(calls[0]["ok"], true);
}

/// A model that never stops calling tools: on the last allowed step the tools are withdrawn
/// and it is asked for its answer; that answer is kept, marked `limit_reached`.
#[tokio::test]
async fn max_iterations_withdraws_the_tools_on_the_last_step() {
    let model = Arc::new(ScriptedModel::new(|r| {
        Ok(if r.tools.is_empty() {
            text("final answer")
        } else {
            // Different arguments each time: not a repeated call.
            let n = tool_results(r).len();
            tool_call(
                "text.stats",
                &json!({"text": format!("call {n}")}).to_string(),
            )
        })
    }));
    let ran = run(crew(&solo(json!({"max_iterations": 3}), json!({}))), &model).await;
    let reqs = model.requests();
    assert_eq!(reqs.len(), 3);
    assert!(!reqs[0].tools.is_empty() && !reqs[1].tools.is_empty());
    assert!(reqs[2].tools.is_empty(), "tools withdrawn on the last step");
    assert_eq!(last(&reqs[2]), FINAL_ANSWER_NOW);
    let t = ran.task("t");
    assert_eq!(t.status, TaskStatus::LimitReached);
    assert_eq!(t.output.as_deref(), Some("final answer"));
    assert_eq!(t.usage.tool_calls, 2);
    let hits = ran.of_type("limit_hit");
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0]["key"], "limits.max_iterations");
}

/// The same call over and over, `on_repeat: stop`: the tool runs the allowed number of times,
/// then the task ends on the limit.
#[tokio::test]
async fn repeated_tool_calls_stop_the_task() {
    let model = Arc::new(ScriptedModel::new(|_| {
        Ok(tool_call("text.stats", r#"{"text": "same"}"#))
    }));
    let limits = json!({"max_repeated_tool_calls": 2, "on_repeat": "stop", "max_iterations": 10});
    let ran = run(crew(&solo(limits, json!({}))), &model).await;
    let t = ran.task("t");
    assert_eq!(t.status, TaskStatus::LimitReached);
    assert_eq!(
        ran.of_type("tool_call").len(),
        2,
        "the third call was not run"
    );
    assert_eq!(model.requests().len(), 3);
    let hit = ran.of_type("limit_hit");
    assert_eq!(hit[0]["key"], "limits.max_repeated_tool_calls");
}

/// `on_repeat: warn`: the repeat is not run again; the model is told, and may then answer.
#[tokio::test]
async fn a_repeated_tool_call_with_warn_is_answered_with_a_warning() {
    let model = Arc::new(ScriptedModel::new(|r| {
        let results = tool_results(r);
        Ok(match results.last() {
            Some(last) if last.contains("you already called") => text("ok, answering now"),
            _ => tool_call("text.stats", r#"{"text": "same"}"#),
        })
    }));
    let limits = json!({"max_repeated_tool_calls": 1, "on_repeat": "warn"});
    let ran = run(crew(&solo(limits, json!({}))), &model).await;
    let t = ran.task("t");
    assert_eq!(t.status, TaskStatus::Completed);
    assert_eq!(t.output.as_deref(), Some("ok, answering now"));
    assert_eq!(ran.of_type("tool_call").len(), 1);
}

fn schema() -> Value {
    json!({"output_schema": {"type": "object", "properties": {"n": {"type": "integer"}},
                             "required": ["n"]}})
}

/// An answer that does not satisfy `output_schema` goes back with the errors; the corrected
/// answer is the task's structured output.
#[tokio::test]
async fn an_invalid_structured_answer_is_sent_back_once_then_accepted() {
    let model = Arc::new(ScriptedModel::new(|r| {
        Ok(
            if last(r).contains("does not satisfy the required JSON Schema") {
                text(r#"{"n": 3}"#)
            } else {
                text(r#"{"count": "three"}"#)
            },
        )
    }));
    let ran = run(crew(&solo(json!({}), schema())), &model).await;
    let t = ran.task("t");
    assert_eq!(t.status, TaskStatus::Completed);
    assert_eq!(t.structured_output, Some(json!({"n": 3})));
    let invalid = ran.of_type("output_invalid");
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0]["attempt"], 1);
    assert_eq!(
        invalid[0]["errors"],
        json!(["\"n\" is a required property"]),
        "the error names the missing key"
    );
}

/// Still invalid after `max_output_retries`: the task fails, naming the limit.
#[tokio::test]
async fn output_retries_are_bounded() {
    let model = Arc::new(ScriptedModel::new(|_| Ok(text("not json at all"))));
    let ran = run(
        crew(&solo(json!({"max_output_retries": 1}), schema())),
        &model,
    )
    .await;
    let t = ran.task("t");
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(
        t.error
            .as_deref()
            .unwrap()
            .contains("does not satisfy `output_schema`"),
        "{:?}",
        t.error
    );
    assert_eq!(model.requests().len(), 2, "the answer and one retry");
    assert_eq!(ran.of_type("output_invalid").len(), 2);
    let hits = ran.of_type("limit_hit");
    assert_eq!(hits[0]["key"], "limits.max_output_retries");
}
