//! End to end with documents: the `troupe` binary runs the document crews of `crews/` on the
//! licence texts of `examples/documents/`, against the fake OpenAI-compatible server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on a broken fixture

mod common;

use common::*;
use serde_json::{Value, json};
use troupe_testkit::{FakeServer, Reply, Request};

/// The chunks shown in a prompt: `[chunk <id>]` headers and the text under each.
fn chunks_in(prompt: &str) -> Vec<(String, String)> {
    prompt
        .split("[chunk ")
        .skip(1)
        .filter_map(|part| {
            let (id, rest) = part.split_once("]\n")?;
            let text = rest.split("\n\n[").next().unwrap_or(rest);
            Some((id.to_string(), text.to_string()))
        })
        .collect()
}

/// Words copied from a chunk: its first line of at least five words.
fn quote_from(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().count() >= 5)
        .unwrap_or(text);
    line.split_whitespace()
        .take(8)
        .collect::<Vec<_>>()
        .join(" ")
}

fn licences() -> String {
    repo()
        .join("examples/documents/licenses")
        .display()
        .to_string()
}

/// The analyst's answer for the document in its prompt: one risk per shown chunk (up to two),
/// with a real quote.
fn risks_for(r: &Request) -> Value {
    let doc = r
        .task()
        .split("(document `")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .unwrap_or("?")
        .to_string();
    let risks: Vec<Value> = chunks_in(r.task())
        .into_iter()
        .take(2)
        .map(|(id, text)| {
            json!({"area": "obligation", "risk": format!("A clause of {doc}"), "severity": "medium",
                   "chunk": id, "quote": quote_from(&text)})
        })
        .collect();
    json!({"document": doc, "risks": risks})
}

/// contract-risk over three licences: the per-document task runs once per licence, the register
/// receives all three outputs, and report.md / report.json resolve and check every citation.
/// (That the instances run at once, even in a sequential crew, is shown in-process on the paused
/// clock: `troupe-runtime/tests/coordinator.rs`.)
#[test]
fn fan_out_runs_per_document_tasks_and_the_reduce_gets_every_output() {
    let server = FakeServer::start(contract_risk_replies);
    let (_tmp, out) = run_completed(
        &server.url,
        &repo().join("crews/contract-risk.json"),
        &["--docs", &licences()],
    );
    fan_out_checks(&server, &out);
}

/// `limits.max_parallel` caps the fan-out: the third instance waits, and the wait is a
/// `limit_hit` event naming the key. (How many run at once: `troupe-runtime/tests/coordinator.rs`.)
#[test]
fn max_parallel_caps_how_many_tasks_run_at_once() {
    let server = FakeServer::start(contract_risk_replies);
    let tmp = tempfile::tempdir().unwrap();
    let mut crew = read_json(&repo().join("crews/contract-risk.json"));
    crew["limits"]["max_parallel"] = json!(2);
    crew.as_object_mut().unwrap().remove("$schema");
    let crew = crew_file(tmp.path(), "capped.json", &crew);
    let (_out_tmp, out) = run_completed(&server.url, &crew, &["--docs", &licences()]);
    assert!(
        server.max_concurrency() <= 2,
        "{}",
        server.max_concurrency()
    );
    let ev = events(&out);
    let hits: Vec<_> = of_type(&ev, "limit_hit")
        .into_iter()
        .filter(|e| e["key"] == "limits.max_parallel")
        .collect();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0]["value"], "2");
    assert_eq!(hits[0]["task"], "risks[MPL-2.0.txt]");
    fan_out_checks(&server, &out);
}

