//! Finding document files (files, directories, globs) and reading their text.

use std::path::{Path, PathBuf};

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
    /// without an extension are read as text when their bytes are UTF-8 (licence files, READMEs).
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

/// How to treat files that cannot be read.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Report unreadable or unsupported files and go on without them (otherwise: fail).
    pub skip_unreadable: bool,
}

/// What loading found: the documents' paths with their roots, and every file left out, with why.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub skipped: Vec<LoadProblem>,
}

/// Expands the user's document specs (files, directories, glob patterns) into files, each with
/// the id it will have: its path relative to the directory or pattern root it came from, with `/`
/// separators. Directories are walked recursively in name order; hidden entries (`.git`, `.DS_Store`)
/// are left out. A spec that matches nothing is an error.
pub fn collect_paths(specs: &[String], base: &Path) -> Result<Vec<(String, PathBuf)>, DocError> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for spec in specs {
        let before = out.len();
        let joined = base.join(spec);
        if spec.contains(['*', '?', '[']) {
            let pattern = joined.to_string_lossy().into_owned();
            let paths = glob::glob(&pattern).map_err(|e| DocError::Spec {
                spec: spec.clone(),
                reason: format!("not a valid glob pattern: {e}"),
                hint: "use * for any name, ** for any depth, e.g. docs/**/*.pdf".into(),
            })?;
            let root = glob_root(&joined);
            for path in paths.flatten() {
                if path.is_file() && !is_hidden(&path) {
                    out.push((relative_id(&path, &root), path));
                }
            }
        } else if joined.is_dir() {
            walk(&joined, &joined, &mut out);
        } else if joined.is_file() {
            let id = joined
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| spec.clone());
            out.push((id, joined));
        } else {
            return Err(DocError::Spec {
                spec: spec.clone(),
                reason: format!("no such file or directory ({})", joined.display()),
                hint: "give a file, a directory or a glob such as 'docs/*.pdf'; relative paths are read from the current directory (--docs) or the crew file's directory (\"documents\")".into(),
            });
        }
        if out.len() == before {
            return Err(DocError::Spec {
                spec: spec.clone(),
                reason: "matched no files".into(),
                hint: "check the pattern; hidden files (starting with '.') are not read".into(),
            });
        }
    }
    dedup_ids(&mut out);
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if is_hidden(&path) {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, out);
        } else if path.is_file() {
            out.push((relative_id(&path, root), path));
        }
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// The directory part of a pattern before its first wildcard.
fn glob_root(pattern: &Path) -> PathBuf {
    let mut root = PathBuf::new();
    for part in pattern.components() {
        if part.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        root.push(part);
    }
    root
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
fn dedup_ids(out: &mut Vec<(String, PathBuf)>) {
    let mut seen_paths = std::collections::HashSet::new();
    out.retain(|(_, p)| seen_paths.insert(p.clone()));
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

/// Reads one file's text in its format, normalised (see [`normalise_text`]).
pub fn load_file(path: &Path) -> Result<(Format, String, Option<String>), LoadProblem> {
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
    let bytes = std::fs::read(path).map_err(|e| {
        problem(
            format!("cannot read: {e}"),
            "check that the file exists and is readable",
        )
    })?;
    let (raw, title) = match format {
        Format::Pdf => {
            let text = pdf_extract::extract_text_from_mem(&bytes).map_err(|e| {
                problem(
                    format!("not a readable PDF: {e}"),
                    "open it in a PDF viewer to check it; encrypted or damaged PDFs are not read",
                )
            })?;
            (text, None)
        }
        Format::Html => {
            let html = utf8(bytes).map_err(|r| problem(r, UTF8_HINT))?;
            let title = html_title(&html);
            let text = html2text::config::plain_no_decorate()
                .string_from_read(html.as_bytes(), 120)
                .map_err(|e| {
                    problem(
                        format!("cannot convert HTML to text: {e}"),
                        "check that the file is HTML",
                    )
                })?;
            (text, title)
        }
        Format::Text | Format::Markdown => {
            let text = utf8(bytes).map_err(|r| problem(r, UTF8_HINT))?;
            let title = (format == Format::Markdown)
                .then(|| markdown_title(&text))
                .flatten();
            (text, title)
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
    Ok((format, text, title))
}

const UTF8_HINT: &str = "convert it to UTF-8, e.g. iconv -f latin1 -t utf-8 FILE > FILE.txt";

fn utf8(bytes: Vec<u8>) -> Result<String, String> {
    if bytes.contains(&0) {
        return Err("binary file (contains NUL bytes), not text".into());
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
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
        assert_eq!(glob_root(Path::new("/a/b/*.md")), PathBuf::from("/a/b"));
        assert_eq!(glob_root(Path::new("/a/**/x/*.md")), PathBuf::from("/a"));
    }
}
