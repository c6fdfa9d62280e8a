#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hostile input never escapes its limits: damaged PDFs (made here from the real fixture: flipped
//! bytes, truncations, junk in the content stream and among the objects, reference cycles, deep
//! nesting, a decompression bomb) never panic the loader and never grow its memory without bound;
//! legacy encodings load and binaries are refused; folder walks read each file once.

use std::io::{Read, Write};
use std::path::Path;

use troupe_docs::{ChunkOptions, Corpus, DocError, IgnoreReason, LoadOptions};

fn fixture() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/CC0-1.0.pdf")).unwrap()
}

/// A small deterministic generator (xorshift), so every run makes the same damaged files.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = find(data, from)
        .unwrap_or_else(|| panic!("{:?} not in the fixture", String::from_utf8_lossy(from)));
    fix_xref(&[&data[..at], to, &data[at + from.len()..]].concat())
}

/// The fixture's first content stream: where its compressed bytes are, and them inflated.
fn content_stream(pdf: &[u8]) -> (usize, usize, Vec<u8>) {
    let start = find(pdf, b"stream\n").unwrap() + b"stream\n".len();
    let end = start + find(&pdf[start..], b"endstream").unwrap();
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&pdf[start..end])
        .read_to_end(&mut raw)
        .unwrap();
    (start, end, raw)
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(data).unwrap();
    let mut out = z.finish().unwrap();
    out.push(b'\n');
    out
}

/// A structural edit moves the objects: give the edited file a fresh cross-reference table, so
/// the reader gets past it to the damage (without one, every such file fails at the trailer).
fn fix_xref(pdf: &[u8]) -> Vec<u8> {
    let body = &pdf[..find(pdf, b"\nxref\n").map_or(pdf.len(), |x| x + 1)];
    let mut offsets = std::collections::BTreeMap::new();
    let mut at = 0;
    while let Some(i) = find(&body[at..], b" 0 obj") {
        let end = at + i;
        let start = body[..end]
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |p| p + 1);
        if let Ok(n) = std::str::from_utf8(&body[start..end])
            .unwrap_or("")
            .parse::<usize>()
        {
            offsets.entry(n).or_insert(start);
        }
        at = end + 6;
    }
    let size = offsets.keys().max().map_or(1, |m| m + 1);
    let mut table = format!("xref\n0 {size}\n");
    for n in 0..size {
        match offsets.get(&n) {
            Some(o) => table.push_str(&format!("{o:010} 00000 n \n")),
            None => table.push_str("0000000000 65535 f \n"),
        }
    }
    table.push_str(&format!(
        "trailer\n<<\n/Size {size}\n/Root 2 0 R\n/Info 10 0 R\n>>\nstartxref\n{}\n%%EOF\n",
        body.len()
    ));
    [body, table.as_bytes()].concat()
}

