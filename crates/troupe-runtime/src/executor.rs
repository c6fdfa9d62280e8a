//! One agent working one job: the model ⇄ tools loop, bounded by every per-task limit.
//!
//! A job owns its whole state (conversation, repeat counters), so one agent can work several jobs
//! at once without them touching each other.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use troupe_crew::{Agent, RepeatPolicy, TaskLimits};
use troupe_llm::{ChatModel, ChatRequest, Message, OutputFormat};

use crate::approval;
use crate::budget;
use crate::citations;
use crate::events::{EventKind, Events, ms, preview};
use crate::grounding;
use crate::ledger::Ledger;
use crate::output;
use crate::prompt;
use crate::tool::Toolset;

/// Below this many tokens left in the run's budget, every request is capped to what is left.
const LONG_ANSWER: u32 = 16_384;

/// What an agent needs to work: its persona and settings, its model, its tools, the run's ledger.
pub struct AgentCtx {
    pub agent: Agent,
    pub model: Arc<dyn ChatModel>,
    pub tools: Toolset,
    pub events: Events,
    pub ledger: Arc<Ledger>,
    /// The agent's context window in tokens (see [`budget::window`]).
    pub window: u32,
    /// The run's fence: tool results reach the model as fenced data.
    pub fence: prompt::Fence,
    /// Where calls are recorded, and the recording that answers them, when there is one.
    pub calls: crate::recorded::CallLog,
    /// Where calls of tools marked `approve` are decided.
    pub approvals: crate::approval::Approvals,
}

/// A unit of work for an agent: a conversation to continue until a final answer.
pub struct Job {
    /// Index of the task this work is for (for accounting and events).
    pub task: usize,
    pub task_id: String,
    /// The conversation so far: persona, task prompt, and for revisions the earlier turns.
    pub messages: Vec<Message>,
    /// When set, the final answer must be JSON satisfying this schema.
    pub output_schema: Option<Value>,
    pub limits: TaskLimits,
    /// Cancelled when the task times out, the run stops, or the job's owner goes away.
    pub cancel: CancellationToken,
    /// When set, the citations in the final answer are checked against these documents; failures
    /// go back to the agent (bounded by `max_output_retries`).
    pub citations: Option<Arc<troupe_docs::Corpus>>,
    /// With `citations`: the answer is the report's body, so every statement is checked (cited,
    /// verified, supported), not only the citations it makes.
    pub statements: bool,
    /// When set, the JSON answer is rendered to the text that is the output (and is checked as
    /// text): see [`crate::cited`].
    pub render: Option<Render>,
    /// The task's approval requests so far (numbered per task, so that a resumed run asks
    /// the same numbers in the same order).
    pub approvals_asked: Arc<std::sync::atomic::AtomicU32>,
}

/// Turns a structured answer into the text output.
pub type Render = Arc<dyn Fn(&Value) -> String + Send + Sync>;

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    Completed,
    /// A limit ended the job; the output, if any, is the best the agent had.
    LimitReached(String),
    Failed(String),
    Cancelled,
    /// A call of a tool marked `approve` waits for a person's answer.
    AwaitingApproval,
}

/// The end of a job.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub status: JobStatus,
    /// The final answer (pretty JSON for structured outputs), or the last text the agent wrote.
    pub output: Option<String>,
    /// The parsed answer of a structured job.
    pub value: Option<Value>,
    /// The conversation, final answer included, so that a revision can continue it.
    pub messages: Vec<Message>,
}

/// Runs a job to its end; never panics, never exceeds the job's limits.
pub async fn execute(ctx: &AgentCtx, job: Job) -> JobOutcome {
    let cancel = job.cancel.clone();
    let mut state = JobState {
        messages: job.messages.clone(),
        last_text: None,
    };
    let status = tokio::select! {
        status = work(ctx, &job, &mut state) => status,
        () = cancel.cancelled() => (JobStatus::Cancelled, None),
    };
    state.finish(status)
}

struct JobState {
    messages: Vec<Message>,
    last_text: Option<String>,
}

impl JobState {
    fn finish(self, (status, value): (JobStatus, Option<Value>)) -> JobOutcome {
        JobOutcome {
            status,
            output: self.last_text,
            value,
            messages: self.messages,
        }
    }
}

