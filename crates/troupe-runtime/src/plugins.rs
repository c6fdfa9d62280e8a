//! The crew's WebAssembly plugins as tools: loaded once per run (compiled once, described), each
//! tool registered as `<plugin id>.<tool>`, each call run in the plugin's sandbox.

use std::sync::Arc;

use serde_json::Value;
use troupe_crew::{Crew, Diagnostic, JsonPath, Target};
use troupe_docs::Corpus;
use troupe_llm::{BoxFuture, ToolSpec};
use troupe_plugin::load::Kind;
use troupe_plugin::{Grants, Limits, Plugin, PluginError, Services};

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
        loading.spawn(async move {
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
            };
            let services = Services {
                config: decl.config.clone(),
                ..services
            };
            let loaded = Plugin::load(&decl.id, &decl.path, grants, limits, services).await;
            (n, loaded)
        });
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

/// Registers every tool of `plugins`; calls report to `events`.
pub fn register(registry: &mut ToolRegistry, plugins: &[Arc<Plugin>], events: &Events) {
    for plugin in plugins {
        for tool in &plugin.description.tools {
            registry.register(Arc::new(PluginTool {
                plugin: plugin.clone(),
                tool: tool.name.clone(),
                spec: ToolSpec {
                    name: format!("{}.{}", plugin.id, tool.name),
                    description: tool.description.clone(),
                    parameters: tool.parameters.clone(),
                },
                events: events.clone(),
            }));
        }
    }
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
            self.events.emit(EventKind::PluginCall {
                plugin: self.plugin.id.clone(),
                tool: self.tool.clone(),
                ok: report.result.is_ok(),
                duration_ms: ms(report.duration),
                limit: report.limit.map(str::to_string),
                denied: report.denied.clone(),
                logs: report
                    .logs
                    .iter()
                    .map(|l| format!("{}: {}", l.level, l.message))
                    .collect(),
                stdout: report.stdout.clone(),
                stderr: report.stderr.clone(),
            });
            let id = &self.plugin.id;
            if report.logs_dropped > 0 {
                self.events.emit(EventKind::LimitHit {
                    task: None,
                    agent: None,
                    limit: "log_lines".into(),
                    value: self.plugin.limits.log_lines.to_string(),
                    key: format!("plugins[{id}].limits.log_lines"),
                    action: format!("{} further log line(s) dropped", report.logs_dropped),
                });
            }
            if report.stdio_full {
                self.events.emit(EventKind::LimitHit {
                    task: None,
                    agent: None,
                    limit: "stdio_kb".into(),
                    value: (self.plugin.limits.stdio_bytes >> 10).to_string(),
                    key: format!("plugins[{id}].limits.stdio_kb"),
                    action: "stdout/stderr beyond the cap was refused to the plugin".into(),
                });
            }
            for hit in &report.hits {
                let (limit, value, action) = match *hit {
                    "limits.http_kb" => (
                        "http_kb",
                        (self.plugin.limits.http_bytes >> 10).to_string(),
                        "an HTTP response over the cap was refused to the plugin",
                    ),
                    other => (
                        other.trim_start_matches("limits."),
                        String::new(),
                        "refused",
                    ),
                };
                self.events.emit(EventKind::LimitHit {
                    task: None,
                    agent: None,
                    limit: limit.into(),
                    value,
                    key: format!("plugins[{id}].{hit}"),
                    action: action.into(),
                });
            }
            if let Some(limit) = report.limit {
                self.events.emit(EventKind::LimitHit {
                    task: None,
                    agent: None,
                    limit: limit.trim_start_matches("limits.").into(),
                    value: match limit {
                        "limits.deadline_ms" => self.plugin.limits.deadline.as_millis().to_string(),
                        "limits.memory_mb" => (self.plugin.limits.memory_bytes >> 20).to_string(),
                        _ => (self.plugin.limits.output_bytes >> 10).to_string(),
                    },
                    key: format!("plugins[{}].{limit}", self.plugin.id),
                    action: "the call failed; the agent got the error".into(),
                });
            }
            report.result.map_err(ToolError)
        })
    }
}
