//! `troupe plugin lock FILE`: pin every plugin of a crew file (or a plugin policy) to the
//! SHA-256 of its file as it is now, editing the file in place and keeping the rest of its
//! text as it was (jsonc-parser's concrete syntax tree: formatting, order and spacing stay).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstRootNode};

use crate::exit::{Failure, OK};

/// One plugin's pin.
struct Pin {
    id: String,
    file: PathBuf,
    sha256: String,
    /// The pin it had, when it had one.
    was: Option<String>,
}

pub fn lock(file: &Path) -> Result<u8, Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Failure::user(anyhow!(
            "cannot read `{}`: {e}\n  hint: give a crew file or a plugin policy, e.g. `crews/contract-changes.json`",
            file.display()
        ))
    })?;
    // The file must be valid first: a pin is written into what Troupe would run.
    let is_policy = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .is_some_and(|v| v.get("agents").is_none() && v.get("plugins").is_some());
    if is_policy {
        troupe_crew::load_policy(file).map_err(Failure::user)?;
    } else {
        super::load(file, &Default::default()).map_err(|f| {
            Failure::user(anyhow!(
                "{:#}\n  (`troupe plugin lock` pins the plugins of a valid file)",
                f.error
            ))
        })?;
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let root = CstRootNode::parse(&text, &ParseOptions::default())
        .map_err(|e| Failure::user(anyhow!("{}: {e}", file.display())))?;
    let plugins = root
        .object_value()
        .and_then(|o| o.array_value("plugins"))
        .map(|a| a.elements())
        .unwrap_or_default();
    if plugins.is_empty() {
        return Err(Failure::user(anyhow!(
            "`{}` has no `plugins` to pin\n  hint: `troupe plugin lock` writes a `sha256` into each `plugins[]` entry",
            file.display()
        )));
    }
    let mut pins = Vec::new();
    for (i, node) in plugins.into_iter().enumerate() {
        let Some(entry) = node.as_object() else {
            continue;
        };
        let string_of = |key: &str| {
            entry
                .get(key)
                .and_then(|p| p.value())
                .and_then(|v| v.as_string_lit())
                .and_then(|s| s.decoded_value().ok())
        };
        let (Some(id), Some(rel)) = (string_of("id"), string_of("path")) else {
            continue;
        };
        let path = dir.join(&rel);
        let bytes = std::fs::read(&path).map_err(|e| {
            Failure::user(anyhow!(
                "`plugins[{i}]` (`{id}`): cannot read `{}`: {e}\n  hint: build the plugins with `plugins/build.sh`, or fix the path",
                path.display()
            ))
        })?;
        let sha256 = troupe_plugin::sha256_hex(&bytes);
        let was = string_of("sha256");
        match entry.get("sha256") {
            Some(prop) => prop.set_value(CstInputValue::String(sha256.clone())),
            None => {
                entry.append("sha256", CstInputValue::String(sha256.clone()));
            }
        }
        pins.push(Pin {
            id,
            file: path,
            sha256,
            was,
        });
    }
    let locked = root.to_string();
    if locked != text {
        write_atomically(file, &locked)?;
    }
    for p in &pins {
        let what = match &p.was {
            Some(w) if *w == p.sha256 => "unchanged".to_string(),
            Some(w) => format!("changed from {w}"),
            None => "pinned".to_string(),
        };
        crate::term::out_line(&format!(
            "{}  {} ({}) — {what}",
            p.sha256,
            p.id,
            p.file.display()
        ));
    }
    Ok(OK)
}

/// Replaces `file` with `text` in one step (a crash leaves the old file or the new one).
fn write_atomically(file: &Path, text: &str) -> Result<(), Failure> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = file.with_file_name(format!(".{name}.troupe-lock"));
    let failed = |e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        Failure::internal(anyhow!("cannot write `{}`: {e}", file.display()))
    };
    std::fs::write(&tmp, text).map_err(failed)?;
    std::fs::rename(&tmp, file).map_err(failed)?;
    Ok(())
}
