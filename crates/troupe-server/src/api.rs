//! The HTTP API: every handler with its OpenAPI description (utoipa), collected into the
//! router and the document at `/v1/openapi.json` from the same list, so the document cannot
//! drift from the routes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_stream::wrappers::ReceiverStream;
use troupe_runtime::continuation::DocumentSource;
use troupe_store::{RunFilter, RunRow, Standing};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::AppState;
use crate::crews::{self, CrewInfo};
use crate::error::{ApiError, ErrorBody};
use crate::manager::{self, Job, Submitted};
use crate::uploads::Uploaded;

type Shared = State<Arc<AppState>>;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Troupe",
        description = "Start crews of AI agents, follow their events, answer their approval requests, read their reports."
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The router (with the token check and the body caps) and the OpenAPI document it serves.
pub fn router(state: Arc<AppState>) -> (axum::Router, utoipa::openapi::OpenApi) {
    let body_cap = state.config.max_body_kb << 10;
    let upload_cap = state.config.max_upload_mb << 20;
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_crews))
        .routes(routes!(upload_documents).layer(DefaultBodyLimit::max(upload_cap)))
        .routes(routes!(list_runs, create_run))
        .routes(routes!(get_run))
        .routes(routes!(get_file))
        .routes(routes!(get_chunk))
        .routes(routes!(cancel_run))
        .routes(routes!(resume_run))
        .routes(routes!(run_events))
        .routes(routes!(answer_approval))
        .layer(DefaultBodyLimit::max(body_cap))
        .split_for_parts();
    // Serialised once: the router's services are cloned for every request in flight (an
    // event stream is one for as long as it lasts), so what a handler holds must be cheap to
    // clone: bytes behind a reference count, not the document.
    let served = axum::body::Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    let router = api
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = served.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
            }),
        )
        .route("/", get(crate::page::index))
        .route("/assets/app.js", get(crate::page::script))
        .route("/assets/app.css", get(crate::page::style))
        .fallback(|| async {
            ApiError::not_found("no such endpoint").hint("`GET /v1/openapi.json` describes the API")
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::check,
        ))
        .with_state(state);
    (router, doc)
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(t)| t).map_err(|e| {
        let status = e.status();
        let message = e.body_text();
        let e = ApiError::new(status, message);
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            e.hint("the body is larger than the server takes (`troupe serve --max-body-kb`)")
        } else {
            e.hint("send a JSON body as `GET /v1/openapi.json` describes it")
        }
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

// ---- crews -------------------------------------------------------------------------------

/// The crews this server offers (`--crews DIR`), each validated with its default inputs.
#[utoipa::path(get, path = "/v1/crews", tag = "crews",
    responses((status = 200, body = [CrewInfo])))]
async fn list_crews(State(state): Shared) -> Result<Json<Vec<CrewInfo>>, ApiError> {
    let Some(dir) = state.config.crews_dir.clone() else {
        return Ok(Json(Vec::new()));
    };
    blocking(move || {
        Ok(Json(
            crews::scan(&dir)
                .iter()
                .map(|(name, f)| crews::info(&dir, name, f))
                .collect(),
        ))
    })
    .await
}

// ---- documents ---------------------------------------------------------------------------

/// Upload documents (multipart, one `file` part each) for runs to work on.
#[utoipa::path(post, path = "/v1/documents", tag = "documents",
    request_body(content_type = "multipart/form-data", description = "one or more `file` parts"),
    responses((status = 201, body = [Uploaded]), (status = 413, body = ErrorBody)))]
async fn upload_documents(
    State(state): Shared,
    mut form: Multipart,
) -> Result<(StatusCode, Json<Vec<Uploaded>>), ApiError> {
    let mut out = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e.status(), e.body_text())),
        };
        let name = field
            .file_name()
            .map(str::to_string)
            .unwrap_or_else(|| "document.txt".into());
        let bytes = field
            .bytes()
            .await
            .map_err(|e| multipart_error(e.status(), e.body_text()))?;
        let state = state.clone();
        out.push(
            blocking(move || {
                state
                    .uploads
                    .put(&name, &bytes)
                    .map_err(|e| ApiError::internal(format!("cannot keep the upload: {e}")))
            })
            .await?,
        );
    }
    if out.is_empty() {
        return Err(ApiError::bad_request("the upload holds no file")
            .hint("send `multipart/form-data` with one `file` part per document"));
    }
    Ok((StatusCode::CREATED, Json(out)))
}

