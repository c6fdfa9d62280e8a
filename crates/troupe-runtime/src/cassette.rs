//! Answers from a recording: the model and tool calls a stored run made, found again by the
//! SHA-256 of the request. A resumed run catches up this way (its own record, then live); a run
//! with `--replay-calls` answers every model call this way and fails on the first that is not
//! recorded, saying how it differs from the closest recorded request.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use troupe_llm::Usage;
use troupe_store::{CallRow, Store, StoreError};

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
    pub fn load(store: &Store, run: &str, mode: Mode) -> Result<Self, StoreError> {
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
            if kind == CallKind::Model {
                model_calls += 1;
                requests.push((c.seq, c.agent.clone(), c.request));
            }
            answers
                .entry((kind, c.request_sha256))
                .or_default()
                .push_back(Hit {
                    seq: c.seq,
                    response,
                    usage: Usage {
                        input_tokens: c.input_tokens.unwrap_or(0),
                        output_tokens: c.output_tokens.unwrap_or(0),
                    },
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

    /// The next unused answer to the request with this hash.
    pub fn take(&self, kind: CallKind, sha256: &str) -> Option<Hit> {
        let mut g = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let hit = g
            .get_mut(&(kind, sha256.to_string()))
            .and_then(VecDeque::pop_front);
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

    fn call(seq: u64, kind: &str, sha: &str, request: &str, response: Option<&str>) -> CallRow {
        CallRow {
            seq,
            kind: kind.into(),
            task: Some("t".into()),
            agent: Some("a".into()),
            request_sha256: sha.into(),
            request: request.into(),
            response: response.map(Into::into),
            error: response.is_none().then(|| "boom".into()),
            input_tokens: Some(3),
            output_tokens: Some(4),
        }
    }

    #[test]
    fn each_recorded_answer_is_used_once_in_order_and_failed_model_calls_are_not_answers() {
        let c = Cassette::from_calls(
            "r",
            Mode::Resume,
            vec![
                call(1, "model", "h", r#"{"m":1}"#, Some("first")),
                call(2, "model", "h", r#"{"m":1}"#, Some("second")),
                call(3, "model", "x", r#"{"m":2}"#, None),
                call(4, "tool", "t", r#"{"tool":"a"}"#, None),
            ],
        );
        assert_eq!(c.model_calls(), 2);
        let first = c.take(CallKind::Model, "h").unwrap();
        assert_eq!((first.seq, first.response.as_deref()), (1, Ok("first")));
        assert_eq!(first.usage.total(), 7);
        assert_eq!(c.take(CallKind::Model, "h").unwrap().seq, 2);
        assert!(c.take(CallKind::Model, "h").is_none());
        assert!(c.take(CallKind::Model, "x").is_none());
        assert!(c.take(CallKind::Tool, "h").is_none());
        assert_eq!(
            c.take(CallKind::Tool, "t").unwrap().response,
            Err("boom".into())
        );
    }

    #[test]
    fn a_miss_names_the_closest_request_and_the_difference() {
        let c = Cassette::from_calls(
            "r",
            Mode::Only,
            vec![
                call(
                    1,
                    "model",
                    "h1",
                    r#"{"messages":[{"content":"Write about tides"}]}"#,
                    Some("x"),
                ),
                call(
                    2,
                    "model",
                    "h2",
                    r#"{"messages":[{"content":"Review it"}]}"#,
                    Some("y"),
                ),
            ],
        );
        let why = c.explain_miss("a", r#"{"messages":[{"content":"Write about moons"}]}"#);
        assert!(why.contains("call #1"), "{why}");
        assert!(why.contains("`messages[0].content`"), "{why}");
        assert!(why.contains("tides") && why.contains("moons"), "{why}");
    }
}
