//! One task from start to end: who does it (fixed, or chosen by the manager), the work, the review
//! rounds, the manager's acceptance. Progress goes into a shared record as it happens, so that a
//! timeout or an interruption keeps the latest version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use troupe_crew::{Crew, Task, template};
use troupe_docs::{Corpus, estimate_tokens};
use troupe_llm::Message;

use crate::agent::AgentHandle;
use crate::budget;
use crate::events::{EventKind, Events};
use crate::executor::{Job, JobOutcome, JobStatus};
use crate::prompt::{self, ContextItem};
use crate::record::{Delegation, ReviewRound, TaskRecord, TaskStatus};

/// What every task driver of a run shares.
pub(crate) struct RunCtx {
    pub crew: Arc<Crew>,
    pub events: Events,
    pub cancel: CancellationToken,
    /// Finished tasks by index: the blackboard later tasks read their context from.
    pub board: DashMap<usize, TaskRecord>,
    pub agents: HashMap<String, AgentHandle>,
    pub manager: Option<AgentHandle>,
    pub delegations: AtomicU32,
    /// The run's documents: `docs.*` tools, per-document tasks, citation checks.
    pub corpus: Option<Arc<Corpus>>,
    /// The run's fence around untrusted text in prompts.
    pub fence: prompt::Fence,
    /// Where a person's approvals are decided.
    pub approvals: crate::approval::Approvals,
}

pub(crate) type Progress = Arc<Mutex<TaskRecord>>;

fn update(progress: &Progress, f: impl FnOnce(&mut TaskRecord)) {
    let mut g = progress.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g);
}

fn snapshot(progress: &Progress) -> TaskRecord {
    progress.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Runs task `idx` to its end. The returned record's status is final.
pub(crate) async fn drive(run: Arc<RunCtx>, idx: usize, progress: Progress) -> TaskRecord {
    let cancel = run.cancel.child_token();
    // Dropping this driver (timeout, run stop) cancels every job it started.
    let _guard = cancel.clone().drop_guard();
    let task = &run.crew.tasks[idx];
    let shown = shown_task(task);
    let d = Driver {
        run: &run,
        dropped: Mutex::new(Vec::new()),
        cited: Mutex::new(None),
        task,
        shown,
        idx,
        progress: &progress,
        cancel,
        asked: Arc::new(AtomicU32::new(0)),
    };
    let status = d.go().await;
    update(&progress, |r| match status {
        Ok(()) => r.status = TaskStatus::Completed,
        Err(End::Limit(limit)) => {
            r.status = TaskStatus::LimitReached;
            r.limit = Some(limit);
        }
        Err(End::Failed(e)) => {
            r.status = TaskStatus::Failed;
            r.error = Some(e);
        }
        Err(End::Cancelled) => r.status = TaskStatus::Cancelled,
        Err(End::Unreviewed(why)) => {
            r.status = TaskStatus::Unreviewed;
            r.error = Some(why);
        }
        Err(End::NotApproved(why)) => {
            r.status = TaskStatus::NotApproved;
            r.error = Some(why);
        }
        Err(End::AwaitingApproval) => r.status = TaskStatus::AwaitingApproval,
        Err(End::Rejected(why)) => {
            r.status = TaskStatus::Rejected;
            r.error = Some(why);
        }
    });
    snapshot(&progress)
}

enum End {
    Limit(String),
    Failed(String),
    Cancelled,
    /// The review could not run; the output stands unapproved.
    Unreviewed(String),
    /// The review rounds ran out without an approval; the latest version stands.
    NotApproved(String),
    /// A person's answer is awaited (the output, or a tool call); the run pauses.
    AwaitingApproval,
    /// A person rejected the output.
    Rejected(String),
}

/// What a person said of a task's output.
enum Approved {
    Yes,
    /// Revise, with this feedback.
    Revise(String),
}

/// The reviewer name recorded for a round decided by the deterministic checks.
const CHECKS: &str = "troupe checks";

/// The task as reviewers and managers see it: a per-document task names its document instead
/// of carrying its text.
fn shown_task(task: &Task) -> Task {
    let Some(doc) = &task.document else {
        return task.clone();
    };
    let fill = |text: &str| {
        template::fill_slots(text, |name| match name {
            "document_text" => Some(format!("(the text of `{doc}`, given to the author)")),
            _ => Some(doc.clone()),
        })
    };
    let mut shown = task.clone();
    shown.description = fill(&task.description);
    shown.expected_output = task.expected_output.as_deref().map(fill);
    shown
}

struct Driver<'a> {
    run: &'a RunCtx,
    /// Chunks of the task's document left out of its prompt to fit the window.
    dropped: Mutex<Vec<String>>,
    /// The numbered sources of a constrained writer's cited statements ([`crate::cited`]).
    cited: Mutex<Option<Arc<Vec<crate::cited::Source>>>>,
    task: &'a Task,
    shown: Task,
    idx: usize,
    progress: &'a Progress,
    cancel: CancellationToken,
    /// The task's approval requests so far.
    asked: Arc<AtomicU32>,
}

