//! Answers from a recording: the model and tool calls a stored run made, found again by the
//! SHA-256 of the request. A resumed run catches up this way (its own record, then live); a run
//! with `--replay-calls` answers every model call this way and fails on the first that is not
//! recorded, saying how it differs from the closest recorded request.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use troupe_llm::Usage;
use troupe_store::{CallRow, RunStore, StoreError};

use crate::diff;

/// What a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    Model,
    Tool,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Tool => "tool",
        }
    }
}

/// How a recording is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The run's own record (a resume): a recorded call is answered from it and was paid
    /// before; any other call is made live.
    Resume,
    /// Another run's record (`--replay-calls`): every model call must be recorded there.
    Only,
}

/// One recorded answer.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The call's number in the recorded run.
    pub seq: u64,
    /// The response as recorded (JSON of a model response; a tool's result).
    pub response: Result<String, String>,
    pub usage: Usage,
    /// For a model call: the answer cap the request had, and whether the answer reached it.
    pub cap: Option<u32>,
    pub cut: bool,
}

impl Hit {
    /// Whether this recorded answer is the answer to a request that differs from the recorded
    /// one at most in its answer cap (`max_tokens`, which a run lowers as its budget runs out):
    /// yes when the caps are equal, or when the recorded answer was not cut off and fits the
    /// new cap. A cap changes an answer only by cutting it.
    pub fn answers_cap(&self, cap: Option<u32>) -> bool {
        self.cap == cap
            || (!self.cut && cap.is_none_or(|c| self.usage.output_tokens <= u64::from(c)))
    }
}

/// The key a model request is recorded under in a [`Cassette`]: the SHA-256 of the request
/// without its answer cap (see [`Hit::answers_cap`]).
pub fn model_key(request: &troupe_llm::ChatRequest) -> String {
    let uncapped = troupe_llm::ChatRequest {
        max_tokens: None,
        ..request.clone()
    };
    crate::recorded::request_hash(&serde_json::to_string(&uncapped).unwrap_or_default())
}

/// The recorded calls of one run, each answered at most once.
pub struct Cassette {
    run: String,
    mode: Mode,
    answers: Mutex<HashMap<(CallKind, String), VecDeque<Hit>>>,
    /// Every recorded model request: `(seq, agent, request JSON)`, to explain a miss.
    requests: Vec<(u64, Option<String>, String)>,
    model_calls: usize,
    /// Model calls answered so far.
    used: AtomicUsize,
}

impl Cassette {
    /// The calls `run` recorded. Model calls that failed are not answers (they are made again);
    /// a tool's error is (it is what the model saw).
    pub fn load(store: &dyn RunStore, run: &str, mode: Mode) -> Result<Self, StoreError> {
        Ok(Self::from_calls(run, mode, store.calls(run)?))
    }

