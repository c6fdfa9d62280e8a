//! Retries with exponential backoff and jitter, `Retry-After`, and a requests-per-minute limiter.
//! Both live here once, below every provider that speaks HTTP.

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
        exp.mul_f64(jitter).min(self.max_wait)
    }
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
}

tokio::task_local! {
    /// The log of the model call running in this task.
    pub(crate) static RETRY_LOG: Arc<Mutex<CallLog>>;
}

pub(crate) fn log_retry(r: Retry) {
    let _ = RETRY_LOG.try_with(|log| {
        if let Ok(mut l) = log.lock() {
            l.retries.push(r);
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
