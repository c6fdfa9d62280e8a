//! The output directory. Every file a run writes goes through [`OutDir`], which holds the
//! directory open as a capability (cap-std): paths are resolved beneath it, so a symlink planted
//! inside it cannot make Troupe write anywhere else, and files are replaced by renaming a fresh
//! temporary file (random name, created exclusively) over them, so a planted symlink at a
//! target's name is replaced, never followed. A lock file keeps a second run out while one
//! holds the directory.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, OpenOptions};
use troupe_crew::{Crew, Diagnostic, JsonPath, Target};

/// The lock file a live run holds (an advisory lock, released by the OS when the process ends,
/// however it ends). It holds the owner's process id.
pub const LOCK_FILE: &str = ".troupe.lock";
/// Files Troupe writes itself.
pub const RUN_FILE: &str = "run.json";
pub const EVENTS_FILE: &str = "events.jsonl";
/// Written in a run with documents.
pub const REPORT_MD: &str = "report.md";
pub const REPORT_JSON: &str = "report.json";
/// Names starting with this are Troupe's own (the lock, and any future bookkeeping).
pub const RESERVED_PREFIX: &str = ".troupe";

/// Why the output directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    #[error(
        "the output directory `{}` is in use by another Troupe run (pid {pid})\n  hint: wait for that run to finish, or choose another directory with `--out`",
        path.display()
    )]
    InUse { path: PathBuf, pid: String },
    /// The OS error is part of the message, not a `source`: printed once.
    #[error(
        "cannot use the output directory `{}`: {error}\n  hint: check that it is a writable directory, or choose another with `--out`",
        path.display()
    )]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// An output directory, held open and locked for one run.
#[derive(Debug)]
pub struct OutDir {
    path: PathBuf,
    dir: Dir,
    /// Held for the life of the run; the OS releases it when the process ends.
    _lock: std::fs::File,
}

