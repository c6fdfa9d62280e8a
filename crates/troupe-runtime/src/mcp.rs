//! MCP servers' tools in a crew (`mcp_servers`): each server started (a local process over
//! stdio) or contacted (streamable HTTP) once per run with the official Rust SDK (`rmcp`), its
//! tools listed and registered as `<server id>.<tool>`, each call governed like a plugin call:
//! arguments checked against the tool's schema (by the [`ToolRegistry`], as for every tool), a
//! timeout, an output cap, never retried (a tool may have side effects), an `mcp_call` event
//! with its duration, a `limit_hit` event naming the key when a limit is reached.
//!
//! A local server is a host process, outside the WebAssembly sandbox: it gets an empty
//! environment except what the crew lists, its own process group (stopped as a whole when the
//! run ends, fails or is interrupted, so nothing it started is left behind), and its stderr is
//! kept, capped, as `mcp_stderr` events (and quoted when it fails to start).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use troupe_crew::{Crew, Diagnostic, JsonPath, McpServerDecl, McpTransport, Target};
use troupe_llm::{BoxFuture, ToolSpec};

use crate::events::{EventKind, Events, ms};
use crate::tool::{Tool, ToolError, ToolRegistry};

/// The stderr a failed start quotes: its last lines, up to this many bytes.
const STDERR_TAIL: usize = 2048;

type Client = RunningService<RoleClient, ClientConfig>;

/// A started (or contacted) MCP server, for as long as the run lasts. Dropping it stops a local
/// server's whole process group.
pub struct McpServer {
    pub decl: McpServerDecl,
    client: Option<Client>,
    /// A local server's process group (its leader's pid).
    group: Option<i32>,
    /// Stops the stderr reader.
    stop: CancellationToken,
    pub tools: Vec<rmcp::model::Tool>,
}

