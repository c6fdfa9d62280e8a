//! The host side of the world: the bindings, and the `host` interface a plugin imports, each
//! capability checked against the plugin's grants.

use crate::sandbox::{LogLine, MAX_DENIAL_MESSAGES, MAX_DENIALS_PER_CALL, State};

wasmtime::component::bindgen!({
    path: "wit",
    world: "tool-plugin",
    // Trappable: a host function can stop the call (see `State::require`).
    imports: { "troupe:plugin/host.http-get": async | trappable, default: trappable },
    exports: { default: async },
});

use troupe::plugin::host::{Host, Level};

/// Longest log message kept (characters).
const MAX_LOG_CHARS: usize = 2000;

/// Why a host function stopped the call: the message, and the key it reports as the limit.
#[derive(Debug)]
pub(crate) struct Stopped {
    pub message: String,
    pub limit: &'static str,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Stopped {}

/// A host function's outcome: `Err` stops the call (a trap), `Ok(Err)` is the plugin's error.
type Outcome<T> = wasmtime::Result<Result<T, String>>;

/// The value of an `Outcome` inside a host function: a trap or the plugin's error returns.
macro_rules! need {
    ($outcome:expr) => {
        match $outcome? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

impl State {
    /// `Ok(Err)` naming the crew-file key when `granted` is false; the denial is counted, its
    /// message kept (the first few distinct ones), and the call is stopped (`Err`) at the
    /// `MAX_DENIALS_PER_CALL`th denial. `grant` is the key as the report names it
    /// (`grants.kv`), `key` how to write it in the crew file.
    fn require(
        &mut self,
        granted: bool,
        what: &str,
        grant: &'static str,
        key: &str,
    ) -> Outcome<()> {
        if granted {
            return Ok(Ok(()));
        }
        let message = format!(
            "{what} was not granted to this plugin: add `{key}` to its `grants` (its entry in the crew file, or in the policy of `troupe mcp serve`)"
        );
        self.denied_total += 1;
        if self.denied.len() < MAX_DENIAL_MESSAGES && !self.denied.contains(&message) {
            self.denied.push(message.clone());
        }
        if self.denied_total >= MAX_DENIALS_PER_CALL {
            return Err(Stopped {
                message: format!(
                    "the plugin was stopped after {} denied requests in one call (the last: {what}); add `{key}` to its `grants` if it needs it",
                    self.denied_total
                ),
                limit: grant,
            }
            .into());
        }
        Ok(Err(message))
    }

    fn documents(&mut self) -> Outcome<std::sync::Arc<troupe_docs::Corpus>> {
        need!(self.require(
            self.grants.documents,
            "reading the run's documents",
            "grants.documents",
            "\"documents\": true",
        ));
        Ok(self
            .services
            .documents
            .clone()
            .ok_or_else(|| "this run has no documents".to_string()))
    }
}

impl Host for State {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if self.logs.len() >= self.max_logs {
            self.logs_dropped += 1;
            return Ok(());
        }
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let message: String = message.chars().take(MAX_LOG_CHARS).collect();
        self.logs.push(LogLine {
            level: level.into(),
            message,
        });
        Ok(())
    }

    fn list_documents(&mut self) -> Outcome<String> {
        let corpus = need!(self.documents());
        let docs: Vec<_> = corpus.documents().iter().map(|d| corpus.info(d)).collect();
        Ok(serde_json::to_string(&docs).map_err(|e| e.to_string()))
    }

    fn read_document(&mut self, id: String) -> Outcome<String> {
        let corpus = need!(self.documents());
        if let Some(chunk) = corpus.chunk(&id) {
            return Ok(Ok(serde_json::json!({
                "chunk": chunk.id,
                "document": corpus.document_of(chunk).id,
                "lines": corpus.location(chunk),
                "text": corpus.chunk_text(chunk),
            })
            .to_string()));
        }
        Ok(match corpus.document(&id) {
            Some(doc) => Ok(serde_json::json!({"document": doc.id, "text": doc.text}).to_string()),
            None => Err(format!("there is no document or chunk `{id}`")),
        })
    }

    fn search_documents(&mut self, query: String, limit: u32) -> Outcome<String> {
        let corpus = need!(self.documents());
        Ok(corpus
            .search(&query, limit.clamp(1, 50) as usize, None)
            .map_err(|e| e.to_string())
            .and_then(|hits| serde_json::to_string(&hits).map_err(|e| e.to_string())))
    }

    fn kv_get(&mut self, key: String) -> Outcome<Option<String>> {
        need!(self.require(
            self.grants.kv,
            "the key-value space",
            "grants.kv",
            "\"kv\": true"
        ));
        let Ok(kv) = self.services.kv.lock() else {
            return Ok(Err(
                "the key-value space is unusable (a call panicked)".into()
            ));
        };
        Ok(Ok(kv.get(&key).cloned()))
    }

    /// Within `limits.kv_kb` and `limits.kv_keys` (over the run), keys of at most
    /// `MAX_KV_KEY_BYTES`; a refusal is the plugin's error, and a limit's is a hit.
    fn kv_set(&mut self, key: String, value: String) -> Outcome<()> {
        need!(self.require(
            self.grants.kv,
            "the key-value space",
            "grants.kv",
            "\"kv\": true"
        ));
        let refused = match self.services.kv.lock() {
            Ok(mut kv) => kv.set(key, value, &self.call_limits).err(),
            Err(_) => {
                return Ok(Err(
                    "the key-value space is unusable (a call panicked)".into()
                ));
            }
        };
        Ok(match refused {
            None => Ok(()),
            Some(r) => {
                if let Some(limit) = r.limit {
                    self.hit(limit);
                }
                Err(r.message)
            }
        })
    }

    fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.services.config.get(&key).cloned())
    }

    async fn http_get(&mut self, url: String) -> Outcome<String> {
        let parsed = match reqwest::Url::parse(&url) {
            Ok(u) => u,
            Err(e) => return Ok(Err(format!("`{url}` is not a URL: {e}"))),
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return Ok(Err(format!(
                "only http and https URLs can be fetched, not `{url}`"
            )));
        }
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        // Named in the denial messages a call keeps: bounded, whatever the plugin asks for.
        let host: String = if host.len() > 253 {
            format!("{}…", host.chars().take(253).collect::<String>())
        } else {
            host
        };
        let granted = crate::http::allowed(&self.grants.http, &host);
        need!(self.require(
            granted,
            &format!("HTTP access to `{host}`"),
            "grants.http",
            &format!("\"http\": [\"{host}\"]"),
        ));
        let Some(client) = self.services.http.clone() else {
            return Ok(Err("HTTP is not set up for this plugin".into()));
        };
        // The body is at most `limits.http_kb` and is dropped once handed to the plugin: a loop
        // of fetches accumulates nothing on the host.
        let fetched =
            crate::http::get(&client, parsed, self.call_limits.http_bytes, self.deadline).await;
        if let Err(crate::http::Failure::TooLarge(_)) = &fetched {
            self.hit("limits.http_kb");
        }
        Ok(fetched.map_err(|f| f.to_string()))
    }
}