/// 130 damaged copies of the fixture, each with a name that says what was done to it.
fn damaged_pdfs() -> Vec<(String, Vec<u8>)> {
    let pdf = fixture();
    let mut rng = Rng(0x7e5_0dd5);
    let mut out = Vec::new();
    for i in 0..45 {
        let mut b = pdf.clone();
        for _ in 0..=(i % 8) {
            let at = rng.below(b.len());
            b[at] ^= 1 << rng.below(8);
        }
        out.push((format!("flip-{i:02}.pdf"), b));
    }
    for i in 0..45 {
        out.push((
            format!("cut-{i:02}.pdf"),
            pdf[..pdf.len() * i / 45].to_vec(),
        ));
    }
    let (start, end, raw) = content_stream(&pdf);
    let with_content = |content: &[u8]| {
        let z = deflate(content);
        let head = String::from_utf8_lossy(&pdf[..start])
            .replace("/Length 2777", &format!("/Length {}", z.len() - 1));
        fix_xref(&[head.as_bytes(), &z, &pdf[end..]].concat())
    };
    for i in 0..20 {
        let mut r = raw.clone();
        let at = rng.below(r.len());
        let junk: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
        r.splice(at..at, junk);
        out.push((format!("junk-content-{i:02}.pdf"), with_content(&r)));
    }
    for i in 0..8 {
        let at = rng.below(pdf.len());
        let junk = b"\n99 0 obj\n<< /Type /Page /Parent 99 0 R /Contents 99 0 R /Kids [99 0 R] >>\nendobj\n";
        out.push((
            format!("junk-object-{i}.pdf"),
            [&pdf[..at], &junk[..], &pdf[at..]].concat(),
        ));
    }
    out.push((
        "cycle-kids.pdf".into(),
        replace(&pdf, b"/Kids [3 0 R", b"/Kids [1 0 R"),
    ));
    out.push((
        "cycle-parent.pdf".into(),
        replace(&pdf, b"/Parent 1 0 R", b"/Parent 3 0 R"),
    ));
    out.push((
        "cycle-contents.pdf".into(),
        replace(&pdf, b"/Contents 4 0 R", b"/Contents 3 0 R"),
    ));
    out.push((
        "huge-length.pdf".into(),
        replace(&pdf, b"/Length 2777", b"/Length 99999999999"),
    ));
    out.push((
        "huge-count.pdf".into(),
        replace(&pdf, b"/Count 2", b"/Count 2000000000"),
    ));
    let deep = |open: &str, close: &str, n: usize| format!("{}{}", open.repeat(n), close.repeat(n));
    out.push((
        "deep-array.pdf".into(),
        replace(
            &pdf,
            b"/MediaBox [0 0 595.28 841.89]",
            format!("/MediaBox {}", deep("[", "]", 100_000)).as_bytes(),
        ),
    ));
    out.push((
        "deep-dict.pdf".into(),
        replace(
            &pdf,
            b"/Type /Catalog",
            format!("/Type /Catalog /X {}", deep("<< /A ", ">>", 50_000)).as_bytes(),
        ),
    ));
    out.push((
        "deep-content-q.pdf".into(),
        with_content(&[b"q ".repeat(200_000), raw.clone()].concat()),
    ));
    out.push((
        "deep-content-array.pdf".into(),
        with_content(&[b"[".repeat(200_000), raw.clone()].concat()),
    ));
    // 5 KB that inflate to 100 MB of no-op text moves.
    out.push((
        "bomb.pdf".into(),
        with_content(&[raw.clone(), b"0 0 Td ".repeat(15_000_000)].concat()),
    ));
    out
}

/// The process's peak resident memory so far, in KiB (Linux), if known.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn damaged_pdfs_are_rejected_with_reasons_or_load_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let damaged = damaged_pdfs();
    assert!(damaged.len() >= 100);
    // HOSTILE_PDFS=DIR keeps a copy of the damaged files there (to try other readers on them).
    let keep = std::env::var_os("HOSTILE_PDFS").map(std::path::PathBuf::from);
    for (name, bytes) in &damaged {
        std::fs::write(dir.path().join(name), bytes).unwrap();
        if let Some(keep) = &keep {
            std::fs::create_dir_all(keep).unwrap();
            std::fs::write(keep.join(name), bytes).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("zz-good.txt"),
        "A readable document after the damaged ones.\n",
    )
    .unwrap();
    let options = LoadOptions {
        skip_unreadable: true,
        pdf_timeout: std::time::Duration::from_secs(20),
        ..LoadOptions::default()
    };
    // A panic that escaped would fail this test; one printed by the default hook would show in
    // its output (the extractor's are caught and kept quiet, see the quiet-panic test).
    let (corpus, report) =
        Corpus::load(&[".".into()], dir.path(), &options, ChunkOptions::default()).unwrap();
    let loaded: Vec<&str> = corpus.document_ids().collect();
    assert!(
        loaded.contains(&"zz-good.txt"),
        "the load went on past the damaged files"
    );
    assert_eq!(loaded.len() + report.skipped.len(), damaged.len() + 1);
    for doc in corpus.documents() {
        assert!(
            !doc.text.trim().is_empty(),
            "{} loaded without text",
            doc.id
        );
    }
    let mut panics = 0;
    let mut timeouts = 0;
    for problem in &report.skipped {
        let name = problem.path.file_name().unwrap().to_string_lossy();
        assert!(problem.path.starts_with(dir.path()), "{problem}");
        assert!(!problem.hint.is_empty(), "{problem}");
        let reason = &problem.reason;
        assert!(
            reason.starts_with("not a readable PDF")
                || reason.starts_with("damaged PDF")
                || reason.starts_with("no text in the file"),
            "{name}: {reason}"
        );
        panics += usize::from(reason.contains("gave up on"));
        timeouts += usize::from(reason.contains("did not finish"));
    }
    eprintln!(
        "damaged PDFs: {} loaded, {} rejected ({panics} caught panics, {timeouts} timeouts); peak RSS {:?} KiB",
        loaded.len() - 1,
        report.skipped.len(),
        peak_rss_kib()
    );
    // The extractor runs each file on its own thread; a damaged file must not make it hold more
    // than a generous bound (the test binary itself is a few MiB, the bomb inflates to ~100 MB).
    if let Some(kib) = peak_rss_kib() {
        assert!(kib < 1536 * 1024, "peak RSS {kib} KiB");
    }

    // Without skip_unreadable the first damaged file fails the load with its name and a hint.
    let err = Corpus::load(
        &[".".into()],
        dir.path(),
        &LoadOptions {
            pdf_timeout: std::time::Duration::from_secs(20),
            ..LoadOptions::default()
        },
        ChunkOptions::default(),
    )
    .unwrap_err();
    let DocError::Unreadable(problems) = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), report.skipped.len());
    assert!(err.to_string().contains("hint: "));
}