impl McpServer {
    /// Stops the server: the session closed, then a local server's process group ended (TERM,
    /// a moment's grace, KILL).
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(client) = self.client.take() {
            // The SDK closes stdin and waits for the process; a server that does not exit on its
            // own is not waited for long.
            let _ = tokio::time::timeout(Duration::from_millis(500), client.cancel()).await;
        }
        if let Some(group) = self.group.take() {
            signal_group(group, nix::sys::signal::Signal::SIGTERM);
            tokio::time::sleep(Duration::from_millis(100)).await;
            signal_group(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(group) = self.group.take() {
            signal_group(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// A started process group and its stderr reader, until the server is handed over: dropped on
/// any failed or abandoned start, it stops both (the SDK's own clean-up reaches only the
/// group's leader).
struct Started {
    group: Option<i32>,
    stop: CancellationToken,
}

impl Started {
    /// The group, now the server's to stop.
    fn keep(mut self) -> Option<i32> {
        self.group.take()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(group) = self.group.take() {
            self.stop.cancel();
            signal_group(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn signal_group(group: i32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), signal);
}

/// Stops every server (at the run's end).
pub async fn stop_all(servers: Vec<McpServer>) {
    let mut stopping = tokio::task::JoinSet::new();
    for s in servers {
        stopping.spawn(s.stop());
    }
    stopping.join_all().await;
}

/// Why a server could not be used.
struct StartError {
    message: String,
    hint: String,
    /// Which key of the server's entry the problem is at (`command`, `url`, `headers_env`…).
    key: Option<String>,
}

/// Starts or contacts every MCP server of the crew, all at once: the servers that started, and
/// a diagnostic at its `mcp_servers[i]` for each that did not (the others' tools still count, so
/// that every problem of the crew is found in one pass). Each start is an `mcp_server_started`
/// event.
pub async fn start(crew: &Crew, events: &Events) -> (Vec<McpServer>, Vec<Diagnostic>) {
    let mut starting = tokio::task::JoinSet::new();
    for decl in &crew.mcp_servers {
        let (decl, events, dir) = (decl.clone(), events.clone(), crew.dir.clone());
        starting.spawn(async move {
            let began = Instant::now();
            let started = start_one(&decl, &dir, &events).await;
            (decl, began.elapsed(), started)
        });
    }
    let mut results = starting.join_all().await;
    results.sort_by_key(|(d, _, _)| d.index);
    let mut servers = Vec::new();
    let mut problems = Vec::new();
    for (decl, took, started) in results {
        match started {
            Ok(server) => {
                events.emit(EventKind::McpServerStarted {
                    server: decl.id.clone(),
                    transport: match decl.transport {
                        McpTransport::Stdio { .. } => "stdio",
                        McpTransport::Http { .. } => "http",
                    }
                    .into(),
                    tools: server.tools.iter().map(|t| t.name.to_string()).collect(),
                    duration_ms: ms(took),
                });
                servers.push(server);
            }
            Err(e) => {
                let mut at = JsonPath::root().key("mcp_servers").index(decl.index);
                if let Some(k) = &e.key {
                    at = at.key(k);
                }
                problems.push(crew.source.diagnostic(
                    &at,
                    Target::Value,
                    format!("MCP server `{}`: {}", decl.id, e.message),
                    Some(e.hint),
                ));
            }
        }
    }
    (servers, problems)
}

fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("troupe", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

async fn start_one(
    decl: &McpServerDecl,
    dir: &Path,
    events: &Events,
) -> Result<McpServer, StartError> {
    let stop = CancellationToken::new();
    // One deadline for the handshake and the listing together.
    let deadline = tokio::time::Instant::now() + decl.start_timeout;
    let (client, started, tail) = match &decl.transport {
        McpTransport::Stdio {
            command,
            args,
            env,
            env_from,
            cwd,
        } => {
            let program = find_program(command, dir).ok_or_else(|| StartError {
                message: format!("the program `{command}` was not found"),
                hint: "install it, or give its path (relative to the crew file) in `command`; Troupe looks it up on its own `PATH`".into(),
                key: Some("command".into()),
            })?;
            let mut cmd = tokio::process::Command::new(&program);
            cmd.args(args)
                .env_clear()
                .current_dir(cwd)
                .process_group(0)
                .kill_on_drop(true);
            for name in env_from {
                match std::env::var_os(name) {
                    Some(v) => {
                        cmd.env(name, v);
                    }
                    None => {
                        return Err(StartError {
                            message: format!(
                                "the environment variable `{name}` (in `env_from`) is not set"
                            ),
                            hint: format!(
                                "set `{name}` before running Troupe, or remove it from `env_from`"
                            ),
                            key: Some("env_from".into()),
                        });
                    }
                }
            }
            cmd.envs(env);
            let (transport, stderr) = TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| StartError {
                    message: format!("cannot start `{}`: {e}", program.display()),
                    hint: "check that the program runs, and that `cwd` is a directory it may use"
                        .into(),
                    key: Some("command".into()),
                })?;
            let started = Started {
                group: transport.id().and_then(|p| i32::try_from(p).ok()),
                stop: stop.clone(),
            };
            let tail = Arc::new(Mutex::new(Tail::default()));
            if let Some(stderr) = stderr {
                tokio::spawn(read_stderr(
                    stderr,
                    decl.clone(),
                    events.clone(),
                    tail.clone(),
                    stop.clone(),
                ));
            }
            let connected =
                tokio::time::timeout_at(deadline, client_config().serve(transport)).await;
            let client = match connected {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    // What the server said on its way out is the best clue.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    drop(started);
                    return Err(failed_start(
                        &format!("the MCP handshake failed ({e})"),
                        &tail,
                        decl,
                    ));
                }
                Err(_) => return Err(timed_out(decl, &tail)),
            };
            (client, Some(started), Some(tail))
        }
        McpTransport::Http { url, headers_env } => {
            let mut headers = HashMap::new();
            for (header, var) in headers_env {
                let value = std::env::var(var).map_err(|_| StartError {
                    message: format!(
                        "the environment variable `{var}` (for the header `{header}`) is not set"
                    ),
                    hint: format!("set `{var}` to the header's whole value before running Troupe"),
                    key: Some("headers_env".into()),
                })?;
                let name = reqwest::header::HeaderName::from_bytes(header.as_bytes());
                let value = reqwest::header::HeaderValue::from_str(&value);
                match (name, value) {
                    (Ok(n), Ok(v)) => {
                        headers.insert(n, v);
                    }
                    _ => {
                        return Err(StartError {
                            message: format!(
                                "the value of `{var}` is not a valid `{header}` header"
                            ),
                            hint: "a header value is one line of visible text".into(),
                            key: Some("headers_env".into()),
                        });
                    }
                }
            }
            let config =
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(headers);
            let transport = StreamableHttpClientTransport::from_config(config);
            let client = match tokio::time::timeout_at(deadline, client_config().serve(transport))
                .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    return Err(StartError {
                        message: format!("cannot connect to `{url}`: {e}"),
                        hint: "check the URL (the server's streamable HTTP endpoint, often ending in `/mcp`), that the server runs, and its headers".into(),
                        key: Some("url".into()),
                    });
                }
                Err(_) => return Err(timed_out(decl, &Arc::new(Mutex::new(Tail::default())))),
            };
            (client, None, None)
        }
    };
    let listed = tokio::time::timeout_at(deadline, client.list_all_tools()).await;
    let tools = match listed {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let tail = tail.unwrap_or_default();
            return Err(failed_start(
                &format!("listing its tools failed: {e}"),
                &tail,
                decl,
            ));
        }
        Err(_) => return Err(timed_out(decl, &tail.unwrap_or_default())),
    };
    Ok(McpServer {
        decl: decl.clone(),
        client: Some(client),
        group: started.and_then(Started::keep),
        stop,
        tools,
    })
}

fn timed_out(decl: &McpServerDecl, tail: &Arc<Mutex<Tail>>) -> StartError {
    let mut e = failed_start(
        &format!(
            "it did not start and list its tools within {} ms",
            decl.start_timeout.as_millis()
        ),
        tail,
        decl,
    );
    e.hint = format!(
        "raise `mcp_servers[{}].limits.start_timeout_ms` if the server is slow to start (a first `npx`/`uvx` run downloads it), or check that it speaks MCP on stdio",
        decl.index
    );
    e
}

fn failed_start(why: &str, tail: &Arc<Mutex<Tail>>, decl: &McpServerDecl) -> StartError {
    let said = tail.lock().map(|t| t.text()).unwrap_or_default();
    let message = if said.trim().is_empty() {
        format!("{why} (it wrote nothing on stderr)")
    } else {
        format!("{why}; its stderr ended with:\n{}", indent(said.trim_end()))
    };
    let hint = match &decl.transport {
        McpTransport::Stdio { command, args, .. } => format!(
            "run `{}` by hand to see it start; its environment holds only `env` and the `env_from` names (add `PATH` or `HOME` to `env_from` if it needs them)",
            std::iter::once(command)
                .chain(args)
                .map(String::as_str)
                .map(shell_quoted)
                .collect::<Vec<_>>()
                .join(" ")
        ),
        McpTransport::Http { .. } => "check that the server runs and speaks streamable HTTP".into(),
    };
    StartError {
        message,
        hint,
        key: None,
    }
}

/// `arg` as a shell would need it written.
fn shell_quoted(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./=:@%+,-".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The last bytes a server wrote on stderr, for a failed start's message.
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, line: &str) {
        self.bytes += line.len();
        self.lines.push_back(line.to_string());
        while self.bytes > STDERR_TAIL && self.lines.len() > 1 {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len();
            }
        }
    }

    fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// Reads a local server's stderr for as long as it runs: each line an `mcp_stderr` event up
/// to `limits.stderr_kb` (then one `limit_hit`, and the rest is read and dropped so that the
/// server never blocks on a full pipe); the last lines kept for a failed start's message.
async fn read_stderr(
    stderr: tokio::process::ChildStderr,
    decl: McpServerDecl,
    events: Events,
    tail: Arc<Mutex<Tail>>,
    stop: CancellationToken,
) {
    use tokio::io::AsyncReadExt;
    let mut stderr = stderr;
    let mut chunk = vec![0u8; 8192];
    // The current line, kept up to `LINE` bytes (output without newlines cannot grow it).
    let mut line: Vec<u8> = Vec::new();
    let mut sent = 0usize;
    let mut capped = false;
    let mut emit = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes)
            .trim_end_matches('\r')
            .to_string();
        if let Ok(mut t) = tail.lock() {
            t.push(&text);
        }
        if !capped && sent + text.len() <= decl.stderr_bytes {
            sent += text.len();
            events.emit(EventKind::McpStderr {
                server: decl.id.clone(),
                line: text,
            });
        } else if !capped {
            capped = true;
            events.emit(EventKind::LimitHit {
                task: None,
                agent: None,
                limit: "stderr_kb".into(),
                value: (decl.stderr_bytes >> 10).to_string(),
                key: format!("mcp_servers[{}].limits.stderr_kb", decl.index),
                action: "further stderr of the server is read and dropped".into(),
            });
        }
    };
    const LINE: usize = 4096;
    loop {
        let n = tokio::select! {
            () = stop.cancelled() => break,
            r = stderr.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        for &b in &chunk[..n] {
            if b == b'\n' {
                emit(&line);
                line.clear();
            } else if line.len() < LINE {
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        emit(&line);
    }
}

/// `command` as a path: with a `/`, relative to the crew file's directory; otherwise looked up
/// on Troupe's own `PATH` (the server's environment is empty unless the crew passes `PATH`).
fn find_program(command: &str, dir: &Path) -> Option<PathBuf> {
    if command.contains('/') {
        let p = dir.join(command);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(command))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Registers every server's tools as `<server id>.<tool>`.
pub fn register(registry: &mut ToolRegistry, servers: &[McpServer], events: &Events) {
    for server in servers {
        let Some(client) = &server.client else {
            continue;
        };
        for tool in &server.tools {
            // A name that could not be called back, or that would stand for another tool.
            let fit = !tool.name.is_empty()
                && tool.name.len() <= 128
                && tool
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            let name = format!("{}.{}", server.decl.id, tool.name);
            if !fit || registry.names().any(|n| n == name) {
                events.emit(EventKind::Warning {
                    task: None,
                    message: format!(
                        "MCP server `{}`: its tool `{}` is left out: {}",
                        server.decl.id,
                        tool.name,
                        if fit {
                            "another tool has that name"
                        } else {
                            "a tool name uses letters, digits, `_`, `-` and `.`"
                        }
                    ),
                });
                continue;
            }
            registry.register(Arc::new(McpTool {
                server: server.decl.clone(),
                name: tool.name.to_string(),
                spec: ToolSpec {
                    name,
                    description: tool
                        .description
                        .as_deref()
                        .unwrap_or("(the server gives no description)")
                        .to_string(),
                    parameters: Value::Object((*tool.input_schema).clone()),
                },
                peer: client.peer().clone(),
                events: events.clone(),
            }));
        }
    }
}

/// One tool of an MCP server.
struct McpTool {
    server: McpServerDecl,
    /// The tool's name at the server.
    name: String,
    spec: ToolSpec,
    peer: rmcp::Peer<RoleClient>,
    events: Events,
}

impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, args: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let began = Instant::now();
            let arguments = match args {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            let params = CallToolRequestParams::new(self.name.clone()).with_arguments(arguments);
            // Dropping the call at the timeout cancels it at the server (`notifications/cancelled`).
            let answer =
                tokio::time::timeout(self.server.call_timeout, self.peer.call_tool(params)).await;
            let mut limit = None;
            let result = match answer {
                Err(_) => {
                    limit = Some("call_timeout_ms");
                    self.limit_hit(
                        "call_timeout_ms",
                        self.server.call_timeout.as_millis().to_string(),
                        "the call was abandoned and failed; it is not retried",
                    );
                    Err(ToolError(format!(
                        "the MCP tool `{}` did not answer within {} ms",
                        self.spec.name,
                        self.server.call_timeout.as_millis()
                    )))
                }
                Ok(Err(e)) => Err(ToolError(format!(
                    "the MCP server `{}` failed the call: {e}",
                    self.server.id
                ))),
                Ok(Ok(r)) => {
                    let (text, cut) = render(&r, self.server.output_bytes);
                    if cut {
                        limit = Some("output_kb");
                        self.limit_hit(
                            "output_kb",
                            (self.server.output_bytes >> 10).to_string(),
                            "the result was cut to the cap",
                        );
                    }
                    if r.is_error == Some(true) {
                        Err(ToolError(text))
                    } else {
                        Ok(text)
                    }
                }
            };
            self.events.emit(EventKind::McpCall {
                server: self.server.id.clone(),
                tool: self.name.clone(),
                ok: result.is_ok(),
                duration_ms: ms(began.elapsed()),
                limit: limit.map(str::to_string),
                error: result
                    .as_ref()
                    .err()
                    .map(|e| e.0.chars().take(500).collect()),
            });
            result
        })
    }
}

impl McpTool {
    fn limit_hit(&self, limit: &str, value: String, action: &str) {
        self.events.emit(EventKind::LimitHit {
            task: None,
            agent: None,
            limit: limit.into(),
            value,
            key: format!("mcp_servers[{}].limits.{limit}", self.server.index),
            action: action.into(),
        });
    }
}

/// A call's result as the model gets it: its text content, the structured content when there
/// is no text, a note for what is not text; cut to `cap` bytes (whether it was cut).
fn render(r: &rmcp::model::CallToolResult, cap: usize) -> (String, bool) {
    let mut parts: Vec<String> = Vec::new();
    for c in &r.content {
        if let Some(t) = c.as_text() {
            parts.push(t.text.clone());
        } else if let Some(i) = c.as_image() {
            parts.push(format!("[an image, {}, not shown]", i.mime_type));
        } else if let Some(res) = c.as_resource() {
            match &res.resource {
                rmcp::model::ResourceContents::TextResourceContents { uri, text, .. } => {
                    parts.push(format!("[resource {uri}]\n{text}"));
                }
                rmcp::model::ResourceContents::BlobResourceContents { uri, .. } => {
                    parts.push(format!("[resource {uri}: binary, not shown]"));
                }
                _ => parts.push("[a resource, not shown]".into()),
            }
        } else if let Some(link) = c.as_resource_link() {
            parts.push(format!("[resource link {}]", link.uri));
        } else {
            parts.push("[content that is not text, not shown]".into());
        }
    }
    if parts.is_empty()
        && let Some(s) = &r.structured_content
    {
        parts.push(s.to_string());
    }
    let text = parts.join("\n");
    if text.len() <= cap {
        return (text, false);
    }
    let mut end = cap;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    (
        format!(
            "{}\n[cut: the result is {} bytes, over the {cap}-byte cap]",
            &text[..end],
            text.len()
        ),
        true,
    )
}
