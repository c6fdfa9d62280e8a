//! `troupe mcp serve` driven by the official Python MCP SDK (PyPI `mcp`, pinned and installed by
//! scripts/mcp-servers.sh), the client nobody here wrote: it lists the tools, calls plugin tools
//! (a result, a grant denial and a limit as tool errors naming their keys), and runs a crew tool
//! against the fake model server, with a progress notification per task.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};
use troupe_testkit::{FakeServer, Reply};

/// Runs the SDK's client on `plan` and returns what it saw, and the server's stderr (the
/// client passes it on).
fn drive_logged(dir: &Path, plan: &Value) -> (Value, String) {
    let plan_file = dir.join("plan.json");
    std::fs::write(&plan_file, plan.to_string()).unwrap();
    let o = std::process::Command::new(mcp_installed("venv/bin/python"))
        .arg(repo().join("crates/troupe-cli/tests/mcp/client.py"))
        .arg(&plan_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let seen = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (seen, String::from_utf8_lossy(&o.stderr).into_owned())
}

fn drive(dir: &Path, plan: &Value) -> Value {
    drive_logged(dir, plan).0
}

/// `troupe mcp serve ARGS` as the client starts it: the environment of `troupe(base_url)`.
fn stdio(base_url: &str, args: &[&str], cwd: &Path) -> Value {
    let cmd = troupe(base_url);
    let mut env: serde_json::Map<String, Value> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_string(), json!(v?.to_str()?))))
        .collect();
    env.insert("PATH".into(), json!(std::env::var("PATH").unwrap()));
    let args = [["mcp", "serve"].as_slice(), args].concat();
    json!({
        "command": env!("CARGO_BIN_EXE_troupe"),
        "args": args,
        "env": env,
        "cwd": cwd,
    })
}

fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn call(out: &Value, n: usize) -> &Value {
    let c = &out["calls"][n];
    assert!(c.get("exception").is_none(), "call {n} raised: {c}");
    &c["result"]
}

