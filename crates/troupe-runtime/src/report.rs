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
use troupe_docs::{CitationCheck, Corpus};

use crate::citations::{self, Citation};
use crate::grounding::{self, Tally};
use crate::outdir::{OutDir, REPORT_JSON, REPORT_MD};
use crate::prompt;
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
    match &c.check {
        CitationCheck::Verified { .. } => format!("[{n}]"),
        CitationCheck::Unchecked { .. } => format!("[{n}?]"),
        _ => format!("[{n}✗]"),
    }
}

/// What the report's checks found, for the run summary and the `report_written` event.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReportChecks {
    /// The body's statements; `None` when there is no body.
    pub body: Option<BodyChecks>,
    /// The findings' citations.
    pub findings: CitationTally,
}

/// The body's statements, counted.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BodyChecks {
    pub task: String,
    #[serde(flatten)]
    pub tally: Tally,
    /// Claims that failed their check (uncited, citation failed, unchecked, unsupported).
    pub failed: usize,
    pub echoes_prompt: bool,
    pub states_nothing: bool,
}

/// Citations, counted by their check. Only `verified` ones were checked and passed.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct CitationTally {
    pub citations: usize,
    pub verified: usize,
    /// Without a quote: nothing was checked.
    pub unchecked: usize,
    pub failed: usize,
}

impl CitationTally {
    fn of<'a>(list: impl Iterator<Item = &'a Citation>) -> Self {
        let mut t = Self::default();
        for c in list {
            t.citations += 1;
            match c.check {
                CitationCheck::Verified { .. } => t.verified += 1,
                CitationCheck::Unchecked { .. } => t.unchecked += 1,
                _ => t.failed += 1,
            }
        }
        t
    }

    fn describe(&self) -> String {
        let mut s = format!("{} citation(s), {} verified", self.citations, self.verified);
        if self.unchecked > 0 {
            s.push_str(&format!(", {} unchecked (no quote)", self.unchecked));
        }
        if self.failed > 0 {
            s.push_str(&format!(
                ", **{} failed the check** (marked ✗)",
                self.failed
            ));
        }
        s
    }
}

impl BodyChecks {
    fn describe(&self) -> String {
        let t = &self.tally;
        let mut s = format!(
            "{} statement(s), {} cited, {} verified, {} supported",
            t.statements, t.cited, t.verified, t.supported
        );
        if self.failed > 0 {
            s.push_str(&format!(
                " — **{} failed the check** (marked ✗)",
                self.failed
            ));
        }
        if self.echoes_prompt {
            s.push_str(" — **it repeats its own prompt**");
        } else if self.states_nothing {
            s.push_str(" — **it states nothing checkable**");
        }
        s
    }
}

impl ReportChecks {
    /// One line: the body's statements, then the findings' citations.
    pub fn describe(&self) -> String {
        if self.body.is_none() && self.findings.citations == 0 {
            return "no body and no cited findings to check".into();
        }
        let mut parts = Vec::new();
        if let Some(b) = &self.body {
            parts.push(format!("report: {}", b.describe()));
        }
        if self.findings.citations > 0 {
            parts.push(format!("findings: {}", self.findings.describe()));
        }
        parts.join(" · ").replace("**", "")
    }
}

/// The task whose output is the report's body: the one writing `report.md`, else the last task
/// with a text (not JSON) output. Its statements are checked one by one.
pub fn body_task(crew: &Crew) -> Option<usize> {
    crew.tasks
        .iter()
        .position(|t| t.output_file.as_deref() == Some(Path::new("report.md")))
        .or_else(|| crew.tasks.iter().rposition(|t| t.output_schema.is_none()))
}

/// What the author of `task` was given: its persona, its task, its context (a body that is
/// mostly these words repeats its prompt).
fn prompt_texts(crew: &Crew, task: usize, records: &[TaskRecord]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(t) = crew.tasks.get(task) else {
        return out;
    };
    out.push(t.description.clone());
    out.extend(t.expected_output.clone());
    if let Some(a) = t.agent.as_deref().and_then(|a| crew.agent(a)) {
        // The persona as the agent received it (the fence's tag aside).
        out.push(prompt::system(a, &prompt::Fence::with_tag("")));
    }
    for &i in &t.context {
        out.extend(records.get(i).and_then(|r| r.output.clone()));
    }
    out
}

