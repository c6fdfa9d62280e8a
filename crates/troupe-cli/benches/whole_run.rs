//! Whole-run benchmark (not a test; never gates CI): `cargo bench -p troupe-cli --bench whole_run`.
//!
//! 1. Framework time per model turn: crews run in-process against a zero-latency scripted model,
//!    so all measured time is Troupe's own (scheduling, actors, prompts, events, run.json, outputs).
//!    Also the same through the real OpenAI-compatible provider and HTTP against the fake server.
//! 2. Concurrency: 50 crews × 3 sequential turns at a fixed 200 ms model latency, all at once:
//!    wall time against the 0.6 s critical path.
//! 4. The run store's cost: the same crews with and without a store (SQLite, WAL), per task and
//!    per model call (each turn of the tool loop records a model call, a tool call and events).
//! 3. Peak RSS of the `troupe` binary running one crew (VmHWM from /proc, sampled while it runs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use troupe_crew::{LlmSettings, Source};
use troupe_llm::scripted::{ScriptedModel, text};
use troupe_llm::{ChatModel, LlmError};
use troupe_runtime::models::{ModelFactory, ProviderFactory};
use troupe_runtime::{RunOptions, RunStatus};
use troupe_testkit::{FakeServer, Reply};

struct Scripted(Arc<ScriptedModel>);
impl ModelFactory for Scripted {
    fn model(&self, _: &LlmSettings) -> Result<Arc<dyn ChatModel>, LlmError> {
        Ok(self.0.clone())
    }
}

/// A crew of `turns` sequential single-turn tasks, each using the previous one's output.
fn crew_json(name: &str, turns: usize, base_url: Option<&str>) -> String {
    let tasks: Vec<_> = (0..turns)
        .map(|i| {
            let mut t =
                json!({"id": format!("t{i}"), "agent": "a", "description": format!("Step {i}")});
            if i > 0 {
                t["context"] = json!([format!("t{}", i - 1)]);
            }
            t
        })
        .collect();
    let mut llm = json!({"model": "m", "max_attempts": 1});
    if let Some(u) = base_url {
        llm["base_url"] = json!(u);
    }
    json!({
        "name": name, "llm": llm,
        "agents": [{"id": "a", "role": "Worker", "goal": "work"}],
        "tasks": tasks,
        "limits": {"max_tokens": 1_000_000_000u64}
    })
    .to_string()
}

fn crew(name: &str, turns: usize, base_url: Option<&str>) -> troupe_crew::Crew {
    troupe_crew::parse(
        Source::new(format!("{name}.json"), crew_json(name, turns, base_url)),
        ".".into(),
        &Default::default(),
    )
    .unwrap()
}

async fn run_one(
    crew: troupe_crew::Crew,
    out: &Path,
    models: Arc<dyn ModelFactory>,
) -> troupe_runtime::RunReport {
    run_stored(crew, out, models, None).await
}