fn multipart_error(status: StatusCode, text: String) -> ApiError {
    let e = ApiError::new(status, text);
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        e.hint("the upload is larger than the server takes (`troupe serve --max-upload-mb`)")
    } else {
        e.hint("send `multipart/form-data` with one `file` part per document")
    }
}

// ---- runs --------------------------------------------------------------------------------

/// A new run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// The crew: the `name` of one the server offers, or a crew file's JSON object.
    #[schema(value_type = Object)]
    pub crew: Value,
    /// Values of the crew's `{placeholder}` inputs.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Uploaded documents (`POST /v1/documents` ids) the run works on.
    #[serde(default)]
    pub documents: Vec<String>,
    /// Leave out documents that cannot be read (each is reported) instead of failing.
    #[serde(default)]
    pub skip_unreadable: bool,
}

/// An accepted run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunCreated {
    pub id: String,
    /// `running`, or `queued` until a slot is free.
    pub status: String,
    /// Runs ahead of it in the queue.
    pub queue_position: Option<usize>,
    /// Its events (Server-Sent Events).
    pub events: String,
}

/// A run as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub parent: Option<String>,
    pub crew: String,
    /// `queued`, `running`, `crashed`, `awaiting_approval`, `completed`, `failed`,
    /// `interrupted`, `timed_out`, `budget_exhausted`.
    pub status: String,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: Option<f64>,
    /// What ended it, when it did not complete.
    pub ended_by: Option<String>,
}

impl From<RunRow> for RunSummary {
    fn from(r: RunRow) -> Self {
        Self {
            status: r.standing.as_str().to_string(),
            id: r.id,
            parent: r.parent,
            crew: r.crew,
            started_ms: r.started_ms,
            finished_ms: r.finished_ms,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cost_usd: r.cost_usd,
            ended_by: r.ended_by,
        }
    }
}

/// One run, whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    /// Each task's record, as `run.json` has it.
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<Value>,
    /// Files `GET /v1/runs/{id}/files/{name}` serves.
    pub files: Vec<String>,
    /// Approval requests, with the answers given.
    #[schema(value_type = Vec<Object>)]
    pub approvals: Vec<troupe_store::ApprovalRow>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Only runs of this crew.
    crew: Option<String>,
    /// Only runs with this status.
    status: Option<String>,
    /// At most this many, newest first (default 100).
    limit: Option<usize>,
}

/// The stored runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(RunQuery),
    responses((status = 200, body = [RunSummary])))]
async fn list_runs(
    State(state): Shared,
    Query(q): Query<RunQuery>,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    blocking(move || {
        let rows = state.store.runs(&RunFilter {
            crew: q.crew,
            status: q.status,
            limit: Some(q.limit.unwrap_or(100).min(1000)),
        })?;
        Ok(Json(rows.into_iter().map(RunSummary::from).collect()))
    })
    .await
}

/// The crew file a run request names: its path (relative paths in it resolve from there), its
/// text, and whether it came inline.
fn crew_source(state: &AppState, crew: &Value) -> Result<(PathBuf, String, bool), ApiError> {
    match crew {
        Value::String(name) => {
            let Some(dir) = &state.config.crews_dir else {
                return Err(ApiError::not_found(format!("no crew `{name}`: this server offers none"))
                    .hint("start the server with `--crews DIR`, or send the crew file's JSON as `crew`"));
            };
            let mut found = crews::scan(dir);
            match found.remove(name) {
                Some(f) => Ok((f.path, f.text, false)),
                None => {
                    let names: Vec<String> = found.into_keys().collect();
                    Err(ApiError::not_found(format!("no crew `{name}`")).hint(format!(
                        "`GET /v1/crews` lists them: {}",
                        if names.is_empty() { "(none)".into() } else { names.join(", ") }
                    )))
                }
            }
        }
        Value::Object(_) => {
            let dir = state
                .config
                .crews_dir
                .clone()
                .unwrap_or_else(|| state.config.data_dir.clone());
            let text = serde_json::to_string_pretty(crew).map_err(ApiError::internal)?;
            Ok((dir.join("inline-crew.json"), text, true))
        }
        _ => Err(ApiError::bad_request("`crew` is neither a name nor a crew file's JSON")
            .hint("send `\"crew\": \"document-review\"` or `\"crew\": {\"name\": …, \"agents\": […], \"tasks\": […]}`")),
    }
}

/// Start a run: validated as `troupe validate` validates (a crew that fails gets 422 with
/// every located diagnostic), recorded as queued, then run when a slot is free.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", request_body = CreateRun,
    responses((status = 201, body = RunCreated), (status = 422, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "the queue is full; see `Retry-After`")))]
