//! Document layer speed (not a test): `cargo bench -p troupe-docs --bench corpus`.
//! Load + chunk + index of the example licences and of a 100-document corpus; search latency;
//! citation check latency. Medians of repeated runs.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use troupe_docs::{ChunkOptions, Corpus, LoadOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn load(dir: &Path) -> (Corpus, f64) {
    let t = Instant::now();
    let (c, _) = Corpus::load(
        &[".".to_string()],
        dir,
        &LoadOptions::default(),
        ChunkOptions::default(),
    )
    .unwrap();
    (c, t.elapsed().as_secs_f64() * 1000.0)
}

fn main() {
    let licences = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/documents/licenses");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");

    let small: Vec<f64> = (0..9).map(|_| load(&licences).1).collect();
    let (corpus, _) = load(&licences);
    let bytes: usize = corpus.documents().iter().map(|d| d.text.len()).sum();
    println!(
        "load+chunk+index, 3 licences ({} KB, {} chunks): median {:.1} ms",
        bytes / 1024,
        corpus.chunks().len(),
        median(small)
    );
    let pdf: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            troupe_docs::load_file(&fixtures.join("CC0-1.0.pdf"), &Default::default()).unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    println!("PDF text extraction, 2 pages: median {:.1} ms", median(pdf));

    // 100 documents: the licences copied with a distinct line each.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..100 {
        let src = corpus.documents()[i % 3].text.clone();
        std::fs::write(
            dir.path().join(format!("doc-{i:03}.txt")),
            format!("Document number {i}.\n\n{src}"),
        )
        .unwrap();
    }
    let big: Vec<f64> = (0..3).map(|_| load(dir.path()).1).collect();
    let (big_corpus, _) = load(dir.path());
    let big_bytes: usize = big_corpus.documents().iter().map(|d| d.text.len()).sum();
    println!(
        "load+chunk+index, 100 documents ({} KB, {} chunks): median {:.0} ms",
        big_bytes / 1024,
        big_corpus.chunks().len(),
        median(big)
    );

    let queries = [
        "patent license terminate litigation",
        "warranty disclaimer merchantability",
        "source code form distribution",
        "governing law jurisdiction",
    ];
    let mut times = Vec::new();
    for _ in 0..50 {
        for q in queries {
            let t = Instant::now();
            let hits = big_corpus.search(q, 5, None).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e6);
            assert!(!hits.is_empty());
        }
    }
    println!(
        "search (top 5 of {} chunks): median {:.0} µs",
        big_corpus.chunks().len(),
        median(times)
    );

    let chunk = corpus.chunks()[3].clone();
    let quote: String = corpus
        .chunk_text(&chunk)
        .split_whitespace()
        .skip(5)
        .take(12)
        .collect::<Vec<_>>()
        .join(" ");
    let ok: Vec<f64> = (0..200)
        .map(|_| {
            let t = Instant::now();
            assert!(corpus.check_citation(&chunk.id, &quote).is_verified());
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    let bad: Vec<f64> = (0..20)
        .map(|_| {
            let t = Instant::now();
            assert!(
                !big_corpus
                    .check_citation(&big_corpus.chunks()[5].id, "words that are nowhere at all")
                    .is_verified()
            );
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    println!(
        "citation check: verified {:.0} µs; failed (searches all {} chunks for the quote) {:.0} µs",
        median(ok),
        big_corpus.chunks().len(),
        median(bad)
    );
}
