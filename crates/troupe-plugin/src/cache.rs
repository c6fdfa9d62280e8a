//! Compiled plugins cached on disk, so the same plugin is never compiled twice: a JavaScript or
//! Python component takes seconds to compile and milliseconds to reload.
//!
//! An entry is named by the SHA-256 of the component's bytes and of everything that makes
//! machine code incompatible (wasmtime's version, the engine's configuration and the CPU features
//! it compiled for, through `Engine::precompile_compatibility_hash`). Entries are written to a
//! temporary file and renamed into place, so a reader never sees a partial file, and a file
//! that is mapped is never rewritten.
//!
//! Entries clean themselves up: when a new entry is stored, entries that another engine made (an
//! older Troupe or wasmtime, other CPU features: this one can never load them) and entries no
//! load has used for 30 days are removed. A load that uses an entry marks it used (its mtime).
//!
//! The cache directory is `$TROUPE_CACHE_DIR/plugins`, else `$XDG_CACHE_HOME/troupe/plugins`, else
//! `~/.cache/troupe/plugins`; `TROUPE_PLUGIN_CACHE=off` turns it off; `set_dir` overrides both.
//!
//! This is the crate's one `unsafe` block: loading compiled code. Its contract and why it holds
//! are written beside it.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::load::Kind;

/// Compiled code: a component's, or a core module's.
pub(crate) enum Code {
    Component(Component),
    Module(Module),
}

impl Code {
    fn new(engine: &Engine, bytes: &[u8], kind: Kind) -> Result<Code, wasmtime::Error> {
        Ok(match kind {
            Kind::Component => Code::Component(Component::new(engine, bytes)?),
            Kind::CoreModule => Code::Module(Module::new(engine, bytes)?),
        })
    }

    fn serialize(&self) -> Result<Vec<u8>, wasmtime::Error> {
        match self {
            Code::Component(c) => c.serialize(),
            Code::Module(m) => m.serialize(),
        }
    }
}

/// Where a plugin's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheOutcome {
    /// Loaded from the cache: not compiled.
    Hit,
    /// Compiled, and stored for next time.
    Stored,
    /// Compiled; the cache is off or could not be written (the reason is in `CacheNote`).
    Compiled,
}

/// Set by an embedder (or a benchmark) instead of the environment: `Some(None)` turns the cache
/// off, `Some(Some(dir))` uses `dir/plugins`.
static OVERRIDE: RwLock<Option<Option<PathBuf>>> = RwLock::new(None);

/// Uses `base/plugins` as the cache (`None`: no cache) for every later load in this process,
/// whatever the environment says.
pub fn set_dir(base: Option<PathBuf>) {
    if let Ok(mut o) = OVERRIDE.write() {
        *o = Some(base.map(|b| b.join("plugins")));
    }
}

/// The cache directory, or `None` when turned off.
pub fn dir() -> Option<PathBuf> {
    if let Ok(o) = OVERRIDE.read()
        && let Some(chosen) = o.clone()
    {
        return chosen;
    }
    if std::env::var("TROUPE_PLUGIN_CACHE").is_ok_and(|v| v == "off" || v == "0") {
        return None;
    }
    let base = std::env::var_os("TROUPE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("troupe")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/troupe")))?;
    Some(base.join("plugins"))
}

const DAY: Duration = Duration::from_secs(24 * 3600);
/// Entries that no load has used for this long are removed when a new entry is stored.
const UNUSED_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// The file name of the entry for `bytes` compiled by `engine` as `kind`:
/// `<content hash>-<engine hash>.cwasm` (a core module's name ends `.core.cwasm`).
fn key(engine: &Engine, bytes: &[u8], kind: Kind) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut sha = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut sha);
    sha.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    let engine_part = sha.0.finalize();
    let content = Sha256::digest(bytes);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let what = match kind {
        Kind::Component => "",
        Kind::CoreModule => "core-",
    };
    format!(
        "{}-{what}{}.cwasm",
        hex(&content[..16]),
        hex(&engine_part[..8])
    )
}

/// The compiled code of `bytes`: from the cache when it is there, else compiled (and stored
/// when the cache is on). A cache problem never fails a load: the reason comes back as a note.
pub(crate) fn compile(
    engine: &Engine,
    bytes: &[u8],
    kind: Kind,
) -> Result<(Code, CacheOutcome, Option<String>), wasmtime::Error> {
    let Some(dir) = dir() else {
        return Ok((
            Code::new(engine, bytes, kind)?,
            CacheOutcome::Compiled,
            None,
        ));
    };
    let path = dir.join(key(engine, bytes, kind));
    let mut note = None;
    if path.is_file() {
        match load(engine, &path, kind) {
            Ok(c) => {
                mark_used(&path);
                return Ok((c, CacheOutcome::Hit, None));
            }
            // Made by another build of wasmtime or damaged: compile again and replace it.
            Err(e) => note = Some(format!("ignored cache entry {}: {e:#}", path.display())),
        }
    }
    let compiled = Code::new(engine, bytes, kind)?;
    match store(&dir, &path, &compiled) {
        Ok(()) => {
            prune(&dir, &path);
            Ok((compiled, CacheOutcome::Stored, note))
        }
        Err(e) => Ok((
            compiled,
            CacheOutcome::Compiled,
            Some(format!(
                "cannot write the plugin cache {}: {e}",
                dir.display()
            )),
        )),
    }
}

fn store(dir: &Path, path: &Path, compiled: &Code) -> std::io::Result<()> {
    let bytes = compiled.serialize().map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, &bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Time since a file was last modified (zero when unknown).
fn age(meta: std::io::Result<std::fs::Metadata>) -> Duration {
    meta.and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default()
}

/// Marks an entry used (its modification time), at most once a day: the age `prune` goes by.
fn mark_used(path: &Path) {
    if age(std::fs::metadata(path)) > DAY
        && let Ok(f) = std::fs::File::options().write(true).open(path)
    {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// After `fresh` was stored: removes the entries this engine can never load (another engine
/// hash), entries unused for `UNUSED_FOR`, and temporary files a crashed write left a day ago.
/// Best effort; a process that has an entry mapped keeps it until it exits.
fn prune(dir: &Path, fresh: &Path) {
    let Some(engine_part) = fresh
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('-'))
        .map(|(_, e)| format!("-{e}"))
    else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path == fresh {
            continue;
        }
        let age = age(entry.metadata());
        let remove = if name.ends_with(".cwasm") {
            !name.ends_with(&engine_part) || age > UNUSED_FOR
        } else {
            name.starts_with(".tmp") && age > DAY
        };
        if remove {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[allow(unsafe_code)]
fn load(engine: &Engine, path: &Path, kind: Kind) -> Result<Code, wasmtime::Error> {
    // SAFETY: `deserialize_file` trusts the file to hold code that wasmtime itself produced and
    // maps it; it checks the header, the wasmtime version and the engine configuration, but not
    // the machine code. It holds because:
    // - only `store` above writes this directory, with `Component::serialize` or
    //   `Module::serialize` output of code it compiled from bytes whose SHA-256 is in the file
    //   name, with the kind in the name too (a module's entry is never read as a component's);
    // - files are renamed into place whole and never written again, so a mapped file does not
    //   change under us (a replaced entry is a new inode);
    // - the directory is the user's own cache: whoever can write there can already run code as
    //   that user, so it grants nothing a plugin could reach (plugins see no files at all).
    unsafe {
        match kind {
            Kind::Component => Component::deserialize_file(engine, path).map(Code::Component),
            Kind::CoreModule => Module::deserialize_file(engine, path).map(Code::Module),
        }
    }
}
