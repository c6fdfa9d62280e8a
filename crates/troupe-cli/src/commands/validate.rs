//! `troupe validate`: every problem of a crew file, or a summary of what it will run.

use troupe_crew::Diagnostics;

use crate::cli::ValidateArgs;
use crate::exit::{Failure, OK};

#[allow(clippy::print_stdout)]
pub fn run(args: ValidateArgs) -> Result<u8, Failure> {
    let inputs = crate::inputs::collect(&args.inputs)?;
    let crew = super::load(&args.crew, &inputs)?;
    // Tools are known only to the runtime: check them here too, so `validate` catches them.
    let problems = troupe_runtime::check_tools(&crew, &troupe_runtime::default_tools());
    if !problems.is_empty() {
        return Err(Failure::user(Diagnostics(problems)));
    }
    println!(
        "{}: ok — crew `{}`, {} agent(s), {} task(s), {} process",
        args.crew.display(),
        crew.name,
        crew.agents.len(),
        crew.tasks.len(),
        match crew.process {
            troupe_crew::Process::Sequential => "sequential",
            troupe_crew::Process::Parallel => "parallel",
            troupe_crew::Process::Hierarchical => "hierarchical",
        }
    );
    Ok(OK)
}
