//! The JSON Schemas of the files Troupe reads, generated from the wire types (so they cannot
//! drift from them): the crew file, and the plugin policy of `troupe mcp serve` (whose
//! `plugins` are a crew's `plugins`, so every path under it reads the same in both).

use std::sync::OnceLock;

use serde_json::Value;

use crate::diag::{JsonPath, Seg};
use crate::wire::{CrewFile, PolicyFile};

/// A file's schema, its compiled validator, and the lookups that explain its errors.
pub struct FileSchema {
    value: Value,
    validator: Result<jsonschema::Validator, String>,
    /// What the file is called in messages ("the crew file").
    pub noun: &'static str,
    /// The command that prints this schema.
    pub command: &'static str,
}

impl FileSchema {
    fn new(mut value: Value, id: &str, noun: &'static str, command: &'static str) -> Self {
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "$id".into(),
                Value::String(format!("https://troupe.dev/schema/{id}")),
            );
        }
        // Compiled once per process (compiling costs more than validating a file).
        let validator = jsonschema::validator_for(&value).map_err(|e| e.to_string());
        FileSchema {
            value,
            validator,
            noun,
            command,
        }
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    pub fn validator(&self) -> Result<&jsonschema::Validator, String> {
        self.validator.as_ref().map_err(Clone::clone)
    }

    /// The schema nodes that describe the value at `path` (every branch of its `anyOf`s followed).
    fn nodes_at(&self, path: &JsonPath) -> Vec<&Value> {
        let root = &self.value;
        let mut nodes = vec![root];
        for seg in &path.0 {
            nodes = nodes
                .iter()
                .flat_map(|n| branches(root, n))
                .filter_map(|node| match seg {
                    Seg::Key(k) => node.get("properties").and_then(|p| p.get(k)),
                    Seg::Index(_) => node.get("items"),
                })
                .collect();
        }
        nodes
    }

    /// The property names the schema allows for the object at `path` (for "did you mean").
    pub fn keys_at(&self, path: &JsonPath) -> Vec<String> {
        let root = &self.value;
        let mut keys: Vec<String> = self
            .nodes_at(path)
            .iter()
            .flat_map(|n| branches(root, n))
            .filter_map(|n| n.get("properties").and_then(Value::as_object))
            .flat_map(|p| p.keys().cloned())
            .collect();
        keys.dedup();
        keys
    }

    /// The JSON type the schema gives the value at `path` (`"string"`, `"array"`, …; `null` left
    /// out of optional values), for stand-in values.
    pub fn type_at(&self, path: &JsonPath) -> Option<String> {
        let root = &self.value;
        self.nodes_at(path)
            .iter()
            .flat_map(|n| branches(root, n))
            .find_map(|n| match n.get("type") {
                Some(Value::String(t)) if t != "null" => Some(t.clone()),
                Some(Value::Array(ts)) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|t| *t != "null")
                    .map(String::from),
                _ if n.get("properties").is_some() => Some("object".into()),
                _ if n.get("enum").is_some() => Some("string".into()),
                _ => None,
            })
    }

    /// The string values (`enum` / `const`) the schema allows at `path`, for "did you mean".
    pub fn values_at(&self, path: &JsonPath) -> Vec<String> {
        let root = &self.value;
        let mut out = Vec::new();
        for n in self.nodes_at(path).iter().flat_map(|n| branches(root, n)) {
            for alt in branches(root, n) {
                if let Some(c) = alt.get("const").and_then(Value::as_str) {
                    out.push(c.to_string());
                }
                if let Some(e) = alt.get("enum").and_then(Value::as_array) {
                    out.extend(e.iter().filter_map(Value::as_str).map(String::from));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The crew file's schema.
pub fn crew() -> &'static FileSchema {
    static SCHEMA: OnceLock<FileSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        FileSchema::new(
            schemars::schema_for!(CrewFile).to_value(),
            "crew.schema.json",
            "the crew file",
            "troupe schema",
        )
    })
}

/// The schema of a plugin policy (`troupe mcp serve --policy`).
pub fn policy() -> &'static FileSchema {
    static SCHEMA: OnceLock<FileSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        FileSchema::new(
            schemars::schema_for!(PolicyFile).to_value(),
            "policy.schema.json",
            "the policy file",
            "troupe schema --policy",
        )
    })
}

/// The crew file's JSON Schema.
pub fn crew_schema() -> &'static Value {
    crew().value()
}

/// The schema as the checked-in `schema/crew.schema.json` holds it.
pub fn crew_schema_pretty() -> String {
    crew().pretty()
}

impl FileSchema {
    /// The schema as the checked-in file holds it.
    pub fn pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.value).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A node with `$ref` resolved and `anyOf`/`oneOf` expanded into its alternatives.
fn branches<'a>(root: &'a Value, node: &'a Value) -> Vec<&'a Value> {
    let node = resolve(root, node);
    let mut out = vec![node];
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(alts) = node.get(key).and_then(Value::as_array) {
            out.extend(alts.iter().map(|a| resolve(root, a)));
        }
    }
    out
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|p| root.pointer(p))
            .unwrap_or(node),
        None => node,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_refs_and_arrays() {
        let s = crew();
        let keys = s.keys_at(&JsonPath::root().key("agents").index(0));
        assert!(keys.contains(&"role".to_string()), "{keys:?}");
        let keys = s.keys_at(&JsonPath::root().key("tasks").index(2).key("review"));
        assert!(keys.contains(&"max_rounds".to_string()), "{keys:?}");
        assert!(
            s.keys_at(&JsonPath::root())
                .contains(&"process".to_string())
        );
        assert_eq!(
            s.type_at(&JsonPath::root().key("agents")).as_deref(),
            Some("array")
        );
        let role = JsonPath::root().key("agents").index(3).key("role");
        assert_eq!(s.type_at(&role).as_deref(), Some("string"));
        let limits = JsonPath::root().key("limits").key("max_iterations");
        assert_eq!(s.type_at(&limits).as_deref(), Some("integer"));
        assert_eq!(
            s.values_at(&JsonPath::root().key("process")),
            vec!["hierarchical", "parallel", "sequential"]
        );
    }

    /// A policy's `plugins` read as a crew's: the same keys under it, and only `plugins` (and
    /// `$schema`) at its top.
    #[test]
    fn a_policy_is_a_crews_plugins() {
        let (crew, policy) = (crew(), policy());
        let entry = JsonPath::root().key("plugins").index(0).key("limits");
        assert_eq!(policy.keys_at(&entry), crew.keys_at(&entry));
        assert!(policy.keys_at(&entry).contains(&"deadline_ms".to_string()));
        assert_eq!(
            policy.keys_at(&JsonPath::root()),
            vec!["$schema", "plugins"]
        );
        assert!(policy.validator().is_ok());
    }
}
