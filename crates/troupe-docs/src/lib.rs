//! Documents for Troupe crews: load txt, Markdown, HTML and PDF files; normalise their text; cut it
//! into overlapping chunks sized in tokens, each with a stable id (`<document>:<start>-<end>`, byte
//! offsets into the normalised text); index the chunks for BM25 full-text search (tantivy); and check
//! citations (a chunk id plus the words quoted from it).
//!
//! The runtime wraps a [`Corpus`] in the built-in `docs.*` tools and uses it to check the citations
//! in task outputs.

mod chunk;
mod cite;
mod corpus;
mod encoding;
mod error;
mod index;
mod load;
mod pdf;
mod statements;
mod support;
mod tokens;

pub use chunk::ChunkOptions;
pub use cite::{CitationCheck, normalise};
pub use corpus::{Chunk, Corpus, DocInfo, Document, Hit};
pub use error::{DocError, LoadProblem};
pub use load::{
    Collected, FileText, Format, IgnoreReason, Ignored, LoadOptions, LoadReport, collect_paths,
    load_file,
};
pub use statements::{Statement, StatementKind, statements, strip_quotes, words_outside_quotes};
pub use support::{SUPPORT_THRESHOLD, Support, content_words, support, support_in};
pub use tokens::estimate_tokens;
