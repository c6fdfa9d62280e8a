//! Finding document files (files, directories, globs) and reading their text.

use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{DocError, LoadProblem};

/// What a file is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Text,
    Markdown,
    Html,
    Pdf,
}

impl Format {
    /// The format for a file name, by extension; `None` for an extension we do not read. Files
    /// without an extension are read as text when their bytes are text (licence files, READMEs).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = match path.extension() {
            None => return Some(Format::Text),
            Some(ext) => ext.to_string_lossy().to_ascii_lowercase(),
        };
        match ext.as_str() {
            "txt" | "text" | "rst" | "org" | "csv" | "log" => Some(Format::Text),
            "md" | "markdown" | "mdown" | "mkd" => Some(Format::Markdown),
            "html" | "htm" | "xhtml" => Some(Format::Html),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }
}

/// How to treat files that cannot be read, and the limits a file must keep to.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Report unreadable or unsupported files and go on without them (otherwise: fail).
    pub skip_unreadable: bool,
    /// Largest file read, in bytes; a larger one is unreadable ("too large"). Default
    /// [`LoadOptions::DEFAULT_MAX_FILE_BYTES`] (128 MiB).
    pub max_file_bytes: u64,
    /// How long the text of one PDF may take to extract; past it the PDF is unreadable. Default
    /// [`LoadOptions::DEFAULT_PDF_TIMEOUT`] (30 s).
    pub pdf_timeout: Duration,
}

impl LoadOptions {
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 128 * 1024 * 1024;
    pub const DEFAULT_PDF_TIMEOUT: Duration = Duration::from_secs(30);
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            skip_unreadable: false,
            max_file_bytes: Self::DEFAULT_MAX_FILE_BYTES,
            pdf_timeout: Self::DEFAULT_PDF_TIMEOUT,
        }
    }
}

/// What loading found: every file left out, with why. `skipped` are failures (files that could
/// not be read; they fail the load unless `skip_unreadable`); `ignored` are files and folders left
/// out on purpose (hidden, a symbolic-link loop, the same file twice), never a failure.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub skipped: Vec<LoadProblem>,
    pub ignored: Vec<Ignored>,
}

/// A file or folder that was left out on purpose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ignored {
    pub path: PathBuf,
    #[serde(flatten)]
    pub why: IgnoreReason,
}

/// Why a file or folder was left out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum IgnoreReason {
    /// Its name starts with `.` (`.git`, `.DS_Store`, `.env`); a hidden folder is not entered.
    Hidden,
    /// A symbolic link to a folder it is inside of; following it would never end.
    Loop { ancestor: PathBuf },
    /// The same file as one already read (a symbolic or hard link, or two specs naming it).
    Duplicate { of: PathBuf },
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.why {
            IgnoreReason::Hidden => write!(f, "{}: hidden, not read", self.path.display()),
            IgnoreReason::Loop { ancestor } => write!(
                f,
                "{}: symbolic link loop back to {}, not followed",
                self.path.display(),
                ancestor.display()
            ),
            IgnoreReason::Duplicate { of } => write!(
                f,
                "{}: the same file as {}, read once",
                self.path.display(),
                of.display()
            ),
        }
    }
}

/// The files that document specs name, each with the id it will have, and what was left out.
#[derive(Debug, Default)]
pub struct Collected {
    pub files: Vec<(String, PathBuf)>,
    pub ignored: Vec<Ignored>,
    /// Folders or links that could not be read (a broken link, no permission).
    pub problems: Vec<LoadProblem>,
}

