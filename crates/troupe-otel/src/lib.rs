//! # troupe-otel
//!
//! OpenTelemetry traces of Troupe runs, exported over OTLP/HTTP (protobuf). The runtime does not
//! know about tracing: it emits [`Event`]s, in order, and this crate turns one run's events into
//! spans after the fact, with the events' own timestamps. One [`Tracing`] per process holds the
//! exporter; each run gets its own [`RunTrace`] (or the [`EventSink`] from
//! [`Tracing::run_sink`]), so a server can trace many runs at once.
//!
//! ## Events → spans
//!
//! | span (name) | opens at | closes at | parent |
//! |---|---|---|---|
//! | `troupe.run <crew>` | `run_started` | `run_finished` | none: a trace per run |
//! | `troupe.task <task>` | the first event of the task (`task_started`, or a hierarchical manager's first call) | `task_finished` | the run |
//! | `troupe.review <task>` | `review_started` | `review_verdict` of the same round | the task |
//! | `chat <model>` | `llm_request` | the `llm_response` with the same task, agent and iteration | the task, or the open review round when the agent is its reviewer |
//! | `execute_tool <tool>` | `tool_call` − `duration_ms` | `tool_call` | as a model call |
//!
//! Model calls carry the GenAI semantic-convention attributes (`gen_ai.operation.name` = `chat`,
//! `gen_ai.request.model`, `gen_ai.agent.name`, `gen_ai.usage.input_tokens`,
//! `gen_ai.usage.output_tokens`, `gen_ai.response.finish_reasons`); tool calls carry
//! `gen_ai.operation.name` = `execute_tool` and `gen_ai.tool.name`. Troupe's own attributes are
//! under `troupe.` (crew, run id, process, task status, tokens, cost, review verdict).
//!
//! Every other event (`llm_retry`, `limit_hit`, `warning`, `context_cut`, `citations_checked`,
//! `task_delegated`, `call_replayed`, …) becomes a span event named after its type, with its
//! fields as `troupe.<field>` attributes, on the innermost open span of its task: the agent's
//! open model call, else the agent's open review round, else the task; events without a task
//! go on the run span. An event kind added to the runtime later lands there too, without a
//! change here.
//!
//! A span still open when its task or run finishes (a model call that failed has no
//! `llm_response`), or when the sink is dropped before `run_finished`, is ended at the last
//! timestamp seen, with `troupe.unfinished = true` and status Error. Failed tasks (any status
//! other than completed or skipped) and runs that did not complete (nor wait for an approval)
//! have status Error.
//!
//! Timestamps are the events' wall-clock `ts_ms` (millisecond precision): the spans say when
//! things happened in the run, not when the sink saw them.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanBuilder, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Array, Context, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use troupe_runtime::{Event, EventKind, EventSink};

/// Spans buffered before export. The SDK's default (2048) drops spans when a server runs many
/// crews at once and the collector is slow; a span is a few hundred bytes.
const QUEUE: usize = 16_384;

/// A run span gets every event without a task (plugin calls among them): more than the SDK's
/// default of 128 events per span in a long run.
const EVENTS_PER_SPAN: u32 = 4096;

/// Attribute strings (tool arguments and results, feedback, plugin output) are cut to this many
/// characters: a trace says what happened, `events.jsonl` and the run store keep everything.
const CLIP: usize = 1024;

/// Why tracing could not start or could not deliver its spans.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error(
        "the OTLP endpoint `{0}` is not an http:// or https:// URL (e.g. http://127.0.0.1:4318)"
    )]
    Endpoint(String),
    #[error("cannot set up the OTLP exporter for `{endpoint}`: {message}")]
    Exporter { endpoint: String, message: String },
    #[error("could not export the traces to `{endpoint}`: {message}")]
    Export { endpoint: String, message: String },
}

