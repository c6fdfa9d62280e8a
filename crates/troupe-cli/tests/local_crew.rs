//! The README's main job, through the binary, on the embedded model: no endpoint, no key.
//! Skipped only when the model file is absent and `TROUPE_REQUIRE_MODEL` is not `1`.
#![allow(clippy::print_stderr)]

mod common;

use common::*;

fn model_present() -> bool {
    let dir = std::env::var("TROUPE_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/troupe/models")
        });
    let present = dir.join("gemma-3-270m-q4_k_m.gguf").is_file();
    if !present {
        assert!(
            std::env::var("TROUPE_REQUIRE_MODEL").as_deref() != Ok("1"),
            "TROUPE_REQUIRE_MODEL=1 but the default model is not in {}",
            dir.display()
        );
        eprintln!("skipping: the default model is not installed (run scripts/fetch-model.sh)");
    }
    present
}

#[test]
fn document_review_runs_offline_on_the_embedded_model() {
    if !model_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let doc = repo().join("examples/documents/licenses/BSD-3-Clause.txt");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .arg("run")
        .arg(repo().join("crews/document-review.json"))
        .arg("--docs")
        .arg(&doc)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    // The run succeeds only when the report passed its checks and the review gate: a 270M base
    // model's statements usually do not say what their quotes say, and then the task ends
    // `not_approved` and the exit code is 1. Either way the status and the exit code agree.
    let run = read_json(&out.join("run.json"));
    let report_status = task(&run, "report")["status"].as_str().unwrap().to_string();
    match o.status.code() {
        Some(0) => assert_eq!(report_status, "completed", "{}", text(&o)),
        Some(1) => assert!(
            ["not_approved", "unreviewed"].contains(&report_status.as_str()),
            "{report_status}: {}",
            text(&o)
        ),
        c => panic!("exit {c:?}: {}", text(&o)),
    }

    // Structured findings that satisfy the crew's schema; on the embedded model every quote is
    // words of the document (the grammar allows nothing else) and every chunk id exists.
    let crew = read_json(&repo().join("crews/document-review.json"));
    let schema = &crew["tasks"][0]["output_schema"];
    let findings = read_json(&out.join("findings.BSD-3-Clause.txt.json"));
    let validator = jsonschema::validator_for(schema).unwrap();
    assert!(validator.is_valid(&findings), "{findings:#}");
    let source = std::fs::read_to_string(&doc).unwrap();
    let flat = source.split_whitespace().collect::<Vec<_>>().join(" ");
    for f in findings["findings"].as_array().unwrap() {
        let quote = f["quote"].as_str().unwrap();
        assert!(flat.contains(quote), "not in the document: {quote}");
        assert!(
            f["chunk"]
                .as_str()
                .unwrap()
                .starts_with("BSD-3-Clause.txt:")
        );
    }
    // The report: the writer's text, the findings with numbered citations, checked sources.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.starts_with("# document-review\n"), "{report}");
    assert!(report.contains("## Sources\n\n1. "), "{report}");
    // Every citation of the findings is verified: chunk and quote were chosen by the grammar.
    let report_json = read_json(&out.join("report.json"));
    let from_findings: Vec<&serde_json::Value> = report_json["citations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["cited_by"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "extract[BSD-3-Clause.txt]")
        })
        .collect();
    assert!(!from_findings.is_empty(), "{report_json:#}");
    for c in from_findings {
        assert_eq!(c["check"]["status"], "verified", "{c:#}");
        assert!(
            report.contains(&format!("{}. BSD-3-Clause.txt, line", c["n"])),
            "{report}"
        );
    }

    // The body is cited statements, never an echo of the prompt: each statement names a verified
    // finding (the grammar allows nothing else), so every claim is cited and verified; the summary
    // counts what the support check found, and report.md says the same.
    let body = &report_json["summary"]["body"];
    let statements = body["statements"].as_u64().unwrap();
    assert!(statements >= 1, "{report_json:#}");
    assert_eq!(body["cited"], statements, "{report_json:#}");
    assert_eq!(body["verified"], statements, "{report_json:#}");
    assert_eq!(body["echoes_prompt"], false, "{report_json:#}");
    assert!(
        !report.contains("You are Plain-language writer"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "_Report: {statements} statement(s), {statements} cited, {statements} verified, {} supported",
            body["supported"]
        )),
        "{report}"
    );
    assert!(run["totals"]["output_tokens"].as_u64().unwrap() > 0);
    // every answer was capped by the crew's `llm.max_tokens`
    let ev = events(&out);
    for r in of_type(&ev, "llm_response") {
        assert!(r["output_tokens"].as_u64().unwrap() <= 512, "{r}");
    }
    let req = of_type(&ev, "llm_request");
    assert!(
        req[0]["model"]
            .as_str()
            .unwrap()
            .starts_with("local:gemma-3-270m"),
        "{}",
        req[0]
    );
    // One review round, decided by the checks or by the reviewer.
    assert_eq!(of_type(&ev, "review_verdict").len(), 1);
}

/// `"provider": "auto"` asks for the embedded model to stand in for an API model when no
/// endpoint is configured: `validate` warns, and the run says so in a `model_fallback` event.
#[test]
fn provider_auto_lets_the_embedded_model_stand_in_and_says_so() {
    if !model_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let crew = serde_json::json!({
        "name": "x", "llm": {"provider": "auto", "model": "gpt-4o-mini", "max_tokens": 16},
        "agents": [{"id": "a", "role": "Greeter", "goal": "Greet"}],
        "tasks": [{"id": "t", "agent": "a", "description": "Say hello in three words."}]
    });
    let path = crew_file(tmp.path(), "c.json", &crew);
    let troupe = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"));
        c.env_remove("OPENAI_API_KEY").env_remove("OPENAI_BASE_URL");
        c
    };
    let o = troupe().arg("validate").arg(&path).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: agent `a` names model `gpt-4o-mini`; the embedded model `gemma-3-270m-q4_k_m.gguf` stands in for it"),
        "{err}"
    );
    let out = tmp.path().join("out");
    let o = troupe()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let events = events(&out);
    let fallback = of_type(&events, "model_fallback");
    assert_eq!(fallback.len(), 1, "{events:#?}");
    assert_eq!(fallback[0]["agent"], "a");
    assert_eq!(fallback[0]["requested"], "gpt-4o-mini");
    assert_eq!(fallback[0]["used"], "gemma-3-270m-q4_k_m.gguf");
    let requests = of_type(&events, "llm_request");
    assert!(!requests.is_empty());
    for r in requests {
        let model = r["model"].as_str().unwrap();
        assert!(model.contains("gemma"), "{model}");
    }
}
