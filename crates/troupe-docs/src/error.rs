use std::fmt;
use std::path::PathBuf;

/// Why one file could not be turned into a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadProblem {
    pub path: PathBuf,
    pub reason: String,
    pub hint: String,
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}\n  hint: {}",
            self.path.display(),
            self.reason,
            self.hint
        )
    }
}

/// Errors of the document layer that are not about one file.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// A path or pattern given by the user matched nothing.
    #[error("{spec}: {reason}\n  hint: {hint}")]
    Spec {
        spec: String,
        reason: String,
        hint: String,
    },
    /// Files could not be read and the caller asked to fail on them.
    #[error("{} document(s) could not be read:\n{}", .0.len(), list(.0))]
    Unreadable(Vec<LoadProblem>),
    /// No document at all.
    #[error("no documents to read\n  hint: {0}")]
    Empty(String),
    /// The search index failed (an internal error; tantivy reports why).
    #[error("search index: {0}")]
    Index(String),
}

fn list(problems: &[LoadProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
