//! Retries with exponential backoff and jitter, `Retry-After`, and a requests-per-minute limiter.
//! Both live here once, below every provider that speaks HTTP.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::Retry;

/// How a failed attempt is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles each time, with ±25 % jitter.
    pub base: Duration,
    /// Longest wait between attempts (a longer `Retry-After` is capped to this too).
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Wait after failed attempt `attempt` (1-based), without a server hint.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let jitter = 0.75 + fastrand::f64() * 0.5;
        // Whole milliseconds: tokio's timers have that resolution, so the wait reported in a
        // `Retry` is the wait made.
        let ms = exp.mul_f64(jitter).as_millis();
        Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)).min(self.max_wait)
    }

    /// The wait after failed attempt `attempt`: the server's `Retry-After` when it gave one, else
    /// the backoff; never longer than `max_wait`, and saying when the server asked for longer.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Wait {
        match retry_after {
            Some(asked) => Wait {
                used: asked.min(self.max_wait),
                asked: Some(asked),
                capped: asked > self.max_wait,
            },
            None => Wait {
                used: self.backoff(attempt),
                asked: None,
                capped: false,
            },
        }
    }
}

/// How long a retry waits, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// The wait actually made.
    pub used: Duration,
    /// The server's `Retry-After`, when it sent one.
    pub asked: Option<Duration>,
    /// `asked` was over the cap ([`RetryPolicy::max_wait`]); `used` is the cap.
    pub capped: bool,
}

/// One attempt's result, as the retry loop sees it.
pub enum Attempt<T> {
    /// Final: returned as it is (a success, or a failure not worth retrying).
    Done(T),
    /// Worth another attempt, unless this was the last one; then `last` is returned.
    Retry {
        /// `429`, `503`, `connection refused`, …
        reason: String,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
        /// What to return when no attempt is left.
        last: T,
    },
}

/// Runs `attempt` until it is done or `policy.max_attempts` are spent, waiting between attempts
/// (`Retry-After` or backoff, capped) and taking a slot from `limiter` before each one. Every
/// wait is logged as a [`Retry`] for the call and for [`observe`].
pub async fn retrying<T, F, Fut>(
    policy: &RetryPolicy,
    limiter: Option<&RateLimiter>,
    mut attempt: F,
) -> T
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let mut n = 1;
    loop {
        if let Some(l) = limiter {
            l.acquire().await;
        }
        let (reason, retry_after) = match attempt(n).await {
            Attempt::Done(t) => return t,
            Attempt::Retry { last, .. } if n >= policy.max_attempts => return last,
            Attempt::Retry {
                reason,
                retry_after,
                ..
            } => (reason, retry_after),
        };
        let wait = policy.wait(n, retry_after);
        log_retry(Retry {
            attempt: n,
            reason,
            wait_ms: millis(wait.used),
            retry_after: wait.asked.is_some(),
            retry_after_ms: wait.asked.map(millis),
            capped: wait.capped,
        });
        tokio::time::sleep(wait.used).await;
        n += 1;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether an HTTP status is worth retrying.
pub fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// The server's `Retry-After` (seconds, or `retry-after-ms` as some APIs send).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// Spaces requests so that at most `per_minute` start in any minute, across every caller that
/// shares it. A slot is reserved under a short std lock (never held across an await).
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn per_minute(per_minute: u32) -> Arc<Self> {
        Arc::new(Self {
            interval: Duration::from_secs(60) / per_minute.max(1),
            next: Mutex::new(None),
        })
    }

    /// Waits for this caller's slot; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let now = Instant::now();
        let slot = {
            let mut next = match self.next.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
        slot - now
    }
}

/// What happened below a model call that its result alone cannot say: the retries made, and a
/// failure the HTTP layer recognised (a limit) before the client library saw the response.
#[derive(Debug, Default)]
pub(crate) struct CallLog {
    pub retries: Vec<Retry>,
    pub failure: Option<crate::LlmError>,
    /// The HTTP status of the last answer, when it was not a success.
    pub status: Option<u16>,
}

tokio::task_local! {
    /// The log of the model call running in this task.
    pub(crate) static RETRY_LOG: Arc<Mutex<CallLog>>;
    /// Every retry below an [`observe`]d future, whether its call ends in an answer or an error.
    static OBSERVED: Arc<Mutex<Vec<Retry>>>;
}

/// Runs `fut` and returns, with its output, every retry made beneath it. A caller that reports
/// retries uses this rather than [`crate::ChatResponse::retries`]: a call that finally fails has
/// no response to carry them, and its retries are the ones most worth seeing.
pub async fn observe<F: Future>(fut: F) -> (F::Output, Vec<Retry>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = OBSERVED.scope(seen.clone(), fut).await;
    let retries = match seen.lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    (out, retries)
}

pub(crate) fn log_retry(r: Retry) {
    let _ = OBSERVED.try_with(|seen| {
        if let Ok(mut s) = seen.lock() {
            s.push(r.clone());
        }
    });
    let _ = RETRY_LOG.try_with(|log| {
        if let Ok(mut l) = log.lock() {
            l.retries.push(r);
        }
    });
}