fn contract_risk_replies(r: &Request) -> Reply {
    if r.is("Contract analyst") {
        Reply::text(&risks_for(r).to_string())
    } else if r.is("Risk manager") {
        // Cite the first risk of each document as the findings gave it.
        let mut body =
            String::from("# Risk register\n\n| document | risk | severity |\n|---|---|---|\n");
        for part in r.task().split("### `risks[").skip(1) {
            let doc = part.split(']').next().unwrap_or("");
            let json_start = part.find('{').unwrap_or(0);
            let v: Value = serde_json::Deserializer::from_str(&part[json_start..])
                .into_iter::<Value>()
                .next()
                .and_then(Result::ok)
                .unwrap_or(Value::Null);
            let first = &v["risks"][0];
            // The row restates its quote, as a careful writer does.
            let quote = first["quote"].as_str().unwrap_or("");
            body.push_str(&format!(
                "| {doc} | {quote} \"{quote}\" [{}] | medium |\n",
                first["chunk"].as_str().unwrap_or("")
            ));
        }
        Reply::text(&body)
    } else if r.is("General counsel") {
        Reply::text(r#"{"verdict": "approve", "feedback": "Complete."}"#)
    } else {
        Reply::error(400, None)
    }
}

/// What every contract-risk fan-out must show, however many ran at once.
fn fan_out_checks(server: &FakeServer, out: &std::path::Path) {
    let run = read_json(&out.join("run.json"));
    let ids: Vec<&str> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "risks[Apache-2.0.txt]",
            "risks[BSD-3-Clause.txt]",
            "risks[MPL-2.0.txt]",
            "register"
        ]
    );
    for doc in ["Apache-2.0.txt", "BSD-3-Clause.txt", "MPL-2.0.txt"] {
        // Each instance saw its own document only, and wrote its own file.
        let file = out.join(format!("risks.{doc}.json"));
        assert_eq!(read_json(&file)["document"], doc);
    }
    let register_prompt =
        requests_of(server.requests(), "Risk manager")[0]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .to_string();
    for doc in ["Apache-2.0.txt", "BSD-3-Clause.txt", "MPL-2.0.txt"] {
        assert!(
            register_prompt.contains(&format!("### `risks[{doc}]`")),
            "{register_prompt}"
        );
    }

    // The analyst's structured output could only name its document's chunks.
    let analyst = server
        .requests()
        .into_iter()
        .find(|b| {
            b["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("BSD-3-Clause.txt")
        })
        .unwrap();
    let chunk_enum = &analyst["response_format"]["json_schema"]["schema"]["properties"]["risks"]["items"]
        ["properties"]["chunk"]["enum"];
    assert!(
        chunk_enum
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.as_str().unwrap().starts_with("BSD-3-Clause.txt:")),
        "{chunk_enum}"
    );

    // report.json: every citation found, numbered, resolved and verified.
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["body"]["task"], "register");
    assert_eq!(report["findings"].as_array().unwrap().len(), 3);
    let cites = report["citations"].as_array().unwrap();
    assert!(cites.len() >= 3, "{report:#}");
    assert_eq!(report["summary"]["failed"], 0, "{report:#}");
    for (i, c) in cites.iter().enumerate() {
        assert_eq!(c["n"], i + 1);
        assert_eq!(c["check"]["status"], "verified");
        assert!(c["check"]["lines"].as_str().unwrap().starts_with("line"));
    }
    // report.md: the register with numbered citations, findings, and sources with locations.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.starts_with("# contract-risk\n"), "{md}");
    assert!(md.contains("# Risk register"), "{md}");
    assert!(md.contains("[1]") && md.contains("[3]"), "{md}");
    assert!(
        !md.contains("[Apache-2.0.txt:"),
        "markers are numbered: {md}"
    );
    assert!(md.contains("## Sources"), "{md}");
    let first = &cites[0];
    assert!(
        md.contains(&format!(
            "1. {}, {} (`{}`)",
            first["check"]["document"].as_str().unwrap(),
            first["check"]["lines"].as_str().unwrap(),
            first["chunk"].as_str().unwrap()
        )),
        "{md}"
    );
    assert!(md.contains("✓ verified"));
    assert!(!md.contains('✗'), "{md}");

    let ev = events(out);
    let loaded = of_type(&ev, "documents_loaded");
    assert_eq!(loaded[0]["documents"], 3);
    // Three findings' citations, then the register statement by statement.
    assert_eq!(of_type(&ev, "citations_checked").len(), 3);
    let statements = of_type(&ev, "statements_checked");
    assert_eq!(statements.len(), 1, "{statements:#?}");
    assert_eq!(statements[0]["statements"], 3, "{statements:#?}");
    assert_eq!(statements[0]["supported"], 3, "{statements:#?}");
    assert_eq!(report["summary"]["body"]["supported"], 3, "{report:#}");
}

