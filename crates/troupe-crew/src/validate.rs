//! From crew-file text to a [`Crew`]: syntax, shape (against the generated JSON Schema), then
//! meaning (ids, cycles, placeholders, models, limits). Every problem is collected, not only the first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics, JsonPath, Source, Target, did_you_mean, list};
use crate::model::*;
use crate::shape;
use crate::template;
use crate::wire::{self, AgentLimitsSpec, CrewFile, LimitsSpec, LlmSpec};

/// Output files Troupe writes itself in every run (`report.json` is also reserved in a run with
/// documents, which only the runtime knows for sure: `--docs` may add them).
pub const RESERVED_OUTPUT_FILES: &[&str] = &["run.json", "events.jsonl"];

/// An `output_file` as written in a crew file, made canonical once: `./a/./b.md` → `a/b.md`.
/// `None` when it is not a plain relative path of a file (empty, `.`, `..`, absolute, a
/// trailing `/`).
pub fn normalise_output_path(rel: &str) -> Option<PathBuf> {
    if rel.ends_with(['/', '\\']) {
        return None;
    }
    let mut out = PathBuf::new();
    for c in Path::new(rel).components() {
        match c {
            Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The largest `llm.max_response_kb` accepted (1 GiB): more is no answer, it is a flood.
pub const MAX_RESPONSE_KB: u32 = 1 << 20;

/// The smallest `llm.context_window` accepted: a persona, a task and a short answer.
pub const MIN_CONTEXT_WINDOW: u32 = 1024;

/// Plugin and MCP server ids Troupe keeps for its own tools: their tools are `<id>.<tool>`, so
/// one of these ids would shadow (or later collide with) the built-in `docs.*` and `text.*`
/// tools and the namespaces kept for tools to come (`troupe.*`, `builtin.*`, …). Compared
/// ignoring case.
pub const RESERVED_PLUGIN_IDS: &[&str] = &[
    "docs", "text", "mcp", "troupe", "builtin", "builtins", "core", "std", "host", "crew", "agent",
    "task", "memory", "web",
];

/// Each `plugins[].limits` key: its default, the largest value accepted and why.
const PLUGIN_LIMITS: &[(&str, u64, u64, &str)] = &[
    (
        "deadline_ms",
        2000,
        600_000,
        "10 minutes; a longer tool call stalls its agent",
    ),
    (
        "memory_mb",
        64,
        4096,
        "a plugin's memory is 32-bit: 4 GiB is all it can address, and the instance pool's size",
    ),
    (
        "output_kb",
        256,
        65_536,
        "64 MiB; a result goes into a model's context, which holds far less",
    ),
    (
        "stdio_kb",
        16,
        4096,
        "4 MiB each of stdout and stderr, copied into every `plugin_call` event",
    ),
    (
        "log_lines",
        100,
        1000,
        "lines of up to 2000 characters, each copied into the `plugin_call` event",
    ),
    (
        "http_kb",
        1024,
        65_536,
        "64 MiB; a response is held in memory, on the host and in the plugin",
    ),
    (
        "kv_kb",
        1024,
        65_536,
        "64 MiB of host memory held for the whole run",
    ),
    (
        "kv_keys",
        1000,
        100_000,
        "every key costs host memory beyond its bytes",
    ),
];

/// Each `mcp_servers[].limits` key: its default, the largest value accepted and why.
const MCP_LIMITS: &[(&str, u64, u64, &str)] = &[
    (
        "call_timeout_ms",
        30_000,
        3_600_000,
        "an hour; a longer call stalls its agent",
    ),
    (
        "output_kb",
        256,
        16_384,
        "16 MiB: the MCP SDK reads no longer message, and a result goes into a model's context, which holds far less",
    ),
    (
        "start_timeout_ms",
        20_000,
        600_000,
        "10 minutes for a server to start and list its tools",
    ),
    (
        "stderr_kb",
        64,
        4096,
        "4 MiB of a server's stderr, held for the run's events",
    ),
];

/// Why a crew file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The OS error is part of the message, not a `source`: the CLI prints the error chain,
    /// which would print it twice.
    #[error("cannot read {what} `{}`: {error}\n  hint: check the path; {what}s are JSON, e.g. `{example}`", file.display(), example = if *what == "crew file" { "crews/research-report.json" } else { "plugins/policy.json" })]
    Io {
        /// "crew file", "policy file".
        what: &'static str,
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{}:{line}:{column}: the {what} is not UTF-8 text\n  hint: save it as UTF-8 (JSON files are UTF-8); the byte here belongs to another encoding", file.display())]
    NotUtf8 {
        what: &'static str,
        file: PathBuf,
        line: usize,
        column: usize,
    },
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
    /// A plugin policy's problems.
    #[error("{}", PolicyErrors(.0))]
    InvalidPolicy(Diagnostics),
}

struct PolicyErrors<'a>(&'a Diagnostics);

impl std::fmt::Display for PolicyErrors<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.write(f, "the policy file")
    }
}

/// Reads and validates a crew file, filling its templates with `inputs` over the file's own `inputs`.
pub fn load(path: &Path, inputs: &BTreeMap<String, String>) -> Result<Crew, LoadError> {
    let (source, dir) = read(path, "crew file")?;
    parse(source, dir, inputs).map_err(LoadError::Invalid)
}

/// Reads and validates a plugin policy (`troupe mcp serve --policy`): a crew's `plugins`, on
/// their own, checked as in a crew (paths relative to the policy file).
pub fn load_policy(path: &Path) -> Result<Vec<PluginDecl>, LoadError> {
    let (source, dir) = read(path, "policy file")?;
    parse_policy(source, dir).map_err(LoadError::InvalidPolicy)
}

/// A file's text (UTF-8 or a located error) and its directory.
fn read(path: &Path, what: &'static str) -> Result<(Arc<Source>, PathBuf), LoadError> {
    let bytes = std::fs::read(path).map_err(|error| LoadError::Io {
        what,
        file: path.to_path_buf(),
        error,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let valid = std::str::from_utf8(valid).unwrap_or_default();
        let line = valid.matches('\n').count() + 1;
        let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        LoadError::NotUtf8 {
            what,
            file: path.to_path_buf(),
            line,
            column,
        }
    })?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((Source::new(path, text), dir))
}