/// Plugins named with `--plugin`, their grants from a policy: each tool listed with its own
/// schema; a call's result; a grant the policy does not give and a deadline it sets come back
/// as tool errors naming the key; the same plugin under a second id with the grant reads the
/// served documents; a plugin the policy does not list is served with no grants, and one the
/// command line does not name is not served; arguments that do not fit the schema are refused
/// before the plugin runs.
#[test]
fn an_mcp_client_calls_sandboxed_plugins_with_the_grants_of_a_policy() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("kv.wat"), kv_wat()).unwrap();
    std::fs::write(tmp.path().join("loop.wat"), looping_wat()).unwrap();
    std::fs::write(
        tmp.path().join("memo.txt"),
        "The tenant pays the rent monthly. The rent rises yearly. Rent, rent, rent.",
    )
    .unwrap();
    let keywords = built("plugins/keywords-zig/keywords.wasm");
    let policy = crew_file(
        tmp.path(),
        "policy.json",
        &json!({
            "plugins": [
                {"id": "spin", "path": "loop.wat", "limits": {"deadline_ms": 100}},
                {"id": "keywords", "path": keywords},
                {"id": "reader", "path": keywords, "grants": {"documents": true}},
                {"id": "stats", "path": built("plugins/textstats-c/textstats.wasm")}
            ]
        }),
    );
    let server = stdio(
        "http://unused",
        &[
            "--plugin",
            "kv.wat",
            "loop.wat",
            keywords.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--docs",
            "memo.txt",
        ],
        tmp.path(),
    );
    let (out, log) = drive_logged(
        tmp.path(),
        &json!({
            "stdio": server,
            "calls": [
                {"tool": "keywords.rank", "arguments": {"text": "rent rent rent deposit", "top": 1}},
                {"tool": "keywords.rank", "arguments": {"document": "memo.txt"}},
                {"tool": "reader.rank", "arguments": {"document": "memo.txt", "top": 1}},
                {"tool": "kv.get", "arguments": {}},
                {"tool": "spin.get", "arguments": {}},
                {"tool": "keywords.rank", "arguments": {"text": 5}}
            ]
        }),
    );
    assert_eq!(out["server"]["serverInfo"]["name"], "troupe");
    let mut names: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["keywords.rank", "kv.get", "reader.rank", "spin.get"]
    );
    assert!(
        log.contains("plugin `kv.wat` is not in the policy") && log.contains("no grants"),
        "{log}"
    );
    let rank = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "keywords.rank")
        .unwrap();
    assert!(
        rank["inputSchema"]["properties"]["text"].is_object(),
        "{rank}"
    );

    let ok = call(&out, 0);
    assert_ne!(ok["isError"], true, "{ok}");
    let ranked: Value = serde_json::from_str(&text_of(ok)).unwrap();
    assert_eq!(ranked["keywords"][0]["term"], "rent", "{ranked}");

    let denied = call(&out, 1);
    assert_eq!(denied["isError"], true, "{denied}");
    assert!(
        text_of(denied).contains("`\"documents\": true`"),
        "{}",
        text_of(denied)
    );

    let granted = call(&out, 2);
    assert_ne!(granted["isError"], true, "{granted}");
    let ranked: Value = serde_json::from_str(&text_of(granted)).unwrap();
    assert_eq!(ranked["keywords"][0]["term"], "rent", "{ranked}");

    let kv = call(&out, 3);
    assert_eq!(kv["isError"], true, "{kv}");
    assert!(text_of(kv).contains("`\"kv\": true`"), "{}", text_of(kv));

    let spin = call(&out, 4);
    assert_eq!(spin["isError"], true, "{spin}");
    assert!(
        text_of(spin).contains(
            "limit `plugins[spin].limits.deadline_ms` reached (100): raise `limits.deadline_ms` in the plugin's entry in the policy"
        ),
        "{}",
        text_of(spin)
    );

    let wrong = call(&out, 5);
    assert_eq!(wrong["isError"], true, "{wrong}");
    assert!(
        text_of(wrong).contains("do not match the tool's inputSchema"),
        "{}",
        text_of(wrong)
    );
    // Five calls ran a plugin (each logged as a `plugin_call` event); the sixth did not.
    assert_eq!(log.matches(r#""type":"plugin_call""#).count(), 5, "{log}");
}

/// A crew as a tool: its inputs are the tool's arguments (required when the crew has no
/// default), a call runs it against the model with the input filled in, reports each task as a
/// progress notification, and answers with the final task's output and the run id of a stored
/// run that `troupe show` knows.
#[test]
fn an_mcp_client_runs_a_crew_with_progress_per_task() {
    let server = FakeServer::start(|r| {
        if r.is("Writer") {
            Reply::text("The report on the topic.")
        } else {
            Reply::text("Notes on the topic.")
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "crew.json",
        &json!({
            "name": "brief",
            "description": "Writes a brief on a topic.",
            "inputs": {"tone": "plain"},
            "agents": [
                {"id": "researcher", "role": "Researcher", "goal": "find facts"},
                {"id": "writer", "role": "Writer", "goal": "write"}
            ],
            "tasks": [
                {"id": "notes", "agent": "researcher", "description": "Collect notes on {topic}."},
                {"id": "brief", "agent": "writer", "description": "Write a {tone} brief on {topic}.", "context": ["notes"]}
            ]
        }),
    );
    let out = drive(
        tmp.path(),
        &json!({
            "stdio": stdio(&server.url, &["--crew", crew.to_str().unwrap(), "--out", "mcp-runs"], tmp.path()),
            "calls": [{"tool": "brief", "arguments": {"topic": "tide tables"}}]
        }),
    );
    let tool = &out["tools"][0];
    assert_eq!(tool["name"], "brief");
    assert!(
        tool["description"]
            .as_str()
            .unwrap()
            .starts_with("Writes a brief on a topic."),
        "{tool}"
    );
    assert_eq!(tool["inputSchema"]["required"], json!(["topic"]));
    assert_eq!(
        tool["inputSchema"]["properties"]["tone"]["default"],
        "plain"
    );

    let result = call(&out, 0);
    assert_ne!(result["isError"], true, "{result}");
    assert_eq!(result["content"][0]["text"], "The report on the topic.");
    let run_id = result["structuredContent"]["run_id"].as_str().unwrap();
    assert_eq!(result["structuredContent"]["status"], "completed");
    assert!(text_of(result).contains(run_id));

    // The input reached the model.
    let asked = server
        .requests()
        .iter()
        .any(|r| r.to_string().contains("Collect notes on tide tables."));
    assert!(asked, "{:#?}", server.requests());

    // One notification as the run starts, one as each task finishes, counting up to the total.
    let progress = out["calls"][0]["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 3, "{progress:#?}");
    assert_eq!(progress[0]["progress"], 0.0);
    assert_eq!(progress[0]["message"], "started: 2 task(s)");
    let finished: Vec<&Value> = progress
        .iter()
        .filter(|p| {
            p["message"]
                .as_str()
                .unwrap()
                .ends_with("completed (researcher)")
                || p["message"]
                    .as_str()
                    .unwrap()
                    .ends_with("completed (writer)")
        })
        .collect();
    assert_eq!(finished.len(), 2, "{progress:#?}");
    assert_eq!(finished[1]["progress"], 2.0);
    assert_eq!(finished[1]["total"], 2.0);
    assert!(
        progress
            .windows(2)
            .all(|w| w[0]["progress"].as_f64() < w[1]["progress"].as_f64()),
        "{progress:#?}"
    );

    // The run is stored like any other, with its outputs where the server was told.
    let o = troupe(&server.url).args(["show", run_id]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("completed"),
        "{}",
        text(&o)
    );
    let out_dir = PathBuf::from(result["structuredContent"]["out_dir"].as_str().unwrap());
    assert!(
        tmp.path().join(&out_dir).join("run.json").is_file(),
        "{}",
        out_dir.display()
    );
}

/// `troupe serve --mcp-policy`: the same plugin tools over streamable HTTP at `/mcp`, behind the
/// server's token.
#[test]
fn an_mcp_client_calls_plugins_at_the_servers_mcp_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("kv.wat"), kv_wat()).unwrap();
    let keywords = built("plugins/keywords-zig/keywords.wasm");
    let policy = crew_file(
        tmp.path(),
        "policy.json",
        &json!({"plugins": [
            {"id": "kv", "path": "kv.wat"},
            {"id": "keywords", "path": keywords}
        ]}),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = troupe("http://unused")
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .arg("--mcp-policy")
        .arg(&policy)
        .arg("--store")
        .arg(tmp.path().join("runs.db"))
        .args(["--token-env", "MCP_TEST_TOKEN"])
        .env("MCP_TEST_TOKEN", "s3cret")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // Listening once it says so.
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0);
    }
    let _server = Stop(child);
    assert!(line.contains("MCP: /mcp, 2 tool(s)"), "{line}");

    let url = format!("http://127.0.0.1:{port}/mcp");
    let out = drive(
        tmp.path(),
        &json!({
            "url": url,
            "headers": {"Authorization": "Bearer s3cret"},
            "calls": [
                {"tool": "keywords.rank", "arguments": {"text": "tide tide moon", "top": 1}},
                {"tool": "kv.get", "arguments": {}}
            ]
        }),
    );
    assert_eq!(out["tools"].as_array().unwrap().len(), 2, "{out}");
    let ranked: Value = serde_json::from_str(&text_of(call(&out, 0))).unwrap();
    assert_eq!(ranked["keywords"][0]["term"], "tide", "{ranked}");
    let kv = call(&out, 1);
    assert_eq!(kv["isError"], true, "{kv}");
    assert!(text_of(kv).contains("`\"kv\": true`"), "{}", text_of(kv));

    // Without the token, the endpoint answers 401 like the rest of the API; with it, a `Host`
    // that is not loopback (a rebound name) or a web page's `Origin` is refused.
    let raw = |headers: &str| {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
        write!(
            conn,
            "POST /mcp HTTP/1.1\r\n{headers}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    };
    assert!(raw("Host: 127.0.0.1\r\n").starts_with("HTTP/1.1 401"));
    let token = "Authorization: Bearer s3cret\r\n";
    assert!(raw(&format!("Host: 127.0.0.1:{port}\r\n{token}")).starts_with("HTTP/1.1 200"));
    assert!(raw(&format!("Host: evil.example\r\n{token}")).starts_with("HTTP/1.1 403"));
    assert!(
        raw(&format!(
            "Host: 127.0.0.1:{port}\r\n{token}Origin: http://evil.example\r\n"
        ))
        .starts_with("HTTP/1.1 403")
    );
}

/// The README's command: the example policy serves the seven shipped plugins, and the ones it
/// grants `documents` read the documents given with `--docs`.
#[test]
fn the_example_policy_serves_the_shipped_plugins() {
    built("plugins/keywords-zig/keywords.wasm");
    let tmp = tempfile::tempdir().unwrap();
    let server = stdio(
        "http://unused",
        &[
            "--policy",
            "plugins/policy.json",
            "--docs",
            "examples/documents/agreement-versions",
        ],
        &repo().canonicalize().unwrap(),
    );
    let out = drive(
        tmp.path(),
        &json!({
            "stdio": server,
            "calls": [{"tool": "keywords.rank",
                       "arguments": {"document": "services-agreement-2025.md", "top": 1}}]
        }),
    );
    let mut names: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "clausediff.diff",
            "definitions.terms",
            "entities.extract",
            "keywords.rank",
            "outline.outline",
            "tables.summarize",
            "textstats.stats"
        ]
    );
    let ranked: Value = serde_json::from_str(&text_of(call(&out, 0))).unwrap();
    assert_eq!(ranked["keywords"][0]["term"], "customer", "{ranked}");
}

/// Bad input stops the server before it speaks: every problem of the policy, located; nothing
/// to serve; a plugin that is not there.
#[test]
fn a_bad_policy_or_nothing_to_serve_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.json");
    std::fs::write(
        &policy,
        "{\n  \"plugins\": [\n    { \"id\": \"text\", \"path\": \"nope.wasm\" }\n  ]\n}\n",
    )
    .unwrap();
    let o = troupe("http://unused")
        .args(["mcp", "serve", "--policy"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("policy.json:3:"), "{err}");
    assert!(err.contains("reserved"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("2 errors in the policy file"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "stdout is the protocol's: {}",
        text(&o)
    );

    let o = troupe("http://unused")
        .args(["mcp", "serve"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("hint: name plugins with `--plugin FILE`"));

    let o = troupe("http://unused")
        .args(["mcp", "serve", "--plugin", "no/such.wasm"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read plugin `no/such.wasm`"));
}

/// A client that goes away while a crew runs (its stdin closed) leaves the run interrupted in
/// the store — resumable — not running forever or lost.
#[test]
fn a_crew_run_whose_client_goes_away_is_interrupted_and_stays_resumable() {
    use std::io::Write;
    let server =
        FakeServer::start(|_| Reply::text("too late").after(std::time::Duration::from_secs(60)));
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("slow-{}", std::process::id());
    let crew = crew_file(
        tmp.path(),
        "crew.json",
        &json!({
            "name": name,
            "agents": [{"id": "a", "role": "Researcher", "goal": "g"}],
            "tasks": [{"id": "t", "agent": "a", "description": "Think."}]
        }),
    );
    let mut child = troupe(&server.url)
        .args(["mcp", "serve", "--quiet", "--crew"])
        .arg(&crew)
        .arg("--out")
        .arg(tmp.path().join("runs"))
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        &format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
        ),
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    // The run is waiting for its model; then the client goes.
    for _ in 0..600 {
        if !server.requests().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(server.requests().len(), 1, "the run never asked its model");
    drop(stdin);
    let mut ended = None;
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            ended = Some(status);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if ended.is_none() {
        let _ = child.kill();
    }
    assert!(ended.is_some(), "the server did not end with its client");
    let o = troupe(&server.url)
        .args(["runs", "--crew", &name, "--status", "interrupted"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let listed = String::from_utf8_lossy(&o.stdout);
    assert_eq!(listed.matches(name.as_str()).count(), 1, "{}", text(&o));
}
