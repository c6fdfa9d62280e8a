//! Agents as actors: a bounded inbox, a `Clone` handle, replies on a oneshot.
//!
//! The actor loop only receives; each job runs in its own tracked task with its own state, so the
//! same agent can hold several tasks at once (parallel crews) without sharing an executor.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::executor::{self, AgentCtx, Job, JobOutcome, JobStatus};

/// Inbox size: jobs waiting to be picked up by one agent. A sender waits when it is full.
const INBOX: usize = 64;

enum Msg {
    Assign {
        job: Job,
        reply: oneshot::Sender<JobOutcome>,
    },
}

/// A handle to a running agent.
#[derive(Clone)]
pub struct AgentHandle {
    pub id: String,
    /// The agent's context window, and what its persona and tool specs take of it: what is left
    /// for a task prompt is `window - fixed - answer reserve`.
    pub window: u32,
    pub fixed_tokens: usize,
    pub reserve: usize,
    /// The model enforces output schemas with a grammar ([`troupe_llm::ChatModel::constrained_decoding`]).
    pub constrained: bool,
    tx: mpsc::Sender<Msg>,
}

impl AgentHandle {
    /// Starts the agent's actor on `tracker`; it stops when `stop` is cancelled.
    pub fn spawn(ctx: Arc<AgentCtx>, tracker: &TaskTracker, stop: CancellationToken) -> Self {
        let (tx, rx) = mpsc::channel(INBOX);
        let id = ctx.agent.id.clone();
        let window = ctx.window;
        let fixed_tokens = crate::budget::tools_tokens(&ctx.tools.specs())
            + crate::budget::message_tokens(&troupe_llm::Message::system(crate::prompt::system(
                &ctx.agent, &ctx.fence,
            )));
        let reserve = crate::budget::answer_reserve(&ctx.agent, window);
        let constrained = ctx.model.constrained_decoding();
        tracker.spawn(run(ctx, rx, tracker.clone(), stop));
        Self {
            id,
            window,
            fixed_tokens,
            reserve,
            constrained,
            tx,
        }
    }

    /// Assigns a job and waits for its outcome.
    pub async fn assign(&self, job: Job) -> JobOutcome {
        let (reply, rx) = oneshot::channel();
        // The agent stops when the run stops: a job it never took is then cancelled, not failed.
        let cancel = job.cancel.clone();
        let gone = |messages| JobOutcome {
            status: if cancel.is_cancelled() {
                JobStatus::Cancelled
            } else {
                JobStatus::Failed(format!("agent `{}` is no longer running", self.id))
            },
            output: None,
            value: None,
            messages,
        };
        if let Err(mpsc::error::SendError(Msg::Assign { job, .. })) =
            self.tx.send(Msg::Assign { job, reply }).await
        {
            return gone(job.messages);
        }
        rx.await.unwrap_or_else(|_| gone(Vec::new()))
    }
}

async fn run(
    ctx: Arc<AgentCtx>,
    mut rx: mpsc::Receiver<Msg>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            () = stop.cancelled() => None,
        };
        let Some(Msg::Assign { job, reply }) = msg else {
            break;
        };
        let ctx = ctx.clone();
        tracker.spawn(async move {
            let outcome = executor::execute(&ctx, job).await;
            let _ = reply.send(outcome);
        });
    }
}