/// Validates policy text already in memory, every problem at once, as [`parse`] does a crew's.
pub fn parse_policy(source: Arc<Source>, dir: PathBuf) -> Result<Vec<PluginDecl>, Diagnostics> {
    let (file, shape, mut errors) = shaped::<wire::PolicyFile>(crate::schema::policy(), &source)?;
    let mut checker = Checker {
        source: &source,
        dir,
        errors: Vec::new(),
    };
    let plugins = checker.plugins(&file.plugins);
    errors.extend(
        checker
            .errors
            .into_iter()
            .filter(|d| !shape.covers(&d.path)),
    );
    if errors.is_empty() {
        Ok(plugins)
    } else {
        Err(sorted(errors))
    }
}

/// Syntax, duplicate keys and shape (against `schema`, repaired so that the checks of meaning
/// can go on), then the wire value: with the shape errors, or every error when the repairs
/// could not make it readable.
fn shaped<T: serde::de::DeserializeOwned>(
    schema: &crate::schema::FileSchema,
    source: &Source,
) -> Result<(T, shape::Shape, Vec<Diagnostic>), Diagnostics> {
    let mut value: Value = match serde_json::from_str(&source.text) {
        Ok(v) => v,
        Err(e) => return Err(Diagnostics(vec![syntax_error(source, &e)])),
    };
    let mut errors = shape::duplicate_keys(source);
    let shape = shape::check(schema, source, &mut value);
    errors.extend(shape.diagnostics.iter().cloned());
    match serde_path_to_error::deserialize(&value) {
        Ok(f) => Ok((f, shape, errors)),
        // The schema and the wire types are generated from one another, so this is rare (a
        // number too large for its type); when the repairs could not make the file readable,
        // the shape errors are all there is to say.
        Err(e) => {
            if errors.is_empty() {
                let path = JsonPath::from_pointer(&pointer_of(e.path()));
                errors.push(source.diagnostic(
                    &path,
                    Target::Value,
                    format!("`{path}`: {}", e.inner()),
                    Some(format!(
                        "`{}` prints the type and range each key accepts",
                        schema.command
                    )),
                ));
            }
            Err(sorted(errors))
        }
    }
}

/// Validates crew-file text already in memory: syntax, then shape and meaning in one pass, so
/// that every problem is reported at once (a misspelt key does not hide an unknown agent).
/// This is the one validation of a crew file: `troupe validate`, `troupe run` and the runtime's
/// own set-up checks all start here.
pub fn parse(
    source: Arc<Source>,
    dir: PathBuf,
    inputs: &BTreeMap<String, String>,
) -> Result<Crew, Diagnostics> {
    let (file, shape, mut errors) = shaped::<CrewFile>(crate::schema::crew(), &source)?;
    let checked = Checker {
        source: &source,
        dir: dir.clone(),
        errors: Vec::new(),
    }
    .check(&file, dir, inputs);
    match checked {
        Ok(crew) if errors.is_empty() => Ok(crew),
        Ok(_) => Err(sorted(errors)),
        Err(meaning) => {
            errors.extend(meaning.0.into_iter().filter(|d| !shape.covers(&d.path)));
            Err(sorted(errors))
        }
    }
}

/// In the order of the file, as an editor lists them.
fn sorted(mut errors: Vec<Diagnostic>) -> Diagnostics {
    errors.sort_by_key(|d| (d.line, d.column));
    Diagnostics(errors)
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .map(|s| match s {
            Segment::Seq { index } => format!("/{index}"),
            Segment::Map { key } | Segment::Enum { variant: key } => format!("/{key}"),
            Segment::Unknown => String::new(),
        })
        .collect()
}

fn syntax_error(source: &Source, e: &serde_json::Error) -> Diagnostic {
    let msg = e.to_string();
    // serde_json appends " at line L column C"; the location is carried separately.
    let msg = msg
        .rsplit_once(" at line ")
        .map_or(msg.as_str(), |(m, _)| m)
        .to_string();
    let hint = if msg.contains("trailing comma") {
        "JSON allows no comma after the last item of an object or array: remove it"
    } else if msg.contains("EOF") {
        "the file ends early: check that every `{` and `[` is closed"
    } else if msg.contains("key must be a string") {
        "a key in double quotes is expected here: look for a doubled comma, or a key without quotes (`\"role\": …`)"
    } else {
        "check for a missing comma, quote or bracket just before this place"
    };
    let (mut line, mut column) = (e.line(), e.column());
    if msg.contains("trailing comma")
        && let Some(at) = comma_before(&source.text, line, column)
    {
        (line, column) = at;
    }
    source.diagnostic_at(
        line,
        column,
        format!("invalid JSON: {msg}"),
        Some(hint.into()),
    )
}

/// The position of the comma just before (line, column), skipping whitespace.
fn comma_before(text: &str, line: usize, column: usize) -> Option<(usize, usize)> {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = text.get(line_start..)?;
    let offset = line_start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(rest.len(), |(i, _)| i);
    let before = text.get(..offset)?.trim_end();
    if !before.ends_with(',') {
        return None;
    }
    let comma = before.len() - 1;
    let l = text[..comma].matches('\n').count() + 1;
    let c = text[..comma].rfind('\n').map_or(comma, |i| comma - i - 1) + 1;
    Some((l, c))
}

struct Checker<'a> {
    source: &'a Source,
    dir: PathBuf,
    errors: Vec<Diagnostic>,
}

fn root() -> JsonPath {
    JsonPath::root()
}