async fn work(ctx: &AgentCtx, job: &Job, st: &mut JobState) -> (JobStatus, Option<Value>) {
    let agent = &ctx.agent;
    let (task, agent_id) = (job.task_id.as_str(), agent.id.as_str());
    let limit_hit = |limit: &str, value: String, key: &str, action: &str| {
        ctx.events.emit(EventKind::LimitHit {
            task: Some(task.to_string()),
            agent: Some(agent_id.to_string()),
            limit: limit.into(),
            value,
            key: key.into(),
            action: action.into(),
        });
    };
    let tool_specs = ctx.tools.specs();
    let output = job.output_schema.as_ref().map(|schema| OutputFormat {
        name: "answer".into(),
        schema: schema.clone(),
    });
    let mut repeats: HashMap<(String, String), u32> = HashMap::new();
    let mut output_retries = 0;
    let mut citation_rounds = 0;
    let reserve = budget::answer_reserve(agent, ctx.window);
    let max = job.limits.max_iterations;

    for iteration in 1..=max {
        if let Some(ex) = ctx.ledger.exhausted() {
            limit_hit(
                ex.limit,
                ex.value,
                ex.key,
                "task ended; no further model calls in this run",
            );
            return (JobStatus::LimitReached(ex.limit.into()), None);
        }
        // On the last allowed step an agent that still has tools is asked to answer without them.
        let final_turn = iteration == max && max > 1 && !tool_specs.is_empty();
        if final_turn {
            limit_hit(
                "max_iterations",
                max.to_string(),
                "limits.max_iterations",
                "tools withdrawn; the agent was asked for its final answer",
            );
            st.messages.push(Message::user(prompt::FINAL_ANSWER_NOW));
        }
        let tools_now = if final_turn { &[][..] } else { &tool_specs[..] };
        if let Err(status) = fit_window(ctx, job, &mut st.messages, tools_now, reserve) {
            return (status, None);
        }
        let remaining = u32::try_from(ctx.ledger.remaining_tokens()).unwrap_or(u32::MAX);
        let request = ChatRequest {
            messages: std::mem::take(&mut st.messages),
            tools: if final_turn {
                Vec::new()
            } else {
                tool_specs.clone()
            },
            output: output.clone(),
            require_tool: false,
            temperature: agent.llm.temperature,
            // The agent's cap, lowered to what is left of the run's budget when that is less than
            // a long answer; otherwise the provider's own default applies.
            max_tokens: match agent.llm.max_tokens {
                Some(m) => Some(m.min(remaining)),
                None if remaining < LONG_ANSWER => Some(remaining),
                None => None,
            },
        };
        ctx.events.emit(EventKind::LlmRequest {
            task: task.into(),
            agent: agent_id.into(),
            model: ctx.model.name(),
            iteration,
            messages: request.messages.len(),
            tools: request.tools.len(),
        });
        let cap = request.max_tokens;
        let started = Instant::now();
        // Retries are reported from what the provider logged, so that a call that finally fails
        // still shows each attempt it made.
        let answered = ctx
            .calls
            .model(
                task,
                agent_id,
                &request,
                troupe_llm::retry::observe(ctx.model.chat(&request)),
            )
            .await;
        let charge = ctx.calls.charge(answered.replayed);
        let (result, retries) = answered.result;
        st.messages = request.messages;
        for r in retries {
            ctx.events.emit(EventKind::LlmRetry {
                task: task.into(),
                agent: agent_id.into(),
                attempt: r.attempt,
                reason: r.reason,
                wait_ms: r.wait_ms,
                retry_after: r.retry_after,
                retry_after_ms: r.retry_after_ms,
                retry_after_capped: r.capped,
            });
        }
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                if let Some((limit, value, key)) = e.limit() {
                    limit_hit(limit, value, key, "task failed: the model call was stopped");
                }
                return (JobStatus::Failed(format!("model call failed: {e}")), None);
            }
        };
        for f in &resp.fallbacks {
            ctx.events.emit(EventKind::ProviderFallback {
                task: task.into(),
                agent: agent_id.into(),
                feature: f.feature.clone(),
                from: f.from.clone(),
                to: f.to.clone(),
                reason: f.reason.clone(),
            });
        }
        ctx.ledger
            .record_call(job.task, agent_id, resp.usage, &agent.llm, charge);
        ctx.events.emit(EventKind::LlmResponse {
            task: task.into(),
            agent: agent_id.into(),
            iteration,
            input_tokens: resp.usage.input_tokens,
            output_tokens: resp.usage.output_tokens,
            cached_input_tokens: resp.usage.cached_input_tokens,
            latency_ms: ms(started.elapsed()),
            tool_calls: resp.tool_calls.len(),
            finish_reason: resp.finish_reason.clone(),
        });
        if resp.finish_reason.as_deref() == Some("length") {
            limit_hit(
                "max_tokens_per_answer",
                cap.map_or_else(
                    || {
                        format!(
                            "the provider's default ({} tokens generated)",
                            resp.usage.output_tokens
                        )
                    },
                    |c| c.to_string(),
                ),
                "llm.max_tokens",
                "the answer was cut off at the cap",
            );
        }
        if let Some(text) = resp.content.as_ref().filter(|t| !t.trim().is_empty()) {
            st.last_text = Some(text.clone());
        }

        if !resp.tool_calls.is_empty() && !final_turn {
            st.messages.push(Message::Assistant {
                content: resp.content.clone(),
                tool_calls: resp.tool_calls.clone(),
            });
            for call in &resp.tool_calls {
                let key = (call.name.clone(), canonical(&call.arguments));
                let seen = repeats.entry(key).or_default();
                *seen += 1;
                if *seen > job.limits.max_repeated_tool_calls {
                    let value = job.limits.max_repeated_tool_calls.to_string();
                    let key = "limits.max_repeated_tool_calls";
                    match job.limits.on_repeat {
                        RepeatPolicy::Stop => {
                            limit_hit(
                                "max_repeated_tool_calls",
                                value,
                                key,
                                &format!(
                                    "task ended: `{}` was called {} times with the same arguments",
                                    call.name, seen
                                ),
                            );
                            return (
                                JobStatus::LimitReached("max_repeated_tool_calls".into()),
                                None,
                            );
                        }
                        RepeatPolicy::Warn => {
                            limit_hit(
                                "max_repeated_tool_calls",
                                value,
                                key,
                                "the model was told the call is a repeat",
                            );
                            st.messages.push(Message::Tool {
                                call_id: call.id.clone(),
                                content: format!(
                                    "error: you already called `{}` with these same arguments {} \
                                     times; its result is above. Do not repeat it: answer, or try \
                                     something different.",
                                    call.name,
                                    *seen - 1
                                ),
                            });
                            continue;
                        }
                    }
                }
                let started = Instant::now();
                let result = if ctx.tools.needs_approval(&call.name) {
                    let n = job
                        .approvals_asked
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                        + 1;
                    let request =
                        approval::tool_request(task, agent_id, n, &call.name, &call.arguments);
                    match ctx.approvals.decide(&ctx.events, &request).await {
                        // The task pauses here; its resume makes the same turns again (from the
                        // recording) and finds the answer in the store.
                        None => return (JobStatus::AwaitingApproval, None),
                        Some(d) if d.verdict == approval::Verdict::Approve => None,
                        Some(d) => Some(Err(crate::tool::ToolError(approval::declined(
                            &call.name, &d,
                        )))),
                    }
                } else {
                    None
                };
                let result = match result {
                    Some(declined) => declined,
                    None => {
                        let answered = ctx
                            .calls
                            .tool(
                                task,
                                agent_id,
                                &call.name,
                                &call.arguments,
                                ctx.tools.call(&call.name, &call.arguments),
                            )
                            .await;
                        ctx.ledger.record_tool(
                            job.task,
                            agent_id,
                            ctx.calls.charge(answered.replayed),
                        );
                        answered.result
                    }
                };
                let (ok, content) = match result {
                    Ok(s) => (true, s),
                    Err(e) => (false, format!("error: {e}")),
                };
                ctx.events.emit(EventKind::ToolCall {
                    task: task.into(),
                    agent: agent_id.into(),
                    tool: call.name.clone(),
                    arguments: preview(&call.arguments, 500),
                    ok,
                    duration_ms: ms(started.elapsed()),
                    result: preview(&content, 300),
                });
                st.messages.push(Message::Tool {
                    call_id: call.id.clone(),
                    content: prompt::tool_result(&ctx.fence, &call.name, &content),
                });
            }
            continue;
        }

        let text = resp.content.unwrap_or_default();
        st.messages.push(Message::Assistant {
            content: Some(text.clone()),
            tool_calls: Vec::new(),
        });
        if let Some(schema) = &job.output_schema {
            let checked = output::extract_json(&text)
                .map_err(|e| vec![e])
                .and_then(|v| output::check(schema, &v).map(|()| v));
            match checked {
                Ok(v) if job.render.is_some() => {
                    let text = job.render.as_ref().map(|r| r(&v)).unwrap_or_default();
                    st.last_text = Some(text.clone());
                    if !final_turn && cite_again(ctx, job, st, &text, None, &mut citation_rounds) {
                        continue;
                    }
                    return if final_turn {
                        (JobStatus::LimitReached("max_iterations".into()), None)
                    } else {
                        (JobStatus::Completed, None)
                    };
                }
                Ok(v) => {
                    let pretty = serde_json::to_string_pretty(&v).unwrap_or(text);
                    st.last_text = Some(pretty.clone());
                    if !final_turn
                        && cite_again(ctx, job, st, &pretty, Some(&v), &mut citation_rounds)
                    {
                        continue;
                    }
                    return if final_turn {
                        (JobStatus::LimitReached("max_iterations".into()), Some(v))
                    } else {
                        (JobStatus::Completed, Some(v))
                    };
                }
                Err(errors) => {
                    output_retries += 1;
                    ctx.events.emit(EventKind::OutputInvalid {
                        task: task.into(),
                        agent: agent_id.into(),
                        attempt: output_retries,
                        errors: errors.clone(),
                    });
                    if output_retries > job.limits.max_output_retries {
                        limit_hit(
                            "max_output_retries",
                            job.limits.max_output_retries.to_string(),
                            "limits.max_output_retries",
                            "task failed: the answer still does not satisfy `output_schema`",
                        );
                        return (
                            JobStatus::Failed(format!(
                                "the answer does not satisfy `output_schema`: {}",
                                errors.join("; ")
                            )),
                            None,
                        );
                    }
                    st.messages.push(Message::user(format!(
                        "Your answer does not satisfy the required JSON Schema:\n- {}\n\nReply \
                         with the corrected JSON only.",
                        errors.join("\n- ")
                    )));
                    continue;
                }
            }
        }
        if text.trim().is_empty() {
            st.messages.push(Message::user(
                "Your answer was empty. Give your final answer now.",
            ));
            continue;
        }
        if !final_turn && cite_again(ctx, job, st, &text, None, &mut citation_rounds) {
            continue;
        }
        return if final_turn {
            (JobStatus::LimitReached("max_iterations".into()), None)
        } else {
            (JobStatus::Completed, None)
        };
    }
    if max == 1 || tool_specs.is_empty() {
        limit_hit(
            "max_iterations",
            max.to_string(),
            "limits.max_iterations",
            "task ended without a final answer",
        );
    }
    (JobStatus::LimitReached("max_iterations".into()), None)
}

