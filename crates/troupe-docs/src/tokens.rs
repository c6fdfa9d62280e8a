//! Token estimates for budgeting prompts and sizing chunks, without a model's tokenizer.
//!
//! One pass over the characters, each weighed by its script: a budget is only as good as its
//! worst script. A flat "3.5 characters per token" holds for English but lets a Chinese prompt
//! out at about twice, and a Hindi one at more than three times, the window of a GPT-4 era
//! vocabulary, whose tokens are mostly one character or less in those scripts.
//!
//! The weights are the most tokens per character seen in three real vocabularies — Gemma 3
//! (262k, the default local model), OpenAI `o200k_base` and `cl100k_base` — over samples of 14
//! scripts and kinds of text, with a margin of at least 3 %. `tests/token_estimates.rs` of
//! `troupe-runtime` checks them against Gemma's own tokenizer; the figures per script are in
//! that test's output. The price is an over-estimate for the efficient vocabularies (English
//! ~1.5×, Chinese ~1.9× of Gemma's count), which leaves room unused but never sends a request
//! over the window.

/// Weights in hundredths of a token per character.
mod weight {
    /// ASCII letters in a word without digits: English runs at ~4.2 characters per token.
    pub const LETTER: u64 = 30;
    /// Digits, and letters in a word that has digits (ids, hashes, IBANs): Gemma splits every
    /// digit, and mixed words break into short pieces in every vocabulary.
    pub const DIGIT: u64 = 100;
    /// A space before a word merges into that word's first token.
    pub const SPACE: u64 = 25;
    /// A space before a digit or a non-ASCII character is often a token of its own.
    pub const SPACE_ALONE: u64 = 100;
    /// ASCII punctuation (JSON and code are dense with it).
    pub const PUNCT: u64 = 50;
    /// Punctuation next to a digit (`2025-03-01`, `12.50`) is a token of its own.
    pub const PUNCT_ALONE: u64 = 100;
    /// Latin letters with diacritics (é, ß, ư), combining marks.
    pub const LATIN_EXTENDED: u64 = 150;
    pub const CYRILLIC: u64 = 40;
    pub const ARABIC: u64 = 70;
    pub const GREEK: u64 = 95;
    pub const HEBREW: u64 = 105;
    /// Devanagari, Bengali, Tamil, … (`cl100k_base`: about one token per character).
    pub const INDIC: u64 = 105;
    /// Thai, Lao, Tibetan, Myanmar, Khmer.
    pub const SOUTHEAST_ASIAN: u64 = 100;
    pub const HANGUL: u64 = 90;
    /// Han ideographs, kana, CJK punctuation and full-width forms.
    pub const CJK: u64 = 115;
    /// Outside the Basic Multilingual Plane: emoji, rare ideographs (4 UTF-8 bytes each).
    pub const ASTRAL: u64 = 300;
    /// Anything else: symbols, arrows, box drawing, emoji modifiers, other scripts.
    pub const OTHER: u64 = 150;
}

/// The weight of a character that is not ASCII.
fn non_ascii(c: char) -> u64 {
    use weight::*;
    match u32::from(c) {
        0x0080..=0x024F | 0x0300..=0x036F | 0x1E00..=0x1EFF => LATIN_EXTENDED,
        0x0370..=0x03FF | 0x1F00..=0x1FFF => GREEK,
        0x0400..=0x052F => CYRILLIC,
        0x0590..=0x05FF => HEBREW,
        0x0600..=0x06FF | 0x0750..=0x077F | 0x08A0..=0x08FF => ARABIC,
        0x0900..=0x0DFF => INDIC,
        0x0E00..=0x0FFF | 0x1000..=0x109F | 0x1780..=0x17FF => SOUTHEAST_ASIAN,
        0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF => HANGUL,
        0x2E80..=0x9FFF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF => CJK,
        0x10000.. => ASTRAL,
        _ => OTHER,
    }
}

/// A conservative estimate of how many tokens `text` takes in a typical BPE/SentencePiece
/// vocabulary (GPT, Llama, Gemma), in every script: see the module documentation for the
/// weights and where they come from. Never less than the number of words. Linear in the text,
/// with no allocation: it runs on every prompt.
pub fn estimate_tokens(text: &str) -> usize {
    let mut total: u64 = 0;
    // The current run of ASCII letters and digits: its letters weigh more when it has a digit.
    let (mut run_letters, mut run_has_digit) = (0u64, false);
    let mut prev_digit = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let next_digit = next.is_some_and(|n| n.is_ascii_digit());
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_digit() {
                total += weight::DIGIT;
                run_has_digit = true;
            } else {
                run_letters += 1;
            }
        } else {
            total += run_letters
                * if run_has_digit {
                    weight::DIGIT
                } else {
                    weight::LETTER
                };
            (run_letters, run_has_digit) = (0, false);
            total += if c.is_ascii_whitespace() {
                if next_digit || next.is_some_and(|n| !n.is_ascii()) {
                    weight::SPACE_ALONE
                } else {
                    weight::SPACE
                }
            } else if c.is_ascii() {
                if prev_digit || next_digit {
                    weight::PUNCT_ALONE
                } else {
                    weight::PUNCT
                }
            } else {
                non_ascii(c)
            };
        }
        prev_digit = c.is_ascii_digit();
    }
    total += run_letters
        * if run_has_digit {
            weight::DIGIT
        } else {
            weight::LETTER
        };
    let by_chars = usize::try_from(total.div_ceil(100)).unwrap_or(usize::MAX);
    by_chars.max(text.split_whitespace().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_grow_with_text_and_cover_words() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcdefg"), 3);
        // Many one-letter words: at least one token each.
        assert_eq!(estimate_tokens("a b c d e f g h"), 8);
        assert!(estimate_tokens(&"word ".repeat(100)) >= 100);
    }

    #[test]
    fn dense_scripts_cost_about_a_token_a_character() {
        // 16 Han characters and a full stop.
        let zh = "本政策自二〇二五年三月一日起施行。";
        assert_eq!(zh.chars().count(), 17);
        assert!(estimate_tokens(zh) >= 17, "{}", estimate_tokens(zh));
        let th = "ข้อมูลส่วนบุคคล";
        assert!(estimate_tokens(th) >= th.chars().count());
        // The same length of English costs far less.
        let en = "The policy applies";
        assert!(estimate_tokens(en) * 2 < estimate_tokens(zh));
    }

    #[test]
    fn digits_and_the_punctuation_between_them_count_one_each() {
        // 8 digits, 2 hyphens next to digits.
        assert_eq!(estimate_tokens("2025-03-01"), 10);
        // A hash: its letters are digit-like.
        assert_eq!(estimate_tokens("7f3a9c2e"), 8);
    }
}