/// Writes `report.md` and `report.json` into `out`; returns their names and what the checks
/// found.
pub fn write(
    out: &OutDir,
    crew: &Crew,
    records: &[TaskRecord],
    corpus: &Corpus,
) -> std::io::Result<(Vec<String>, ReportChecks)> {
    let mut numbering = Numbering::default();
    let usable = |r: &&TaskRecord| r.output.is_some() && r.usable();

    let body_idx = body_task(crew).filter(|&i| records.get(i).is_some_and(|r| usable(&r)));
    let body_task = body_idx.and_then(|i| records.get(i));
    let mut body = String::new();
    let mut grounding = None;
    if let (Some(r), Some(idx)) = (body_task, body_idx) {
        let text = r.output.as_deref().unwrap_or_default();
        let prompt = prompt_texts(crew, idx, records);
        let prompt: Vec<&str> = prompt.iter().map(String::as_str).collect();
        let g = grounding::check(corpus, text, &prompt);
        // Edits: each marker becomes its number; each failed statement gets its reason.
        let mut edits: Vec<(usize, usize, String)> = Vec::new();
        let found = citations::find(corpus, text, None);
        for m in citations::markers(text) {
            if let Some(c) = found
                .iter()
                .find(|c| c.chunk == m.chunk && c.quote == m.quote)
            {
                edits.push((m.start, m.end, mark(numbering.number(c, &r.id), c)));
            }
        }
        for st in g.failed() {
            if let Some(reason) = st.check.reason() {
                edits.push((st.end, st.end, format!(" ✗ _({reason})_")));
            }
        }
        edits.sort_by_key(|e| (e.0, e.1));
        let mut last = 0;
        for (start, end, with) in edits {
            if start < last {
                continue;
            }
            body.push_str(&text[last..start]);
            body.push_str(&with);
            last = end;
        }
        body.push_str(&text[last..]);
        grounding = Some(g);
    }

    // Findings: JSON outputs with citations, in task order.
    let mut findings_md = String::new();
    let mut findings_json = Vec::new();
    let mut finding_citations: Vec<Citation> = Vec::new();
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
        finding_citations.extend(found);
    }

    let checks = ReportChecks {
        body: body_task.zip(grounding.as_ref()).map(|(r, g)| BodyChecks {
            task: r.id.clone(),
            tally: g.tally(),
            failed: g.failed().count(),
            echoes_prompt: g.echoes_prompt,
            states_nothing: g.states_nothing(),
        }),
        findings: CitationTally::of(finding_citations.iter()),
    };

    let mut md = format!("# {}\n\n", crew.name);
    let _ = writeln!(md, "_{} document(s)_  ", corpus.documents().len());
    if let Some(b) = &checks.body {
        let _ = writeln!(md, "_Report: {}_  ", b.describe());
    }
    if checks.findings.citations > 0 {
        let _ = writeln!(md, "_Findings: {}_", checks.findings.describe());
    }
    md.push('\n');
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
                CitationCheck::Verified { document, lines }
                | CitationCheck::Unchecked { document, lines }
                | CitationCheck::NotInChunk {
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
            let status = match (&c.citation.check, c.citation.problem()) {
                (CitationCheck::Verified { .. }, _) => "✓ verified".to_string(),
                (CitationCheck::Unchecked { .. }, _) => {
                    "? **unchecked**: no words were quoted, so nothing was checked".to_string()
                }
                (_, p) => format!("✗ **not verified**: {}", p.unwrap_or_default()),
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

    let all = CitationTally::of(numbering.list.iter().map(|n| &n.citation));
    let report = json!({
        "crew": crew.name,
        "body": body_task.map(|r| json!({
            "task": r.id,
            "markdown": body,
            "statements": grounding.as_ref().map(|g| &g.statements),
        })),
        "findings": findings_json,
        "citations": numbering.list,
        "summary": {
            "body": checks.body,
            "findings": checks.findings,
            "citations": all.citations,
            "verified": all.verified,
            "unchecked": all.unchecked,
            "failed": all.failed,
        },
        "documents": corpus.documents().iter().map(|d| corpus.info(d)).collect::<Vec<_>>(),
    });
    out.write(Path::new(REPORT_MD), md.as_bytes())?;
    let mut json = serde_json::to_vec_pretty(&report).map_err(std::io::Error::other)?;
    json.push(b'\n');
    out.write(Path::new(REPORT_JSON), &json)?;
    Ok((vec![REPORT_MD.into(), REPORT_JSON.into()], checks))
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