async fn run_stored(
    crew: troupe_crew::Crew,
    out: &Path,
    models: Arc<dyn ModelFactory>,
    store: Option<Arc<dyn troupe_store::RunStore>>,
) -> troupe_runtime::RunReport {
    let r = troupe_runtime::run(
        crew,
        RunOptions {
            out_dir: out.to_path_buf(),
            models,
            tools: troupe_runtime::default_tools(),
            on_event: None,
            documents: None,
            store,
            continuation: None,
            run_id: None,
            approvals: None,
        },
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, RunStatus::Completed);
    r
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // BENCH_DIR=/dev/shm puts outputs on tmpfs, to separate Troupe's cost from the disk's.
    let tmp = match std::env::var("BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    println!("outputs under {}", tmp.path().display());

    // 1a. Framework time per model turn inside one task: 199 tool-call turns, then the answer.
    let long = Arc::new(
        ScriptedModel::new(|r| {
            let turns = r
                .messages
                .iter()
                .filter(|m| matches!(m, troupe_llm::Message::Tool { .. }))
                .count();
            Ok(if turns < 199 {
                troupe_llm::scripted::tool_call(
                    "text.stats",
                    &format!(r#"{{"text": "turn {turns}"}}"#),
                )
            } else {
                text("done")
            })
        })
        .without_recording(),
    );
    let mut per_turn = Vec::new();
    for i in 0..7 {
        let mut c = crew("loop", 1, None);
        c.agents[0].tools = vec!["text.stats".into()];
        c.tasks[0].limits.max_iterations = 1000;
        c.tasks[0].limits.max_repeated_tool_calls = 1000;
        let out = tmp.path().join(format!("loop{i}"));
        let t = Instant::now();
        rt.block_on(run_one(c, &out, Arc::new(Scripted(long.clone()))));
        per_turn.push(t.elapsed().as_secs_f64() * 1e3 / 200.0);
    }
    println!(
        "framework time per model turn (one task, 200 turns with a tool call each, scripted model): median {:.4} ms over 7 runs",
        median(per_turn)
    );

    // 1b. Framework time per task (a turn + checkpoint: output file + run.json + events).
    let model = Arc::new(ScriptedModel::new(|_| Ok(text("ok"))).without_recording());
    let turns = 10;
    let mut per_turn = Vec::new();
    for i in 0..15 {
        let c = crew("bench", turns, None);
        let out = tmp.path().join(format!("fw{i}"));
        let t = Instant::now();
        rt.block_on(run_one(c, &out, Arc::new(Scripted(model.clone()))));
        per_turn.push(t.elapsed().as_secs_f64() * 1e3 / turns as f64);
    }
    println!(
        "framework time per task (one turn each; output file + run.json written per task), {turns}-task crew: median {:.3} ms over 15 runs",
        median(per_turn)
    );

    // 1c. Same through real HTTP to the fake server with zero latency.
    let server = FakeServer::start(|_| Reply::text("ok"));
    let mut per_turn = Vec::new();
    for i in 0..15 {
        let c = crew("bench", turns, Some(&server.url));
        let out = tmp.path().join(format!("http{i}"));
        let t = Instant::now();
        rt.block_on(run_one(c, &out, Arc::new(ProviderFactory::new(|_| None))));
        per_turn.push(t.elapsed().as_secs_f64() * 1e3 / turns as f64);
    }
    println!(
        "time per model turn incl. HTTP + JSON to a zero-latency local server (per task, as above): median {:.3} ms over 15 runs",
        median(per_turn)
    );
    drop(server);

    // 4. The run store's cost, interleaved with and without a store so drift hits both alike.
    let store: Arc<dyn troupe_store::RunStore> =
        Arc::new(troupe_store::Store::open(&tmp.path().join("runs.db")).unwrap());
    let (mut task_off, mut task_on, mut call_off, mut call_on) = (vec![], vec![], vec![], vec![]);
    for i in 0..15 {
        for stored in [false, true] {
            let c = crew("bench", turns, None);
            let out = tmp.path().join(format!("store-task{i}-{stored}"));
            let t = Instant::now();
            let s = stored.then(|| store.clone());
            rt.block_on(run_stored(c, &out, Arc::new(Scripted(model.clone())), s));
            let ms = t.elapsed().as_secs_f64() * 1e3 / turns as f64;
            if stored {
                task_on.push(ms)
            } else {
                task_off.push(ms)
            }
        }
    }
    for i in 0..7 {
        for stored in [false, true] {
            let mut c = crew("loop", 1, None);
            c.agents[0].tools = vec!["text.stats".into()];
            c.tasks[0].limits.max_iterations = 1000;
            c.tasks[0].limits.max_repeated_tool_calls = 1000;
            let out = tmp.path().join(format!("store-loop{i}-{stored}"));
            let t = Instant::now();
            let s = stored.then(|| store.clone());
            rt.block_on(run_stored(c, &out, Arc::new(Scripted(long.clone())), s));
            let ms = t.elapsed().as_secs_f64() * 1e3 / 200.0;
            if stored {
                call_on.push(ms)
            } else {
                call_off.push(ms)
            }
        }
    }
    let (t_off, t_on) = (median(task_off), median(task_on));
    let (c_off, c_on) = (median(call_off), median(call_on));
    println!(
        "run store cost per task: median {t_on:.3} ms with a store vs {t_off:.3} ms without = +{:.3} ms (15 runs of {turns} tasks each way)",
        t_on - t_off
    );
    println!(
        "run store cost per model call (+ its tool call and events): median {c_on:.4} ms vs {c_off:.4} ms = +{:.4} ms (7 runs of 200 turns each way)",
        c_on - c_off
    );

    // 2. 50 crews × 3 turns at 200 ms latency, concurrently.
    let latency = Duration::from_millis(200);
    let server = FakeServer::start(move |_| Reply::text("ok").after(latency));
    let factory: Arc<dyn ModelFactory> = Arc::new(ProviderFactory::new(|_| None));
    let mut ratios = Vec::new();
    for round in 0..3 {
        let crews: Vec<_> = (0..50)
            .map(|i| crew(&format!("c{i}"), 3, Some(&server.url)))
            .collect();
        let t = Instant::now();
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (i, c) in crews.into_iter().enumerate() {
                let out = tmp.path().join(format!("conc{round}-{i}"));
                let f = factory.clone();
                set.spawn(async move { run_one(c, &out, f).await });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap();
            }
        });
        ratios.push(t.elapsed().as_secs_f64() / 0.6);
    }
    println!(
        "50 crews × 3 turns at 200 ms latency: wall / 0.6 s critical path = median {:.3} over 3 rounds (max concurrent requests seen: {})",
        median(ratios),
        server.max_concurrency()
    );
    drop(server);

    // 3. Peak RSS of the binary on one crew (3 turns, 200 ms each).
    let server = FakeServer::start(move |_| Reply::text("ok").after(latency));
    let path = tmp.path().join("rss.json");
    std::fs::write(&path, crew_json("rss", 3, Some(&server.url))).unwrap();
    let mut rss = Vec::new();
    for i in 0..3 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(["run", "--quiet"])
            .arg(&path)
            .arg("--out")
            .arg(tmp.path().join(format!("rss{i}")))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let status_file = format!("/proc/{}/status", child.id());
        let mut peak_kb = 0u64;
        while child.try_wait().unwrap().is_none() {
            if let Ok(s) = std::fs::read_to_string(&status_file)
                && let Some(kb) = s
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        rss.push(peak_kb as f64 / 1024.0);
    }
    println!(
        "peak RSS of `troupe run` on one crew: median {:.1} MiB over 3 runs",
        median(rss)
    );
}
