//! `troupe validate`: every problem of a crew file, or a summary of what it will run.
//!
//! It checks exactly what `troupe run` checks before it starts (`troupe_runtime::prepare`):
//! the crew file, the documents, the plugins, every agent's tools and model. A crew that
//! passes here starts there.

use troupe_runtime::models::ProviderFactory;

use crate::cli::ValidateArgs;
use crate::exit::{Failure, OK};

pub fn run(args: ValidateArgs) -> Result<u8, Failure> {
    let inputs = crate::inputs::collect(&args.inputs)?;
    let crew = super::load(&args.crew, &inputs)?;
    let documents = super::load_documents(&args.docs.docs, args.docs.skip_unreadable, &crew)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::internal(anyhow::anyhow!("cannot start the async runtime: {e}")))?;
    let (events, _rx) = troupe_runtime::events::Events::channel();
    let corpus = documents.as_ref().map(|d| d.corpus.clone());
    let models = ProviderFactory::from_env();
    let prepared = rt
        .block_on(troupe_runtime::prepare::prepare(
            crew,
            &models,
            troupe_runtime::default_tools(),
            corpus,
            &events,
        ))
        .map_err(Failure::user)?;
    for w in &prepared.warnings {
        crate::term::err_line(&format!("warning: {w}"));
    }
    for (agent, f) in &prepared.fallbacks {
        crate::term::err_line(&format!(
            "warning: agent `{agent}` names model `{}`; the embedded model `{}` stands in for it: {}",
            f.requested, f.used, f.reason
        ));
    }
    let crew = &prepared.crew;
    let docs = documents.map_or(String::new(), |d| {
        format!(
            ", {} document(s) in {} chunk(s)",
            d.corpus.documents().len(),
            d.corpus.chunks().len()
        )
    });
    crate::term::out_line(&format!(
        "{}: ok — crew `{}`, {} agent(s), {} task(s), {} process{docs}",
        args.crew.display(),
        crew.name,
        crew.agents.len(),
        crew.tasks.len(),
        match crew.process {
            troupe_crew::Process::Sequential => "sequential",
            troupe_crew::Process::Parallel => "parallel",
            troupe_crew::Process::Hierarchical => "hierarchical",
        }
    ));
    Ok(OK)
}
