//! A person in the loop through the binary: `troupe run` without a terminal pauses at a task
//! that needs approval (exit 4, saying how to answer); `troupe approve` answers from another
//! process and continues the run — a revision goes back to the author with the person's words,
//! an approval completes it; nothing done before the pause is asked of the model again.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;
use troupe_testkit::{FakeServer, Reply};

fn crew(dir: &Path) -> std::path::PathBuf {
    crew_file(
        dir,
        "memo.json",
        &json!({
            "name": "memo",
            "llm": {"model": "m"},
            "agents": [
                {"id": "writer", "role": "Writer", "goal": "G"},
                {"id": "editor", "role": "Editor", "goal": "G", "tools": ["text.stats"]}
            ],
            "tasks": [
                {"id": "draft", "agent": "writer", "description": "Draft a memo", "output_file": "draft.md"},
                {"id": "final", "agent": "editor", "description": "Polish it", "context": ["draft"],
                 "output_file": "final.md",
                 "approval": {"message": "Send this memo to the board?"}}
            ],
            "tools": {"text.stats": {"approve": true}}
        }),
    )
}

/// The editor measures the draft with `text.stats` (a tool that needs approval), then answers;
/// a revision request makes it answer shorter.
fn model() -> FakeServer {
    FakeServer::start(|r| {
        if r.is("Writer") {
            Reply::text("DRAFT: the budget grows by 4% next year.")
        } else if r.tool_results().is_empty() && !r.last().contains("Shorter") {
            Reply::tool_call(
                "text.stats",
                &json!({"text": "the budget grows"}).to_string(),
            )
        } else if r.last().contains("Shorter") {
            Reply::text("FINAL (short): budget +4%.")
        } else {
            Reply::text(&format!("FINAL after {}", r.tool_results().join(" ")))
        }
    })
}

fn troupe_in(server: &str, store: &Path) -> std::process::Command {
    let mut c = troupe(server);
    c.env("TROUPE_STORE", store);
    c
}

#[test]
fn a_run_pauses_for_approval_and_troupe_approve_continues_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("runs.db");
    let server = model();
    let out = tmp.path().join("out");
    let crew = crew(tmp.path());

    // 1. The tool call waits for a person: the run pauses, exit 4, with how to answer.
    let o = troupe_in(&server.url, &store)
        .arg("run")
        .arg(&crew)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("paused: waiting for a person's approval of `final`"),
        "{err}"
    );
    assert!(err.contains("troupe approve"), "{err}");
    let run = read_json(&out.join("run.json"));
    assert_eq!(run["status"], "awaiting_approval");
    assert_eq!(task(&run, "draft")["status"], "completed");
    assert_eq!(task(&run, "final")["status"], "awaiting_approval");
    let id = run["run_id"].as_str().unwrap().to_string();
    let log = events(&out);
    let asked = of_type(&log, "approval_requested");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["kind"], "tool");
    assert!(
        asked[0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("text.stats(")
    );
    assert_eq!(
        server.requests().len(),
        2,
        "draft, then the editor's tool call"
    );

    // 2. Approve the call: the run goes on, the tool runs, the output waits for approval.
    let o = troupe_in(&server.url, &store)
        .args(["approve", &id[..13], "final"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    let final_ = task(&run, "final");
    assert_eq!(final_["status"], "awaiting_approval");
    assert!(
        final_["output"]
            .as_str()
            .unwrap()
            .starts_with("FINAL after"),
        "{final_}"
    );
    assert!(
        final_["output"].as_str().unwrap().contains("words"),
        "the tool ran: {final_}"
    );
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        3,
        "the two recorded calls were not made again"
    );

    // 3. Ask for a revision: the author gets the person's words; it waits again.
    let o = troupe_in(&server.url, &store)
        .args(["approve", &id, "final", "--revise", "Shorter, please."])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    assert_eq!(task(&run, "final")["output"], "FINAL (short): budget +4%.");
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    let last = requests.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(last.contains("Shorter, please."), "{last}");

    // 4. Approve: completed, exit 0; the output file is the approved version.
    let o = troupe_in(&server.url, &store)
        .args(["approve", &id, "final"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    assert_eq!(run["status"], "completed");
    let approvals = task(&run, "final")["approvals"].as_array().unwrap().clone();
    let decisions: Vec<&str> = approvals
        .iter()
        .map(|a| a["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["revise", "approve"]);
    assert_eq!(
        std::fs::read_to_string(out.join("final.md"))
            .unwrap()
            .trim(),
        "FINAL (short): budget +4%."
    );
    assert_eq!(server.requests().len(), 4, "approving cost no model call");
    // The log went on across the pauses, numbered without a gap.
    let seqs: Vec<u64> = events(&out)
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // Nothing waits any more: answering again says so.
    let o = troupe_in(&server.url, &store)
        .args(["approve", &id, "final", "--reject"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not waiting for an approval"));
}

#[test]
fn a_rejected_tool_call_reaches_the_model_as_a_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("runs.db");
    let server = model();
    let out = tmp.path().join("out");
    let o = troupe_in(&server.url, &store)
        .arg("run")
        .arg(crew(tmp.path()))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let id = read_json(&out.join("run.json"))["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = troupe_in(&server.url, &store)
        .args([
            "approve",
            &id,
            "final",
            "--reject",
            "--note",
            "no tools on board memos",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let run = read_json(&out.join("run.json"));
    let output = task(&run, "final")["output"].as_str().unwrap().to_string();
    assert!(
        output.contains("a person declined this call of `text.stats`"),
        "{output}"
    );
    assert!(output.contains("no tools on board memos"), "{output}");
}

/// On a terminal, `troupe run` asks there: the tool call, then the output; a revision asked for
/// on the terminal goes back to the author and the new version is asked about; the approval
/// completes the run (exit 0). A real pseudo-terminal (rexpect), not a mock of one.
#[test]
fn on_a_terminal_troupe_run_asks_and_takes_the_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("runs.db");
    let server = model();
    let out = tmp.path().join("out");
    let mut cmd = troupe_in(&server.url, &store);
    cmd.arg("run").arg(crew(tmp.path())).arg("--out").arg(&out);
    let mut term = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    term.exp_string("wants to call `text.stats`").unwrap();
    term.exp_string("[a]pprove").unwrap();
    term.send_line("a").unwrap();
    term.exp_string("needs your approval").unwrap();
    term.exp_string("Send this memo to the board?").unwrap();
    term.exp_string("[a]pprove").unwrap();
    term.send_line("r").unwrap();
    term.exp_string("what should change?").unwrap();
    term.send_line("Shorter, please.").unwrap();
    term.exp_string("FINAL (short)").unwrap();
    term.exp_string("[a]pprove").unwrap();
    term.send_line("a").unwrap();
    term.exp_string("completed").unwrap();
    term.exp_eof().unwrap();
    let run = read_json(&out.join("run.json"));
    assert_eq!(run["status"], "completed");
    let decisions: Vec<String> = task(&run, "final")["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["decision"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(decisions, ["revise", "approve"]);
    assert_eq!(
        std::fs::read_to_string(out.join("final.md"))
            .unwrap()
            .trim(),
        "FINAL (short): budget +4%."
    );
}
