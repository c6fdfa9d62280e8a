//! # troupe-server
//!
//! `troupe serve`: the runtime and the run store behind an HTTP API, for applications that
//! start runs, people who watch and approve them, and operators. Another front end over the
//! same library calls as the CLI: a run started here is the run `troupe run` makes, stored in
//! the same store, resumable by either.
//!
//! Layout:
//! - [`config`]: what a server is started with ([`ServeConfig`]), and the refusals at start
//!   (a non-loopback address without a token);
//! - [`api`]: the handlers, each with its OpenAPI description (utoipa), and the router;
//! - [`manager`]: runs in this process — a bounded number at once, the rest queued (in the
//!   store, so the queue outlives the process), cancel, resume, approvals that continue a
//!   paused run, and a clean stop that leaves every run resumable;
//! - [`hub`]: live events of the runs in this process, for the SSE streams (which read what
//!   they missed from the store, by sequence number);
//! - [`crews`] and [`uploads`]: the crews a server offers (`--crews DIR`) and the documents
//!   clients upload;
//! - [`auth`]: the bearer token, checked on every request;
//! - [`error`]: one JSON error shape, with the `hint` and the located diagnostics the CLI prints;
//! - [`page`]: the web page, compiled into the binary;
//! - `/mcp`: the plugins of `ServeConfig::mcp` as MCP tools over streamable HTTP (`troupe_mcp`).

pub mod api;
pub mod auth;
pub mod config;
pub mod crews;
pub mod error;
pub mod hub;
pub mod manager;
pub mod page;
pub mod uploads;

use std::future::Future;
use std::sync::Arc;

pub use config::{ServeConfig, ServeError};

/// What every handler shares.
pub struct AppState {
    pub config: ServeConfig,
    pub store: Arc<troupe_store::Store>,
    pub hub: hub::Hub,
    pub runs: manager::Manager,
    pub uploads: uploads::Uploads,
}

/// Serves on `listener` until `shutdown` resolves, then stops cleanly: no new requests, every
/// running run interrupted (and resumable), queued runs left queued in the store for the next
/// start. Runs the store left queued by an earlier server start again.
pub async fn serve(
    config: ServeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(ServeError::Io)?;
    config.check_bind(addr)?;
    let mcp = config.mcp.clone();
    let state = start(config)?;
    let (mut router, _) = api::router(state.clone());
    let stop = tokio_util::sync::CancellationToken::new();
    if let Some(service) = mcp {
        // Behind the token like every route; on loopback, `Host` must be a loopback name too
        // (a web page cannot rebind its own name to this server). Its sessions end with the
        // server.
        let endpoint = troupe_mcp::http_service(
            service,
            addr.ip().is_loopback(),
            state.config.max_body_kb << 10,
            stop.child_token(),
        );
        router = router.merge(axum::Router::new().nest_service("/mcp", endpoint).layer(
            axum::middleware::from_fn_with_state(state.clone(), crate::auth::check),
        ));
    }
    let stopping = stop.clone();
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stopping.cancelled().await });
    let server = tokio::spawn(async move { server.await });
    shutdown.await;
    // Runs first: their SSE streams see them end; then the listener.
    state.runs.shutdown().await;
    stop.cancel();
    match server.await {
        Ok(r) => r.map_err(ServeError::Io),
        Err(e) => Err(ServeError::Io(std::io::Error::other(e))),
    }
}

/// Opens the store, makes the state, and queues again what an earlier start left queued.
pub fn start(config: ServeConfig) -> Result<Arc<AppState>, ServeError> {
    let store = Arc::new(troupe_store::Store::open(&config.store).map_err(ServeError::Store)?);
    std::fs::create_dir_all(&config.data_dir).map_err(ServeError::Io)?;
    let uploads = uploads::Uploads::new(config.data_dir.join("documents"));
    let state = Arc::new_cyclic(|weak| AppState {
        runs: manager::Manager::new(weak.clone(), config.max_runs, config.max_queue),
        config,
        store,
        hub: hub::Hub::default(),
        uploads,
    });
    state.runs.recover();
    Ok(state)
}