#[test]
fn a_panicking_extractor_is_reported_not_printed() {
    // A cut that the extractor is known to panic on (found by the test above); whatever it does
    // now, the load returns.
    let dir = tempfile::tempdir().unwrap();
    let pdf = fixture();
    for n in [100usize, 700, 1500, 2900, 4000, 5000] {
        std::fs::write(dir.path().join(format!("cut-{n}.pdf")), &pdf[..n]).unwrap();
    }
    std::fs::write(dir.path().join("ok.pdf"), &pdf).unwrap();
    let options = LoadOptions {
        skip_unreadable: true,
        ..LoadOptions::default()
    };
    let (corpus, report) =
        Corpus::load(&[".".into()], dir.path(), &options, ChunkOptions::default()).unwrap();
    assert_eq!(corpus.document_ids().collect::<Vec<_>>(), ["ok.pdf"]);
    assert_eq!(report.skipped.len(), 6, "{:?}", report.skipped);
}

#[test]
fn an_oversized_file_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.txt");
    // Sparse: 2 GiB on paper, nothing on disk.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    std::fs::write(dir.path().join("small.txt"), "Small.\n").unwrap();
    let err = Corpus::load(
        &[".".into()],
        dir.path(),
        &LoadOptions::default(),
        ChunkOptions::default(),
    )
    .unwrap_err();
    let DocError::Unreadable(problems) = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, big);
    assert!(
        problems[0].reason.starts_with("too large: 2048.0 MiB"),
        "{}",
        problems[0].reason
    );
    assert!(problems[0].hint.contains("max_file_bytes"));
    let small = LoadOptions {
        skip_unreadable: true,
        max_file_bytes: 4,
        ..LoadOptions::default()
    };
    let only_big = Corpus::load(
        &["small.txt".into()],
        dir.path(),
        &small,
        ChunkOptions::default(),
    );
    assert!(matches!(only_big, Err(DocError::Empty(_))), "{only_big:?}");
}

fn load_dir(dir: &Path, specs: &[&str]) -> (Corpus, troupe_docs::LoadReport) {
    let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
    Corpus::load(
        &specs,
        dir,
        &LoadOptions::default(),
        ChunkOptions::default(),
    )
    .unwrap()
}

