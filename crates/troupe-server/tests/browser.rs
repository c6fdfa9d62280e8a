//! The web page in a real browser: Debian's Chromium driven through WebDriver (chromedriver,
//! `fantoccini`), against `troupe serve` in this process and the fake OpenAI-compatible model
//! server. A person's path through the page: pick a document crew, upload a licence through the
//! file input, start the run, watch the timeline until the report waits for approval, approve
//! it, see the run complete, open the report, click a citation, and see the passage it points
//! to with the quoted words highlighted and the check passed. Every wait is bounded (the DOM is
//! polled a fixed number of times); nothing is asserted about wall-clock time.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/setup.sh` installs them);
//! without them the test fails saying so, unless `TROUPE_SKIP_BROWSER=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use troupe_testkit::{FakeServer, Reply, Request};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Polls of the DOM before a wait gives up, and the pause between two.
const TRIES: usize = 600;
const PAUSE: Duration = Duration::from_millis(100);

// ---- the model: an analyst that quotes the chunks it is shown, a writer that cites them ----

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

/// The findings (`chunk`, `quote`) in the JSON outputs a prompt shows.
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

fn model(r: &Request) -> Reply {
    let reply = if r.is("Legal analyst") {
        let findings: Vec<Value> = chunks_in(r.task())
            .into_iter()
            // The licence's first passage: a plain permission (a later one, of disclaimers, says
            // "no" in words a statement check would hold against a plain restatement).
            .take(1)
            .map(|(id, text)| {
                json!({"kind": "condition", "party": "licensee",
                       "summary": "Keep the notice.", "chunk": id, "quote": quote_from(&text)})
            })
            .collect();
        Reply::text(&json!({ "findings": findings }).to_string())
    } else {
        // The writer: each statement says its quote's words, and cites them.
        let body: String = findings_in(r.task())
            .iter()
            .map(|(chunk, quote)| format!("- The licence says {quote} \"{quote}\" [{chunk}].\n"))
            .collect();
        Reply::text(&format!("# Report\n\n{body}"))
    };
    // Slow enough that the page shows the tasks running.
    Reply::Delay(Duration::from_millis(300), Box::new(reply))
}

fn crew(model_url: &str) -> Value {
    json!({
        "name": "licence-brief",
        "description": "An analyst extracts the conditions of each licence with the exact words; a writer explains them, citing the words; a person approves the report.",
        "llm": {"model": "gpt-test", "base_url": model_url},
        "agents": [
            {"id": "analyst", "role": "Legal analyst", "goal": "Find the conditions of a licence, with the exact words"},
            {"id": "writer", "role": "Plain-language writer", "goal": "Explain licences, citing the exact words"}
        ],
        "tasks": [
            {"id": "extract", "agent": "analyst", "for_each": "document",
             "description": "Read {document_title}. List its conditions, each with the chunk id and the exact words.\n\n---\n{document_text}\n---",
             "output_schema": {
                "type": "object",
                "properties": {"findings": {"type": "array", "minItems": 1, "items": {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string"}, "party": {"type": "string"},
                        "summary": {"type": "string"}, "chunk": {"type": "string"},
                        "quote": {"type": "string"}
                    },
                    "required": ["kind", "party", "summary", "chunk", "quote"]}}},
                "required": ["findings"]},
             "output_file": "findings.json"},
            {"id": "report", "agent": "writer", "context": ["extract"],
             "description": "Write a short plain-language report citing each statement as \"quoted words\" [chunk id].",
             "output_file": "report.md",
             "approval": {"message": "Publish this report to the team?"}}
        ]
    })
}

// ---- the browser ---------------------------------------------------------------------------

