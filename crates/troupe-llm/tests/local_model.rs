//! The embedded model, for real: the default GGUF loaded through llama.cpp.
//!
//! Skipped (with a message) only when the model file is absent; `scripts/test.sh` fetches it and
//! sets `TROUPE_REQUIRE_MODEL=1`, so in CI a missing model is a failure, not a skip.
#![cfg(feature = "local")]
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::sync::Arc;

use serde_json::{Value, json};
use troupe_llm::local::{LocalModel, models_dir, resolve};
use troupe_llm::{ChatModel, ChatRequest, Message, OutputFormat, ToolSpec};

fn model() -> Option<Arc<LocalModel>> {
    let env = |k: &str| std::env::var(k).ok();
    match resolve("", &models_dir(&env)) {
        Ok(path) => Some(LocalModel::shared(&path).unwrap()),
        Err(e) if std::env::var("TROUPE_REQUIRE_MODEL").is_ok_and(|v| v == "1") => {
            panic!("TROUPE_REQUIRE_MODEL=1 but the model is missing: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::system("You are a concise assistant."),
            Message::user(text),
        ],
        ..Default::default()
    }
}

#[tokio::test]
async fn plain_generation_stops_at_the_cap_or_end_of_turn() {
    let Some(m) = model() else { return };
    let mut req = ask("Write a long story about a lighthouse keeper.");
    req.max_tokens = Some(24);
    let r = m.chat(&req).await.unwrap();
    assert!(r.usage.output_tokens <= 24, "{r:?}");
    assert!(r.usage.output_tokens > 0);
    assert!(r.usage.input_tokens > 10);
    let finish = r.finish_reason.as_deref().unwrap();
    assert!(finish == "length" || finish == "stop", "{finish}");
    assert!(!r.content.unwrap_or_default().is_empty());
    assert!(m.name().starts_with("local:gemma-3-270m"));
}

#[tokio::test]
async fn structured_output_is_valid_json_for_its_schema() {
    let Some(m) = model() else { return };
    let schema = json!({
        "type": "object",
        "properties": {
            "colour": {"type": "string", "enum": ["red", "green", "blue"]},
            "count": {"type": "integer", "minimum": 0, "maximum": 99}
        },
        "required": ["colour", "count"],
        "additionalProperties": false
    });
    let mut req = ask("Pick a primary colour and a number of apples.");
    req.output = Some(OutputFormat {
        name: "pick".into(),
        schema: schema.clone(),
    });
    req.max_tokens = Some(64);
    let r = m.chat(&req).await.unwrap();
    let text = r.content.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&v), "{v}");
}

