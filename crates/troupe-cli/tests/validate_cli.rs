//! `troupe validate` and `troupe schema` through the binary.

mod common;

use common::*;
use serde_json::json;

#[test]
fn validate_reports_every_problem_with_place_and_hint_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("broken.json");
    std::fs::write(
        &path,
        r#"{
  "name": "broken",
  "llm": { "model": "m" },
  "agents": [ { "id": "a", "role": "R", "goal": "G", "tools": ["text.stat"] } ],
  "tasks": [ { "id": "t", "agent": "b", "description": "About {topic}" } ]
}"#,
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["validate"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("broken.json:5:36: unknown agent `b`"), "{err}");
    assert!(err.contains("hint: agents in this crew: `a`"), "{err}");
    assert!(
        err.contains("broken.json:5:56: placeholder `{topic}` has no input"),
        "{err}"
    );
    assert!(err.contains("2 errors in the crew file"), "{err}");

    // Fixed crew errors reveal the tool error, also located, with a suggestion.
    let fixed = std::fs::read_to_string(&path)
        .unwrap()
        .replace(r#""agent": "b""#, r#""agent": "a""#);
    std::fs::write(&path, fixed).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["validate", "--input", "topic=x"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("broken.json:4:64: agent `a`: no tool matches `text.stat`"),
        "{err}"
    );
    assert!(err.contains("hint: did you mean `text.stats`?"), "{err}");
}

#[test]
fn validate_accepts_the_example_crews() {
    for crew in [
        "research-report",
        "parallel-briefing",
        "hierarchical-team",
        "structured-extraction",
    ] {
        // These crews name an API model: validate checks, as run does, that it can be reached.
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .env("OPENAI_API_KEY", "sk-test")
            .arg("validate")
            .arg(repo().join(format!("crews/{crew}.json")))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{crew}: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("ok"));
    }
}

/// A crew that names `gpt-4o-mini` and finds no key does not quietly run on the embedded
/// model: `validate` and `run` both refuse it, saying how to give it an endpoint or how to ask
/// for the stand-in. Nothing runs.
#[test]
fn an_api_model_without_an_endpoint_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let crew = json!({
        "name": "x", "llm": {"model": "gpt-4o-mini"},
        "agents": [{"id": "a", "role": "R", "goal": "G"}],
        "tasks": [{"id": "t", "agent": "a", "description": "Say hello"}]
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let out = tmp.path().join("out");
    for args in [
        vec!["validate"],
        vec!["run", "--out", out.to_str().unwrap()],
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .args(&args)
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("agent `a`: model `gpt-4o-mini` is not a local model, and no endpoint is configured: `OPENAI_API_KEY` is not set"),
            "{err}"
        );
        assert!(err.contains("hint: export OPENAI_API_KEY="), "{err}");
        assert!(err.contains(r#"`"provider": "auto"`"#), "{err}");
    }
    assert!(!out.join("run.json").exists(), "nothing may run");
}

#[test]
fn a_bom_and_duplicate_keys_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.json");
    std::fs::write(
        &path,
        "\u{feff}{\n  \"name\": \"x\",\n  \"agents\": [{\"id\": \"a\", \"role\": \"R\", \"goal\": \"G\", \"goal\": \"H\"}],\n  \"tasks\": [{\"id\": \"t\", \"agent\": \"a\", \"description\": \"D\"}]\n}\n",
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("c.json:3:52: duplicate key `goal` (first written on line 3)"),
        "{err}"
    );
    assert!(
        !err.contains("expected value"),
        "the BOM is not a syntax error: {err}"
    );
    assert!(err.contains("1 error in the crew file"), "{err}");
}

#[test]
fn a_missing_crew_file_is_a_user_error() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["run", "no/such/crew.json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot read crew file `no/such/crew.json`"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn a_malformed_input_flag_is_a_user_error() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("validate")
        .arg(repo().join("crews/research-report.json"))
        .args(["--input", "topic"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("hint: write it as `--input topic="));
}

#[test]
fn input_files_fill_placeholders() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("t.txt"), "the tides of Brittany").unwrap();
    let crew = json!({
        "name": "x", "llm": {"model": "m"},
        "agents": [{"id": "a", "role": "R", "goal": "G"}],
        "tasks": [{"id": "t", "agent": "a", "description": "Summarise {doc}"}]
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let server = troupe_testkit::FakeServer::start(|r| troupe_testkit::Reply::text(r.task()));
    let arg = format!("doc={}", tmp.path().join("t.txt").display());
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &path, &out, &["--input-file", &arg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    let got = run["tasks"][0]["output"].as_str().unwrap();
    assert!(got.contains("Summarise the tides of Brittany"), "{got}");
}

#[test]
fn schema_command_prints_the_checked_in_schema() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let printed = String::from_utf8_lossy(&o.stdout).to_string();
    let on_disk = std::fs::read_to_string(repo().join("schema/crew.schema.json")).unwrap();
    assert_eq!(printed, on_disk);
}