/// The OTLP exporter and tracer provider of a process: one per process, shared by every run it
/// traces. Spans are batched and sent from the SDK's own thread, so neither a run nor the event
/// thread waits for the collector.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    endpoint: String,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Tracing {
    /// Starts exporting to `endpoint`, an OTLP/HTTP collector such as `http://127.0.0.1:4318`:
    /// `/v1/traces` is appended when the URL has no path; a URL with a path is used as it is.
    /// `service_name` is the `service.name` of the resource (e.g. `troupe`). The standard
    /// `OTEL_*` variables (headers, timeout, batch sizes, sampler, resource attributes) apply;
    /// the endpoint given here wins over `OTEL_EXPORTER_OTLP_*ENDPOINT`.
    ///
    /// Nothing is sent yet, so an unreachable collector is not an error here: it shows as an
    /// error of [`Tracing::flush`] or [`Tracing::shutdown`].
    pub fn start(endpoint: &str, service_name: &str) -> Result<Self, OtelError> {
        let url = traces_url(endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .build()
            .map_err(|e| OtelError::Exporter {
                endpoint: url.clone(),
                message: e.to_string(),
            })?;
        let mut batch = BatchConfigBuilder::default();
        // A value set in code overrides the environment: only when it says nothing.
        if std::env::var_os("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
            batch = batch.with_max_queue_size(QUEUE);
        }
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch.build())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_max_events_per_span(EVENTS_PER_SPAN)
            .with_resource(
                Resource::builder()
                    .with_service_name(service_name.to_string())
                    .build(),
            )
            .build();
        let tracer = provider.tracer_with_scope(
            InstrumentationScope::builder("troupe")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        Ok(Self {
            provider,
            tracer,
            endpoint: url,
        })
    }

    /// Where the spans go: the full URL, `/v1/traces` included.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The spans of one run: feed it the run's events in order. `run_id` is the run store's id
    /// (`troupe.run.id`), when the run is stored; the events do not carry it.
    pub fn run(&self, run_id: Option<String>) -> RunTrace {
        RunTrace {
            tracer: self.tracer.clone(),
            run_id,
            run: None,
            tasks: HashMap::new(),
            early: Vec::new(),
            last: None,
        }
    }

    /// [`Tracing::run`] as a `RunOptions.on_event` sink. When the sink is dropped (the run's
    /// event thread ends), whatever is still open is ended.
    pub fn run_sink(&self, run_id: Option<String>) -> EventSink {
        let mut trace = self.run(run_id);
        Box::new(move |e| trace.on_event(e))
    }

    /// Sends every span ended so far and waits for the collector's answer (blocking: from async
    /// code, call it in `spawn_blocking`).
    pub fn flush(&self) -> Result<(), OtelError> {
        self.provider
            .force_flush()
            .map_err(|e| self.export_error(e))
    }

    /// Sends what is left and stops the exporter (blocking, as [`Tracing::flush`]). Spans of
    /// runs still going are no longer recorded. A second call does nothing.
    pub fn shutdown(&self) -> Result<(), OtelError> {
        match self.provider.shutdown() {
            Ok(()) | Err(OTelSdkError::AlreadyShutdown) => Ok(()),
            Err(e) => Err(self.export_error(e)),
        }
    }

    fn export_error(&self, e: OTelSdkError) -> OtelError {
        OtelError::Export {
            endpoint: self.endpoint.clone(),
            message: e.to_string(),
        }
    }
}

/// The OTLP/HTTP traces URL of `endpoint`: the signal path is added to a bare collector address,
/// as the OpenTelemetry spec does for `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traces_url(endpoint: &str) -> Result<String, OtelError> {
    let e = endpoint.trim();
    let rest = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
        .filter(|r| !r.is_empty() && !r.starts_with('/'))
        .ok_or_else(|| OtelError::Endpoint(endpoint.to_string()))?;
    Ok(match rest.find('/') {
        None => format!("{e}/v1/traces"),
        Some(i) if &rest[i..] == "/" => format!("{e}v1/traces"),
        Some(_) => e.to_string(),
    })
}

