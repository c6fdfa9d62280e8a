//! `troupe validate` and `troupe run` agree: a crew `validate` passes is a crew `run` starts, and
//! a crew `validate` rejects, `run` rejects with the very same diagnostics. Crews are fuzzed from
//! a valid one by a seeded generator (1–2 mutations each, from the kinds of mistakes users make),
//! and each goes through both commands, the real binary against a fake model server.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde_json::{Value, json};

/// How many crews are generated. Each costs two process runs (a few tens of milliseconds).
const CREWS: usize = 400;

fn base(docs: &Path, plugin: &Path) -> Value {
    json!({
        "name": "fuzz",
        "llm": { "model": "m", "max_attempts": 1 },
        "agents": [
            { "id": "researcher", "role": "R", "goal": "G", "tools": ["text.stats"] },
            { "id": "writer", "role": "W", "goal": "G" },
            { "id": "editor", "role": "E", "goal": "G" }
        ],
        "tasks": [
            { "id": "research", "agent": "researcher", "description": "Research" },
            { "id": "write", "agent": "writer", "description": "Write", "context": ["research"],
              "output_file": "report.md" }
        ],
        "_docs": docs.display().to_string(),
        "_plugin": plugin.display().to_string(),
    })
}

/// One kind of mistake (or of harmless change), applied to the crew as JSON.
type Mutation = fn(&mut Value);

fn mutations() -> Vec<(&'static str, Mutation)> {
    vec![
        ("misspelt key", |c| {
            let role = c["agents"][1]["role"].take();
            let a = c["agents"][1].as_object_mut().unwrap();
            a.remove("role");
            a.insert("rol".into(), role);
        }),
        ("missing description", |c| {
            c["tasks"][0].as_object_mut().unwrap().remove("description");
        }),
        ("unknown agent", |c| {
            c["tasks"][1]["agent"] = json!("nobody")
        }),
        ("dependency cycle", |c| {
            c["process"] = json!("parallel");
            c["tasks"][0]["context"] = json!(["write"]);
        }),
        ("placeholder without input", |c| {
            c["tasks"][0]["description"] = json!("Research {topic}")
        }),
        ("placeholder with input", |c| {
            c["tasks"][0]["description"] = json!("Research {topic}");
            c["inputs"] = json!({"topic": "tides"});
        }),
        ("unknown tool", |c| {
            c["agents"][0]["tools"] = json!(["text.stat"])
        }),
        ("docs tool without documents", |c| {
            c["agents"][0]["tools"] = json!(["docs.search"])
        }),
        ("docs tool with documents", |c| {
            c["agents"][0]["tools"] = json!(["docs.search"]);
            c["documents"] = json!({"paths": [c["_docs"].clone()]});
        }),
        ("missing document", |c| {
            c["documents"] = json!({"paths": ["no/such/file.txt"]})
        }),
        ("per-document task without documents", |c| {
            c["tasks"][0]["for_each"] = json!("document");
            c["tasks"][0]["description"] = json!("Read {document}");
        }),
        ("per-document task with documents", |c| {
            c["tasks"][0]["for_each"] = json!("document");
            c["tasks"][0]["description"] = json!("Read {document}");
            c["documents"] = json!({"paths": [c["_docs"].clone()]});
        }),
        ("negative limit", |c| {
            c["limits"] = json!({"max_iterations": -1})
        }),
        ("fractional limit", |c| {
            c["limits"] = json!({"max_parallel": 1.5})
        }),
        ("zero limit", |c| c["limits"] = json!({"max_tokens": 0})),
        ("cost limit without prices", |c| {
            c["limits"] = json!({"max_cost_usd": 1.0})
        }),
        ("cost limit with prices", |c| {
            c["limits"] = json!({"max_cost_usd": 1.0});
            c["llm"]["input_cost_per_mtok"] = json!(0.15);
            c["llm"]["output_cost_per_mtok"] = json!(0.6);
        }),
        ("output outside the directory", |c| {
            c["tasks"][1]["output_file"] = json!("../escape.md")
        }),
        ("reserved output file", |c| {
            c["tasks"][1]["output_file"] = json!("run.json")
        }),
        ("two tasks, one output file", |c| {
            c["tasks"][0]["output_file"] = json!("report.md")
        }),
        ("self review", |c| {
            c["tasks"][1]["review"] = json!({"by": "writer"})
        }),
        ("review by another", |c| {
            c["tasks"][1]["review"] = json!({"by": "editor", "max_rounds": 1})
        }),
        ("zero review rounds", |c| {
            c["tasks"][1]["review"] = json!({"by": "editor", "max_rounds": 0})
        }),
        ("unknown process", |c| c["process"] = json!("hierachical")),
        ("hierarchical", |c| {
            c["process"] = json!("hierarchical");
            c["tasks"][0].as_object_mut().unwrap().remove("agent");
        }),
        ("unknown provider", |c| {
            c["llm"]["provider"] = json!("anthropic")
        }),
        ("missing local model", |c| {
            c["agents"][2]["llm"] = json!({"provider": "local", "model": "nope.gguf"})
        }),
        ("openai without a model", |c| {
            c["agents"][1]["llm"] = json!({"provider": "openai", "model": ""})
        }),
        ("model name with a slash", |c| {
            c["llm"]["model"] = json!("Qwen/Qwen2.5-7B-Instruct")
        }),
        ("negative timeout", |c| c["llm"]["timeout_s"] = json!(-5)),
        ("tiny context window", |c| {
            c["llm"]["context_window"] = json!(100)
        }),
        ("zero attempts", |c| {
            c["agents"][0]["llm"] = json!({"max_attempts": 0})
        }),
        ("plugin", |c| {
            c["plugins"] = json!([{"id": "stats", "path": c["_plugin"].clone()}]);
            c["agents"][0]["tools"] = json!(["stats.*"]);
        }),
        ("missing plugin", |c| {
            c["plugins"] = json!([{"id": "stats", "path": "no/such.wasm"}])
        }),
        ("reserved plugin id", |c| {
            c["plugins"] = json!([{"id": "docs", "path": c["_plugin"].clone()}])
        }),
        ("plugin limit out of range", |c| {
            c["plugins"] = json!([{"id": "stats", "path": c["_plugin"].clone(),
                                   "limits": {"memory_mb": 100000}}])
        }),
        ("wrong type", |c| {
            c["agents"][2]["tools"] = json!("text.stats")
        }),
        ("bad id", |c| c["agents"][2]["id"] = json!("an editor")),
        ("duplicate task id", |c| {
            c["tasks"][1]["id"] = json!("research")
        }),
        ("empty name", |c| c["name"] = json!(" ")),
        ("a tool pattern", |c| {
            c["agents"][1]["tools"] = json!(["text.*"])
        }),
        ("parallel process", |c| c["process"] = json!("parallel")),
        (
            "valid limits",
            |c| {
                c["limits"] =
                    json!({"max_iterations": 3, "max_parallel": 2, "task_timeout_s": 30.5})
            },
        ),
        ("agent model override", |c| {
            c["agents"][2]["llm"] = json!({"model": "other", "temperature": 0.1})
        }),
        ("backstory", |c| {
            c["agents"][0]["backstory"] = json!("Years at sea.")
        }),
        ("review criteria", |c| {
            c["tasks"][1]["review"] = json!({"by": "editor", "criteria": "Is it short?"})
        }),
    ]
}

