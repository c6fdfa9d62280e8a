//! `troupe schema`: the crew file's JSON Schema, generated from the Rust types.

use anyhow::Context;

use crate::cli::SchemaArgs;
use crate::exit::{Failure, OK};

#[allow(clippy::print_stdout)]
pub fn run(args: SchemaArgs) -> Result<u8, Failure> {
    let schema = troupe_crew::schema::crew_schema_pretty();
    match args.out {
        Some(path) => std::fs::write(&path, schema)
            .with_context(|| format!("cannot write `{}`", path.display()))
            .map_err(Failure::user)?,
        None => print!("{schema}"),
    }
    Ok(OK)
}
