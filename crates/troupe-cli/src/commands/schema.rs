//! `troupe schema`: the crew file's JSON Schema (or a plugin policy's), generated from the Rust
//! types.

use anyhow::Context;

use crate::cli::SchemaArgs;
use crate::exit::{Failure, OK};

pub fn run(args: SchemaArgs) -> Result<u8, Failure> {
    let schema = if args.policy {
        troupe_crew::schema::policy().pretty()
    } else {
        troupe_crew::schema::crew_schema_pretty()
    };
    match args.out {
        Some(path) => std::fs::write(&path, schema)
            .with_context(|| format!("cannot write `{}`", path.display()))
            .map_err(Failure::user)?,
        // `troupe schema | head`: a closed pipe ends the output, not an error.
        None => {
            crate::term::out_raw(&schema);
        }
    }
    Ok(OK)
}
