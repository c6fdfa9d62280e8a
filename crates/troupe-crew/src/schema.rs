//! The crew file's JSON Schema, generated from the wire types (so it cannot drift from them).

use std::sync::OnceLock;

use serde_json::Value;

use crate::diag::{JsonPath, Seg};
use crate::wire::CrewFile;

/// The crew file's JSON Schema.
pub fn crew_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut schema = schemars::schema_for!(CrewFile).to_value();
        if let Some(obj) = schema.as_object_mut() {
            obj.insert(
                "$id".into(),
                Value::String("https://troupe.dev/schema/crew.schema.json".into()),
            );
        }
        schema
    })
}

/// The crew schema compiled once per process (compiling it costs more than validating a crew).
pub fn crew_validator() -> Result<&'static jsonschema::Validator, String> {
    static VALIDATOR: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| jsonschema::validator_for(crew_schema()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// The schema as the checked-in `schema/crew.schema.json` holds it.
pub fn crew_schema_pretty() -> String {
    let mut s = serde_json::to_string_pretty(crew_schema()).unwrap_or_default();
    s.push('\n');
    s
}

/// The schema nodes that describe the value at `path` (every branch of its `anyOf`s followed).
fn nodes_at(path: &JsonPath) -> Vec<&'static Value> {
    let root = crew_schema();
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
pub fn keys_at(path: &JsonPath) -> Vec<String> {
    let root = crew_schema();
    let mut nodes = vec![root];
    for seg in &path.0 {
        let mut next = Vec::new();
        for node in nodes.iter().flat_map(|n| branches(root, n)) {
            let child = match seg {
                Seg::Key(k) => node.get("properties").and_then(|p| p.get(k)),
                Seg::Index(_) => node.get("items"),
            };
            next.extend(child);
        }
        nodes = next;
    }
    let mut keys: Vec<String> = nodes
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
pub fn type_at(path: &JsonPath) -> Option<String> {
    let root = crew_schema();
    let nodes = nodes_at(path);
    nodes
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
pub fn values_at(path: &JsonPath) -> Vec<String> {
    let root = crew_schema();
    let nodes = nodes_at(path);
    let mut out = Vec::new();
    for n in nodes.iter().flat_map(|n| branches(root, n)) {
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
        let keys = keys_at(&JsonPath::root().key("agents").index(0));
        assert!(keys.contains(&"role".to_string()), "{keys:?}");
        let keys = keys_at(&JsonPath::root().key("tasks").index(2).key("review"));
        assert!(keys.contains(&"max_rounds".to_string()), "{keys:?}");
        assert!(keys_at(&JsonPath::root()).contains(&"process".to_string()));
        assert_eq!(
            type_at(&JsonPath::root().key("agents")).as_deref(),
            Some("array")
        );
        let role = JsonPath::root().key("agents").index(3).key("role");
        assert_eq!(type_at(&role).as_deref(), Some("string"));
        let limits = JsonPath::root().key("limits").key("max_iterations");
        assert_eq!(type_at(&limits).as_deref(), Some("integer"));
        assert_eq!(
            values_at(&JsonPath::root().key("process")),
            vec!["hierarchical", "parallel", "sequential"]
        );
    }
}
