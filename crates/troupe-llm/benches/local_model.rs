//! The embedded model's speed (not a test): `cargo bench -p troupe-llm --bench local_model`.
//! Load time; prefill tok/s; generation tok/s unconstrained and grammar-constrained.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use serde_json::json;
use troupe_llm::local::{LocalModel, models_dir, resolve};
use troupe_llm::{ChatModel, ChatRequest, Message, OutputFormat};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let env = |k: &str| std::env::var(k).ok();
    let path = resolve("", &models_dir(&env)).unwrap();
    let t = Instant::now();
    let model = LocalModel::load(&path).unwrap();
    println!(
        "load: {:.2} s ({})",
        t.elapsed().as_secs_f64(),
        path.display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let chat = |req: &ChatRequest| {
        let t = Instant::now();
        let r = rt.block_on(model.chat(req)).unwrap();
        (t.elapsed().as_secs_f64(), r)
    };
    let long_text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/documents/licenses/BSD-3-Clause.txt"),
    )
    .unwrap()
    .repeat(3);
    let req = |text: &str, max: u32| ChatRequest {
        messages: vec![
            Message::system("You are a careful reader."),
            Message::user(text),
        ],
        max_tokens: Some(max),
        ..Default::default()
    };

    // Prefill: a ~1k-token prompt, one token out.
    let mut prefill = Vec::new();
    for _ in 0..5 {
        let (secs, r) = chat(&req(&format!("Summarise:\n{long_text}"), 1));
        prefill.push(r.usage.input_tokens as f64 / secs);
    }
    println!(
        "prefill: median {:.0} tok/s over 5 runs (~{} prompt tokens)",
        median(prefill),
        {
            let (_, r) = chat(&req(&format!("Summarise:\n{long_text}"), 1));
            r.usage.input_tokens
        }
    );

    // Generation: short prompt, 256 tokens; the prompt's share is subtracted.
    let (p_secs, _) = chat(&req("Tell me a long story about a lighthouse.", 1));
    let mut free = Vec::new();
    for _ in 0..5 {
        let (secs, r) = chat(&req("Tell me a long story about a lighthouse.", 256));
        free.push(r.usage.output_tokens as f64 / (secs - p_secs).max(1e-6));
    }
    println!(
        "generation, unconstrained: median {:.1} tok/s over 5 runs",
        median(free)
    );

    let mut constrained = Vec::new();
    for _ in 0..5 {
        let mut r = req("Describe three lighthouses.", 256);
        r.output = Some(OutputFormat {
            name: "lighthouses".into(),
            schema: json!({"type": "object", "properties": {"items": {"type": "array", "items": {
                "type": "object", "properties": {"name": {"type": "string"}, "story": {"type": "string"}},
                "required": ["name", "story"]}}}, "required": ["items"]}),
        });
        let (secs, resp) = chat(&r);
        constrained.push(resp.usage.output_tokens as f64 / (secs - p_secs).max(1e-6));
    }
    println!(
        "generation, JSON-Schema grammar: median {:.1} tok/s over 5 runs",
        median(constrained)
    );
}
