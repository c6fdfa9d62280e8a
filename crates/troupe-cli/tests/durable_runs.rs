//! Durable runs through the `troupe` binary: a run killed with SIGKILL at any of its model calls
//! resumes to the outputs of an uninterrupted run without paying again for what it recorded;
//! a replay from a task re-runs only it and what depends on it; `--replay-calls` answers from a
//! recording and fails with the difference on a changed prompt; a resume refuses a changed crew
//! and a run that is still owned.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on a broken fixture

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use troupe_testkit::{FakeServer, Reply, Request};

const DOCS: usize = 7;

fn textstats() -> PathBuf {
    built("plugins/textstats-c/textstats.wasm")
}

/// A crew with a fan-out (one summary per document, each with a built-in tool call), a tool
/// loop through a WebAssembly plugin, a review loop that asks for one revision, and a last task.
fn crew(dir: &Path) -> PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..DOCS {
        std::fs::write(
            docs.join(format!("doc{i}.txt")),
            format!("Document {i} says the tide rises {i} times and falls {i} times a day.\n"),
        )
        .unwrap();
    }
    crew_file(
        dir,
        "durable.json",
        &json!({
            "name": "durable",
            "llm": {"model": "m"},
            "documents": {"paths": ["docs"]},
            "plugins": [{"id": "textstats", "path": textstats()}],
            "agents": [
                {"id": "summariser", "role": "Summariser", "goal": "Summarise", "tools": ["text.stats"]},
                {"id": "editor", "role": "Editor", "goal": "Combine", "tools": ["textstats.stats"]},
                {"id": "reviewer", "role": "Reviewer", "goal": "Check"}
            ],
            "tasks": [
                {"id": "summarise", "agent": "summariser", "for_each": "document",
                 "description": "Summarise {document}: {document_text}"},
                {"id": "combine", "agent": "editor", "context": ["summarise"],
                 "description": "Combine the summaries", "output_file": "combined.md",
                 "review": {"by": "reviewer", "max_rounds": 2}},
                {"id": "final", "agent": "summariser", "context": ["combine"],
                 "description": "Write the final note", "output_file": "final.md"}
            ]
        }),
    )
}