/// The open spans of one run, made from its events. Not shared: a run's events arrive in order
/// on one thread.
pub struct RunTrace {
    tracer: SdkTracer,
    run_id: Option<String>,
    run: Option<Context>,
    tasks: HashMap<String, TaskSpans>,
    /// Span events that came before `run_started`, given to the run span when it opens.
    early: Vec<(String, SystemTime, Vec<KeyValue>)>,
    /// The latest timestamp seen: where spans left open end.
    last: Option<SystemTime>,
}

/// A task's open span and its open children.
struct TaskSpans {
    cx: Context,
    /// The agent working on it now (the latest `task_started`).
    agent: Option<String>,
    reviews: Vec<Review>,
    calls: Vec<Call>,
}

struct Review {
    round: u32,
    reviewer: String,
    cx: Context,
}

struct Call {
    agent: String,
    iteration: u32,
    cx: Context,
}

impl RunTrace {
    /// The run's trace id (32 hex digits), once `run_started` has been seen: for a front end
    /// to link to the trace.
    pub fn trace_id(&self) -> Option<String> {
        self.run
            .as_ref()
            .map(|cx| cx.span().span_context().trace_id().to_string())
    }

    /// Takes the next event of the run.
    pub fn on_event(&mut self, e: &Event) {
        let at = UNIX_EPOCH + Duration::from_millis(e.ts_ms);
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        match &e.kind {
            EventKind::RunStarted {
                crew,
                process,
                tasks,
                agents,
                ..
            } => self.run_started(at, crew, process, *tasks, *agents),
            EventKind::TaskStarted { task, agent } => {
                let existed = self.tasks.contains_key(task);
                if let Some(t) = self.open_task(task, at) {
                    // Set when the span ends: the SDK keeps every value set, not the last.
                    t.agent = Some(agent.clone());
                    if existed {
                        // A hierarchical task handed to another agent: the span stays, the
                        // restart is an event on it.
                        t.cx.span().add_event_with_timestamp(
                            "task_started",
                            at,
                            vec![KeyValue::new("troupe.agent", agent.clone())],
                        );
                    }
                }
            }
            EventKind::LlmRequest {
                task,
                agent,
                model,
                iteration,
                messages,
                tools,
            } => {
                let tracer = &self.tracer;
                let Some(t) = open_task(&mut self.tasks, self.run.as_ref(), tracer, task, at)
                else {
                    return;
                };
                // A call of the same agent and iteration still open never got its answer.
                if let Some(i) = t
                    .calls
                    .iter()
                    .position(|c| c.agent == *agent && c.iteration == *iteration)
                {
                    unfinished(&t.calls.remove(i).cx, at);
                }
                let parent = t
                    .reviews
                    .iter()
                    .rev()
                    .find(|r| r.reviewer == *agent)
                    .map_or(&t.cx, |r| &r.cx);
                let cx = start(
                    tracer,
                    parent,
                    tracer
                        .span_builder(format!("chat {model}"))
                        .with_kind(SpanKind::Client)
                        .with_start_time(at)
                        .with_attributes(vec![
                            KeyValue::new("gen_ai.operation.name", "chat"),
                            KeyValue::new("gen_ai.request.model", model.clone()),
                            KeyValue::new("gen_ai.agent.name", agent.clone()),
                            KeyValue::new("troupe.task.id", task.clone()),
                            KeyValue::new("troupe.llm.iteration", i64::from(*iteration)),
                            KeyValue::new("troupe.llm.messages", int(*messages)),
                            KeyValue::new("troupe.llm.tools", int(*tools)),
                        ]),
                );
                t.calls.push(Call {
                    agent: agent.clone(),
                    iteration: *iteration,
                    cx,
                });
            }
            EventKind::LlmResponse {
                task,
                agent,
                iteration,
                input_tokens,
                output_tokens,
                cached_input_tokens,
                latency_ms,
                tool_calls,
                finish_reason,
            } => {
                let mut attrs = vec![
                    KeyValue::new("gen_ai.usage.input_tokens", int(*input_tokens)),
                    KeyValue::new("gen_ai.usage.output_tokens", int(*output_tokens)),
                    KeyValue::new(
                        "gen_ai.usage.cache_read.input_tokens",
                        int(*cached_input_tokens),
                    ),
                    KeyValue::new("troupe.llm.latency_ms", int(*latency_ms)),
                    KeyValue::new("troupe.llm.tool_calls", int(*tool_calls)),
                ];
                if let Some(f) = finish_reason {
                    attrs.push(KeyValue::new(
                        "gen_ai.response.finish_reasons",
                        Value::Array(Array::String(vec![StringValue::from(f.clone())])),
                    ));
                }
                let tracer = &self.tracer;
                let Some(t) = open_task(&mut self.tasks, self.run.as_ref(), tracer, task, at)
                else {
                    return;
                };
                let call = t
                    .calls
                    .iter()
                    .rposition(|c| c.agent == *agent && c.iteration == *iteration)
                    .map(|i| t.calls.remove(i));
                let cx = match call {
                    Some(c) => c.cx,
                    // A response whose request was not seen: the span is made from its latency.
                    None => start(
                        tracer,
                        &t.cx,
                        tracer
                            .span_builder("chat")
                            .with_kind(SpanKind::Client)
                            .with_start_time(earlier(at, *latency_ms))
                            .with_attributes(vec![
                                KeyValue::new("gen_ai.operation.name", "chat"),
                                KeyValue::new("gen_ai.agent.name", agent.clone()),
                                KeyValue::new("troupe.task.id", task.clone()),
                                KeyValue::new("troupe.llm.iteration", i64::from(*iteration)),
                            ]),
                    ),
                };
                cx.span().set_attributes(attrs);
                cx.span().end_with_timestamp(at);
            }
            EventKind::ToolCall {
                task,
                agent,
                tool,
                arguments,
                ok,
                duration_ms,
                result,
            } => {
                let tracer = &self.tracer;
                let Some(t) = open_task(&mut self.tasks, self.run.as_ref(), tracer, task, at)
                else {
                    return;
                };
                let parent = t
                    .reviews
                    .iter()
                    .rev()
                    .find(|r| r.reviewer == *agent)
                    .map_or(&t.cx, |r| &r.cx);
                let cx = start(
                    tracer,
                    parent,
                    tracer
                        .span_builder(format!("execute_tool {tool}"))
                        .with_start_time(earlier(at, *duration_ms))
                        .with_attributes(vec![
                            KeyValue::new("gen_ai.operation.name", "execute_tool"),
                            KeyValue::new("gen_ai.tool.name", tool.clone()),
                            KeyValue::new("gen_ai.tool.call.arguments", clip(arguments)),
                            KeyValue::new("gen_ai.agent.name", agent.clone()),
                            KeyValue::new("troupe.task.id", task.clone()),
                            KeyValue::new("troupe.tool.ok", *ok),
                            KeyValue::new("troupe.tool.duration_ms", int(*duration_ms)),
                            KeyValue::new("troupe.tool.result", clip(result)),
                        ]),
                );
                if !ok {
                    cx.span().set_status(Status::error(clip(result)));
                }
                cx.span().end_with_timestamp(at);
            }
            EventKind::ReviewStarted {
                task,
                reviewer,
                round,
            } => {
                let tracer = &self.tracer;
                let Some(t) = open_task(&mut self.tasks, self.run.as_ref(), tracer, task, at)
                else {
                    return;
                };
                let cx = start(
                    tracer,
                    &t.cx,
                    review_builder(tracer, task, reviewer, *round).with_start_time(at),
                );
                t.reviews.push(Review {
                    round: *round,
                    reviewer: reviewer.clone(),
                    cx,
                });
            }
            EventKind::ReviewVerdict {
                task,
                reviewer,
                round,
                approved,
                feedback,
            } => {
                let tracer = &self.tracer;
                let Some(t) = open_task(&mut self.tasks, self.run.as_ref(), tracer, task, at)
                else {
                    return;
                };
                let review = t
                    .reviews
                    .iter()
                    .rposition(|r| r.round == *round)
                    .map(|i| t.reviews.remove(i));
                let cx = match review {
                    Some(r) => r.cx,
                    None => start(
                        tracer,
                        &t.cx,
                        review_builder(tracer, task, reviewer, *round).with_start_time(at),
                    ),
                };
                // Who decided: the reviewer, or the deterministic checks that failed first.
                cx.span().set_attributes(vec![
                    KeyValue::new("troupe.review.verdict_by", reviewer.clone()),
                    KeyValue::new("troupe.review.approved", *approved),
                    KeyValue::new("troupe.review.feedback", clip(feedback)),
                ]);
                cx.span().end_with_timestamp(at);
            }
            EventKind::TaskFinished {
                task,
                agent,
                status,
                duration_ms,
                input_tokens,
                output_tokens,
                output_file,
                error,
            } => {
                let t = match self.tasks.remove(task) {
                    Some(t) => t,
                    // Never started (skipped): a span of its duration, so that it shows.
                    None => match &self.run {
                        Some(run) => TaskSpans {
                            cx: start(
                                &self.tracer,
                                run,
                                task_builder(&self.tracer, task)
                                    .with_start_time(earlier(at, *duration_ms)),
                            ),
                            agent: None,
                            reviews: Vec::new(),
                            calls: Vec::new(),
                        },
                        None => return,
                    },
                };
                close_children(&t, at);
                let span = t.cx.span();
                let status = status.as_str();
                let mut attrs = vec![
                    KeyValue::new("troupe.task.status", status.to_string()),
                    KeyValue::new("troupe.task.duration_ms", int(*duration_ms)),
                    KeyValue::new("troupe.usage.input_tokens", int(*input_tokens)),
                    KeyValue::new("troupe.usage.output_tokens", int(*output_tokens)),
                ];
                if let Some(a) = Some(agent).filter(|a| !a.is_empty()).or(t.agent.as_ref()) {
                    attrs.push(KeyValue::new("troupe.task.agent", a.clone()));
                }
                if let Some(f) = output_file {
                    attrs.push(KeyValue::new("troupe.task.output_file", f.clone()));
                }
                if let Some(err) = error {
                    attrs.push(KeyValue::new("troupe.task.error", clip(err)));
                }
                span.set_attributes(attrs);
                if !matches!(status, "completed" | "skipped" | "pending" | "running") {
                    span.set_status(Status::error(match error {
                        Some(err) => clip(err),
                        None => format!("the task ended {status}"),
                    }));
                }
                span.end_with_timestamp(at);
            }
            EventKind::RunFinished {
                status,
                duration_ms,
                input_tokens,
                output_tokens,
                cost_usd,
            } => {
                self.close_tasks(at);
                let Some(run) = self.run.take() else {
                    return;
                };
                let span = run.span();
                let mut attrs = vec![
                    KeyValue::new("troupe.run.status", status.clone()),
                    KeyValue::new("troupe.run.duration_ms", int(*duration_ms)),
                    KeyValue::new("troupe.usage.input_tokens", int(*input_tokens)),
                    KeyValue::new("troupe.usage.output_tokens", int(*output_tokens)),
                ];
                if let Some(c) = cost_usd {
                    attrs.push(KeyValue::new("troupe.cost_usd", *c));
                }
                span.set_attributes(attrs);
                // A run paused for a person's approval goes on later (a resume): not a failure.
                if !matches!(status.as_str(), "completed" | "awaiting_approval") {
                    span.set_status(Status::error(format!("the run ended {status}")));
                }
                span.end_with_timestamp(at);
            }
            _ => self.span_event(&e.kind, at),
        }
    }

