//! Token estimates for budgeting prompts and sizing chunks, without a model's tokenizer.

/// A conservative estimate of how many tokens `text` takes in a typical BPE/SentencePiece vocabulary
/// (GPT, Llama, Gemma): one token per 3.5 characters, rounded up, and never less than the number of
/// words. English prose runs at ~4.2 characters per token in these vocabularies, so the estimate
/// errs high: a prompt budgeted with it fits the real context window.
pub fn estimate_tokens(text: &str) -> usize {
    let chars = text.chars().count();
    let by_chars = (chars * 2).div_ceil(7);
    let words = text.split_whitespace().count();
    by_chars.max(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_grow_with_text_and_cover_words() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcdefg"), 2);
        // Many one-letter words: at least one token each.
        assert_eq!(estimate_tokens("a b c d e f g h"), 8);
        assert!(estimate_tokens(&"word ".repeat(100)) >= 100);
    }
}