/// Expands the user's document specs (files, directories, glob patterns) into files, each with
/// the id it will have: its path relative to the directory or pattern root it came from, with `/`
/// separators. Directories are walked recursively in name order, following symbolic links but
/// not loops; hidden entries (`.git`, `.DS_Store`) are left out and listed; each file is taken
/// once however many links or specs lead to it. A spec that names an existing path is that path
/// even if it has glob characters (`report [draft].txt`). A spec that matches nothing is an error.
pub fn collect_paths(specs: &[String], base: &Path) -> Result<Collected, DocError> {
    let mut walk = Walk::default();
    for spec in specs {
        let before = walk.found.files.len() + walk.duplicates;
        let joined = base.join(spec);
        let exists = std::fs::symlink_metadata(&joined).is_ok();
        if !exists && spec.contains(['*', '?', '[']) {
            let (root, pattern) = glob_parts(&joined);
            let pattern = glob::Pattern::new(&pattern).map_err(|e| DocError::Spec {
                spec: spec.clone(),
                reason: format!("not a valid glob pattern: {e}"),
                hint: "use * for any name, ** for any depth, e.g. docs/**/*.pdf".into(),
            })?;
            walk.walk(&root, Some(&pattern));
        } else if joined.is_dir() {
            walk.walk(&joined, None);
        } else if joined.is_file() {
            let id = joined
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| spec.clone());
            walk.take(id, joined);
        } else {
            let reason = if exists {
                format!(
                    "not a regular file or directory, or a broken link ({})",
                    joined.display()
                )
            } else {
                format!("no such file or directory ({})", joined.display())
            };
            return Err(DocError::Spec {
                spec: spec.clone(),
                reason,
                hint: "give a file, a directory or a glob such as 'docs/*.pdf'; relative paths are read from the current directory (--docs) or the crew file's directory (\"documents\")".into(),
            });
        }
        if walk.found.files.len() + walk.duplicates == before {
            return Err(DocError::Spec {
                spec: spec.clone(),
                reason: "matched no files".into(),
                hint: "check the pattern; hidden files (starting with '.') are not read".into(),
            });
        }
    }
    let mut found = walk.found;
    dedup_ids(&mut found.files);
    Ok(found)
}

/// Files found so far, and the identity of each (device and inode on Unix), so that a file
/// reached twice is taken once.
#[derive(Default)]
struct Walk {
    found: Collected,
    seen: HashMap<FileKey, PathBuf>,
    duplicates: usize,
}

impl Walk {
    /// Walks `root` (following links, in name order), taking every file, or with a pattern the
    /// files whose path matches it.
    fn walk(&mut self, root: &Path, pattern: Option<&glob::Pattern>) {
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let mut hidden = Vec::new();
        let walker = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                let is_hidden = e.depth() > 0 && is_hidden(e.path());
                if is_hidden {
                    hidden.push(e.path().to_path_buf());
                }
                !is_hidden
            });
        let mut taken = Vec::new();
        for entry in walker {
            match entry {
                Ok(entry) if entry.file_type().is_file() => {
                    let path = entry.path();
                    if pattern.is_none_or(|p| p.matches_path_with(path, options)) {
                        taken.push((relative_id(path, root), path.to_path_buf()));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                    if let Some(ancestor) = e.loop_ancestor() {
                        self.found.ignored.push(Ignored {
                            path,
                            why: IgnoreReason::Loop {
                                ancestor: ancestor.to_path_buf(),
                            },
                        });
                    } else {
                        self.found.problems.push(LoadProblem {
                            path,
                            reason: format!("cannot read: {e}"),
                            hint: "check that the folder is readable and its links point somewhere"
                                .into(),
                        });
                    }
                }
            }
        }
        // With a pattern, only hidden entries it would have matched but for the dot are listed.
        let loose = glob::MatchOptions {
            require_literal_leading_dot: false,
            ..options
        };
        for path in hidden {
            if pattern.is_none_or(|p| p.matches_path_with(&path, loose)) {
                self.found.ignored.push(Ignored {
                    path,
                    why: IgnoreReason::Hidden,
                });
            }
        }
        for (id, path) in taken {
            self.take(id, path);
        }
    }

    /// Takes a file unless the same file was taken already.
    fn take(&mut self, id: String, path: PathBuf) {
        match file_key(&path) {
            Some(key) => match self.seen.get(&key) {
                Some(of) => {
                    self.duplicates += 1;
                    self.found.ignored.push(Ignored {
                        path,
                        why: IgnoreReason::Duplicate { of: of.clone() },
                    });
                }
                None => {
                    self.seen.insert(key, path.clone());
                    self.found.files.push((id, path));
                }
            },
            None => self.found.files.push((id, path)),
        }
    }
}

#[cfg(unix)]
type FileKey = (u64, u64);
#[cfg(not(unix))]
type FileKey = PathBuf;