#[tokio::test]
async fn a_tool_call_names_an_offered_tool_with_valid_arguments() {
    let Some(m) = model() else { return };
    // A grammar bounds a string only where the schema does: a tool that wants short arguments
    // says so, and the model cannot ramble past it.
    let params = json!({
        "type": "object",
        "properties": {"text": {"type": "string", "maxLength": 40}},
        "required": ["text"],
        "additionalProperties": false
    });
    let mut req = ask("Count the words in: 'the quick brown fox'.");
    req.tools = vec![
        ToolSpec {
            name: "text.stats".into(),
            description: "Counts words and sentences.".into(),
            parameters: params.clone(),
        },
        ToolSpec {
            name: "text.keywords".into(),
            description: "Lists frequent words.".into(),
            parameters: params.clone(),
        },
    ];
    req.require_tool = true;
    req.max_tokens = Some(96);
    let r = m.chat(&req).await.unwrap();
    assert_eq!(r.tool_calls.len(), 1, "{r:?}");
    let call = &r.tool_calls[0];
    assert!(
        ["text.stats", "text.keywords"].contains(&call.name.as_str()),
        "{call:?}"
    );
    let args: Value = serde_json::from_str(&call.arguments).unwrap();
    assert!(
        jsonschema::validator_for(&params).unwrap().is_valid(&args),
        "{args}"
    );
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_share_the_model_and_both_complete() {
    let Some(m) = model() else { return };
    let mut a = ask("Say hello.");
    a.max_tokens = Some(12);
    let mut b = ask("Say goodbye.");
    b.max_tokens = Some(12);
    let (ra, rb) = tokio::join!(m.chat(&a), m.chat(&b));
    assert!(ra.unwrap().usage.output_tokens > 0);
    assert!(rb.unwrap().usage.output_tokens > 0);
    // loaded once: the same instance serves every caller
    let again = model().unwrap();
    assert!(Arc::ptr_eq(&m, &again));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_request_stops_generating() {
    if model().is_none() {
        return;
    }
    // A private instance, so that no other test's tokens are counted.
    let env = |k: &str| std::env::var(k).ok();
    let m = LocalModel::load(&resolve("", &models_dir(&env)).unwrap()).unwrap();
    let mut long = ask("Write a very long story about the sea.");
    long.max_tokens = Some(1024);
    // Give up on the long answer once it has started generating, as a task timeout or Ctrl-C
    // would: the trigger is the model's own token count, not a wall-clock delay.
    let started = async {
        let mut polls = 0;
        while m.tokens_generated() < 4 {
            polls += 1;
            assert!(polls < 6000, "the long answer never started");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        r = m.chat(&long) => panic!("the long answer finished before it was abandoned: {r:?}"),
        () = started => {}
    }
    let mut short = ask("Say hi.");
    short.max_tokens = Some(4);
    let r = m.chat(&short).await.unwrap();
    assert!(r.usage.output_tokens <= 4);
    // Had the abandoned answer run to its cap, at least 1024 tokens would have been generated.
    assert!(m.tokens_generated() < 1024, "{}", m.tokens_generated());
}

/// The KV cache keeps the previous request's tokens and a request reuses the prefix it shares
/// with them: a follow-up of the same conversation and a request with the same persona prefill
/// only what is new, and (greedy decoding) answer exactly as a cleared cache would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_prefix_is_reused_and_answers_as_a_cleared_cache_would() {
    if model().is_none() {
        return;
    }
    // Private instances: nothing another test asks lands in their caches.
    let env = |k: &str| std::env::var(k).ok();
    let path = resolve("", &models_dir(&env)).unwrap();
    let warm = LocalModel::load(&path).unwrap();
    let cold = LocalModel::load(&path).unwrap();
    let persona = "You are a careful contract analyst. You read clauses closely, quote them \
                   exactly, and say when a clause is ambiguous. You never guess.";
    let question = |q: &str| {
        let mut r = ChatRequest {
            messages: vec![Message::system(persona), Message::user(q)],
            ..Default::default()
        };
        r.max_tokens = Some(24);
        r
    };
    let first = question("What does a termination clause usually say?");
    let second = question("What is an indemnity clause for?");

    let a = warm.chat(&first).await.unwrap();
    assert_eq!(
        a.usage.cached_input_tokens, 0,
        "a fresh cache holds nothing"
    );
    // The same persona, another question: the persona's tokens are not computed again.
    let b = warm.chat(&second).await.unwrap();
    assert!(
        b.usage.cached_input_tokens > 20 && b.usage.cached_input_tokens < b.usage.input_tokens,
        "{:?}",
        b.usage
    );
    // The conversation goes on: all of it but the new turn comes from the cache.
    let mut follow = second.clone();
    follow.messages.push(Message::Assistant {
        content: b.content.clone(),
        tool_calls: vec![],
    });
    follow.messages.push(Message::user("Give one example."));
    let c = warm.chat(&follow).await.unwrap();
    assert!(
        c.usage.cached_input_tokens > b.usage.input_tokens,
        "{:?} after {:?}",
        c.usage,
        b.usage
    );

    // A cleared cache gives the same answers, token for token.
    let b_cold = cold.chat(&second).await.unwrap();
    assert_eq!(b_cold.usage.cached_input_tokens, 0);
    assert_eq!(b_cold.content, b.content);
    assert_eq!(b_cold.usage.input_tokens, b.usage.input_tokens);
    let fresh = LocalModel::load(&path).unwrap();
    let c_cold = fresh.chat(&follow).await.unwrap();
    assert_eq!(c_cold.usage.cached_input_tokens, 0);
    assert_eq!(c_cold.content, c.content);
}

#[test]
fn a_missing_model_is_a_configuration_error_with_a_hint() {
    let dir = std::env::temp_dir().join("troupe-no-models-here");
    let err = resolve("", &dir).unwrap_err().to_string();
    assert!(err.contains("scripts/fetch-model.sh"), "{err}");
    let err = resolve("my-model", &dir).unwrap_err().to_string();
    assert!(
        err.contains("`my-model` not found") && err.contains("TROUPE_MODELS_DIR"),
        "{err}"
    );
}
