//! Plugin speed (not a test): `plugins/build.sh && cargo bench -p troupe-plugin --bench plugins`.
//! For each shipped plugin and a minimal WAT module: cold load (convert + compile + describe, the
//! cache empty), cached load (compiled code from the on-disk cache + describe), and
//! instantiate + call (a fresh store and instance per call, as in a run) on an empty input (the
//! host's and the language runtime's overhead) and on a real one, one caller and two. Medians.
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
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
    let cases: Vec<(&str, PathBuf, &'static str, String, String)> = vec![
        (
            "WAT echo (core module)",
            echo.clone(),
            "echo",
            r#"{"x": 1}"#.into(),
            "{}".into(),
        ),
        (
            "textstats (C, core module, WASI p1)",
            root.join("textstats-c/textstats.wasm"),
            "stats",
            serde_json::json!({"text": paragraph}).to_string(),
            r#"{"text": ""}"#.into(),
        ),
        (
            "outline (C++, core module, WASI p1)",
            root.join("outline-cpp/outline.wasm"),
            "outline",
            serde_json::json!({"text": paragraph}).to_string(),
            r#"{"text": ""}"#.into(),
        ),
        (
            "definitions (Go, core module, WASI p1)",
            root.join("definitions-go/definitions.wasm"),
            "terms",
            serde_json::json!({"text": paragraph}).to_string(),
            r#"{"text": ""}"#.into(),
        ),
        (
            "keywords (Zig, core module)",
            root.join("keywords-zig/keywords.wasm"),
            "rank",
            serde_json::json!({"text": paragraph, "top": 5}).to_string(),
            r#"{"text": ""}"#.into(),
        ),
        (
            "tables (AssemblyScript, core module)",
            root.join("tables-as/tables.wasm"),
            "summarize",
            serde_json::json!({"table": table}).to_string(),
            r#"{"table": "| a |\n|---|\n| 1 |"}"#.into(),
        ),
        (
            "entities (JavaScript component)",
            root.join("entities-js/entities.wasm"),
            "extract",
            serde_json::json!({"text": paragraph}).to_string(),
            r#"{"text": ""}"#.into(),
        ),
        (
            "clausediff (Python component)",
            root.join("clausediff-py/clausediff.wasm"),
            "diff",
            serde_json::json!({"a": paragraph, "b": paragraph.replace("99.9%", "99.5%")})
                .to_string(),
            r#"{"a": "", "b": ""}"#.into(),
        ),
    ];
    println!(
        "{:<44} {:>10} {:>12} {:>12} {:>12} {:>10} {:>12}",
        "plugin (file size)",
        "cold load",
        "cached load",
        "inst.+empty",
        "inst.+call",
        "calls/s",
        "2 callers/s"
    );
    // `cargo bench --bench plugins -- NAME` runs only the plugins whose name contains NAME;
    // TROUPE_BENCH_CALLS=N sets the number of timed calls (for profiling).
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let calls_wanted: Option<usize> = std::env::var("TROUPE_BENCH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok());
    for (name, path, tool, args, tiny) in cases {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
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
        let n = calls_wanted.unwrap_or(if big { 200 } else { 2000 });
        let mut calls = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let r = plugin.call(tool, &args).await;
            calls.push(t.elapsed());
            assert!(r.result.is_ok());
        }
        let call = median(calls);
        // Host overhead: the same, on an empty input (the tool does next to nothing).
        let mut empty = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let r = plugin.call(tool, &tiny).await;
            empty.push(t.elapsed());
            assert!(r.result.is_ok(), "{name}: {:?}", r.result);
        }
        let empty = median(empty);
        // The same calls from 2 agents at once (2 worker threads): shared compiled code, a store
        // each, no lock between them — throughput should double on 2 cores.
        let plugin = std::sync::Arc::new(plugin);
        let t = Instant::now();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (plugin, args) = (plugin.clone(), args.clone());
                tokio::spawn(async move {
                    for _ in 0..n / 2 {
                        assert!(plugin.call(tool, &args).await.result.is_ok());
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        let parallel = n as f64 / t.elapsed().as_secs_f64();
        println!(
            "{:<44} {:>10} {:>12} {:>12} {:>12} {:>10.0} {:>12.0}",
            format!("{name} ({} KB)", size / 1024),
            show(median(cold)),
            show(median(cached)),
            show(empty),
            show(call),
            1.0 / call.as_secs_f64(),
            parallel
        );
    }
}
