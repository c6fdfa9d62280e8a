//! The host side of the world: the bindings, and the `host` interface a plugin imports, each
//! capability checked against the plugin's grants.

use crate::sandbox::{LogLine, State};

wasmtime::component::bindgen!({
    path: "wit",
    world: "tool-plugin",
    imports: { "troupe:plugin/host.http-get": async },
    exports: { default: async },
});

use troupe::plugin::host::{Host, Level};

/// Longest log message kept (characters).
const MAX_LOG_CHARS: usize = 2000;

impl State {
    /// `Err` naming the crew-file key when `granted` is false; the denial is also recorded.
    fn require(&mut self, granted: bool, what: &str, key: &str) -> Result<(), String> {
        if granted {
            return Ok(());
        }
        let message = format!(
            "{what} was not granted to this plugin: add `{key}` to its `grants` in the crew file"
        );
        self.denied.push(message.clone());
        Err(message)
    }

    fn documents(&mut self) -> Result<std::sync::Arc<troupe_docs::Corpus>, String> {
        self.require(
            self.grants.documents,
            "reading the run's documents",
            "\"documents\": true",
        )?;
        self.services
            .documents
            .clone()
            .ok_or_else(|| "this run has no documents".to_string())
    }
}

impl Host for State {
    fn log(&mut self, level: Level, message: String) {
        if self.logs.len() >= self.max_logs {
            self.logs_dropped += 1;
            return;
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
    }

    fn list_documents(&mut self) -> Result<String, String> {
        let corpus = self.documents()?;
        let docs: Vec<_> = corpus.documents().iter().map(|d| corpus.info(d)).collect();
        serde_json::to_string(&docs).map_err(|e| e.to_string())
    }

    fn read_document(&mut self, id: String) -> Result<String, String> {
        let corpus = self.documents()?;
        if let Some(chunk) = corpus.chunk(&id) {
            return Ok(serde_json::json!({
                "chunk": chunk.id,
                "document": corpus.document_of(chunk).id,
                "lines": corpus.location(chunk),
                "text": corpus.chunk_text(chunk),
            })
            .to_string());
        }
        let doc = corpus
            .document(&id)
            .ok_or_else(|| format!("there is no document or chunk `{id}`"))?;
        Ok(serde_json::json!({"document": doc.id, "text": doc.text}).to_string())
    }

    fn search_documents(&mut self, query: String, limit: u32) -> Result<String, String> {
        let corpus = self.documents()?;
        let hits = corpus
            .search(&query, limit.clamp(1, 50) as usize, None)
            .map_err(|e| e.to_string())?;
        serde_json::to_string(&hits).map_err(|e| e.to_string())
    }

    fn kv_get(&mut self, key: String) -> Result<Option<String>, String> {
        self.require(self.grants.kv, "the key-value space", "\"kv\": true")?;
        let kv = self.services.kv.lock().map_err(|_| "kv lock poisoned")?;
        Ok(kv.get(&key).cloned())
    }

    fn kv_set(&mut self, key: String, value: String) -> Result<(), String> {
        self.require(self.grants.kv, "the key-value space", "\"kv\": true")?;
        let mut kv = self.services.kv.lock().map_err(|_| "kv lock poisoned")?;
        kv.insert(key, value);
        Ok(())
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.services.config.get(&key).cloned()
    }

    async fn http_get(&mut self, url: String) -> Result<String, String> {
        let parsed = reqwest::Url::parse(&url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "only http and https URLs can be fetched, not `{url}`"
            ));
        }
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        let granted = crate::http::allowed(&self.grants.http, &host);
        self.require(
            granted,
            &format!("HTTP access to `{host}`"),
            &format!("\"http\": [\"{host}\"]"),
        )?;
        let client = self
            .services
            .http
            .clone()
            .ok_or("HTTP is not set up for this plugin")?;
        let fetched = crate::http::get(&client, parsed, self.http_bytes, self.deadline).await;
        if let Err(crate::http::Failure::TooLarge(_)) = &fetched {
            self.hits.push("limits.http_kb");
        }
        fetched.map_err(|f| f.to_string())
    }
}
