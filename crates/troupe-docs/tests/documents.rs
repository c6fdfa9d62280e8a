#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Loading every format from real files, stable chunk ids, search on a known corpus, citation
//! checks, and unreadable files reported with their reason.

use std::path::{Path, PathBuf};

use troupe_docs::{ChunkOptions, CitationCheck, Corpus, DocError, Format, LoadOptions};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(specs: &[&str], base: &Path) -> Corpus {
    let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
    let (corpus, report) = Corpus::load(
        &specs,
        base,
        &LoadOptions::default(),
        ChunkOptions::default(),
    )
    .unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    corpus
}

fn licences() -> Corpus {
    load(&["examples/documents/licenses"], &repo())
}

#[test]
fn every_format_is_read_as_text() {
    let corpus = load(&["."], &fixtures());
    let ids: Vec<&str> = corpus.document_ids().collect();
    assert_eq!(
        ids,
        ["CC0-1.0.pdf", "acceptable-use.html", "retention-policy.md"]
    );

    // A PDF made by a PDF library (fpdf2, see scripts/make-pdf.py), not hand-written bytes.
    let pdf = corpus.document("CC0-1.0.pdf").unwrap();
    assert_eq!(pdf.format, Format::Pdf);
    let flat = troupe_docs::normalise(&pdf.text);
    assert!(
        flat.contains("creative commons corporation is not a law firm"),
        "{flat}"
    );
    assert!(flat.contains("waiver"));

    let html = corpus.document("acceptable-use.html").unwrap();
    assert_eq!(html.format, Format::Html);
    assert_eq!(
        html.title.as_deref(),
        Some("Acceptable Use Policy | Northwind Analytics")
    );
    assert!(
        html.text
            .contains("Customers must not use the Service to send unsolicited bulk email.")
    );
    assert!(html.text.contains("Suspension of the account for 30 days"));
    assert!(
        !html.text.contains("window.analytics"),
        "scripts are not text: {}",
        html.text
    );
    assert!(!html.text.contains("font-family"), "styles are not text");

    let md = corpus.document("retention-policy.md").unwrap();
    assert_eq!(md.format, Format::Markdown);
    assert_eq!(md.title.as_deref(), Some("Data Retention Policy"));
    assert!(
        md.text
            .contains("Customer records are kept for **six years**")
    );

    let info = corpus.info(md);
    assert_eq!(info.chunks, 1);
    assert_eq!(
        info.first_chunk,
        format!("retention-policy.md:0-{}", md.text.trim_end().len())
    );
    assert!(info.lines >= 20, "{info:?}");
}

#[test]
fn chunk_ids_are_spans_and_stable_across_loads() {
    let a = licences();
    let b = licences();
    let ids = |c: &Corpus| c.chunks().iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert!(a.chunks().len() > 15, "{} chunks", a.chunks().len());

    let apache = a.document("Apache-2.0.txt").unwrap();
    let chunks = a.chunks_of(apache);
    assert!(chunks.len() > 5);
    for chunk in chunks {
        assert_eq!(
            chunk.id,
            format!("Apache-2.0.txt:{}-{}", chunk.start, chunk.end)
        );
        assert!(chunk.end <= apache.text.len());
        assert!(
            troupe_docs::estimate_tokens(a.chunk_text(chunk)) <= ChunkOptions::default().tokens
        );
        assert_eq!(
            a.chunk(&chunk.id).map(|c| (c.start, c.end)),
            Some((chunk.start, chunk.end))
        );
    }
    // Chunks overlap, so a sentence cut at a boundary is whole in one of them.
    // No text falls between two chunks, and where a boundary falls inside a paragraph the chunks
    // overlap, so a sentence cut there is whole in one of them.
    for w in chunks.windows(2) {
        let gap = apache.text.get(w[0].end..w[1].start).unwrap_or("");
        assert!(gap.trim().is_empty(), "gap {gap:?}");
    }
    assert!(chunks.windows(2).any(|w| w[1].start < w[0].end));
    assert_eq!(
        a.location(&chunks[0]).split_whitespace().next(),
        Some("lines")
    );
}

#[test]
fn search_finds_the_expected_passages() {
    let corpus = licences();
    let top = |q: &str| corpus.search(q, 3, None).unwrap();

    let hits = top("patent license infringement litigation");
    assert_eq!(hits[0].document, "Apache-2.0.txt", "{hits:?}");
    assert!(
        corpus
            .chunk_text(corpus.chunk(&hits[0].chunk).unwrap())
            .contains("Grant of Patent License")
    );

    let hits = top("endorse or promote products derived from this software");
    assert_eq!(hits[0].document, "BSD-3-Clause.txt", "{hits:?}");
    assert!(
        hits[0].snippet.to_lowercase().contains("endorse"),
        "{}",
        hits[0].snippet
    );

    let hits = top("Larger Work combination with Secondary License");
    assert_eq!(hits[0].document, "MPL-2.0.txt", "{hits:?}");

    // Within one document only.
    let hits = corpus
        .search("warranty", 10, Some("BSD-3-Clause.txt"))
        .unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.document == "BSD-3-Clause.txt"));

    // Query syntax that does not parse is read as words, not an error.
    assert!(
        !corpus
            .search("\"unbalanced (quote AND", 3, None)
            .unwrap()
            .is_empty()
    );
    assert!(corpus.search("zzzyzzx", 3, None).unwrap().is_empty());
}