/// Checks the answer against the documents; `true` when it failed and the agent was asked to fix
/// it. A JSON answer's citations are checked; a text answer is checked statement by statement
/// ([`grounding`]): every claim cited, every citation verified, every quote supporting its
/// statement. After `max_output_retries` rounds the answer is accepted as it is: what failed is
/// marked in the report.
fn cite_again(
    ctx: &AgentCtx,
    job: &Job,
    st: &mut JobState,
    text: &str,
    value: Option<&Value>,
    rounds: &mut u32,
) -> bool {
    let Some(corpus) = &job.citations else {
        return false;
    };
    let (feedback, failed) = match value {
        _ if value.is_some() || !job.statements => {
            let found = citations::find(corpus, text, value);
            if found.is_empty() {
                return false;
            }
            *rounds += 1;
            let failed: Vec<&citations::Citation> =
                found.iter().filter(|c| !c.check.is_verified()).collect();
            ctx.events.emit(EventKind::CitationsChecked {
                task: job.task_id.clone(),
                agent: ctx.agent.id.clone(),
                attempt: *rounds,
                total: found.len(),
                verified: found.len() - failed.len(),
                failed: citations::problems(&failed),
            });
            if failed.is_empty() {
                return false;
            }
            let problems = citations::problems(&failed);
            (
                prompt::check_failed(
                    &ctx.fence,
                    "citation check",
                    &problems,
                    citations::FIX_CITATIONS,
                ),
                failed.len(),
            )
        }
        _ => {
            let g = grounding::check_answer(corpus, text, &job.messages);
            *rounds += 1;
            let t = g.tally();
            ctx.events.emit(EventKind::StatementsChecked {
                task: job.task_id.clone(),
                agent: ctx.agent.id.clone(),
                attempt: *rounds,
                statements: t.statements,
                cited: t.cited,
                verified: t.verified,
                supported: t.supported,
                echoes_prompt: g.echoes_prompt,
                failed: g
                    .failed()
                    .filter_map(|s| s.check.reason().map(|r| format!("\"{}\": {r}", s.text)))
                    .collect(),
            });
            if g.passed() {
                return false;
            }
            (
                prompt::check_failed(
                    &ctx.fence,
                    "statement check",
                    &g.problems(),
                    if job.render.is_some() {
                        crate::cited::FIX
                    } else {
                        grounding::FIX_STATEMENTS
                    },
                ),
                g.failed().count().max(1),
            )
        }
    };
    if *rounds > job.limits.max_output_retries {
        ctx.events.emit(EventKind::LimitHit {
            task: Some(job.task_id.clone()),
            agent: Some(ctx.agent.id.clone()),
            limit: "max_output_retries".into(),
            value: job.limits.max_output_retries.to_string(),
            key: "limits.max_output_retries".into(),
            action: format!("answer accepted with {failed} check failure(s), marked in the report"),
        });
        return false;
    }
    st.messages.push(Message::user(feedback));
    true
}