    fn run_started(
        &mut self,
        at: SystemTime,
        crew: &str,
        process: &str,
        tasks: usize,
        agents: usize,
    ) {
        // A second start without a finish: the first run's spans end where they are.
        self.close_all(at);
        let mut attrs = vec![
            KeyValue::new("troupe.crew", crew.to_string()),
            KeyValue::new("troupe.process", process.to_string()),
            KeyValue::new("troupe.run.tasks", int(tasks)),
            KeyValue::new("troupe.run.agents", int(agents)),
        ];
        if let Some(id) = &self.run_id {
            attrs.push(KeyValue::new("troupe.run.id", id.clone()));
        }
        let cx = start(
            &self.tracer,
            &Context::new(),
            self.tracer
                .span_builder(format!("troupe.run {crew}"))
                .with_start_time(at)
                .with_attributes(attrs),
        );
        for (name, ts, attrs) in self.early.drain(..) {
            cx.span().add_event_with_timestamp(name, ts, attrs);
        }
        self.run = Some(cx);
    }

    fn open_task(&mut self, task: &str, at: SystemTime) -> Option<&mut TaskSpans> {
        open_task(&mut self.tasks, self.run.as_ref(), &self.tracer, task, at)
    }

    /// Any other event: a span event on the innermost open span it belongs to.
    fn span_event(&mut self, kind: &EventKind, at: SystemTime) {
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(kind) else {
            return;
        };
        let name = fields
            .get("type")
            .and_then(|v| v.as_str())
            .unwrap_or("event")
            .to_string();
        let task = fields.get("task").and_then(|v| v.as_str());
        let agent = fields.get("agent").and_then(|v| v.as_str());
        let attrs: Vec<KeyValue> = fields
            .iter()
            .filter(|(k, _)| k.as_str() != "type")
            .filter_map(|(k, v)| Some(KeyValue::new(format!("troupe.{k}"), attribute(v)?)))
            .collect();
        let target = task
            .and_then(|t| self.tasks.get(t))
            .map(|t| innermost(t, agent))
            .or(self.run.as_ref());
        match target {
            Some(cx) => cx.span().add_event_with_timestamp(name, at, attrs),
            None => self.early.push((name, at, attrs)),
        }
    }

