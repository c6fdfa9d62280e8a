//! Every model and tool call of a stored run, recorded: the request (and its SHA-256, by which a
//! resumed run finds it again), the response or the error, the tokens and the time it took; and
//! answered from a recording ([`Cassette`]) when the run has one.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};
use troupe_llm::{ChatRequest, ChatResponse, LlmError, Retry};
use troupe_store::RunStore;

use crate::call_writer::{CallWriter, PendingCall, RequestBody, Response};
use crate::cassette::{CallKind, Cassette, Mode, model_key};
use crate::events::{EventKind, Events};
use crate::ledger::Charge;
use crate::tool::ToolError;

/// The run a call belongs to, and where it is recorded.
#[derive(Clone)]
pub struct Recorder {
    pub store: Arc<dyn RunStore>,
    pub run: String,
    pub events: Events,
    /// Where calls go: written by the run's call writer thread.
    pub calls: CallWriter,
    /// Whether a failed write was already reported (once per run, not once per call).
    warned: Arc<AtomicBool>,
}

impl Recorder {
    pub fn new(store: Arc<dyn RunStore>, run: String, events: Events, calls: CallWriter) -> Self {
        Self {
            store,
            run,
            events,
            calls,
            warned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Waits until every call handed over is written; a failed write is reported (once).
    pub async fn flush(&self) {
        if let Some(e) = self.calls.flush().await {
            self.failed("every call", &e);
        }
    }

    /// Reports a failed write once: the run goes on (its output directory is still written),
    /// but the store will not have all of it.
    pub fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            self.events.emit(EventKind::Warning {
                task: None,
                message: format!(
                    "the run store `{}` could not record {what}: {e}; the output directory is complete, the store is not",
                    self.store.location()
                ),
            });
        }
    }
}

/// The SHA-256 of a request as recorded, hex.
pub fn request_hash(request_json: &str) -> String {
    let digest = Sha256::digest(request_json.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The run's calls: recorded in the store as they are made, and answered from a recording
/// when there is one. Every model and tool call of an agent goes through here.
#[derive(Clone, Default)]
pub struct CallLog {
    pub recorder: Option<Recorder>,
    pub cassette: Option<Arc<Cassette>>,
}

/// A call's result, and the recorded call that answered it when one did.
pub struct Answered<T> {
    pub result: T,
    pub replayed: Option<u64>,
}

impl CallLog {
    /// Whom a replayed call is charged to: a resumed run paid for its own record before.
    pub fn charge(&self, replayed: Option<u64>) -> Charge {
        match (&self.cassette, replayed) {
            (Some(c), Some(_)) if c.mode() == Mode::Resume => Charge::Prepaid,
            _ => Charge::Paid,
        }
    }

    fn replayed_event(&self, kind: CallKind, task: &str, agent: &str, seq: u64) {
        let (Some(c), Some(r)) = (&self.cassette, &self.recorder) else {
            return;
        };
        r.events.emit(EventKind::CallReplayed {
            kind: kind.as_str().into(),
            task: task.into(),
            agent: agent.into(),
            from_run: c.run().into(),
            call: seq,
        });
    }

    /// A model call: from the recording when it has this request, else `live` (or, with
    /// [`Mode::Only`], an error that shows the closest recorded request).
    pub async fn model(
        &self,
        task: &str,
        agent: &str,
        request: &ChatRequest,
        live: impl Future<Output = (Result<ChatResponse, LlmError>, Vec<Retry>)>,
    ) -> Answered<(Result<ChatResponse, LlmError>, Vec<Retry>)> {
        if self.recorder.is_none() && self.cassette.is_none() {
            return Answered {
                result: live.await,
                replayed: None,
            };
        }
        // Serialised here only to look the request up; otherwise the writer thread does it.
        let mut request_json = None;
        if let Some(c) = &self.cassette {
            let json = serde_json::to_string(request).unwrap_or_default();
            let cap = request.max_tokens;
            if let Some(hit) = c.take(CallKind::Model, &model_key(request), |h| h.answers_cap(cap))
                && let Ok(Ok(resp)) = hit
                    .response
                    .as_deref()
                    .map(serde_json::from_str::<ChatResponse>)
            {
                self.replayed_event(CallKind::Model, task, agent, hit.seq);
                // A run answered from another run's recording keeps its own record of what it
                // was told, so that `show`, `export` and its totals have it.
                if c.mode() == Mode::Only
                    && let Some(rec) = &self.recorder
                {
                    rec.calls.send(PendingCall {
                        kind: CallKind::Model.as_str(),
                        task: task.into(),
                        agent: agent.into(),
                        request: RequestBody::Json(json),
                        response: Ok(Response::Chat(resp.clone())),
                        duration_ms: 0,
                    });
                }
                return Answered {
                    result: (Ok(resp), Vec::new()),
                    replayed: Some(hit.seq),
                };
            }
            if c.mode() == Mode::Only {
                let why = c.explain_miss(agent, &json);
                return Answered {
                    result: (
                        Err(LlmError::Config {
                            message: format!(
                                "this request is not in the recording of run {}: {why}",
                                c.run()
                            ),
                            hint: "`--replay-calls` answers only requests recorded exactly; run without it to call the model, or replay a recording of this crew as it is now".into(),
                        }),
                        Vec::new(),
                    ),
                    replayed: None,
                };
            }
            request_json = Some(json);
        }
        let started = Instant::now();
        let (result, retries) = live.await;
        if let Some(rec) = &self.recorder {
            rec.calls.send(PendingCall {
                kind: CallKind::Model.as_str(),
                task: task.into(),
                agent: agent.into(),
                request: match request_json {
                    Some(j) => RequestBody::Json(j),
                    None => RequestBody::Chat(request.clone()),
                },
                response: match &result {
                    Ok(r) => Ok(Response::Chat(r.clone())),
                    Err(e) => Err(e.to_string()),
                },
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
        Answered {
            result: (result, retries),
            replayed: None,
        }
    }

    /// A tool call: from the recording when it has this call (a tool's error included: it is
    /// what the model saw), else `live`. Tools are never refused for want of a recording.
    pub async fn tool(
        &self,
        task: &str,
        agent: &str,
        name: &str,
        raw_args: &str,
        live: impl Future<Output = Result<String, ToolError>>,
    ) -> Answered<Result<String, ToolError>> {
        if self.recorder.is_none() && self.cassette.is_none() {
            return Answered {
                result: live.await,
                replayed: None,
            };
        }
        let request_json = serde_json::json!({"tool": name, "arguments": raw_args}).to_string();
        let sha = request_hash(&request_json);
        if let Some(hit) = self
            .cassette
            .as_ref()
            .and_then(|c| c.take(CallKind::Tool, &sha, |_| true))
        {
            self.replayed_event(CallKind::Tool, task, agent, hit.seq);
            return Answered {
                result: hit.response.map_err(ToolError),
                replayed: Some(hit.seq),
            };
        }
        let started = Instant::now();
        let result = live.await;
        if let Some(rec) = &self.recorder {
            rec.calls.send(PendingCall {
                kind: CallKind::Tool.as_str(),
                task: task.into(),
                agent: agent.into(),
                request: RequestBody::Json(request_json),
                response: match &result {
                    Ok(s) => Ok(Response::Text(s.clone())),
                    Err(e) => Err(e.0.clone()),
                },
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
        Answered {
            result,
            replayed: None,
        }
    }
}
