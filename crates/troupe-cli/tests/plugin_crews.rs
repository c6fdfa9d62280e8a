//! End to end with plugins: the `troupe` binary runs crews whose agents call WebAssembly tool
//! plugins (built from source by plugins/build.sh), against the fake model server; and the
//! `troupe plugin` commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Once;

use common::*;
use serde_json::{Value, json};
use troupe_testkit::{FakeServer, Reply};

/// Builds the plugins once per test binary (idempotent; installs the C toolchain if missing).
fn built(rel: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = std::process::Command::new(repo().join("plugins/build.sh"))
            .status()
            .unwrap();
        assert!(status.success(), "plugins/build.sh failed");
    });
    let p = repo().join(rel);
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// compare-documents: the editor measures the comparison with the C `textstats` plugin before
/// approving it; the tool's result reaches the model, the call is an event.
#[test]
fn an_agent_calls_the_c_textstats_plugin_in_a_crew() {
    built("plugins/textstats-c/textstats.wasm");
    let server = FakeServer::start(|r| {
        if r.is("Licence analyst") {
            Reply::text(
                &json!({"document": "d", "permits": [], "requires": [], "forbids": []}).to_string(),
            )
        } else if r.is("Open-source compliance lead") {
            Reply::text("BSD is short. Apache adds a patent grant. MPL is file-level copyleft.")
        } else if r.is("Technical editor") {
            if r.tool_results().is_empty() {
                Reply::tool_call(
                    "textstats.stats",
                    r#"{"text": "BSD is short. Apache adds a patent grant. MPL is file-level copyleft."}"#,
                )
            } else {
                Reply::text(r#"{"verdict": "approve", "feedback": "Readable."}"#)
            }
        } else {
            Reply::error(400, None)
        }
    });
    let (_tmp, out) = run_completed(
        &server.url,
        &repo().join("crews/compare-documents.json"),
        &[],
    );

    let editor = requests_of(server.requests(), "Technical editor");
    let tools: Vec<&str> = editor[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["textstats.stats"]);
    // The plugin's parameters schema is what the model was offered.
    assert_eq!(
        editor[0]["tools"][0]["function"]["parameters"]["required"],
        json!(["text"])
    );
    let result: Value = serde_json::from_str(
        editor[1]["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(result["words"], 12);
    assert_eq!(result["sentences"], 3);
    assert!(
        result["flesch_reading_ease"].as_f64().unwrap() > 0.0,
        "{result}"
    );

    let ev = events(&out);
    let calls = of_type(&ev, "plugin_call");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["plugin"], "textstats");
    assert_eq!(calls[0]["ok"], true);
    assert_eq!(calls[0]["logs"], json!(["info: measuring"]));
}

/// A WAT plugin that reads the key-value space: without `grants.kv` the call fails with the key
/// to add (recorded in the event); a plugin that loops is stopped at its deadline; both are tool
/// errors the agent sees, and the run goes on.
#[test]
fn grants_and_limits_of_plugins_come_from_the_crew_file() {
    let tmp = tempfile::tempdir().unwrap();
    // invoke: call kv-get("k"); on Err return it as the tool's error; on Ok return "ok".
    let describe = r#"{"name": "kv", "version": "1", "tools": [{"name": "get", "description": "d", "parameters": {"type": "object"}}]}"#;
    let kv = format!(
        r#"(module
  (import "troupe:plugin/host@0.1.0" "kv-get" (func $kv_get (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 32768))
  (data (i32.const 1024) "{escaped}")
  (data (i32.const 3000) "ok")
  (data (i32.const 3100) "k")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.const 7)) (i32.const -8)))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (func (export "describe") (result i32)
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.const {len}))
    (i32.const 16))
  (func (export "invoke") (param i32 i32 i32 i32) (result i32)
    (call $kv_get (i32.const 3100) (i32.const 1) (i32.const 48))
    (if (i32.load8_u (i32.const 48))
      (then
        (i32.store8 (i32.const 32) (i32.const 1))
        (i32.store (i32.const 36) (i32.load (i32.const 52)))
        (i32.store (i32.const 40) (i32.load (i32.const 56))))
      (else
        (i32.store8 (i32.const 32) (i32.const 0))
        (i32.store (i32.const 36) (i32.const 3000))
        (i32.store (i32.const 40) (i32.const 2))))
    (i32.const 32)))"#,
        escaped = describe.replace('"', "\\\""),
        len = describe.len()
    );
    std::fs::write(tmp.path().join("kv.wat"), &kv).unwrap();
    let looping = kv.replace(
        "(call $kv_get (i32.const 3100) (i32.const 1) (i32.const 48))",
        "(loop $l (br $l))",
    );
    std::fs::write(tmp.path().join("loop.wat"), looping).unwrap();

    let server = FakeServer::start(|r| {
        let results = r.tool_results();
        if results.is_empty() {
            Reply::tool_calls(&[("kv.get", "{}"), ("spin.get", "{}")])
        } else {
            Reply::text(&format!("saw: {}", results.join(" | ")))
        }
    });
    let crew = |kv_grant: bool| {
        json!({
            "name": "p",
            "llm": {"provider": "openai", "model": "m"},
            "plugins": [
                {"id": "kv", "path": "kv.wat", "grants": {"kv": kv_grant}},
                {"id": "spin", "path": "loop.wat", "limits": {"deadline_ms": 100}}
            ],
            "agents": [{"id": "a", "role": "Tester", "goal": "g", "tools": ["kv.*", "spin.get"]}],
            "tasks": [{"id": "t", "agent": "a", "description": "Use the tools."}]
        })
    };

    let out = tmp.path().join("denied");
    let o = run_crew(
        &server.url,
        &crew_file(tmp.path(), "c1.json", &crew(false)),
        &out,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = events(&out);
    let calls = of_type(&ev, "plugin_call");
    let kv_call = calls.iter().find(|c| c["plugin"] == "kv").unwrap();
    assert_eq!(kv_call["ok"], false);
    assert!(
        kv_call["denied"][0]
            .as_str()
            .unwrap()
            .contains("add `\"kv\": true` to its `grants`"),
        "{kv_call}"
    );
    let spin = calls.iter().find(|c| c["plugin"] == "spin").unwrap();
    assert_eq!(spin["limit"], "limits.deadline_ms");
    let limit = of_type(&ev, "limit_hit")
        .into_iter()
        .find(|e| e["key"] == "plugins[spin].limits.deadline_ms")
        .unwrap();
    assert_eq!(limit["value"], "100");
    let run = read_json(&out.join("run.json"));
    let output = task(&run, "t")["output"].as_str().unwrap().to_string();
    assert!(output.contains("was not granted"), "{output}");
    assert!(output.contains("deadline"), "{output}");

    let out = tmp.path().join("granted");
    let o = run_crew(
        &server.url,
        &crew_file(tmp.path(), "c2.json", &crew(true)),
        &out,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    assert!(
        task(&run, "t")["output"]
            .as_str()
            .unwrap()
            .starts_with("saw: ok |")
    );
}

#[test]
fn plugin_inspect_and_call_from_the_command_line() {
    let wasm = built("plugins/textstats-c/textstats.wasm");
    let o = troupe("http://unused")
        .args(["plugin", "inspect"])
        .arg(&wasm)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("textstats 0.1.0 — world troupe:plugin/tool-plugin@0.1.0, core module"),
        "{out}"
    );
    assert!(out.contains("stats: Readability statistics"), "{out}");

    let o = troupe("http://unused")
        .args(["plugin", "call"])
        .arg(&wasm)
        .args([
            "stats",
            r#"{"text": "One short sentence. Another one here."}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["words"], 6);
    assert_eq!(v["sentences"], 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("log info: measuring"), "{err}");

    // A missing required argument is the plugin's own error: exit 1 with the message.
    let o = troupe("http://unused")
        .args(["plugin", "call"])
        .arg(&wasm)
        .args(["stats", "{}"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("error: `text` must be a string"));

    // An unknown tool is a usage error that lists the tools.
    let o = troupe("http://unused")
        .args(["plugin", "call"])
        .arg(&wasm)
        .args(["nope", "{}"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("hint: its tools are: stats"));
}