    fn close_tasks(&mut self, at: SystemTime) {
        for (_, t) in self.tasks.drain() {
            close_children(&t, at);
            if let Some(a) = t.agent {
                t.cx.span()
                    .set_attribute(KeyValue::new("troupe.task.agent", a));
            }
            unfinished(&t.cx, at);
        }
    }

    /// Ends everything still open, as not finished.
    fn close_all(&mut self, at: SystemTime) {
        self.close_tasks(at);
        if let Some(run) = self.run.take() {
            unfinished(&run, at);
        }
    }
}

impl Drop for RunTrace {
    /// The run's events stopped before `run_finished` (a crash, a cancelled server run): its
    /// spans end at the last moment seen, so that they are exported at all.
    fn drop(&mut self) {
        if let Some(at) = self.last {
            self.close_all(at);
        }
    }
}

/// The span of `task`, opened now when it is not open yet; `None` outside a run.
fn open_task<'a>(
    tasks: &'a mut HashMap<String, TaskSpans>,
    run: Option<&Context>,
    tracer: &SdkTracer,
    task: &str,
    at: SystemTime,
) -> Option<&'a mut TaskSpans> {
    let run = run?;
    Some(tasks.entry(task.to_string()).or_insert_with(|| TaskSpans {
        cx: start(tracer, run, task_builder(tracer, task).with_start_time(at)),
        agent: None,
        reviews: Vec::new(),
        calls: Vec::new(),
    }))
}

