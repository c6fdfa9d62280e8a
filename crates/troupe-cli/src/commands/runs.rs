//! `troupe runs`, `troupe show` and `troupe export`: what the run store holds.

use troupe_store::{RunFilter, RunRow, Standing};

use crate::cli::{ExportArgs, RunsArgs, ShowArgs};
use crate::exit::{Failure, OK};

/// `2026-12-02 07:41:03` (UTC) of a Unix time in milliseconds.
fn when(ms: u64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    i64::try_from(ms / 1000)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "?".into())
}

fn duration(r: &RunRow) -> String {
    match r.finished_ms {
        Some(end) => format!("{:.1} s", end.saturating_sub(r.started_ms) as f64 / 1000.0),
        None if r.standing == Standing::Running => "running".into(),
        None => "—".into(),
    }
}

pub fn list(args: RunsArgs) -> Result<u8, Failure> {
    let store = super::open_store(&args.store)?;
    let runs = store
        .runs(&RunFilter {
            crew: args.crew.clone(),
            status: args.status.clone(),
            limit: Some(args.limit),
        })
        .map_err(Failure::internal)?;
    if runs.is_empty() {
        crate::term::err_line(&format!(
            "no runs in {}{}",
            store.path().display(),
            if args.crew.is_some() || args.status.is_some() {
                " that match"
            } else {
                ""
            }
        ));
        return Ok(OK);
    }
    let mut out = format!(
        "{:<36}  {:<20}  {:<16}  {:<19}  {:>9}  {:>9}  {:>8}\n",
        "ID", "CREW", "STATUS", "STARTED (UTC)", "DURATION", "TOKENS", "COST"
    );
    for r in &runs {
        out.push_str(&format!(
            "{:<36}  {:<20}  {:<16}  {:<19}  {:>9}  {:>9}  {:>8}\n",
            r.id,
            r.crew,
            r.standing.as_str(),
            when(r.started_ms),
            duration(r),
            r.input_tokens + r.output_tokens,
            r.cost_usd.map_or("—".into(), |c| format!("${c:.4}")),
        ));
    }
    crate::term::out_line(out.trim_end());
    Ok(OK)
}

/// The first line of a text, cut to `n` characters.
fn head(text: &str, n: usize) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut s: String = line.chars().take(n).collect();
    if line.chars().count() > n || text.lines().filter(|l| !l.trim().is_empty()).count() > 1 {
        s.push('…');
    }
    s
}

