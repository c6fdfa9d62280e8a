//! Which process owns a live run: an exclusive OS file lock (`flock`, through `std::fs::File::lock`)
//! on `<store>.locks/<run id>.lock`, held for as long as the run runs. The OS drops the lock when
//! the process ends in any way (`kill -9` included), so a run recorded as `running` whose lock
//! can be taken has no owner: it crashed. A pid alone could not tell that (pids are reused).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock that makes this process a run's owner; released when dropped.
#[derive(Debug)]
pub struct Owner {
    _file: File,
    pub path: PathBuf,
}

/// Why this process could not own a run.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error(
        "run `{run}` is owned by another process (pid {pid})\n  hint: wait for it to end, or stop it; a run has one owner at a time"
    )]
    Taken { run: String, pid: String },
    #[error("cannot lock `{}`: {error}\n  hint: check that the store's directory is writable", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

fn lock_path(store: &Path, run: &str) -> PathBuf {
    let mut dir = store.as_os_str().to_owned();
    dir.push(".locks");
    PathBuf::from(dir).join(format!("{run}.lock"))
}

impl Owner {
    /// Takes ownership of `run`, or says who has it.
    pub fn acquire(store: &Path, run: &str) -> Result<Self, OwnerError> {
        let path = lock_path(store, run);
        let io = |error| OwnerError::Io {
            path: path.clone(),
            error,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // `is_live` (a `troupe runs` in another process) holds the lock for an instant: a busy
        // lock is only taken to mean an owner when it stays busy.
        let mut tries = 0;
        let taken = loop {
            match file.try_lock() {
                Err(TryLockError::WouldBlock) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other,
            }
        };
        match taken {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "unknown".into());
                return Err(OwnerError::Taken {
                    run: run.to_string(),
                    pid,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file, path })
    }
}

/// Whether some process holds `run`'s lock.
pub fn is_live(store: &Path, run: &str) -> bool {
    let Ok(file) = File::open(lock_path(store, run)) else {
        return false;
    };
    matches!(file.try_lock(), Err(TryLockError::WouldBlock))
}

/// Removes the lock file of a run deleted from the store (nothing owns it any more).
pub fn forget(store: &Path, run: &str) {
    let _ = std::fs::remove_file(lock_path(store, run));
}

/// This machine's name, for the record (`/proc/sys/kernel/hostname`, else `$HOSTNAME`).
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