async fn create_run(
    State(state): Shared,
    body: Result<Json<CreateRun>, JsonRejection>,
) -> Result<(StatusCode, Json<RunCreated>), ApiError> {
    let req = json_body(body)?;
    let (file, text, inline) = crew_source(&state, &req.crew)?;
    let dir = file.parent().map(FsPath::to_path_buf).unwrap_or_default();
    let crew = troupe_crew::parse(
        troupe_crew::Source::new(&file, text.clone()),
        dir,
        &req.inputs,
    )
    .map_err(|d| ApiError::invalid_crew(&d))?;
    let mut specs = Vec::new();
    for id in &req.documents {
        match state.uploads.path(id) {
            Some(p) => specs.push(p.display().to_string()),
            None => {
                return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("no uploaded document `{id}`"))
                    .hint("upload documents with `POST /v1/documents` and name them by the ids it returns"));
            }
        }
    }
    let crew_paths = crew
        .documents
        .as_ref()
        .map(|d| d.paths.clone())
        .unwrap_or_default();
    if inline && !crew_paths.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "an inline crew may not read the server's files (`documents.paths`)",
        )
        .hint("upload the documents with `POST /v1/documents` and name them in `documents`"));
    }
    // Checked before `prepare`, which would start them.
    if inline && !crew.mcp_servers.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "an inline crew may not declare MCP servers (`mcp_servers`): a local one is a program the server would run, a remote one would be sent the server's environment variables as headers",
        )
        .hint("put the crew in the server's `--crews` directory and start it by name"));
    }
    let documents = if !specs.is_empty() {
        Some(DocumentSource {
            specs,
            base: state.uploads.dir().to_path_buf(),
            skip_unreadable: req.skip_unreadable,
        })
    } else if !crew_paths.is_empty() {
        Some(DocumentSource {
            specs: crew_paths,
            base: std::path::absolute(&crew.dir).unwrap_or(crew.dir.clone()),
            skip_unreadable: req.skip_unreadable,
        })
    } else {
        None
    };
    // A run the queue would refuse is refused before its documents are read, its plugins
    // compiled and its MCP servers started.
    state.runs.would_take().map_err(manager::refusal)?;
    // What `troupe validate` checks: the documents, the plugins, every tool and model.
    let loaded = match &documents {
        Some(source) => {
            let (s, c) = (source.clone(), crew.clone());
            blocking(move || {
                troupe_runtime::launch::documents(&s, &c)
                    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.message))
            })
            .await?
        }
        None => None,
    };
    let (events, _rx) = troupe_runtime::events::Events::channel();
    troupe_runtime::prepare::prepare(
        crew.clone(),
        &*state.config.models,
        troupe_runtime::default_tools(),
        loaded.as_ref().map(|d| d.corpus.clone()),
        &events,
    )
    .await
    .map_err(|d| ApiError::invalid_crew(&d))?;

    let id = troupe_store::new_run_id();
    let out_dir = state.config.data_dir.join("runs").join(&id);
    let inputs = serde_json::to_value(&crew.inputs).unwrap_or_default();
    let options = serde_json::json!({ "documents": documents });
    let crew_file = std::path::absolute(&file).unwrap_or(file.clone());
    {
        let (state, id, name, out) = (
            state.clone(),
            id.clone(),
            crew.name.clone(),
            out_dir.clone(),
        );
        blocking(move || {
            state.store.queue_run(&troupe_store::NewRun {
                id: &id,
                parent: None,
                crew: &name,
                crew_file: &crew_file.display().to_string(),
                crew_text: &text,
                crew_sha256: &troupe_runtime::recorded::request_hash(&text),
                inputs: &inputs,
                documents: &Value::Array(Vec::new()),
                out_dir: &out.display().to_string(),
                started_ms: manager::now_ms(),
                options: &options,
            })?;
            Ok(())
        })
        .await?;
    }
    let submitted = state.runs.submit(Job::New {
        id: id.clone(),
        crew: Box::new(crew),
        documents,
        out_dir,
    });
    let submitted = match submitted {
        Ok(s) => s,
        Err(r) => {
            let (st, run) = (state.clone(), id.clone());
            let _ = blocking(move || {
                Ok(st.store.end_waiting(
                    &run,
                    "interrupted",
                    "refused: the server's queue was full",
                    manager::now_ms(),
                )?)
            })
            .await;
            return Err(manager::refusal(r));
        }
    };
    let (status, queue_position) = match submitted {
        Submitted::Started => ("running", None),
        Submitted::Queued(n) => ("queued", Some(n)),
    };
    Ok((
        StatusCode::CREATED,
        Json(RunCreated {
            events: format!("/v1/runs/{id}/events"),
            id,
            status: status.into(),
            queue_position,
        }),
    ))
}