pub fn show(args: ShowArgs) -> Result<u8, Failure> {
    let store = super::open_store(&args.store)?;
    let id = store.resolve(&args.run).map_err(Failure::user)?;
    let r = store.run(&id).map_err(Failure::internal)?;
    let mut out = format!(
        "run {}\n  crew      {} ({})\n  status    {}\n  started   {} UTC · {}\n  tokens    {} ({} in, {} out){}\n  outputs   {}\n",
        r.id,
        r.crew,
        r.crew_file,
        r.standing.as_str(),
        when(r.started_ms),
        duration(&r),
        r.input_tokens + r.output_tokens,
        r.input_tokens,
        r.output_tokens,
        r.cost_usd.map_or(String::new(), |c| format!(" · ${c:.4}")),
        r.out_dir,
    );
    if r.standing == Standing::Crashed {
        out.push_str(&format!(
            "  owner     pid {} on {} is gone: the run stopped without finishing\n",
            r.owner_pid, r.owner_host
        ));
    }
    if let Some(by) = &r.ended_by {
        out.push_str(&format!("  ended by  {by}\n"));
    }
    if let Some(parent) = &r.parent {
        out.push_str(&format!("  parent    {parent}\n"));
    }
    if r.standing.as_str() == "awaiting_approval" {
        let waiting: Vec<String> = store
            .tasks(&id)
            .map_err(Failure::internal)?
            .into_iter()
            .filter(|t| t.status == "awaiting_approval")
            .map(|t| t.key)
            .collect();
        for t in waiting {
            out.push_str(&format!(
                "  waits     `troupe approve {} '{t}'` (or `--revise \"…\"`, `--reject`) answers it and goes on\n",
                &r.id[..r.id.len().min(13)]
            ));
        }
    } else if !matches!(r.standing.as_str(), "running" | "completed") {
        out.push_str(&format!(
            "  resume    `troupe resume {}` continues it: completed tasks kept, recorded calls not paid again\n",
            &r.id[..r.id.len().min(13)]
        ));
    }
    let calls = store.call_counts(&id).map_err(Failure::internal)?;
    let events = store.events(&id).map_err(Failure::internal)?;
    out.push_str(&format!(
        "  recorded  {} event(s){}\n",
        events.len(),
        calls
            .iter()
            .map(|(kind, n)| format!(", {n} {kind} call(s)"))
            .collect::<String>()
    ));
    let tasks = store.tasks(&id).map_err(Failure::internal)?;
    if !tasks.is_empty() {
        out.push_str("tasks\n");
    }
    for t in &tasks {
        let rec = &t.record;
        let tokens = rec["usage"]["input_tokens"].as_u64().unwrap_or(0)
            + rec["usage"]["output_tokens"].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "  {:<24} {:<14} {:>7} tokens  {}\n",
            t.key,
            t.status,
            tokens,
            rec["output"]
                .as_str()
                .map(|o| head(o, 60))
                .unwrap_or_default()
        ));
        for key in ["limit", "error"] {
            if let Some(v) = rec[key].as_str() {
                out.push_str(&format!("  {:<24} {key}: {v}\n", ""));
            }
        }
    }
    crate::term::out_line(out.trim_end());
    Ok(OK)
}

/// `troupe export RUN --out DIR`: the output directory of a stored run, written from the store
/// (each task's output file, `run.json`, `events.jsonl`).
pub fn export(args: ExportArgs) -> Result<u8, Failure> {
    use std::io::Write;
    use troupe_runtime::outdir::{self, OutDir};
    use troupe_runtime::record::{self, TaskRecord};

    let store = super::open_store(&args.store)?;
    let id = store.resolve(&args.run).map_err(Failure::user)?;
    let out = OutDir::open(&args.out).map_err(Failure::user)?;
    let io = |what: &str, e: std::io::Error| {
        Failure::internal(anyhow::anyhow!(
            "cannot write {what} in `{}`: {e}\n  hint: check that the directory is writable and has space, or choose another with `--out`",
            args.out.display()
        ))
    };
    let mut files = 0;
    for t in store.tasks(&id).map_err(Failure::user)? {
        let Ok(rec) = serde_json::from_value::<TaskRecord>(t.record) else {
            continue;
        };
        for f in &rec.files {
            record::write_task_output(&out, &rec, Some(std::path::Path::new(f)))
                .map_err(|e| io(f, e))?;
            files += 1;
        }
    }
    if let Some(r) = store.record(&id).map_err(Failure::user)? {
        let mut json = serde_json::to_vec_pretty(&r).unwrap_or_default();
        json.push(b'\n');
        out.write(std::path::Path::new(outdir::RUN_FILE), &json)
            .map_err(|e| io(outdir::RUN_FILE, e))?;
        files += 1;
    }
    let events = store.events(&id).map_err(Failure::user)?;
    let mut log = out
        .create_log(outdir::EVENTS_FILE)
        .map_err(|e| io(outdir::EVENTS_FILE, e))?;
    let mut body = String::new();
    for (_, _, line) in &events {
        body.push_str(line);
        body.push('\n');
    }
    log.write_all(body.as_bytes())
        .map_err(|e| io(outdir::EVENTS_FILE, e))?;
    files += 1;
    crate::term::out_line(&format!(
        "run {id}: wrote {files} file(s) to {} ({} event(s))",
        args.out.display(),
        events.len()
    ));
    Ok(OK)
}
