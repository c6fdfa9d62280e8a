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
    let doc = repo().join("examples/documents/BSD-3-Clause.txt");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .arg("run")
        .arg(repo().join("crews/document-review.json"))
        .arg("--input-file")
        .arg(format!("document={}", doc.display()))
        .args(["--input", "document_name=the BSD 3-Clause licence", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Structured findings that satisfy the crew's schema, and a non-empty report.
    let crew = read_json(&repo().join("crews/document-review.json"));
    let schema = &crew["tasks"][0]["output_schema"];
    let findings = read_json(&out.join("findings.json"));
    let validator = jsonschema::validator_for(schema).unwrap();
    assert!(validator.is_valid(&findings), "{findings:#}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.trim().len() > 20, "{report}");

    let run = read_json(&out.join("run.json"));
    assert_eq!(run["status"], "completed");
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
    assert_eq!(of_type(&ev, "review_verdict").len(), 1);
}
