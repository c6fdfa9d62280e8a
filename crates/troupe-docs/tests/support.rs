//! The support score on hand-labelled statement/quote pairs from the example licences: how well
//! it separates the statements a quote supports from those it does not.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a broken fixture panics; the figures are printed

use troupe_docs::{SUPPORT_THRESHOLD, support};

#[derive(serde::Deserialize)]
struct Pair {
    s: String,
    q: String,
    supported: bool,
}

#[derive(serde::Deserialize)]
struct Fixture {
    pairs: Vec<Pair>,
}

fn pairs(file: &str) -> Vec<Pair> {
    let path = format!("{}/tests/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<Fixture>(&text).unwrap().pairs
}

/// Precision and recall of `support(..).supported()` on a file of pairs, printing its mistakes.
fn measure(file: &str) -> (f64, f64, usize) {
    let pairs = pairs(file);
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for p in &pairs {
        let s = support(&p.s, &p.q);
        match (s.supported(), p.supported) {
            (true, true) => tp += 1,
            (true, false) => {
                fp += 1;
                println!(
                    "accepted but unsupported ({:.2}): {} | {}",
                    s.score, p.s, p.q
                );
            }
            (false, false) => tn += 1,
            (false, true) => {
                fn_ += 1;
                println!("rejected but supported ({:.2}): {} | {}", s.score, p.s, p.q);
            }
        }
    }
    let precision = f64::from(tp) / f64::from(tp + fp).max(1.0);
    let recall = f64::from(tp) / f64::from(tp + fn_).max(1.0);
    let accuracy = f64::from(tp + tn) / pairs.len() as f64;
    println!(
        "{file} at {SUPPORT_THRESHOLD}: {} pairs, tp {tp} fp {fp} tn {tn} fn {fn_}; \
         precision {precision:.2}, recall {recall:.2}, accuracy {accuracy:.2}",
        pairs.len()
    );
    (precision, recall, pairs.len())
}

/// On the pairs the rules and the threshold were chosen on. A figure on these is an upper
/// bound, not what to expect: see the held-out test.
#[test]
fn the_support_score_separates_the_tuning_pairs() {
    let (precision, recall, n) = measure("support_pairs.json");
    assert!(n >= 40, "{n} pairs");
    // An accepted statement should almost always be supported: precision matters more than
    // recall (a rejected true statement goes back to its author; a wrong one reaches the reader).
    assert!(precision >= 0.85, "precision {precision:.2}");
    assert!(recall >= 0.8, "recall {recall:.2}");
}

/// On pairs written after the rules were fixed and never used to change them: what the score
/// is worth. It catches flipped negations and may/must swaps, and little else that keeps the
/// quote's words (a wrong party, a wrong number, a dropped condition): about two in three of
/// the statements it accepts are supported. The README says so. The bars are the measured
/// figures, rounded down, so that a change that makes it worse fails here.
#[test]
fn the_support_score_on_held_out_pairs() {
    let (precision, recall, n) = measure("support_pairs_heldout.json");
    assert!(n >= 30, "{n} pairs");
    assert!(precision >= 0.6, "precision {precision:.2}");
    assert!(recall >= 0.8, "recall {recall:.2}");
}
