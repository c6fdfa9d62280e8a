//! Documents clients upload for their runs: each file kept under its own id, by the name it
//! was sent with (reduced to a plain file name), until a run reads it.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// An uploaded document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Uploaded {
    /// What a run names it by (`documents: [id]`).
    pub id: String,
    /// Its file name, as the run's documents know it.
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Where uploads live.
pub struct Uploads {
    dir: PathBuf,
}

/// A file name without directories, control characters or leading dots; `document` when
/// nothing is left.
pub fn plain_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_string();
    if cleaned.is_empty() {
        "document".into()
    } else {
        cleaned.chars().take(200).collect()
    }
}

impl Uploads {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Keeps `bytes` as a new document named `name`.
    pub fn put(&self, name: &str, bytes: &[u8]) -> std::io::Result<Uploaded> {
        let id = format!("doc-{}", uuid_like());
        let name = plain_name(name);
        let dir = self.dir.join(&id);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&name), bytes)?;
        let sha = Sha256::digest(bytes);
        Ok(Uploaded {
            id,
            name,
            bytes: bytes.len() as u64,
            sha256: sha.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// The file of document `id`, when there is one.
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        if !id.starts_with("doc-") || !id[4..].chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return None;
        }
        let dir = self.dir.join(id);
        let entry = std::fs::read_dir(&dir).ok()?.flatten().next()?;
        Some(entry.path())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A random id: the run store's UUIDv7 (time-ordered, so listings sort by upload).
fn uuid_like() -> String {
    troupe_store::new_run_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_directories_and_controls() {
        assert_eq!(plain_name("../../etc/passwd"), "passwd");
        assert_eq!(plain_name("C:\\docs\\a.txt"), "a.txt");
        assert_eq!(plain_name(".hidden"), "hidden");
        assert_eq!(plain_name("a\u{1b}[2Jb.md"), "a[2Jb.md");
        assert_eq!(plain_name(".."), "document");
    }
}
