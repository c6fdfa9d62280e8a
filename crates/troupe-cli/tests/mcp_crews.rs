//! MCP servers in crews, end to end through the `troupe` binary, against reference servers
//! nobody here wrote (installed, pinned, by scripts/mcp-servers.sh): `@modelcontextprotocol/
//! server-everything` (npm) over stdio and over streamable HTTP, and `mcp-server-time` (PyPI)
//! over stdio; the model is the fake server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use troupe_testkit::{FakeServer, Reply};

fn everything() -> PathBuf {
    mcp_installed("node_modules/.bin/mcp-server-everything")
}

/// Processes whose environment holds `marker` (this test's servers, and anything they started).
fn processes_marked(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if String::from_utf8_lossy(&env).contains(marker) {
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    found
}

/// No process holds `marker` (a signalled process may take a moment to go).
fn assert_none_marked(marker: &str) {
    let mut left = processes_marked(marker);
    for _ in 0..20 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = processes_marked(marker);
    }
    assert!(left.is_empty(), "left running: {left:?}");
}

/// The last message of a request to the model (a tool's result), unfenced.
fn last_message(request: &Value) -> String {
    let last = request["messages"].as_array().unwrap().last().unwrap();
    troupe_testkit::unfence(last["content"].as_str().unwrap()).to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An agent uses a stdio server's tools: a listed tool's result reaches the model, a tool of
/// the server the agent did not list is refused without reaching the server, the server's
/// environment holds only what the crew gave it, and when the run ends nothing it started is
/// left running.
#[test]
fn an_agent_uses_the_reference_server_over_stdio() {
    let marker = format!("troupe-mcp-test-{}", std::process::id());
    let server = FakeServer::start(|r| match r.tool_results().len() {
        0 => Reply::tool_call("everything.get-env", "{}"),
        1 => Reply::tool_call("everything.get-sum", r#"{"a": 1, "b": 2}"#),
        2 => Reply::tool_call("everything.echo", r#"{"message": "hello from the crew"}"#),
        _ => Reply::text("done"),
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "crew.json",
        &json!({
            "name": "mcp-stdio",
            "mcp_servers": [{
                "id": "everything",
                "command": everything(),
                "args": ["stdio"],
                "env": {"TEST_MARKER": marker},
                "env_from": ["PATH"]
            }],
            "agents": [{"id": "a", "role": "Researcher", "goal": "look things up",
                        "tools": ["everything.echo", "everything.get-env"]}],
            "tasks": [{"id": "t", "agent": "a", "description": "Use the tools."}]
        }),
    );
    let (_out_dir, out) = run_completed(&server.url, &crew, &[]);

    let requests = server.requests();
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["everything.echo", "everything.get-env"]);
    // The server's own schema is what the model was offered.
    assert_eq!(
        requests[0]["tools"][0]["function"]["parameters"]["required"],
        json!(["message"])
    );
    let result = |i: usize| last_message(&requests[i]);
    // get-env: the process's environment, which is only what the crew listed.
    let env: Value = serde_json::from_str(&result(1)).unwrap();
    let mut names: Vec<&str> = env
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["PATH", "TEST_MARKER"], "{env}");
    assert_eq!(env["TEST_MARKER"], marker.as_str());
    // get-sum is the server's but not the agent's: refused before it reaches the server.
    assert!(
        result(2).contains("there is no tool `everything.get-sum`"),
        "{}",
        result(2)
    );
    assert_eq!(result(3), "Echo: hello from the crew");

    let ev = events(&out);
    let started = of_type(&ev, "mcp_server_started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["transport"], "stdio");
    assert!(
        started[0]["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("get-sum"))
    );
    let calls = of_type(&ev, "mcp_call");
    let called: Vec<&str> = calls.iter().map(|c| c["tool"].as_str().unwrap()).collect();
    assert_eq!(called, ["get-env", "echo"]);
    assert!(
        calls
            .iter()
            .all(|c| c["ok"] == true && c["duration_ms"].is_u64())
    );

    // The run is over: the server and anything it started are gone.
    assert_none_marked(&marker);
}

/// The PyPI reference server: a whole process group is stopped at the run's end, a grandchild
/// included (the server is started by a shell that leaves a `sleep` behind).
#[test]
fn a_local_servers_whole_process_group_is_stopped() {
    let time = mcp_installed("venv/bin/mcp-server-time");
    let marker = format!("troupe-mcp-group-{}", std::process::id());
    let server = FakeServer::start(|r| match r.tool_results().len() {
        0 => Reply::tool_call("time.get_current_time", r#"{"timezone": "UTC"}"#),
        _ => Reply::text("done"),
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "crew.json",
        &json!({
            "name": "mcp-time",
            "mcp_servers": [{
                "id": "time",
                "command": "sh",
                "args": ["-c", format!(
                    "echo 'time server starting' >&2; sleep 600 & exec '{}'",
                    time.display()
                )],
                "env": {"TEST_MARKER": marker, "TZ": "UTC"},
                "env_from": ["PATH"]
            }],
            "agents": [{"id": "a", "role": "Clerk", "goal": "tell the time",
                        "tools": ["time.*"]}],
            "tasks": [{"id": "t", "agent": "a", "description": "What time is it?"}]
        }),
    );
    let (_out_dir, out) = run_completed(&server.url, &crew, &[]);
    // What the server wrote on stderr is kept as events.
    let ev = events(&out);
    let said: Vec<&str> = of_type(&ev, "mcp_stderr")
        .iter()
        .map(|e| e["line"].as_str().unwrap())
        .collect();
    assert!(said.contains(&"time server starting"), "{said:?}");
    let requests = server.requests();
    let answer: Value = serde_json::from_str(&last_message(&requests[1])).unwrap();
    assert_eq!(answer["timezone"], "UTC", "{answer}");
    assert!(
        answer["datetime"].as_str().unwrap().contains('T'),
        "{answer}"
    );
    // The shell's `sleep` was in the server's process group: stopped with it.
    assert_none_marked(&marker);
}

/// `troupe validate` starts each server and lists its tools: an unknown tool gets a
/// did-you-mean from the server's real tools, a server that fails to start is reported with
/// what it wrote on stderr, an unset header variable is named; all at once.
#[test]
fn validate_checks_tools_against_the_servers_and_reports_a_failed_start() {
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "crew.json",
        &json!({
            "name": "mcp-bad",
            "mcp_servers": [
                {"id": "everything", "command": everything(), "args": ["stdio"],
                 "env_from": ["PATH"]},
                {"id": "broken", "command": "sh",
                 "args": ["-c", "echo 'config.toml: no such file' >&2; exit 3"]},
                {"id": "remote", "url": "http://127.0.0.1:9/mcp",
                 "headers_env": {"Authorization": "TROUPE_TEST_UNSET_VAR"}}
            ],
            "agents": [{"id": "a", "role": "R", "goal": "g", "tools": ["everything.ecoh"]}],
            "tasks": [{"id": "t", "agent": "a", "description": "d"}]
        }),
    );
    let o = troupe("http://127.0.0.1:9/v1")
        .env_remove("TROUPE_TEST_UNSET_VAR")
        .arg("validate")
        .arg(&crew)
        .output()
        .unwrap();
    let said = text(&o);
    assert_eq!(o.status.code(), Some(2), "{said}");
    assert!(said.contains("no tool matches `everything.ecoh`"), "{said}");
    assert!(said.contains("everything.echo"), "did-you-mean: {said}");
    assert!(said.contains("MCP server `broken`"), "{said}");
    assert!(
        said.contains("config.toml: no such file"),
        "stderr tail: {said}"
    );
    assert!(
        said.contains(r#"run `sh -c 'echo '\''config.toml: no such file'\'' >&2; exit 3'`"#),
        "the command to try, as a shell takes it: {said}"
    );
    assert!(said.contains("TROUPE_TEST_UNSET_VAR"), "{said}");
    assert!(said.contains("hint:"), "{said}");
}

/// Streamable HTTP: the reference server started on a free port; a tool result reaches the
/// model; a call longer than `limits.call_timeout_ms` fails (not retried) with a `limit_hit`
/// naming the key.
#[test]
fn an_agent_uses_a_remote_server_with_a_call_timeout() {
    let port = free_port();
    let mut http = std::process::Command::new(everything())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Up when it accepts connections.
    let up = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let server = FakeServer::start(|r| match r.tool_results().len() {
        0 => Reply::tool_call("remote.echo", r#"{"message": "over http"}"#),
        1 => Reply::tool_call(
            "remote.trigger-long-running-operation",
            r#"{"duration": 5, "steps": 5}"#,
        ),
        _ => Reply::text("done"),
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "crew.json",
        &json!({
            "name": "mcp-http",
            "mcp_servers": [{
                "id": "remote",
                "url": format!("http://127.0.0.1:{port}/mcp"),
                "headers_env": {"X-Test-Token": "TROUPE_TEST_TOKEN"},
                "limits": {"call_timeout_ms": 300}
            }],
            "agents": [{"id": "a", "role": "R", "goal": "g", "tools": ["remote.*"]}],
            "tasks": [{"id": "t", "agent": "a", "description": "d"}]
        }),
    );
    let tmp_out = tempfile::tempdir().unwrap();
    let out = tmp_out.path().join("out");
    let o = troupe(&server.url)
        .env("TROUPE_TEST_TOKEN", "secret")
        .arg("run")
        .arg(&crew)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let _ = http.kill();
    let _ = http.wait();
    assert!(up, "the reference server did not start on port {port}");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let requests = server.requests();
    let result = |i: usize| last_message(&requests[i]);
    assert_eq!(result(1), "Echo: over http");
    assert!(
        result(2).contains("did not answer within 300 ms"),
        "{}",
        result(2)
    );
    let ev = events(&out);
    let started = of_type(&ev, "mcp_server_started");
    assert_eq!(started[0]["transport"], "http");
    let hits = of_type(&ev, "limit_hit");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["key"], "mcp_servers[0].limits.call_timeout_ms");
    let calls = of_type(&ev, "mcp_call");
    assert_eq!(calls.len(), 2, "one call each, never retried: {calls:?}");
    assert_eq!(calls[1]["ok"], false);
    assert_eq!(calls[1]["limit"], "call_timeout_ms");
}

/// The example crew `crews/contract-deadlines.json` as shipped: the manager asks the reference
/// time server for today's date, writes a cited memo, counsel approves it.
#[test]
fn the_contract_deadlines_crew_asks_the_time_server() {
    mcp_installed("venv/bin/mcp-server-time");
    let cited = cited_statement(
        &repo().join("examples/documents/agreement-versions/services-agreement-2025.md"),
    );
    let server = FakeServer::start(move |r| {
        if r.is("Contract manager") {
            if r.tool_results().is_empty() {
                Reply::tool_call("time.get_current_time", r#"{"timezone": "UTC"}"#)
            } else {
                Reply::text(&cited)
            }
        } else if r.is("General counsel") {
            Reply::text(r#"{"verdict": "approve", "feedback": "Correct."}"#)
        } else {
            Reply::error(400, None)
        }
    });
    let (_tmp, out) = run_completed(
        &server.url,
        &repo().join("crews/contract-deadlines.json"),
        &[],
    );
    let manager = requests_of(server.requests(), "Contract manager");
    let now: Value = serde_json::from_str(&last_message(&manager[1])).unwrap();
    assert_eq!(now["timezone"], "UTC", "{now}");
    assert!(out.join("deadlines.md").is_file());
    let ev = events(&out);
    assert_eq!(of_type(&ev, "mcp_call").len(), 1);
}

/// A run that fails stops its servers too, whole process groups included.
#[test]
fn a_failed_run_leaves_no_server_behind() {
    let time = mcp_installed("venv/bin/mcp-server-time");
    let marker = format!("troupe-mcp-failed-{}", std::process::id());
    let server = FakeServer::start(|_| Reply::error(400, None));
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "crew.json",
        &json!({
            "name": "mcp-fails",
            "llm": {"max_attempts": 1},
            "mcp_servers": [{
                "id": "time",
                "command": "sh",
                "args": ["-c", format!("sleep 600 & exec '{}'", time.display())],
                "env": {"TEST_MARKER": marker}
            }],
            "agents": [{"id": "a", "role": "Clerk", "goal": "g", "tools": ["time.*"]}],
            "tasks": [{"id": "t", "agent": "a", "description": "d"}]
        }),
    );
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &crew, &out, &[]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert_none_marked(&marker);
}
