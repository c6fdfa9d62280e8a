//! # troupe-mcp
//!
//! Troupe as an MCP server: its WebAssembly plugins and its crews as tools any MCP client can
//! call (desktop assistants, IDEs, other agent frameworks), over stdio (`troupe mcp serve`) or
//! streamable HTTP (`/mcp` on `troupe serve`), with the official Rust SDK (`rmcp`).
//!
//! Every other MCP server runs its tools as host processes with the rights of whoever started
//! them. Here a plugin tool runs in the plugin sandbox with exactly the grants and limits of
//! its policy entry (a crew's `plugins[]` entry, on its own); a denial or a limit comes back as
//! a tool error naming the key that grants or raises it. A crew tool runs the whole crew as
//! `troupe run` would — stored, resumable — reporting each task as a progress notification,
//! and answers with the report and the run id.
//!
//! Layout:
//! - [`served`]: what a served tool is ([`Served`]), the calls' progress and cancellation;
//! - [`plugins`]: plugin tools, from a policy;
//! - [`crews`]: crew tools, their arguments from the crew's inputs;
//! - [`server`]: the MCP server over the tools ([`McpService`]), on stdio or as an HTTP service.
//!
//! The other direction, MCP servers' tools used by a crew, is the runtime's
//! (`troupe_runtime::mcp`).

pub mod crews;
pub mod plugins;
pub mod served;
pub mod server;

pub use served::{Call, Log, Progress, Served};
pub use server::{McpService, http_service, serve_stdio};
