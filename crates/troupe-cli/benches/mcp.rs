//! A plugin call served over MCP against the same call in process (not a test; never gates CI):
//! `plugins/build.sh && cargo bench --workspace --bench mcp`.
//!
//! The `troupe` binary serves the plugins with `troupe mcp serve --plugin …` on stdio; an MCP
//! client (the official Rust SDK, as any client would) calls a tool, waits for the result, and
//! calls again. The same plugin is loaded in this process and called with the same arguments
//! (`Plugin::call`: a fresh instance per call, as the server does). Median round trip of each,
//! after a warm-up; the difference is what MCP over stdio adds to a call: JSON-RPC framing, two
//! pipe crossings, the server's schema check and its event log line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use troupe_plugin::{Grants, Limits, Plugin, Services};

const CALLS: usize = 300;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let paragraph = "The Provider shall make the Services available 99.9% of each calendar month. \
        If availability falls below that target, the Customer is entitled to a Service Credit of \
        5% of the monthly fee. Payment is due within thirty (30) days of the invoice date, on \
        March 1, 2025.";
    let cases: Vec<(&str, PathBuf, &str, serde_json::Value)> = vec![
        (
            "textstats.stats (C), empty text",
            root.join("plugins/textstats-c/textstats.wasm"),
            "stats",
            serde_json::json!({"text": ""}),
        ),
        (
            "keywords.rank (Zig), a paragraph",
            root.join("plugins/keywords-zig/keywords.wasm"),
            "rank",
            serde_json::json!({"text": paragraph, "top": 5}),
        ),
        (
            "entities.extract (JavaScript), a paragraph",
            root.join("plugins/entities-js/entities.wasm"),
            "extract",
            serde_json::json!({"text": paragraph}),
        ),
    ];
    let cache = tempfile::tempdir().unwrap();
    println!(
        "{:<44} {:>14} {:>14} {:>12}",
        "tool, input", "in process", "MCP (stdio)", "MCP adds"
    );
    for (name, path, tool, args) in cases {
        let id = path.file_stem().unwrap().to_string_lossy().into_owned();
        // In process.
        let plugin = Plugin::load(
            &id,
            &path,
            Grants::default(),
            Limits::default(),
            Services::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e} (run plugins/build.sh first)", path.display()));
        let text = args.to_string();
        for _ in 0..10 {
            plugin.call(tool, &text).await.result.unwrap();
        }
        let mut local = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t = Instant::now();
            plugin.call(tool, &text).await.result.unwrap();
            local.push(t.elapsed());
        }

        // Over MCP, through the binary.
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"));
        cmd.args(["mcp", "serve", "--quiet", "--plugin"])
            .arg(&path)
            .env("TROUPE_CACHE_DIR", cache.path());
        let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
        let name_served = format!("{id}.{tool}");
        let obj = args.as_object().unwrap().clone();
        let call = || CallToolRequestParams::new(name_served.clone()).with_arguments(obj.clone());
        for _ in 0..10 {
            let r = client.call_tool(call()).await.unwrap();
            assert_ne!(r.is_error, Some(true), "{r:?}");
        }
        let mut remote = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t = Instant::now();
            client.call_tool(call()).await.unwrap();
            remote.push(t.elapsed());
        }
        let _ = client.cancel().await;
        let (l, r) = (median(local), median(remote));
        println!(
            "{name:<44} {:>14} {:>14} {:>12}",
            us(l),
            us(r),
            us(r.saturating_sub(l))
        );
    }
}
