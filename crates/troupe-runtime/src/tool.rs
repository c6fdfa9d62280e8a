//! Tools agents may call: the [`Tool`] trait and the [`ToolRegistry`] that resolves the crew's
//! tool patterns and checks arguments once, at the boundary, for every tool.
//!
//! The WebAssembly plugin host implements [`Tool`] for each plugin tool; built-in tools live in
//! [`crate::builtin`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use troupe_llm::{BoxFuture, ToolSpec};

/// Each way `args` fails `schema`, with where (`/path: message`): what a caller is told so that
/// it can fix its arguments.
pub fn schema_errors(schema: &jsonschema::Validator, args: &Value) -> Vec<String> {
    schema
        .iter_errors(args)
        .map(|e| {
            let at = e.instance_path().as_str();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect()
}

/// A tool's failure, sent back to the model as the call's result so it can correct itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

/// Something an agent can call: a name, a description, a JSON Schema for its arguments.
pub trait Tool: Send + Sync {
    fn spec(&self) -> &ToolSpec;
    /// Runs the tool on arguments that already satisfy `spec().parameters`.
    fn call(&self, args: Value) -> BoxFuture<'_, Result<String, ToolError>>;
}

#[derive(Clone)]
struct Entry {
    tool: Arc<dyn Tool>,
    validator: Option<Arc<jsonschema::Validator>>,
}

/// Every tool available to a run, by name.
#[derive(Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Entry>,
}

/// The tools one agent may use.
#[derive(Clone, Default)]
pub struct Toolset {
    tools: Vec<Entry>,
    /// Names of the tools whose every call waits for a person's approval.
    approve: std::collections::BTreeSet<String>,
}

impl ToolRegistry {
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        let validator = jsonschema::validator_for(&tool.spec().parameters)
            .ok()
            .map(Arc::new);
        self.tools
            .insert(tool.spec().name.clone(), Entry { tool, validator });
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// The tools matching `patterns` (`name` or `prefix.*`); `Err` names the first pattern that
    /// matches nothing.
    pub fn resolve(&self, patterns: &[String]) -> Result<Toolset, String> {
        let mut out: Vec<Entry> = Vec::new();
        for pat in patterns {
            let matches: Vec<&Entry> = match pat.strip_suffix('*') {
                Some(prefix) => self
                    .tools
                    .iter()
                    .filter(|(n, _)| n.starts_with(prefix))
                    .map(|(_, e)| e)
                    .collect(),
                None => self.tools.get(pat).into_iter().collect(),
            };
            if matches.is_empty() {
                return Err(pat.clone());
            }
            for e in matches {
                if !out.iter().any(|o| o.tool.spec().name == e.tool.spec().name) {
                    out.push(e.clone());
                }
            }
        }
        Ok(Toolset {
            tools: out,
            approve: Default::default(),
        })
    }

    /// The names `pattern` (`name` or `prefix.*`) matches; `None` when it matches none.
    pub fn matching(&self, pattern: &str) -> Option<Vec<String>> {
        self.resolve(&[pattern.to_string()])
            .ok()
            .map(|t| t.tools.iter().map(|e| e.tool.spec().name.clone()).collect())
    }
}

impl Toolset {
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|e| e.tool.spec().clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Marks these tools as needing a person's approval before each call.
    pub fn require_approval(&mut self, names: impl IntoIterator<Item = String>) {
        self.approve.extend(names);
    }

    /// Whether a call of `name` waits for a person's approval.
    pub fn needs_approval(&self, name: &str) -> bool {
        self.approve.contains(name)
    }

    /// Calls `name` with the model's raw argument text. Every failure — unknown tool, arguments
    /// that are not JSON or do not fit the schema, the tool's own error — comes back as a
    /// [`ToolError`] that tells the model what to fix.
    pub async fn call(&self, name: &str, raw_args: &str) -> Result<String, ToolError> {
        let Some(Entry { tool, validator }) =
            self.tools.iter().find(|e| e.tool.spec().name == name)
        else {
            let names: Vec<&str> = self
                .tools
                .iter()
                .map(|e| e.tool.spec().name.as_str())
                .collect();
            return Err(ToolError(format!(
                "there is no tool `{name}`; the tools you can call are: {}",
                if names.is_empty() {
                    "(none)".into()
                } else {
                    names.join(", ")
                }
            )));
        };
        let raw = if raw_args.trim().is_empty() {
            "{}"
        } else {
            raw_args
        };
        let args: Value = serde_json::from_str(raw).map_err(|e| {
            ToolError(format!(
                "the arguments are not valid JSON ({e}); send one JSON object matching the tool's parameters"
            ))
        })?;
        if let Some(v) = validator {
            let errors = schema_errors(v, &args);
            if !errors.is_empty() {
                return Err(ToolError(format!(
                    "the arguments do not match the tool's parameters: {}",
                    errors.join("; ")
                )));
            }
        }
        tool.call(args).await
    }
}