impl Checker<'_> {
    /// Records a problem once (a crew-wide value merged into every agent is one mistake).
    fn err(&mut self, path: JsonPath, message: impl Into<String>, hint: impl Into<String>) {
        let d = self
            .source
            .diagnostic(&path, Target::Value, message, Some(hint.into()));
        if !self
            .errors
            .iter()
            .any(|e| e.path == d.path && e.message == d.message)
        {
            self.errors.push(d);
        }
    }

    fn check(
        mut self,
        file: &CrewFile,
        dir: PathBuf,
        cli_inputs: &BTreeMap<String, String>,
    ) -> Result<Crew, Diagnostics> {
        if file.name.trim().is_empty() {
            self.err(
                root().key("name"),
                "the crew name is empty",
                "give the crew a short name such as `\"name\": \"market-research\"`",
            );
        }
        if file.agents.is_empty() {
            self.err(
                root().key("agents"),
                "a crew needs at least one agent",
                "add an agent: `{\"id\": \"researcher\", \"role\": …, \"goal\": …}`",
            );
        }
        if file.tasks.is_empty() {
            self.err(
                root().key("tasks"),
                "a crew needs at least one task",
                "add a task: `{\"id\": \"research\", \"agent\": …, \"description\": …}`",
            );
        }

        let mut inputs = file.inputs.clone();
        inputs.extend(cli_inputs.iter().map(|(k, v)| (k.clone(), v.clone())));

        let agent_ids =
            self.check_ids(file.agents.iter().map(|a| a.id.as_str()), "agents", "agent");
        let task_ids = self.check_ids(file.tasks.iter().map(|t| t.id.as_str()), "tasks", "task");
        let agent_list = list(&agent_ids);

        let run_limits = self.run_limits(
            file.limits.as_ref().unwrap_or(&LimitsSpec::default()),
            file.tasks.len(),
        );
        let crew_task_limits = file.limits.as_ref().map(per_task_of);
        let base_limits = self.task_limits(
            &TaskLimits::default(),
            crew_task_limits.as_ref(),
            root().key("limits"),
        );

        let mut agents = Vec::new();
        for (i, spec) in file.agents.iter().enumerate() {
            let path = root().key("agents").index(i);
            let llm = self.llm(file.llm.as_ref(), spec.llm.as_ref(), &path, &spec.id);
            let limits = self.task_limits(&base_limits, spec.limits.as_ref(), path.key("limits"));
            for (j, tool) in spec.tools.iter().enumerate() {
                if tool.trim().is_empty() || tool.contains(char::is_whitespace) {
                    self.err(
                        path.key("tools").index(j),
                        format!("`{tool}` is not a tool name"),
                        "tool names look like `text.stats`; `text.*` allows every tool of `text`",
                    );
                }
            }
            self.check_placeholders(
                &path,
                &[
                    ("role", Some(&spec.role)),
                    ("goal", Some(&spec.goal)),
                    ("backstory", spec.backstory.as_ref()),
                ],
                &inputs,
            );
            agents.push(Agent {
                id: spec.id.clone(),
                role: template::render(&spec.role, &inputs),
                goal: template::render(&spec.goal, &inputs),
                backstory: spec
                    .backstory
                    .as_ref()
                    .map(|b| template::render(b, &inputs)),
                llm,
                tools: spec.tools.clone(),
                allow_delegation: spec.allow_delegation.unwrap_or(true),
                limits,
                index: Some(i),
            });
        }

        // The manager of a hierarchical crew.
        let manager = match (&file.manager, file.process) {
            (Some(m), wire::Process::Hierarchical) => {
                if let Some(a) = agents.iter().find(|a| &a.id == m) {
                    Some(a.clone())
                } else {
                    self.err(
                        root().key("manager"),
                        format!("unknown manager agent `{m}`"),
                        did_you_mean(m, agent_ids.iter().map(String::as_str))
                            .unwrap_or(format!("agents in this crew: {agent_list}")),
                    );
                    None
                }
            }
            (Some(_), _) => {
                self.err(
                    root().key("manager"),
                    "`manager` is only used by the hierarchical process",
                    "set `\"process\": \"hierarchical\"` or remove `manager`",
                );
                None
            }
            (None, wire::Process::Hierarchical) => Some(Agent {
                id: "manager".into(),
                role: "Crew manager".into(),
                goal: "Get every task done well by handing it to the best-suited agent and \
                       checking the result."
                    .into(),
                backstory: Some(
                    "You lead a team of specialists; you delegate and judge, you do not do the \
                     work yourself."
                        .into(),
                ),
                llm: self.llm(file.llm.as_ref(), None, &root(), "manager"),
                tools: Vec::new(),
                allow_delegation: false,
                limits: base_limits.clone(),
                index: None,
            }),
            (None, _) => None,
        };

        if let Some(max) = file.limits.as_ref().and_then(|l| l.max_cost_usd) {
            self.check_cost_limit(max, agents.iter().chain(manager.iter()));
        }

        let mut tasks = Vec::new();
        for (i, spec) in file.tasks.iter().enumerate() {
            let path = root().key("tasks").index(i);
            let mut agent = None;
            match &spec.agent {
                Some(a) if agent_ids.contains(a) => agent = Some(a.clone()),
                Some(a) => self.err(
                    path.key("agent"),
                    format!("unknown agent `{a}`"),
                    hint_ids(a, &agent_ids, "agents"),
                ),
                None if file.process == wire::Process::Hierarchical => {}
                None => self.err(
                    path.clone(),
                    format!("task `{}` has no `agent`", spec.id),
                    format!(
                        "add `\"agent\": …` naming one of {agent_list}, or use `\"process\": \"hierarchical\"` to let a manager assign it"
                    ),
                ),
            }
            let mut context = Vec::new();
            for (j, c) in spec.context.iter().enumerate() {
                let cpath = path.key("context").index(j);
                match file.tasks.iter().position(|t| &t.id == c) {
                    None => self.err(
                        cpath,
                        format!("unknown task `{c}` in context"),
                        hint_ids(c, &task_ids, "tasks"),
                    ),
                    Some(k) if k == i => self.err(
                        cpath,
                        format!("task `{c}` lists itself as context"),
                        "a task cannot need its own output: remove it from `context`",
                    ),
                    Some(k) if k > i && file.process == wire::Process::Sequential => self.err(
                        cpath,
                        format!("task `{}` needs `{c}`, which comes later in a sequential crew", spec.id),
                        format!(
                            "move task `{c}` before `{}`, or use `\"process\": \"parallel\"` to run tasks in dependency order",
                            spec.id
                        ),
                    ),
                    Some(k) => context.push(k),
                }
            }
            let review = spec.review.as_ref().and_then(|r| {
                let rpath = path.key("review");
                if !agent_ids.contains(&r.by) {
                    self.err(
                        rpath.key("by"),
                        format!("unknown reviewer `{}`", r.by),
                        hint_ids(&r.by, &agent_ids, "agents"),
                    );
                    return None;
                }
                if spec.agent.as_deref() == Some(r.by.as_str()) {
                    self.err(
                        rpath.key("by"),
                        format!("`{}` would review its own work", r.by),
                        "name a different agent in `review.by`: a review is a second opinion",
                    );
                }
                let max_rounds = r.max_rounds.unwrap_or(DEFAULT_MAX_ROUNDS);
                if max_rounds == 0 {
                    self.err(
                        rpath.key("max_rounds"),
                        "`max_rounds` is 0",
                        "use at least 1, or remove the `review` block",
                    );
                }
                Some(Review {
                    by: r.by.clone(),
                    max_rounds,
                    criteria: r.criteria.clone(),
                })
            });
            // In a per-document task the document placeholders are filled at run time; they
            // become slots here.
            let mut task_inputs = inputs.clone();
            if spec.for_each.is_some() {
                for name in template::DOCUMENT_VARS {
                    task_inputs.insert(name.to_string(), template::slot(name));
                }
            }
            self.check_placeholders(
                &path,
                &[
                    ("description", Some(&spec.description)),
                    ("expected_output", spec.expected_output.as_ref()),
                ],
                &task_inputs,
            );
            let output_file = spec
                .output_file
                .as_ref()
                .and_then(|f| self.output_file(f, path.key("output_file")));
            if let Some(schema) = &spec.output_schema
                && let Err(e) = jsonschema::validator_for(schema)
            {
                self.err(
                    path.key("output_schema"),
                    format!("`output_schema` is not a valid JSON Schema: {e}"),
                    "see https://json-schema.org/learn/getting-started-step-by-step",
                );
            }
            let agent_limits = agent
                .as_ref()
                .and_then(|a| agents.iter().find(|x| &x.id == a))
                .map_or(base_limits.clone(), |a| a.limits.clone());
            let limits = self.task_limits(&agent_limits, spec.limits.as_ref(), path.key("limits"));
            tasks.push(Task {
                id: spec.id.clone(),
                description: template::render(&spec.description, &task_inputs),
                expected_output: spec
                    .expected_output
                    .as_ref()
                    .map(|e| template::render(e, &task_inputs)),
                agent,
                context,
                output_file,
                output_schema: spec.output_schema.clone(),
                review,
                approval: spec
                    .approval
                    .as_ref()
                    .filter(|a| a.required.unwrap_or(true))
                    .map(|a| crate::model::Approval {
                        message: a.message.clone(),
                    }),
                limits,
                for_each: spec.for_each,
                document: None,
                group: None,
                origin: i,
            });
        }
        let unassigned = tasks.iter().any(|t| t.agent.is_none());
        let manager_id = manager.as_ref().map(|m| m.id.as_str());
        if unassigned
            && !agents
                .iter()
                .any(|a| a.allow_delegation && Some(a.id.as_str()) != manager_id)
        {
            self.err(
                root().key("agents"),
                "no agent can take delegated work, but some tasks have no `agent`",
                "set `\"allow_delegation\": true` on at least one agent other than the manager, or give every task an `agent`",
            );
        }
        self.check_output_files(&tasks);
        self.check_cycles(&tasks);
        let documents = file.documents.as_ref().map(|d| self.documents(d));
        let plugins = self.plugins(&file.plugins);
        let mcp_servers = self.mcp_servers(&file.mcp_servers, &plugins);

        if !self.errors.is_empty() {
            return Err(Diagnostics(self.errors));
        }
        Ok(Crew {
            name: file.name.clone(),
            description: file.description.clone(),
            dir,
            source: Arc::new(Source {
                file: self.source.file.clone(),
                text: self.source.text.clone(),
            }),
            agents,
            tasks,
            process: file.process,
            manager,
            limits: run_limits,
            inputs,
            documents,
            plugins,
            mcp_servers,
            approve_tools: file
                .tools
                .iter()
                .filter(|(_, t)| t.approve)
                .map(|(k, _)| k.clone())
                .collect(),
        })
    }

    fn plugins(&mut self, specs: &[wire::PluginSpec]) -> Vec<PluginDecl> {
        self.check_ids(specs.iter().map(|p| p.id.as_str()), "plugins", "plugin");
        let mut out = Vec::new();
        for (i, p) in specs.iter().enumerate() {
            let path = root().key("plugins").index(i);
            if let Some(reserved) = RESERVED_PLUGIN_IDS
                .iter()
                .find(|r| r.eq_ignore_ascii_case(&p.id))
            {
                self.err(
                    path.key("id"),
                    format!(
                        "plugin id `{}` is reserved for Troupe's built-in `{reserved}.*` tools",
                        p.id
                    ),
                    format!(
                        "rename the plugin (its tools become `<id>.<tool>`), e.g. `{}_plugin`, and the agents' `tools` that name it; reserved ids: {}",
                        p.id,
                        list(RESERVED_PLUGIN_IDS)
                    ),
                );
            }
            let file = self.dir.join(&p.path);
            if !file.is_file() {
                self.err(
                    path.key("path"),
                    format!("plugin file `{}` does not exist", file.display()),
                    "build the plugins with `plugins/build.sh`, or fix the path (it is relative to this file)",
                );
            }
            let grants = p.grants.clone().unwrap_or_default();
            for (j, host) in grants.http.iter().enumerate() {
                let bare = host.strip_prefix("*.").unwrap_or(host);
                if bare.is_empty() || bare.contains(['/', ':', ' ', '*']) {
                    self.err(
                        path.key("grants").key("http").index(j),
                        format!("`{host}` is not a host name"),
                        "list bare host names such as `api.example.org`, or `*.example.org` for its subdomains (no scheme, port or path)",
                    );
                }
            }
            let limits = p.limits.clone().unwrap_or_default();
            self.plugin_limits(&path.key("limits"), &limits);
            let sha256 = p.sha256.as_ref().map(|h| h.to_ascii_lowercase());
            if let Some(h) = &sha256
                && (h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()))
            {
                self.err(
                    path.key("sha256"),
                    format!("`sha256` is `{h}`: not a SHA-256 (64 hexadecimal digits)"),
                    "`troupe plugin lock FILE` writes the pin of every plugin; or `sha256sum` the plugin file",
                );
            }
            out.push(PluginDecl {
                id: p.id.clone(),
                path: file,
                documents: grants.documents,
                kv: grants.kv,
                http: grants.http.clone(),
                config: p.config.clone(),
                deadline: Duration::from_millis(limits.deadline_ms.unwrap_or(2000)),
                memory_bytes: (limits.memory_mb.unwrap_or(64) as usize) << 20,
                output_bytes: (limits.output_kb.unwrap_or(256) as usize) << 10,
                stdio_bytes: (limits.stdio_kb.unwrap_or(16) as usize) << 10,
                log_lines: limits.log_lines.unwrap_or(100) as usize,
                http_bytes: (limits.http_kb.unwrap_or(1024) as usize) << 10,
                kv_bytes: (limits.kv_kb.unwrap_or(1024) as usize) << 10,
                kv_keys: limits.kv_keys.unwrap_or(1000) as usize,
                sha256,
                index: i,
            });
        }
        out
    }

    fn mcp_servers(
        &mut self,
        specs: &[wire::McpServerSpec],
        plugins: &[PluginDecl],
    ) -> Vec<McpServerDecl> {
        self.check_ids(
            specs.iter().map(|s| s.id.as_str()),
            "mcp_servers",
            "MCP server",
        );
        let mut out = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            let path = root().key("mcp_servers").index(i);
            if let Some(reserved) = RESERVED_PLUGIN_IDS
                .iter()
                .find(|r| r.eq_ignore_ascii_case(&s.id))
            {
                self.err(
                    path.key("id"),
                    format!(
                        "MCP server id `{}` is reserved for Troupe's built-in `{reserved}.*` tools",
                        s.id
                    ),
                    format!(
                        "rename the server (its tools become `<id>.<tool>`), e.g. `{}_mcp`; reserved ids: {}",
                        s.id,
                        list(RESERVED_PLUGIN_IDS)
                    ),
                );
            }
            if let Some(p) = plugins.iter().find(|p| p.id == s.id) {
                self.err(
                    path.key("id"),
                    format!("MCP server id `{}` is also a plugin's id", s.id),
                    format!(
                        "`plugins[{}]` uses it; tools of both would be `{}.<tool>`: give the server its own id",
                        p.index, s.id
                    ),
                );
            }
            let transport = match (&s.command, &s.url) {
                (Some(command), None) => {
                    if !s.headers_env.is_empty() {
                        self.err(
                            path.key("headers_env"),
                            "`headers_env` is for a remote server (`url`); this one is a local process (`command`)",
                            "give a local server what it needs through `env` or `env_from`",
                        );
                    }
                    if command.trim().is_empty() {
                        self.err(
                            path.key("command"),
                            "`command` is empty",
                            "name the server's program, e.g. `npx` or `uvx`, with its arguments in `args`",
                        );
                    }
                    for (j, name) in s.env_from.iter().enumerate() {
                        self.env_name(path.key("env_from").index(j), name);
                    }
                    for name in s.env.keys() {
                        self.env_name(path.key("env").key(name), name);
                    }
                    let cwd = s
                        .cwd
                        .as_ref()
                        .map_or_else(|| self.dir.clone(), |c| self.dir.join(c));
                    if !cwd.is_dir() {
                        self.err(
                            path.key("cwd"),
                            format!("`{}` is not a directory", cwd.display()),
                            "give the server's working directory, relative to the crew file, or remove `cwd` for the crew file's directory",
                        );
                    }
                    McpTransport::Stdio {
                        command: command.clone(),
                        args: s.args.clone(),
                        env: s.env.clone(),
                        env_from: s.env_from.clone(),
                        cwd,
                    }
                }
                (None, Some(url)) => {
                    for (key, given) in [
                        ("args", !s.args.is_empty()),
                        ("env", !s.env.is_empty()),
                        ("env_from", !s.env_from.is_empty()),
                        ("cwd", s.cwd.is_some()),
                    ] {
                        if given {
                            self.err(
                                path.key(key),
                                format!("`{key}` is for a local server (`command`); this one is remote (`url`)"),
                                "remove it; a remote server gets what it needs through `headers_env`",
                            );
                        }
                    }
                    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
                    let host = url.split("://").nth(1).unwrap_or("");
                    if !scheme_ok || host.is_empty() || host.starts_with('/') {
                        self.err(
                            path.key("url"),
                            format!("`{url}` is not an http(s) URL"),
                            "give the server's streamable HTTP endpoint, e.g. `https://mcp.example.org/mcp`",
                        );
                    }
                    let loopback = ["localhost", "127.0.0.1", "[::1]"].iter().any(|h| {
                        host == *h
                            || host.starts_with(&format!("{h}:"))
                            || host.starts_with(&format!("{h}/"))
                    });
                    if !s.headers_env.is_empty() && url.starts_with("http://") && !loopback {
                        self.err(
                            path.key("url"),
                            format!("`{url}` would carry the headers of `headers_env` unencrypted"),
                            "use `https://` for a server beyond this machine",
                        );
                    }
                    for (header, var) in &s.headers_env {
                        let reserved = [
                            "host",
                            "content-type",
                            "content-length",
                            "accept",
                            "mcp-session-id",
                            "mcp-protocol-version",
                            "last-event-id",
                        ];
                        if reserved.contains(&header.to_ascii_lowercase().as_str()) {
                            self.err(
                                path.key("headers_env").key(header),
                                format!("`{header}` is set by the MCP transport itself"),
                                "give only headers the server asks for, such as `Authorization`",
                            );
                        }
                        let token = !header.is_empty()
                            && header.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
                            });
                        if !token {
                            self.err(
                                path.key("headers_env").key(header),
                                format!("`{header}` is not a header name"),
                                "header names use letters, digits and `-`, e.g. `Authorization`",
                            );
                        }
                        self.env_name(path.key("headers_env").key(header), var);
                    }
                    McpTransport::Http {
                        url: url.clone(),
                        headers_env: s.headers_env.clone(),
                    }
                }
                (Some(_), Some(_)) => {
                    self.err(
                        path.clone(),
                        format!("MCP server `{}` has both `command` and `url`", s.id),
                        "keep `command` for a local server started as a process, or `url` for a remote one",
                    );
                    continue;
                }
                (None, None) => {
                    self.err(
                        path.clone(),
                        format!("MCP server `{}` has neither `command` nor `url`", s.id),
                        "add `\"command\"` (and `args`) for a local server, e.g. `\"command\": \"uvx\", \"args\": [\"mcp-server-time\"]`, or `\"url\"` for a remote one",
                    );
                    continue;
                }
            };
            let limits = s.limits.clone().unwrap_or_default();
            let given = [
                ("call_timeout_ms", limits.call_timeout_ms),
                ("output_kb", limits.output_kb.map(u64::from)),
                ("start_timeout_ms", limits.start_timeout_ms),
                ("stderr_kb", limits.stderr_kb.map(u64::from)),
            ];
            self.limits_within(&path.key("limits"), MCP_LIMITS, &given, &["stderr_kb"]);
            out.push(McpServerDecl {
                id: s.id.clone(),
                transport,
                call_timeout: Duration::from_millis(limits.call_timeout_ms.unwrap_or(30_000)),
                output_bytes: (limits.output_kb.unwrap_or(256) as usize) << 10,
                start_timeout: Duration::from_millis(limits.start_timeout_ms.unwrap_or(20_000)),
                stderr_bytes: (limits.stderr_kb.unwrap_or(64) as usize) << 10,
                index: i,
            });
        }
        out
    }

    /// `name` is an environment variable's name.
    fn env_name(&mut self, at: JsonPath, name: &str) {
        let ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            self.err(
                at,
                format!("`{name}` is not an environment variable's name"),
                "names use letters, digits and `_`, and do not start with a digit, e.g. `GITHUB_TOKEN`",
            );
        }
    }

    /// Every limit given is within its `table` entry, and not 0 unless its key is in `zero_ok`.
    fn limits_within(
        &mut self,
        path: &JsonPath,
        table: &[(&str, u64, u64, &str)],
        given: &[(&str, Option<u64>)],
        zero_ok: &[&str],
    ) {
        for &(key, value) in given {
            let Some(value) = value else { continue };
            let Some(&(_, default, max, why)) = table.iter().find(|l| l.0 == key) else {
                continue;
            };
            let min = u64::from(!zero_ok.contains(&key));
            if value < min {
                let what = if key.starts_with("kv_") {
                    "no `kv-set` could succeed"
                } else {
                    "no call could succeed"
                };
                self.err(
                    path.key(key),
                    format!("`{key}` is 0: {what}"),
                    format!("use a positive value (at most {max}), or remove the key for the default ({default})"),
                );
            } else if value > max {
                self.err(
                    path.key(key),
                    format!("`{key}` is {value}, over the largest value accepted ({max})"),
                    format!(
                        "use {min} to {max} ({why}), or remove the key for the default ({default})"
                    ),
                );
            }
        }
    }

    /// Every limit given is within `PLUGIN_LIMITS` (and not 0, except `log_lines`).
    fn plugin_limits(&mut self, path: &JsonPath, limits: &wire::PluginLimitsSpec) {
        let given = [
            ("deadline_ms", limits.deadline_ms),
            ("memory_mb", limits.memory_mb.map(u64::from)),
            ("output_kb", limits.output_kb.map(u64::from)),
            ("stdio_kb", limits.stdio_kb.map(u64::from)),
            ("log_lines", limits.log_lines.map(u64::from)),
            ("http_kb", limits.http_kb.map(u64::from)),
            ("kv_kb", limits.kv_kb.map(u64::from)),
            ("kv_keys", limits.kv_keys.map(u64::from)),
        ];
        self.limits_within(path, PLUGIN_LIMITS, &given, &["log_lines"]);
    }

    fn documents(&mut self, spec: &wire::DocumentsSpec) -> Documents {
        let d = Documents::default();
        let path = root().key("documents");
        let chunk_tokens = spec.chunk_tokens.unwrap_or(d.chunk_tokens);
        if chunk_tokens < 32 {
            self.err(
                path.key("chunk_tokens"),
                format!("`chunk_tokens` is {chunk_tokens}: chunks that small lose their meaning"),
                "use 200 to 1000 tokens (default 400)",
            );
        }
        let chunk_overlap = spec.chunk_overlap.unwrap_or(d.chunk_overlap);
        if chunk_overlap >= chunk_tokens {
            self.err(
                path.key("chunk_overlap"),
                format!("`chunk_overlap` ({chunk_overlap}) is not smaller than `chunk_tokens` ({chunk_tokens})"),
                "use an overlap of 10-20% of the chunk size",
            );
        }
        for (i, p) in spec.paths.iter().enumerate() {
            if p.trim().is_empty() {
                self.err(
                    path.key("paths").index(i),
                    "empty document path",
                    "give a file, a directory or a glob such as `docs/*.pdf`",
                );
            }
        }
        let max_file_mb = spec.max_file_mb.unwrap_or(d.max_file_mb);
        if !(1..=16_384).contains(&max_file_mb) {
            self.err(
                path.key("max_file_mb"),
                format!("`max_file_mb` is {max_file_mb}: it must be between 1 and 16384 (16 GiB)"),
                "give the largest document size in MiB, e.g. 128 (the default)",
            );
        }
        let pdf_timeout = match spec.pdf_timeout_s {
            Some(t) if t.is_nan() || t <= 0.0 || t > 3600.0 => {
                self.err(
                    path.key("pdf_timeout_s"),
                    format!("`pdf_timeout_s` is {t}: it must be more than 0 and at most 3600"),
                    "give the seconds one PDF may take to read, e.g. 30 (the default)",
                );
                d.pdf_timeout
            }
            Some(t) => secs(t),
            None => d.pdf_timeout,
        };
        Documents {
            paths: spec.paths.clone(),
            chunk_tokens,
            chunk_overlap,
            on_unreadable: spec.on_unreadable.unwrap_or_default(),
            max_file_mb,
            pdf_timeout,
        }
    }

    /// Every `{placeholder}` in these fields must have an input.
    fn check_placeholders(
        &mut self,
        path: &JsonPath,
        fields: &[(&str, Option<&String>)],
        inputs: &BTreeMap<String, String>,
    ) {
        for (key, text) in fields {
            for name in text.map(|t| template::placeholders(t)).unwrap_or_default() {
                if !inputs.contains_key(&name) {
                    let given = if inputs.is_empty() {
                        "no inputs were given".to_string()
                    } else {
                        format!("inputs given: {}", list(inputs.keys()))
                    };
                    let hint = if template::DOCUMENT_VARS.contains(&name.as_str()) {
                        format!(
                            "`{{{name}}}` is filled per document in a task with `\"for_each\": \"document\"`; add that to the task, or pass `--input {name}=…` ({given})"
                        )
                    } else {
                        format!(
                            "pass `--input {name}=…` or add `\"inputs\": {{\"{name}\": …}}` to the crew file ({given})"
                        )
                    };
                    self.err(
                        path.key(*key),
                        format!("placeholder `{{{name}}}` has no input"),
                        hint,
                    );
                }
            }
        }
    }

    /// Checks ids are well-formed and unique; returns the ids.
    fn check_ids<'b>(
        &mut self,
        ids: impl Iterator<Item = &'b str>,
        key: &str,
        what: &str,
    ) -> Vec<String> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, id) in ids.enumerate() {
            let path = root().key(key).index(i).key("id");
            let ok = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                self.err(
                    path.clone(),
                    format!("{what} id `{id}` is not a valid id"),
                    "ids use letters, digits, `_` and `-`, e.g. `market_research`",
                );
            }
            if let Some(first) = seen.insert(id, i) {
                self.err(
                    path,
                    format!("duplicate {what} id `{id}`"),
                    format!("`{key}[{first}]` already uses it: give each {what} its own id"),
                );
            } else {
                out.push(id.to_string());
            }
        }
        out
    }

    fn llm(
        &mut self,
        crew: Option<&LlmSpec>,
        agent: Option<&LlmSpec>,
        path: &JsonPath,
        agent_id: &str,
    ) -> LlmSettings {
        let d = LlmSpec::default();
        let (c, a) = (crew.unwrap_or(&d), agent.unwrap_or(&d));
        macro_rules! pick {
            ($f:ident) => {
                a.$f.clone().or_else(|| c.$f.clone())
            };
        }
        // Where a merged value was written: the agent's `llm`, else the crew's (so that a crew-wide
        // mistake is reported once, at its place, not once per agent).
        macro_rules! at {
            ($f:ident) => {
                if a.$f.is_some() {
                    path.key("llm").key(stringify!($f))
                } else {
                    root().key("llm").key(stringify!($f))
                }
            };
        }
        let provider = pick!(provider);
        let mut model = pick!(model).unwrap_or_default();
        if model.is_empty() && provider == Some(Provider::Openai) {
            self.err(
                root().key("llm"),
                format!("no model is set for agent `{agent_id}`"),
                "set `\"llm\": {\"model\": \"gpt-4o-mini\"}` on the crew (or on the agent)",
            );
        }
        // A GGUF file given as a relative path is relative to the crew file. Any other name,
        // `/` or not, is a model's name (`Qwen/Qwen2.5-7B-Instruct`).
        if provider != Some(Provider::Openai) && is_gguf(&model) {
            let p = Path::new(&model);
            if p.is_relative() {
                model = self.dir.join(p).display().to_string();
            }
        }
        let timeout_s = pick!(timeout_s).unwrap_or(120.0);
        if timeout_s.is_nan() || timeout_s <= 0.0 || timeout_s > 86_400.0 {
            self.err(
                at!(timeout_s),
                format!("`timeout_s` must be between 0 and 86400 seconds, found {timeout_s}"),
                "use a positive number of seconds, e.g. 120",
            );
        }
        let max_attempts = pick!(max_attempts).unwrap_or(4);
        if max_attempts == 0 {
            self.err(
                at!(max_attempts),
                "`max_attempts` is 0: no request would be sent",
                "use at least 1 (1 = no retries)",
            );
        }
        if let (Some(window), max) = (pick!(context_window), pick!(max_tokens))
            && window < MIN_CONTEXT_WINDOW.max(max.unwrap_or(0).saturating_add(256))
        {
            self.err(
                at!(context_window),
                format!("`context_window` is {window} tokens: too small for a prompt and an answer"),
                format!(
                    "use the model's real window (at least {MIN_CONTEXT_WINDOW}, and more than `max_tokens` + 256)"
                ),
            );
        }
        if pick!(requests_per_minute) == Some(0) {
            self.err(
                at!(requests_per_minute),
                "`requests_per_minute` is 0: no request would be sent",
                "use a positive number, or remove the key for no rate limit",
            );
        }
        if let Some(kb) = pick!(max_response_kb)
            && !(1..=MAX_RESPONSE_KB).contains(&kb)
        {
            self.err(
                at!(max_response_kb),
                format!("`max_response_kb` is {kb}: it must be between 1 and {MAX_RESPONSE_KB} (1 GiB)"),
                "remove the key for the default (derived from `max_tokens`), or give the size in KiB, e.g. 4096",
            );
        }
        for (key, price, at) in [
            (
                "input_cost_per_mtok",
                pick!(input_cost_per_mtok),
                at!(input_cost_per_mtok),
            ),
            (
                "output_cost_per_mtok",
                pick!(output_cost_per_mtok),
                at!(output_cost_per_mtok),
            ),
            (
                "cached_input_cost_per_mtok",
                pick!(cached_input_cost_per_mtok),
                at!(cached_input_cost_per_mtok),
            ),
        ] {
            if let Some(p) = price
                && (!p.is_finite() || p < 0.0)
            {
                self.err(
                    at,
                    format!("`{key}` is {p}: a price is a number of US dollars, 0 or more"),
                    "give the price per million tokens, e.g. 0.15",
                );
            }
        }
        LlmSettings {
            provider,
            model,
            base_url: pick!(base_url),
            api_key_env: pick!(api_key_env).unwrap_or_else(|| "OPENAI_API_KEY".into()),
            temperature: pick!(temperature),
            max_tokens: pick!(max_tokens),
            context_window: pick!(context_window),
            timeout: secs(timeout_s),
            max_attempts: max_attempts.max(1),
            requests_per_minute: pick!(requests_per_minute).filter(|r| *r > 0),
            max_response_kb: pick!(max_response_kb),
            input_cost_per_mtok: pick!(input_cost_per_mtok),
            output_cost_per_mtok: pick!(output_cost_per_mtok),
            cached_input_cost_per_mtok: pick!(cached_input_cost_per_mtok),
        }
    }

    fn task_limits(
        &mut self,
        base: &TaskLimits,
        spec: Option<&AgentLimitsSpec>,
        path: JsonPath,
    ) -> TaskLimits {
        let Some(s) = spec else {
            return base.clone();
        };
        if s.max_iterations == Some(0) {
            self.err(
                path.key("max_iterations"),
                "`max_iterations` is 0: the agent could not answer",
                "use at least 1",
            );
        }
        let timeout = s
            .task_timeout_s
            .map(|t| self.seconds(t, path.key("task_timeout_s")))
            .unwrap_or(base.timeout);
        TaskLimits {
            max_iterations: s.max_iterations.unwrap_or(base.max_iterations).max(1),
            timeout,
            max_repeated_tool_calls: s
                .max_repeated_tool_calls
                .unwrap_or(base.max_repeated_tool_calls),
            on_repeat: s.on_repeat.unwrap_or(base.on_repeat),
            max_output_retries: s.max_output_retries.unwrap_or(base.max_output_retries),
        }
    }

    fn run_limits(&mut self, s: &LimitsSpec, n_tasks: usize) -> RunLimits {
        let timeout = s
            .run_timeout_s
            .map(|t| self.seconds(t, root().key("limits").key("run_timeout_s")))
            .unwrap_or(DEFAULT_RUN_TIMEOUT);
        if s.max_tokens == Some(0) {
            self.err(
                root().key("limits").key("max_tokens"),
                "`max_tokens` is 0: no model call could be made",
                "use a positive token budget, e.g. 200000",
            );
        }
        if s.max_parallel == Some(0) {
            self.err(
                root().key("limits").key("max_parallel"),
                "`max_parallel` is 0: no task could run",
                "use a positive number of tasks at once, e.g. 4",
            );
        }
        RunLimits {
            timeout,
            max_tokens: s.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            max_cost_usd: s.max_cost_usd,
            max_delegations: s
                .max_delegations
                .unwrap_or(3 * u32::try_from(n_tasks).unwrap_or(u32::MAX / 3)),
            max_parallel: s.max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL) as usize,
            keep_runs: s.keep_runs.unwrap_or(crate::model::DEFAULT_KEEP_RUNS),
            on_failure: s.on_failure.unwrap_or(OnFailure::Stop),
            on_limit: s.on_limit.unwrap_or(OnFailure::Continue),
        }
    }

    /// `limits.max_cost_usd` can only fire when every agent that may call a paid API has prices:
    /// a cost that is never counted is a limit that never fires.
    fn check_cost_limit<'b>(&mut self, max: f64, agents: impl Iterator<Item = &'b Agent>) {
        let at = root().key("limits").key("max_cost_usd");
        if !max.is_finite() || max <= 0.0 {
            self.err(
                at,
                format!("`max_cost_usd` is {max}: it must be a positive number of US dollars"),
                "give the most the run may spend, e.g. 0.50, or remove the key for no cost limit",
            );
            return;
        }
        let unpriced: Vec<&str> = agents
            .filter(|a| a.llm.provider != Some(Provider::Local))
            .filter(|a| a.llm.input_cost_per_mtok.is_none() || a.llm.output_cost_per_mtok.is_none())
            .map(|a| a.id.as_str())
            .collect();
        if !unpriced.is_empty() {
            self.err(
                at,
                format!(
                    "`max_cost_usd` is set, but {} {} no prices: {} cost cannot be counted, so the limit would never fire",
                    list(&unpriced),
                    if unpriced.len() == 1 { "has" } else { "have" },
                    if unpriced.len() == 1 { "its" } else { "their" },
                ),
                "set `llm.input_cost_per_mtok` and `llm.output_cost_per_mtok` (USD per million tokens, e.g. 0.15 and 0.60 for gpt-4o-mini) on the crew or the agent, or cap the run with `limits.max_tokens` instead",
            );
        }
    }

    fn seconds(&mut self, t: f64, path: JsonPath) -> Duration {
        if t.is_nan() || t <= 0.0 || t > 7.0 * 86_400.0 {
            self.err(
                path,
                format!("{t} is not a usable number of seconds"),
                "use a positive number of seconds, at most a week (604800)",
            );
            return Duration::from_secs(1);
        }
        secs(t)
    }

    fn output_file(&mut self, f: &str, path: JsonPath) -> Option<PathBuf> {
        let Some(p) = normalise_output_path(f) else {
            self.err(
                path,
                format!("`{f}` is not the path of a file inside the output directory"),
                "use a relative file path without `..`, e.g. `report.md` or `notes/summary.md`; it is written under `--out`",
            );
            return None;
        };
        let shown = p.display().to_string();
        if RESERVED_OUTPUT_FILES.contains(&shown.as_str())
            || p.components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with(".troupe"))
        {
            self.err(
                path,
                format!("`{f}` is written by Troupe itself"),
                "choose another file name, e.g. `report.md`; Troupe writes `run.json`, `events.jsonl` and `.troupe*` files",
            );
            return None;
        }
        Some(p)
    }

    fn check_output_files(&mut self, tasks: &[Task]) {
        let mut seen: HashMap<&Path, &str> = HashMap::new();
        for (i, t) in tasks.iter().enumerate() {
            if let Some(f) = &t.output_file
                && let Some(other) = seen.insert(f.as_path(), &t.id)
            {
                self.err(
                    root().key("tasks").index(i).key("output_file"),
                    format!(
                        "tasks `{other}` and `{}` both write `{}`",
                        t.id,
                        f.display()
                    ),
                    "give each task its own `output_file`",
                );
            }
        }
    }

    /// Rejects dependency cycles, spelling the cycle out.
    fn check_cycles(&mut self, tasks: &[Task]) {
        // 0 = unvisited, 1 = on the stack, 2 = done
        let mut state = vec![0u8; tasks.len()];
        let mut reported: HashSet<Vec<usize>> = HashSet::new();
        for start in 0..tasks.len() {
            let mut stack = vec![(start, 0usize)];
            let mut trail = vec![start];
            if state[start] != 0 {
                continue;
            }
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&dep) = tasks[node].context.get(*next) {
                    *next += 1;
                    match state[dep] {
                        0 => {
                            state[dep] = 1;
                            stack.push((dep, 0));
                            trail.push(dep);
                        }
                        1 => {
                            let from = trail.iter().position(|&n| n == dep).unwrap_or(0);
                            let mut cycle: Vec<usize> = trail[from..].to_vec();
                            let mut key = cycle.clone();
                            key.sort_unstable();
                            if reported.insert(key) {
                                cycle.push(dep);
                                let spelled: Vec<&str> =
                                    cycle.iter().rev().map(|&n| tasks[n].id.as_str()).collect();
                                let j = tasks[node].context.iter().position(|&c| c == dep);
                                self.err(
                                    root()
                                        .key("tasks")
                                        .index(node)
                                        .key("context")
                                        .index(j.unwrap_or(0)),
                                    format!("dependency cycle: {}", spelled.join(" → ")),
                                    "each task waits for its `context`; remove one link of the cycle",
                                );
                            }
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                    trail.pop();
                }
            }
        }
    }
}