#[test]
fn legacy_encodings_are_detected_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Windows-1252: “smart quotes”, the euro sign, é.
    let cp1252 = b"\x93Quoted\x94 prices are in \x80: the caf\xe9 charges \x8010 for a cr\xe8me br\xfbl\xe9e.\n".to_vec();
    std::fs::write(d.join("cp1252.txt"), &cp1252).unwrap();
    // Latin-1 (no 0x80-0x9f bytes).
    std::fs::write(
        d.join("latin1.md"),
        b"# R\xe9sum\xe9\n\nNa\xefve fa\xe7ade, \xbd price, se\xf1or.\n",
    )
    .unwrap();
    // UTF-16 LE with a byte-order mark.
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(
            "Grüße aus Köln — “UTF-16”.\n"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    std::fs::write(d.join("utf16.txt"), &utf16).unwrap();
    // UTF-8 with a BOM, and plain UTF-8.
    std::fs::write(
        d.join("bom.txt"),
        "\u{feff}Plain UTF-8 with a BOM, naïve.\n",
    )
    .unwrap();
    std::fs::write(d.join("plain.txt"), "Plain UTF-8, naïve.\n").unwrap();
    // HTML whose meta charset names the encoding (bytes are ISO-8859-2: "Łódź" = a3 f3 64 bc).
    std::fs::write(
        d.join("page.html"),
        b"<html><head><meta charset=\"iso-8859-2\"><title>\xa3\xf3d\xbc</title></head><body><p>Miasto \xa3\xf3d\xbc.</p></body></html>",
    )
    .unwrap();
    let (corpus, report) = load_dir(d, &["."]);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let doc = |id: &str| corpus.document(id).unwrap();
    assert_eq!(
        doc("cp1252.txt").text,
        "“Quoted” prices are in €: the café charges €10 for a crème brûlée.\n"
    );
    assert_eq!(doc("cp1252.txt").encoding, Some("windows-1252"));
    // Latin-1 is decoded as its WHATWG superset windows-1252: the same characters.
    assert_eq!(
        doc("latin1.md").text,
        "# Résumé\n\nNaïve façade, ½ price, señor.\n"
    );
    assert_eq!(doc("latin1.md").title.as_deref(), Some("Résumé"));
    assert_eq!(doc("latin1.md").encoding, Some("windows-1252"));
    assert_eq!(doc("utf16.txt").text, "Grüße aus Köln — “UTF-16”.\n");
    assert_eq!(doc("utf16.txt").encoding, Some("UTF-16LE"));
    assert_eq!(doc("bom.txt").text, "Plain UTF-8 with a BOM, naïve.\n");
    assert_eq!(doc("bom.txt").encoding, Some("UTF-8"));
    assert_eq!(doc("plain.txt").encoding, Some("UTF-8"));
    assert_eq!(doc("page.html").encoding, Some("ISO-8859-2"));
    assert_eq!(doc("page.html").title.as_deref(), Some("Łódź"));
    assert!(
        doc("page.html").text.contains("Miasto Łódź."),
        "{}",
        doc("page.html").text
    );
    let info = corpus.info(doc("cp1252.txt"));
    assert_eq!(info.encoding, Some("windows-1252"));
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["encoding"], "windows-1252");
}

#[test]
fn binary_files_named_as_text_are_refused_as_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A real PNG: 1x1 pixel, made here (signature, IHDR, IDAT, IEND; CRCs are not checked).
    let png = [
        &b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89"[..],
        &b"\0\0\0\nIDATx\x9cc\0\x01\0\0\x05\0\x01\r\n-\xb4\0\0\0\0IEND\xaeB`\x82"[..],
    ]
    .concat();
    std::fs::write(d.join("image.txt"), &png).unwrap();
    // A real ZIP (made by the test's own zlib-free writer is overkill: a stored empty archive).
    std::fs::write(
        d.join("archive.md"),
        b"PK\x03\x04\x14\0\0\0\0\0\0\0!\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0a",
    )
    .unwrap();
    // This test binary itself: an ELF (or other executable) renamed .txt.
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    std::fs::write(d.join("program.txt"), &exe[..exe.len().min(64 * 1024)]).unwrap();
    std::fs::write(
        d.join("controls.html"),
        [1u8, 2, 3, 4, 5, 6, 7, 8, b'<', b'p', b'>', 14, 15, 16],
    )
    .unwrap();
    let err = Corpus::load(
        &[".".into()],
        d,
        &LoadOptions::default(),
        ChunkOptions::default(),
    )
    .unwrap_err();
    let DocError::Unreadable(problems) = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 4, "{err}");
    for p in problems {
        assert!(
            p.reason.starts_with("this looks like a binary file ("),
            "{p}"
        );
        assert!(
            p.hint.contains("Troupe reads text, Markdown, HTML and PDF"),
            "{p}"
        );
        assert!(!p.hint.contains("iconv"), "{p}");
    }
}