fn resolve(state: &AppState, id: &str) -> Result<String, ApiError> {
    Ok(state.store.resolve(id)?)
}

/// The files a run's output directory holds that the API serves: its tasks' outputs, the
/// report, `run.json` and `events.jsonl`.
fn run_files(out_dir: &FsPath, tasks: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = tasks
        .iter()
        .filter_map(|t| t.get("files").and_then(Value::as_array))
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    for fixed in ["report.md", "report.json", "run.json", "events.jsonl"] {
        if !names.iter().any(|n| n == fixed) {
            names.push(fixed.into());
        }
    }
    names.retain(|n| out_dir.join(n).is_file());
    names
}

/// One run: its tasks' records, its files, its approval requests.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "the run's id, or enough of its start")),
    responses((status = 200, body = RunDetail), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    blocking(move || {
        let id = resolve(&state, &id)?;
        let row = state.store.run(&id)?;
        let tasks: Vec<Value> = state
            .store
            .tasks(&id)?
            .into_iter()
            .map(|t| t.record)
            .collect();
        let files = run_files(FsPath::new(&row.out_dir), &tasks);
        let approvals = state.store.approvals(&id)?;
        Ok(Json(RunDetail {
            run: row.into(),
            tasks,
            files,
            approvals,
        }))
    })
    .await
}

/// A file of the run's output directory (one `GET /v1/runs/{id}` lists).
#[utoipa::path(get, path = "/v1/runs/{id}/files/{name}", tag = "runs",
    params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "the file"), (status = 404, body = ErrorBody)))]
async fn get_file(
    State(state): Shared,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let id = resolve(&state, &id)?;
        let row = state.store.run(&id)?;
        let tasks: Vec<Value> = state
            .store
            .tasks(&id)?
            .into_iter()
            .map(|t| t.record)
            .collect();
        let out = PathBuf::from(&row.out_dir);
        // Only names the run wrote: never a path the client makes up.
        if !run_files(&out, &tasks).contains(&name) {
            return Err(
                ApiError::not_found(format!("run {id} has no file `{name}`"))
                    .hint("`GET /v1/runs/{id}` lists its files"),
            );
        }
        let bytes = std::fs::read(out.join(&name))
            .map_err(|e| ApiError::internal(format!("cannot read `{name}`: {e}")))?;
        let kind = match FsPath::new(&name).extension().and_then(|e| e.to_str()) {
            Some("md") => "text/markdown; charset=utf-8",
            Some("json") => "application/json",
            Some("jsonl") => "application/x-ndjson",
            Some("html") => "text/plain; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        };
        Ok(([(header::CONTENT_TYPE, kind)], bytes).into_response())
    })
    .await
}

/// A passage of a run's documents: the chunk a citation names, with its lines.
#[derive(Debug, Serialize, ToSchema)]
pub struct Chunk {
    pub id: String,
    pub document: String,
    pub first_line: usize,
    pub last_line: usize,
    pub text: String,
}

/// The text of a chunk of the run's documents, to show where a citation points.
#[utoipa::path(get, path = "/v1/runs/{id}/chunks/{chunk}", tag = "runs",
    params(("id" = String, Path), ("chunk" = String, Path, description = "a chunk id, e.g. `MPL-2.0.txt:13478-14764`")),
    responses((status = 200, body = Chunk), (status = 404, body = ErrorBody)))]
async fn get_chunk(
    State(state): Shared,
    Path((id, chunk)): Path<(String, String)>,
) -> Result<Json<Chunk>, ApiError> {
    blocking(move || {
        let id = resolve(&state, &id)?;
        let source = state.store.source(&id)?;
        let crew = troupe_runtime::launch::parse(
            FsPath::new(&source.crew_file),
            source.crew_text.clone(),
            &troupe_runtime::launch::stored_inputs(&source),
        )?;
        let docs: Option<DocumentSource> = source
            .options
            .get("documents")
            .cloned()
            .and_then(|d| serde_json::from_value(d).ok());
        let Some(docs) = docs else {
            return Err(ApiError::not_found(format!("run {id} has no documents")));
        };
        let loaded = troupe_runtime::launch::documents(&docs, &crew)?
            .ok_or_else(|| ApiError::not_found(format!("run {id} has no documents")))?;
        let corpus = &loaded.corpus;
        let c = corpus.chunk(&chunk).ok_or_else(|| {
            ApiError::not_found(format!("run {id}'s documents have no chunk `{chunk}`"))
        })?;
        let doc = &corpus.documents()[c.doc];
        let (first_line, last_line) = corpus.lines(doc, c.start, c.end);
        Ok(Json(Chunk {
            id: c.id.clone(),
            document: doc.id.clone(),
            first_line,
            last_line,
            text: corpus.chunk_text(c).to_string(),
        }))
    })
    .await
}

