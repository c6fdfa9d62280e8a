//! The crew's WebAssembly plugins as tools: loaded once per run (compiled once, described), each
//! tool registered as `<plugin id>.<tool>`, each call run in the plugin's sandbox.

use std::sync::Arc;

use serde_json::Value;
use troupe_crew::{Crew, Diagnostic, JsonPath, PluginDecl, Target};
use troupe_docs::Corpus;
use troupe_llm::{BoxFuture, ToolSpec};
use troupe_plugin::load::Kind;
use troupe_plugin::{
    CallReport, Grants, Limits, MAX_DENIALS_PER_CALL, Plugin, PluginError, Services,
};

use crate::events::{EventKind, Events, ms};
use crate::tool::{Tool, ToolError, ToolRegistry};

/// Loads every plugin the crew declares, all at once (compiling is CPU work off the async
/// threads; the cache makes a second load cheap); each failure is a diagnostic at its
/// `plugins[i].path`. Each load is a `plugin_loaded` event.
pub async fn load(
    crew: &Crew,
    corpus: Option<Arc<Corpus>>,
    events: &Events,
) -> Result<Vec<Arc<Plugin>>, Vec<Diagnostic>> {
    let mut loading = tokio::task::JoinSet::new();
    for (n, decl) in crew.plugins.iter().enumerate() {
        let decl = decl.clone();
        let services = Services {
            documents: corpus.clone(),
            ..Services::default()
        };
        loading.spawn(async move { (n, load_decl(&decl, services).await) });
    }
    let mut results: Vec<_> = loading.join_all().await;
    results.sort_by_key(|(n, _)| *n);
    let mut plugins = Vec::new();
    let mut problems = Vec::new();
    for ((_, loaded), decl) in results.into_iter().zip(&crew.plugins) {
        match loaded {
            Ok(p) => {
                events.emit(EventKind::PluginLoaded {
                    plugin: p.id.clone(),
                    path: p.path.display().to_string(),
                    kind: match p.kind {
                        Kind::Component => "component",
                        Kind::CoreModule => "core_module",
                    }
                    .into(),
                    tools: p.description.tools.iter().map(|t| t.name.clone()).collect(),
                    cache: p.cache,
                    cache_note: p.cache_note.clone(),
                    sha256: p.sha256.clone(),
                    duration_ms: ms(p.load_time),
                });
                plugins.push(Arc::new(p));
            }
            Err(e) => {
                let (message, hint) = match e {
                    PluginError::Load { path, reason, hint } => (
                        format!("plugin `{}` ({}): {reason}", decl.id, path.display()),
                        hint,
                    ),
                    PluginError::Call(m) => (format!("plugin `{}`: {m}", decl.id), String::new()),
                };
                problems.push(
                    crew.source.diagnostic(
                        &JsonPath::root()
                            .key("plugins")
                            .index(decl.index)
                            .key("path"),
                        Target::Value,
                        message,
                        Some(hint).filter(|h| !h.is_empty()),
                    ),
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(plugins)
    } else {
        Err(problems)
    }
}

/// What the crew grants each plugin against what the plugin declares it needs (its
/// `describe`'s `capabilities`): a declared capability the entry does not grant, with the
/// exact grant to add, and a grant the plugin never declared. Nothing for a plugin that
/// declares nothing. Warnings, not errors: the crew may mean to refuse what the plugin wants.
pub fn grant_notes(crew: &Crew, plugins: &[Arc<Plugin>]) -> Vec<Diagnostic> {
    use troupe_plugin::Capabilities;
    let mut notes = Vec::new();
    for p in plugins {
        let (Some(caps), Some(decl)) = (
            &p.description.capabilities,
            crew.plugins.iter().find(|d| d.id == p.id),
        ) else {
            continue;
        };
        let at = JsonPath::root().key("plugins").index(decl.index);
        let mut note = |message: String, hint: String| {
            notes.push(
                crew.source
                    .diagnostic(&at, Target::Value, message, Some(hint)),
            );
        };
        let id = &p.id;
        for (what, declared, granted, key) in [
            (
                "reads the run's documents",
                caps.documents,
                decl.documents,
                "documents",
            ),
            ("keeps a key-value space", caps.kv, decl.kv, "kv"),
        ] {
            if declared && !granted {
                note(
                    format!(
                        "plugin `{id}` declares that it {what}, but its entry does not grant `{key}`"
                    ),
                    format!(
                        "add `\"grants\": {{\"{key}\": true}}` to `plugins[{}]` if it should; without it those requests are refused",
                        decl.index
                    ),
                );
            }
            if granted && !declared {
                note(
                    format!("plugin `{id}` is granted `{key}`, which it does not declare it uses"),
                    format!(
                        "remove `\"{key}\": true` from its `grants` unless you know it needs it: a grant a plugin does not use is only risk"
                    ),
                );
            }
        }
        for host in &caps.http {
            if !Capabilities::host_granted(&decl.http, host) {
                note(
                    format!(
                        "plugin `{id}` declares HTTP requests to `{host}`, which its entry does not grant"
                    ),
                    format!(
                        "add `\"{host}\"` to its `grants.http` if it should; without it those requests are refused"
                    ),
                );
            }
        }
        for host in &decl.http {
            if !Capabilities::host_granted(&caps.http, host) {
                note(
                    format!("plugin `{id}` is granted HTTP to `{host}`, which it does not declare"),
                    format!(
                        "remove `\"{host}\"` from its `grants.http` unless you know it needs it"
                    ),
                );
            }
        }
    }
    notes
}

/// Loads one plugin with the grants, limits and config its declaration gives it (a crew's
/// `plugins[]` entry, or a policy's), and `services` for the rest.
pub async fn load_decl(decl: &PluginDecl, services: Services) -> Result<Plugin, PluginError> {
    let grants = Grants {
        documents: decl.documents,
        kv: decl.kv,
        http: decl.http.clone(),
    };
    let limits = Limits {
        deadline: decl.deadline,
        memory_bytes: decl.memory_bytes,
        output_bytes: decl.output_bytes,
        stdio_bytes: decl.stdio_bytes,
        log_lines: decl.log_lines,
        http_bytes: decl.http_bytes,
        kv_bytes: decl.kv_bytes,
        kv_keys: decl.kv_keys,
    };
    let services = Services {
        config: decl.config.clone(),
        ..services
    };
    Plugin::load_pinned(
        &decl.id,
        &decl.path,
        decl.sha256.as_deref(),
        grants,
        limits,
        services,
    )
    .await
}

/// Registers every tool of `plugins`; calls report to `events`. A tool whose name is already
/// registered (a built-in tool, or a plugin's second tool of that name) is not registered, never
/// replacing the first: its names are returned. (The crew's validation refuses plugin ids that
/// would shadow built-in tools, `troupe_crew::validate::RESERVED_PLUGIN_IDS`.)
pub fn register(
    registry: &mut ToolRegistry,
    plugins: &[Arc<Plugin>],
    events: &Events,
) -> Vec<String> {
    let mut refused = Vec::new();
    for plugin in plugins {
        for tool in &plugin.description.tools {
            let name = format!("{}.{}", plugin.id, tool.name);
            if registry.names().any(|n| n == name) {
                refused.push(name);
                continue;
            }
            registry.register(Arc::new(PluginTool {
                plugin: plugin.clone(),
                tool: tool.name.clone(),
                spec: ToolSpec {
                    name,
                    description: tool.description.clone(),
                    parameters: tool.parameters.clone(),
                },
                events: events.clone(),
            }));
        }
    }
    refused
}

struct PluginTool {
    plugin: Arc<Plugin>,
    tool: String,
    spec: ToolSpec,
    events: Events,
}

impl Tool for PluginTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, args: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let report = self.plugin.call(&self.tool, &args.to_string()).await;
            for event in call_events(&self.plugin.id, &self.tool, &self.plugin.limits, &report) {
                self.events.emit(event);
            }
            report.result.map_err(ToolError)
        })
    }
}

