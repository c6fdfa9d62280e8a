//! `report.md` and `report.json`: the run's findings and its report, every citation numbered,
//! resolved to document and lines, and checked.
//!
//! The report's body is the output of the task whose `output_file` is `report.md`, else of the
//! last task with a text (not JSON) output. Findings are the JSON outputs that carry citations.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};
use troupe_crew::Crew;
use troupe_docs::Corpus;

use crate::citations::{self, Citation};
use crate::outdir::{OutDir, REPORT_JSON, REPORT_MD};
use crate::record::TaskRecord;

/// A citation as numbered in the report.
#[derive(Debug, Clone, Serialize)]
struct Numbered {
    n: usize,
    #[serde(flatten)]
    citation: Citation,
    /// Tasks whose outputs make this citation.
    cited_by: Vec<String>,
}

#[derive(Default)]
struct Numbering {
    list: Vec<Numbered>,
}

impl Numbering {
    fn number(&mut self, c: &Citation, task: &str) -> usize {
        if let Some(x) = self
            .list
            .iter_mut()
            .find(|x| x.citation.chunk == c.chunk && x.citation.quote == c.quote)
        {
            if !x.cited_by.iter().any(|t| t == task) {
                x.cited_by.push(task.to_string());
            }
            return x.n;
        }
        let n = self.list.len() + 1;
        self.list.push(Numbered {
            n,
            citation: c.clone(),
            cited_by: vec![task.to_string()],
        });
        n
    }
}

fn mark(n: usize, c: &Citation) -> String {
    if c.check.is_verified() {
        format!("[{n}]")
    } else {
        format!("[{n}✗]")
    }
}

/// Writes `report.md` and `report.json` into `out`; returns their names.
pub fn write(
    out: &OutDir,
    crew: &Crew,
    records: &[TaskRecord],
    corpus: &Corpus,
) -> std::io::Result<Vec<String>> {
    let mut numbering = Numbering::default();
    let usable = |r: &&TaskRecord| r.output.is_some() && r.usable();

    // The body: the task writing report.md, else the last text (not JSON) output.
    let body_task = crew
        .tasks
        .iter()
        .position(|t| t.output_file.as_deref() == Some(Path::new("report.md")))
        .and_then(|i| records.get(i))
        .filter(usable)
        .or_else(|| {
            records
                .iter()
                .zip(&crew.tasks)
                .rev()
                .find(|(r, t)| usable(r) && t.output_schema.is_none())
                .map(|(r, _)| r)
        });
    let mut body = String::new();
    if let Some(r) = body_task {
        let text = r.output.as_deref().unwrap_or_default();
        let found = citations::find(corpus, text, None);
        let mut last = 0;
        for m in citations::markers(text) {
            body.push_str(&text[last..m.start]);
            match found
                .iter()
                .find(|c| c.chunk == m.chunk && c.quote == m.quote)
            {
                Some(c) => body.push_str(&mark(numbering.number(c, &r.id), c)),
                None => body.push_str(&text[m.start..m.end]),
            }
            last = m.end;
        }
        body.push_str(&text[last..]);
    }

    // Findings: JSON outputs with citations, in task order.
    let mut findings_md = String::new();
    let mut findings_json = Vec::new();
    for r in records
        .iter()
        .filter(|r| Some(r.id.as_str()) != body_task.map(|b| b.id.as_str()))
    {
        let Some(value) = &r.structured_output else {
            continue;
        };
        let text = r.output.as_deref().unwrap_or_default();
        let found = citations::find(corpus, text, Some(value));
        if found.is_empty() {
            continue;
        }
        let _ = writeln!(findings_md, "\n### {}\n", r.id);
        for item in finding_items(value) {
            let mut cites = Vec::new();
            collect_citations(item, &mut cites);
            let refs: Vec<String> = cites
                .iter()
                .filter_map(|(chunk, quote)| {
                    found
                        .iter()
                        .find(|c| &c.chunk == chunk && &c.quote == quote)
                })
                .map(|c| mark(numbering.number(c, &r.id), c))
                .collect();
            let _ = writeln!(findings_md, "- {} {}", describe(item), refs.join(""));
        }
        findings_json.push(json!({"task": r.id, "value": value}));
    }

    let verified = numbering
        .list
        .iter()
        .filter(|c| c.citation.check.is_verified())
        .count();
    let total = numbering.list.len();

    let mut md = format!("# {}\n\n", crew.name);
    let _ = writeln!(
        md,
        "_{} document(s) · {total} citation(s), {verified} verified{}_\n",
        corpus.documents().len(),
        if total > verified {
            format!(", **{} failed the check** (marked ✗)", total - verified)
        } else {
            String::new()
        }
    );
    if !body.trim().is_empty() {
        md.push_str(body.trim());
        md.push('\n');
    }
    if !findings_md.is_empty() {
        md.push_str("\n## Findings\n");
        md.push_str(&findings_md);
    }
    if !numbering.list.is_empty() {
        md.push_str("\n## Sources\n\n");
        for c in &numbering.list {
            let (doc, lines) = match &c.citation.check {
                troupe_docs::CitationCheck::Verified { document, lines }
                | troupe_docs::CitationCheck::NotInChunk {
                    document, lines, ..
                } => (document.clone(), lines.clone()),
                _ => (c.citation.chunk.clone(), "unknown chunk".into()),
            };
            let quote = c
                .citation
                .quote
                .as_deref()
                .map(|q| format!(": “{}”", q.split_whitespace().collect::<Vec<_>>().join(" ")))
                .unwrap_or_default();
            let status = match c.citation.problem() {
                None => "✓ verified".to_string(),
                Some(p) => format!("✗ **not verified**: {p}"),
            };
            let _ = writeln!(
                md,
                "{}. {doc}, {lines} (`{}`){quote} — {status}",
                c.n, c.citation.chunk
            );
        }
    }
    md.push_str("\n## Documents\n\n");
    for d in corpus.documents() {
        let info = corpus.info(d);
        let _ = writeln!(
            md,
            "- `{}`{} — {:?}, {} lines, {} chunk(s)",
            info.id,
            info.title.map(|t| format!(" ({t})")).unwrap_or_default(),
            info.format,
            info.lines,
            info.chunks
        );
    }

    let report = json!({
        "crew": crew.name,
        "body": body_task.map(|r| json!({"task": r.id, "markdown": body})),
        "findings": findings_json,
        "citations": numbering.list,
        "summary": {"citations": total, "verified": verified, "failed": total - verified},
        "documents": corpus.documents().iter().map(|d| corpus.info(d)).collect::<Vec<_>>(),
    });
    out.write(Path::new(REPORT_MD), md.as_bytes())?;
    let mut json = serde_json::to_vec_pretty(&report).map_err(std::io::Error::other)?;
    json.push(b'\n');
    out.write(Path::new(REPORT_JSON), &json)?;
    Ok(vec![REPORT_MD.into(), REPORT_JSON.into()])
}

