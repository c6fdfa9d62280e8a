//! The run's documents: their text, chunks and search index, looked up by stable ids.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

use crate::chunk::{self, ChunkOptions};
use crate::error::{DocError, LoadProblem};
use crate::index::SearchIndex;
use crate::load::{self, Format, LoadOptions, LoadReport};
use crate::tokens::estimate_tokens;

/// One loaded document.
#[derive(Debug)]
pub struct Document {
    /// Its path relative to the directory or pattern it was found through (`contracts/nda.pdf`).
    pub id: String,
    pub path: PathBuf,
    pub format: Format,
    pub title: Option<String>,
    /// Normalised text; chunk spans and citations refer to it.
    pub text: String,
    /// Size of the file on disk.
    pub bytes: u64,
    /// The character encoding the file was decoded from (`UTF-8`, `windows-1252`, `UTF-16LE`…);
    /// `None` for a PDF.
    pub encoding: Option<&'static str>,
    /// Positions of this document's chunks in [`Corpus::chunks`].
    pub chunks: Range<usize>,
    line_starts: Vec<usize>,
}

/// A span of a document, the unit that tools return and that citations point at.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// `<document id>:<start>-<end>`, byte offsets into the document's normalised text.
    pub id: String,
    /// Position of the document in [`Corpus::documents`].
    pub doc: usize,
    pub start: usize,
    pub end: usize,
}

/// What `docs.list` shows of a document.
#[derive(Debug, Clone, Serialize)]
pub struct DocInfo {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub format: Format,
    /// See [`Document::encoding`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    pub bytes: u64,
    pub lines: usize,
    pub tokens: usize,
    pub chunks: usize,
    pub first_chunk: String,
}

/// A search result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub chunk: String,
    pub document: String,
    pub lines: String,
    pub score: f32,
    pub snippet: String,
}

/// Every document of a run, chunked and indexed.
pub struct Corpus {
    documents: Vec<Document>,
    chunks: Vec<Chunk>,
    by_chunk_id: HashMap<String, usize>,
    by_doc_id: HashMap<String, usize>,
    index: SearchIndex,
    options: ChunkOptions,
    /// Each chunk's text as citation checks compare it, made on first use.
    normalised: OnceLock<Vec<String>>,
}

