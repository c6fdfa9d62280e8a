//! Plugin speed (not a test): `plugins/build.sh && cargo bench -p troupe-plugin --bench plugins`.
//! For each shipped plugin and a minimal WAT module: cold load (convert + compile + describe, the
//! cache empty), cached load (compiled code from the on-disk cache + describe), and
//! instantiate + call (a fresh store and instance per call, as in a run). Medians.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use troupe_plugin::{Grants, Limits, Plugin, Services};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn show(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.0} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

const ECHO_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 4096))
  (data (i32.const 1024) "{\"name\": \"echo\", \"tools\": [{\"name\": \"echo\"}]}")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (func (export "describe") (result i32)
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.const 45))
    (i32.const 16))
  (func (export "invoke") (param i32 i32 i32 i32) (result i32)
    (i32.store8 (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (local.get 2))
    (i32.store (i32.const 40) (local.get 3))
    (i32.const 32)))"#;

async fn load(path: &Path) -> (Plugin, Duration) {
    let t = Instant::now();
    let p = Plugin::load(
        "bench",
        path,
        Grants::default(),
        Limits::default(),
        Services::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: {e} (run plugins/build.sh first)", path.display()));
    (p, t.elapsed())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins");
    let tmp = tempfile::tempdir().unwrap();
    let echo = tmp.path().join("echo.wat");
    std::fs::write(&echo, ECHO_WAT).unwrap();
    let paragraph = "The Provider shall make the Services available 99.9% of each calendar month. \
        If availability falls below that target, the Customer is entitled to a Service Credit of \
        5% of the monthly fee. Payment is due within thirty (30) days of the invoice date, on \
        March 1, 2025.";
    let table = "| Item | Fee |\n|---|---:|\n| Hosting | 4,600 |\n| Monitoring | 650 |\n| Support | 2,900 |";
    let cases: Vec<(&str, PathBuf, &str, String)> = vec![
        (
            "WAT echo (core module)",
            echo.clone(),
            "echo",
            r#"{"x": 1}"#.into(),
        ),
        (
            "textstats (C, core module + WASI adapter)",
            root.join("textstats-c/textstats.wasm"),
            "stats",
            serde_json::json!({"text": paragraph}).to_string(),
        ),
        (
            "keywords (Zig, core module)",
            root.join("keywords-zig/keywords.wasm"),
            "rank",
            serde_json::json!({"text": paragraph, "top": 5}).to_string(),
        ),
        (
            "tables (AssemblyScript, core module)",
            root.join("tables-as/tables.wasm"),
            "summarize",
            serde_json::json!({"table": table}).to_string(),
        ),
        (
            "entities (JavaScript component)",
            root.join("entities-js/entities.wasm"),
            "extract",
            serde_json::json!({"text": paragraph}).to_string(),
        ),
        (
            "clausediff (Python component)",
            root.join("clausediff-py/clausediff.wasm"),
            "diff",
            serde_json::json!({"a": paragraph, "b": paragraph.replace("99.9%", "99.5%")})
                .to_string(),
        ),
    ];
    println!(
        "{:<44} {:>10} {:>12} {:>12} {:>10}",
        "plugin (file size)", "cold load", "cached load", "inst.+call", "calls/s"
    );
    for (name, path, tool, args) in cases {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let big = size > 1 << 20;
        // Cold: an empty cache each time.
        let mut cold = Vec::new();
        for i in 0..(if big { 3 } else { 9 }) {
            troupe_plugin::cache::set_dir(Some(tmp.path().join(format!("cold-{name}-{i}"))));
            cold.push(load(&path).await.1);
        }
        // Cached: the last cold run stored it.
        let mut cached = Vec::new();
        let mut plugin = None;
        for _ in 0..9 {
            let (p, d) = load(&path).await;
            cached.push(d);
            plugin = Some(p);
        }
        let plugin = plugin.unwrap();
        let first = plugin.call(tool, &args).await;
        assert!(first.result.is_ok(), "{name}: {:?}", first.result);
        let n = if big { 200 } else { 2000 };
        let mut calls = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let r = plugin.call(tool, &args).await;
            calls.push(t.elapsed());
            assert!(r.result.is_ok());
        }
        let call = median(calls);
        println!(
            "{:<44} {:>10} {:>12} {:>12} {:>10.0}",
            format!("{name} ({} KB)", size / 1024),
            show(median(cold)),
            show(median(cached)),
            show(call),
            1.0 / call.as_secs_f64()
        );
    }
}
