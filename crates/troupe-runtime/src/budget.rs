//! The context window: how many tokens a request takes, and cutting a task prompt down to fit —
//! least relevant document chunks first, then the longest context outputs — so that nothing is
//! ever sent over the window.

use troupe_crew::Agent;
use troupe_docs::{Corpus, Document, estimate_tokens};
use troupe_llm::{ChatModel, Message, ToolSpec};

/// The window assumed for an API model when neither the crew nor the provider says.
pub const DEFAULT_API_WINDOW: u32 = 128_000;

/// Tokens a chat template adds around each message (role markers, separators).
const PER_MESSAGE: usize = 8;

/// The agent's context window: `llm.context_window` (at most what the model reports), else what
/// the model reports, else [`DEFAULT_API_WINDOW`].
pub fn window(agent: &Agent, model: &dyn ChatModel) -> u32 {
    match (agent.llm.context_window, model.context_window()) {
        // A local model cannot attend to more than its context, whatever the crew says.
        (Some(set), Some(real)) => set.min(real),
        (set, real) => set.or(real).unwrap_or(DEFAULT_API_WINDOW),
    }
}

/// Tokens kept free for the answer: `llm.max_tokens`, else a quarter of the window up to 1024.
pub fn answer_reserve(agent: &Agent, window: u32) -> usize {
    agent.llm.max_tokens.unwrap_or((window / 4).min(1024)) as usize
}

pub fn message_tokens(m: &Message) -> usize {
    PER_MESSAGE
        + match m {
            Message::System { content } | Message::User { content } => estimate_tokens(content),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                content.as_deref().map_or(0, estimate_tokens)
                    + tool_calls
                        .iter()
                        .map(|c| estimate_tokens(&c.name) + estimate_tokens(&c.arguments) + 4)
                        .sum::<usize>()
            }
            Message::Tool { content, .. } => estimate_tokens(content),
        }
}

pub fn tools_tokens(tools: &[ToolSpec]) -> usize {
    tools
        .iter()
        .map(|t| {
            estimate_tokens(&t.name)
                + estimate_tokens(&t.description)
                + estimate_tokens(&t.parameters.to_string())
                + PER_MESSAGE
        })
        .sum()
}

pub fn request_tokens(messages: &[Message], tools: &[ToolSpec]) -> usize {
    messages.iter().map(message_tokens).sum::<usize>() + tools_tokens(tools)
}

/// A document's text for a prompt, as chunks with their ids, cut to `budget` tokens.
pub struct DocText {
    pub text: String,
    pub tokens: usize,
    /// Chunks left out, least relevant to the task first.
    pub dropped: Vec<String>,
}

fn header(id: &str) -> String {
    format!("[chunk {id}]\n")
}

/// The text of `doc` as `[chunk <id>]` blocks (overlaps shown once). When the whole document
/// does not fit `budget` tokens, the chunks least relevant to `query` (BM25) are left out and a
/// note says which, so the agent can still read them with `docs.read`.
pub fn document_text(corpus: &Corpus, doc: &Document, budget: usize, query: &str) -> DocText {
    let chunks = corpus.chunks_of(doc);
    let cost: Vec<usize> = chunks
        .iter()
        .map(|c| estimate_tokens(&header(&c.id)) + estimate_tokens(corpus.chunk_text(c)))
        .collect();
    let total: usize = cost.iter().sum();
    let mut keep = vec![true; chunks.len()];
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    if total > budget {
        let scores = corpus.relevance(doc, query).unwrap_or_default();
        // Most relevant first; among equals, earlier chunks (definitions, parties) first.
        order.sort_by(|&a, &b| {
            let (sa, sb) = (
                scores.get(a).copied().unwrap_or(0.0),
                scores.get(b).copied().unwrap_or(0.0),
            );
            sb.total_cmp(&sa).then(a.cmp(&b))
        });
        keep = vec![false; chunks.len()];
        // Room for the notes about what was left out; checked on the text below.
        let mut used = 40;
        for &i in &order {
            if used + cost[i] <= budget {
                keep[i] = true;
                used += cost[i];
            }
        }
    }
    // The notes list every chunk left out, so they can cost more than the room kept for them:
    // the least relevant chunk kept goes too, until the text as sent fits.
    loop {
        let text = render_document(corpus, doc, &keep);
        if text.tokens <= budget {
            return text;
        }
        match order.iter().rev().find(|&&i| keep[i]) {
            Some(&i) => keep[i] = false,
            None => return text,
        }
    }
}