/// The events of one call: `plugin_call`, then a `limit_hit` for each limit the call reached.
pub fn call_events(id: &str, tool: &str, limits: &Limits, report: &CallReport) -> Vec<EventKind> {
    let hit = |limit: &str, value: String, key: &str, action: String| EventKind::LimitHit {
        task: None,
        agent: None,
        limit: limit.into(),
        value,
        key: format!("plugins[{id}].{key}"),
        action,
    };
    let mut events = vec![EventKind::PluginCall {
        plugin: id.to_string(),
        tool: tool.to_string(),
        ok: report.result.is_ok(),
        duration_ms: ms(report.duration),
        limit: report.limit.map(str::to_string),
        denied: report.denied.clone(),
        denied_total: report.denied_total,
        logs: report
            .logs
            .iter()
            .map(|l| format!("{}: {}", l.level, l.message))
            .collect(),
        stdout: report.stdout.clone(),
        stderr: report.stderr.clone(),
    }];
    if report.logs_dropped > 0 {
        events.push(hit(
            "log_lines",
            limits.log_lines.to_string(),
            "limits.log_lines",
            format!("{} further log line(s) dropped", report.logs_dropped),
        ));
    }
    if report.stdio_full {
        events.push(hit(
            "stdio_kb",
            (limits.stdio_bytes >> 10).to_string(),
            "limits.stdio_kb",
            "stdout/stderr beyond the cap was refused to the plugin".into(),
        ));
    }
    for key in &report.hits {
        let (limit, value, action) = match *key {
            "limits.http_kb" => (
                "http_kb",
                (limits.http_bytes >> 10).to_string(),
                "an HTTP response over the cap was refused to the plugin",
            ),
            "limits.kv_kb" => (
                "kv_kb",
                (limits.kv_bytes >> 10).to_string(),
                "a kv-set over the key-value space's quota was refused to the plugin",
            ),
            "limits.kv_keys" => (
                "kv_keys",
                limits.kv_keys.to_string(),
                "a kv-set of a new key beyond the key count was refused to the plugin",
            ),
            other => (
                other.trim_start_matches("limits."),
                String::new(),
                "refused",
            ),
        };
        events.push(hit(limit, value, key, action.into()));
    }
    if let Some(key) = report.limit {
        // A limit by its value, or a grant whose requests were denied until the call stopped.
        let (limit, value, action) = match key {
            "limits.deadline_ms" => ("deadline_ms", limits.deadline.as_millis().to_string(), None),
            "limits.memory_mb" => ("memory_mb", (limits.memory_bytes >> 20).to_string(), None),
            "limits.output_kb" => ("output_kb", (limits.output_bytes >> 10).to_string(), None),
            grant if grant.starts_with("grants.") => (
                "denied_requests",
                MAX_DENIALS_PER_CALL.to_string(),
                Some(format!(
                    "the call was stopped after {MAX_DENIALS_PER_CALL} denied requests; the agent got the error (grant `{grant}` if the plugin needs it)"
                )),
            ),
            other => (other.trim_start_matches("limits."), String::new(), None),
        };
        events.push(hit(
            limit,
            value,
            key,
            action.unwrap_or_else(|| "the call failed; the agent got the error".into()),
        ));
    }
    events
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report() -> CallReport {
        CallReport {
            result: Err("stopped".into()),
            logs: Vec::new(),
            logs_dropped: 0,
            stdout: String::new(),
            stderr: String::new(),
            stdio_full: false,
            denied: vec!["the key-value space was not granted".into()],
            denied_total: MAX_DENIALS_PER_CALL,
            duration: std::time::Duration::from_millis(1),
            limit: Some("grants.kv"),
            hits: vec!["limits.kv_kb", "limits.kv_keys"],
        }
    }

    fn json(events: &[EventKind]) -> Vec<Value> {
        events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    /// A denial loop and kv quota hits become a `plugin_call` with the count, and `limit_hit`
    /// events keyed by the plugin's crew-file keys.
    #[test]
    fn a_calls_counts_and_limits_become_events() {
        let events = json(&call_events("kvp", "go", &Limits::default(), &report()));
        assert_eq!(events.len(), 4, "{events:#?}");
        assert_eq!(events[0]["type"], "plugin_call");
        assert_eq!(events[0]["limit"], "grants.kv");
        assert_eq!(events[0]["denied"].as_array().unwrap().len(), 1);
        assert_eq!(events[0]["denied_total"], 64);
        assert_eq!(events[1]["type"], "limit_hit");
        assert_eq!(events[1]["key"], "plugins[kvp].limits.kv_kb");
        assert_eq!(events[1]["value"], "1024");
        assert_eq!(events[2]["key"], "plugins[kvp].limits.kv_keys");
        assert_eq!(events[2]["value"], "1000");
        assert_eq!(events[3]["limit"], "denied_requests");
        assert_eq!(events[3]["key"], "plugins[kvp].grants.kv");
        assert_eq!(events[3]["value"], "64");
        assert!(
            events[3]["action"]
                .as_str()
                .unwrap()
                .contains("stopped after 64 denied")
        );

        // A single denial is its message only; an output over the cap is keyed `output_kb`.
        let one = CallReport {
            denied_total: 1,
            limit: Some("limits.output_kb"),
            hits: Vec::new(),
            ..report()
        };
        let events = json(&call_events("p", "go", &Limits::default(), &one));
        assert_eq!(events[0]["denied"].as_array().unwrap().len(), 1);
        assert_eq!(events[1]["key"], "plugins[p].limits.output_kb");
        assert_eq!(events[1]["value"], "256");
    }
}
