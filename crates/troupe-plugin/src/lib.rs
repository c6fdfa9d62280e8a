//! Tool plugins for Troupe: a versioned WIT world (`wit/world.wit`, `troupe:plugin@0.1.0`) and a
//! sandboxed wasmtime host.
//!
//! A plugin is a WebAssembly component of the `tool-plugin` world, or a plain core module that
//! follows the same world's canonical ABI (run as a core module, with WASI preview 1 from the
//! host: see `core_module` for why not through the component adapter). Both get the same host
//! functions, grants, limits and per-call store. Each call gets a fresh
//! instance in a fresh store: nothing leaks between calls except through the granted key-value
//! space. Calls are bounded by a deadline (epoch interruption), a memory cap, an output cap; WASI
//! grants nothing (no files, no environment, no sockets); host capabilities need grants.
//! Compiled code is cached on disk (see `cache`), so a plugin is compiled once per version.

pub mod cache;
mod core_module;
mod error;
mod host;
mod http;
pub mod load;
mod plugin;
mod sandbox;
pub mod skeleton;

pub use cache::CacheOutcome;

/// The SHA-256 of `bytes`, lowercase hex: what a crew's `plugins[].sha256` pins.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
pub use error::PluginError;
pub use plugin::{CallReport, Capabilities, Description, Plugin, ToolInfo};
pub use sandbox::{
    Grants, KvSpace, Limits, LogLine, MAX_DENIAL_MESSAGES, MAX_DENIALS_PER_CALL, MAX_KV_KEY_BYTES,
    Services,
};

/// The WIT package this host implements, and the versions it accepts.
pub const WORLD: &str = "troupe:plugin/tool-plugin";
pub const WORLD_VERSION: &str = "0.1.0";
/// The WIT text, for `troupe plugin new` and the authoring guide.
pub const WIT: &str = include_str!("../wit/world.wit");
