//! A plugin policy (`troupe mcp serve --policy`) is a crew's `plugins` on their own, checked the
//! same way: every problem at once, each at its line:column with a hint; a good one gives the
//! same grants and limits a crew would.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use troupe_crew::{LoadError, Source};

fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("p.wat"), "(module)").unwrap();
    d
}

#[test]
fn a_policy_gives_each_plugin_its_grants_and_limits_with_the_crew_defaults() {
    let d = dir();
    let text = r#"{
  "plugins": [
    { "id": "reader", "path": "p.wat", "grants": { "documents": true, "http": ["api.example.org"] },
      "limits": { "deadline_ms": 500 }, "config": { "lang": "en" } },
    { "id": "plain", "path": "p.wat" }
  ]
}"#;
    let decls = troupe_crew::parse_policy(Source::new("policy.json", text.into()), d.path().into())
        .unwrap();
    assert_eq!(decls.len(), 2);
    let (reader, plain) = (&decls[0], &decls[1]);
    assert!(reader.documents && !reader.kv);
    assert_eq!(reader.http, ["api.example.org"]);
    assert_eq!(reader.deadline, Duration::from_millis(500));
    assert_eq!(reader.config["lang"], "en");
    assert_eq!(reader.path, d.path().join("p.wat"));
    // The crew file's defaults.
    assert!(!plain.documents && !plain.kv && plain.http.is_empty());
    assert_eq!(plain.deadline, Duration::from_millis(2000));
    assert_eq!(plain.memory_bytes, 64 << 20);
    assert_eq!(plain.output_bytes, 256 << 10);
}

#[test]
fn every_problem_of_a_policy_is_located_with_a_hint() {
    let d = dir();
    let text = r#"{
  "plugin": [],
  "plugins": [
    { "id": "docs", "path": "p.wat" },
    { "id": "gone", "path": "missing.wasm", "grants": { "kv": "yes" } },
    { "id": "big", "path": "p.wat", "limits": { "memory_mb": 99999, "deadlin_ms": 5 } }
  ]
}"#;
    let path = d.path().join("policy.json");
    std::fs::write(&path, text).unwrap();
    let err = troupe_crew::load_policy(&path).unwrap_err();
    let LoadError::InvalidPolicy(diags) = &err else {
        panic!("{err}")
    };
    let find = |at: &str| {
        diags
            .0
            .iter()
            .find(|d| d.path == at)
            .unwrap_or_else(|| panic!("nothing at {at}: {err}"))
    };
    let unknown = find("plugin");
    assert_eq!((unknown.line, unknown.column), (2, 3));
    assert!(
        unknown.hint.as_deref().unwrap().contains("`plugins`"),
        "{unknown}"
    );
    assert!(find("plugins[0].id").message.contains("reserved"));
    assert!(find("plugins[1].path").message.contains("does not exist"));
    assert_eq!(find("plugins[1].path").line, 5);
    assert!(find("plugins[1].grants.kv").message.contains("boolean"));
    assert!(find("plugins[2].limits.memory_mb").hint.is_some());
    assert!(
        find("plugins[2].limits.deadlin_ms")
            .hint
            .as_deref()
            .unwrap()
            .contains("deadline_ms")
    );
    assert!(diags.0.iter().all(|d| d.hint.is_some()), "{err}");
    let shown = err.to_string();
    assert!(shown.ends_with("6 errors in the policy file"), "{shown}");
    assert!(shown.contains("policy.json:2:3"), "{shown}");

    // A file that is not there says which kind of file it wanted.
    let missing = troupe_crew::load_policy(Path::new("no/such/policy.json")).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("cannot read policy file `no/such/policy.json`"),
        "{missing}"
    );
}
