//! `troupe validate`: every problem of a crew file, or a summary of what it will run.

use std::sync::Arc;

use troupe_crew::Diagnostics;
use troupe_docs::{ChunkOptions, Corpus};

use crate::cli::ValidateArgs;
use crate::exit::{Failure, OK};

pub fn run(args: ValidateArgs) -> Result<u8, Failure> {
    let inputs = crate::inputs::collect(&args.inputs)?;
    let crew = super::load(&args.crew, &inputs)?;
    // The crew's documents are read as a run would read them, so that unreadable files show
    // up here too.
    let documents = super::load_documents(&[], false, &crew)?;
    // Tools are known only to the runtime: check them here too, so `validate` catches them.
    // The `docs.*` tools exist in every run with documents, which `--docs` may add at run time.
    let mut tools = troupe_runtime::default_tools();
    let corpus = match &documents {
        Some(d) => d.corpus.clone(),
        None => Arc::new(
            Corpus::from_texts(Vec::new(), ChunkOptions::default())
                .map_err(|e| Failure::internal(anyhow::anyhow!("{e}")))?,
        ),
    };
    troupe_runtime::docs_tools::register(&mut tools, &corpus);
    // Plugins are loaded (compiled, described) so that their tools are known.
    if !crew.plugins.is_empty() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Failure::internal(anyhow::anyhow!("cannot start the async runtime: {e}"))
            })?;
        let (events, _rx) = troupe_runtime::events::Events::channel();
        let plugins = rt
            .block_on(troupe_runtime::plugins::load(
                &crew,
                Some(corpus.clone()),
                &events,
            ))
            .map_err(|d| Failure::user(Diagnostics(d)))?;
        troupe_runtime::plugins::register(&mut tools, &plugins, &events);
    }
    let mut problems = troupe_runtime::check_tools(&crew, &tools);
    // Output files as the run will name them: with the documents known, per-document files
    // are expanded so that two documents that give one file name are caught here.
    match &documents {
        Some(d) => {
            let mut expanded = crew.clone();
            match troupe_runtime::fanout::expand(&mut expanded, Some(&*d.corpus)) {
                Ok(()) => {
                    problems.extend(troupe_runtime::outdir::check_output_files(&expanded, true))
                }
                Err(p) => problems.extend(p),
            }
        }
        None => problems.extend(troupe_runtime::outdir::check_output_files(&crew, false)),
    }
    if !problems.is_empty() {
        return Err(Failure::user(Diagnostics(problems)));
    }
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