impl Driver<'_> {
    fn events(&self) -> &Events {
        &self.run.events
    }

    fn handle(&self, agent: &str) -> Result<&AgentHandle, End> {
        self.run
            .agents
            .get(agent)
            .ok_or_else(|| End::Failed(format!("agent `{agent}` is not running")))
    }

    fn job(&self, agent: &str, messages: Vec<Message>, schema: Option<Value>) -> Job {
        // The author works under the task's limits; a reviewer or manager under its own.
        let author = self.task.agent.as_deref().is_none_or(|a| a == agent)
            && self.run.manager.as_ref().is_none_or(|m| m.id != agent);
        let limits = match self.run.crew.agent(agent) {
            Some(a) if !author => a.limits.clone(),
            _ => self.task.limits.clone(),
        };
        Job {
            task: self.idx,
            task_id: self.task.id.clone(),
            messages,
            output_schema: schema,
            limits,
            cancel: self.cancel.clone(),
            // Only the author's answers carry the task's citations.
            citations: if author {
                self.run.corpus.clone()
            } else {
                None
            },
            statements: author && self.is_body(),
            render: self.sources().filter(|_| author).map(|sources| {
                Arc::new(move |v: &Value| crate::cited::render(v, &sources))
                    as crate::executor::Render
            }),
            approvals_asked: self.asked.clone(),
        }
    }

    fn sources(&self) -> Option<Arc<Vec<crate::cited::Source>>> {
        self.cited.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The body of a report written by a model with grammar-constrained decoding is written as
    /// cited statements: the verified citations of its context are its sources. `None` for any
    /// other task or model, or when the context cites nothing verified.
    fn cited_sources(&self, agent: &str) -> Option<Vec<crate::cited::Source>> {
        let corpus = self.run.corpus.as_ref()?;
        let constrained = self.run.agents.get(agent).is_some_and(|h| h.constrained);
        if !constrained || !self.is_body() || self.task.output_schema.is_some() {
            return None;
        }
        let mut found = Vec::new();
        for &i in &self.task.context {
            if let Some(r) = self.run.board.get(&i) {
                let text = r.output.as_deref().unwrap_or_default();
                found.extend(crate::citations::find(
                    corpus,
                    text,
                    r.structured_output.as_ref(),
                ));
            }
        }
        let sources = crate::cited::sources(&found);
        (!sources.is_empty()).then_some(sources)
    }

    /// Whether this task's output is the report's body (see [`crate::report::body_task`]).
    fn is_body(&self) -> bool {
        crate::report::body_task(&self.run.crew) == Some(self.idx)
    }

    fn persona(&self, agent: &str) -> Message {
        Message::system(self.run.crew.agent(agent).map_or_else(
            || format!("You are {agent}."),
            |a| prompt::system(a, &self.run.fence),
        ))
    }

    async fn go(&self) -> Result<(), End> {
        let hierarchical = self.task.agent.is_none();
        let mut previous: Option<(String, String)> = None;
        loop {
            let (agent, instructions) = match &self.task.agent {
                Some(a) => (a.clone(), None),
                None => self.delegate(previous.as_ref()).await?,
            };
            update(self.progress, |r| r.agent = Some(agent.clone()));
            self.events().emit(EventKind::TaskStarted {
                task: self.task.id.clone(),
                agent: agent.clone(),
            });
            let outcome = self.work(&agent, instructions.as_deref()).await?;
            let mut outcome = self.review(&agent, outcome).await?;
            if hierarchical && let Some(feedback) = self.assess(&agent, &outcome).await? {
                previous = Some((agent, feedback));
                continue;
            }
            // A person's approval comes last: after the checks, the review and the manager.
            loop {
                match self.approval(&agent, &outcome).await? {
                    Approved::Yes => return Ok(()),
                    Approved::Revise(feedback) => {
                        let message = prompt::revise_for_person(&self.run.fence, &feedback);
                        let revised = self.revise(&agent, &outcome, message).await?;
                        outcome = self.review(&agent, revised).await?;
                    }
                }
            }
        }
    }

    /// Asks a person for the task's approval, when it needs one (`approval`).
    async fn approval(&self, agent: &str, outcome: &JobOutcome) -> Result<Approved, End> {
        let Some(approval) = &self.task.approval else {
            return Ok(Approved::Yes);
        };
        let n = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let request = crate::approval::ApprovalRequest {
            task: self.task.id.clone(),
            kind: crate::approval::ApprovalKind::Task,
            n,
            message: approval.message.clone(),
            agent: agent.to_string(),
            output: outcome.output.clone(),
            tool: None,
            arguments: None,
        };
        let Some(decision) = self.run.approvals.decide(self.events(), &request).await else {
            return Err(End::AwaitingApproval);
        };
        update(self.progress, |r| {
            r.approvals.push(crate::record::ApprovalRound {
                n,
                decision: decision.verdict,
                feedback: decision.feedback.clone(),
                by: decision.by.clone(),
            });
        });
        let feedback = decision.feedback.clone().unwrap_or_default();
        match decision.verdict {
            crate::approval::Verdict::Approve => Ok(Approved::Yes),
            crate::approval::Verdict::Revise => {
                Ok(Approved::Revise(if feedback.trim().is_empty() {
                    "A person asked for a revision.".into()
                } else {
                    feedback
                }))
            }
            crate::approval::Verdict::Reject => Err(End::Rejected(format!(
                "rejected by {}{}",
                decision.by.as_deref().unwrap_or("a person"),
                if feedback.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {feedback}")
                }
            ))),
        }
    }

    /// The author revises `outcome` after `message` (a reviewer's or a person's feedback).
    async fn revise(
        &self,
        author: &str,
        outcome: &JobOutcome,
        message: String,
    ) -> Result<JobOutcome, End> {
        let mut messages = outcome.messages.clone();
        messages.push(Message::user(message));
        update(self.progress, |r| r.attempts += 1);
        let job = self.job(author, messages, self.output_schema(author));
        let revised = self.handle(author)?.assign(job).await;
        self.absorb(&revised)?;
        Ok(revised)
    }

    /// Records a job's outcome in the progress record; `Err` when the task must end here.
    fn absorb(&self, outcome: &JobOutcome) -> Result<(), End> {
        update(self.progress, |r| {
            if outcome.output.is_some() {
                r.output.clone_from(&outcome.output);
                r.structured_output.clone_from(&outcome.value);
            }
        });
        match &outcome.status {
            JobStatus::Completed => Ok(()),
            JobStatus::LimitReached(l) => Err(End::Limit(format!("limits.{l}"))),
            JobStatus::Failed(e) => Err(End::Failed(e.clone())),
            JobStatus::Cancelled => Err(End::Cancelled),
            JobStatus::AwaitingApproval => Err(End::AwaitingApproval),
        }
    }

    async fn work(&self, agent: &str, instructions: Option<&str>) -> Result<JobOutcome, End> {
        let context: Vec<(String, String, String, Option<String>)> = self
            .task
            .context
            .iter()
            .filter_map(|&i| self.run.board.get(&i).map(|r| r.clone()))
            .map(|r| {
                let note = match r.status {
                    TaskStatus::Completed => None,
                    s => Some(format!(
                        "this task ended `{}`{}; its output may be incomplete",
                        s.as_str(),
                        r.error
                            .as_ref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    )),
                };
                (
                    r.id.clone(),
                    r.agent.clone().unwrap_or_default(),
                    r.output.clone().unwrap_or_else(|| "(no output)".into()),
                    note,
                )
            })
            .collect();
        let sources = self.cited_sources(agent);
        let extra = sources
            .as_ref()
            .map(|s| crate::cited::instructions(&self.run.fence, s))
            .unwrap_or_default();
        *self.cited.lock().unwrap_or_else(|p| p.into_inner()) = sources.map(Arc::new);
        let prompt = self.fit_prompt(agent, context, instructions, &extra)?;
        let messages = vec![self.persona(agent), Message::user(prompt)];
        update(self.progress, |r| r.attempts += 1);
        let job = self.job(agent, messages, self.output_schema(agent));
        let outcome = self.handle(agent)?.assign(job).await;
        self.absorb(&outcome)?;
        Ok(outcome)
    }

    /// The task's output schema; in a per-document task, `chunk` fields may only name that
    /// document's chunks.
    /// For a model with grammar-constrained decoding, `quote` fields may only hold sentences of
    /// that document.
    fn output_schema(&self, agent: &str) -> Option<Value> {
        if let Some(sources) = self.sources() {
            return Some(crate::cited::schema(sources.len()));
        }
        let schema = self.task.output_schema.as_ref()?;
        let doc = match (&self.task.document, &self.run.corpus) {
            (Some(id), Some(corpus)) => corpus.document(id).map(|d| (corpus, d)),
            _ => None,
        };
        let Some((corpus, doc)) = doc else {
            return Some(schema.clone());
        };
        let ids: Vec<String> = corpus.chunks_of(doc).iter().map(|c| c.id.clone()).collect();
        let constrained = self.run.agents.get(agent).is_some_and(|h| h.constrained);
        // Quotes first (each branch fixes its chunk id), then any other `chunk` field is limited
        // to the document's chunks: the restriction holds in both.
        let schema = if constrained {
            // The passages of the chunks the prompt shows: the ones left out to fit the window
            // are named by the `context_cut` event.
            let dropped = self
                .dropped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let chunks: Vec<(String, &str)> = corpus
                .chunks_of(doc)
                .iter()
                .filter(|c| !dropped.contains(&c.id))
                .map(|c| (c.id.clone(), corpus.chunk_text(c)))
                .collect();
            crate::citations::constrain_quotes(schema, &chunks)
        } else {
            schema.clone()
        };
        Some(crate::citations::constrain_chunk_ids(&schema, &ids))
    }

    /// The task prompt, cut to the agent's context window: a per-document task gets its
    /// document's chunks (the least relevant left out when they do not all fit); outputs of
    /// earlier tasks share what room is left. Each cut is a `context_cut` event.
    fn fit_prompt(
        &self,
        agent: &str,
        mut context: Vec<(String, String, String, Option<String>)>,
        instructions: Option<&str>,
        extra: &str,
    ) -> Result<String, End> {
        let render = |task: &Task, context: &[(String, String, String, Option<String>)]| {
            let items: Vec<ContextItem<'_>> = context
                .iter()
                .map(|(task, agent, output, note)| ContextItem {
                    task,
                    agent,
                    output,
                    note: note.as_deref(),
                })
                .collect();
            prompt::task(&self.run.fence, task, &items, instructions) + extra
        };
        let handle = self.handle(agent)?;
        let room =
            (handle.window as usize).saturating_sub(handle.fixed_tokens + handle.reserve + 16);
        let mut task = self.task.clone();
        let mut dropped_chunks = Vec::new();
        let doc = match (&self.task.document, &self.run.corpus) {
            (Some(id), Some(corpus)) => corpus.document(id).map(|d| (corpus, d)),
            _ => None,
        };
        let mut before = 0;
        if let Some((corpus, doc)) = doc {
            let title = doc.title.clone().unwrap_or_else(|| doc.id.clone());
            let fill = |text: &str, doc_text: &str| {
                template::fill_slots(text, |name| match name {
                    "document" => Some(doc.id.clone()),
                    "document_title" => Some(title.clone()),
                    _ => Some(prompt::document(&self.run.fence, &doc.id, doc_text)),
                })
            };
            let mut bare = self.task.clone();
            bare.description = fill(&self.task.description, "");
            bare.expected_output = self.task.expected_output.as_deref().map(|e| fill(e, ""));
            let base = estimate_tokens(&render(&bare, &context));
            let query = format!(
                "{} {}",
                bare.description,
                bare.expected_output.as_deref().unwrap_or_default()
            );
            let full = budget::document_text(corpus, doc, usize::MAX, &query);
            before = base + full.tokens;
            let text = if before <= room {
                full
            } else {
                budget::document_text(corpus, doc, room.saturating_sub(base), &query)
            };
            dropped_chunks = text.dropped;
            self.dropped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone_from(&dropped_chunks);
            task.description = fill(&self.task.description, &text.text);
            task.expected_output = self
                .task
                .expected_output
                .as_deref()
                .map(|e| fill(e, &text.text));
        }
        let mut prompt = render(&task, &context);
        let mut tokens = estimate_tokens(&prompt);
        before = before.max(tokens);
        let mut truncated = Vec::new();
        if tokens > room && !context.is_empty() {
            let context_tokens: usize = context.iter().map(|c| estimate_tokens(&c.2)).sum();
            let others = tokens.saturating_sub(context_tokens);
            let mut outputs: Vec<String> = context.iter().map(|c| c.2.clone()).collect();
            for i in budget::share(&mut outputs, room.saturating_sub(others)) {
                truncated.push(context[i].0.clone());
            }
            for (c, o) in context.iter_mut().zip(outputs) {
                c.2 = o;
            }
            prompt = render(&task, &context);
            tokens = estimate_tokens(&prompt);
        }
        if !dropped_chunks.is_empty() || !truncated.is_empty() {
            self.events().emit(EventKind::ContextCut {
                task: self.task.id.clone(),
                agent: agent.to_string(),
                window: handle.window,
                tokens_before: before + handle.fixed_tokens,
                tokens_after: tokens + handle.fixed_tokens,
                dropped_chunks,
                truncated_context: truncated,
                dropped_tool_results: 0,
            });
        }
        Ok(prompt)
    }

    /// A prompt for `agent` made by `render` around `text` (the work under review, a result to
    /// assess), cut to the agent's window like every task prompt: when it does not fit, `text`
    /// is shortened (with a note saying so) and a `context_cut` event says by how much.
    fn fit_one(
        &self,
        agent: &str,
        text: &str,
        what: &str,
        render: impl Fn(&str) -> String,
    ) -> Result<String, End> {
        let handle = self.handle(agent)?;
        let room =
            (handle.window as usize).saturating_sub(handle.fixed_tokens + handle.reserve + 16);
        let full = render(text);
        let before = estimate_tokens(&full);
        if before <= room {
            return Ok(full);
        }
        let others = before.saturating_sub(estimate_tokens(text));
        let mut cut = vec![text.to_string()];
        budget::share(&mut cut, room.saturating_sub(others));
        let prompt = render(&cut[0]);
        self.events().emit(EventKind::ContextCut {
            task: self.task.id.clone(),
            agent: agent.to_string(),
            window: handle.window,
            tokens_before: before + handle.fixed_tokens,
            tokens_after: estimate_tokens(&prompt) + handle.fixed_tokens,
            dropped_chunks: Vec::new(),
            truncated_context: vec![what.to_string()],
            dropped_tool_results: 0,
        });
        Ok(prompt)
    }

    /// The deterministic checks of an output against the run's documents: a text output's
    /// statements, a JSON output's citations. The problems found; empty when they pass or when
    /// the run has no documents.
    fn checks(&self, outcome: &JobOutcome) -> Vec<String> {
        let Some(corpus) = &self.run.corpus else {
            return Vec::new();
        };
        let text = outcome.output.as_deref().unwrap_or_default();
        match &outcome.value {
            _ if outcome.value.is_some() || !self.is_body() => {
                let found = crate::citations::find(corpus, text, outcome.value.as_ref());
                let failed: Vec<&crate::citations::Citation> =
                    found.iter().filter(|c| !c.check.is_verified()).collect();
                crate::citations::problems(&failed)
            }
            _ => {
                let g = crate::grounding::check_answer(corpus, text, &outcome.messages);
                if g.passed() { Vec::new() } else { g.problems() }
            }
        }
    }

    /// Review rounds. Each round the deterministic checks run first: when they fail the round
    /// asks for a revision with their findings and the reviewer is not asked (an approval never
    /// overrides a failed check); otherwise the reviewer approves or asks for a revision. The
    /// task is approved only by an approving round; when the rounds run out first the latest
    /// version is kept, not approved.
    async fn review(&self, author: &str, mut outcome: JobOutcome) -> Result<JobOutcome, End> {
        let Some(review) = &self.task.review else {
            return Ok(outcome);
        };
        let reviewer = self.handle(&review.by)?;
        for round in 1..=review.max_rounds {
            self.events().emit(EventKind::ReviewStarted {
                task: self.task.id.clone(),
                reviewer: review.by.clone(),
                round,
            });
            let problems = self.checks(&outcome);
            let (approved, feedback, by) = if problems.is_empty() {
                let current = outcome.output.clone().unwrap_or_default();
                let request =
                    self.fit_one(&review.by, &current, "the work under review", |work| {
                        prompt::review(
                            &self.run.fence,
                            &self.shown,
                            work,
                            review.criteria.as_deref(),
                            round,
                        )
                    })?;
                let messages = vec![self.persona(&review.by), Message::user(request)];
                let verdict = reviewer
                    .assign(self.job(&review.by, messages, Some(prompt::review_schema())))
                    .await;
                let answer = verdict
                    .value
                    .filter(|_| verdict.status == JobStatus::Completed)
                    .and_then(|v| serde_json::from_value::<prompt::ReviewAnswer>(v).ok());
                let Some(answer) = answer else {
                    match verdict.status {
                        JobStatus::Cancelled => return Err(End::Cancelled),
                        JobStatus::AwaitingApproval => return Err(End::AwaitingApproval),
                        _ => {}
                    }
                    let why = match &verdict.status {
                        JobStatus::Failed(e) => e.clone(),
                        JobStatus::LimitReached(l) => format!("limit `{l}` reached"),
                        _ => "no verdict".into(),
                    };
                    let message = format!(
                        "review round {round} by `{}` could not run ({why}): the output is kept, unreviewed",
                        review.by
                    );
                    self.events().emit(EventKind::Warning {
                        task: Some(self.task.id.clone()),
                        message: message.clone(),
                    });
                    return Err(End::Unreviewed(message));
                };
                (
                    answer.verdict == prompt::Verdict::Approve,
                    answer.feedback,
                    review.by.clone(),
                )
            } else {
                (
                    false,
                    prompt::check_failed(
                        &self.run.fence,
                        "check",
                        &problems,
                        "Fix these before the reviewer sees the work.",
                    ),
                    CHECKS.to_string(),
                )
            };
            self.events().emit(EventKind::ReviewVerdict {
                task: self.task.id.clone(),
                reviewer: by.clone(),
                round,
                approved,
                feedback: if problems.is_empty() {
                    feedback.clone()
                } else {
                    problems.join("; ")
                },
            });
            update(self.progress, |r| {
                r.review.push(ReviewRound {
                    round,
                    reviewer: by.clone(),
                    approved,
                    feedback: if problems.is_empty() {
                        feedback.clone()
                    } else {
                        problems.join("\n")
                    },
                    failed_checks: problems.clone(),
                });
            });
            if approved {
                return Ok(outcome);
            }
            if round == review.max_rounds {
                self.events().emit(EventKind::ReviewRoundsExhausted {
                    task: self.task.id.clone(),
                    rounds: round,
                });
            }
            let message = if problems.is_empty() {
                prompt::revise(&self.run.fence, &feedback)
            } else {
                feedback.clone()
            };
            outcome = self.revise(author, &outcome, message).await?;
        }
        Err(End::NotApproved(format!(
            "no review round approved it (`review.max_rounds` = {}): the latest version is kept, not approved",
            review.max_rounds
        )))
    }

    /// The manager picks an agent (hierarchical process).
    async fn delegate(
        &self,
        previous: Option<&(String, String)>,
    ) -> Result<(String, Option<String>), End> {
        let Some(manager) = &self.run.manager else {
            return Err(End::Failed("the crew has no manager".into()));
        };
        let n = self.run.delegations.fetch_add(1, Ordering::SeqCst) + 1;
        let max = self.run.crew.limits.max_delegations;
        if n > max {
            self.events().emit(EventKind::LimitHit {
                task: Some(self.task.id.clone()),
                agent: Some(manager.id.clone()),
                limit: "max_delegations".into(),
                value: max.to_string(),
                key: "limits.max_delegations".into(),
                action: "no further delegation; the task ends with what it has".into(),
            });
            return Err(End::Limit("limits.max_delegations".into()));
        }
        let candidates: Vec<&troupe_crew::Agent> = self
            .run
            .crew
            .agents
            .iter()
            .filter(|a| a.allow_delegation && a.id != manager.id)
            .collect();
        let ids: Vec<&str> = candidates.iter().map(|a| a.id.as_str()).collect();
        let messages = vec![
            self.persona(&manager.id),
            Message::user(prompt::delegate(
                &self.run.fence,
                &self.shown,
                &candidates,
                previous.map(|(a, f)| (a.as_str(), f.as_str())),
            )),
        ];
        let outcome = manager
            .assign(self.job(&manager.id, messages, Some(prompt::delegate_schema(&ids))))
            .await;
        let value = match (&outcome.status, outcome.value) {
            (JobStatus::Completed, Some(v)) => v,
            (JobStatus::Cancelled, _) => return Err(End::Cancelled),
            (JobStatus::AwaitingApproval, _) => return Err(End::AwaitingApproval),
            (s, _) => {
                return Err(End::Failed(format!(
                    "the manager could not assign the task: {s:?}"
                )));
            }
        };
        let agent = value["agent"].as_str().unwrap_or_default().to_string();
        let instructions = value["instructions"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.events().emit(EventKind::TaskDelegated {
            task: self.task.id.clone(),
            agent: agent.clone(),
            by: manager.id.clone(),
            delegation: n,
            reason: instructions.clone(),
        });
        update(self.progress, |r| {
            r.delegations.push(Delegation {
                agent: agent.clone(),
                instructions: instructions.clone(),
                accepted: None,
                feedback: None,
            });
        });
        Ok((agent, Some(instructions).filter(|i| !i.is_empty())))
    }

    /// The manager accepts the result (`None`) or sends it elsewhere (`Some(feedback)`).
    async fn assess(&self, agent: &str, outcome: &JobOutcome) -> Result<Option<String>, End> {
        let Some(manager) = &self.run.manager else {
            return Ok(None);
        };
        let output = outcome.output.clone().unwrap_or_default();
        let request = self.fit_one(&manager.id, &output, "the result", |out| {
            prompt::assess(&self.run.fence, &self.shown, agent, out)
        })?;
        let messages = vec![self.persona(&manager.id), Message::user(request)];
        let verdict = manager
            .assign(self.job(&manager.id, messages, Some(prompt::assess_schema())))
            .await;
        let (accepted, feedback) = match (&verdict.status, &verdict.value) {
            (JobStatus::Completed, Some(v)) => (
                v["decision"] != "reassign",
                v["feedback"].as_str().unwrap_or_default().to_string(),
            ),
            (JobStatus::Cancelled, _) => return Err(End::Cancelled),
            (JobStatus::AwaitingApproval, _) => return Err(End::AwaitingApproval),
            (s, _) => {
                let message = format!(
                    "the manager `{}` could not assess the result ({s:?}): the output is kept, unreviewed",
                    manager.id
                );
                self.events().emit(EventKind::Warning {
                    task: Some(self.task.id.clone()),
                    message: message.clone(),
                });
                return Err(End::Unreviewed(message));
            }
        };
        update(self.progress, |r| {
            if let Some(d) = r.delegations.last_mut() {
                d.accepted = Some(accepted);
                d.feedback = Some(feedback.clone()).filter(|f| !f.is_empty());
            }
        });
        Ok((!accepted).then_some(feedback))
    }
}

/// Snapshot used by the coordinator when a driver is dropped (timeout).
pub(crate) fn current(progress: &Progress) -> TaskRecord {
    snapshot(progress)
}