#[test]
fn citations_are_checked_against_the_chunk_text() {
    let corpus = licences();
    let bsd = corpus.document("BSD-3-Clause.txt").unwrap();
    let chunk = corpus.chunks_of(bsd)[0].clone();
    let last = corpus.chunks_of(bsd).last().unwrap().clone();

    // Re-flowed whitespace, straightened quotes and case do not matter; words do.
    let check = corpus.check_citation(
        &chunk.id,
        "Redistributions of source code must retain the above\n   copyright notice",
    );
    assert!(check.is_verified(), "{check:?}");
    assert!(
        corpus
            .check_citation(&last.id, "PROVIDED BY THE REGENTS … \u{201c}AS IS\u{201d}")
            .is_verified()
    );

    let invented = corpus.check_citation(&chunk.id, "the licensee shall pay a royalty of 5%");
    assert!(
        matches!(invented, CitationCheck::NotInChunk { found_in: None, .. }),
        "{invented:?}"
    );
    let problem = invented
        .problem(&chunk.id, "the licensee shall pay a royalty of 5%")
        .unwrap();
    assert!(problem.contains("does not contain"), "{problem}");

    // A real quote attributed to the wrong chunk: the check says where it is.
    let apache_chunk = corpus.chunks_of(corpus.document("Apache-2.0.txt").unwrap())[0]
        .id
        .clone();
    let moved = corpus.check_citation(&apache_chunk, "Neither the name of the University");
    assert_eq!(
        moved,
        CitationCheck::NotInChunk {
            document: "Apache-2.0.txt".into(),
            lines: corpus.location(corpus.chunk(&apache_chunk).unwrap()),
            found_in: Some(chunk.id.clone()),
        }
    );

    let unknown = corpus.check_citation("BSD-3-Clause.txt:1-2", "copyright notice");
    assert!(
        matches!(unknown, CitationCheck::UnknownChunk { found_in: Some(_) }),
        "{unknown:?}"
    );
    assert_eq!(
        corpus.check_citation(&chunk.id, " \"\" "),
        CitationCheck::EmptyQuote
    );
}

#[test]
fn unreadable_files_fail_with_reasons_or_are_skipped_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.txt"),
        "A perfectly readable document.\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("broken.pdf"),
        b"%PDF-1.4 this is not really a pdf",
    )
    .unwrap();
    std::fs::write(dir.path().join("memo.docx"), b"PK\x03\x04").unwrap();
    std::fs::write(dir.path().join("latin1.txt"), b"caf\xe9\n").unwrap();
    std::fs::write(dir.path().join(".hidden.txt"), "not read").unwrap();
    let specs = vec![".".to_string()];

    let err = Corpus::load(
        &specs,
        dir.path(),
        &LoadOptions::default(),
        ChunkOptions::default(),
    )
    .unwrap_err();
    let DocError::Unreadable(problems) = &err else {
        panic!("{err}")
    };
    let names: Vec<String> = problems
        .iter()
        .map(|p| p.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["broken.pdf", "memo.docx"]);
    let message = err.to_string();
    assert!(
        message.contains("unsupported file type '.docx'"),
        "{message}"
    );
    assert!(message.contains("not a readable PDF"), "{message}");
    assert!(message.contains("hint: "), "{message}");

    let (corpus, report) = Corpus::load(
        &specs,
        dir.path(),
        &LoadOptions {
            skip_unreadable: true,
            ..LoadOptions::default()
        },
        ChunkOptions::default(),
    )
    .unwrap();
    assert_eq!(
        corpus.document_ids().collect::<Vec<_>>(),
        ["good.txt", "latin1.txt"]
    );
    assert_eq!(corpus.document("latin1.txt").unwrap().text, "café\n");
    assert_eq!(report.skipped.len(), 2);
    assert_eq!(report.ignored.len(), 1, "{:?}", report.ignored);

    // A spec that matches nothing is an error that names it.
    let err = Corpus::load(
        &["nothing/*.pdf".to_string()],
        dir.path(),
        &LoadOptions::default(),
        ChunkOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("nothing/*.pdf: matched no files"),
        "{err}"
    );
}

#[test]
fn globs_pick_files_and_ids_are_relative_to_the_pattern_root() {
    let corpus = load(&["examples/documents/licenses/*-2.0.txt"], &repo());
    assert_eq!(
        corpus.document_ids().collect::<Vec<_>>(),
        ["Apache-2.0.txt", "MPL-2.0.txt"]
    );
}