#[cfg(unix)]
#[test]
fn folder_walks_read_each_file_once_and_list_what_they_leave_out() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("docs/sub")).unwrap();
    std::fs::write(d.join("docs/a.txt"), "Alpha document.\n").unwrap();
    std::fs::write(d.join("docs/sub/b.txt"), "Beta document.\n").unwrap();
    std::fs::write(d.join("docs/report [draft].txt"), "Draft report.\n").unwrap();
    // A loop: docs/sub/up -> docs.
    symlink(d.join("docs"), d.join("docs/sub/up")).unwrap();
    // Two links to one file, and a link to a file outside.
    symlink(d.join("docs/a.txt"), d.join("docs/link1.txt")).unwrap();
    symlink("a.txt", d.join("docs/link2.txt")).unwrap();
    std::fs::write(d.join("outside.txt"), "Outside document.\n").unwrap();
    symlink(d.join("outside.txt"), d.join("docs/outside-link.txt")).unwrap();
    // A link to a folder already walked.
    symlink(d.join("docs/sub"), d.join("docs/sub-again")).unwrap();
    // Hidden file and folder.
    std::fs::write(d.join("docs/.env"), "SECRET=1\n").unwrap();
    std::fs::create_dir(d.join("docs/.git")).unwrap();
    std::fs::write(d.join("docs/.git/config"), "[core]\n").unwrap();

    let (corpus, report) = load_dir(d, &["docs"]);
    let ids: Vec<&str> = corpus.document_ids().collect();
    assert_eq!(
        ids,
        [
            "a.txt",
            "outside-link.txt",
            "report [draft].txt",
            "sub/b.txt"
        ]
    );
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let mut ignored: Vec<(String, String)> = report
        .ignored
        .iter()
        .map(|i| {
            let rel = i
                .path
                .strip_prefix(d)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let why = match &i.why {
                IgnoreReason::Hidden => "hidden".to_string(),
                IgnoreReason::Loop { ancestor } => {
                    format!("loop to {}", ancestor.strip_prefix(d).unwrap().display())
                }
                IgnoreReason::Duplicate { of } => {
                    format!("same as {}", of.strip_prefix(d).unwrap().display())
                }
            };
            (rel, why)
        })
        .collect();
    ignored.sort();
    let want: Vec<(String, String)> = [
        ("docs/.env", "hidden"),
        ("docs/.git", "hidden"),
        ("docs/link1.txt", "same as docs/a.txt"),
        ("docs/link2.txt", "same as docs/a.txt"),
        ("docs/sub-again/b.txt", "same as docs/sub/b.txt"),
        ("docs/sub-again/up", "loop to docs"),
        ("docs/sub/up", "loop to docs"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(ignored, want);
    let text = report
        .ignored
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("hidden, not read"), "{text}");
    assert!(text.contains("symbolic link loop back to"), "{text}");

    // The same files again: the same ids (stable across loads).
    let (again, _) = load_dir(d, &["docs"]);
    assert_eq!(again.document_ids().collect::<Vec<_>>(), ids);

    // A `[`-named file as a spec, a folder given twice, and a glob under a `[`-named folder.
    let (corpus, report) = load_dir(d, &["docs/report [draft].txt", "docs", "docs/a.txt"]);
    assert_eq!(
        corpus.document_ids().collect::<Vec<_>>(),
        [
            "report [draft].txt",
            "a.txt",
            "outside-link.txt",
            "sub/b.txt"
        ]
    );
    assert!(
        report
            .ignored
            .iter()
            .any(|i| i.path == d.join("docs/a.txt"))
    );
    std::fs::create_dir(d.join("team [2024]")).unwrap();
    std::fs::write(d.join("team [2024]/notes.md"), "# Notes\n\nTeam notes.\n").unwrap();
    std::fs::write(d.join("team [2024]/skip.txt"), "Not markdown.\n").unwrap();
    let (corpus, _) = load_dir(d, &["team [2024]/*.md"]);
    assert_eq!(corpus.document_ids().collect::<Vec<_>>(), ["notes.md"]);
    // And a glob with ** through the loop ends.
    let (corpus, _) = load_dir(d, &["docs/**/*.txt"]);
    assert_eq!(
        corpus.document_ids().collect::<Vec<_>>(),
        [
            "a.txt",
            "outside-link.txt",
            "report [draft].txt",
            "sub/b.txt"
        ]
    );
}
