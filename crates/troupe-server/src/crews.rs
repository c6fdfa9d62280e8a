//! The crews a server offers (`--crews DIR`: every `*.json` crew file there, by its `name`), and
//! crews sent inline with a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, DiagnosticBody};

/// A crew as `GET /v1/crews` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CrewInfo {
    pub name: String,
    pub description: Option<String>,
    /// The crew file, relative to the crews directory.
    pub file: String,
    /// Its `{placeholder}` inputs, each with its default when it has one.
    pub inputs: BTreeMap<String, Option<String>>,
    pub tasks: Vec<TaskInfo>,
    /// Whether it works on documents (`for_each` tasks, or `docs.*` tools).
    pub uses_documents: bool,
    /// Whether the crew file passes validation (with its default inputs).
    pub valid: bool,
    pub diagnostics: Vec<DiagnosticBody>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskInfo {
    pub id: String,
    pub agent: Option<String>,
    /// Waits for a person's approval.
    pub approval: bool,
    pub output_file: Option<String>,
}

/// A crew file found in the crews directory.
pub struct CrewFile {
    pub path: PathBuf,
    pub text: String,
}

/// The crew files of `dir`, by crew name (a file whose `name` cannot be read is listed by its
/// file stem).
pub fn scan(dir: &Path) -> BTreeMap<String, CrewFile> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let name = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string))
            .unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        out.entry(name).or_insert(CrewFile { path, text });
    }
    out
}

/// What the listing says of one crew file.
pub fn info(dir: &Path, name: &str, file: &CrewFile) -> CrewInfo {
    let wire: Option<troupe_crew::wire::CrewFile> = serde_json::from_str(&file.text).ok();
    let inputs = wire
        .as_ref()
        .map(troupe_crew::wire::CrewFile::inputs_wanted)
        .unwrap_or_default();
    let parsed = troupe_crew::parse(
        troupe_crew::Source::new(&file.path, file.text.clone()),
        file.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        &BTreeMap::new(),
    );
    let (valid, diagnostics) = match &parsed {
        Ok(_) => (true, Vec::new()),
        Err(d) => (false, ApiError::invalid_crew(d).body.diagnostics),
    };
    let uses_documents = wire
        .as_ref()
        .is_some_and(troupe_crew::wire::CrewFile::uses_documents);
    CrewInfo {
        name: name.to_string(),
        description: wire.as_ref().and_then(|w| w.description.clone()),
        file: file
            .path
            .strip_prefix(dir)
            .unwrap_or(&file.path)
            .display()
            .to_string(),
        inputs,
        tasks: wire
            .map(|w| {
                w.tasks
                    .into_iter()
                    .map(|t| TaskInfo {
                        approval: t
                            .approval
                            .as_ref()
                            .is_some_and(|a| a.required.unwrap_or(true)),
                        id: t.id,
                        agent: t.agent,
                        output_file: t.output_file,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        uses_documents,
        valid,
        diagnostics,
    }
}
