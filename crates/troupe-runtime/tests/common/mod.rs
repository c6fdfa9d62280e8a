//! Helpers for the runtime's in-process tests: a crew from JSON, a scripted model for every
//! agent, and a run through the public `troupe_runtime::run` that keeps its events.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use troupe_crew::{Crew, LlmSettings, Source};
use troupe_docs::Corpus;
use troupe_llm::scripted::ScriptedModel;
use troupe_llm::{ChatModel, ChatRequest, LlmError, Message};
use troupe_runtime::models::ModelFactory;
use troupe_runtime::record::TaskRecord;
use troupe_runtime::{RunDocuments, RunOptions, RunReport};

/// Every agent gets the same scripted model; its script tells agents apart by their persona.
pub struct Fixed(pub Arc<ScriptedModel>);

impl ModelFactory for Fixed {
    fn model(&self, _: &LlmSettings) -> Result<Arc<dyn ChatModel>, LlmError> {
        Ok(self.0.clone())
    }
}

pub fn crew(json: &Value) -> Crew {
    troupe_crew::parse(
        Source::new("crew.json", json.to_string()),
        ".".into(),
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("invalid test crew: {e}"))
}

/// A finished run: its report, every event (as JSON, in order) and the output directory.
pub struct Ran {
    pub report: RunReport,
    pub events: Vec<Value>,
    pub dir: tempfile::TempDir,
}

impl Ran {
    pub fn task(&self, id: &str) -> &TaskRecord {
        self.report
            .record
            .tasks
            .iter()
            .find(|t| t.id == id)
            .unwrap_or_else(|| panic!("no task {id}"))
    }

    pub fn of_type(&self, t: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == t).collect()
    }
}

pub async fn run(crew: Crew, model: &Arc<ScriptedModel>) -> Ran {
    run_with(crew, model, None, std::future::pending()).await
}

pub async fn run_with(
    crew: Crew,
    model: &Arc<ScriptedModel>,
    corpus: Option<Corpus>,
    shutdown: impl Future<Output = ()> + Send,
) -> Ran {
    run_gated(crew, model, corpus, None, shutdown).await
}

/// A run whose approval requests `gate` answers (`None`: they pause the run).
pub async fn run_gated(
    crew: Crew,
    model: &Arc<ScriptedModel>,
    corpus: Option<Corpus>,
    gate: Option<Arc<dyn troupe_runtime::approval::ApprovalGate>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let report = troupe_runtime::run(
        crew,
        RunOptions {
            out_dir: dir.path().join("out"),
            models: Arc::new(Fixed(model.clone())),
            tools: troupe_runtime::default_tools(),
            on_event: Some(Box::new(move |e| {
                sink.lock().unwrap().push(serde_json::to_value(e).unwrap());
            })),
            documents: corpus.map(|c| RunDocuments {
                corpus: Arc::new(c),
                skipped: Vec::new(),
                ignored: Vec::new(),
                load_ms: 0,
                source: None,
            }),
            store: None,
            continuation: None,
            run_id: None,
            approvals: gate,
        },
        shutdown,
    )
    .await
    .unwrap();
    let events = std::mem::take(&mut *seen.lock().unwrap());
    Ran {
        report,
        events,
        dir,
    }
}

/// Whether the request's persona is `role` (the system prompt opens "You are <role>").
pub fn is(r: &ChatRequest, role: &str) -> bool {
    system(r).contains(&format!("You are {role}"))
}

pub fn system(r: &ChatRequest) -> &str {
    r.messages
        .iter()
        .find_map(|m| match m {
            Message::System { content } => Some(content.as_str()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The first user message: the task prompt.
pub fn task_prompt(r: &ChatRequest) -> &str {
    r.messages
        .iter()
        .find_map(|m| match m {
            Message::User { content } => Some(content.as_str()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The last message's text.
pub fn last(r: &ChatRequest) -> &str {
    match r.messages.last() {
        Some(Message::System { content } | Message::User { content }) => content,
        Some(Message::Tool { content, .. }) => content,
        Some(Message::Assistant { content, .. }) => content.as_deref().unwrap_or_default(),
        None => "",
    }
}

/// Tool results in the conversation so far.
pub fn tool_results(r: &ChatRequest) -> Vec<&str> {
    r.messages
        .iter()
        .filter_map(|m| match m {
            Message::Tool { content, .. } => Some(content.as_str()),
            _ => None,
        })
        .collect()
}
