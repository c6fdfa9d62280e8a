//! `troupe serve` end to end through real HTTP: a run started, streamed (and the stream
//! resumed with `Last-Event-ID`), cancelled, resumed after a server restart, paused for a
//! person's approval and answered; the token, the body caps, crew validation and the queue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use troupe_testkit::{FakeServer, Reply};

/// The writer drafts, the editor polishes; each answer says what it saw.
fn memo_model() -> FakeServer {
    FakeServer::start(|r| {
        if r.is("Writer") {
            Reply::text("DRAFT: the budget grows by 4%.")
        } else if r.last().contains("Make it shorter") {
            Reply::text("FINAL (short): budget +4%.")
        } else {
            Reply::text("FINAL: the budget grows by 4% next year.")
        }
    })
}

fn seqs(events: &[(u64, String, Value)]) -> Vec<u64> {
    events.iter().map(|e| e.0).collect()
}

/// A run streamed in two connections: the second, with `Last-Event-ID`, starts right after
/// what the first saw; together they are the whole log, numbered 1..n without a gap, ending
/// with `run_finished`; the run, its files and its listing agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_streams_its_events_and_a_reconnect_misses_nothing() {
    let model = FakeServer::start(|r| {
        let reply = if r.is("Writer") {
            Reply::text("DRAFT: the budget grows by 4%.")
        } else {
            Reply::text("FINAL: the budget grows by 4% next year.")
        };
        // Slow enough that the first connection sees the run before it ends.
        Reply::Delay(Duration::from_millis(150), Box::new(reply))
    });
    let (_d, dir) = tempdir();
    let server = start(config(&dir)).await;
    let id = server
        .run(json!({"crew": memo_crew(&model.url, false), "inputs": {"topic": "the budget"}}))
        .await;
    let first = server
        .events(&id, None, |kind, _| kind == "task_finished")
        .await;
    assert!(first.len() >= 3, "{first:?}");
    let last_seen = first.last().unwrap().0;
    let rest = server.events(&id, Some(last_seen), |_, _| false).await;
    let mut all = seqs(&first);
    all.extend(seqs(&rest));
    let n = all.len() as u64;
    assert_eq!(all, (1..=n).collect::<Vec<_>>(), "no gap, no repeat");
    let (_, kind, end) = rest.last().unwrap();
    assert_eq!(kind, "run_finished");
    assert_eq!(end["status"], "completed", "{end}");

    let (status, run) = server.get(&format!("/v1/runs/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "completed");
    assert_eq!(
        run["tasks"][1]["output"],
        "FINAL: the budget grows by 4% next year."
    );
    let files: Vec<&str> = run["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"final.md") && files.contains(&"events.jsonl"),
        "{files:?}"
    );
    let (status, text) = server.text(&format!("/v1/runs/{id}/files/final.md")).await;
    assert_eq!(status, 200);
    assert_eq!(text.trim(), "FINAL: the budget grows by 4% next year.");
    // The event log the stream sent is the one the output directory has.
    let (_, log) = server
        .text(&format!("/v1/runs/{id}/files/events.jsonl"))
        .await;
    assert_eq!(log.lines().count() as u64, n);
    // No file the run did not write, whatever the name.
    for bad in ["..%2F..%2Fruns.db", "%2Fetc%2Fpasswd", "nope.md"] {
        let (status, v) = server.get(&format!("/v1/runs/{id}/files/{bad}")).await;
        assert_eq!(status, 404, "{bad}: {v}");
    }
    let (_, list) = server.get("/v1/runs").await;
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0]["input_tokens"].as_u64().unwrap() > 0);
    server.stop().await;
}

