//! From a file to a component of the `tool-plugin` world: components as they are, core modules
//! (binary or WAT text) wrapped at load time with `wit-component`, with the WASI adapter when they
//! import WASI preview 1.

use std::path::Path;

use wasmparser::{Parser, Payload};
use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::Resolve;

use crate::error::PluginError;

fn load_err(path: &Path, reason: impl Into<String>, hint: impl Into<String>) -> PluginError {
    PluginError::Load {
        path: path.to_path_buf(),
        reason: reason.into(),
        hint: hint.into(),
    }
}

const WORLD_HINT: &str = "build the plugin against crates/troupe-plugin/wit/world.wit (`troupe:plugin/tool-plugin@0.1.0`): export `describe` and `invoke`; see plugins/README.md";

/// What kind of WebAssembly a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Component,
    CoreModule,
}

/// The component bytes for a plugin file, and what the file was.
pub(crate) fn component_bytes(path: &Path, bytes: &[u8]) -> Result<(Vec<u8>, Kind), PluginError> {
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
    let mut module = bytes.to_vec();
    let mut resolve = Resolve::default();
    let pkg = resolve.push_str("world.wit", crate::WIT).map_err(|e| {
        load_err(
            path,
            format!("internal: the world does not parse: {e}"),
            "report this bug",
        )
    })?;
    let world = resolve
        .select_world(&[pkg], Some("tool-plugin"))
        .map_err(|e| load_err(path, format!("internal: {e}"), "report this bug"))?;
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8).map_err(|e| {
        load_err(
            path,
            format!("cannot describe the module: {e:#}"),
            WORLD_HINT,
        )
    })?;
    let mut encoder = ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .map_err(|e| {
            load_err(
                path,
                format!("not a module of the tool-plugin world: {e:#}"),
                WORLD_HINT,
            )
        })?;
    if imports_wasi_p1(bytes) {
        encoder = encoder
            .adapter(
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
            .map_err(|e| {
                load_err(
                    path,
                    format!("cannot adapt WASI preview 1: {e:#}"),
                    WORLD_HINT,
                )
            })?;
    }
    let component = encoder.encode().map_err(|e| {
        load_err(
            path,
            format!("does not implement the tool-plugin world: {e:#}"),
            WORLD_HINT,
        )
    })?;
    Ok((component, Kind::CoreModule))
}

fn looks_like_wat(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(";;"))
        .is_some_and(|l| l.starts_with("(module") || l.starts_with("(component"))
}

fn imports_wasi_p1(module: &[u8]) -> bool {
    Parser::new(0).parse_all(module).any(|p| match p {
        Ok(Payload::ImportSection(imports)) => imports
            .into_imports()
            .flatten()
            .any(|import| import.module == "wasi_snapshot_preview1"),
        _ => false,
    })
}

/// A component built for another version of the world is refused with the versions supported.
fn check_version(path: &Path, component: &[u8]) -> Result<(), PluginError> {
    for payload in Parser::new(0).parse_all(component) {
        let Ok(Payload::ComponentImportSection(imports)) = payload else {
            continue;
        };
        for import in imports.into_iter().flatten() {
            let name = import.name.name;
            if let Some(rest) = name.strip_prefix("troupe:plugin/")
                && let Some((_, version)) = rest.split_once('@')
                && !version.starts_with("0.1.")
            {
                return Err(load_err(
                    path,
                    format!("built for `troupe:plugin@{version}`; this Troupe supports 0.1.x"),
                    "rebuild the plugin against this Troupe's wit/world.wit, or upgrade Troupe",
                ));
            }
        }
    }
    Ok(())
}
