//! A server on 127.0.0.1:0 in this process, a real HTTP client, a real SSE parser
//! (`eventsource-stream`), and the fake OpenAI-compatible model server at the boundary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use troupe_runtime::models::ProviderFactory;
use troupe_server::ServeConfig;

pub struct Server {
    pub url: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), troupe_server::ServeError>>>,
}

/// A config with the store and data under `dir`, and an API key for the fake model server.
pub fn config(dir: &Path) -> ServeConfig {
    ServeConfig {
        crews_dir: None,
        store: dir.join("runs.db"),
        data_dir: dir.join("data"),
        max_runs: 4,
        max_queue: 16,
        token: None,
        max_body_kb: 1024,
        max_upload_mb: 8,
        models: Arc::new(ProviderFactory::new(|k| {
            (k == "OPENAI_API_KEY").then(|| "test-key".to_string())
        })),
        run_sinks: None,
        mcp: None,
    }
}

pub async fn start(config: ServeConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(troupe_server::serve(config, listener, async move {
        let _ = stopped.await;
    }));
    Server {
        url,
        http: reqwest::Client::new(),
        stop: Some(stop),
        handle: Some(handle),
    }
}

impl Server {
    /// A client of a server started elsewhere.
    pub fn attach(url: &str) -> Server {
        Server {
            url: url.to_string(),
            http: reqwest::Client::new(),
            stop: None,
            handle: None,
        }
    }

    /// Stops the server as Ctrl-C would, and waits until it has.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        answer(self.http.post(format!("{}{path}", self.url)).json(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        answer(self.http.get(format!("{}{path}", self.url))).await
    }

    pub async fn text(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Starts a run; its id.
    pub async fn run(&self, body: Value) -> String {
        let (status, v) = self.post("/v1/runs", &body).await;
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Reads the run's event stream (after `last_event_id`) until `stop` says so or the stream
    /// ends: `(seq, type, event)` each.
    pub async fn events(
        &self,
        run: &str,
        last_event_id: Option<u64>,
        mut stop: impl FnMut(&str, &Value) -> bool,
    ) -> Vec<(u64, String, Value)> {
        let mut req = self.http.get(format!("{}/v1/runs/{run}/events", self.url));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let mut stream = resp.bytes_stream().eventsource();
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let next = tokio::time::timeout_at(deadline, stream.next()).await;
            let Ok(Some(e)) = next else { break };
            let e = e.unwrap();
            let v: Value = serde_json::from_str(&e.data).unwrap();
            let seq: u64 = e.id.parse().unwrap();
            let done = stop(&e.event, &v);
            out.push((seq, e.event, v));
            if done {
                break;
            }
        }
        out
    }

    /// Waits (reading the run's events) until the run stands as `status`.
    pub async fn wait_status(&self, run: &str, status: &str) -> Value {
        for _ in 0..600 {
            let (_, v) = self.get(&format!("/v1/runs/{run}")).await;
            if v["status"] == status {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("run {run} never became {status}");
    }
}

/// A crew of a writer and an editor, whose model is the fake server at `url`; `final` needs a
/// person's approval when `approval` is true.
pub fn memo_crew(url: &str, approval: bool) -> Value {
    let mut crew = json!({
        "name": "memo",
        "llm": {"model": "gpt-test", "base_url": url},
        "agents": [
            {"id": "writer", "role": "Writer", "goal": "Write memos."},
            {"id": "editor", "role": "Editor", "goal": "Polish memos."}
        ],
        "tasks": [
            {"id": "draft", "agent": "writer", "description": "Draft a memo about {topic}.",
             "output_file": "draft.md"},
            {"id": "final", "agent": "editor", "context": ["draft"],
             "description": "Polish the memo.", "output_file": "final.md"}
        ]
    });
    if approval {
        crew["tasks"][1]["approval"] = json!({"message": "Publish this memo?"});
    }
    crew
}

pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().to_path_buf();
    (d, p)
}

/// Sends a request; its status and JSON body (`null` when the body is not JSON).
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
