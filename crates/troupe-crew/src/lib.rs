//! # troupe-crew
//!
//! The crew file: what a user writes, checked before anything runs.
//!
//! Layout:
//! - [`wire`]: the JSON as written (serde + schemars; unknown keys are errors);
//! - [`schema`]: the JSON Schema generated from the wire types (`troupe schema`);
//! - [`shape`]: what the schema finds, said with key, reason and hint; duplicate keys; the
//!   repairs that let the checks of meaning run past shape errors;
//! - [`validate`]: text → [`model::Crew`], collecting every problem as a located [`Diagnostic`];
//! - [`model`]: the validated crew the runtime consumes;
//! - [`template`]: `{placeholder}` inputs;
//! - [`diag`]: diagnostics (file, line:column, JSON path, message, hint).

pub mod diag;
pub mod model;
pub mod schema;
pub mod shape;
pub mod template;
pub mod validate;
pub mod wire;

pub use diag::{Diagnostic, Diagnostics, JsonPath, Source, Target};
pub use model::*;
/// A crew's name as one path component or tool name (`runs/<slug>`, the MCP tool of a crew):
/// letters, digits, `_` and `-`, anything else `-`; `crew` when nothing is left.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() { "crew".into() } else { s }
}

pub use validate::{LoadError, load, load_policy, parse, parse_policy};