impl std::fmt::Debug for Corpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Corpus")
            .field("documents", &self.documents.len())
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl Corpus {
    /// Finds, reads, chunks and indexes the documents that `specs` name (files, directories,
    /// globs; relative to `base`). Files that cannot be read fail the load, or, with
    /// `skip_unreadable`, are left out and listed in the report's `skipped`; files left out on
    /// purpose (hidden, link loops, the same file twice) are listed in its `ignored`.
    pub fn load(
        specs: &[String],
        base: &Path,
        load_options: &LoadOptions,
        chunk_options: ChunkOptions,
    ) -> Result<(Corpus, LoadReport), DocError> {
        let found = load::collect_paths(specs, base)?;
        let mut report = LoadReport {
            skipped: found.problems,
            ignored: found.ignored,
        };
        let mut loaded = Vec::with_capacity(found.files.len());
        for (id, path) in found.files {
            match load::load_file(&path, load_options) {
                Ok(file) => loaded.push(Loaded {
                    id,
                    path,
                    format: file.format,
                    title: file.title,
                    text: file.text,
                    bytes: file.bytes,
                    encoding: file.encoding,
                }),
                Err(problem) => report.skipped.push(problem),
            }
        }
        if !report.skipped.is_empty() && !load_options.skip_unreadable {
            return Err(DocError::Unreadable(report.skipped));
        }
        if loaded.is_empty() {
            return Err(DocError::Empty(
                "every file was unreadable; see the reasons above".into(),
            ));
        }
        Ok((Corpus::build(loaded, chunk_options)?, report))
    }

    /// A corpus of in-memory texts `(id, format, text)`; the text is normalised as files are.
    pub fn from_texts(
        texts: Vec<(String, Format, String)>,
        chunk_options: ChunkOptions,
    ) -> Result<Corpus, DocError> {
        let loaded = texts
            .into_iter()
            .map(|(id, format, text)| {
                let text = load::normalise_text(&text);
                Loaded {
                    path: PathBuf::from(&id),
                    bytes: text.len() as u64,
                    id,
                    format,
                    title: None,
                    text,
                    encoding: Some("UTF-8"),
                }
            })
            .collect();
        Corpus::build(loaded, chunk_options)
    }

    fn build(loaded: Vec<Loaded>, options: ChunkOptions) -> Result<Corpus, DocError> {
        let mut documents = Vec::with_capacity(loaded.len());
        let mut chunks = Vec::new();
        for (position, doc) in loaded.into_iter().enumerate() {
            let first = chunks.len();
            for (start, end) in chunk::spans(&doc.text, doc.format, options) {
                chunks.push(Chunk {
                    id: format!("{}:{start}-{end}", doc.id),
                    doc: position,
                    start,
                    end,
                });
            }
            let line_starts = std::iter::once(0)
                .chain(doc.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect();
            documents.push(Document {
                id: doc.id,
                path: doc.path,
                format: doc.format,
                title: doc.title,
                text: doc.text,
                bytes: doc.bytes,
                encoding: doc.encoding,
                chunks: first..chunks.len(),
                line_starts,
            });
        }
        let index = SearchIndex::build(chunks.iter().enumerate().map(|(i, c)| {
            let doc = &documents[c.doc];
            (i, doc.id.as_str(), &doc.text[c.start..c.end])
        }))?;
        let by_chunk_id = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let by_doc_id = documents
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        Ok(Corpus {
            documents,
            chunks,
            by_chunk_id,
            by_doc_id,
            index,
            options,
            normalised: OnceLock::new(),
        })
    }

    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    pub fn chunk_options(&self) -> ChunkOptions {
        self.options
    }

    pub fn document(&self, id: &str) -> Option<&Document> {
        self.by_doc_id.get(id).map(|&i| &self.documents[i])
    }

    pub fn chunk(&self, id: &str) -> Option<&Chunk> {
        self.by_chunk_id.get(id.trim()).map(|&i| &self.chunks[i])
    }

    /// Every chunk's text normalised for citation checks (see [`crate::normalise`]), by position.
    pub(crate) fn normalised_chunks(&self) -> &[String] {
        self.normalised.get_or_init(|| {
            self.chunks
                .iter()
                .map(|c| crate::cite::normalise(self.chunk_text(c)))
                .collect()
        })
    }

    /// Position of a chunk in [`Corpus::chunks`].
    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.by_chunk_id.get(id.trim()).copied()
    }

    pub fn chunk_text(&self, chunk: &Chunk) -> &str {
        &self.documents[chunk.doc].text[chunk.start..chunk.end]
    }

    pub fn chunks_of(&self, doc: &Document) -> &[Chunk] {
        &self.chunks[doc.chunks.clone()]
    }

    pub fn document_of(&self, chunk: &Chunk) -> &Document {
        &self.documents[chunk.doc]
    }

    /// Document ids closest to `id` (for "did you mean" in tool errors).
    pub fn document_ids(&self) -> impl Iterator<Item = &str> {
        self.documents.iter().map(|d| d.id.as_str())
    }

    pub fn info(&self, doc: &Document) -> DocInfo {
        DocInfo {
            id: doc.id.clone(),
            title: doc.title.clone(),
            format: doc.format,
            encoding: doc.encoding,
            bytes: doc.bytes,
            lines: doc.line_starts.len().saturating_sub(1).max(1),
            tokens: estimate_tokens(&doc.text),
            chunks: doc.chunks.len(),
            first_chunk: self
                .chunks_of(doc)
                .first()
                .map(|c| c.id.clone())
                .unwrap_or_default(),
        }
    }

    /// 1-based first and last line of a byte span of a document.
    pub fn lines(&self, doc: &Document, start: usize, end: usize) -> (usize, usize) {
        let line_of = |offset: usize| doc.line_starts.partition_point(|&s| s <= offset).max(1);
        let last = end.saturating_sub(1).max(start);
        (line_of(start), line_of(last))
    }

    /// "lines 12–30" (or "line 12") for a chunk.
    pub fn location(&self, chunk: &Chunk) -> String {
        let (first, last) = self.lines(&self.documents[chunk.doc], chunk.start, chunk.end);
        if first == last {
            format!("line {first}")
        } else {
            format!("lines {first}–{last}")
        }
    }

    /// Byte span of lines `from..=to` (1-based, clamped) of a document.
    pub fn line_span(&self, doc: &Document, from: usize, to: usize) -> (usize, usize) {
        let n = doc.line_starts.len();
        let from = from.clamp(1, n);
        let to = to.clamp(from, n);
        let start = doc.line_starts[from - 1];
        let end = doc.line_starts.get(to).copied().unwrap_or(doc.text.len());
        (start, end.min(doc.text.len()))
    }

    /// BM25 search over all chunks, or one document's.
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        within: Option<&str>,
    ) -> Result<Vec<Hit>, DocError> {
        Ok(self
            .index
            .search(query, limit, within)?
            .into_iter()
            .filter_map(|hit| {
                let chunk = self.chunks.get(hit.chunk)?;
                Some(Hit {
                    chunk: chunk.id.clone(),
                    document: self.documents[chunk.doc].id.clone(),
                    lines: self.location(chunk),
                    score: hit.score,
                    snippet: hit.snippet,
                })
            })
            .collect())
    }

    /// BM25 scores of every chunk of `doc` for `query` (0 where it does not match), in chunk
    /// order: how relevant each chunk is to a task, for cutting a prompt down to the window.
    pub fn relevance(&self, doc: &Document, query: &str) -> Result<Vec<f32>, DocError> {
        let mut scores = vec![0.0; doc.chunks.len()];
        for hit in self
            .index
            .search(query, doc.chunks.len().max(1), Some(&doc.id))?
        {
            if let Some(slot) = hit
                .chunk
                .checked_sub(doc.chunks.start)
                .and_then(|i| scores.get_mut(i))
            {
                *slot = hit.score;
            }
        }
        Ok(scores)
    }
}

struct Loaded {
    id: String,
    path: PathBuf,
    format: Format,
    title: Option<String>,
    text: String,
    bytes: u64,
    encoding: Option<&'static str>,
}

impl From<LoadProblem> for DocError {
    fn from(problem: LoadProblem) -> Self {
        DocError::Unreadable(vec![problem])
    }
}
