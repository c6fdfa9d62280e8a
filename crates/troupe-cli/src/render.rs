//! Live progress on stderr, and optionally every event as JSON on stdout.

use troupe_runtime::record::TaskStatus;
use troupe_runtime::{Event, EventKind};

use crate::cli::EventFormat;

/// Renders events as they arrive (on the runtime's event thread).
pub struct Renderer {
    quiet: bool,
    json: bool,
    tokens: u64,
}

impl Renderer {
    pub fn new(quiet: bool, events: Option<EventFormat>) -> Self {
        Self {
            quiet,
            json: events == Some(EventFormat::Jsonl),
            tokens: 0,
        }
    }

    pub fn event(&mut self, e: &Event) {
        if self.json
            && let Ok(line) = serde_json::to_string(e)
        {
            // A closed pipe (`| head`) is not an error of the run: the events stop there.
            self.json = crate::term::out_raw(&format!("{line}\n"));
        }
        if let EventKind::LlmResponse {
            input_tokens,
            output_tokens,
            ..
        } = &e.kind
        {
            self.tokens += input_tokens + output_tokens;
        }
        if self.quiet {
            return;
        }
        if let Some(line) = self.line(&e.kind) {
            crate::term::err_line(&line);
        }
    }

    fn line(&self, kind: &EventKind) -> Option<String> {
        Some(match kind {
            EventKind::RunStarted {
                crew,
                process,
                tasks,
                agents,
                out_dir,
            } => format!(
                "▶ running `{crew}` ({process} · {tasks} task(s) · {agents} agent(s)) → {out_dir}"
            ),
            EventKind::RunContinued {
                mode,
                from_run,
                kept,
                rerun,
                recorded_calls,
                changed_limits,
            } => {
                let what = match mode.as_str() {
                    "resume" => format!("resuming run {from_run}"),
                    "replay" => format!("replaying from run {from_run}"),
                    _ => format!("answering model calls from run {from_run}"),
                };
                let mut s = format!(
                    "  ↻ {what}: {} task(s) kept, {} to run; {recorded_calls} recorded model call(s) can answer",
                    kept.len(),
                    rerun.len()
                );
                if !changed_limits.is_empty() {
                    s.push_str(&format!("; changed limits: {}", changed_limits.join(", ")));
                }
                s
            }
            EventKind::RunsPruned { removed, keep, key } => format!(
                "  · {removed} older run(s) of this crew deleted from the store (keeps {keep}: `{key}`)"
            ),
            EventKind::DocumentsLoaded {
                documents,
                chunks,
                tokens,
                duration_ms,
                skipped,
                ignored,
                encodings,
            } => {
                let mut s = format!(
                    "  ▤ {documents} document(s) read: {chunks} chunks, ~{tokens} tokens, indexed in {duration_ms} ms"
                );
                let legacy: Vec<String> = encodings
                    .iter()
                    .filter(|(_, e)| e.as_str() != "UTF-8")
                    .map(|(d, e)| format!("{d} ({e})"))
                    .collect();
                if !legacy.is_empty() {
                    s.push_str(&format!(
                        "\n  · decoded from legacy encodings: {}",
                        legacy.join(", ")
                    ));
                }
                for k in skipped {
                    s.push_str(&format!("\n  ! skipped {}", first_line(k)));
                }
                for k in ignored {
                    s.push_str(&format!("\n  · not read: {}", first_line(k)));
                }
                s
            }
            EventKind::McpServerStarted {
                server,
                transport,
                tools,
                duration_ms,
            } => format!(
                "  ⇄ MCP server `{server}` ({transport}) ready in {duration_ms} ms: {} tool(s)",
                tools.len()
            ),
            EventKind::TaskStarted { task, agent } => format!("  ▸ [{task}] {agent} started"),
            EventKind::ContextCut {
                task,
                window,
                tokens_before,
                tokens_after,
                dropped_chunks,
                truncated_context,
                dropped_tool_results,
                ..
            } => {
                let mut what = Vec::new();
                if !dropped_chunks.is_empty() {
                    what.push(format!(
                        "{} least relevant chunk(s) left out",
                        dropped_chunks.len()
                    ));
                }
                if !truncated_context.is_empty() {
                    what.push(format!(
                        "{} context output(s) shortened",
                        truncated_context.len()
                    ));
                }
                if *dropped_tool_results > 0 {
                    what.push(format!("{dropped_tool_results} old tool result(s) removed"));
                }
                format!(
                    "    ✂ [{task}] prompt cut to the {window}-token window (~{tokens_before} → ~{tokens_after} tokens): {} (set with `llm.context_window`)",
                    what.join(", ")
                )
            }
            EventKind::CitationsChecked {
                task,
                total,
                verified,
                failed,
                ..
            } => {
                if failed.is_empty() {
                    format!("    ✓ [{task}] {verified}/{total} citation(s) verified")
                } else {
                    format!(
                        "    ✗ [{task}] {verified}/{total} citation(s) verified; sent back: {}",
                        first_line(&failed[0])
                    )
                }
            }
            EventKind::StatementsChecked {
                task,
                statements,
                cited,
                verified,
                supported,
                echoes_prompt,
                failed,
                ..
            } => {
                let counts = format!(
                    "{statements} statement(s), {cited} cited, {verified} verified, {supported} supported"
                );
                if failed.is_empty() && !echoes_prompt && *statements > 0 {
                    format!("    ✓ [{task}] {counts}")
                } else {
                    let why = if *echoes_prompt {
                        "it repeats its prompt".to_string()
                    } else if let Some(f) = failed.first() {
                        first_line(f)
                    } else {
                        "it states nothing checkable".to_string()
                    };
                    format!("    ✗ [{task}] {counts}; sent back: {why}")
                }
            }
            EventKind::ReportWritten { checks, .. } => {
                format!("  ▤ report.md: {}", checks.describe())
            }
            EventKind::TaskDelegated {
                task, agent, by, ..
            } => format!("  ⇢ [{task}] {by} delegated it to {agent}"),
            EventKind::LlmRetry {
                task,
                reason,
                wait_ms,
                retry_after,
                retry_after_ms,
                retry_after_capped,
                attempt,
                ..
            } => format!(
                "    ↻ [{task}] model call attempt {attempt} failed ({reason}); retrying in {:.1} s{}",
                *wait_ms as f64 / 1000.0,
                match (retry_after, retry_after_capped, retry_after_ms) {
                    (_, true, Some(asked)) => format!(
                        " (Retry-After asked {:.1} s; capped)",
                        *asked as f64 / 1000.0
                    ),
                    (true, _, _) => " (Retry-After)".into(),
                    _ => String::new(),
                }
            ),
            EventKind::ProviderFallback {
                task,
                agent,
                feature,
                from,
                to,
                reason,
            } => format!(
                "    ↓ [{task}] {agent}: the server rejected {feature} as {from} ({reason}); using {to} from now on"
            ),
            EventKind::ToolCall {
                task,
                agent,
                tool,
                ok,
                duration_ms,
                result,
                ..
            } => {
                if *ok {
                    format!("    · [{task}] {agent} → {tool} ({duration_ms} ms)")
                } else {
                    format!("    · [{task}] {agent} → {tool} failed: {result}")
                }
            }
            EventKind::OutputInvalid {
                task,
                attempt,
                errors,
                ..
            } => format!(
                "    ✗ [{task}] answer does not fit output_schema (attempt {attempt}): {}",
                errors.first().map_or("", String::as_str)
            ),
            EventKind::ReviewVerdict {
                task,
                reviewer,
                round,
                approved,
                feedback,
            } => {
                if *approved {
                    format!("    ✓ [{task}] review round {round}: {reviewer} approved")
                } else {
                    format!(
                        "    ↺ [{task}] review round {round}: {reviewer} asked for a revision — {}",
                        first_line(feedback)
                    )
                }
            }
            EventKind::ApprovalRequested {
                task,
                kind,
                n,
                subject,
                answered,
                ..
            } => format!(
                "    ? [{task}] {} needs a person's approval (request {n}){}",
                match kind {
                    troupe_runtime::approval::ApprovalKind::Task => "the output".to_string(),
                    troupe_runtime::approval::ApprovalKind::Tool =>
                        format!("the call {}", first_line(subject)),
                },
                if *answered { ": answered before" } else { "" }
            ),
            EventKind::ApprovalDecided {
                task,
                decision,
                feedback,
                by,
                ..
            } => {
                let by = by.as_deref().unwrap_or("a person");
                let note = feedback
                    .as_deref()
                    .map(|f| format!(" — {}", first_line(f)))
                    .unwrap_or_default();
                match decision {
                    troupe_runtime::approval::Verdict::Approve => {
                        format!("    ✓ [{task}] approved by {by}{note}")
                    }
                    troupe_runtime::approval::Verdict::Revise => {
                        format!("    ↺ [{task}] {by} asked for a revision{note}")
                    }
                    troupe_runtime::approval::Verdict::Reject => {
                        format!("    ✗ [{task}] rejected by {by}{note}")
                    }
                }
            }
            EventKind::ReviewRoundsExhausted { task, rounds } => format!(
                "    ! [{task}] {rounds} review round(s) used up (`review.max_rounds`): the latest version stands"
            ),
            EventKind::LimitHit {
                task,
                limit,
                value,
                key,
                action,
                ..
            } => format!(
                "  ! {}limit `{limit}` = {value} reached: {action} (set with `{key}`)",
                task.as_ref().map(|t| format!("[{t}] ")).unwrap_or_default()
            ),
            EventKind::Warning { task, message } => format!(
                "  ! {}{message}",
                task.as_ref().map(|t| format!("[{t}] ")).unwrap_or_default()
            ),
            EventKind::ModelFallback {
                agent,
                requested,
                used,
                reason,
            } => format!(
                "  ! agent `{agent}` runs on the embedded model `{used}`, not `{requested}`: {reason}"
            ),
            EventKind::TaskFinished {
                task,
                status,
                duration_ms,
                input_tokens,
                output_tokens,
                output_file,
                error,
                ..
            } => {
                let mark = match status {
                    TaskStatus::Completed => "✓",
                    TaskStatus::LimitReached => "◐",
                    TaskStatus::Unreviewed | TaskStatus::NotApproved => "⚠",
                    _ => "✗",
                };
                let mut s = format!(
                    "  {mark} [{task}] {} in {:.1} s · {} tokens (run: {})",
                    status.as_str().replace('_', " "),
                    *duration_ms as f64 / 1000.0,
                    input_tokens + output_tokens,
                    self.tokens
                );
                if let Some(f) = output_file
                    .as_ref()
                    .filter(|_| *status != TaskStatus::Failed)
                {
                    s.push_str(&format!(" → {f}"));
                }
                if let Some(e) = error {
                    s.push_str(&format!("\n      {}", first_line(e)));
                }
                s
            }
            _ => return None,
        })
    }
}

fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or_default();
    let mut out: String = l.chars().take(160).collect();
    if l.chars().count() > 160 || s.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}
