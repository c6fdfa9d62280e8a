//! `troupe run --otlp URL` delivers the run's trace to a collector: OTLP/HTTP protobuf posted to
//! `/v1/traces`, carrying the run's id (the one `run.json` has), its crew and its model calls.
//! The spans themselves are checked in troupe-otel's own tests; here, that the binary sends them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use serde_json::json;
use troupe_testkit::{FakeServer, Reply};

/// Bodies posted to the collector, each with its content type.
type Posted = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A collector that keeps every body posted to `/v1/traces`, with its content type.
fn collector() -> (String, Posted) {
    let got: Posted = Arc::default();
    let keep = got.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().route(
                "/v1/traces",
                post(move |headers: HeaderMap, body: Bytes| {
                    let keep = keep.clone();
                    async move {
                        let kind = headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        keep.lock().unwrap().push((kind, body.to_vec()));
                        ""
                    }
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}"), got)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_run_sends_its_trace_to_the_collector() {
    let (url, got) = collector();
    let server = FakeServer::start(|_| Reply::text("Notes."));
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "traced.json",
        &json!({
            "name": "traced-crew",
            "llm": {"model": "gpt-traced"},
            "agents": [{"id": "a", "role": "Researcher", "goal": "G"}],
            "tasks": [{"id": "t", "agent": "a", "description": "Research"}]
        }),
    );
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &crew, &out, &["--otlp", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run_id = read_json(&out.join("run.json"))["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let got = got.lock().unwrap();
    assert!(!got.is_empty(), "nothing reached the collector");
    assert!(got.iter().all(|(kind, _)| kind == "application/x-protobuf"));
    let all: Vec<u8> = got.iter().flat_map(|(_, b)| b.clone()).collect();
    for needle in [
        run_id.as_str(),
        "troupe.run traced-crew",
        "gpt-traced",
        "gen_ai.usage.input_tokens",
    ] {
        assert!(contains(&all, needle), "the trace lacks `{needle}`");
    }
}

#[test]
fn a_bad_collector_address_is_a_user_error() {
    let server = FakeServer::start(|_| Reply::text("Notes."));
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "c.json",
        &json!({
            "name": "c",
            "agents": [{"id": "a", "role": "R", "goal": "G"}],
            "tasks": [{"id": "t", "agent": "a", "description": "D"}]
        }),
    );
    let o = run_crew(
        &server.url,
        &crew,
        &tmp.path().join("out"),
        &["--otlp", "grpc://x:4317"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("hint:"),
        "{}",
        text(&o)
    );
}