/// Stop a run: a running one is interrupted (its finished work kept; it can be resumed), a
/// queued one does not start, a paused one stops waiting.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path)),
    responses((status = 202, body = RunSummary), (status = 409, body = ErrorBody)))]
async fn cancel_run(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RunSummary>), ApiError> {
    let id = resolve(&state, &id)?;
    match state.runs.cancel(&id) {
        manager::Cancelled::Running => {}
        manager::Cancelled::Queued | manager::Cancelled::NotHere => {
            let row = state.store.run(&id)?;
            let waiting = matches!(row.standing, Standing::Queued)
                || row.standing.as_str() == "awaiting_approval";
            if !waiting {
                return Err(ApiError::conflict(format!(
                    "run {id} is {}: there is nothing to cancel",
                    row.standing.as_str()
                )));
            }
            state
                .store
                .end_waiting(&id, "interrupted", "cancelled", manager::now_ms())?;
        }
    }
    let row = state.store.run(&id)?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

/// Continue a run that crashed, was interrupted (a cancel, a server stop), failed or ran out
/// of budget: completed tasks are kept, recorded calls are not paid again.
#[utoipa::path(post, path = "/v1/runs/{id}/resume", tag = "runs",
    params(("id" = String, Path)),
    responses((status = 202, body = RunCreated), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn resume_run(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RunCreated>), ApiError> {
    let id = resolve(&state, &id)?;
    let submitted = state.runs.resume(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(created(id, submitted))))
}

fn created(id: String, s: Submitted) -> RunCreated {
    let (status, queue_position) = match s {
        Submitted::Started => ("running", None),
        Submitted::Queued(n) => ("queued", Some(n)),
    };
    RunCreated {
        events: format!("/v1/runs/{id}/events"),
        id,
        status: status.into(),
        queue_position,
    }
}

/// A person's answer to a task's approval request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// `approve`, `revise` (send it back to its author with `feedback`) or `reject`.
    pub decision: String,
    pub feedback: Option<String>,
    /// Who answers, kept with the answer.
    pub by: Option<String>,
}

/// What became of an answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Answered {
    /// The request answered: its number among the task's requests.
    pub request: u32,
    /// `resumed` (the paused run goes on), `running` (the run is running: it goes on with the
    /// answer when it pauses), or `recorded` (another process owns the run).
    pub run: String,
}

/// Answer the open approval request of a task: approve, revise with feedback, or reject. A
/// paused run goes on.
#[utoipa::path(post, path = "/v1/runs/{id}/approvals/{task}", tag = "approvals",
    params(("id" = String, Path), ("task" = String, Path, description = "the task's key, e.g. `report` or `extract[a.txt]`")),
    request_body = Answer,
    responses((status = 202, body = Answered), (status = 409, body = ErrorBody, description = "the task waits for no approval")))]
async fn answer_approval(
    State(state): Shared,
    Path((id, task)): Path<(String, String)>,
    body: Result<Json<Answer>, JsonRejection>,
) -> Result<(StatusCode, Json<Answered>), ApiError> {
    let answer = json_body(body)?;
    let Some(verdict) = troupe_runtime::approval::Verdict::parse(&answer.decision) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`decision` is `{}`", answer.decision),
        )
        .hint("use `approve`, `revise` (with `feedback`) or `reject`"));
    };
    let id = resolve(&state, &id)?;
    let decided = troupe_store::Decided {
        decision: verdict.as_str().into(),
        feedback: answer.feedback.filter(|f| !f.trim().is_empty()),
        by: Some(answer.by.unwrap_or_else(|| "api".into())),
        at_ms: manager::now_ms(),
    };
    let (st, run, t) = (state.clone(), id.clone(), task.clone());
    let n = blocking(move || Ok(st.store.decide_approval(&run, &t, &decided)?)).await?;
    let row = state.store.run(&id)?;
    let live = state.runs.is_live(&id) || state.runs.is_queued(&id);
    let what = if live {
        "running"
    } else if manager::owned_elsewhere(&row.standing, live) {
        "recorded"
    } else {
        state.runs.resume(&id).await?;
        "resumed"
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(Answered {
            request: n,
            run: what.into(),
        }),
    ))
}

