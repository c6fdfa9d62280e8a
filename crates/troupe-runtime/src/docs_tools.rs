//! The built-in document tools, present when a run has documents: `docs.list`, `docs.search`
//! and `docs.read`. Every passage they return carries its chunk id, which is what citations use.

use std::sync::Arc;

use serde_json::{Value, json};
use troupe_docs::Corpus;
use troupe_llm::{BoxFuture, ToolSpec};

use crate::tool::{Tool, ToolError, ToolRegistry};

/// Characters `docs.read` returns at most per call (~1000 tokens); longer spans are cut with a
/// pointer to where to continue.
pub const MAX_READ_CHARS: usize = 4000;

/// Adds the document tools over `corpus` to `registry`.
pub fn register(registry: &mut ToolRegistry, corpus: &Arc<Corpus>) {
    registry.register(Arc::new(DocsTool::list(corpus.clone())));
    registry.register(Arc::new(DocsTool::search(corpus.clone())));
    registry.register(Arc::new(DocsTool::read(corpus.clone())));
}

enum Kind {
    List,
    Search,
    Read,
}

struct DocsTool {
    spec: ToolSpec,
    kind: Kind,
    corpus: Arc<Corpus>,
}

impl DocsTool {
    fn list(corpus: Arc<Corpus>) -> Self {
        DocsTool {
            spec: ToolSpec {
                name: "docs.list".into(),
                description: "Lists the documents of this run: id, title, format, size, number of \
                              lines, tokens and chunks, and the id of the first chunk."
                    .into(),
                parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            },
            kind: Kind::List,
            corpus,
        }
    }

