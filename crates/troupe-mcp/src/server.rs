//! The MCP server over Troupe's tools: `tools/list` and `tools/call` (arguments checked against
//! each tool's schema first), on stdio or as a streamable HTTP service.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::served::{Call, Progress, Served};

struct Entry {
    served: Arc<dyn Served>,
    validator: Arc<jsonschema::Validator>,
}

/// The server: a fixed set of tools.
#[derive(Clone)]
pub struct McpService {
    tools: Arc<BTreeMap<String, Arc<Entry>>>,
    /// The calls in flight, of every session: a server that stops waits for them (a crew run
    /// records that it was interrupted).
    calls: TaskTracker,
}

impl McpService {
    /// A server of `tools`; `Err` names a tool name given twice, or a tool whose argument
    /// schema does not compile (its arguments could not be checked).
    pub fn new(tools: Vec<Arc<dyn Served>>) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for served in tools {
            let def = served.definition();
            let name = def.name.to_string();
            let schema = Value::Object((*def.input_schema).clone());
            let validator = jsonschema::validator_for(&schema).map_err(|e| {
                format!(
                    "tool `{name}`: its argument schema is not a valid JSON Schema ({e}), so its arguments could not be checked\n  hint: fix the `parameters` the plugin's `describe` gives (`troupe plugin inspect FILE` shows them)"
                )
            })?;
            let entry = Arc::new(Entry {
                served,
                validator: Arc::new(validator),
            });
            if map.insert(name.clone(), entry).is_some() {
                return Err(format!(
                    "two tools are named `{name}`\n  hint: give the plugins different ids in the policy, and the crews different names"
                ));
            }
        }
        Ok(Self {
            tools: Arc::new(map),
            calls: TaskTracker::new(),
        })
    }

    /// The service one session of a shared server gets: the same tools, each plugin with a
    /// key-value space of the session's own (one client does not read, or fill, another's).
    pub fn for_session(&self) -> McpService {
        let mut copies = HashMap::new();
        let tools = self
            .tools
            .iter()
            .map(|(name, e)| {
                let entry = match e.served.for_session(&mut copies) {
                    Some(served) => Arc::new(Entry {
                        served,
                        validator: e.validator.clone(),
                    }),
                    None => e.clone(),
                };
                (name.clone(), entry)
            })
            .collect();
        McpService {
            tools: Arc::new(tools),
            calls: self.calls.clone(),
        }
    }

    /// Waits up to `within` for the calls in flight (already told to stop) to end.
    pub async fn drain(&self, within: Duration) {
        self.calls.close();
        let _ = tokio::time::timeout(within, self.calls.wait()).await;
    }

    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// Calls `name` as a client would: unknown tools and arguments that do not fit the schema
    /// are tool errors that say what to fix.
    pub async fn call(&self, name: &str, args: Value, call: Call) -> CallToolResult {
        let Some(entry) = self.tools.get(name) else {
            return CallToolResult::error(vec![ContentBlock::text(format!(
                "there is no tool `{name}`; the tools are: {}",
                self.tools.keys().cloned().collect::<Vec<_>>().join(", ")
            ))]);
        };
        let errors = troupe_runtime::tool::schema_errors(&entry.validator, &args);
        if !errors.is_empty() {
            return CallToolResult::error(vec![ContentBlock::text(format!(
                "the arguments do not match the tool's inputSchema: {}",
                errors.join("; ")
            ))]);
        }
        entry.served.call(args, call).await
    }
}

impl ServerHandler for McpService {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("troupe", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Troupe's tools: WebAssembly plugins, each run in a sandbox with only the grants of its policy (a denial or a limit is a tool error naming the key), and crews of AI agents, each run as a whole with a progress notification per task.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.tools
                .values()
                .map(|e| e.served.definition().clone())
                .collect(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.get(name).map(|e| e.served.definition().clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.unwrap_or_default());
        let call = Call {
            progress: Progress::new(context.peer.clone(), context.meta.get_progress_token()),
            cancel: context.ct.clone(),
        };
        let result = self
            .calls
            .track_future(self.call(&request.name, args, call))
            .await;
        Ok(result.into())
    }
}

/// Serves on stdin and stdout until the client closes them or `stop` is cancelled, then waits
/// (a while) for the calls in flight, which the end of the session cancelled.
pub async fn serve_stdio(service: McpService, stop: CancellationToken) -> std::io::Result<()> {
    let running = service
        .clone()
        .serve_with_ct(rmcp::transport::stdio_pipes(), stop)
        .await
        .map_err(std::io::Error::other)?;
    let ended = running.waiting().await.map_err(std::io::Error::other);
    service.drain(Duration::from_secs(10)).await;
    ended.map(|_| ())
}

/// The streamable HTTP endpoint of `service` (to mount at `/mcp`), each session with its own
/// copy ([`McpService::for_session`]). `loopback_only`: only `localhost`, `127.0.0.1` and `::1`
/// are accepted as the `Host` (against DNS rebinding); otherwise any host, the caller guarding
/// the endpoint with its token. A request with an `Origin` (a web page's) is refused: the
/// endpoint is for MCP clients, not for pages. A request body over `max_body` bytes is refused
/// (413).
pub fn http_service(
    service: McpService,
    loopback_only: bool,
    max_body: usize,
    stop: CancellationToken,
) -> StreamableHttpService<McpService, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(stop)
        .with_max_request_body_bytes(max_body)
        .enforce_origin_validation();
    if !loopback_only {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || Ok(service.for_session()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