/// What makes a file the same file whatever the path to it.
#[cfg(unix)]
fn file_key(path: &Path) -> Option<FileKey> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_key(path: &Path) -> Option<FileKey> {
    std::fs::canonicalize(path).ok()
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// A pattern's root (the folders before its first wildcard; a folder that exists under its own
/// name is literal, `[` and all) and the whole pattern with that root escaped.
fn glob_parts(pattern: &Path) -> (PathBuf, String) {
    let mut root = PathBuf::new();
    let mut rest = PathBuf::new();
    for part in pattern.components() {
        let wild = part.as_os_str().to_string_lossy().contains(['*', '?', '[']);
        if rest.as_os_str().is_empty() && (!wild || root.join(part).is_dir()) {
            root.push(part);
        } else {
            rest.push(part);
        }
    }
    let escaped = glob::Pattern::escape(&root.to_string_lossy());
    let pattern = if rest.as_os_str().is_empty() {
        escaped
    } else {
        let sep = if escaped.ends_with(std::path::MAIN_SEPARATOR) {
            ""
        } else {
            std::path::MAIN_SEPARATOR_STR
        };
        format!("{escaped}{sep}{}", rest.to_string_lossy())
    };
    (root, pattern)
}

fn relative_id(path: &Path, root: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The same id from two specs (two folders each with a README.md): prefix the later ones with a
/// counter so every id stays unique and stable for the same command line.
fn dedup_ids(out: &mut [(String, PathBuf)]) {
    let mut seen = std::collections::HashSet::new();
    for (id, _) in out.iter_mut() {
        if !seen.insert(id.clone()) {
            let mut n = 2;
            while !seen.insert(format!("{n}-{id}")) {
                n += 1;
            }
            *id = format!("{n}-{id}");
        }
    }
}

/// One file's text, as [`load_file`] reads it.
#[derive(Debug, Clone)]
pub struct FileText {
    pub format: Format,
    /// Normalised (see [`normalise_text`]).
    pub text: String,
    pub title: Option<String>,
    /// The character encoding the file was decoded from (`UTF-8`, `windows-1252`, `UTF-16LE`…,
    /// WHATWG names); `None` for a PDF, whose text comes from its fonts.
    pub encoding: Option<&'static str>,
    /// Size of the file.
    pub bytes: u64,
}

/// Reads one file's text in its format, normalised (see [`normalise_text`]), within the limits
/// of `options` (file size; PDF extraction time, isolated so a damaged PDF cannot panic).
pub fn load_file(path: &Path, options: &LoadOptions) -> Result<FileText, LoadProblem> {
    let problem = |reason: String, hint: &str| LoadProblem {
        path: path.to_path_buf(),
        reason,
        hint: hint.to_string(),
    };
    let format = Format::from_path(path).ok_or_else(|| {
        problem(
            format!(
                "unsupported file type '.{}'",
                path.extension().unwrap_or_default().to_string_lossy()
            ),
            "Troupe reads .txt, .md, .html and .pdf (and extension-less text files); convert the file to one of those",
        )
    })?;
    let bytes = read_bounded(path, options.max_file_bytes).map_err(|e| match e {
        Read::TooLarge(size) => problem(
            format!(
                "too large: {} (the limit is {})",
                human_bytes(size),
                human_bytes(options.max_file_bytes)
            ),
            "split the file, or raise the limit (max_file_bytes)",
        ),
        Read::Io(e) => problem(
            format!("cannot read: {e}"),
            "check that the file exists and is readable",
        ),
    })?;
    let size = bytes.len() as u64;
    let (raw, title, encoding) = match format {
        Format::Pdf => {
            let text = crate::pdf::extract(bytes, options.pdf_timeout)
                .map_err(|failure| pdf_problem(path, failure))?;
            (text, None, None)
        }
        Format::Html => {
            let (html, encoding) = decode(&bytes, true).map_err(|r| problem(r, BINARY_HINT))?;
            drop(bytes);
            let title = html_title(&html);
            let text = html2text::config::plain_no_decorate()
                .string_from_read(html.as_bytes(), 120)
                .map_err(|e| {
                    problem(
                        format!("cannot convert HTML to text: {e}"),
                        "check that the file is HTML",
                    )
                })?;
            (text, title, Some(encoding))
        }
        Format::Text | Format::Markdown => {
            let (text, encoding) = decode(&bytes, false).map_err(|r| problem(r, BINARY_HINT))?;
            let title = (format == Format::Markdown)
                .then(|| markdown_title(&text))
                .flatten();
            (text, title, Some(encoding))
        }
    };
    let text = normalise_text(&raw);
    if text.trim().is_empty() {
        let hint = if format == Format::Pdf {
            "this PDF has no text layer (a scan?); run OCR on it first, e.g. ocrmypdf"
        } else {
            "the file is empty; remove it or give it content"
        };
        return Err(problem("no text in the file".into(), hint));
    }
    Ok(FileText {
        format,
        text,
        title,
        encoding,
        bytes: size,
    })
}

const BINARY_HINT: &str = "Troupe reads text, Markdown, HTML and PDF; leave binary files out of the documents, or convert them to one of those";

fn decode(bytes: &[u8], html: bool) -> Result<(String, &'static str), String> {
    crate::encoding::decode(bytes, html)
        .map_err(|b| format!("this looks like a binary file ({}), not text", b.0))
}

fn pdf_problem(path: &Path, failure: crate::pdf::Failure) -> LoadProblem {
    use crate::pdf::Failure;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let damaged = "open it in a PDF viewer to check it; encrypted or damaged PDFs are not read (a viewer's \"print to PDF\" often repairs one)";
    let (reason, hint) = match failure {
        Failure::Error(e) => (format!("not a readable PDF: {e}"), damaged),
        Failure::Panic(e) => (
            format!("damaged PDF: the PDF reader gave up on {name} ({e})"),
            damaged,
        ),
        Failure::Timeout(t) => (
            format!(
                "damaged PDF: extraction did not finish within {} s",
                t.as_secs_f32()
            ),
            "the PDF may be damaged or built to stall readers; check it in a PDF viewer, or raise the limit (pdf_timeout)",
        ),
        Failure::Busy => (
            format!(
                "not read: {} earlier PDF extractions are still running past their time limit",
                crate::pdf::MAX_LIVE
            ),
            "remove the PDFs reported as not finishing in time and load again",
        ),
        Failure::Spawn(e) => (
            format!("cannot start the PDF reader: {e}"),
            "the system is out of threads or memory; try again with fewer documents",
        ),
    };
    LoadProblem {
        path: path.to_path_buf(),
        reason,
        hint: hint.into(),
    }
}

enum Read {
    TooLarge(u64),
    Io(std::io::Error),
}

/// The file's bytes, if it has at most `max` of them. Reads at most `max + 1` bytes whatever the
/// file claims to be (a growing file, a device).
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, Read> {
    let file = std::fs::File::open(path).map_err(Read::Io)?;
    let claimed = file.metadata().map_err(Read::Io)?.len();
    if claimed > max {
        return Err(Read::TooLarge(claimed));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(claimed).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Read::Io)?;
    if bytes.len() as u64 > max {
        return Err(Read::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else {
        format!("{n} bytes")
    }
}

fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title = html
        .get(open_end..close)?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!title.is_empty()).then_some(title)
}

fn markdown_title(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("# "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Line endings to `\n`, form feeds (page breaks in licence texts and PDFs) to blank lines, no
/// byte-order mark, no trailing spaces, at most one blank line in a row, no control characters.
/// Offsets (chunk spans, citations) refer to this text, so the same file always gives the same ids.
pub fn normalise_text(raw: &str) -> String {
    let raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
    let raw = raw.replace("\r\n", "\n").replace(['\r', '\u{c}'], "\n");
    let mut out = String::with_capacity(raw.len());
    let mut blank_run = 0;
    for line in raw.split('\n') {
        let line: String = line
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control())
            .collect();
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_unifies_line_ends_page_breaks_and_blank_runs() {
        let raw = "\u{feff}Title\r\n\r\n\r\n\u{c}Body  \tline\r\nend\n\n\n";
        assert_eq!(normalise_text(raw), "Title\n\nBody   line\nend\n");
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::from_path(Path::new("a/GPL-3")), Some(Format::Text));
        assert_eq!(Format::from_path(Path::new("x.MD")), Some(Format::Markdown));
        assert_eq!(Format::from_path(Path::new("x.htm")), Some(Format::Html));
        assert_eq!(Format::from_path(Path::new("x.pdf")), Some(Format::Pdf));
        assert_eq!(Format::from_path(Path::new("x.docx")), None);
    }

    #[test]
    fn glob_root_stops_at_the_first_wildcard() {
        assert_eq!(glob_parts(Path::new("/a/b/*.md")).0, PathBuf::from("/a/b"));
        assert_eq!(glob_parts(Path::new("/a/**/x/*.md")).0, PathBuf::from("/a"));
    }
}