/// A task that needs a person pauses the run: the stream stays open through the pause; a
/// revision goes back to its author with the person's words and asks again; the approval
/// completes the run. The draft, done before the pause, is never asked for again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_revises_then_approves_a_paused_task_through_the_api() {
    let model = memo_model();
    let (_d, dir) = tempdir();
    let server = start(config(&dir)).await;
    let id = server
        .run(json!({"crew": memo_crew(&model.url, true), "inputs": {"topic": "the budget"}}))
        .await;
    let paused = server
        .events(&id, None, |kind, _| kind == "approval_requested")
        .await;
    let (_, _, asked) = paused.last().unwrap();
    assert_eq!(asked["task"], "final");
    assert_eq!(asked["n"], 1);
    assert_eq!(asked["message"], "Publish this memo?");
    let run = server.wait_status(&id, "awaiting_approval").await;
    assert_eq!(run["tasks"][1]["status"], "awaiting_approval");
    assert_eq!(
        run["tasks"][1]["output"],
        "FINAL: the budget grows by 4% next year."
    );
    assert_eq!(run["approvals"][0]["task"], "final");
    assert!(run["approvals"][0]["decision"].is_null());

    // The stream goes on through the pause; a revision resumes the run.
    let last = paused.last().unwrap().0;
    let follow = {
        let url = server.url.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let s = Server::attach(&url);
            s.events(&id, Some(last), |kind, v| {
                kind == "approval_requested" && v["n"] == 2
            })
            .await
        })
    };
    let (status, v) = server
        .post(
            &format!("/v1/runs/{id}/approvals/final"),
            &json!({"decision": "revise", "feedback": "Make it shorter.", "by": "dana"}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["request"], 1);
    let after = follow.await.unwrap();
    let kinds: Vec<&str> = after.iter().map(|e| e.1.as_str()).collect();
    assert!(kinds.contains(&"run_continued"), "{kinds:?}");
    assert!(kinds.contains(&"approval_decided"), "{kinds:?}");
    let revised = server.wait_status(&id, "awaiting_approval").await;
    assert_eq!(revised["tasks"][1]["output"], "FINAL (short): budget +4%.");

    let (status, v) = server
        .post(
            &format!("/v1/runs/{id}/approvals/final"),
            &json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let done = server.wait_status(&id, "completed").await;
    assert_eq!(done["tasks"][1]["status"], "completed");
    let approvals = done["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 2);
    assert_eq!(approvals[0]["decision"]["decision"], "revise");
    assert_eq!(approvals[0]["decision"]["by"], "dana");
    assert_eq!(approvals[1]["decision"]["decision"], "approve");
    let (_, text) = server.text(&format!("/v1/runs/{id}/files/final.md")).await;
    assert_eq!(text.trim(), "FINAL (short): budget +4%.");

    // What the model was asked: one draft; the editor's first answer, its revision with the
    // person's words, and nothing paid twice.
    let requests = model.requests();
    let writer = requests
        .iter()
        .filter(|r| {
            r["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("You are Writer")
        })
        .count();
    assert_eq!(writer, 1, "the draft was kept, not asked again");
    assert_eq!(
        requests.len(),
        3,
        "draft, final, the revision: nothing asked twice"
    );
    let revision = requests.last().unwrap();
    let last = revision["messages"].as_array().unwrap().last().unwrap();
    assert!(
        last["content"]
            .as_str()
            .unwrap()
            .contains("Make it shorter."),
        "{last}"
    );

    // No open request: answering again is a conflict that says why.
    let (status, v) = server
        .post(
            &format!("/v1/runs/{id}/approvals/final"),
            &json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["hint"].as_str().unwrap().contains("awaiting_approval"),
        "{v}"
    );
    server.stop().await;
}

/// A rejection ends the task `rejected` and the run `failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_task_fails_the_run() {
    let model = memo_model();
    let (_d, dir) = tempdir();
    let server = start(config(&dir)).await;
    let id = server
        .run(json!({"crew": memo_crew(&model.url, true), "inputs": {"topic": "x"}}))
        .await;
    server.wait_status(&id, "awaiting_approval").await;
    let (status, _) = server
        .post(
            &format!("/v1/runs/{id}/approvals/final"),
            &json!({"decision": "reject", "feedback": "Off topic."}),
        )
        .await;
    assert_eq!(status, 202);
    let run = server.wait_status(&id, "failed").await;
    assert_eq!(run["tasks"][1]["status"], "rejected");
    assert!(
        run["tasks"][1]["error"]
            .as_str()
            .unwrap()
            .contains("Off topic.")
    );
    let (status, v) = server
        .post(
            &format!("/v1/runs/{id}/approvals/final"),
            &json!({"decision": "maybe"}),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    server.stop().await;
}

/// A server stopped mid-run interrupts the run; a new server on the same store resumes it: the
/// finished task is kept, the interrupted one runs again, the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_interrupted_by_a_server_stop_resumes_after_restart() {
    let editor_calls = Arc::new(AtomicUsize::new(0));
    let calls = editor_calls.clone();
    let model = FakeServer::start(move |r| {
        if r.is("Writer") {
            Reply::text("DRAFT")
        } else if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            // The first editor call outlasts the server.
            Reply::Delay(Duration::from_secs(30), Box::new(Reply::text("never")))
        } else {
            Reply::text("FINAL")
        }
    });
    let (_d, dir) = tempdir();
    let server = start(config(&dir)).await;
    let id = server
        .run(json!({"crew": memo_crew(&model.url, false), "inputs": {"topic": "x"}}))
        .await;
    // Stopped while the editor's call is at the model.
    for _ in 0..400 {
        if editor_calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(editor_calls.load(Ordering::SeqCst), 1);
    server.stop().await;

    let server = start(config(&dir)).await;
    let (_, run) = server.get(&format!("/v1/runs/{id}")).await;
    assert_eq!(run["status"], "interrupted", "{run}");
    assert_eq!(run["tasks"][0]["status"], "completed");
    let (status, v) = server
        .post(&format!("/v1/runs/{id}/resume"), &json!({}))
        .await;
    assert_eq!(status, 202, "{v}");
    let run = server.wait_status(&id, "completed").await;
    assert_eq!(run["tasks"][1]["output"], "FINAL");
    let writer = model
        .requests()
        .iter()
        .filter(|r| {
            r["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("You are Writer")
        })
        .count();
    assert_eq!(writer, 1, "the finished draft was kept");
    // Resuming a completed run is refused, saying why.
    let (status, v) = server
        .post(&format!("/v1/runs/{id}/resume"), &json!({}))
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(v["hint"].as_str().unwrap().contains("replay"), "{v}");
    server.stop().await;
}

/// `--max-runs 1 --max-queue 1`: the second run queues, the third is refused with 429 and
/// `Retry-After`; cancelling the running one lets the queued one start; a cancel of a queued
/// run keeps it from starting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_cancel_frees_a_slot() {
    let model = FakeServer::start(|r| {
        if r.task().contains("slow") {
            Reply::Delay(Duration::from_secs(30), Box::new(Reply::text("late")))
        } else {
            Reply::text("quick")
        }
    });
    let (_d, dir) = tempdir();
    let mut cfg = config(&dir);
    cfg.max_runs = 1;
    cfg.max_queue = 1;
    let server = start(cfg).await;
    let crew = |what: &str| {
        json!({"crew": {
            "name": "one",
            "llm": {"model": "gpt-test", "base_url": model.url},
            "agents": [{"id": "a", "role": "Worker", "goal": "g"}],
            "tasks": [{"id": "t", "agent": "a", "description": what}]
        }})
    };
    let (s1, first) = server.post("/v1/runs", &crew("a slow job")).await;
    assert_eq!((s1, first["status"].as_str()), (201, Some("running")));
    let (s2, second) = server.post("/v1/runs", &crew("a quick job")).await;
    assert_eq!((s2, second["status"].as_str()), (201, Some("queued")));
    assert_eq!(second["queue_position"], 0);
    let r = server
        .http
        .post(format!("{}/v1/runs", server.url))
        .json(&crew("a third job"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let v: Value = r.json().await.unwrap();
    assert!(v["hint"].as_str().unwrap().contains("--max-queue"), "{v}");

    let first = first["id"].as_str().unwrap().to_string();
    let second = second["id"].as_str().unwrap().to_string();
    let (status, _) = server
        .post(&format!("/v1/runs/{first}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 202);
    let run = server.wait_status(&first, "interrupted").await;
    assert_eq!(run["tasks"][0]["status"], "cancelled", "{run}");
    let run = server.wait_status(&second, "completed").await;
    assert_eq!(run["tasks"][0]["output"], "quick");
    // A finished run has nothing to cancel.
    let (status, v) = server
        .post(&format!("/v1/runs/{second}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 409, "{v}");
    server.stop().await;
}

/// A crew that fails validation is refused with 422 and the same located diagnostics the CLI
/// prints; an unknown crew name and an unknown document are refused with what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_crew_is_refused_with_located_diagnostics() {
    let (_d, dir) = tempdir();
    let server = start(config(&dir)).await;
    let (status, v) = server
        .post(
            "/v1/runs",
            &json!({"crew": {
                "name": "bad",
                "agents": [{"id": "a", "role": "r", "goal": "g"}],
                "tasks": [{"id": "t", "agent": "nobody", "description": "d"},
                          {"id": "u", "agent": "a", "descripton": "typo"}]
            }}),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    let diags = v["diagnostics"].as_array().unwrap();
    let paths: Vec<&str> = diags.iter().map(|d| d["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"tasks[0].agent"), "{paths:?}");
    assert!(paths.iter().any(|p| p.starts_with("tasks[1]")), "{paths:?}");
    assert!(
        diags
            .iter()
            .all(|d| d["line"].as_u64().unwrap() > 0 && d["hint"].is_string())
    );

    let (status, v) = server
        .post("/v1/runs", &json!({"crew": "no-such-crew"}))
        .await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = server
        .post(
            "/v1/runs",
            &json!({"crew": memo_crew("http://127.0.0.1:9/v1", false), "inputs": {"topic": "x"},
                    "documents": ["doc-0000"]}),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    assert!(v["hint"].as_str().unwrap().contains("/v1/documents"), "{v}");
    // An inline crew starts no program on the server: refused before anything is started.
    let marker = std::env::temp_dir().join(format!("troupe-api-mcp-{}", std::process::id()));
    let mut crew = memo_crew("http://127.0.0.1:9/v1", false);
    crew["mcp_servers"] = json!([{"id": "x", "command": "touch", "args": [marker]}]);
    let (status, v) = server
        .post("/v1/runs", &json!({"crew": crew, "inputs": {"topic": "x"}}))
        .await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("mcp_servers"), "{v}");
    assert!(v["hint"].as_str().unwrap().contains("--crews"), "{v}");
    assert!(!marker.exists(), "the server ran the inline crew's command");
    let (status, v) = server.post("/v1/runs", &json!({"crew": 42})).await;
    assert_eq!(status, 400, "{v}");
    let r = server
        .http
        .post(format!("{}/v1/runs", server.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    server.stop().await;
}

/// With a token, every request needs it: 401 (with a hint) without; the header or the cookie
/// the page gets from `/?token=…` with. A non-loopback address without a token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_checked_on_every_request() {
    let (_d, dir) = tempdir();
    let mut cfg = config(&dir);
    let refused = cfg.check_bind("0.0.0.0:7700".parse().unwrap());
    assert!(refused.unwrap_err().to_string().contains("--token-env"));
    assert!(cfg.check_bind("127.0.0.1:7700".parse().unwrap()).is_ok());
    cfg.token = Some("s3cret-token".into());
    assert!(cfg.check_bind("0.0.0.0:7700".parse().unwrap()).is_ok());
    let server = start(cfg).await;
    for path in ["/v1/runs", "/v1/crews", "/v1/openapi.json", "/"] {
        let (status, v) = server.get(path).await;
        assert_eq!(status, 401, "{path}");
        assert!(v["hint"].as_str().unwrap().contains("Bearer"), "{v}");
    }
    let r = server
        .http
        .get(format!("{}/v1/runs", server.url))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = server
        .http
        .get(format!("{}/v1/runs", server.url))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(format!("{}/?token=s3cret-token", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let r = no_redirects
        .get(format!("{}/v1/runs", server.url))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    server.stop().await;
}

/// Uploads over `--max-upload-mb` get 413 with a hint; JSON bodies over `--max-body-kb` too;
/// a document within the cap gets an id a run can name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let (_d, dir) = tempdir();
    let mut cfg = config(&dir);
    cfg.max_upload_mb = 1;
    cfg.max_body_kb = 16;
    let server = start(cfg).await;
    let big = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![b'a'; 2 << 20]).file_name("big.txt"),
    );
    let r = server
        .http
        .post(format!("{}/v1/documents", server.url))
        .multipart(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["hint"].as_str().unwrap().contains("--max-upload-mb"),
        "{v}"
    );

    let small = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"The budget grows by 4%.".to_vec())
            .file_name("../../memo.txt"),
    );
    let r = server
        .http
        .post(format!("{}/v1/documents", server.url))
        .multipart(small)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["name"], "memo.txt");
    assert!(v[0]["id"].as_str().unwrap().starts_with("doc-"));

    let (status, v) = server
        .post("/v1/runs", &json!({"crew": {"name": "x".repeat(20 << 10)}}))
        .await;
    assert_eq!(status, 413, "{v}");
    assert!(v["hint"].as_str().unwrap().contains("--max-body-kb"), "{v}");
    server.stop().await;
}

/// The OpenAPI document lists every endpoint the server has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_endpoints() {
    let (_d, dir) = tempdir();
    let server = start(config(&dir)).await;
    let (status, doc) = server.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/crews",
        "/v1/documents",
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/files/{name}",
        "/v1/runs/{id}/cancel",
        "/v1/runs/{id}/resume",
        "/v1/runs/{id}/events",
        "/v1/runs/{id}/approvals/{task}",
    ] {
        assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys());
    }
    assert!(paths["/v1/runs"].get("post").is_some());
    server.stop().await;
}
