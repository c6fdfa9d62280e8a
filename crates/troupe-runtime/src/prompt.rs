//! The words sent to models: personas, task prompts, review and manager instructions.

use std::fmt::Write;

use serde_json::{Value, json};
use troupe_crew::{Agent, Task};

/// The agent's persona. Starts with "You are {role}" (the fake server in tests keys on it).
pub fn system(agent: &Agent) -> String {
    let mut s = format!("You are {}.\nYour goal: {}\n", agent.role, agent.goal);
    if let Some(b) = &agent.backstory {
        let _ = writeln!(s, "{b}");
    }
    s.push_str(
        "\nWork carefully and truthfully. Use a tool when it helps. When you are done, reply with \
         your final answer only, complete and self-contained.",
    );
    s
}

/// Output of an earlier task handed to a later one.
pub struct ContextItem<'a> {
    pub task: &'a str,
    pub agent: &'a str,
    pub output: &'a str,
    /// Set when that task did not complete normally.
    pub note: Option<&'a str>,
}

/// The task prompt: description, expected output, context, output format, manager instructions.
pub fn task(task: &Task, context: &[ContextItem<'_>], instructions: Option<&str>) -> String {
    let mut s = format!("## Task\n{}\n", task.description.trim());
    if let Some(e) = &task.expected_output {
        let _ = write!(s, "\n## Expected output\n{}\n", e.trim());
    }
    if let Some(i) = instructions {
        let _ = write!(s, "\n## Instructions from your manager\n{}\n", i.trim());
    }
    if !context.is_empty() {
        s.push_str("\n## Context from earlier tasks\n");
        for c in context {
            let _ = write!(s, "\n### `{}` (by {})\n", c.task, c.agent);
            if let Some(n) = c.note {
                let _ = writeln!(s, "(note: {n})");
            }
            let _ = writeln!(s, "{}", c.output.trim());
        }
    }
    if let Some(schema) = &task.output_schema {
        let _ = write!(
            s,
            "\n## Output format\nAnswer with one JSON value, and nothing else, that satisfies this \
             JSON Schema:\n```json\n{}\n```\n",
            serde_json::to_string_pretty(schema).unwrap_or_default()
        );
    }
    s
}

/// Asking the author for a revision.
pub fn revise(feedback: &str) -> String {
    format!(
        "A reviewer asked for a revision of your answer:\n\n{}\n\nWrite the complete revised \
         answer (not only the changes).",
        feedback.trim()
    )
}

/// The reviewer's task.
pub fn review(task: &Task, output: &str, criteria: Option<&str>, round: u32) -> String {
    let mut s = format!(
        "Review the following work (review round {round}).\n\n## The task it answers\n{}\n",
        task.description.trim()
    );
    if let Some(e) = &task.expected_output {
        let _ = write!(s, "\n## Expected output\n{}\n", e.trim());
    }
    if let Some(c) = criteria {
        let _ = write!(s, "\n## Review criteria\n{}\n", c.trim());
    }
    let _ = write!(
        s,
        "\n## The work\n{}\n\n## Your verdict\nAnswer with JSON only: \
         {{\"verdict\": \"approve\" or \"revise\", \"feedback\": \"…\"}}. Approve work that meets \
         the task; otherwise give concrete, actionable feedback.",
        output.trim()
    );
    s
}

pub fn review_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["approve", "revise"]},
            "feedback": {"type": "string"}
        },
        "required": ["verdict", "feedback"]
    })
}

/// The manager's choice of agent for a task.
pub fn delegate(task: &Task, agents: &[&Agent], previous: Option<(&str, &str)>) -> String {
    let mut s = format!(
        "Choose the agent of your team best suited to this task.\n\n## Task `{}`\n{}\n",
        task.id,
        task.description.trim()
    );
    if let Some(e) = &task.expected_output {
        let _ = write!(s, "\n## Expected output\n{}\n", e.trim());
    }
    s.push_str("\n## Your team\n");
    for a in agents {
        let _ = writeln!(s, "- `{}`: {} — {}", a.id, a.role, a.goal);
    }
    if let Some((agent, why)) = previous {
        let _ = write!(
            s,
            "\n`{agent}` already tried and the result was not accepted: {why}\n"
        );
    }
    s.push_str(
        "\nAnswer with JSON only: {\"agent\": \"<id>\", \"instructions\": \"what to focus on\"}.",
    );
    s
}

pub fn delegate_schema(agent_ids: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": {
            "agent": {"type": "string", "enum": agent_ids},
            "instructions": {"type": "string"}
        },
        "required": ["agent"]
    })
}

/// The manager's check of a delegated result.
pub fn assess(task: &Task, agent: &str, output: &str) -> String {
    format!(
        "`{agent}` finished task `{}`.\n\n## Task\n{}\n\n## Result\n{}\n\n## Your decision\n\
         Answer with JSON only: {{\"decision\": \"accept\" or \"reassign\", \"feedback\": \"…\"}}. \
         Reassign only when the result does not do the task.",
        task.id,
        task.description.trim(),
        output.trim()
    )
}

pub fn assess_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["accept", "reassign"]},
            "feedback": {"type": "string"}
        },
        "required": ["decision"]
    })
}

/// Appended when the iteration limit is about to be reached.
pub const FINAL_ANSWER_NOW: &str = "You have reached the limit of steps for this task. Do not \
    call any more tools: give your best final answer now with what you have.";
