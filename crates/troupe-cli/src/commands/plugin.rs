//! `troupe plugin inspect|call`: look at a plugin, or run one call in its sandbox.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use troupe_docs::{ChunkOptions, Corpus, LoadOptions};
use troupe_plugin::{Grants, Limits, Plugin, PluginError, Services};

use crate::cli::{PluginCallArgs, PluginCommand};
use crate::exit::{Failure, OK, RUN_FAILED};

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::internal(anyhow!("cannot start the async runtime: {e}")))
}

fn load_failure(e: PluginError) -> Failure {
    Failure::user(e)
}

pub fn run(command: PluginCommand) -> Result<u8, Failure> {
    match command {
        PluginCommand::Inspect { file } => {
            let plugin = runtime()?
                .block_on(Plugin::load(
                    "plugin",
                    &file,
                    Grants::default(),
                    Limits::default(),
                    Services::default(),
                ))
                .map_err(load_failure)?;
            let d = &plugin.description;
            crate::term::out_line(&format!(
                "{}: {} {} — world {}@{}, {}",
                file.display(),
                d.name,
                d.version,
                troupe_plugin::WORLD,
                troupe_plugin::WORLD_VERSION,
                match plugin.kind {
                    troupe_plugin::load::Kind::Component => "component",
                    troupe_plugin::load::Kind::CoreModule =>
                        "core module (canonical ABI by hand, WASI preview 1)",
                }
            ));
            crate::term::out_line(&format!(
                "loaded in {:.1} ms ({}) · sha256 {}",
                plugin.load_time.as_secs_f64() * 1000.0,
                cache_words(&plugin),
                plugin.sha256
            ));
            crate::term::out_line(&format!(
                "asks for: {}",
                match &d.capabilities {
                    None => "nothing declared (its `describe` gives no `capabilities`)".to_string(),
                    Some(c) => {
                        let mut asks = Vec::new();
                        if c.documents {
                            asks.push("\"documents\": true".to_string());
                        }
                        if c.kv {
                            asks.push("\"kv\": true".to_string());
                        }
                        if !c.http.is_empty() {
                            asks.push(format!("\"http\": {:?}", c.http));
                        }
                        if asks.is_empty() {
                            "no grants".to_string()
                        } else {
                            format!("{{{}}}", asks.join(", "))
                        }
                    }
                }
            ));
            for t in &d.tools {
                crate::term::out_line(&format!(
                    "\n  {}: {}\n  parameters: {}",
                    t.name,
                    t.description,
                    serde_json::to_string_pretty(&t.parameters)
                        .unwrap_or_default()
                        .replace('\n', "\n  ")
                ));
            }
            Ok(OK)
        }
        PluginCommand::Call(args) => call(args),
        PluginCommand::New { name, lang, dir } => new(&name, &lang, &dir),
        PluginCommand::Lock { file } => super::lock::lock(&file),
    }
}

fn new(name: &str, lang: &str, parent: &std::path::Path) -> Result<u8, Failure> {
    use troupe_plugin::skeleton::{self, Lang};
    let lang = Lang::parse(lang).ok_or_else(|| {
        Failure::user(anyhow!(
            "unknown language `{lang}`\n  hint: use one of c, cpp, zig, go, assemblyscript, js, python"
        ))
    })?;
    if let Some(why) = skeleton::check_name(name) {
        return Err(Failure::user(anyhow!("{why}\n  hint: e.g. `word_count`")));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(Failure::user(anyhow!(
            "{} already exists\n  hint: choose another name, or another --dir",
            dir.display()
        )));
    }
    for (rel, text) in skeleton::files(name, lang) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Failure::user(anyhow!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| Failure::user(anyhow!("cannot write {}: {e}", path.display())))?;
        crate::term::out_line(&format!("created {}", path.display()));
    }
    crate::term::out_line(&format!(
        "\nnext: plugins/build.sh {0}   (from the Troupe checkout)\n      troupe plugin call {0}/{1}.wasm words '{{\"text\": \"a b c\"}}'",
        dir.display(),
        name
    ));
    Ok(OK)
}

fn cache_words(plugin: &Plugin) -> String {
    let what = match plugin.cache {
        troupe_plugin::CacheOutcome::Hit => "compiled code from the cache".to_string(),
        troupe_plugin::CacheOutcome::Stored => "compiled, and cached".to_string(),
        troupe_plugin::CacheOutcome::Compiled => "compiled; cache off".to_string(),
    };
    match &plugin.cache_note {
        Some(note) => format!("{what}: {note}"),
        None => what,
    }
}

