pub mod run;
pub mod schema;
pub mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use troupe_crew::{Crew, LoadError};

use crate::exit::Failure;

/// Loads and validates a crew file; every problem is a user error.
pub fn load(path: &Path, inputs: &BTreeMap<String, String>) -> Result<Crew, Failure> {
    troupe_crew::load(path, inputs).map_err(|e| match e {
        LoadError::Io { .. } | LoadError::Invalid(_) => Failure::user(e),
    })
}
