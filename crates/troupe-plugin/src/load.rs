//! From a file to what runs: a component of the `tool-plugin` world as it is, or a core module
//! (binary or WAT text) that implements the same world's canonical ABI by hand, run as a core
//! module (see `core_module`).

use std::path::Path;

use wasmparser::{Parser, Payload};

use crate::error::PluginError;

fn load_err(path: &Path, reason: impl Into<String>, hint: impl Into<String>) -> PluginError {
    PluginError::Load {
        path: path.to_path_buf(),
        reason: reason.into(),
        hint: hint.into(),
    }
}

pub(crate) const WORLD_HINT: &str = "build the plugin against crates/troupe-plugin/wit/world.wit (`troupe:plugin/tool-plugin@0.1.0`): export `describe` and `invoke`; see plugins/README.md";

/// What kind of WebAssembly a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Component,
    CoreModule,
}

/// The WebAssembly binary of a plugin file (WAT text is translated), and what it is.
pub(crate) fn binary(path: &Path, bytes: &[u8]) -> Result<(Vec<u8>, Kind), PluginError> {
    let binary;
    let bytes = if bytes.starts_with(b"\0asm") {
        bytes
    } else if looks_like_wat(bytes) {
        binary = wat::parse_bytes(bytes)
            .map_err(|e| {
                load_err(
                    path,
                    format!("invalid WebAssembly text: {e}"),
                    "fix the WAT syntax",
                )
            })?
            .into_owned();
        &binary[..]
    } else {
        return Err(load_err(
            path,
            "not a WebAssembly file (no `\\0asm` header)",
            "give the `.wasm` your toolchain produced (a component, or a core module of the tool-plugin world)",
        ));
    };
    if Parser::is_component(bytes) {
        check_version(path, bytes)?;
        return Ok((bytes.to_vec(), Kind::Component));
    }
    if !Parser::is_core_wasm(bytes) {
        return Err(load_err(path, "unknown WebAssembly encoding", WORLD_HINT));
    }
    check_host_version(path, bytes)?;
    Ok((bytes.to_vec(), Kind::CoreModule))
}

fn looks_like_wat(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(";;"))
        .is_some_and(|l| l.starts_with("(module") || l.starts_with("(component"))
}

/// A core module importing another version of the host interface is refused with the
/// versions supported.
fn check_host_version(path: &Path, module: &[u8]) -> Result<(), PluginError> {
    for payload in Parser::new(0).parse_all(module) {
        let Ok(Payload::ImportSection(imports)) = payload else {
            continue;
        };
        for import in imports.into_imports().flatten() {
            refuse_version(path, import.module)?;
        }
    }
    Ok(())
}

fn refuse_version(path: &Path, name: &str) -> Result<(), PluginError> {
    if let Some(rest) = name.strip_prefix("troupe:plugin/")
        && let Some((_, version)) = rest.split_once('@')
        && !version.starts_with("0.1.")
    {
        return Err(load_err(
            path,
            format!(
                "it imports `{name}`, of `troupe:plugin@{version}`; this Troupe supports 0.1.x"
            ),
            "rebuild the plugin against this Troupe's wit/world.wit, or upgrade Troupe",
        ));
    }
    Ok(())
}

/// A component built for another version of the world is refused with the versions supported.
fn check_version(path: &Path, component: &[u8]) -> Result<(), PluginError> {
    for payload in Parser::new(0).parse_all(component) {
        let Ok(Payload::ComponentImportSection(imports)) = payload else {
            continue;
        };
        for import in imports.into_iter().flatten() {
            refuse_version(path, import.name.name)?;
        }
    }
    Ok(())
}