    fn search(corpus: Arc<Corpus>) -> Self {
        DocsTool {
            spec: ToolSpec {
                name: "docs.search".into(),
                description: "Full-text search (BM25) over the documents. Returns the best chunks \
                              with their chunk id, document, lines and a snippet. Read a chunk \
                              in full with docs.read; cite it by its chunk id."
                    .into(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "minLength": 1, "description": "Words to look for"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 20, "description": "How many results (default 5)"},
                        "document": {"type": "string", "description": "Search only this document (its id)"}
                    },
                    "required": ["query"],
                    "additionalProperties": false
                }),
            },
            kind: Kind::Search,
            corpus,
        }
    }

    fn read(corpus: Arc<Corpus>) -> Self {
        DocsTool {
            spec: ToolSpec {
                name: "docs.read".into(),
                description: "Reads a chunk by its id (from docs.search or docs.list), or lines \
                              of a document. Returns the text with its chunk id and lines, and \
                              the ids of the neighbouring chunks."
                    .into(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "chunk": {"type": "string", "description": "A chunk id such as 'contract.pdf:0-1830'"},
                        "document": {"type": "string", "description": "A document id, to read by lines"},
                        "from_line": {"type": "integer", "minimum": 1},
                        "to_line": {"type": "integer", "minimum": 1}
                    },
                    "additionalProperties": false
                }),
            },
            kind: Kind::Read,
            corpus,
        }
    }

    fn unknown_document(&self, id: &str) -> ToolError {
        let ids: Vec<&str> = self.corpus.document_ids().collect();
        let hint = troupe_crew::diag::did_you_mean(id, ids.iter().copied())
            .unwrap_or_else(|| format!("the documents are: {}", ids.join(", ")));
        ToolError(format!("there is no document `{id}`; {hint}"))
    }

    fn run(&self, args: &Value) -> Result<Value, ToolError> {
        let corpus = &self.corpus;
        match self.kind {
            Kind::List => Ok(json!({
                "documents": corpus.documents().iter().map(|d| corpus.info(d)).collect::<Vec<_>>(),
            })),
            Kind::Search => {
                let query = args["query"].as_str().unwrap_or_default();
                let limit = args["limit"].as_u64().unwrap_or(5).clamp(1, 20) as usize;
                let within = args["document"].as_str();
                if let Some(id) = within
                    && corpus.document(id).is_none()
                {
                    return Err(self.unknown_document(id));
                }
                let hits = corpus
                    .search(query, limit, within)
                    .map_err(|e| ToolError(e.to_string()))?;
                if hits.is_empty() {
                    return Ok(json!({
                        "results": [],
                        "note": "nothing matched; try other words (synonyms, shorter query)"
                    }));
                }
                Ok(json!({ "results": hits }))
            }
            Kind::Read => self.read_args(args),
        }
    }

    fn read_args(&self, args: &Value) -> Result<Value, ToolError> {
        let corpus = &self.corpus;
        if let Some(id) = args["chunk"].as_str() {
            let Some(chunk) = corpus.chunk(id) else {
                let doc = id.rsplit_once(':').map_or(id, |(d, _)| d);
                let hint = match corpus.document(doc) {
                    Some(d) => format!(
                        "chunk ids are exact spans; `{}` has {} chunk(s), the first is {} (docs.list shows them, docs.search finds them)",
                        d.id,
                        d.chunks.len(),
                        corpus.info(d).first_chunk
                    ),
                    None => "use an id returned by docs.search or docs.list".into(),
                };
                return Err(ToolError(format!("there is no chunk `{id}`; {hint}")));
            };
            let doc = corpus.document_of(chunk);
            let siblings = corpus.chunks_of(doc);
            let at = siblings.iter().position(|c| c.id == chunk.id).unwrap_or(0);
            let (text, truncated) = cap(corpus.chunk_text(chunk));
            let mut out = json!({
                "chunk": chunk.id,
                "document": doc.id,
                "lines": corpus.location(chunk),
                "text": text,
            });
            if truncated {
                out["truncated"] = json!(true);
            }
            if at > 0 {
                out["previous_chunk"] = json!(siblings[at - 1].id);
            }
            if let Some(next) = siblings.get(at + 1) {
                out["next_chunk"] = json!(next.id);
            }
            return Ok(out);
        }
        let Some(id) = args["document"].as_str() else {
            return Err(ToolError(
                "give `chunk` (a chunk id) or `document` (with optional from_line/to_line)".into(),
            ));
        };
        let doc = corpus
            .document(id)
            .ok_or_else(|| self.unknown_document(id))?;
        let from = args["from_line"].as_u64().unwrap_or(1) as usize;
        let to = args["to_line"].as_u64().map_or(usize::MAX, |t| t as usize);
        if to < from {
            return Err(ToolError(format!(
                "`to_line` ({to}) is before `from_line` ({from})"
            )));
        }
        let (start, end) = corpus.line_span(doc, from, to);
        let (text, truncated) = cap(&doc.text[start..end]);
        let shown_end = start + text.len();
        let (first, last) = corpus.lines(doc, start, shown_end);
        // The chunks this span overlaps: what to cite for words read here.
        let chunks: Vec<&str> = corpus
            .chunks_of(doc)
            .iter()
            .filter(|c| c.start < shown_end && c.end > start)
            .map(|c| c.id.as_str())
            .collect();
        let mut out = json!({
            "document": doc.id,
            "lines": format!("{first}-{last}"),
            "chunks": chunks,
            "text": text,
        });
        if truncated {
            out["truncated"] = json!(true);
            out["continue_from_line"] = json!(last + 1);
        }
        Ok(out)
    }
}

/// At most [`MAX_READ_CHARS`] characters, cut at a line end when there is one.
fn cap(text: &str) -> (&str, bool) {
    if text.len() <= MAX_READ_CHARS {
        return (text, false);
    }
    let mut end = MAX_READ_CHARS;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').map_or(end, |nl| nl + 1);
    (&text[..end], true)
}

impl Tool for DocsTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, args: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let value = self.run(&args)?;
            Ok(serde_json::to_string(&value).unwrap_or_default())
        })
    }
}
