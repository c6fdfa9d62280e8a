//! Every run is in the run store: `troupe runs` lists it, `troupe show` shows its tasks, the
//! store holds every event and every model call; a run whose process was killed is `crashed`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::json;
use troupe_testkit::{FakeServer, Reply};

fn crew(dir: &Path) -> std::path::PathBuf {
    crew_file(
        dir,
        "stored.json",
        &json!({
            "name": "stored",
            "llm": {"model": "m"},
            "agents": [
                {"id": "researcher", "role": "Researcher", "goal": "G"},
                {"id": "writer", "role": "Writer", "goal": "G"}
            ],
            "tasks": [
                {"id": "research", "agent": "researcher", "description": "Research tides"},
                {"id": "write", "agent": "writer", "description": "Write", "context": ["research"],
                 "output_file": "report.md"}
            ]
        }),
    )
}

fn troupe_in(server: &str, store: &Path) -> std::process::Command {
    let mut c = troupe(server);
    c.env("TROUPE_STORE", store);
    c
}

#[test]
fn a_run_is_stored_listed_and_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("runs.db");
    let server = FakeServer::start(|r| Reply::text(&format!("Notes on: {}", r.task())));
    let out = tmp.path().join("out");
    let o = troupe(&server.url)
        .arg("run")
        .arg(crew(tmp.path()))
        .arg("--out")
        .arg(&out)
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("in the store"), "{err}");

    let runs = troupe(&server.url)
        .args(["runs", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(runs.status.code(), Some(0), "{}", text(&runs));
    let listed = String::from_utf8_lossy(&runs.stdout).to_string();
    let row = listed.lines().nth(1).unwrap_or_default().to_string();
    assert!(
        row.contains("stored") && row.contains("completed"),
        "{listed}"
    );
    let id = row.split_whitespace().next().unwrap().to_string();

    let show = troupe(&server.url)
        .args(["show", &id[..13], "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(show.status.code(), Some(0), "{}", text(&show));
    let shown = String::from_utf8_lossy(&show.stdout).to_string();
    assert!(shown.contains(&format!("run {id}")), "{shown}");
    assert!(shown.contains("status    completed"), "{shown}");
    for task in ["research", "write"] {
        assert!(
            shown
                .lines()
                .any(|l| l.trim_start().starts_with(task) && l.contains("completed")),
            "{shown}"
        );
    }
    // Every event of events.jsonl, every model call the server answered.
    let events = events(&out);
    let requests = server.requests().len();
    assert!(
        shown.contains(&format!(
            "recorded  {} event(s), {requests} model call(s)",
            events.len()
        )),
        "{shown}"
    );
}

#[test]
fn a_killed_run_is_crashed_not_running() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("runs.db");
    // The first answer never comes in time: the run is killed while it waits.
    let server = FakeServer::start(|_| Reply::text("late").after(Duration::from_secs(600)));
    let mut child = troupe_in(&server.url, &store)
        .arg("run")
        .arg(crew(tmp.path()))
        .arg("--out")
        .arg(tmp.path().join("out"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until the run is in flight: the server has its first request.
    let mut waited = 0;
    while server.requests().is_empty() {
        assert!(waited < 600, "the run never called the model");
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    let list = |status: &str| {
        let o = troupe_in(&server.url, &store)
            .args(["runs", "--status", status])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .count()
            .saturating_sub(1)
    };
    assert_eq!(list("running"), 1);
    child.kill().unwrap(); // SIGKILL: nothing of Troupe runs after it
    child.wait().unwrap();
    assert_eq!(list("running"), 0);
    assert_eq!(list("crashed"), 1);
    let o = troupe_in(&server.url, &store)
        .args(["runs", "--status", "crashed"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let show = troupe_in(&server.url, &store)
        .args(["show", &id])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout).to_string();
    assert!(shown.contains("status    crashed"), "{shown}");
    assert!(
        shown.contains(&format!("`troupe resume {}` continues it", &id[..13])),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("pid {} on", child.id())) && shown.contains("is gone"),
        "{shown}"
    );
}

#[test]
fn an_unknown_run_is_a_user_error_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("runs.db");
    let o = troupe_in("http://127.0.0.1:9/v1", &store)
        .args(["show", "0000"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no run `0000` in the store"), "{err}");
    assert!(err.contains("hint: `troupe runs` lists"), "{err}");
}

/// `limits.keep_runs`: a new run deletes the oldest ended runs of its crew beyond the limit,
/// and says so in an event that names the key.
#[test]
fn old_runs_are_pruned_to_keep_runs_with_an_event() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("runs.db");
    let server = FakeServer::start(|r| Reply::text(&format!("Notes on: {}", r.task())));
    let mut value = read_json(&crew(tmp.path()));
    value["limits"] = json!({"keep_runs": 1});
    let file = crew_file(tmp.path(), "kept.json", &value);
    let mut ids = Vec::new();
    for i in 0..3 {
        let out = tmp.path().join(format!("out{i}"));
        let o = troupe_in(&server.url, &store)
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let pruned = events(&out)
            .into_iter()
            .filter(|e| e["type"] == "runs_pruned")
            .collect::<Vec<_>>();
        // Before the third run two runs have ended; one is kept.
        match i {
            2 => {
                assert_eq!(pruned.len(), 1, "{pruned:?}");
                assert_eq!(pruned[0]["removed"], 1);
                assert_eq!(pruned[0]["key"], "limits.keep_runs");
            }
            _ => assert!(pruned.is_empty(), "run {i}: {pruned:?}"),
        }
        let s = troupe_store::Store::open(&store).unwrap();
        ids = s
            .runs(&troupe_store::RunFilter::default())
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
    }
    assert_eq!(ids.len(), 2, "{ids:?}");
}
