//! `schema/crew.schema.json` is generated from the Rust types; this fails when it is stale.
//! Regenerate with `cargo run -p troupe-cli -- schema --out schema/crew.schema.json`.

#[test]
fn checked_in_schema_matches_the_types() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/crew.schema.json");
    let on_disk = std::fs::read_to_string(&path).expect("schema/crew.schema.json exists");
    let generated = troupe_crew::schema::crew_schema_pretty();
    assert!(
        on_disk == generated,
        "schema/crew.schema.json is stale: run `cargo run -p troupe-cli -- schema --out schema/crew.schema.json`"
    );
}

/// `schema/policy.schema.json` likewise (`troupe schema --policy`); the example policy keeps it.
#[test]
fn checked_in_policy_schema_matches_the_types_and_the_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let on_disk = std::fs::read_to_string(root.join("schema/policy.schema.json"))
        .expect("schema/policy.schema.json exists");
    assert!(
        on_disk == troupe_crew::schema::policy().pretty(),
        "schema/policy.schema.json is stale: run `cargo run -p troupe-cli -- schema --policy --out schema/policy.schema.json`"
    );
    let example = root.join("plugins/policy.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&example).unwrap()).unwrap();
    assert_eq!(v["$schema"], "../schema/policy.schema.json");
    let validator = troupe_crew::schema::policy().validator().unwrap();
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn every_example_crew_declares_and_satisfies_the_schema() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crews");
    let schema = troupe_crew::schema::crew_schema();
    let validator = jsonschema::validator_for(schema).unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(
                v["$schema"],
                "../schema/crew.schema.json",
                "{}",
                path.display()
            );
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            // `document` comes from `--input-file` in the README's main command.
            let inputs = [("document".to_string(), "text".to_string())].into();
            troupe_crew::load(&path, &inputs).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 4, "expected the example crews, found {n}");
}
