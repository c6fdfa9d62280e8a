pub mod approve;
pub mod lock;
pub mod mcp;
pub mod plugin;
pub mod resume;
pub mod run;
pub mod runs;
pub mod schema;
pub mod serve;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use troupe_crew::{Crew, LoadError};
use troupe_runtime::RunDocuments;
use troupe_runtime::continuation::DocumentSource;

use crate::exit::Failure;

/// Opens the run store named by `--store`, `TROUPE_STORE` or the default place.
pub fn open_store(args: &crate::cli::StoreArgs) -> Result<Arc<troupe_store::Store>, Failure> {
    let path = args.store.clone().unwrap_or_else(|| {
        troupe_store::default_path(&|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    });
    troupe_store::Store::open(&path)
        .map(Arc::new)
        .map_err(Failure::user)
}

/// Loads and validates a crew file; every problem is a user error.
pub fn load(path: &Path, inputs: &BTreeMap<String, String>) -> Result<Crew, Failure> {
    troupe_crew::load(path, inputs).map_err(|e| match e {
        LoadError::Io { .. }
        | LoadError::NotUtf8 { .. }
        | LoadError::Invalid(_)
        | LoadError::InvalidPolicy(_) => Failure::user(e),
    })
}

/// The run's documents: `--docs` (relative to the current directory) or the crew file's
/// `documents.paths` (relative to the crew file). None when neither names any.
pub fn load_documents(
    docs: &[String],
    skip_unreadable: bool,
    crew: &Crew,
) -> Result<Option<RunDocuments>, Failure> {
    let settings = crew.documents.clone().unwrap_or_default();
    let (specs, base) = if docs.is_empty() {
        (settings.paths.clone(), crew.dir.clone())
    } else {
        (docs.to_vec(), PathBuf::from("."))
    };
    // Recorded absolute, so that a resume reads the same files from any directory.
    let source = DocumentSource {
        specs,
        base: std::path::absolute(&base).unwrap_or(base),
        skip_unreadable,
    };
    load_documents_from(&source, crew)
}

/// The documents a stored run was started with, read again.
pub fn load_documents_from(
    source: &DocumentSource,
    crew: &Crew,
) -> Result<Option<RunDocuments>, Failure> {
    troupe_runtime::launch::documents(source, crew).map_err(Failure::user)
}