fn call(args: PluginCallArgs) -> Result<u8, Failure> {
    let mut grants = Grants::default();
    for g in &args.grants {
        match g.split_once('=') {
            None if g == "documents" => grants.documents = true,
            None if g == "kv" => grants.kv = true,
            Some(("http", host)) => grants.http.push(host.to_string()),
            _ => {
                return Err(Failure::user(anyhow!(
                    "unknown grant `{g}`\n  hint: use `--grant documents`, `--grant kv` or `--grant http=HOST`"
                )));
            }
        }
    }
    let mut config = std::collections::BTreeMap::new();
    for c in &args.config {
        let (k, v) = c.split_once('=').ok_or_else(|| {
            Failure::user(anyhow!(
                "`--config {c}` is not KEY=VALUE\n  hint: e.g. --config language=en"
            ))
        })?;
        config.insert(k.to_string(), v.to_string());
    }
    let documents = if args.docs.is_empty() {
        None
    } else {
        let (corpus, _) = Corpus::load(
            &args.docs,
            std::path::Path::new("."),
            &LoadOptions::default(),
            ChunkOptions::default(),
        )
        .map_err(|e| Failure::user(anyhow!("documents: {e}")))?;
        Some(Arc::new(corpus))
    };
    let json: serde_json::Value = serde_json::from_str(&args.args).map_err(|e| {
        Failure::user(anyhow!(
            "the arguments are not JSON: {e}\n  hint: quote them for the shell, e.g. '{{\"text\": \"…\"}}'"
        ))
    })?;
    let limits = Limits {
        deadline: Duration::from_millis(args.deadline_ms),
        memory_bytes: args.memory_mb << 20,
        ..Limits::default()
    };
    let rt = runtime()?;
    let plugin = rt
        .block_on(Plugin::load(
            "plugin",
            &args.file,
            grants,
            limits,
            Services {
                documents,
                config,
                ..Services::default()
            },
        ))
        .map_err(load_failure)?;
    if !plugin.description.tools.iter().any(|t| t.name == args.tool) {
        let names: Vec<&str> = plugin
            .description
            .tools
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        return Err(Failure::user(anyhow!(
            "the plugin has no tool `{}`\n  hint: its tools are: {}",
            args.tool,
            names.join(", ")
        )));
    }
    let report = rt.block_on(plugin.call(&args.tool, &json.to_string()));
    for l in &report.logs {
        crate::term::err_line(&format!("log {}: {}", l.level, l.message));
    }
    if report.logs_dropped > 0 {
        crate::term::err_line(&format!(
            "{} more log line(s) dropped (limit: {} per call)",
            report.logs_dropped,
            Limits::default().log_lines
        ));
    }
    if report.stdio_full {
        crate::term::err_line(&format!(
            "stdout/stderr reached the cap of {} KiB",
            Limits::default().stdio_bytes >> 10
        ));
    }
    for h in &report.hits {
        crate::term::err_line(&format!("limit hit: {h} (the plugin got an error)"));
    }
    for d in &report.denied {
        crate::term::err_line(&format!("denied: {d}"));
    }
    if report.denied_total > report.denied.len() {
        crate::term::err_line(&format!(
            "{} requests were denied in all",
            report.denied_total
        ));
    }
    if !report.stdout.is_empty() {
        crate::term::err_line(&format!("stdout: {}", report.stdout.trim_end()));
    }
    if !report.stderr.is_empty() {
        crate::term::err_line(&format!("stderr: {}", report.stderr.trim_end()));
    }
    crate::term::err_line(&format!(
        "{:.2} ms · deadline {} ms · memory cap {} MiB{}",
        report.duration.as_secs_f64() * 1000.0,
        args.deadline_ms,
        args.memory_mb,
        report
            .limit
            .map(|l| format!(" · limit hit: {l}"))
            .unwrap_or_default()
    ));
    match report.result {
        Ok(out) => {
            crate::term::out_line(&out);
            Ok(OK)
        }
        Err(e) => {
            crate::term::err_line(&format!("error: {e}"));
            Ok(RUN_FAILED)
        }
    }
}