/// The findings of a JSON output: the elements of its first array of objects (`{"findings":
/// [...]}`), or the value itself.
fn finding_items(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => m
            .values()
            .find_map(|v| match v {
                Value::Array(a) if a.iter().all(Value::is_object) && !a.is_empty() => {
                    Some(a.iter().collect())
                }
                _ => None,
            })
            .unwrap_or_else(|| vec![value]),
        _ => vec![value],
    }
}

fn collect_citations(v: &Value, out: &mut Vec<(String, Option<String>)>) {
    match v {
        Value::Object(m) => {
            if let Some(chunk) = m.get("chunk").and_then(Value::as_str) {
                out.push((
                    chunk.trim().to_string(),
                    m.get("quote").and_then(Value::as_str).map(str::to_string),
                ));
            }
            m.iter()
                .filter(|(k, _)| *k != "chunk" && *k != "quote")
                .for_each(|(_, x)| collect_citations(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_citations(x, out)),
        _ => {}
    }
}

/// A finding in one line: its short text fields (not the citation's own), `kind` first in bold.
fn describe(item: &Value) -> String {
    let Value::Object(m) = item else {
        return item.to_string();
    };
    let mut parts = Vec::new();
    if let Some(k) = m.get("kind").and_then(Value::as_str) {
        parts.push(format!("**{k}**"));
    }
    for (k, v) in m {
        if matches!(k.as_str(), "kind" | "chunk" | "quote") {
            continue;
        }
        match v {
            Value::String(s) if !s.trim().is_empty() => parts.push(s.trim().to_string()),
            Value::Number(n) => parts.push(format!("{k}: {n}")),
            Value::Bool(b) => parts.push(format!("{k}: {b}")),
            _ => {}
        }
    }
    if parts.is_empty() {
        "(finding)".into()
    } else {
        parts.join(" — ")
    }
}