/// The open span of `t` an event of `agent` belongs to: the agent's model call, its review
/// round, the task.
fn innermost<'a>(t: &'a TaskSpans, agent: Option<&str>) -> &'a Context {
    let call = t
        .calls
        .iter()
        .rev()
        .find(|c| agent.is_none_or(|a| c.agent == a));
    let review = t
        .reviews
        .iter()
        .rev()
        .find(|r| agent.is_none_or(|a| r.reviewer == a));
    call.map(|c| &c.cx)
        .or(review.map(|r| &r.cx))
        .unwrap_or(&t.cx)
}

fn task_builder(tracer: &SdkTracer, task: &str) -> SpanBuilder {
    tracer
        .span_builder(format!("troupe.task {task}"))
        .with_attributes(vec![KeyValue::new("troupe.task.id", task.to_string())])
}

fn review_builder(tracer: &SdkTracer, task: &str, reviewer: &str, round: u32) -> SpanBuilder {
    tracer
        .span_builder(format!("troupe.review {task}"))
        .with_attributes(vec![
            KeyValue::new("troupe.task.id", task.to_string()),
            KeyValue::new("troupe.review.reviewer", reviewer.to_string()),
            KeyValue::new("troupe.review.round", i64::from(round)),
        ])
}

/// Starts a span under `parent` and holds it in a context, for its children and its end.
fn start(tracer: &SdkTracer, parent: &Context, builder: SpanBuilder) -> Context {
    Context::new().with_span(tracer.build_with_context(builder, parent))
}