/// The findings in a writer's prompt: each `(chunk, quote)` of the earlier tasks' JSON outputs.
fn findings_in(prompt: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, _) in prompt.match_indices("{\n") {
        let Some(Ok(v)) = serde_json::Deserializer::from_str(&prompt[i..])
            .into_iter::<Value>()
            .next()
        else {
            continue;
        };
        for f in v["findings"].as_array().into_iter().flatten() {
            if let (Some(c), Some(q)) = (f["chunk"].as_str(), f["quote"].as_str()) {
                out.push((c.to_string(), q.to_string()));
            }
        }
    }
    out
}

/// A writer that states each finding in its quote's words and cites it.
fn cited_report(r: &Request) -> Reply {
    let body: String = findings_in(r.task())
        .iter()
        .map(|(chunk, quote)| format!("- The licence says {quote} \"{quote}\" [{chunk}].\n"))
        .collect();
    Reply::text(&format!("# Report\n\n{body}"))
}

/// A finding whose quote is not in the cited chunk goes back to the agent with what is wrong and
/// where the words really are; the corrected answer passes.
#[test]
fn a_citation_that_does_not_match_is_fed_back_and_corrected() {
    let server = FakeServer::start(|r| {
        if r.is("Legal analyst") {
            let (id, text) = chunks_in(r.task()).into_iter().next().unwrap();
            let quote = if r.last().contains("citation check failed") {
                quote_from(&text)
            } else {
                "the licensee shall pay a royalty of five percent".to_string()
            };
            Reply::text(
                &json!({"findings": [{"kind": "obligation", "party": "licensee",
                          "summary": "Keep the notice.", "chunk": id, "quote": quote}]})
                .to_string(),
            )
        } else if r.is("Plain-language writer") {
            cited_report(r)
        } else {
            Reply::text(r#"{"verdict": "approve", "feedback": "ok"}"#)
        }
    });
    let doc = repo().join("examples/documents/licenses/BSD-3-Clause.txt");
    let (_tmp, out) = run_completed(
        &server.url,
        &repo().join("crews/document-review.json"),
        &["--docs", doc.to_str().unwrap()],
    );

    let ev = events(&out);
    let checks = of_type(&ev, "citations_checked");
    assert_eq!(checks.len(), 2, "{checks:#?}");
    assert_eq!(checks[0]["verified"], 0);
    let problem = checks[0]["failed"][0].as_str().unwrap();
    assert!(
        problem.contains("does not contain \"the licensee shall pay"),
        "{problem}"
    );
    assert_eq!(checks[1]["verified"], 1);
    assert_eq!(checks[1]["failed"].as_array().unwrap().len(), 0);

    // The feedback the model received names the problem.
    let retry = server
        .requests()
        .into_iter()
        .find(|b| {
            b["messages"].as_array().unwrap().last().unwrap()["content"]
                .as_str()
                .is_some_and(|c| c.contains("citation check failed"))
        })
        .unwrap();
    let feedback = retry["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(feedback.contains("royalty of five percent"), "{feedback}");

    let report = read_json(&out.join("report.json"));
    assert_eq!(report["summary"]["verified"], 1);
    assert_eq!(report["summary"]["failed"], 0);
}

/// A citation that stays wrong after the retries is accepted, marked ✗ in report.md with the
/// reason, and the limit is an event. The review gate runs the checks first: they fail, so the
/// reviewer (which would approve anything) is never asked, and the task ends `not_approved`
/// with its output kept: the run fails.
#[test]
fn a_citation_that_stays_wrong_is_marked_in_the_report() {
    let server = FakeServer::start(|r| {
        if r.is("Legal analyst") {
            let (id, _) = chunks_in(r.task()).into_iter().next().unwrap();
            Reply::text(
                &json!({"findings": [{"kind": "obligation", "party": "licensee",
                          "summary": "Pay royalties.", "chunk": id,
                          "quote": "royalties are due every quarter"}]})
                .to_string(),
            )
        } else if r.is("Plain-language writer") {
            // Cites a chunk that does not exist.
            Reply::text("You must pay royalties \"royalties are due\" [BSD-3-Clause.txt:1-2].")
        } else {
            Reply::text(r#"{"verdict": "approve", "feedback": "ok"}"#)
        }
    });
    let doc = repo().join("examples/documents/licenses/BSD-3-Clause.txt");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_crew(
        &server.url,
        &repo().join("crews/document-review.json"),
        &out,
        &["--docs", doc.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let ev = events(&out);
    let limits: Vec<&Value> = of_type(&ev, "limit_hit")
        .into_iter()
        .filter(|e| e["limit"] == "max_output_retries")
        .collect();
    // The analyst once; the writer's first answer and its revision once each.
    assert_eq!(limits.len(), 3, "{limits:#?}");
    assert!(
        limits[0]["action"]
            .as_str()
            .unwrap()
            .contains("1 check failure")
    );
    assert!(requests_of(server.requests(), "Senior counsel").is_empty());

    let run = read_json(&out.join("run.json"));
    let report_task = task(&run, "report");
    assert_eq!(report_task["status"], "not_approved", "{report_task:#}");
    assert!(
        report_task["output"]
            .as_str()
            .unwrap()
            .contains("royalties")
    );
    let round = &report_task["review"][0];
    assert_eq!(round["reviewer"], "troupe checks");
    assert_eq!(round["approved"], false);
    assert!(
        round["failed_checks"][0]
            .as_str()
            .unwrap()
            .contains("there is no chunk 'BSD-3-Clause.txt:1-2'"),
        "{round:#}"
    );

    let report = read_json(&out.join("report.json"));
    assert_eq!(report["summary"]["failed"], 2, "{report:#}");
    assert_eq!(report["summary"]["body"]["statements"], 1, "{report:#}");
    assert_eq!(report["summary"]["body"]["verified"], 0, "{report:#}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("[1✗]"), "{md}");
    assert!(md.contains("**1 failed the check**"), "{md}");
    assert!(
        md.contains("✗ **not verified**: there is no chunk 'BSD-3-Clause.txt:1-2'"),
        "{md}"
    );
    assert!(
        md.contains("does not contain \"royalties are due every quarter\""),
        "{md}"
    );
    assert!(
        text(&o).contains("not_approved") || text(&o).contains("not approved"),
        "{}",
        text(&o)
    );
}

/// A writer that answers with its own prompt (what a small base model does) is not a report:
/// the statement check says so, the report says so, the checks keep the reviewer from approving
/// it, and the run fails.
#[test]
fn a_body_that_repeats_its_prompt_is_flagged_and_never_approved() {
    let server = FakeServer::start(|r| {
        if r.is("Legal analyst") {
            let (id, text) = chunks_in(r.task()).into_iter().next().unwrap();
            Reply::text(
                &json!({"findings": [{"kind": "obligation", "party": "licensee",
                          "summary": "Keep the notice.", "chunk": id, "quote": quote_from(&text)}]})
                .to_string(),
            )
        } else if r.is("Plain-language writer") {
            let system = r.body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default();
            Reply::text(&format!("{system}\n\n{}", r.task()))
        } else {
            Reply::text(r#"{"verdict": "approve", "feedback": "ok"}"#)
        }
    });
    let doc = repo().join("examples/documents/licenses/BSD-3-Clause.txt");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_crew(
        &server.url,
        &repo().join("crews/document-review.json"),
        &out,
        &["--docs", doc.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let ev = events(&out);
    let checks = of_type(&ev, "statements_checked");
    assert!(!checks.is_empty());
    assert!(
        checks.iter().all(|c| c["echoes_prompt"] == true),
        "{checks:#?}"
    );
    assert!(requests_of(server.requests(), "Senior counsel").is_empty());
    let report = read_json(&out.join("report.json"));
    assert_eq!(
        report["summary"]["body"]["echoes_prompt"], true,
        "{report:#}"
    );
    // The findings' citation is counted on its own, apart from the body.
    assert_eq!(report["summary"]["findings"]["verified"], 1, "{report:#}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("**it repeats its own prompt**"), "{md}");
    let run = read_json(&out.join("run.json"));
    assert_eq!(task(&run, "report")["status"], "not_approved");
}

/// A document larger than the model's window is cut to fit: the least relevant chunks are left
/// out (the ones about the task stay), an event says which, and no request exceeds the window.
#[test]
fn a_document_over_the_context_window_is_cut_to_fit_with_an_event() {
    let server = FakeServer::start(|r| {
        if r.is("Analyst") {
            let (id, chunk) = chunks_in(r.task()).into_iter().next().unwrap();
            let q = quote_from(&chunk);
            Reply::text(&format!("The licence says {q} \"{q}\" [{id}]."))
        } else {
            Reply::error(400, None)
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "cut.json",
        &json!({
            "name": "cut",
            "llm": {"provider": "openai", "model": "m", "context_window": 2048, "max_tokens": 256},
            "agents": [{"id": "a", "role": "Analyst", "goal": "Find the termination clauses"}],
            "tasks": [{"id": "t", "agent": "a", "for_each": "document",
                       "description": "When does the licence terminate, and what happens on termination?\n\n{document_text}"}]
        }),
    );
    let out = tmp.path().join("out");
    let mpl = repo().join("examples/documents/licenses/MPL-2.0.txt");
    let o = run_crew(&server.url, &crew, &out, &["--docs", mpl.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let ev = events(&out);
    let cuts = of_type(&ev, "context_cut");
    assert_eq!(cuts.len(), 1, "{cuts:#?}");
    let cut = cuts[0];
    assert_eq!(cut["window"], 2048);
    assert!(cut["tokens_before"].as_u64().unwrap() > 2048, "{cut}");
    assert!(cut["tokens_after"].as_u64().unwrap() + 256 <= 2048, "{cut}");
    let dropped = cut["dropped_chunks"].as_array().unwrap();
    assert!(!dropped.is_empty());

    let req = &server.requests()[0];
    let prompt = req["messages"][1]["content"].as_str().unwrap();
    // The prompt holds the termination section and says what was left out.
    assert!(prompt.contains("5. Termination"), "{prompt}");
    assert!(
        prompt.contains("left out to fit the context window"),
        "{prompt}"
    );
    for id in dropped {
        assert!(!prompt.contains(&format!("[chunk {}]", id.as_str().unwrap())));
    }
    let total: usize = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| troupe_docs::estimate_tokens(m["content"].as_str().unwrap_or("")) + 8)
        .sum();
    assert!(total + 256 <= 2048, "{total}");
}

/// The docs tools through the agent loop: search finds the passage, read returns the chunk with
/// its id, and the answer cites it.
#[test]
fn agents_search_and_read_documents_with_the_docs_tools() {
    let server = FakeServer::start(|r| {
        if !r.is("Researcher") {
            return Reply::error(400, None);
        }
        let results = r.tool_results();
        match results.len() {
            0 => Reply::tool_call(
                "docs.search",
                r#"{"query": "patent license terminate litigation", "limit": 2}"#,
            ),
            1 => {
                let v: Value = serde_json::from_str(results[0]).unwrap();
                let chunk = v["results"][0]["chunk"].as_str().unwrap().to_string();
                Reply::tool_call("docs.read", &json!({"chunk": chunk}).to_string())
            }
            _ => {
                let v: Value = serde_json::from_str(results[1]).unwrap();
                Reply::text(&format!(
                    "Patent licences end on litigation: \"{}\" [{}]",
                    "shall terminate as of the date such litigation is filed",
                    v["chunk"].as_str().unwrap()
                ))
            }
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "tools.json",
        &json!({
            "name": "tools",
            "llm": {"provider": "openai", "model": "m"},
            "agents": [{"id": "r", "role": "Researcher", "goal": "Answer from the documents",
                        "tools": ["docs.*"]}],
            "tasks": [{"id": "q", "agent": "r", "description": "When do patent licences end?"}]
        }),
    );
    let out = tmp.path().join("out");
    let o = run_crew(&server.url, &crew, &out, &["--docs", &licences()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let reqs = server.requests();
    let tools: Vec<&str> = reqs[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["docs.list", "docs.read", "docs.search"]);
    let ev = events(&out);
    let calls = of_type(&ev, "tool_call");
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c["ok"] == true), "{calls:#?}");
    assert!(
        calls[0]["result"]
            .as_str()
            .unwrap()
            .contains("Apache-2.0.txt:"),
        "{}",
        calls[0]
    );
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["summary"]["verified"], 1, "{report:#}");
    assert_eq!(
        report["citations"][0]["check"]["document"],
        "Apache-2.0.txt"
    );
}

/// Files that cannot be read stop the run before any model call, each named with its reason;
/// `--skip-unreadable` goes on and records what was left out.
#[test]
fn unreadable_documents_fail_the_run_or_are_skipped_and_reported() {
    let server = FakeServer::start(|_| Reply::text("Summary."));
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(
        docs.join("notes.md"),
        "# Notes\n\nThe supplier must deliver by May.\n",
    )
    .unwrap();
    std::fs::write(docs.join("scan.pdf"), b"%PDF-1.7 broken").unwrap();
    let crew = crew_file(
        tmp.path(),
        "c.json",
        &json!({
            "name": "c",
            "llm": {"provider": "openai", "model": "m"},
            "agents": [{"id": "a", "role": "Reader", "goal": "Summarise"}],
            "tasks": [{"id": "t", "agent": "a", "for_each": "document", "description": "Summarise {document}: {document_text}"}]
        }),
    );
    let out = tmp.path().join("out");
    let o = run_crew(
        &server.url,
        &crew,
        &out,
        &["--docs", docs.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("scan.pdf: not a readable PDF"), "{err}");
    assert!(
        err.contains("hint: fix or remove these files, or pass --skip-unreadable"),
        "{err}"
    );
    assert!(server.requests().is_empty());

    let o = run_crew(
        &server.url,
        &crew,
        &out,
        &["--docs", docs.to_str().unwrap(), "--skip-unreadable"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = events(&out);
    let loaded = of_type(&ev, "documents_loaded")[0];
    assert_eq!(loaded["documents"], 1);
    assert!(
        loaded["skipped"][0].as_str().unwrap().contains("scan.pdf"),
        "{loaded}"
    );
    let run = read_json(&out.join("run.json"));
    assert_eq!(task(&run, "t[notes.md]")["status"], "completed");
}

/// A per-document task without documents is a user error at its `for_each`, with the fix.
#[test]
fn a_for_each_task_without_documents_is_a_clear_error() {
    let server = FakeServer::start(|_| Reply::text("x"));
    let tmp = tempfile::tempdir().unwrap();
    let crew = crew_file(
        tmp.path(),
        "c.json",
        &json!({
            "name": "c",
            "llm": {"provider": "openai", "model": "m"},
            "agents": [{"id": "a", "role": "Reader", "goal": "Summarise"}],
            "tasks": [{"id": "t", "agent": "a", "for_each": "document", "description": "Summarise {document_text}"}]
        }),
    );
    let o = run_crew(&server.url, &crew, &tmp.path().join("out"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("task `t` runs for each document, but the run has no documents"),
        "{err}"
    );
    assert!(err.contains("at `tasks[0].for_each`"), "{err}");
    assert!(
        err.contains("hint: pass documents with `troupe run … --docs PATH`"),
        "{err}"
    );
}