/// chromedriver (in its own process group, with the Chromium it starts) and the browser's
/// profile: killed and removed when dropped, whatever happened.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser it started. A system call on exactly
        // this group: the `kill` program, given `-KILL -PGID`, took down every process of the
        // session that ran the test.
        if let Ok(pid) = i32::try_from(self.child.id())
            && pid > 1
        {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the browser is installed; when not, the test fails saying how to install it, or is
/// skipped when `TROUPE_SKIP_BROWSER=1`.
fn browser_installed() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("TROUPE_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!(
            "skipped: {} not installed (TROUPE_SKIP_BROWSER=1)",
            missing.join(", ")
        );
        return false;
    }
    panic!(
        "the browser test needs {} (Debian packages `chromium` and `chromium-driver`)\n  hint: run scripts/setup.sh, which installs them; or set TROUPE_SKIP_BROWSER=1 to skip this test",
        missing.join(" and ")
    );
}

async fn start_driver() -> Driver {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: tempfile::tempdir().unwrap(),
    };
    let http = reqwest::Client::new();
    for _ in 0..TRIES {
        if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
            && r.status().is_success()
        {
            return driver;
        }
        tokio::time::sleep(PAUSE).await;
    }
    panic!("chromedriver did not answer on {}", driver.url);
}

async fn browser(driver: &Driver) -> Client {
    let profile = driver._profile.path().display().to_string();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1440,1000",
                "--force-prefers-reduced-motion", "--hide-scrollbars",
                format!("--user-data-dir={profile}")
            ]
        }),
    );
    let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
    builder.capabilities(caps);
    builder
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The text of the first element `css` finds, if any.
async fn text(c: &Client, css: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
    c.find(Locator::Css(css))
        .await
        .ok()?
        .attr(name)
        .await
        .ok()?
}