impl OutDir {
    /// Creates (if needed), opens and locks `path`.
    pub fn open(path: &Path) -> Result<OutDir, OutDirError> {
        let io = |error| OutDirError::Io {
            path: path.to_path_buf(),
            error,
        };
        std::fs::create_dir_all(path).map_err(io)?;
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority()).map_err(io)?;
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true);
        let mut lock = dir.open_with(LOCK_FILE, &options).map_err(io)?.into_std();
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                let pid = pid.trim().chars().take(40).collect::<String>();
                return Err(OutDirError::InUse {
                    path: path.to_path_buf(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        write!(lock, "{}", std::process::id()).map_err(io)?;
        Ok(OutDir {
            path: path.to_path_buf(),
            dir,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory that holds `rel` (created beneath the output directory if needed) and the
    /// file name.
    fn parent_of<'a>(&self, rel: &'a Path) -> std::io::Result<(Option<Dir>, &'a OsStr)> {
        let name = rel.file_name().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{}` is not a file name", rel.display()),
            )
        })?;
        match rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            None => Ok((None, name)),
            Some(parent) => {
                self.dir.create_dir_all(parent)?;
                Ok((Some(self.dir.open_dir(parent)?), name))
            }
        }
    }

    /// Writes `bytes` to `rel` atomically: a reader never sees half a file, a crash mid-write
    /// leaves the previous version, and whatever was at `rel` (a symlink included) is replaced,
    /// not written through. No fsync: the data survives a crash of this process as soon as the
    /// rename returns; surviving power loss would cost a disk flush per task for little gain.
    pub fn write(&self, rel: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let (sub, name) = self.parent_of(rel)?;
        let dir = sub.as_ref().unwrap_or(&self.dir);
        let mut tmp = cap_tempfile::TempFile::new(dir)?;
        tmp.write_all(bytes)?;
        tmp.replace(name)
    }

    /// A new, empty file at `name` (replacing whatever was there, without following it), open
    /// for appending: the event log.
    pub fn create_log(&self, name: &str) -> std::io::Result<std::fs::File> {
        let tmp = cap_tempfile::TempFile::new(&self.dir)?;
        let file = tmp.as_file().try_clone()?.into_std();
        tmp.replace(name)?;
        Ok(file)
    }

    /// The file at `name` open for appending, when it is a regular file (a resumed run's event
    /// log); otherwise a new one, as [`OutDir::create_log`].
    pub fn append_log(&self, name: &str) -> std::io::Result<std::fs::File> {
        match self.dir.symlink_metadata(name) {
            Ok(m) if m.is_file() => {
                let mut options = cap_std::fs::OpenOptions::new();
                options.append(true);
                Ok(self.dir.open_with(name, &options)?.into_std())
            }
            _ => self.create_log(name),
        }
    }
}

/// Checks the output files of a crew whose `for_each` tasks are expanded: none may be a file
/// Troupe writes itself (`report.json` too when the run has documents; `report.md` is the
/// report's body, written by the task that names it), and no two tasks — per-document instances
/// included (`a/b.txt` and `a_b.txt` give the same name) — may write the same file.
pub fn check_output_files(crew: &Crew, with_documents: bool) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut seen: HashMap<String, &str> = HashMap::new();
    for task in &crew.tasks {
        let Some(file) = &task.output_file else {
            continue;
        };
        let at = JsonPath::root()
            .key("tasks")
            .index(task.origin)
            .key("output_file");
        let name = file.to_string_lossy().into_owned();
        let reserved = name == RUN_FILE
            || name == EVENTS_FILE
            || (with_documents && name == REPORT_JSON)
            || file
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with(RESERVED_PREFIX));
        if reserved {
            problems.push(crew.source.diagnostic(
                &at,
                Target::Value,
                format!("task `{}`: `{name}` is written by Troupe itself", task.id),
                Some(format!(
                    "choose another `output_file`; Troupe writes `{RUN_FILE}`, `{EVENTS_FILE}`, and `{REPORT_MD}` / `{REPORT_JSON}` in a run with documents"
                )),
            ));
        }
        // Case-folded: on case-insensitive file systems `Report.md` and `report.md` are one file.
        if let Some(other) = seen.insert(name.to_lowercase(), &task.id) {
            problems.push(crew.source.diagnostic(
                &at,
                Target::Value,
                format!("tasks `{other}` and `{}` both write `{name}`", task.id),
                Some(if task.group.is_some() {
                    "per-document files are named `<stem>.<document>.<ext>` with `/` in the document's id made `_`: rename one of the documents, or the `output_file`".into()
                } else {
                    "give each task its own `output_file`".into()
                }),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn planted_symlinks_are_replaced_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside.txt");
        std::fs::write(&outside, "precious").unwrap();
        let out = root.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::os::unix::fs::symlink(&outside, out.join("report.md")).unwrap();
        std::os::unix::fs::symlink(&outside, out.join("events.jsonl")).unwrap();
        std::os::unix::fs::symlink(root.path(), out.join("sub")).unwrap();
        let dir = OutDir::open(&out).unwrap();
        dir.write(Path::new("report.md"), b"new").unwrap();
        let mut log = dir.create_log("events.jsonl").unwrap();
        writeln!(log, "{{}}").unwrap();
        // A directory symlink that leads out of the output directory is refused.
        assert!(dir.write(Path::new("sub/x.md"), b"x").is_err());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
        assert!(!root.path().join("x.md").exists());
        assert_eq!(
            std::fs::read_to_string(out.join("report.md")).unwrap(),
            "new"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("events.jsonl")).unwrap(),
            "{}\n"
        );
        assert!(!out.join("report.md").is_symlink());
    }

    #[test]
    fn a_second_run_is_kept_out() {
        let root = tempfile::tempdir().unwrap();
        let first = OutDir::open(root.path()).unwrap();
        match OutDir::open(root.path()) {
            Err(OutDirError::InUse { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        assert!(OutDir::open(root.path()).is_ok());
    }
}
