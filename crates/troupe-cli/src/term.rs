//! Everything the CLI writes to the terminal goes through here: text is cleaned of control
//! characters first (a model, a reviewer, a document or a plugin could otherwise send escape
//! sequences that rewrite the screen, set the window title or hide lines), and a closed pipe
//! (`troupe schema | head`) ends the output quietly instead of panicking.

use std::borrow::Cow;
use std::io::Write;

/// `text` without control characters (C0 except newline and tab, DEL, C1 — so no ESC, no CSI, no
/// OSC, no carriage return that overwrites a line) and without the bidirectional overrides that
/// make text display in another order than it reads ("Trojan Source").
pub fn clean(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().filter(|&c| !unsafe_char(c)).collect())
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}')
}

/// Writes `text` (cleaned) and a newline to stderr. A closed stderr is not an error of the run.
pub fn err_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", clean(text));
}

/// Writes `text` (cleaned) to stdout. `false` when stdout is closed (a pipe whose reader went
/// away): the caller stops writing and exits normally.
pub fn out(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(clean(text).as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

/// [`out`] with a newline.
pub fn out_line(text: &str) -> bool {
    out(&format!("{text}\n"))
}

/// Writes raw machine-readable output (JSON lines, whose strings already escape control
/// characters) to stdout; `false` when stdout is closed.
pub fn out_raw(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_overrides_are_removed() {
        let hostile = "ok\u{1b}[2J\u{1b}]0;pwned\u{7} done\r\u{9b}31m\u{202e}txt.exe\nnext\tline";
        assert_eq!(clean(hostile), "ok[2J]0;pwned done31mtxt.exe\nnext\tline");
        assert!(matches!(clean("plain ✓ text"), Cow::Borrowed(_)));
    }
}
