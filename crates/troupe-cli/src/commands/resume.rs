//! `troupe resume RUN` and `troupe replay RUN --from TASK`: runs that continue a stored one.
//!
//! A resume continues the run itself and must make the same requests, so it refuses when the
//! crew file (other than its `limits`), the inputs or the documents changed since the run
//! started, and says what changed. A replay is a new run and may change them; the tasks it keeps
//! must be unchanged.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use troupe_runtime::continuation::{self, Continuation, ContinueMode, DocumentSource};
use troupe_runtime::launch::{self, ResumeCrew, parse, stored_inputs};
use troupe_runtime::models::ProviderFactory;

use crate::cli::{ReplayArgs, ResumeArgs};
use crate::exit::Failure;

use super::run::{Execution, execute};

pub fn resume(args: ResumeArgs) -> Result<u8, Failure> {
    let store = super::open_store(&args.store)?;
    let id = store.resolve(&args.run).map_err(Failure::user)?;
    let r =
        launch::resume(&store, &id, ResumeCrew::OnDisk, args.out.clone()).map_err(Failure::user)?;
    execute(Execution {
        crew: r.crew,
        out: r.out_dir,
        documents: r.documents,
        store,
        continuation: Some(r.continuation),
        models: Arc::new(ProviderFactory::from_env()),
        progress: args.progress,
        approvals: super::approve::terminal_gate(),
        otlp: None,
    })
}

pub fn replay(args: ReplayArgs) -> Result<u8, Failure> {
    let store = super::open_store(&args.store)?;
    let id = store.resolve(&args.run).map_err(Failure::user)?;
    let source = store.source(&id).map_err(Failure::user)?;
    let recorded_file = PathBuf::from(&source.crew_file);
    let mut inputs = stored_inputs(&source);
    inputs.extend(crate::inputs::collect(&args.inputs)?);
    let parent = parse(
        &recorded_file,
        source.crew_text.clone(),
        &stored_inputs(&source),
    )
    .map_err(Failure::user)?;
    let file = args.crew.clone().unwrap_or(recorded_file);
    let crew = super::load(&file, &inputs)?;
    continuation::unchanged_upstream(&parent, &crew, &args.from)
        .map_err(|e| Failure::user(anyhow!("{e}")))?;
    let cont = Continuation::load(
        &*store,
        ContinueMode::Replay {
            parent: id.clone(),
            from: args.from.clone(),
        },
    )
    .map_err(Failure::user)?;
    let documents = if args.docs.docs.is_empty() {
        match &cont.options.documents {
            Some(d) => super::load_documents_from(
                &DocumentSource {
                    skip_unreadable: d.skip_unreadable || args.docs.skip_unreadable,
                    ..d.clone()
                },
                &crew,
            )?,
            None => super::load_documents(&[], args.docs.skip_unreadable, &crew)?,
        }
    } else {
        super::load_documents(&args.docs.docs, args.docs.skip_unreadable, &crew)?
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let mut dir = PathBuf::from(&source.out_dir).into_os_string();
        dir.push("-replay");
        PathBuf::from(dir)
    });
    execute(Execution {
        crew,
        out,
        documents,
        store,
        continuation: Some(cont),
        models: Arc::new(ProviderFactory::from_env()),
        progress: args.progress,
        approvals: super::approve::terminal_gate(),
        otlp: None,
    })
}