/// Records the status of a final answer that was not a success, for the error mapping (the
/// client library loses it when the body is not an OpenAI error object).
pub(crate) fn log_status(status: Option<u16>) {
    let _ = RETRY_LOG.try_with(|log| {
        if let Ok(mut l) = log.lock() {
            l.status = status;
        }
    });
}

pub(crate) fn log_failure(e: crate::LlmError) {
    let _ = RETRY_LOG.try_with(|log| {
        if let Ok(mut l) = log.lock() {
            l.failure = Some(e);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            max_wait: Duration::from_secs(1),
        };
        let first = p.backoff(1);
        assert!(first >= Duration::from_millis(75) && first <= Duration::from_millis(125));
        let third = p.backoff(3);
        assert!(third >= Duration::from_millis(300) && third <= Duration::from_millis(500));
        assert_eq!(p.backoff(30), Duration::from_secs(1));
    }

    #[test]
    fn reads_retry_after() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
    }

    fn policy(max_attempts: u32, max_wait: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base: Duration::from_millis(100),
            max_wait,
        }
    }

    /// Drives the real loop over a scripted sequence of attempt results, recording on the paused
    /// clock when each attempt started.
    async fn run_script(
        policy: &RetryPolicy,
        limiter: Option<&RateLimiter>,
        script: Vec<Attempt<&'static str>>,
    ) -> (&'static str, Vec<Retry>, Vec<Duration>) {
        let start = Instant::now();
        let starts = Mutex::new(Vec::new());
        let script = Mutex::new(script.into_iter());
        let (out, retries) = observe(retrying(policy, limiter, |_| {
            starts.lock().unwrap().push(start.elapsed());
            let next = script.lock().unwrap().next().expect("script too short");
            async move { next }
        }))
        .await;
        (out, retries, starts.into_inner().unwrap())
    }

    fn busy(retry_after: Option<u64>, last: &'static str) -> Attempt<&'static str> {
        Attempt::Retry {
            reason: "429".into(),
            retry_after: retry_after.map(Duration::from_secs),
            last,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_what_retry_after_asks_then_succeeds() {
        let p = policy(3, Duration::from_secs(60));
        let (out, retries, starts) =
            run_script(&p, None, vec![busy(Some(7), "no"), Attempt::Done("ok")]).await;
        assert_eq!(out, "ok");
        assert_eq!(starts, vec![Duration::ZERO, Duration::from_secs(7)]);
        assert_eq!(
            retries,
            vec![Retry {
                attempt: 1,
                reason: "429".into(),
                wait_ms: 7000,
                retry_after: true,
                retry_after_ms: Some(7000),
                capped: false,
            }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_over_the_cap_waits_the_cap_and_says_so() {
        let p = policy(2, Duration::from_secs(5));
        let (out, retries, starts) =
            run_script(&p, None, vec![busy(Some(600), "no"), Attempt::Done("ok")]).await;
        assert_eq!(out, "ok");
        assert_eq!(
            starts[1],
            Duration::from_secs(5),
            "waited the cap, not 600 s"
        );
        assert_eq!(retries.len(), 1);
        assert_eq!(retries[0].wait_ms, 5000);
        assert_eq!(retries[0].retry_after_ms, Some(600_000));
        assert!(retries[0].capped);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_keeps_failing_returns_the_last_failure_with_every_retry_logged() {
        let p = policy(3, Duration::from_secs(60));
        let (out, retries, starts) = run_script(
            &p,
            None,
            vec![
                busy(None, "first"),
                busy(Some(2), "second"),
                busy(None, "third"),
            ],
        )
        .await;
        assert_eq!(out, "third");
        assert_eq!(retries.len(), 2, "two waits between three attempts");
        assert_eq!(starts.len(), 3);
        // The backoff without a hint: 100 ms ±25 %, and the clock moved by exactly that.
        assert!(!retries[0].retry_after && retries[0].retry_after_ms.is_none());
        assert!((75..=125).contains(&retries[0].wait_ms), "{:?}", retries[0]);
        assert_eq!(starts[1], Duration::from_millis(retries[0].wait_ms));
        assert_eq!(starts[2] - starts[1], Duration::from_secs(2));
        assert_eq!(
            retries.iter().map(|r| r.attempt).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn each_attempt_takes_a_slot_from_the_limiter() {
        let p = policy(3, Duration::from_secs(60));
        let l = RateLimiter::per_minute(6); // one every 10 s
        // Retry-After 1 s is shorter than the limiter's spacing: the limiter decides.
        let (_, _, starts) =
            run_script(&p, Some(&l), vec![busy(Some(1), "no"), Attempt::Done("ok")]).await;
        assert_eq!(starts, vec![Duration::ZERO, Duration::from_secs(10)]);
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_requests() {
        let l = RateLimiter::per_minute(120); // one every 500 ms
        let start = Instant::now();
        for _ in 0..3 {
            l.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
    }
}
