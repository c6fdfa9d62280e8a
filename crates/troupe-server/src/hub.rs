//! Live events of the runs this process runs, fanned out to SSE streams. A stream reads what it
//! missed from the store (the events are numbered there) and then follows the hub; the hub
//! tells it only what is already in the store (the runtime hands an event to its sink after
//! the store has it), so a stream that falls behind reads the store again and loses nothing.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::broadcast;

/// Events a slow stream may fall behind by before it reads the store instead. Allocated up
/// front for every run with a stream (a thousand runs: 64 slots each, not a thousand); a
/// stream that falls further behind loses nothing, it reads the store.
const BACKLOG: usize = 64;

/// One event as a stream sends it.
#[derive(Debug, Clone)]
pub struct Published {
    pub seq: u64,
    /// The event's `type`.
    pub kind: String,
    /// The event, as JSON.
    pub body: String,
}

/// Live events by run id.
#[derive(Default)]
pub struct Hub {
    channels: DashMap<String, broadcast::Sender<Arc<Published>>>,
}

impl Hub {
    fn sender(&self, run: &str) -> broadcast::Sender<Arc<Published>> {
        self.channels
            .entry(run.to_string())
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .clone()
    }

    /// Hands an event of `run` to its streams.
    pub fn publish(&self, run: &str, event: &troupe_runtime::Event) {
        let Some(tx) = self.channels.get(run).map(|t| t.clone()) else {
            return;
        };
        if tx.receiver_count() == 0 {
            return;
        }
        let Ok(body) = serde_json::to_string(event) else {
            return;
        };
        let kind = serde_json::to_value(&event.kind)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
            .unwrap_or_default();
        let _ = tx.send(Arc::new(Published {
            seq: event.seq,
            kind,
            body,
        }));
    }

    /// Follows `run`'s live events.
    pub fn subscribe(&self, run: &str) -> broadcast::Receiver<Arc<Published>> {
        self.sender(run).subscribe()
    }

    /// Forgets `run`'s channel when nobody follows it any more.
    pub fn release(&self, run: &str) {
        self.channels
            .remove_if(run, |_, tx| tx.receiver_count() == 0);
    }

    /// Channels held (for tests and the benchmark: it must not grow with ended runs).
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}