/// A small, seeded generator (SplitMix64): the same crews on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The `error: …` blocks a command printed, without the closing count.
fn diagnostics(stderr: &str) -> Vec<String> {
    stderr
        .split("\n\n")
        .filter(|b| b.starts_with("error: "))
        .map(|b| b.trim_end().to_string())
        .collect()
}

#[test]
fn validate_and_run_agree_on_fuzzed_crews() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = repo().join("examples/documents/licenses/BSD-3-Clause.txt");
    let plugin = repo().join("plugins/textstats-c/textstats.wasm");
    assert!(
        plugin.is_file(),
        "build the plugins first (plugins/build.sh)"
    );
    let server = troupe_testkit::FakeServer::start(|r| {
        if r.system().contains("review") {
            troupe_testkit::Reply::text(r#"{"verdict": "approve", "feedback": "fine"}"#)
        } else {
            troupe_testkit::Reply::text("A short answer.")
        }
    });
    let kinds = mutations();
    let mut rng = Rng(0x7209_11ce);
    let mut table: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut disagreements = Vec::new();
    let mut without_hint = Vec::new();
    let mut single: BTreeMap<&str, &str> = BTreeMap::new();
    for n in 0..CREWS {
        let mut crew = base(&docs, &plugin);
        let mut applied = Vec::new();
        for _ in 0..1 + rng.below(2) {
            let (name, m) = kinds[rng.below(kinds.len())];
            m(&mut crew);
            applied.push(name);
            *seen.entry(name).or_default() += 1;
        }
        let obj = crew.as_object_mut().unwrap();
        obj.remove("_docs");
        obj.remove("_plugin");
        let path = crew_file(tmp.path(), &format!("crew{n}.json"), &crew);
        let validate = troupe(&server.url)
            .arg("validate")
            .arg(&path)
            .output()
            .unwrap();
        let out = tmp.path().join(format!("out{n}"));
        let run = run_crew(&server.url, &path, &out, &[]);
        let (v, r) = (validate.status.code(), run.status.code());
        let verdict = match (v, r) {
            (Some(0), Some(0 | 1)) => "both accept",
            (Some(2), Some(2)) => {
                let (dv, dr) = (
                    diagnostics(&String::from_utf8_lossy(&validate.stderr)),
                    diagnostics(&String::from_utf8_lossy(&run.stderr)),
                );
                if dv != dr || dv.is_empty() {
                    disagreements.push(format!(
                        "{applied:?}: different diagnostics\nvalidate: {dv:#?}\nrun: {dr:#?}"
                    ));
                }
                for d in &dv {
                    if !d.contains("\n  hint: ") {
                        without_hint.push(format!("{applied:?}: {d}"));
                    }
                }
                "both reject"
            }
            _ => {
                disagreements.push(format!(
                    "{applied:?}: validate {v:?}, run {r:?}\n{}\n{}",
                    text(&validate),
                    text(&run)
                ));
                "disagree"
            }
        };
        *table.entry(verdict).or_default() += 1;
        if let [only] = applied.as_slice() {
            single.insert(*only, verdict);
        }
    }
    eprintln!("alone, each kind: {single:#?}");
    eprintln!("validate vs run over {CREWS} fuzzed crews: {table:?}");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
    assert!(without_hint.is_empty(), "{}", without_hint.join("\n\n"));
    // The generator reaches both sides and most kinds of mistake.
    assert!(
        table.get("both accept").copied().unwrap_or(0) >= CREWS / 8,
        "{table:?}"
    );
    assert!(
        table.get("both reject").copied().unwrap_or(0) >= CREWS / 3,
        "{table:?}"
    );
    assert!(seen.len() >= kinds.len() * 3 / 4, "{seen:?}");
}