fn per_task_of(l: &LimitsSpec) -> AgentLimitsSpec {
    AgentLimitsSpec {
        max_iterations: l.max_iterations,
        task_timeout_s: l.task_timeout_s,
        max_repeated_tool_calls: l.max_repeated_tool_calls,
        on_repeat: l.on_repeat,
        max_output_retries: l.max_output_retries,
    }
}

fn hint_ids(word: &str, ids: &[String], what: &str) -> String {
    let known = format!("{what} in this crew: {}", list(ids));
    match did_you_mean(word, ids.iter().map(String::as_str)) {
        Some(d) => format!("{d} ({known})"),
        None => known,
    }
}

fn secs(t: f64) -> Duration {
    Duration::try_from_secs_f64(t).unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod output_path_tests {
    use super::*;

    #[test]
    fn output_paths_are_normalised_once() {
        assert_eq!(
            normalise_output_path("./report.md"),
            Some(PathBuf::from("report.md"))
        );
        assert_eq!(
            normalise_output_path("a/./b.md"),
            Some(PathBuf::from("a/b.md"))
        );
        for bad in ["", ".", "./", "..", "../x", "/etc/passwd", "a/", "a/../b"] {
            assert_eq!(normalise_output_path(bad), None, "{bad}");
        }
    }
}