async fn displayed(c: &Client, css: &str) -> bool {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.is_displayed().await.unwrap_or(false),
        Err(_) => false,
    }
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` to click: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
}

/// What the page shows, for a failure message; and a screenshot of it next to the good one.
async fn page_state(c: &Client) -> String {
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(target_dir().join("troupe-page-failure.png"), png);
    }
    let body = text(c, "body").await.unwrap_or_default();
    let url = c
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_default();
    format!("page {url} shows:\n{body}")
}

/// Polls `$probe` (an expression giving an `Option`) until it is `Some`, at most `TRIES` times.
macro_rules! eventually {
    ($c:expr, $what:expr, $probe:expr) => {{
        let mut found = None;
        for _ in 0..TRIES {
            if let Some(v) = $probe {
                found = Some(v);
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        match found {
            Some(v) => v,
            None => panic!("waited in vain for {}\n{}", $what, page_state($c).await),
        }
    }};
}

fn squeeze(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_runs_a_document_crew_approves_it_and_checks_a_citation_in_the_browser() {
    if !browser_installed() {
        return;
    }
    let began = Instant::now();
    let fake = FakeServer::start(model);
    let (_d, dir) = tempdir();
    let crews = dir.join("crews");
    std::fs::create_dir_all(&crews).unwrap();
    std::fs::write(
        crews.join("licence-brief.json"),
        serde_json::to_string_pretty(&crew(&fake.url)).unwrap(),
    )
    .unwrap();
    let mut cfg = config(&dir);
    cfg.crews_dir = Some(crews);
    let server = start(cfg).await;
    let driver = start_driver().await;
    let c = browser(&driver).await;

    // The page, with the crew offered and described.
    c.goto(&server.url).await.unwrap();
    eventually!(
        &c,
        "the crew in the form",
        c.find(Locator::Css(
            "[data-testid=crew-select] option[value='licence-brief']"
        ))
        .await
        .ok()
    );
    c.find(Locator::Css("[data-testid=crew-select]"))
        .await
        .unwrap()
        .select_by_value("licence-brief")
        .await
        .unwrap();
    let description = text(&c, "[data-testid=crew-description]").await.unwrap();
    assert!(
        description.contains("a person approves the report"),
        "{description}"
    );
    let tasks = text(&c, "[data-testid=crew-tasks]").await.unwrap();
    assert!(tasks.contains("needs approval"), "{tasks}");

    // A licence uploaded through the file input, and the run started.
    assert!(displayed(&c, "[data-testid=documents-input]").await);
    let licence = repo()
        .join("examples/documents/licenses/BSD-3-Clause.txt")
        .canonicalize()
        .unwrap();
    c.find(Locator::Css("[data-testid=documents-input]"))
        .await
        .unwrap()
        .send_keys(&licence.display().to_string())
        .await
        .unwrap();
    click(&c, "[data-testid=start-run]").await;
    let run_url = eventually!(
        &c,
        "the run's view",
        c.current_url()
            .await
            .ok()
            .filter(|u| u.fragment().is_some_and(|f| f.starts_with("/runs/")))
    );
    let id = run_url.fragment().unwrap()["/runs/".len()..].to_string();
    assert!(displayed(&c, "[data-testid=run-view]").await);
    eventually!(
        &c,
        "the crew's name in the run view",
        text(&c, "[data-testid=run-crew]")
            .await
            .filter(|t| t == "licence-brief")
    );

    // The timeline: the per-document task completes, then the report waits for a person.
    let extract = "[data-testid=task][data-task='extract[BSD-3-Clause.txt]']";
    eventually!(
        &c,
        "the extract task completed in the timeline",
        attr(&c, extract, "data-status")
            .await
            .filter(|s| s == "completed")
    );
    let extract_text = text(&c, extract).await.unwrap();
    assert!(extract_text.contains("analyst"), "{extract_text}");
    assert!(extract_text.contains("1 model call(s)"), "{extract_text}");
    let report_task = "[data-testid=task][data-task=report]";
    eventually!(
        &c,
        "the report task awaiting approval",
        attr(&c, report_task, "data-status")
            .await
            .filter(|s| s == "awaiting_approval")
    );
    assert_eq!(
        attr(&c, "[data-testid=run-status]", "data-status")
            .await
            .as_deref(),
        Some("awaiting_approval")
    );
    let message = eventually!(
        &c,
        "the approval request",
        text(&c, "[data-testid=approval-message]").await
    );
    assert_eq!(message, "Publish this report to the team?");
    let output = text(&c, "[data-testid=approval-output]").await.unwrap();
    assert!(output.starts_with("# Report"), "{output}");
    assert!(
        output.contains("[BSD-3-Clause.txt:"),
        "the output cites chunks: {output}"
    );
    assert!(
        displayed(&c, "[data-testid=cancel-run]").await,
        "a paused run can be cancelled"
    );

    // Approved in the page: the same stream goes on to the end.
    c.find(Locator::Css("[data-testid=approval-by]"))
        .await
        .unwrap()
        .send_keys("dana")
        .await
        .unwrap();
    click(&c, "[data-testid=approve]").await;
    eventually!(
        &c,
        "the run completed",
        attr(&c, "[data-testid=run-status]", "data-status")
            .await
            .filter(|s| s == "completed")
    );
    eventually!(
        &c,
        "the report task completed",
        attr(&c, report_task, "data-status")
            .await
            .filter(|s| s == "completed")
    );
    let report_text = text(&c, report_task).await.unwrap();
    assert!(
        report_text.contains("approval 1: approve by dana"),
        "{report_text}"
    );
    assert!(!displayed(&c, "[data-testid=approval]").await);
    assert!(!displayed(&c, "[data-testid=cancel-run]").await);
    eventually!(
        &c,
        "the run completed in the runs list",
        attr(
            &c,
            &format!("[data-testid=run-row][data-run-id='{id}']"),
            "data-status"
        )
        .await
        .filter(|s| s == "completed")
    );
    // The event log holds the whole story, in order.
    click(&c, "[data-testid=event-log] summary").await;
    let types: Vec<String> = {
        let mut out = Vec::new();
        for e in c
            .find_all(Locator::Css("[data-testid=event]"))
            .await
            .unwrap()
        {
            out.push(e.attr("data-type").await.unwrap().unwrap_or_default());
        }
        out
    };
    let at = |t: &str| {
        types
            .iter()
            .position(|x| x == t)
            .unwrap_or_else(|| panic!("no `{t}` in the event log: {types:?}"))
    };
    assert_eq!(at("run_started"), 0, "{types:?}");
    assert!(
        at("approval_requested") < at("approval_decided")
            && at("approval_decided") < types.iter().rposition(|x| x == "report_written").unwrap(),
        "{types:?}"
    );
    assert_eq!(types.last().map(String::as_str), Some("run_finished"));
    click(&c, "[data-testid=event-log] summary").await;

    // The report, with its citations linked; a click shows the passage with the quote marked.
    eventually!(
        &c,
        "the report section",
        displayed(&c, "[data-testid=report-section]")
            .await
            .then_some(())
    );
    click(&c, "[data-testid=open-report]").await;
    let cite = eventually!(
        &c,
        "a citation in the report",
        c.find(Locator::Css("[data-testid=report] [data-testid=citation]"))
            .await
            .ok()
    );
    assert_eq!(
        cite.attr("data-check").await.unwrap().as_deref(),
        Some("verified")
    );
    let heading = text(&c, "[data-testid=report] h2").await.unwrap();
    assert_eq!(heading, "licence-brief");
    cite.click().await.unwrap();
    let marked = eventually!(
        &c,
        "the quote highlighted in the passage",
        text(&c, "[data-testid=passage] mark")
            .await
            .filter(|t| !t.is_empty())
    );
    let quote = text(&c, "[data-testid=citation-quote]").await.unwrap();
    assert_eq!(
        squeeze(&marked),
        squeeze(quote.trim_matches(|ch: char| ch == '“' || ch == '”')),
        "the marked words are the quote"
    );
    let passage = text(&c, "[data-testid=passage-text]").await.unwrap();
    assert!(
        passage.len() > marked.len(),
        "the passage around the quote shows"
    );
    let check = text(&c, "[data-testid=citation-check]").await.unwrap();
    assert!(check.starts_with('✓'), "{check}");
    assert_eq!(
        attr(&c, "[data-testid=citation-check]", "data-check")
            .await
            .as_deref(),
        Some("verified")
    );
    let lines = text(&c, "[data-testid=passage-lines]").await.unwrap();
    assert!(lines.contains("lines"), "{lines}");
    // The whole view in the picture: the timeline, the report and the passage.
    c.set_window_size(1440, 1500).await.unwrap();
    c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    let shot = c.screenshot().await.unwrap();
    std::fs::create_dir_all(target_dir()).unwrap();
    let path = target_dir().join("troupe-page.png");
    std::fs::write(&path, shot).unwrap();
    eprintln!("screenshot: {}", path.display());

    // A crew that does not validate: its located diagnostics, readable.
    click(&c, "[data-testid=new-run-link]").await;
    eventually!(
        &c,
        "the form again",
        displayed(&c, "[data-testid=new-run]").await.then_some(())
    );
    c.find(Locator::Css("[data-testid=crew-select]"))
        .await
        .unwrap()
        .select_by_value("(inline)")
        .await
        .unwrap();
    let broken = json!({"name": "broken", "agents": [{"id": "a", "role": "R", "goal": "G"}],
                        "tasks": [{"id": "t", "agent": "nobody", "description": "d"}]});
    c.find(Locator::Css("[data-testid=inline-crew]"))
        .await
        .unwrap()
        .send_keys(&broken.to_string())
        .await
        .unwrap();
    click(&c, "[data-testid=start-run]").await;
    let diagnostic = eventually!(
        &c,
        "the crew's diagnostics",
        text(&c, "[data-testid=form-error] [data-testid=diagnostic]").await
    );
    assert!(diagnostic.contains("tasks[0].agent"), "{diagnostic}");
    assert!(diagnostic.contains("hint:"), "{diagnostic}");
    let location = text(&c, "[data-testid=diagnostic-location]").await.unwrap();
    assert!(
        location
            .split(':')
            .filter(|p| p.parse::<usize>().is_ok())
            .count()
            >= 2,
        "line:column: {location}"
    );

    c.close().await.unwrap();
    drop(driver);
    server.stop().await;
    eprintln!("browser test took {:.1} s", began.elapsed().as_secs_f64());
}
