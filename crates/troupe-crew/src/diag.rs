//! Diagnostics that point at a place in the crew file: file, line:column, JSON path, message, hint.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonc_parser::ast::{ObjectPropName, Value as Ast};
use jsonc_parser::common::Ranged;

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A location inside a JSON document, rendered as `tasks[1].review.by`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonPath(pub Vec<Seg>);

impl JsonPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }
    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.into()));
        Self(v)
    }
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Self(v)
    }
    /// Builds a path from a JSON pointer such as `/tasks/1/agent`.
    pub fn from_pointer(pointer: &str) -> Self {
        let segs = pointer
            .split('/')
            .skip(1)
            .map(|s| {
                let s = s.replace("~1", "/").replace("~0", "~");
                match s.parse::<usize>() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key(s),
                }
            })
            .collect();
        Self(segs)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Whether a diagnostic points at a property's key or at its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Key,
    Value,
}

/// A problem with a crew file, located precisely enough to fix without searching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n  at `{}`",
            self.file.display(),
            self.line,
            self.column,
            self.message,
            self.path
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a crew file (never only the first).
#[derive(Debug, Clone, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, "the crew file")
    }
}

impl Diagnostics {
    /// Every diagnostic, then how many there are in `noun` ("the policy file").
    pub fn write(&self, f: &mut fmt::Formatter<'_>, noun: &str) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "error: {d}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "\n\n{n} error{} in {noun}",
            if n == 1 { "" } else { "s" }
        )
    }
}

/// The text of a crew file, kept so that any layer can point at a place in it.
#[derive(Debug)]
pub struct Source {
    pub file: PathBuf,
    pub text: String,
}

impl Source {
    /// A byte-order mark (which some editors write at the start of a UTF-8 file) is not part
    /// of the text: it is dropped here, so that every layer sees the JSON itself.
    pub fn new(file: impl AsRef<Path>, text: String) -> Arc<Self> {
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        };
        Arc::new(Self {
            file: file.as_ref().to_path_buf(),
            text,
        })
    }

    /// 1-based line and column (in characters) of a byte offset of the text.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }

    /// A diagnostic at a byte offset of the text, for a place the path alone does not find
    /// (the second of two duplicate keys).
    pub fn diagnostic_at_offset(
        &self,
        offset: usize,
        path: &JsonPath,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let (line, column) = line_col(&self.text, offset);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            path: path.to_string(),
            message: message.into(),
            hint,
        }
    }

    /// A diagnostic at `path` (the nearest existing ancestor when `path` itself is absent).
    pub fn diagnostic(
        &self,
        path: &JsonPath,
        target: Target,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let offset = self.offset_of(path, target).unwrap_or(0);
        let (line, column) = line_col(&self.text, offset);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            path: path.to_string(),
            message: message.into(),
            hint,
        }
    }

    /// A diagnostic at a byte offset (for syntax errors, which have no path yet).
    pub fn diagnostic_at(
        &self,
        line: usize,
        column: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            path: "(syntax)".into(),
            message: message.into(),
            hint,
        }
    }

    fn offset_of(&self, path: &JsonPath, target: Target) -> Option<usize> {
        let parsed = jsonc_parser::parse_to_ast(
            &self.text,
            &Default::default(),
            &jsonc_parser::ParseOptions::default(),
        )
        .ok()?;
        let mut node = parsed.value.as_ref()?;
        let mut best = node.start();
        for (i, seg) in path.0.iter().enumerate() {
            let last = i + 1 == path.0.len();
            match (seg, node) {
                (Seg::Key(k), Ast::Object(obj)) => {
                    let Some(prop) = obj.properties.iter().find(|p| prop_name(&p.name) == k) else {
                        return Some(best);
                    };
                    if last && target == Target::Key {
                        return Some(prop.name.start());
                    }
                    node = &prop.value;
                }
                (Seg::Index(n), Ast::Array(arr)) => {
                    let Some(el) = arr.elements.get(*n) else {
                        return Some(best);
                    };
                    node = el;
                }
                _ => return Some(best),
            }
            best = node.start();
        }
        Some(best)
    }
}

fn prop_name<'a>(name: &'a ObjectPropName<'_>) -> &'a str {
    match name {
        ObjectPropName::String(s) => &s.value,
        ObjectPropName::Word(w) => w.value,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// `did you mean `x`?` for the closest candidate, when one is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Renders names as `` `a`, `b`, `c` ``.
pub fn list<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    let v: Vec<String> = names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys_and_values() {
        let text = "{\n  \"a\": [1, {\"b\": true}]\n}\n".to_string();
        let src = Source::new("x.json", text);
        let p = JsonPath::root().key("a").index(1).key("b");
        let d = src.diagnostic(&p, Target::Value, "m", None);
        assert_eq!((d.line, d.column), (2, 18));
        let d = src.diagnostic(&p, Target::Key, "m", None);
        assert_eq!((d.line, d.column), (2, 13));
        assert_eq!(d.path, "a[1].b");
        // a missing element points at its nearest ancestor
        let d = src.diagnostic(
            &JsonPath::root().key("a").index(7),
            Target::Value,
            "m",
            None,
        );
        assert_eq!((d.line, d.column), (2, 8));
    }

    #[test]
    fn pointer_round_trip() {
        assert_eq!(
            JsonPath::from_pointer("/tasks/1/a~1b").to_string(),
            "tasks[1].a/b"
        );
    }
}