/// Makes the conversation fit the window with room for the answer: earlier tool results are
/// replaced by a note, oldest first (the latest stays). `Err` when even that is not enough: the
/// request is never sent over the window.
fn fit_window(
    ctx: &AgentCtx,
    job: &Job,
    messages: &mut [Message],
    tools: &[troupe_llm::ToolSpec],
    reserve: usize,
) -> Result<(), JobStatus> {
    let window = ctx.window as usize;
    let before = budget::request_tokens(messages, tools);
    if before + reserve <= window {
        return Ok(());
    }
    let last_tool = messages
        .iter()
        .rposition(|m| matches!(m, Message::Tool { .. }));
    let mut dropped = 0;
    let mut now = before;
    for (i, m) in messages.iter_mut().enumerate() {
        if now + reserve <= window {
            break;
        }
        if let Message::Tool { content, .. } = m
            && Some(i) != last_tool
            && !content.starts_with(DROPPED_RESULT)
        {
            let old = budget::message_tokens(&Message::user(content.as_str()));
            *content = DROPPED_RESULT.to_string();
            now = now + budget::message_tokens(&Message::user(DROPPED_RESULT)) - old;
            dropped += 1;
        }
    }
    if dropped > 0 {
        ctx.events.emit(EventKind::ContextCut {
            task: job.task_id.clone(),
            agent: ctx.agent.id.clone(),
            window: ctx.window,
            tokens_before: before,
            tokens_after: now,
            dropped_chunks: Vec::new(),
            truncated_context: Vec::new(),
            dropped_tool_results: dropped,
        });
    }
    if now + reserve <= window {
        return Ok(());
    }
    ctx.events.emit(EventKind::LimitHit {
        task: Some(job.task_id.clone()),
        agent: Some(ctx.agent.id.clone()),
        limit: "context_window".into(),
        value: ctx.window.to_string(),
        key: "llm.context_window".into(),
        action: format!(
            "task failed: the prompt needs ~{now} tokens + {reserve} for the answer; nothing was sent"
        ),
    });
    Err(JobStatus::Failed(format!(
        "the prompt (~{now} tokens) and the answer ({reserve}) do not fit the context window of {} tokens",
        ctx.window
    )))
}

const DROPPED_RESULT: &str =
    "[this tool result was removed to fit the context window; call the tool again if you need it]";

/// Arguments with whitespace and key order normalised, so that `{"a":1, "b":2}` and
/// `{ "b": 2, "a": 1 }` count as the same call.
fn canonical(args: &str) -> String {
    match serde_json::from_str::<Value>(args) {
        Ok(v) => sort_keys(v).to_string(),
        Err(_) => args.trim().to_string(),
    }
}

fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sort_keys).collect()),
        other => other,
    }
}
