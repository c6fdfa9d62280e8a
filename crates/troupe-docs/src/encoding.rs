//! Turning a text file's bytes into a string: a byte-order mark wins, then UTF-8 if the bytes are
//! valid UTF-8, then (HTML) a `<meta charset>` label, then a guess (chardetng, the detector
//! Firefox uses for unlabelled pages). Binary files are refused before any of that.

use encoding_rs::Encoding;

/// Bytes looked at to decide whether a file is binary, and for a `<meta charset>`.
const SNIFF_BYTES: usize = 8192;

/// Why bytes are not decoded as text: they look like a binary file (what gave it away).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary(pub String);

/// Decodes a text file (`html`: look for a `<meta charset>` too). Returns the text and the name
/// of the encoding used, as the WHATWG Encoding Standard spells it (`UTF-8`, `UTF-16LE`,
/// `windows-1252`, `Shift_JIS`…).
pub fn decode(bytes: &[u8], html: bool) -> Result<(String, &'static str), Binary> {
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
        return Ok((text.into_owned(), encoding.name()));
    }
    if let Some(why) = binary(bytes) {
        return Err(Binary(why));
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok((text.to_string(), encoding_rs::UTF_8.name()));
    }
    let labelled = if html { meta_charset(bytes) } else { None };
    // A page labelled UTF-8 whose bytes are not is mislabelled: guess instead.
    let encoding = match labelled {
        Some(e) if e != encoding_rs::UTF_8 => e,
        _ => {
            let mut detector =
                chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
            detector.feed(bytes, true);
            detector.guess(None, chardetng::Utf8Detection::Allow)
        }
    };
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    Ok((text.into_owned(), encoding.name()))
}

/// Why the bytes look like a binary file, if they do: a known file signature, NUL bytes, or many
/// control characters in the first [`SNIFF_BYTES`].
fn binary(bytes: &[u8]) -> Option<String> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF87a", "a GIF image"),
        (b"GIF89a", "a GIF image"),
        (
            b"PK\x03\x04",
            "a ZIP archive (also .docx, .xlsx, .odt, .jar)",
        ),
        (b"\x7fELF", "an ELF executable"),
        (b"MZ", "a Windows executable"),
        (b"%PDF-", "a PDF; name it .pdf"),
        (b"\x1f\x8b", "gzip-compressed"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
            "an old Office document (.doc, .xls)",
        ),
        (b"SQLite format 3\0", "an SQLite database"),
        (b"\xca\xfe\xba\xbe", "a Java class or Mach-O file"),
        (b"\0asm", "a WebAssembly module"),
    ];
    if let Some((_, what)) = SIGNATURES
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
    {
        // "MZ" and gzip's two bytes begin some texts too; believe them only with a NUL nearby.
        let short = what.starts_with("a Windows") || what.starts_with("gzip");
        if !short || bytes.iter().take(SNIFF_BYTES).any(|&b| b == 0) {
            return Some(format!("it starts like {what}"));
        }
    }
    let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
    if let Some(at) = head.iter().position(|&b| b == 0) {
        return Some(format!("NUL byte at offset {at}"));
    }
    let controls = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b))
        .count();
    // More than one byte in ten a control character: no text encoding looks like that.
    if !head.is_empty() && controls * 10 > head.len() {
        return Some(format!(
            "{controls} control characters in its first {} bytes",
            head.len()
        ));
    }
    None
}

/// The encoding named by a `<meta charset="…">` or `<meta http-equiv="Content-Type"
/// content="…; charset=…">` near the top of an HTML file.
fn meta_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let mut from = 0;
    while let Some(at) = find(&lower[from..], b"<meta") {
        let start = from + at;
        let end = find(&lower[start..], b">").map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(c) = find(tag, b"charset") {
            let rest = &tag[c + b"charset".len()..];
            let rest = rest.trim_ascii_start();
            if let Some(value) = rest.strip_prefix(b"=") {
                let value = value.trim_ascii_start();
                let value = value.strip_prefix(b"\"").unwrap_or(value);
                let value = value.strip_prefix(b"'").unwrap_or(value);
                let label_end = value
                    .iter()
                    .position(|b| {
                        matches!(b, b'"' | b'\'' | b';' | b'/') || b.is_ascii_whitespace()
                    })
                    .unwrap_or(value.len());
                if let Some(encoding) = Encoding::for_label(&value[..label_end]) {
                    // A page that says UTF-16 in ASCII bytes is not UTF-16 (HTML's rule).
                    return Some(
                        if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
                            encoding_rs::UTF_8
                        } else {
                            encoding
                        },
                    );
                }
            }
        }
        from = end;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_charset_is_found_in_both_spellings() {
        let a = b"<html><head><META charset='ISO-8859-2'></head>";
        assert_eq!(meta_charset(a), Some(encoding_rs::ISO_8859_2));
        let b = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1251\">";
        assert_eq!(meta_charset(b), Some(encoding_rs::WINDOWS_1251));
        assert_eq!(meta_charset(b"<meta name=x content=y>"), None);
    }

    #[test]
    fn binaries_are_told_apart_from_text() {
        assert!(binary(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").is_some());
        assert!(binary(b"\x7fELF\x02\x01\x01\0").is_some());
        assert!(binary(b"MZ is a fine start for a sentence.").is_none());
        assert!(binary("caf\u{e9} au lait\r\n\x0cpage two".as_bytes()).is_none());
        assert!(binary(&[1, 2, 3, 4, 5, b'a', b'b']).is_some());
    }
}
