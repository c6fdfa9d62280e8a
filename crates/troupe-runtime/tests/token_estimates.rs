//! The token estimate against real tokenizers: for texts in many scripts, the estimate that
//! budgets every prompt is never below the count of the default model's own vocabulary (Gemma 3,
//! loaded through llama.cpp) nor of OpenAI's `o200k_base` and `cl100k_base`, so a prompt cut to
//! the window by the estimate fits it.
//!
//! The Gemma check is skipped (with a message) only when the model file is absent; with
//! `TROUPE_REQUIRE_MODEL=1` (as `scripts/test.sh` sets) a missing model is a failure.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
#[cfg(feature = "local")]
use std::sync::Arc;

use troupe_docs::estimate_tokens;
#[cfg(feature = "local")]
use troupe_llm::local::{LocalModel, models_dir, resolve};

#[cfg(feature = "local")]
fn model() -> Option<Arc<LocalModel>> {
    let env = |k: &str| std::env::var(k).ok();
    match resolve("", &models_dir(&env)) {
        Ok(path) => Some(LocalModel::shared(&path).unwrap()),
        Err(e) if std::env::var("TROUPE_REQUIRE_MODEL").is_ok_and(|v| v == "1") => {
            panic!("TROUPE_REQUIRE_MODEL=1 but the model is missing: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every sample: one per script under `tests/fixtures/scripts`, the Chinese policy and an
/// English licence from `examples/documents`.
fn samples() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.push(repo().join("examples/documents/zh/data-protection-policy.md"));
    files.push(repo().join("examples/documents/licenses/Apache-2.0.txt"));
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The text and three prefixes of it: a prompt is often cut mid-document.
fn with_prefixes(text: &str) -> Vec<(usize, &str)> {
    let mut parts = vec![(text.len(), text)];
    for cut in [text.len() / 7, text.len() / 3, text.len() / 2] {
        let cut = (cut..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap();
        parts.push((cut, &text[..cut]));
    }
    parts
}

#[test]
fn the_estimate_is_never_below_openais_counts_in_any_script() {
    let vocabularies = [
        ("o200k_base", tiktoken_rs::o200k_base().unwrap()),
        ("cl100k_base", tiktoken_rs::cl100k_base().unwrap()),
    ];
    let mut under = Vec::new();
    eprintln!("sample\tchars\to200k\tcl100k\testimate");
    for (name, text) in samples() {
        let counts: Vec<usize> = vocabularies
            .iter()
            .map(|(_, v)| v.encode_ordinary(&text).len())
            .collect();
        eprintln!(
            "{name}\t{}\t{}\t{}\t{}",
            text.chars().count(),
            counts[0],
            counts[1],
            estimate_tokens(&text)
        );
        for (cut, part) in with_prefixes(&text) {
            for (vocab, v) in &vocabularies {
                let real = v.encode_ordinary(part).len();
                if estimate_tokens(part) < real {
                    under.push(format!(
                        "{name}[..{cut}] ({vocab}): estimate {} < {real} real tokens",
                        estimate_tokens(part)
                    ));
                }
            }
        }
    }
    assert!(
        under.is_empty(),
        "the estimate is too low:\n{}",
        under.join("\n")
    );
}

#[cfg(feature = "local")]
#[tokio::test]
async fn the_estimate_is_never_below_gemmas_count_in_any_script() {
    let Some(m) = model() else { return };
    let mut under = Vec::new();
    eprintln!("sample\tchars\tgemma\testimate\testimate/gemma");
    for (name, text) in samples() {
        let real = m.count_tokens(&text).await.unwrap();
        let est = estimate_tokens(&text);
        eprintln!(
            "{name}\t{}\t{real}\t{est}\t{:.2}",
            text.chars().count(),
            est as f64 / real as f64
        );
        for (cut, part) in with_prefixes(&text) {
            let real = m.count_tokens(part).await.unwrap();
            if estimate_tokens(part) < real {
                under.push(format!(
                    "{name}[..{cut}]: estimate {} < {real} real tokens",
                    estimate_tokens(part)
                ));
            }
        }
    }
    assert!(
        under.is_empty(),
        "the estimate is too low:\n{}",
        under.join("\n")
    );
}
