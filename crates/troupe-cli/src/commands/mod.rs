pub mod plugin;
pub mod resume;
pub mod run;
pub mod runs;
pub mod schema;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use troupe_crew::{Crew, LoadError};
use troupe_docs::{ChunkOptions, Corpus, DocError, LoadOptions};
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
        LoadError::Io { .. } | LoadError::NotUtf8 { .. } | LoadError::Invalid(_) => {
            Failure::user(e)
        }
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
    let settings = crew.documents.clone().unwrap_or_default();
    let (specs, base, skip_unreadable) = (&source.specs, &source.base, source.skip_unreadable);
    if specs.is_empty() {
        return Ok(None);
    }
    let started = Instant::now();
    let load = LoadOptions {
        skip_unreadable: skip_unreadable
            || settings.on_unreadable == troupe_crew::OnUnreadable::Skip,
        max_file_bytes: u64::from(settings.max_file_mb) << 20,
        pdf_timeout: settings.pdf_timeout,
    };
    let chunks = ChunkOptions {
        tokens: settings.chunk_tokens as usize,
        overlap: settings.chunk_overlap as usize,
    };
    let (corpus, report) = Corpus::load(specs, base, &load, chunks).map_err(|e| {
        let hint = if matches!(e, DocError::Unreadable(_)) {
            "\n  hint: fix or remove these files, or pass --skip-unreadable (crew file: \"documents\": {\"on_unreadable\": \"skip\"}) to go on without them"
        } else {
            ""
        };
        Failure::user(anyhow!("documents: {e}{hint}"))
    })?;
    Ok(Some(RunDocuments {
        corpus: Arc::new(corpus),
        skipped: report.skipped.iter().map(ToString::to_string).collect(),
        ignored: report.ignored.iter().map(ToString::to_string).collect(),
        load_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        source: Some(source.clone()),
    }))
}
