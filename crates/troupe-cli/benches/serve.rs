//! `troupe serve` under load (not a test; never gates CI): `cargo bench --workspace --bench serve`.
//!
//! The `troupe` binary serves on loopback; N crews (default 1000, `SERVE_RUNS`) of 3 sequential
//! single-turn tasks are submitted through `POST /v1/runs`, all at once, against the fake
//! OpenAI-compatible server answering every request after 200 ms. Each run's event stream is
//! followed from its creation (SSE). Reported:
//! - wall time from the first submission to the last `run_finished`, against the 0.6 s critical
//!   path of one run;
//! - peak RSS of the server process (VmHWM), and the CPU time it used (user + system): the
//!   load generator, the fake model server and the followers share the machine's cores with
//!   it, so the CPU a run costs the server is the figure that carries to other machines;
//! - event latency, from the event's timestamp (`ts_ms`, when the runtime emitted it; the store
//!   write and the stream come after) to its arrival at the SSE client: median, p99, max.
//!
//! The store and the runs' directories go in a temporary directory (`TMPDIR`; `TMPDIR=/dev/shm`
//! leaves the disk out). `SERVE_WRAP="heaptrack"` (or `perf record -g`) runs the server under a
//! profiler, stopped with SIGTERM so that it writes its data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::{Value, json};
use troupe_testkit::{FakeServer, Reply};

const LATENCY: Duration = Duration::from_millis(200);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn crew(base_url: &str) -> Value {
    let tasks: Vec<Value> = (0..3)
        .map(|i| {
            let mut t =
                json!({"id": format!("t{i}"), "agent": "a", "description": format!("Step {i}")});
            if i > 0 {
                t["context"] = json!([format!("t{}", i - 1)]);
            }
            t
        })
        .collect();
    json!({
        "name": "load",
        "llm": {"model": "m", "base_url": base_url, "max_attempts": 1},
        "agents": [{"id": "a", "role": "Worker", "goal": "work"}],
        "tasks": tasks,
        "limits": {"keep_runs": 100000}
    })
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU time the process has used (user + system), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (in parentheses): utime is the 12th, stime the 13th.
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some(f.get(10)? + f.get(11)?)
        })
        .unwrap_or(0);
    ticks as f64 / 100.0
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Follows one run's events to its end; each event's latency in ms.
async fn follow(http: reqwest::Client, base: String, id: String) -> Vec<u64> {
    let resp = http
        .get(format!("{base}/v1/runs/{id}/events"))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        let arrived = now_ms();
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(data) = line.strip_prefix("data: ")
                    && let Ok(v) = serde_json::from_str::<Value>(data)
                    && let Some(ts) = v["ts_ms"].as_u64()
                {
                    out.push(arrived.saturating_sub(ts));
                }
            }
        }
    }
    out
}

fn main() {
    let runs: usize = std::env::var("SERVE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let model = FakeServer::start(|_| Reply::Delay(LATENCY, Box::new(Reply::text("ok"))));
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let wrap: Vec<String> = std::env::var("SERVE_WRAP")
        .map(|w| w.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let mut server = match wrap.split_first() {
        Some((tool, args)) => {
            let mut c = Command::new(tool);
            c.args(args).arg(env!("CARGO_BIN_EXE_troupe"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_troupe")),
    };
    let mut server = server
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args([
            "--max-runs",
            &runs.to_string(),
            "--max-queue",
            &runs.to_string(),
        ])
        .arg("--store")
        .arg(dir.path().join("runs.db"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .env("OPENAI_API_KEY", "sk-bench")
        .env("TROUPE_CACHE_DIR", dir.path().join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (wall, mut latencies, failed) = rt.block_on(async {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(runs)
            .build()
            .unwrap();
        for _ in 0..200 {
            if http.get(format!("{base}/v1/runs")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let body = Arc::new(json!({"crew": crew(&model.url)}));
        let start = Instant::now();
        let mut followers = tokio::task::JoinSet::new();
        let mut failed = 0;
        let mut submits = tokio::task::JoinSet::new();
        for _ in 0..runs {
            let (http, base, body) = (http.clone(), base.clone(), body.clone());
            submits.spawn(async move {
                let r = http
                    .post(format!("{base}/v1/runs"))
                    .json(&*body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                (status, v["id"].as_str().map(str::to_string))
            });
        }
        while let Some(r) = submits.join_next().await {
            match r.unwrap() {
                (201, Some(id)) => {
                    followers.spawn(follow(http.clone(), base.clone(), id));
                }
                _ => failed += 1,
            }
        }
        let mut latencies = Vec::new();
        while let Some(r) = followers.join_next().await {
            latencies.extend(r.unwrap());
        }
        (start.elapsed(), latencies, failed)
    });
    let rss = peak_rss_kib(pid);
    let cpu = cpu_seconds(pid);
    let completed = rt.block_on(async {
        let v: Value = reqwest::get(format!("{base}/v1/runs?status=completed&limit=100000"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().map_or(0, Vec::len)
    });
    if wrap.is_empty() {
        let _ = server.kill();
    } else {
        // The profiler writes its data when the server ends cleanly (SIGTERM).
        let _ = Command::new("pkill")
            .args(["-TERM", "-f", &format!("serve --bind 127.0.0.1:{port}")])
            .status();
    }
    let _ = server.wait();
    latencies.sort_unstable();
    let critical = 3.0 * LATENCY.as_secs_f64();
    println!(
        "serve: {runs} crews × 3 turns at {} ms, submitted through the API with their event streams followed",
        LATENCY.as_millis()
    );
    println!(
        "  wall {:.2} s = {:.2}× the {critical:.1} s critical path · {completed} completed, {failed} refused",
        wall.as_secs_f64(),
        wall.as_secs_f64() / critical
    );
    println!(
        "  server peak RSS {:.1} MiB · server CPU {cpu:.2} s ({:.2} ms a run)",
        rss as f64 / 1024.0,
        cpu * 1000.0 / runs as f64
    );
    println!(
        "  event latency (emitted → SSE client), {} events: median {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
}