// ---- events ------------------------------------------------------------------------------

/// Events to send per read of the store.
const PAGE: usize = 256;
/// How often a stream with nothing live reads the store (runs of other processes).
const POLL: Duration = Duration::from_secs(1);

/// Whether an event ends a run's stream: the run finished, other than paused.
fn ends_stream(kind: &str, body: &str) -> bool {
    kind == "run_finished" && !body.contains("\"status\":\"awaiting_approval\"")
}

/// The run's events as Server-Sent Events: `id:` is the event's sequence number, `event:` its
/// type, `data:` the event. With `Last-Event-ID` (or `?after=N`) it sends what came after, then
/// goes live; it ends when the run ends (a pause for an approval does not end it).
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs",
    params(("id" = String, Path), ("after" = Option<u64>, Query, description = "send events after this sequence number (as `Last-Event-ID`)")),
    responses((status = 200, content_type = "text/event-stream", description = "the events")))]
async fn run_events(
    State(state): Shared,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Result<
    Sse<axum::response::sse::KeepAliveStream<ReceiverStream<Result<SseEvent, Infallible>>>>,
    ApiError,
> {
    let id = resolve(&state, &id)?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or_else(|| q.get("after").and_then(|a| a.parse().ok()))
        .unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(stream_events(state, id, after, tx));
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}

/// Up to a page of the run's stored events after `last`.
async fn stored_after(state: &Arc<AppState>, id: &str, last: u64) -> Vec<(u64, String, String)> {
    let (st, run) = (state.clone(), id.to_string());
    tokio::task::spawn_blocking(move || st.store.events_after(&run, last, PAGE))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

async fn stream_events(
    state: Arc<AppState>,
    id: String,
    mut last: u64,
    tx: tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>,
) {
    let mut live = state.hub.subscribe(&id);
    let send = |seq: u64, kind: &str, body: &str| {
        SseEvent::default()
            .id(seq.to_string())
            .event(kind)
            .data(body)
    };
    'stream: loop {
        // What the store has that the client has not seen.
        loop {
            let rows = stored_after(&state, &id, last).await;
            let n = rows.len();
            for (seq, kind, body) in rows {
                if tx.send(Ok(send(seq, &kind, &body))).await.is_err() {
                    break 'stream;
                }
                last = seq;
                if ends_stream(&kind, &body) {
                    break 'stream;
                }
            }
            if n < PAGE {
                break;
            }
        }
        // A run that ended without a `run_finished` (it crashed, or never started) sends
        // nothing more.
        if !state.runs.is_live(&id) && !state.runs.is_queued(&id) {
            let (st, run) = (state.clone(), id.clone());
            let standing =
                tokio::task::spawn_blocking(move || st.store.run(&run).map(|r| r.standing))
                    .await
                    .ok()
                    .and_then(Result::ok);
            let waiting = matches!(standing, Some(Standing::Queued | Standing::Running))
                || standing
                    .as_ref()
                    .is_some_and(|s| s.as_str() == "awaiting_approval");
            if !waiting {
                // A run records its end just before it announces it: what the store has
                // after a moment is all there is.
                tokio::time::sleep(Duration::from_millis(200)).await;
                for (seq, kind, body) in stored_after(&state, &id, last).await {
                    if tx.send(Ok(send(seq, &kind, &body))).await.is_err() {
                        break;
                    }
                }
                break;
            }
        }
        // Live: each event in order; a gap, a stream that fell behind, or a second of quiet
        // goes back to the store.
        loop {
            tokio::select! {
                got = live.recv() => match got {
                    Ok(p) if p.seq <= last => {}
                    Ok(p) if p.seq == last + 1 => {
                        if tx.send(Ok(send(p.seq, &p.kind, &p.body))).await.is_err() {
                            break 'stream;
                        }
                        last = p.seq;
                        if ends_stream(&p.kind, &p.body) {
                            break 'stream;
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        live = state.hub.subscribe(&id);
                        break;
                    }
                },
                () = tokio::time::sleep(POLL) => break,
                () = tx.closed() => break 'stream,
            }
        }
    }
    drop(live);
    state.hub.release(&id);
}
