//! Everything a run needs, checked before it starts, every problem at once: one path for
//! `troupe validate`, `troupe run` and (later) the server, so that a crew `validate` passes is a
//! crew `run` starts.
//!
//! On top of the crew file's own validation ([`troupe_crew::parse`]) it checks what only a
//! set-up can know: the documents' per-document tasks and output files, the plugins (compiled
//! and described), the MCP servers (started or contacted, their tools listed), every agent's
//! tools and whether every agent's model can be had (without loading it or contacting it).

use std::sync::Arc;

use troupe_crew::{Agent, Crew, Diagnostic, Diagnostics, JsonPath, Target};
use troupe_docs::Corpus;

use crate::docs_tools;
use crate::events::Events;
use crate::fanout;
use crate::models::{Fallback, ModelFactory};
use crate::outdir;
use crate::plugins;
use crate::tool::{ToolRegistry, Toolset};
use troupe_plugin::Plugin;

/// A crew ready to run: expanded per document, with every agent's tools resolved.
pub struct Prepared {
    pub crew: Crew,
    /// The crew's agents, then the manager, each with its tools.
    pub agents: Vec<(Agent, Toolset)>,
    /// Agents whose model is the embedded one standing in for the model named
    /// (`"provider": "auto"` without an endpoint).
    pub fallbacks: Vec<(String, Fallback)>,
    pub plugins: Vec<Arc<Plugin>>,
    /// The MCP servers, running for as long as the run; dropping them stops them.
    pub mcp: Vec<crate::mcp::McpServer>,
    /// What deserves a word but does not stop the run: grants that differ from what a plugin
    /// declares it needs (`plugins::grant_notes`).
    pub warnings: Vec<Diagnostic>,
}

/// Checks `crew` for a run over `corpus` with these models and tools. Plugin tools send their
/// events to `events`.
pub async fn prepare(
    crew: Crew,
    models: &dyn ModelFactory,
    mut tools: ToolRegistry,
    corpus: Option<Arc<Corpus>>,
    events: &Events,
) -> Result<Prepared, Diagnostics> {
    let mut crew = crew;
    let mut problems = Vec::new();
    if let Err(p) = fanout::expand(&mut crew, corpus.as_deref()) {
        problems.extend(p);
    }
    problems.extend(outdir::check_output_files(&crew, corpus.is_some()));
    if let Some(c) = &corpus {
        docs_tools::register(&mut tools, c);
    }
    let loaded = match plugins::load(&crew, corpus.clone(), events).await {
        Ok(loaded) => loaded,
        Err(p) => {
            problems.extend(p);
            Vec::new()
        }
    };
    plugins::register(&mut tools, &loaded, events);
    let warnings = plugins::grant_notes(&crew, &loaded);
    let (servers, failed) = crate::mcp::start(&crew, events).await;
    problems.extend(failed);
    crate::mcp::register(&mut tools, &servers, events);

    // Tools whose calls wait for a person (`tools.<pattern>.approve`): each pattern must name
    // a tool, as an agent's `tools` must.
    let mut approve = Vec::new();
    for pattern in &crew.approve_tools {
        match tools.matching(pattern) {
            Some(names) => approve.extend(names),
            None => problems.push(unknown_approved_tool(&crew, pattern, &tools)),
        }
    }
    let mut model_problems = Vec::new();
    let mut agents = Vec::new();
    let mut fallbacks = Vec::new();
    for agent in crew.agents.iter().chain(crew.manager.iter()) {
        match models.check(&agent.llm) {
            Ok(Some(f)) => fallbacks.push((agent.id.clone(), f)),
            Ok(None) => {}
            Err(e) => model_problems.push(model_problem(&crew, agent, e)),
        }
        match tools.resolve(&agent.tools) {
            Ok(mut t) => {
                t.require_approval(approve.iter().cloned());
                agents.push((agent.clone(), t));
            }
            Err(bad) => problems.push(unknown_tool(&crew, agent, &bad, &tools)),
        }
    }
    // The same endpoint misconfiguration is reported once, not once per agent.
    model_problems.dedup_by(|a, b| a.message.split(':').nth(1) == b.message.split(':').nth(1));
    problems.extend(model_problems);
    if !problems.is_empty() {
        problems.sort_by_key(|d| (d.line, d.column));
        return Err(Diagnostics(problems));
    }
    Ok(Prepared {
        crew,
        agents,
        fallbacks,
        plugins: loaded,
        mcp: servers,
        warnings,
    })
}

/// Why an agent's model cannot be had, at the agent's `llm`.
pub fn model_problem(crew: &Crew, agent: &Agent, e: troupe_llm::LlmError) -> Diagnostic {
    let at = agent_path(agent).key("llm");
    let (message, hint) = match e {
        troupe_llm::LlmError::Config { message, hint } => (message, hint),
        other => (
            other.to_string(),
            "check the agent's `llm` settings and the endpoint they name".into(),
        ),
    };
    crew.source.diagnostic(
        &at,
        Target::Value,
        format!("agent `{}`: {message}", agent.id),
        Some(hint),
    )
}

fn agent_path(agent: &Agent) -> JsonPath {
    agent.index.map_or(JsonPath::root(), |i| {
        JsonPath::root().key("agents").index(i)
    })
}

fn unknown_approved_tool(crew: &Crew, pattern: &str, tools: &ToolRegistry) -> Diagnostic {
    let names: Vec<&str> = tools.names().collect();
    let hint =
        troupe_crew::diag::did_you_mean(pattern, names.iter().copied()).unwrap_or_else(|| {
            format!(
                "tools available: {}; plugins add more",
                troupe_crew::diag::list(&names)
            )
        });
    crew.source.diagnostic(
        &JsonPath::root().key("tools").key(pattern),
        Target::Key,
        format!("`tools`: no tool matches `{pattern}`"),
        Some(hint),
    )
}

fn unknown_tool(crew: &Crew, agent: &Agent, bad: &str, tools: &ToolRegistry) -> Diagnostic {
    let j = agent.tools.iter().position(|t| t == bad).unwrap_or(0);
    let at = agent_path(agent).key("tools").index(j);
    let names: Vec<&str> = tools.names().collect();
    let docs_hint = (bad.starts_with("docs.") && !names.iter().any(|n| n.starts_with("docs.")))
        .then(|| {
            "the docs.* tools exist when the run has documents: pass `--docs PATH` or add `\"documents\": {\"paths\": […]}` to the crew file".to_string()
        });
    let hint = docs_hint
        .or_else(|| troupe_crew::diag::did_you_mean(bad, names.iter().copied()))
        .unwrap_or_else(|| {
            format!(
                "tools available: {}; plugins add more",
                troupe_crew::diag::list(&names)
            )
        });
    crew.source.diagnostic(
        &at,
        Target::Value,
        format!("agent `{}`: no tool matches `{bad}`", agent.id),
        Some(hint),
    )
}
