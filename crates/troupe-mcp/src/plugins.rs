//! Plugin tools: each tool of each plugin as `<plugin id>.<tool>`, with the plugin's own JSON
//! Schema, run in the sandbox with the grants and limits of its policy entry.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, Tool};
use serde_json::Value;
use troupe_crew::PluginDecl;
use troupe_docs::Corpus;
use troupe_plugin::{Plugin, PluginError, Services};
use troupe_runtime::EventKind;
use troupe_runtime::plugins::{call_events, load_decl};

use crate::served::{BoxFuture, Call, Log, PluginCopies, Served, object_schema};

/// One tool of a loaded plugin.
pub struct PluginTool {
    plugin: Arc<Plugin>,
    tool: String,
    definition: Tool,
    log: Log,
}

/// Loads every plugin of `decls` (at once; compiled code is cached) and makes a tool of each
/// of their tools. `documents` serve the plugins granted `documents`. `Err` says every plugin
/// that could not be loaded, with its hint.
pub async fn load(
    decls: &[PluginDecl],
    documents: Option<Arc<Corpus>>,
    log: Log,
) -> Result<Vec<Arc<dyn Served>>, String> {
    if documents.is_none()
        && let Some(d) = decls.iter().find(|d| d.documents)
    {
        log(&format!(
            "warning: plugin `{}` is granted `documents`, but no documents are served with it (`troupe mcp serve --docs PATH…`): it will find none",
            d.id
        ));
    }
    let mut loading = tokio::task::JoinSet::new();
    for (n, decl) in decls.iter().enumerate() {
        let decl = decl.clone();
        let services = Services {
            documents: documents.clone(),
            ..Services::default()
        };
        loading.spawn(async move { (n, load_decl(&decl, services).await) });
    }
    let mut loaded = loading.join_all().await;
    loaded.sort_by_key(|(n, _)| *n);
    let mut tools: Vec<Arc<dyn Served>> = Vec::new();
    let mut problems = Vec::new();
    for ((_, result), decl) in loaded.into_iter().zip(decls) {
        match result {
            Ok(plugin) => {
                let plugin = Arc::new(plugin);
                for t in &plugin.description.tools {
                    tools.push(Arc::new(PluginTool {
                        definition: Tool::new(
                            format!("{}.{}", plugin.id, t.name),
                            t.description.clone(),
                            object_schema(&t.parameters),
                        ),
                        plugin: plugin.clone(),
                        tool: t.name.clone(),
                        log: log.clone(),
                    }));
                }
            }
            Err(PluginError::Load { path, reason, hint }) => problems.push(format!(
                "plugin `{}` ({}): {reason}\n  hint: {hint}",
                decl.id,
                path.display()
            )),
            Err(PluginError::Call(m)) => problems.push(format!("plugin `{}`: {m}", decl.id)),
        }
    }
    if problems.is_empty() {
        Ok(tools)
    } else {
        Err(problems.join("\n"))
    }
}

impl Served for PluginTool {
    fn definition(&self) -> &Tool {
        &self.definition
    }

    fn for_session(&self, copies: &mut PluginCopies) -> Option<Arc<dyn Served>> {
        let plugin = copies
            .entry(Arc::as_ptr(&self.plugin) as usize)
            .or_insert_with(|| Arc::new(self.plugin.with_own_kv()))
            .clone();
        Some(Arc::new(PluginTool {
            plugin,
            tool: self.tool.clone(),
            definition: self.definition.clone(),
            log: self.log.clone(),
        }))
    }

    fn call(&self, args: Value, _call: Call) -> BoxFuture<'_, CallToolResult> {
        Box::pin(async move {
            let report = self.plugin.call(&self.tool, &args.to_string()).await;
            let events = call_events(&self.plugin.id, &self.tool, &self.plugin.limits, &report);
            for e in &events {
                if let Ok(line) = serde_json::to_string(e) {
                    (self.log)(&line);
                }
            }
            match report.result {
                Ok(out) => CallToolResult::success(vec![ContentBlock::text(out)]),
                Err(error) => {
                    let mut text = error;
                    for denied in &report.denied {
                        if !text.contains(denied.as_str()) {
                            text.push_str(&format!("\ndenied: {denied}"));
                        }
                    }
                    if report.denied_total > report.denied.len() {
                        text.push_str(&format!(
                            "\n({} requests denied in all)",
                            report.denied_total
                        ));
                    }
                    for e in &events {
                        if let EventKind::LimitHit { key, value, .. } = e
                            && report.limit.is_some_and(|l| key.ends_with(l))
                        {
                            text.push_str(&format!("\n{}", limit_reached(key, value)));
                        }
                    }
                    CallToolResult::error(vec![ContentBlock::text(text)])
                }
            }
        })
    }
}

/// What a client is told of the limit (or the grant) that ended a call: its key and how to
/// change it.
fn limit_reached(key: &str, value: &str) -> String {
    match key.split_once("].") {
        Some((_, grant)) if grant.starts_with("grants.") => format!(
            "stopped after {value} denied requests: `{key}` is not granted; add `{grant}` to the plugin's entry in the policy if it needs it"
        ),
        Some((_, limit)) => format!(
            "limit `{key}` reached ({value}): raise `{limit}` in the plugin's entry in the policy"
        ),
        None => format!("limit `{key}` reached ({value})"),
    }
}
