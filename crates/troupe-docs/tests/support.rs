//! The support score on hand-labelled statement/quote pairs from the example licences: how well
//! it separates the statements a quote supports from those it does not.

#![allow(clippy::unwrap_used)] // a broken fixture should panic the test

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

fn pairs() -> Vec<Pair> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support_pairs.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<Fixture>(&text).unwrap().pairs
}

#[test]
fn the_support_score_separates_labelled_pairs() {
    let pairs = pairs();
    assert!(pairs.len() >= 40, "{} pairs", pairs.len());
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
        "support score at {SUPPORT_THRESHOLD}: {} pairs, tp {tp} fp {fp} tn {tn} fn {fn_}; \
         precision {precision:.2}, recall {recall:.2}, accuracy {accuracy:.2}",
        pairs.len()
    );
    // An accepted statement should almost always be supported: precision matters more than
    // recall (a rejected true statement goes back to its author; a wrong one reaches the reader).
    assert!(precision >= 0.85, "precision {precision:.2}");
    assert!(recall >= 0.8, "recall {recall:.2}");
}
