//! `troupe serve`: the HTTP API, live events and the web page, until Ctrl-C or SIGTERM.

use std::sync::Arc;

use anyhow::anyhow;
use troupe_runtime::models::ProviderFactory;
use troupe_server::ServeConfig;

use crate::cli::ServeArgs;
use crate::exit::{Failure, OK};

pub fn serve(args: ServeArgs) -> Result<u8, Failure> {
    let store = args.store.store.clone().unwrap_or_else(|| {
        troupe_store::default_path(&|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    });
    let token = match &args.token_env {
        Some(var) => match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
            _ => {
                return Err(Failure::user(anyhow!(
                    "`--token-env {var}`: the variable `{var}` is not set\n  hint: export {var}=… (a long random string) before starting the server"
                )));
            }
        },
        None => None,
    };
    let data_dir = args.data.clone().unwrap_or_else(|| {
        store
            .parent()
            .map_or_else(|| "server".into(), |d| d.join("server"))
    });
    let config = ServeConfig {
        crews_dir: args.crews.clone(),
        store,
        data_dir,
        max_runs: args.max_runs,
        max_queue: args.max_queue,
        token,
        max_body_kb: args.max_body_kb,
        max_upload_mb: args.max_upload_mb,
        models: Arc::new(ProviderFactory::from_env()),
        run_sinks: None,
        mcp: None,
    };
    let tracing = match &args.otlp.otlp {
        Some(url) => Some(Arc::new(troupe_otel::Tracing::start(url, "troupe").map_err(
            |e| {
                Failure::user(anyhow!(
                    "{e}\n  hint: give the collector's OTLP/HTTP address, e.g. `--otlp http://127.0.0.1:4318`"
                ))
            },
        )?)),
        None => None,
    };
    let mut config = config;
    if let Some(t) = &tracing {
        // One trace per run (and per resumed stretch of it), ended when the run's sink goes.
        let t = t.clone();
        config.run_sinks = Some(Arc::new(move |run: &str| t.run_sink(Some(run.to_string()))));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::internal(anyhow!("cannot start the async runtime: {e}")))?;
    if !args.mcp_plugins.is_empty() || args.mcp_policy.is_some() {
        let (decls, notes) =
            super::mcp::plugin_decls(&args.mcp_plugins, args.mcp_policy.as_deref())?;
        let log: troupe_mcp::Log = Arc::new(|line: &str| {
            crate::term::err_line(&format!("troupe serve: mcp: {line}"));
        });
        for note in notes {
            log(&note);
        }
        if decls.is_empty() {
            return Err(Failure::user(anyhow!(
                "`--mcp-policy`: the policy lists no plugins\n  hint: add plugins to its `plugins`, or name them with `--mcp-plugin FILE`"
            )));
        }
        let tools = runtime
            .block_on(troupe_mcp::plugins::load(&decls, None, log))
            .map_err(|e| Failure::user(anyhow!("{e}")))?;
        config.mcp =
            Some(troupe_mcp::McpService::new(tools).map_err(|e| Failure::user(anyhow!("{e}")))?);
    }
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.bind).await.map_err(|e| {
            Failure::user(anyhow!(
                "cannot listen on {}: {e}\n  hint: choose another address with `--bind HOST:PORT`",
                args.bind
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::internal(anyhow!("{e}")))?;
        config.check_bind(addr).map_err(Failure::user)?;
        crate::term::err_line(&format!(
            "troupe serve: listening on http://{addr} (API: /v1, OpenAPI: /v1/openapi.json; the page: /{}{}) · store {}",
            if config.token.is_some() { "?token=…" } else { "" },
            match &config.mcp {
                Some(m) => format!("; MCP: /mcp, {} tool(s)", m.tool_names().count()),
                None => String::new(),
            },
            config.store.display()
        ));
        troupe_server::serve(config, listener, stop_signal())
            .await
            .map_err(Failure::user)?;
        crate::term::err_line("troupe serve: stopped; running runs were interrupted (resume them with `POST /v1/runs/{id}/resume` or `troupe resume`)");
        Ok(OK)
    });
    if let Some(t) = tracing
        && let Err(e) = t.shutdown()
    {
        crate::term::err_line(&format!("warning: traces were not all delivered: {e}"));
    }
    served
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
