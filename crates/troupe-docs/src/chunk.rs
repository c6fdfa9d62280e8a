//! Cutting a document's text into overlapping chunks sized in tokens, at the best boundary
//! available (section, paragraph, sentence, word), with text-splitter.

use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};

use crate::load::Format;
use crate::tokens::estimate_tokens;

/// Chunk size and overlap, in (estimated) tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    pub tokens: usize,
    pub overlap: usize,
}

impl Default for ChunkOptions {
    /// ~300 words per chunk: big enough to hold a clause with its context, small enough that a
    /// handful fit a small model's window next to the instructions.
    fn default() -> Self {
        ChunkOptions {
            tokens: 400,
            overlap: 60,
        }
    }
}

struct Tokens;

impl ChunkSizer for Tokens {
    fn size(&self, chunk: &str) -> usize {
        estimate_tokens(chunk)
    }
}

/// Byte spans `(start, end)` of the chunks of `text`, in order. Overlap is clamped below the size.
pub(crate) fn spans(text: &str, format: Format, options: ChunkOptions) -> Vec<(usize, usize)> {
    let size = options.tokens.max(16);
    let overlap = options.overlap.min(size / 2);
    let config = match ChunkConfig::new(size)
        .with_sizer(Tokens)
        .with_overlap(overlap)
    {
        Ok(config) => config,
        Err(_) => ChunkConfig::new(size).with_sizer(Tokens),
    };
    let to_span = |(start, chunk): (usize, &str)| (start, start + chunk.len());
    match format {
        Format::Markdown => MarkdownSplitter::new(config)
            .chunk_indices(text)
            .map(to_span)
            .collect(),
        _ => TextSplitter::new(config)
            .chunk_indices(text)
            .map(to_span)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_text_within_size_and_overlap() {
        let text = (0..400)
            .map(|i| format!("Sentence number {i} says something about clause {i}."))
            .collect::<Vec<_>>()
            .join(" ");
        let options = ChunkOptions {
            tokens: 100,
            overlap: 20,
        };
        let spans = spans(&text, Format::Text, options);
        assert!(spans.len() > 10, "{} chunks", spans.len());
        assert_eq!(spans[0].0, 0);
        assert_eq!(spans.last().map(|s| s.1), Some(text.len()));
        for pair in spans.windows(2) {
            // Consecutive chunks overlap or touch: nothing of the text falls between them.
            assert!(pair[1].0 <= pair[0].1 + 1, "{pair:?}");
            assert!(pair[1].0 > pair[0].0);
        }
        for &(s, e) in &spans {
            assert!(estimate_tokens(&text[s..e]) <= 100);
        }
        assert_eq!(spans, super::spans(&text, Format::Text, options), "stable");
    }
}
