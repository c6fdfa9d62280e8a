//! `troupe mcp serve`: plugins (sandboxed, with a policy's grants) and crews as the tools of an
//! MCP server on stdio. Stdout is the protocol's: everything else goes to stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
use tokio_util::sync::CancellationToken;
use troupe_crew::validate::RESERVED_PLUGIN_IDS;
use troupe_crew::{LoadError, PluginDecl, Source};
use troupe_docs::{ChunkOptions, Corpus, LoadOptions};
use troupe_mcp::crews::{CrewTool, Runs};
use troupe_mcp::{Log, McpService, Served};
use troupe_runtime::models::ProviderFactory;

use crate::cli::McpServeArgs;
use crate::exit::{Failure, OK};

pub fn serve(args: McpServeArgs) -> Result<u8, Failure> {
    if args.plugins.is_empty() && args.policy.is_none() && args.crews.is_empty() {
        return Err(Failure::user(anyhow!(
            "nothing to serve\n  hint: name plugins with `--plugin FILE` (and what they may do with `--policy FILE`), or crews with `--crew FILE`"
        )));
    }
    let quiet = args.quiet;
    let log: Log = Arc::new(move |line: &str| {
        if !quiet {
            crate::term::err_line(&format!("troupe mcp: {line}"));
        }
    });
    let (decls, notes) = plugin_decls(&args.plugins, args.policy.as_deref())?;
    for note in notes {
        log(&note);
    }
    if decls.is_empty() && args.crews.is_empty() {
        return Err(Failure::user(anyhow!(
            "nothing to serve: the policy lists no plugins\n  hint: add plugins to its `plugins`, or name them with `--plugin FILE`"
        )));
    }
    let documents = if args.docs.is_empty() {
        None
    } else {
        let (corpus, _) = Corpus::load(
            &args.docs,
            Path::new("."),
            &LoadOptions::default(),
            ChunkOptions::default(),
        )
        .map_err(|e| Failure::user(anyhow!("`--docs`: {e}")))?;
        if !decls.iter().any(|d| d.documents) {
            log(
                "warning: `--docs` is given but no plugin is granted `documents`: none will read them (crew tools take theirs as an argument)",
            );
        }
        Some(Arc::new(corpus))
    };
    let mut tools: Vec<Arc<dyn Served>> = Vec::new();
    if !args.crews.is_empty() {
        let out_root = std::path::absolute(&args.out)
            .map_err(|e| Failure::user(anyhow!("`--out {}`: {e}", args.out.display())))?;
        let mut docs_roots = Vec::new();
        let roots = if args.docs_roots.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            args.docs_roots.clone()
        };
        for root in roots {
            docs_roots.push(root.canonicalize().map_err(|e| {
                Failure::user(anyhow!(
                    "`--docs-root {}`: {e}\n  hint: name an existing directory",
                    root.display()
                ))
            })?);
        }
        let runs = Arc::new(Runs {
            store: super::open_store(&args.store)?,
            out_root,
            models: Arc::new(ProviderFactory::from_env()),
            docs_roots,
        });
        for file in &args.crews {
            let tool = CrewTool::new(file, runs.clone(), log.clone())
                .map_err(|e| Failure::user(anyhow!("{e}")))?;
            tools.push(Arc::new(tool));
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::internal(anyhow!("cannot start the async runtime: {e}")))?;
    let served = runtime.block_on(async move {
        let plugins = troupe_mcp::plugins::load(&decls, documents, log.clone())
            .await
            .map_err(|e| Failure::user(anyhow!("{e}")))?;
        tools.extend(plugins);
        let service = McpService::new(tools).map_err(|e| Failure::user(anyhow!("{e}")))?;
        log(&format!(
            "serving {} tool(s) over stdio: {}",
            service.tool_names().count(),
            service.tool_names().collect::<Vec<_>>().join(", ")
        ));
        let stop = CancellationToken::new();
        let stopping = stop.clone();
        tokio::spawn(async move {
            super::serve::stop_signal().await;
            stopping.cancel();
        });
        troupe_mcp::serve_stdio(service, stop).await.map_err(|e| {
            Failure::user(anyhow!(
                "MCP over stdio: {e}\n  hint: `troupe mcp serve` is started by an MCP client, which speaks to it on stdin and stdout"
            ))
        })?;
        Ok(OK)
    });
    // Stdin may still be open (a signal ended the session): do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// The plugins to serve, each with its policy entry: every entry of the policy when no
/// `--plugin` is given; else each `--plugin` file, with every entry whose `path` is that file
/// (one plugin may be served under two ids with different grants), or — said in the notes —
/// no grants and the default limits.
pub fn plugin_decls(
    files: &[PathBuf],
    policy: Option<&Path>,
) -> Result<(Vec<PluginDecl>, Vec<String>), Failure> {
    let entries = match policy {
        Some(p) => troupe_crew::load_policy(p).map_err(|e| match e {
            LoadError::Io { .. }
            | LoadError::NotUtf8 { .. }
            | LoadError::Invalid(_)
            | LoadError::InvalidPolicy(_) => Failure::user(e),
        })?,
        None => Vec::new(),
    };
    if files.is_empty() {
        return Ok((entries, Vec::new()));
    }
    let mut out: Vec<PluginDecl> = Vec::new();
    let mut notes = Vec::new();
    for file in files {
        let canonical = file.canonicalize().map_err(|e| {
            Failure::user(anyhow!(
                "cannot read plugin `{}`: {e}\n  hint: build the plugins with `plugins/build.sh`, or check the path",
                file.display()
            ))
        })?;
        let mut named: Vec<PluginDecl> = entries
            .iter()
            .filter(|d| d.path.canonicalize().is_ok_and(|p| p == canonical))
            .cloned()
            .collect();
        if named.is_empty() {
            let decl = ungranted(file, &canonical)?;
            if let Some(p) = policy {
                notes.push(format!(
                    "plugin `{}` is not in the policy `{}`: served as `{}` with no grants and the default limits",
                    file.display(),
                    p.display(),
                    decl.id
                ));
            }
            named.push(decl);
        }
        for decl in named {
            if let Some(other) = out.iter().find(|d| d.id == decl.id) {
                return Err(Failure::user(anyhow!(
                    "two plugins would be served as `{}`: `{}` and `{}`\n  hint: give them ids of their own in a policy file (`--policy`): {{\"plugins\": [{{\"id\": \"…\", \"path\": \"…\"}}]}}",
                    decl.id,
                    other.path.display(),
                    file.display()
                )));
            }
            out.push(decl);
        }
    }
    Ok((out, notes))
}

/// A plugin no policy entry names: its file name as its id, no grants, the default limits —
/// made by the policy's own validation, so the defaults are the crew file's.
fn ungranted(file: &Path, canonical: &Path) -> Result<PluginDecl, Failure> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty()
        || RESERVED_PLUGIN_IDS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&id))
    {
        return Err(Failure::user(anyhow!(
            "plugin `{}` cannot be served as `{id}`: the id is reserved for Troupe's own tools\n  hint: give it an id in a policy file (`--policy`): {{\"plugins\": [{{\"id\": \"{id}_plugin\", \"path\": \"{}\"}}]}}",
            file.display(),
            file.display()
        )));
    }
    let text = serde_json::json!({"plugins": [{"id": id, "path": canonical}]}).to_string();
    troupe_crew::parse_policy(Source::new(file, text), PathBuf::from("."))
        .map_err(|e| Failure::user(anyhow!("plugin `{}`: {e}", file.display())))?
        .pop()
        .ok_or_else(|| Failure::internal(anyhow!("the policy of `{}` is empty", file.display())))
}
