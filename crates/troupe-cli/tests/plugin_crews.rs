//! End to end with plugins: the `troupe` binary runs crews whose agents call WebAssembly tool
//! plugins (built from source by plugins/build.sh), against the fake model server; and the
//! `troupe plugin` commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use troupe_testkit::{FakeServer, Reply};

/// compare-documents: the editor measures the comparison with the C `textstats` plugin before
/// approving it; the tool's result reaches the model, the call is an event.
#[test]
fn an_agent_calls_the_c_textstats_plugin_in_a_crew() {
    built("plugins/textstats-c/textstats.wasm");
    let cited = cited_statement(&repo().join("examples/documents/licenses"));
    let server = FakeServer::start(move |r| {
        if r.is("Licence analyst") {
            Reply::text(
                &json!({"document": "d", "permits": [], "requires": [], "forbids": []}).to_string(),
            )
        } else if r.is("Open-source compliance lead") {
            Reply::text(&cited)
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
    let result: Value = serde_json::from_str(troupe_testkit::unfence(
        editor[1]["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap(),
    ))
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
    std::fs::write(tmp.path().join("kv.wat"), kv_wat()).unwrap();
    std::fs::write(tmp.path().join("loop.wat"), looping_wat()).unwrap();

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

/// The tool results the agent `role` got back, by tool name, from its last request.
fn results_by_tool(requests: &[Value], role: &str) -> std::collections::HashMap<String, Value> {
    let reqs = requests_of(requests.to_vec(), role);
    let messages = reqs.last().unwrap()["messages"].as_array().unwrap().clone();
    let mut names = std::collections::HashMap::new();
    for m in &messages {
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            names.insert(
                call["id"].as_str().unwrap().to_string(),
                call["function"]["name"].as_str().unwrap().to_string(),
            );
        }
    }
    messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            let name = names[m["tool_call_id"].as_str().unwrap()].clone();
            let content = troupe_testkit::unfence(m["content"].as_str().unwrap());
            let value = serde_json::from_str(content)
                .unwrap_or_else(|e| panic!("{name} returned non-JSON ({e}): {content}"));
            (name, value)
        })
        .collect()
}

/// contract-changes: the Python (clausediff), JavaScript (entities) and Zig (keywords) plugins
/// read the run's documents through their `documents` grant, the AssemblyScript (tables) plugin
/// totals a fee schedule; every result reaches the model through the agent loop and is right.
#[test]
fn every_shipped_plugin_works_in_a_crew_through_the_agent_loop() {
    for p in [
        "plugins/clausediff-py/clausediff.wasm",
        "plugins/entities-js/entities.wasm",
        "plugins/keywords-zig/keywords.wasm",
        "plugins/tables-as/tables.wasm",
    ] {
        built(p);
    }
    let (old, new) = ("services-agreement-2024.md", "services-agreement-2025.md");
    let fee_table: String = std::fs::read_to_string(
        repo()
            .join("examples/documents/agreement-versions")
            .join(new),
    )
    .unwrap()
    .lines()
    .filter(|l| l.starts_with('|'))
    .collect::<Vec<_>>()
    .join("\n");
    let cited = cited_statement(&repo().join("examples/documents/agreement-versions"));
    let server = FakeServer::start(move |r| {
        let results = r.tool_results();
        if r.is("Change analyst") {
            if results.is_empty() {
                return Reply::tool_calls(&[
                    (
                        "clausediff.diff",
                        &json!({"document_a": old, "document_b": new}).to_string(),
                    ),
                    ("entities.extract", &json!({"document": new}).to_string()),
                    (
                        "keywords.rank",
                        &json!({"document": new, "top": 5}).to_string(),
                    ),
                    (
                        "docs.search",
                        &json!({"query": "runs for three years", "document": new, "limit": 1})
                            .to_string(),
                    ),
                ]);
            }
            let hits: Value = serde_json::from_str(results[3]).unwrap();
            let chunk = hits["results"][0]["chunk"].as_str().unwrap();
            Reply::text(
                &json!({"changes": [{"area": "term", "summary": "Three years instead of one.",
                    "chunk": chunk, "quote": "runs for three (3) years"}]})
                .to_string(),
            )
        } else if r.is("Pricing analyst") {
            if results.is_empty() {
                Reply::tool_call(
                    "tables.summarize",
                    &json!({"table": fee_table.clone()}).to_string(),
                )
            } else {
                Reply::text("The 2025 schedule totals 8,225 GBP a month.")
            }
        } else if r.is("Commercial lawyer") {
            Reply::text(&cited)
        } else if r.is("General counsel") {
            Reply::text(r#"{"verdict": "approve", "feedback": "Accurate."}"#)
        } else {
            Reply::error(400, None)
        }
    });
    let (_tmp, out) = run_completed(
        &server.url,
        &repo().join("crews/contract-changes.json"),
        &[],
    );
    let requests = server.requests();

    let analyst = results_by_tool(&requests, "Change analyst");
    // Python: the clause-level diff of the two versions, read through `grants.documents`.
    let diff = &analyst["clausediff.diff"];
    assert_eq!(
        diff["removed"],
        json!([
            "Either party may terminate this Agreement for convenience on sixty (60) days' written notice."
        ]),
        "{diff:#}"
    );
    let changed = diff["changed"].as_array().unwrap();
    assert!(
        changed.iter().any(|c| c["before"]
            == "The Agreement starts on March 1, 2024 and runs for one (1) year."
            && c["after"] == "The Agreement starts on March 1, 2025 and runs for three (3) years."),
        "{diff:#}"
    );
    assert!(
        diff["added"].as_array().unwrap().iter().any(|a| a
            .as_str()
            .unwrap()
            .starts_with("Provider shall notify Customer of any Security Incident")),
        "{diff:#}"
    );
    // JavaScript: the facts of the new version.
    let facts = &analyst["entities.extract"];
    let values = |kind: &str| -> Vec<String> {
        facts[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(values("date"), ["March 1, 2025"], "{facts:#}");
    assert_eq!(values("percentage"), ["1.5%", "5%", "99.9%", "0.5%", "25%"]);
    assert!(values("duration").contains(&"seventy-two (72) hours".to_string()));
    assert!(values("defined_term").contains(&"Security Incident".to_string()));
    assert_eq!(
        values("email"),
        ["legal@northwind.example", "contracts@contoso.example"]
    );
    let agreement = facts["defined_term"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["value"] == "Agreement")
        .unwrap();
    assert_eq!(agreement["lines"], json!([3]), "{facts:#}");
    // Zig: what the new version is about.
    let ranked = &analyst["keywords.rank"];
    let terms: Vec<&str> = ranked["keywords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["term"].as_str().unwrap())
        .collect();
    assert_eq!(terms.len(), 5, "{ranked:#}");
    assert_eq!(terms[0], "customer", "{ranked:#}");
    assert!(terms.contains(&"provider"), "{ranked:#}");
    // AssemblyScript: the fee schedule's numbers.
    let fees = &results_by_tool(&requests, "Pricing analyst")["tables.summarize"];
    assert_eq!(fees["rows"], 4, "{fees:#}");
    let monthly = &fees["columns"][2];
    assert_eq!(monthly["name"], "Monthly fee (GBP)");
    assert_eq!(monthly["type"], "number");
    assert_eq!(monthly["sum"], 8225);
    assert_eq!(monthly["max"], 4600);

    let ev = events(&out);
    let loaded = of_type(&ev, "plugin_loaded");
    let kinds: Vec<(&str, &str)> = loaded
        .iter()
        .map(|e| (e["plugin"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("clausediff", "component"),
            ("entities", "component"),
            ("keywords", "core_module"),
            ("tables", "core_module")
        ]
    );
    let calls = of_type(&ev, "plugin_call");
    assert_eq!(calls.len(), 4, "{calls:#?}");
    assert!(calls.iter().all(|c| c["ok"] == true), "{calls:#?}");
    // The change analyst's citation came from docs.search and checks out; the memo's one
    // statement is cited, verified and supported.
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["summary"]["findings"]["verified"], 1, "{report:#}");
    assert_eq!(report["summary"]["findings"]["failed"], 0, "{report:#}");
    assert_eq!(report["summary"]["body"]["task"], "memo", "{report:#}");
    assert_eq!(report["summary"]["body"]["supported"], 1, "{report:#}");
}

/// The second load of a plugin takes its compiled code from the on-disk cache, and says so in
/// the `plugin_loaded` event and in `troupe plugin inspect`. Storing an entry removes the
/// entries no load can use any more (another engine's) or none has used for 30 days.
#[test]
fn compiled_plugins_are_cached_on_disk_and_reused() {
    let wasm = built("plugins/keywords-zig/keywords.wasm");
    let cache = tempfile::tempdir().unwrap();
    let server = FakeServer::start(|r| {
        if r.tool_results().is_empty() {
            Reply::tool_call("keywords.rank", r#"{"text": "alpha beta alpha", "top": 1}"#)
        } else {
            Reply::text("done")
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "crew.json",
        &json!({
            "name": "cached",
            "llm": {"provider": "openai", "model": "m"},
            "plugins": [{"id": "keywords", "path": wasm}],
            "agents": [{"id": "a", "role": "Analyst", "goal": "g", "tools": ["keywords.*"]}],
            "tasks": [{"id": "t", "agent": "a", "description": "Rank."}]
        }),
    );
    let entries_dir = cache.path().join("plugins");
    std::fs::create_dir_all(&entries_dir).unwrap();
    let other_engine = entries_dir.join(format!("{}-{}.cwasm", "0".repeat(32), "0".repeat(16)));
    std::fs::write(&other_engine, b"made by another wasmtime").unwrap();
    let month_ago = std::time::SystemTime::now() - Duration::from_secs(40 * 24 * 3600);
    let age = |p: &Path, t: std::time::SystemTime| {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(t).unwrap();
    };
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(&entries_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let mut outcomes = Vec::new();
    let mut unused = PathBuf::new();
    for round in 0..2 {
        let out = tmp.path().join(format!("out{round}"));
        let o = troupe(&server.url)
            .env("TROUPE_CACHE_DIR", cache.path())
            .arg("run")
            .arg(&crew)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let ev = events(&out);
        let loaded = of_type(&ev, "plugin_loaded");
        assert_eq!(loaded.len(), 1);
        outcomes.push(loaded[0]["cache"].as_str().unwrap().to_string());
        assert_eq!(of_type(&ev, "plugin_call")[0]["ok"], true);
        if round == 0 {
            // Storing removed the other engine's entry.
            let names = entries();
            assert_eq!(names.len(), 1, "{names:?}");
            assert!(!other_engine.exists());
            // An entry of this engine that nothing used for 40 days, and keywords' own entry
            // made to look as old: the next load uses (and so keeps) the second.
            let (_, engine_part) = names[0].rsplit_once('-').unwrap();
            unused = entries_dir.join(format!("{}-{engine_part}", "f".repeat(32)));
            std::fs::write(&unused, b"an old plugin version").unwrap();
            age(&unused, month_ago);
            age(&entries_dir.join(&names[0]), month_ago);
        }
    }
    assert_eq!(outcomes, ["stored", "hit"]);
    // The next store (another plugin) prunes the unused entry; keywords' entry was used.
    let o = troupe("http://unused")
        .env("TROUPE_CACHE_DIR", cache.path())
        .args(["plugin", "inspect"])
        .arg(built("plugins/tables-as/tables.wasm"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!unused.exists(), "{:?}", entries());
    assert_eq!(entries().len(), 2, "keywords and tables: {:?}", entries());

    let o = troupe("http://unused")
        .env("TROUPE_CACHE_DIR", cache.path())
        .args(["plugin", "inspect"])
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("compiled code from the cache"),
        "{}",
        text(&o)
    );
    // Turned off, nothing is read or written.
    let o = troupe("http://unused")
        .env("TROUPE_CACHE_DIR", cache.path())
        .env("TROUPE_PLUGIN_CACHE", "off")
        .args(["plugin", "inspect"])
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("compiled; cache off"),
        "{}",
        text(&o)
    );
}

/// `troupe plugin new` makes a skeleton in each language that `plugins/build.sh` builds and whose
/// tool works in the sandbox.
#[test]
fn plugin_new_makes_a_skeleton_that_builds_and_runs_in_every_language() {
    let tmp = tempfile::tempdir().unwrap();
    for lang in ["c", "cpp", "zig", "go", "assemblyscript", "js", "python"] {
        let name = format!("count_{lang}");
        let o = troupe("http://unused")
            .args(["plugin", "new", &name, "--lang", lang, "--dir"])
            .arg(tmp.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let dir = tmp.path().join(&name);
        let status = std::process::Command::new(repo().join("plugins/build.sh"))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "building the {lang} skeleton failed");
        let o = troupe("http://unused")
            .args(["plugin", "call"])
            .arg(dir.join(format!("{name}.wasm")))
            .args(["words", r#"{"text": "one two  three"}"#])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{lang}: {}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["words"], 3, "{lang}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("log info: counted"),
            "{lang}: {}",
            text(&o)
        );
    }
    // The directory exists now; a bad name and an unknown language are refused with a hint.
    for args in [
        ["count_c", "--lang", "c"],
        ["Bad-Name", "--lang", "c"],
        ["fine", "--lang", "cobol"],
    ] {
        let o = troupe("http://unused")
            .args(["plugin", "new"])
            .args(args)
            .arg("--dir")
            .arg(tmp.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("hint:"),
            "{}",
            text(&o)
        );
    }
}

/// `sha256` pins: `troupe plugin lock` writes each plugin's hash into the crew file and keeps
/// the rest of it as written (a second lock changes nothing); the pinned crew runs, its
/// `plugin_loaded` event naming the hash; a changed plugin file is refused before it runs,
/// with both hashes.
#[test]
fn pinned_plugins_run_and_a_changed_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("kv.wat"), kv_wat()).unwrap();
    let sha = troupe_plugin::sha256_hex(kv_wat().as_bytes());
    let written = r#"{
  "name": "pinned",
  "plugins": [
    {
      "id": "kv",
      "path": "kv.wat",
      "grants": { "kv": true }
    }
  ],
  "agents": [ { "id": "a", "role": "Tester", "goal": "g", "tools": ["kv.get"] } ],
  "tasks":  [ { "id": "t", "agent": "a", "description": "Use the tool." } ]
}
"#;
    let crew = tmp.path().join("crew.json");
    std::fs::write(&crew, written).unwrap();
    let lock = || {
        troupe("http://unused")
            .args(["plugin", "lock"])
            .arg(&crew)
            .output()
            .unwrap()
    };
    let o = lock();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("{sha}  kv (")),
        "{}",
        text(&o)
    );
    let locked = std::fs::read_to_string(&crew).unwrap();
    assert!(
        locked.contains(&format!(r#""sha256": "{sha}""#)),
        "{locked}"
    );
    // Every line written by hand is still there, as written.
    for line in written.lines() {
        assert!(
            locked.lines().any(|l| l == line || l == format!("{line},")),
            "`{line}` changed:\n{locked}"
        );
    }
    assert_eq!(
        locked.lines().count(),
        written.lines().count() + 1,
        "{locked}"
    );
    let o = lock();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("unchanged"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_to_string(&crew).unwrap(), locked);

    let server = FakeServer::start(|r| match r.tool_results().len() {
        0 => Reply::tool_call("kv.get", "{}"),
        _ => Reply::text("done"),
    });
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &crew, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let loaded = of_type(&events(&out), "plugin_loaded")[0].clone();
    assert_eq!(loaded["sha256"], sha.as_str());

    // One byte more, and the file is not the one pinned.
    std::fs::write(tmp.path().join("kv.wat"), format!("{}\n", kv_wat())).unwrap();
    let changed = troupe_plugin::sha256_hex(format!("{}\n", kv_wat()).as_bytes());
    let o = run_crew(&server.url, &crew, &tmp.path().join("out2"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&changed) && err.contains(&sha), "{err}");
    assert!(err.contains("plugins[0].path"), "{err}");
    assert!(err.contains("troupe plugin lock"), "{err}");
    assert_eq!(server.requests().len(), 2, "the refused run asked no model");
}

/// A plugin that declares what it needs: `troupe plugin inspect` shows it, and `troupe
/// validate` warns with the exact grant to add when the crew grants less, and notes a grant the
/// plugin never declared — warnings, not errors.
#[test]
fn validate_compares_the_grants_with_what_a_plugin_declares() {
    let tmp = tempfile::tempdir().unwrap();
    let wat = kv_wat_describing(
        r#"{"name": "kv", "version": "1", "capabilities": {"kv": true, "http": ["api.example.org"]}, "tools": [{"name": "get", "description": "d", "parameters": {"type": "object"}}]}"#,
    );
    std::fs::write(tmp.path().join("kv.wat"), &wat).unwrap();
    let o = troupe("http://unused")
        .args(["plugin", "inspect"])
        .arg(tmp.path().join("kv.wat"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(r#"asks for: {"kv": true, "http": ["api.example.org"]}"#),
        "{}",
        text(&o)
    );
    let crew = crew_file(
        tmp.path(),
        "crew.json",
        &json!({
            "name": "declared",
            "llm": {"provider": "openai", "model": "m"},
            "plugins": [{"id": "kv", "path": "kv.wat", "grants": {"documents": true}}],
            "agents": [{"id": "a", "role": "Tester", "goal": "g", "tools": ["kv.get"]}],
            "tasks": [{"id": "t", "agent": "a", "description": "Use the tool."}]
        }),
    );
    let o = troupe("http://127.0.0.1:9/v1")
        .arg("validate")
        .arg(&crew)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("declares that it keeps a key-value space, but its entry does not grant `kv`")
            && err.contains(r#"add `"grants": {"kv": true}` to `plugins[0]`"#),
        "{err}"
    );
    assert!(
        err.contains("declares HTTP requests to `api.example.org`")
            && err.contains(r#"add `"api.example.org"` to its `grants.http`"#),
        "{err}"
    );
    assert!(
        err.contains("is granted `documents`, which it does not declare it uses"),
        "{err}"
    );
    assert_eq!(err.matches("warning: ").count(), 3, "{err}");
}

/// `troupe plugin call WASM TOOL ARGS EXTRA…` from the repository root: the exit code, stdout,
/// and all the output.
fn plugin_call(
    wasm: &std::path::Path,
    tool: &str,
    args: &str,
    extra: &[&str],
) -> (Option<i32>, String, String) {
    let o = troupe("http://unused")
        .args(["plugin", "call"])
        .arg(wasm)
        .args([tool, args])
        .args(extra)
        .current_dir(repo())
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        text(&o),
    )
}

/// The C++ plugin (libc++ for wasm32): a contract's outline, its headings and numbered clauses
/// with their lines, from a text or (granted) from a run's document; figures that look like
/// numbers ("1.5% per month", "30 days") are not clauses.
#[test]
fn the_cpp_outline_plugin_finds_headings_and_clauses_with_their_lines() {
    let wasm = built("plugins/outline-cpp/outline.wasm");
    let call = |args: &str, extra: &[&str]| plugin_call(&wasm, "outline", args, extra);
    let text = "# Terms\n\n12. Term\nThe term is 30 days.\n12.3.1 Notice of \"renewal\"\nLate fees: 1.5% per month.\nSection 7 — Liability\n```\n# not a heading\n```\n";
    let args = json!({"text": text}).to_string();
    let (code, out, all) = call(&args, &[]);
    assert_eq!(code, Some(0), "{all}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["lines"], 11, "{v}");
    assert_eq!(
        v["headings"],
        json!([{"line": 1, "level": 1, "title": "Terms"}])
    );
    assert_eq!(
        v["clauses"],
        json!([
            {"line": 3, "number": "12", "title": "Term"},
            {"line": 5, "number": "12.3.1", "title": "Notice of \"renewal\""},
            {"line": 7, "number": "Section 7", "title": "— Liability"}
        ])
    );

    // A document of the run, with the grant; without it, the refusal names the grant.
    let doc = r#"{"document": "services-agreement-2025.md"}"#;
    let docs = ["--docs", "examples/documents/agreement-versions"];
    let (code, out, all) = call(doc, &[&docs[..], &["--grant", "documents"]].concat());
    assert_eq!(code, Some(0), "{all}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let clauses: Vec<(u64, &str)> = v["clauses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["line"].as_u64().unwrap(), c["number"].as_str().unwrap()))
        .collect();
    assert_eq!(clauses[0], (6, "1"), "{v}");
    assert_eq!(clauses.len(), 9, "{v}");
    assert_eq!(clauses[8], (51, "9"), "{v}");
    let (code, _, all) = call(doc, &docs);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        all.contains("add `\"documents\": true` to its `grants`"),
        "{all}"
    );
}

/// The Go plugin (a wasip1 reactor, run as a core module with `_initialize` first): a contract's
/// defined terms with where they are defined and used, from a text or (granted) from a run's
/// document — the Apache License's own definitions.
#[test]
fn the_go_definitions_plugin_finds_defined_terms_and_their_uses() {
    let wasm = built("plugins/definitions-go/definitions.wasm");
    let call = |args: &str, extra: &[&str]| plugin_call(&wasm, "terms", args, extra);
    let text = "The Supplier shall deliver on time.\n\"Buyer\" means Contoso Retail plc.\nAcme Ltd (the \u{201c}Supplier\u{201d}) agrees.\n\"Deliverables\" means the reports.\nThe Buyer pays the Supplier.\n";
    let (code, out, all) = call(&json!({"text": text}).to_string(), &[]);
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("log info: found defined terms"), "{all}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["lines"], 5, "{v}");
    let terms: Vec<(&str, u64, u64, Value, bool)> = v["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["term"].as_str().unwrap(),
                t["line"].as_u64().unwrap(),
                t["uses"].as_u64().unwrap(),
                t["first_use"].clone(),
                t["used_before_definition"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        terms,
        vec![
            ("Buyer", 2, 1, json!(5), false),
            ("Supplier", 3, 2, json!(1), true),
            ("Deliverables", 4, 0, Value::Null, false),
        ]
    );
    assert_eq!(v["unused"], json!(["Deliverables"]));
    let (code, out, all) = call(&json!({"text": text, "max_terms": 1}).to_string(), &[]);
    assert_eq!(code, Some(0), "{all}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["terms"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["truncated"], true, "{v}");

    // A licence of the run, with the grant: its definitions section, and the appendix's
    // boilerplate defining "License" again. Without the grant, the refusal names it.
    let doc = r#"{"document": "Apache-2.0.txt"}"#;
    let docs = ["--docs", "examples/documents/licenses"];
    let (code, out, all) = call(doc, &[&docs[..], &["--grant", "documents"]].concat());
    assert_eq!(code, Some(0), "{all}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["term"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "License",
            "Licensor",
            "Legal Entity",
            "You",
            "Your",
            "Source",
            "Object",
            "Work",
            "Derivative Works",
            "Contribution",
            "Contributor"
        ],
        "{v}"
    );
    // Lines of the document as the run has it (its leading blank line dropped: line 10 of
    // the file), the same lines every other tool cites.
    assert_eq!(v["terms"][0]["line"], 9, "{v}");
    assert_eq!(v["terms"][0]["also_defined_at"], json!([191]), "{v}");
    assert_eq!(v["unused"], json!([]), "{v}");
    let (code, _, all) = call(doc, &docs);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        all.contains("add `\"documents\": true` to its `grants`"),
        "{all}"
    );
}