    pub fn from_calls(run: &str, mode: Mode, calls: Vec<CallRow>) -> Self {
        let mut answers: HashMap<(CallKind, String), VecDeque<Hit>> = HashMap::new();
        let mut requests = Vec::new();
        let mut model_calls = 0;
        for c in calls {
            let kind = match c.kind.as_str() {
                "model" => CallKind::Model,
                "tool" => CallKind::Tool,
                _ => continue,
            };
            let response = match (kind, c.response, c.error) {
                (_, Some(r), _) => Ok(r),
                (CallKind::Tool, None, Some(e)) => Err(e),
                _ => continue,
            };
            let (key, cap, cut) = match kind {
                CallKind::Tool => (c.request_sha256, None, false),
                CallKind::Model => {
                    let Ok(request) = serde_json::from_str::<troupe_llm::ChatRequest>(&c.request)
                    else {
                        continue;
                    };
                    let cut = response
                        .as_deref()
                        .ok()
                        .and_then(|r| serde_json::from_str::<troupe_llm::ChatResponse>(r).ok())
                        .is_none_or(|r| r.finish_reason.as_deref() == Some("length"));
                    model_calls += 1;
                    let key = model_key(&request);
                    requests.push((c.seq, c.agent.clone(), c.request));
                    (key, request.max_tokens, cut)
                }
            };
            answers.entry((kind, key)).or_default().push_back(Hit {
                seq: c.seq,
                response,
                usage: Usage {
                    input_tokens: c.input_tokens.unwrap_or(0),
                    output_tokens: c.output_tokens.unwrap_or(0),
                    ..Default::default()
                },
                cap,
                cut,
            });
        }
        Self {
            run: run.to_string(),
            mode,
            answers: Mutex::new(answers),
            requests,
            model_calls,
            used: AtomicUsize::new(0),
        }
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// How many model calls can be answered.
    pub fn model_calls(&self) -> usize {
        self.model_calls
    }

    /// How many model calls were answered.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The first unused answer recorded under `key` that `fits` (for a model call: that
    /// answers the request's cap).
    pub fn take(&self, kind: CallKind, key: &str, fits: impl Fn(&Hit) -> bool) -> Option<Hit> {
        let mut g = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let hit = g.get_mut(&(kind, key.to_string())).and_then(|q| {
            let i = q.iter().position(&fits)?;
            q.remove(i)
        });
        if hit.is_some() && kind == CallKind::Model {
            self.used.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Why a model request is not in the recording: the closest recorded request (the same
    /// agent's first, then the one whose JSON agrees for longest) and where it differs.
    pub fn explain_miss(&self, agent: &str, request_json: &str) -> String {
        let closest = self.requests.iter().max_by_key(|(seq, a, r)| {
            (
                a.as_deref() == Some(agent),
                diff::common_prefix(r, request_json),
                std::cmp::Reverse(*seq),
            )
        });
        let Some((seq, a, recorded)) = closest else {
            return format!("run {} recorded no model calls", self.run);
        };
        let (Ok(was), Ok(now)) = (
            serde_json::from_str::<serde_json::Value>(recorded),
            serde_json::from_str::<serde_json::Value>(request_json),
        ) else {
            return format!("the closest recorded request is call #{seq}");
        };
        let by = a.as_deref().unwrap_or("?");
        match diff::first_difference(&was, &now) {
            Some(d) => {
                format!("closest recorded request: call #{seq} (agent `{by}`); differs at {d}")
            }
            // Equal requests: the recorded answers to it were all used already.
            None => format!(
                "the same request was recorded (call #{seq}, agent `{by}`) but this run asks it more often than run {} did",
                self.run
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use troupe_llm::{ChatRequest, ChatResponse, Message};

    fn request(prompt: &str, cap: Option<u32>) -> ChatRequest {
        ChatRequest {
            messages: vec![Message::user(prompt)],
            max_tokens: cap,
            ..Default::default()
        }
    }

    fn model_call(seq: u64, req: &ChatRequest, answer: Option<(&str, &str)>) -> CallRow {
        let request = serde_json::to_string(req).unwrap();
        CallRow {
            seq,
            kind: "model".into(),
            task: Some("t".into()),
            agent: Some("a".into()),
            request_sha256: crate::recorded::request_hash(&request),
            request,
            response: answer.map(|(text, finish)| {
                serde_json::to_string(&ChatResponse {
                    content: Some(text.into()),
                    finish_reason: Some(finish.into()),
                    ..Default::default()
                })
                .unwrap()
            }),
            error: answer.is_none().then(|| "boom".into()),
            input_tokens: Some(3),
            output_tokens: Some(40),
        }
    }

    fn tool_call(seq: u64, sha: &str, error: Option<&str>) -> CallRow {
        CallRow {
            seq,
            kind: "tool".into(),
            task: Some("t".into()),
            agent: Some("a".into()),
            request_sha256: sha.into(),
            request: "{}".into(),
            response: error.is_none().then(|| "result".into()),
            error: error.map(Into::into),
            input_tokens: None,
            output_tokens: None,
        }
    }

    fn text_of(hit: &Hit) -> String {
        let r: ChatResponse = serde_json::from_str(hit.response.as_deref().unwrap()).unwrap();
        r.content.unwrap()
    }

    #[test]
    fn each_recorded_answer_is_used_once_in_order_and_failed_model_calls_are_not_answers() {
        let same = request("Summarise", None);
        let c = Cassette::from_calls(
            "r",
            Mode::Resume,
            vec![
                model_call(1, &same, Some(("first", "stop"))),
                model_call(2, &same, Some(("second", "stop"))),
                model_call(3, &request("Failed", None), None),
                tool_call(4, "t", Some("boom")),
            ],
        );
        assert_eq!(c.model_calls(), 2);
        let key = model_key(&same);
        let first = c.take(CallKind::Model, &key, |_| true).unwrap();
        assert_eq!((first.seq, text_of(&first).as_str()), (1, "first"));
        assert_eq!(first.usage.total(), 43);
        assert_eq!(c.take(CallKind::Model, &key, |_| true).unwrap().seq, 2);
        assert!(c.take(CallKind::Model, &key, |_| true).is_none());
        assert!(
            c.take(
                CallKind::Model,
                &model_key(&request("Failed", None)),
                |_| true
            )
            .is_none()
        );
        assert_eq!(c.used(), 2);
        let tool = c.take(CallKind::Tool, "t", |_| true).unwrap();
        assert_eq!(tool.response, Err("boom".into()));
    }

    /// A lower answer cap (a budget running out) does not change an answer that was not cut
    /// off and fits; a cut answer matches only the same cap.
    #[test]
    fn the_answer_cap_matters_only_when_it_cut_the_answer() {
        let c = Cassette::from_calls(
            "r",
            Mode::Resume,
            vec![
                model_call(1, &request("whole", Some(300)), Some(("ok", "stop"))),
                model_call(2, &request("cut", Some(40)), Some(("cut", "length"))),
            ],
        );
        let whole = model_key(&request("whole", None));
        let fits = |cap| move |h: &Hit| h.answers_cap(cap);
        assert!(c.take(CallKind::Model, &whole, fits(Some(20))).is_none());
        assert_eq!(c.take(CallKind::Model, &whole, fits(None)).unwrap().seq, 1);
        let cut = model_key(&request("cut", None));
        assert!(c.take(CallKind::Model, &cut, fits(None)).is_none());
        assert!(c.take(CallKind::Model, &cut, fits(Some(400))).is_none());
        assert_eq!(
            c.take(CallKind::Model, &cut, fits(Some(40))).unwrap().seq,
            2
        );
    }

    #[test]
    fn a_miss_names_the_closest_request_and_the_difference() {
        let c = Cassette::from_calls(
            "r",
            Mode::Only,
            vec![
                model_call(1, &request("Write about tides", None), Some(("x", "stop"))),
                model_call(2, &request("Review it", None), Some(("y", "stop"))),
            ],
        );
        let now = serde_json::to_string(&request("Write about moons", None)).unwrap();
        let why = c.explain_miss("a", &now);
        assert!(why.contains("call #1"), "{why}");
        assert!(why.contains("`messages[0].content`"), "{why}");
        assert!(why.contains("tides") && why.contains("moons"), "{why}");
    }
}