fn render_document(corpus: &Corpus, doc: &Document, keep: &[bool]) -> DocText {
    let chunks = corpus.chunks_of(doc);
    let mut text = String::new();
    let mut shown_to = 0;
    let mut dropped = Vec::new();
    let mut gap: Vec<&str> = Vec::new();
    let flush_gap = |text: &mut String, gap: &mut Vec<&str>| {
        if !gap.is_empty() {
            text.push_str(&format!(
                "[… {} chunk(s) left out to fit the context window: {} — read them with docs.read if you have it]\n\n",
                gap.len(),
                gap.join(", ")
            ));
            gap.clear();
        }
    };
    for (i, c) in chunks.iter().enumerate() {
        if !keep[i] {
            dropped.push(c.id.clone());
            gap.push(&c.id);
            continue;
        }
        flush_gap(&mut text, &mut gap);
        let from = c.start.max(shown_to).min(c.end);
        let from = (from..=c.end)
            .find(|&p| doc.text.is_char_boundary(p))
            .unwrap_or(c.end);
        text.push_str(&header(&c.id));
        text.push_str(doc.text[from..c.end].trim_end());
        text.push_str("\n\n");
        shown_to = c.end;
    }
    flush_gap(&mut text, &mut gap);
    let tokens = estimate_tokens(&text);
    DocText {
        text,
        tokens,
        dropped,
    }
}

/// Cuts each of `outputs` so that together they take at most `budget` tokens, sharing the room
/// fairly: short outputs stay whole, the longest are cut (with a note). Returns which were cut.
pub fn share(outputs: &mut [String], budget: usize) -> Vec<usize> {
    let costs: Vec<usize> = outputs.iter().map(|o| estimate_tokens(o)).collect();
    if costs.iter().sum::<usize>() <= budget {
        return Vec::new();
    }
    // Water-filling: the largest cap such that sum(min(cost, cap)) <= budget.
    let mut sorted = costs.clone();
    sorted.sort_unstable();
    let mut left = budget;
    let mut cap = 0;
    for (k, &c) in sorted.iter().enumerate() {
        let n = sorted.len() - k;
        if c * n <= left {
            left -= c;
            cap = c;
        } else {
            cap = left / n;
            break;
        }
    }
    let mut cut = Vec::new();
    for (i, out) in outputs.iter_mut().enumerate() {
        if costs[i] > cap {
            let note_room = 30;
            let keep_tokens = cap.saturating_sub(note_room);
            let end = prefix_within(out, keep_tokens);
            let dropped = costs[i].saturating_sub(keep_tokens);
            out.truncate(end);
            out.push_str(&format!(
                "\n[… about {dropped} more tokens of this output were cut to fit the context window]"
            ));
            cut.push(i);
        }
    }
    cut
}

/// The longest prefix of `text` (in bytes, on a char boundary) estimated at most `tokens`.
fn prefix_within(text: &str, tokens: usize) -> usize {
    let (mut lo, mut hi) = (0, text.len());
    while lo < hi {
        let mut mid = (lo + hi).div_ceil(2);
        while !text.is_char_boundary(mid) {
            mid -= 1;
        }
        if mid <= lo {
            break;
        }
        if estimate_tokens(&text[..mid]) <= tokens {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    while !text.is_char_boundary(lo) {
        lo -= 1;
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharing_keeps_short_outputs_and_cuts_the_long_ones() {
        let mut outs = vec!["short".to_string(), "x ".repeat(3000), "y ".repeat(3000)];
        let cut = share(&mut outs, 1000);
        assert_eq!(cut, vec![1, 2]);
        assert_eq!(outs[0], "short");
        let total: usize = outs.iter().map(|o| estimate_tokens(o)).sum();
        assert!(total <= 1000, "{total}");
        assert!(outs[1].ends_with("cut to fit the context window]"));
    }
}
