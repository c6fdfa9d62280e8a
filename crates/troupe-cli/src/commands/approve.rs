//! `troupe approve RUN TASK [--revise FEEDBACK | --reject]`: answers a task's open approval
//! request in the store, then continues the paused run here (as `troupe resume` would). A run
//! that a live process owns (a server) is only answered: its owner goes on.
//!
//! Also the terminal prompt `troupe run` asks with when it runs on a terminal.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use troupe_runtime::approval::{ApprovalGate, ApprovalKind, ApprovalRequest, Decision, Verdict};
use troupe_runtime::launch::{self, ResumeCrew};
use troupe_runtime::models::ProviderFactory;
use troupe_store::{Decided, Standing};

use crate::cli::ApproveArgs;
use crate::exit::{Failure, OK};

use super::run::{Execution, execute};

pub fn approve(args: ApproveArgs) -> Result<u8, Failure> {
    let store = super::open_store(&args.store)?;
    let id = store.resolve(&args.run).map_err(Failure::user)?;
    let verdict = match (&args.revise, args.reject) {
        (Some(_), _) => Verdict::Revise,
        (None, true) => Verdict::Reject,
        (None, false) => Verdict::Approve,
    };
    let feedback = args.revise.clone().or(args.note.clone());
    let decided = Decided {
        decision: verdict.as_str().into(),
        feedback,
        by: Some(format!("troupe approve ({})", whoami())),
        at_ms: now_ms(),
    };
    let n = store
        .decide_approval(&id, &args.task, &decided)
        .map_err(Failure::user)?;
    crate::term::err_line(&format!(
        "{} request {n} of task `{}` in run {id}",
        match verdict {
            Verdict::Approve => "approved",
            Verdict::Revise => "asked for a revision of",
            Verdict::Reject => "rejected",
        },
        args.task
    ));
    let row = store.run(&id).map_err(Failure::user)?;
    if row.standing == Standing::Running {
        crate::term::err_line(&format!(
            "  run {id} is running (pid {} on {}): it goes on with the answer when the task is asked again",
            row.owner_pid, row.owner_host
        ));
        return Ok(OK);
    }
    if args.no_continue {
        crate::term::err_line(&format!(
            "  continue the run with `troupe resume {}`",
            launch::short(&id)
        ));
        return Ok(OK);
    }
    let r = launch::resume(&store, &id, ResumeCrew::OnDisk, None).map_err(Failure::user)?;
    execute(Execution {
        crew: r.crew,
        out: r.out_dir,
        documents: r.documents,
        store,
        continuation: Some(r.continuation),
        models: Arc::new(ProviderFactory::from_env()),
        progress: args.progress,
        approvals: terminal_gate(),
        otlp: None,
    })
}

/// The terminal prompt, when both standard input and standard error are terminals; `None`
/// otherwise (a paused run waits for `troupe approve`).
pub fn terminal_gate() -> Option<Arc<dyn ApprovalGate>> {
    (std::io::stdin().is_terminal() && std::io::stderr().is_terminal())
        .then(|| Arc::new(Terminal) as Arc<dyn ApprovalGate>)
}

/// Asks on the terminal. One question at a time: parallel tasks wait for each other's answer.
struct Terminal;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl ApprovalGate for Terminal {
    fn ask<'a>(
        &'a self,
        request: &'a ApprovalRequest,
    ) -> troupe_llm::BoxFuture<'a, Option<Decision>> {
        Box::pin(async move {
            let _turn = ONE_AT_A_TIME.lock().await;
            let text = question(request);
            tokio::task::spawn_blocking(move || ask_blocking(&text))
                .await
                .ok()
                .flatten()
        })
    }
}

fn question(r: &ApprovalRequest) -> String {
    let mut s = match r.kind {
        ApprovalKind::Task => format!("\n? task `{}` by {} needs your approval", r.task, r.agent),
        ApprovalKind::Tool => format!(
            "\n? {} wants to call `{}` (task `{}`)",
            r.agent,
            r.tool.as_deref().unwrap_or_default(),
            r.task
        ),
    };
    if let Some(m) = &r.message {
        s.push_str(&format!("\n  {m}"));
    }
    let body = match r.kind {
        ApprovalKind::Task => r.output.clone().unwrap_or_default(),
        ApprovalKind::Tool => r.arguments.clone().unwrap_or_default(),
    };
    let lines: Vec<&str> = body.lines().collect();
    for l in lines.iter().take(40) {
        s.push_str(&format!("\n  │ {l}"));
    }
    if lines.len() > 40 {
        s.push_str(&format!("\n  │ … ({} more lines)", lines.len() - 40));
    }
    s
}

/// Reads the answer: `a`pprove, `r`evise (then the feedback), re`j`ect, or `l`ater (pause).
fn ask_blocking(question: &str) -> Option<Decision> {
    crate::term::err_line(question);
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        crate::term::err_line("  [a]pprove · [r]evise · re[j]ect · [l]ater (pause the run) ?");
        let line = lines.next()?.ok()?;
        let by = Some(format!("{} (terminal)", whoami()));
        match line.trim().to_lowercase().as_str() {
            "a" | "approve" | "y" | "yes" => {
                return Some(Decision {
                    verdict: Verdict::Approve,
                    feedback: None,
                    by,
                });
            }
            "r" | "revise" => {
                crate::term::err_line("  what should change?");
                let feedback = lines.next()?.ok()?;
                return Some(Decision {
                    verdict: Verdict::Revise,
                    feedback: Some(feedback),
                    by,
                });
            }
            "j" | "reject" | "n" | "no" => {
                crate::term::err_line("  why (optional)?");
                let why = lines.next().and_then(Result::ok).unwrap_or_default();
                return Some(Decision {
                    verdict: Verdict::Reject,
                    feedback: Some(why).filter(|w| !w.trim().is_empty()),
                    by,
                });
            }
            "l" | "later" => return None,
            _ => {}
        }
    }
}

fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "a person".into())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