fn close_children(t: &TaskSpans, at: SystemTime) {
    for c in &t.calls {
        unfinished(&c.cx, at);
    }
    for r in &t.reviews {
        unfinished(&r.cx, at);
    }
}

/// Ends a span whose closing event never came.
fn unfinished(cx: &Context, at: SystemTime) {
    let span = cx.span();
    span.set_attribute(KeyValue::new("troupe.unfinished", true));
    span.set_status(Status::error("ended before its closing event"));
    span.end_with_timestamp(at);
}

fn earlier(at: SystemTime, ms: u64) -> SystemTime {
    at.checked_sub(Duration::from_millis(ms)).unwrap_or(at)
}

fn int<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(CLIP) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// An event field as an attribute value: scalars as they are, lists of strings as string
/// arrays, anything else as JSON text; nulls and empty lists are left out.
fn attribute(v: &serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => return None,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::I64(i),
            None => Value::F64(n.as_f64()?),
        },
        J::String(s) => Value::String(clip(s).into()),
        J::Array(a) if a.is_empty() => return None,
        J::Array(a) if a.iter().all(serde_json::Value::is_string) => Value::Array(Array::String(
            a.iter()
                .filter_map(|s| s.as_str())
                .map(|s| StringValue::from(clip(s)))
                .collect(),
        )),
        other => Value::String(clip(&other.to_string()).into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_collector_address_gets_the_traces_path() {
        let url = |e: &str| traces_url(e).ok();
        assert_eq!(
            url("http://127.0.0.1:4318").as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            url("http://127.0.0.1:4318/").as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            url(" https://otel.example/custom/path ").as_deref(),
            Some("https://otel.example/custom/path")
        );
        assert_eq!(url("127.0.0.1:4318"), None);
        assert_eq!(url("http://"), None);
        assert_eq!(url("grpc://x:4317"), None);
    }

    #[test]
    fn long_strings_are_clipped_on_a_character_boundary() {
        let s = "é".repeat(CLIP + 5);
        let c = clip(&s);
        assert_eq!(c.chars().count(), CLIP + 1);
        assert!(c.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }

    #[test]
    fn event_fields_become_typed_attributes() {
        use serde_json::json;
        assert_eq!(attribute(&json!(null)), None);
        assert_eq!(attribute(&json!([])), None);
        assert_eq!(attribute(&json!(3)), Some(Value::I64(3)));
        assert_eq!(attribute(&json!(true)), Some(Value::Bool(true)));
        assert_eq!(
            attribute(&json!(["a", "b"])),
            Some(Value::Array(Array::String(vec!["a".into(), "b".into()])))
        );
        assert_eq!(
            attribute(&json!({"k": 1})),
            Some(Value::String("{\"k\":1}".into()))
        );
    }
}
