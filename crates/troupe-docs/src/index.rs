//! BM25 full-text search over chunks, with tantivy (an in-memory index built once per run).

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, TantivyDocument, Term, doc};

use crate::error::DocError;

pub(crate) struct SearchIndex {
    index: Index,
    reader: IndexReader,
    text: Field,
    idx: Field,
    doc: Field,
}

/// One search result: the chunk's position in the corpus, its BM25 score and a snippet.
pub(crate) struct RawHit {
    pub chunk: usize,
    pub score: f32,
    pub snippet: String,
}

fn err(e: impl std::fmt::Display) -> DocError {
    DocError::Index(e.to_string())
}

impl SearchIndex {
    /// Indexes `(chunk position, document id, text)` triples.
    pub(crate) fn build<'a>(
        chunks: impl Iterator<Item = (usize, &'a str, &'a str)>,
    ) -> Result<SearchIndex, DocError> {
        let mut schema = Schema::builder();
        // English stemming, so "warranty" finds "WARRANTIES" and "terminate" finds "termination".
        let indexing = TextFieldIndexing::default()
            .set_tokenizer("en_stem")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let text = schema.add_text_field(
            "text",
            TextOptions::default()
                .set_indexing_options(indexing)
                .set_stored(),
        );
        let idx = schema.add_u64_field("idx", STORED);
        let doc = schema.add_text_field("doc", STRING);
        let index = Index::create_in_ram(schema.build());
        // 15 MB is tantivy's minimum arena per indexing thread; one thread is plenty for a run's
        // documents and keeps the memory small.
        let mut writer = index
            .writer_with_num_threads::<TantivyDocument>(1, 15_000_000)
            .map_err(err)?;
        for (position, doc_id, body) in chunks {
            writer
                .add_document(doc!(text => body, idx => position as u64, doc => doc_id))
                .map_err(err)?;
        }
        writer.commit().map_err(err)?;
        let reader = index.reader().map_err(err)?;
        Ok(SearchIndex {
            index,
            reader,
            text,
            idx,
            doc,
        })
    }

    /// The best `limit` chunks for `query` (free text; operators in it are honoured when they
    /// parse and read as words when they do not), optionally within one document.
    pub(crate) fn search(
        &self,
        query: &str,
        limit: usize,
        within: Option<&str>,
    ) -> Result<Vec<RawHit>, DocError> {
        if limit == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let parser = QueryParser::for_index(&self.index, vec![self.text]);
        let (mut parsed, errors) = parser.parse_query_lenient(query);
        if !errors.is_empty() {
            // Unbalanced quotes or parentheses: search for the words alone.
            let words: String = query
                .chars()
                .map(|c| if c.is_alphanumeric() { c } else { ' ' })
                .collect();
            parsed = parser.parse_query_lenient(&words).0;
        }
        let query: Box<dyn Query> = match within {
            None => parsed,
            Some(doc_id) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, parsed),
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(self.doc, doc_id),
                        IndexRecordOption::Basic,
                    )),
                ),
            ])),
        };
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(limit).order_by_score())
            .map_err(err)?;
        let mut snippets = SnippetGenerator::create(&searcher, &*query, self.text).map_err(err)?;
        snippets.set_max_num_chars(240);
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let stored: TantivyDocument = searcher.doc(address).map_err(err)?;
            let Some(chunk) = stored.get_first(self.idx).and_then(|v| v.as_u64()) else {
                continue;
            };
            let snippet = snippets.snippet_from_doc(&stored);
            hits.push(RawHit {
                chunk: chunk as usize,
                score,
                snippet: snippet
                    .fragment()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        Ok(hits)
    }
}
