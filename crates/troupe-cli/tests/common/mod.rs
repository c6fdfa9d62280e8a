//! Helpers for end-to-end tests: run the `troupe` binary against the fake model server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

use serde_json::Value;

/// The repository root (crews/ lives there).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A plugin under plugins/ (`rel` from the repository root), built from source once per test
/// binary by plugins/build.sh (idempotent; it installs the toolchains it needs).
pub fn built(rel: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new(repo().join("plugins/build.sh"))
            .status()
            .unwrap();
        assert!(status.success(), "plugins/build.sh failed");
    });
    let p = repo().join(rel);
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// A file of the MCP counterparts (`rel` under scripts/mcp), installed, pinned, once per test
/// binary by scripts/mcp-servers.sh (idempotent).
pub fn mcp_installed(rel: &str) -> PathBuf {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let status = Command::new(repo().join("scripts/mcp-servers.sh"))
            .status()
            .unwrap();
        assert!(status.success(), "scripts/mcp-servers.sh failed");
    });
    // The directory made canonical, not the file: a venv's `python` is a link, and followed it
    // would be the system's Python, without the venv's packages.
    let p = repo().canonicalize().unwrap().join("scripts/mcp").join(rel);
    assert!(p.is_file(), "{} is not installed", p.display());
    p
}

/// `troupe` with a clean model environment pointing at `base_url`.
pub fn troupe(base_url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_troupe"));
    c.env_remove("OPENAI_API_KEY")
        .env("OPENAI_BASE_URL", base_url)
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_MODEL", "fake-model")
        // One run store for the test processes of the build, never the user's own.
        .env(
            "TROUPE_STORE",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("runs.db"),
        )
        // One plugin cache for every test process of the build: each plugin compiles once.
        .env(
            "TROUPE_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("troupe-cache"),
        );
    c
}

pub fn run_crew(base_url: &str, crew: &Path, out: &Path, extra: &[&str]) -> Output {
    troupe(base_url)
        .arg("run")
        .arg(crew)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run troupe")
}

pub fn text(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn read_json(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

pub fn events(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

pub fn task<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in {run:#}"))
}

/// Writes a crew file into `dir` and returns its path.
pub fn crew_file(dir: &Path, name: &str, crew: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(crew).unwrap()).unwrap();
    p
}

/// Runs `crew` into a fresh temporary output directory, asserts that it completed, and returns
/// the directory (kept alive by the `TempDir`) and the output path.
pub fn run_completed(base_url: &str, crew: &Path, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_crew(base_url, crew, &out, extra);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    (tmp, out)
}

/// The request bodies the fake server received from the agent whose persona contains `role`.
pub fn requests_of(requests: Vec<Value>, role: &str) -> Vec<Value> {
    requests
        .into_iter()
        .filter(|b| {
            b["messages"][0]["content"]
                .as_str()
                .is_some_and(|c| c.contains(role))
        })
        .collect()
}

/// A statement a careful writer makes about the documents at `spec`: the first passage of the
/// first chunk, restated, quoted and cited by its chunk id — as `troupe run` chunks them with the
/// default options. It passes the statement check.
#[allow(dead_code)] // not every test binary uses every helper
pub fn cited_statement(spec: &Path) -> String {
    let (corpus, _) = troupe_docs::Corpus::load(
        &[spec.display().to_string()],
        Path::new("/"),
        &troupe_docs::LoadOptions::default(),
        troupe_docs::ChunkOptions::default(),
    )
    .expect("the test documents load");
    let chunk = &corpus.chunks()[0];
    let text = corpus.chunk_text(chunk);
    let quote: String = text
        .split(['.', '\n', '。'])
        .find(|s| s.split_whitespace().count() >= 4 || s.trim().chars().count() >= 12)
        .unwrap_or(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    format!("The document says {quote} \"{quote}\" [{}].", chunk.id)
}

/// A WAT plugin `kv` whose one tool `get` reads the key `k` of its key-value space: `ok` when it
/// may, else the host's refusal as the tool's error.
pub fn kv_wat() -> String {
    kv_wat_describing(
        r#"{"name": "kv", "version": "1", "tools": [{"name": "get", "description": "d", "parameters": {"type": "object"}}]}"#,
    )
}

/// [`kv_wat`] whose `describe` returns `describe`.
pub fn kv_wat_describing(describe: &str) -> String {
    format!(
        r#"(module
  (import "troupe:plugin/host@0.1.0" "kv-get" (func $kv_get (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 32768))
  (data (i32.const 1024) "{escaped}")
  (data (i32.const 3000) "ok")
  (data (i32.const 3100) "k")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.const 7)) (i32.const -8)))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (func (export "describe") (result i32)
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.const {len}))
    (i32.const 16))
  (func (export "invoke") (param i32 i32 i32 i32) (result i32)
    (call $kv_get (i32.const 3100) (i32.const 1) (i32.const 48))
    (if (i32.load8_u (i32.const 48))
      (then
        (i32.store8 (i32.const 32) (i32.const 1))
        (i32.store (i32.const 36) (i32.load (i32.const 52)))
        (i32.store (i32.const 40) (i32.load (i32.const 56))))
      (else
        (i32.store8 (i32.const 32) (i32.const 0))
        (i32.store (i32.const 36) (i32.const 3000))
        (i32.store (i32.const 40) (i32.const 2))))
    (i32.const 32)))"#,
        escaped = describe.replace('"', "\\\""),
        len = describe.len()
    )
}

/// The same plugin, looping forever in its call (for deadlines).
pub fn looping_wat() -> String {
    kv_wat().replace(
        "(call $kv_get (i32.const 3100) (i32.const 1) (i32.const 48))",
        "(loop $l (br $l))",
    )
}