/// The model, as a pure function of the request: any order of calls gets the same answers.
fn reply(r: &Request) -> Reply {
    let all: String = r
        .messages()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    if r.is("Summariser") {
        let tool = r.tool_results().first().map(|t| t.to_string());
        if r.task().contains("Write the final note") {
            return match tool {
                None => Reply::tool_call("text.stats", r#"{"text": "the final note"}"#),
                Some(t) => Reply::text(&format!("Final note ({} chars of stats).", t.len())),
            };
        }
        let doc = r
            .task()
            .split("Summarise ")
            .nth(1)
            .and_then(|s| s.split(':').next())
            .unwrap_or("?")
            .to_string();
        match tool {
            None => Reply::tool_call("text.stats", &json!({"text": doc}).to_string()),
            Some(t) => Reply::text(&format!("Summary of {doc}: {}", t.len())),
        }
    } else if r.is("Editor") {
        if r.tool_results().is_empty() {
            return Reply::tool_call("textstats.stats", r#"{"text": "All the summaries."}"#);
        }
        let revised = all.contains("Mark it revised");
        Reply::text(&format!(
            "Combined{} {} summaries.",
            if revised { " (revised)" } else { "" },
            all.matches("Summary of").count()
        ))
    } else if r.is("Reviewer") {
        if all.contains("(revised)") {
            Reply::text(r#"{"verdict": "approve", "feedback": "Good."}"#)
        } else {
            Reply::text(r#"{"verdict": "revise", "feedback": "Mark it revised."}"#)
        }
    } else {
        Reply::error(400, None)
    }
}

/// A server that answers with [`reply`], except that the request numbered `hold` (1-based, over
/// the server's life) is never answered in time: the run is killed while it waits.
struct Server {
    fake: FakeServer,
    hold: Arc<AtomicUsize>,
}

impl Server {
    fn start() -> Self {
        let hold = Arc::new(AtomicUsize::new(0));
        let h = hold.clone();
        let fake = FakeServer::start(move |r| {
            if r.index + 1 == h.load(Ordering::SeqCst) {
                reply(r).after(Duration::from_secs(120))
            } else {
                reply(r)
            }
        });
        Self { fake, hold }
    }
    fn seen(&self) -> usize {
        self.fake.requests().len()
    }

    /// Starts `troupe run` on `crew` and returns once the server has its `k`-th request from
    /// it, which is held: the run is then in flight at that call.
    fn run_held_at(&self, k: usize, store: &Path, crew: &Path, out: &Path) -> std::process::Child {
        let before = self.seen();
        self.hold.store(before + k, Ordering::SeqCst);
        let child = troupe_with(&self.fake.url, store)
            .arg("run")
            .arg(crew)
            .arg("--out")
            .arg(out)
            .arg("-q")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut waited = 0;
        while self.seen() < before + k {
            assert!(waited < 600, "the run never made call {k}");
            std::thread::sleep(Duration::from_millis(50));
            waited += 1;
        }
        child
    }
}

fn troupe_with(server: &str, store: &Path) -> std::process::Command {
    let mut c = troupe(server);
    c.env("TROUPE_STORE", store);
    c
}

/// What a run delivered: each task's status and output, and the output files.
fn delivered(out: &Path) -> Value {
    let run = read_json(&out.join("run.json"));
    let tasks: Vec<Value> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            json!({"id": t["id"], "status": t["status"], "output": t["output"],
                        "review": t["review"].as_array().map(Vec::len)})
        })
        .collect();
    let file = |n: &str| std::fs::read_to_string(out.join(n)).ok();
    json!({"tasks": tasks, "combined": file("combined.md"), "final": file("final.md")})
}

fn only_run(store: &Path) -> String {
    let s = troupe_store::Store::open(store).unwrap();
    let runs = s.runs(&troupe_store::RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 1);
    runs[0].id.clone()
}

/// The task of each model call the run recorded with an answer.
fn recorded_model_calls(store: &Path, run: &str) -> Vec<String> {
    let s = troupe_store::Store::open(store).unwrap();
    s.calls(run)
        .unwrap()
        .into_iter()
        .filter(|c| c.kind == "model" && c.response.is_some())
        .map(|c| c.task.unwrap_or_default())
        .collect()
}

#[test]
fn a_run_killed_at_any_model_call_resumes_to_the_same_outputs_without_paying_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew(tmp.path());
    let server = Server::start();

    // The uninterrupted run.
    let store = tmp.path().join("baseline.db");
    let out = tmp.path().join("baseline");
    let o = troupe_with(&server.fake.url, &store)
        .arg("run")
        .arg(&crew)
        .arg("--out")
        .arg(&out)
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let total = server.seen();
    let expected = delivered(&out);
    assert!(total >= 20, "the crew makes only {total} model calls");
    assert_eq!(expected["tasks"][DOCS]["review"], 2, "{expected:#}");
    assert!(
        expected["combined"]
            .as_str()
            .unwrap()
            .contains(&format!("(revised) {DOCS} summaries")),
        "{expected:#}"
    );

    // Killed while model call k is in flight, for every k; then resumed.
    let mut caught_up = Vec::new();
    for k in 1..=total {
        let store = tmp.path().join(format!("kill{k}.db"));
        let out = tmp.path().join(format!("kill{k}"));
        let before = server.seen();
        let mut child = server.run_held_at(k, &store, &crew, &out);
        child.kill().unwrap();
        child.wait().unwrap();
        let made = server.seen() - before;
        let id = only_run(&store);
        let recorded_tasks = recorded_model_calls(&store, &id);
        let recorded = recorded_tasks.len();
        // Asked but not recorded: in flight at the kill (the held call, and any answered but
        // not yet written).
        let in_flight = made - recorded;
        assert!(in_flight >= 1, "kill point {k}");

        server.hold.store(0, Ordering::SeqCst);
        let before_resume = server.seen();
        let o = troupe_with(&server.fake.url, &store)
            .args(["resume", &id[..13], "-q"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "kill point {k}: {}", text(&o));
        let resumed = server.seen() - before_resume;
        assert_eq!(delivered(&out), expected, "kill point {k}");
        assert!(
            made + resumed <= total + in_flight,
            "kill point {k}: {made} + {resumed} requests, uninterrupted {total}, in flight {in_flight}"
        );
        // The kept tasks' calls are not made again; every recorded call of a task that runs
        // again is answered from the record; only the rest reach the server.
        let ev = events(&out);
        let continued = of_type(&ev, "run_continued");
        assert_eq!(continued.len(), 1, "kill point {k}");
        assert_eq!(continued[0]["mode"], "resume");
        let kept: Vec<&str> = continued[0]["kept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let replayed = of_type(&ev, "call_replayed")
            .iter()
            .filter(|e| e["kind"] == "model")
            .count();
        let recorded_rerun = recorded_tasks
            .iter()
            .filter(|t| !kept.contains(&t.as_str()))
            .count();
        assert_eq!(replayed, recorded_rerun, "kill point {k}");
        if replayed > 0 {
            caught_up.push((k, replayed));
        }
        assert_eq!(resumed, total - recorded, "kill point {k}");
        // The log goes on where it stopped: numbered on, never restarted.
        let seqs: Vec<u64> = ev.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "kill point {k}: {seqs:?}"
        );
        let s = troupe_store::Store::open(&store).unwrap();
        assert_eq!(s.run(&id).unwrap().standing.as_str(), "completed");
    }
    // Kills in the middle of a task (its tool loop, its review rounds, the last task's tool
    // call) left recorded calls that the re-run task caught up on.
    eprintln!("kill points that caught up from the record (point, calls): {caught_up:?}");
    assert!(caught_up.len() >= 5, "{caught_up:?}");
}

/// Runs the crew to completion with its own store; returns the store, the output directory and
/// the run's id.
fn completed_run(
    server: &Server,
    dir: &Path,
    crew: &Path,
    name: &str,
) -> (PathBuf, PathBuf, String) {
    let store = dir.join(format!("{name}.db"));
    let out = dir.join(name);
    let o = troupe_with(&server.fake.url, &store)
        .arg("run")
        .arg(crew)
        .arg("--out")
        .arg(&out)
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let id = only_run(&store);
    (store, out, id)
}

/// The roles of the requests the server got since `from`.
fn roles_since(server: &Server, from: usize) -> Vec<String> {
    server.fake.requests()[from..]
        .iter()
        .map(|r| {
            let system = r["messages"][0]["content"].as_str().unwrap_or_default();
            ["Summariser", "Editor", "Reviewer"]
                .into_iter()
                .find(|role| system.contains(&format!("You are {role}")))
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

#[test]
fn a_replay_from_a_task_reruns_only_it_and_what_depends_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew(tmp.path());
    let server = Server::start();
    let (store, out, parent) = completed_run(&server, tmp.path(), &crew, "parent");
    let expected = delivered(&out);

    // From the review-gated task: the seven summaries are kept; combine (two calls, a revision
    // and two verdicts) and final (two calls) run again.
    let before = server.seen();
    let o = troupe_with(&server.fake.url, &store)
        .args(["replay", &parent[..13], "--from", "combine", "-q"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let roles = roles_since(&server, before);
    assert_eq!(
        roles.iter().filter(|r| *r == "Editor").count(),
        3,
        "{roles:?}"
    );
    assert_eq!(
        roles.iter().filter(|r| *r == "Reviewer").count(),
        2,
        "{roles:?}"
    );
    // The summariser only writes the final note: no summary was asked again.
    let summaries_asked = server.fake.requests()[before..]
        .iter()
        .filter(|r| {
            r["messages"][1]["content"]
                .as_str()
                .unwrap_or("")
                .contains("Summarise ")
        })
        .count();
    assert_eq!(summaries_asked, 0, "{roles:?}");
    assert!(roles.iter().any(|r| r == "Summariser"), "{roles:?}");
    let replay_out = PathBuf::from(format!("{}-replay", out.display()));
    assert_eq!(delivered(&replay_out), expected);
    let s = troupe_store::Store::open(&store).unwrap();
    let runs = s.runs(&troupe_store::RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].parent.as_deref(), Some(parent.as_str()));
    let ev = events(&replay_out);
    let continued = of_type(&ev, "run_continued");
    assert_eq!(continued[0]["mode"], "replay");
    assert_eq!(continued[0]["kept"].as_array().unwrap().len(), DOCS);
    assert_eq!(continued[0]["rerun"], json!(["combine", "final"]));

    // One fan-out instance: it, and everything downstream of it, run again; its siblings don't.
    let before = server.seen();
    let o = troupe_with(&server.fake.url, &store)
        .args([
            "replay",
            &parent,
            "--from",
            "summarise[doc3.txt]",
            "-q",
            "--out",
        ])
        .arg(tmp.path().join("one"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let summaries: Vec<Value> = server.fake.requests()[before..]
        .iter()
        .filter(|r| {
            r["messages"][1]["content"]
                .as_str()
                .unwrap_or("")
                .contains("Summarise ")
        })
        .cloned()
        .collect();
    assert_eq!(
        summaries.len(),
        2,
        "one instance: its tool call and its answer"
    );
    assert!(summaries.iter().all(|r| {
        r["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("doc3.txt")
    }));
    assert_eq!(delivered(&tmp.path().join("one")), expected);

    // A changed crew may change what is re-run; a change to a kept task is refused, with where.
    let mut changed = read_json(&crew);
    changed["tasks"][2]["description"] = json!("Write the final note, briefly");
    let changed_file = crew_file(tmp.path(), "changed.json", &changed);
    let o = troupe_with(&server.fake.url, &store)
        .args(["replay", &parent, "--from", "final", "-q", "--crew"])
        .arg(&changed_file)
        .arg("--out")
        .arg(tmp.path().join("changed"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    changed["tasks"][1]["description"] = json!("Combine the summaries, briefly");
    let changed_file = crew_file(tmp.path(), "changed2.json", &changed);
    let o = troupe_with(&server.fake.url, &store)
        .args(["replay", &parent, "--from", "final", "--crew"])
        .arg(&changed_file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("task `combine` is not downstream of `final`")
            && err.contains("`description`"),
        "{err}"
    );
    assert!(err.contains("hint: replay from `combine`"), "{err}");
    // One instance re-runs, its siblings are kept: the for-each task itself may not change.
    let mut changed = read_json(&crew);
    changed["tasks"][0]["description"] = json!("Summarise {document} briefly: {document_text}");
    let changed_file = crew_file(tmp.path(), "changed3.json", &changed);
    let o = troupe_with(&server.fake.url, &store)
        .args(["replay", &parent, "--from", "summarise[doc3.txt]", "--crew"])
        .arg(&changed_file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("changes the for-each task `summarise`"),
        "{err}"
    );
    assert!(err.contains("hint: replay from `summarise`"), "{err}");
    // An unknown task names the ones there are.
    let o = troupe_with(&server.fake.url, &store)
        .args(["replay", &parent, "--from", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no task `nope`") && err.contains("combine, final"),
        "{err}"
    );
}

#[test]
fn replay_calls_answers_from_the_recording_and_shows_how_a_changed_request_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew(tmp.path());
    let server = Server::start();
    let (store, out, id) = completed_run(&server, tmp.path(), &crew, "recorded");
    let expected = delivered(&out);

    // Nothing listens here: every call must come from the recording.
    let nowhere = "http://127.0.0.1:9/v1";
    let again = tmp.path().join("again");
    let o = troupe_with(nowhere, &store)
        .arg("run")
        .arg(&crew)
        .args(["--replay-calls", &id[..13], "--out"])
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(delivered(&again), expected);
    let err = String::from_utf8_lossy(&o.stderr);
    let calls = server.seen();
    assert!(
        err.contains(&format!("{calls} answered from the recording")),
        "{err}"
    );

    // A changed prompt is not in the recording: the task fails with the difference.
    let mut changed = read_json(&crew);
    changed["tasks"][2]["description"] = json!("Write the final memo");
    let changed = crew_file(tmp.path(), "changed.json", &changed);
    let o = troupe_with(nowhere, &store)
        .arg("run")
        .arg(&changed)
        .args(["--replay-calls", &id, "--out"])
        .arg(tmp.path().join("changed"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let run = read_json(&tmp.path().join("changed/run.json"));
    let last = task(&run, "final");
    let error = last["error"].as_str().unwrap();
    assert!(error.contains("not in the recording of run"), "{error}");
    assert!(error.contains("messages[1].content"), "{error}");
    assert!(
        error.contains("final note") && error.contains("final memo"),
        "{error}"
    );
    assert_eq!(task(&run, "combine")["status"], "completed");
    assert_eq!(server.seen(), calls, "no request reached a server");
}

#[test]
fn resume_refuses_a_changed_crew_or_documents_and_a_run_that_is_still_owned() {
    let tmp = tempfile::tempdir().unwrap();
    let crew_path = crew(tmp.path());
    let server = Server::start();
    let store = tmp.path().join("runs.db");
    // The run waits on its third call while we try to resume it.
    let mut child = server.run_held_at(3, &store, &crew_path, &tmp.path().join("out"));
    let id = only_run(&store);
    let resume = || {
        troupe_with(&server.fake.url, &store)
            .args(["resume", &id, "-q"])
            .output()
            .unwrap()
    };
    let o = resume();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("is running (pid {}", child.id())),
        "{err}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    server.hold.store(0, Ordering::SeqCst);

    // A changed prompt: refused, with where it changed.
    let original = std::fs::read_to_string(&crew_path).unwrap();
    let mut changed = read_json(&crew_path);
    changed["tasks"][1]["description"] = json!("Combine the summaries into one");
    std::fs::write(&crew_path, serde_json::to_string_pretty(&changed).unwrap()).unwrap();
    let o = resume();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("changed since run"), "{err}");
    assert!(err.contains("`tasks[1].description`"), "{err}");
    assert!(err.contains("hint: `troupe replay"), "{err}");

    // A changed document: refused, naming it.
    std::fs::write(&crew_path, &original).unwrap();
    let doc = tmp.path().join("docs/doc2.txt");
    let text_before = std::fs::read_to_string(&doc).unwrap();
    std::fs::write(&doc, "Something else entirely.\n").unwrap();
    let o = resume();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`doc2.txt` changed"), "{err}");
    std::fs::write(&doc, text_before).unwrap();

    // Limits may change (that is how a budget-stopped run goes on), and are said.
    let mut raised = read_json(&crew_path);
    raised["limits"] = json!({"max_tokens": 900000});
    std::fs::write(&crew_path, serde_json::to_string_pretty(&raised).unwrap()).unwrap();
    let o = resume();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = events(&tmp.path().join("out"));
    let continued = of_type(&ev, "run_continued");
    assert_eq!(continued[0]["changed_limits"], json!(["limits"]));

    // A completed run has nothing to resume.
    let o = resume();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nothing to resume") && err.contains("troupe replay"),
        "{err}"
    );

    // And its output directory can be written again from the store alone.
    let exported = tmp.path().join("exported");
    let o = troupe_with(&server.fake.url, &store)
        .args(["export", &id, "--out"])
        .arg(&exported)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(delivered(&exported), delivered(&tmp.path().join("out")));
    assert_eq!(events(&exported).len(), ev.len());
}

/// A run stopped by its token budget: resumed as it is, it stops at once (the budget goes on
/// from what was spent); resumed with a raised budget, it completes as an unstopped run would,
/// answering every recorded call from the record although its answer caps were lower then.
#[test]
fn a_budget_stopped_run_resumes_from_what_it_spent() {
    let tmp = tempfile::tempdir().unwrap();
    let crew_path = crew(tmp.path());
    let server = Server::start();
    let (_, baseline, _) = completed_run(&server, tmp.path(), &crew_path, "baseline");
    let expected = delivered(&baseline);
    let total = server.seen();

    let mut tight = read_json(&crew_path);
    tight["limits"] = json!({"max_tokens": 1200});
    std::fs::write(&crew_path, serde_json::to_string_pretty(&tight).unwrap()).unwrap();
    let store = tmp.path().join("runs.db");
    let out = tmp.path().join("out");
    let before = server.seen();
    let o = troupe_with(&server.fake.url, &store)
        .arg("run")
        .arg(&crew_path)
        .arg("--out")
        .arg(&out)
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        read_json(&out.join("run.json"))["status"],
        "budget_exhausted"
    );
    let made = server.seen() - before;
    let id = only_run(&store);
    let recorded = recorded_model_calls(&store, &id).len();

    let resume = || {
        troupe_with(&server.fake.url, &store)
            .args(["resume", &id, "-q"])
            .output()
            .unwrap()
    };
    let before = server.seen();
    let o = resume();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(server.seen(), before, "an exhausted budget makes no call");
    assert_eq!(
        read_json(&out.join("run.json"))["status"],
        "budget_exhausted"
    );

    tight["limits"] = json!({"max_tokens": 100000});
    std::fs::write(&crew_path, serde_json::to_string_pretty(&tight).unwrap()).unwrap();
    let o = resume();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(delivered(&out), expected);
    let resumed = server.seen() - before;
    assert_eq!(
        resumed,
        total - recorded,
        "made {made}, recorded {recorded}"
    );
    let run = read_json(&out.join("run.json"));
    // Every call was paid once: the run's total counts the first part and the resumed part.
    assert_eq!(
        run["totals"]["model_calls"].as_u64().unwrap() as usize,
        recorded + resumed
    );
}

/// A resume does not overwrite another run that has since written the same output directory:
/// it is refused, and `--out` continues elsewhere.
#[test]
fn resume_keeps_off_an_output_directory_another_run_has_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let crew_path = crew(tmp.path());
    let server = Server::start();
    let store = tmp.path().join("runs.db");
    let out = tmp.path().join("shared");
    let mut child = server.run_held_at(2, &store, &crew_path, &out);
    child.kill().unwrap();
    child.wait().unwrap();
    server.hold.store(0, Ordering::SeqCst);
    let killed = only_run(&store);
    let o = troupe_with(&server.fake.url, &store)
        .arg("run")
        .arg(&crew_path)
        .arg("--out")
        .arg(&out)
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let theirs = delivered(&out);

    let o = troupe_with(&server.fake.url, &store)
        .args(["resume", &killed, "-q"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("now holds run"), "{err}");
    assert!(err.contains("--out DIR"), "{err}");
    assert_eq!(
        delivered(&out),
        theirs,
        "the other run's outputs are untouched"
    );

    let elsewhere = tmp.path().join("elsewhere");
    let o = troupe_with(&server.fake.url, &store)
        .args(["resume", &killed, "-q", "--out"])
        .arg(&elsewhere)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        delivered(&elsewhere),
        theirs,
        "the same crew, the same outputs"
    );
    assert_eq!(read_json(&elsewhere.join("run.json"))["run_id"], killed);
}
