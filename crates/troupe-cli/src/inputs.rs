//! `--input KEY=VALUE` and `--input-file KEY=PATH`.

use std::collections::BTreeMap;

use anyhow::anyhow;

use crate::cli::InputArgs;
use crate::exit::Failure;

pub fn collect(args: &InputArgs) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    for raw in &args.inputs {
        let (k, v) = split(raw, "--input", "topic=\"AI in healthcare\"")?;
        out.insert(k, v);
    }
    for raw in &args.input_files {
        let (k, path) = split(raw, "--input-file", "contract=docs/contract.txt")?;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Failure::user(anyhow!(
                "cannot read `{path}` for input `{k}`: {e}\n  hint: give a readable text file, e.g. `--input-file {k}=notes.txt`"
            ))
        })?;
        out.insert(k, text);
    }
    Ok(out)
}

fn split(raw: &str, flag: &str, example: &str) -> Result<(String, String), Failure> {
    match raw.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(Failure::user(anyhow!(
            "`{flag} {raw}` is not KEY=VALUE\n  hint: write it as `{flag} {example}`"
        ))),
    }
}
