//! Which [`ChatModel`] serves an agent: built from its merged `llm` settings, shared between
//! agents whose endpoint settings are the same (one connection pool, one rate limiter).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use troupe_crew::{LlmSettings, Provider};
use troupe_llm::openai::{DEFAULT_BASE_URL, OpenAiConfig, OpenAiModel};
use troupe_llm::retry::{RateLimiter, RetryPolicy};
use troupe_llm::{ChatModel, LlmError};

/// Makes the model for a set of settings.
pub trait ModelFactory: Send + Sync {
    fn model(&self, llm: &LlmSettings) -> Result<Arc<dyn ChatModel>, LlmError>;

    /// Whether [`ModelFactory::model`] would succeed, decided without building anything (no
    /// model is loaded, no endpoint contacted), and whether another model stands in for the one
    /// named. `troupe validate` and the start of a run ask this, so that both give the same
    /// answer. The default builds the model: right for factories whose models are cheap.
    fn check(&self, llm: &LlmSettings) -> Result<Option<Fallback>, LlmError> {
        self.model(llm).map(|_| None)
    }
}

/// The embedded model standing in for the model a crew named, because the crew asked for
/// `"provider": "auto"` and no endpoint is configured: said in a `model_fallback` event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fallback {
    pub requested: String,
    pub used: String,
    pub reason: String,
}

/// Where an agent's model comes from.
enum Which {
    /// An OpenAI-compatible endpoint: the settings with the model filled in, the base URL and
    /// the key.
    Api(Box<LlmSettings>, String, Option<String>),
    /// A GGUF file run in-process.
    Local(PathBuf),
}

/// The environment variable that overrides the default API base URL.
pub const OPENAI_BASE_URL: &str = "OPENAI_BASE_URL";

/// The environment variable naming the API model for crews that set no `llm.model`.
pub const OPENAI_MODEL: &str = "OPENAI_MODEL";

/// Looks up an environment variable.
type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Builds real providers. Environment lookups go through `env`, so tests and embedders control it.
pub struct ProviderFactory {
    env: EnvLookup,
    models: Mutex<HashMap<String, Arc<dyn ChatModel>>>,
    limiters: Mutex<HashMap<String, Arc<RateLimiter>>>,
}

impl ProviderFactory {
    pub fn new(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            env: Box::new(env),
            models: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::new(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }
}

impl ProviderFactory {
    /// Whether an OpenAI-compatible endpoint is configured for these settings.
    fn endpoint(&self, llm: &LlmSettings) -> bool {
        llm.base_url.is_some()
            || (self.env)(OPENAI_BASE_URL).is_some()
            || (self.env)(&llm.api_key_env).is_some()
    }

    /// What serves these settings. An explicit provider wins. Without one: a GGUF file runs
    /// in-process; otherwise an endpoint, when one is configured; otherwise the embedded model,
    /// but only for a model it has (none named, or an installed name). An API model name with
    /// nowhere to send it is an error: the crew would silently run on another model.
    /// `"provider": "auto"` asks for that stand-in, and gets it with a [`Fallback`].
    fn resolve(&self, llm: &LlmSettings) -> Result<(Which, Option<Fallback>), LlmError> {
        let gguf = troupe_crew::is_gguf(&llm.model);
        match llm.provider {
            Some(Provider::Openai) => Ok((self.api(llm)?, None)),
            Some(Provider::Local) => Ok((Which::Local(self.local_file(&llm.model)?), None)),
            None | Some(Provider::Auto) if gguf => {
                Ok((Which::Local(self.local_file(&llm.model)?), None))
            }
            None | Some(Provider::Auto) if self.endpoint(llm) => Ok((self.api(llm)?, None)),
            _ if llm.model.is_empty() => Ok((Which::Local(self.local_file("")?), None)),
            None => match self.local_file(&llm.model) {
                Ok(path) => Ok((Which::Local(path), None)),
                Err(_) => Err(LlmError::Config {
                    message: format!(
                        "model `{}` is not a local model, and no endpoint is configured: `{}` is not set, nor `llm.base_url` or `{OPENAI_BASE_URL}`",
                        llm.model, llm.api_key_env
                    ),
                    hint: format!(
                        "export {}=… (or point `llm.base_url` at an OpenAI-compatible server, e.g. Ollama's `http://localhost:11434/v1`); to run on the embedded model instead, remove `model` or set `\"provider\": \"local\"`, or set `\"provider\": \"auto\"` to let it stand in whenever no endpoint is configured",
                        llm.api_key_env
                    ),
                }),
            },
            Some(Provider::Auto) => match self.local_file(&llm.model) {
                Ok(path) => Ok((Which::Local(path), None)),
                Err(_) => {
                    let path = self.local_file("")?;
                    let used = path.file_name().map_or_else(
                        || path.display().to_string(),
                        |n| n.to_string_lossy().into(),
                    );
                    Ok((
                        Which::Local(path),
                        Some(Fallback {
                            requested: llm.model.clone(),
                            used,
                            reason: format!(
                                "`\"provider\": \"auto\"` and no endpoint is configured (`{}` is not set, nor `llm.base_url` or `{OPENAI_BASE_URL}`)",
                                llm.api_key_env
                            ),
                        }),
                    ))
                }
            },
        }
    }

    /// The endpoint's settings, or why they are not enough.
    fn api(&self, llm: &LlmSettings) -> Result<Which, LlmError> {
        // A crew written for the embedded model names none: `OPENAI_MODEL` picks the API's.
        let mut llm = llm.clone();
        if llm.model.is_empty() {
            let Some(model) = (self.env)(OPENAI_MODEL) else {
                return Err(LlmError::Config {
                    message: "no model is set for the OpenAI-compatible endpoint".into(),
                    hint: format!(
                        "set `llm.model`, e.g. `\"gpt-4o-mini\"` (for Ollama: the model's tag), or export {OPENAI_MODEL}"
                    ),
                });
            };
            llm.model = model;
        }
        let base_url = llm
            .base_url
            .clone()
            .or_else(|| (self.env)(OPENAI_BASE_URL))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let api_key = (self.env)(&llm.api_key_env);
        if api_key.is_none() && base_url.trim_end_matches('/') == DEFAULT_BASE_URL {
            return Err(LlmError::Config {
                message: format!(
                    "no API key for {DEFAULT_BASE_URL}: `{}` is not set",
                    llm.api_key_env
                ),
                hint: format!(
                    "export {}=sk-…, or point `llm.base_url` (or `{OPENAI_BASE_URL}`) at an \
                     OpenAI-compatible server such as Ollama (`http://localhost:11434/v1`)",
                    llm.api_key_env
                ),
            });
        }
        Ok(Which::Api(Box::new(llm), base_url, api_key))
    }

    #[cfg(feature = "local")]
    fn local_file(&self, model: &str) -> Result<PathBuf, LlmError> {
        use troupe_llm::local::{models_dir, resolve};
        resolve(model, &models_dir(&*self.env))
    }

    #[cfg(not(feature = "local"))]
    fn local_file(&self, _: &str) -> Result<PathBuf, LlmError> {
        Err(LlmError::Config {
            message: "this build of Troupe has no embedded model".into(),
            hint: "rebuild with the `local` feature, or set `OPENAI_API_KEY` / `OPENAI_BASE_URL`"
                .into(),
        })
    }

    #[cfg(feature = "local")]
    fn load(path: &std::path::Path) -> Result<Arc<dyn ChatModel>, LlmError> {
        Ok(troupe_llm::local::LocalModel::shared(path)?)
    }

    #[cfg(not(feature = "local"))]
    fn load(_: &std::path::Path) -> Result<Arc<dyn ChatModel>, LlmError> {
        Err(LlmError::Config {
            message: "this build of Troupe has no embedded model".into(),
            hint: "rebuild with the `local` feature".into(),
        })
    }

    fn build_api(
        &self,
        llm: &LlmSettings,
        base_url: String,
        api_key: Option<String>,
    ) -> Result<Arc<dyn ChatModel>, LlmError> {
        let key = format!(
            "{base_url}|{}|{}|{:?}|{}|{:?}|{:?}|{:?}",
            llm.model,
            llm.api_key_env,
            llm.timeout,
            llm.max_attempts,
            llm.requests_per_minute,
            llm.max_response_kb,
            llm.max_tokens
        );
        let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = models.get(&key) {
            return Ok(m.clone());
        }
        let limiter = llm.requests_per_minute.map(|rpm| {
            let mut l = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
            l.entry(format!("{base_url}|{}|{rpm}", llm.api_key_env))
                .or_insert_with(|| RateLimiter::per_minute(rpm))
                .clone()
        });
        let model: Arc<dyn ChatModel> = Arc::new(OpenAiModel::new(OpenAiConfig {
            base_url,
            api_key,
            model: llm.model.clone(),
            timeout: llm.timeout,
            retry: RetryPolicy {
                max_attempts: llm.max_attempts,
                ..RetryPolicy::default()
            },
            limiter,
            max_response_bytes: llm.max_response_kb.map_or_else(
                || troupe_llm::openai::default_max_response_bytes(llm.max_tokens),
                |kb| (kb as usize) << 10,
            ),
        })?);
        models.insert(key, model.clone());
        Ok(model)
    }
}

impl ModelFactory for ProviderFactory {
    fn model(&self, llm: &LlmSettings) -> Result<Arc<dyn ChatModel>, LlmError> {
        match self.resolve(llm)?.0 {
            Which::Local(path) => Self::load(&path),
            Which::Api(llm, base_url, api_key) => self.build_api(&llm, base_url, api_key),
        }
    }

    fn check(&self, llm: &LlmSettings) -> Result<Option<Fallback>, LlmError> {
        self.resolve(llm).map(|(_, fallback)| fallback)
    }
}

/// Models for a run whose every model call is answered from a recording (`--replay-calls`):
/// nothing is loaded and nothing is reached; each model only says what the recorded one was
/// (name, context window, constrained decoding), so that the requests come out the same.
pub struct RecordingOnly {
    pub models: std::collections::BTreeMap<String, crate::continuation::ModelTraits>,
}

impl ModelFactory for RecordingOnly {
    fn model(&self, llm: &LlmSettings) -> Result<Arc<dyn ChatModel>, LlmError> {
        let traits = self.models.get(&llm.model).cloned().unwrap_or_else(|| {
            crate::continuation::ModelTraits {
                name: llm.model.clone(),
                ..Default::default()
            }
        });
        Ok(Arc::new(Recorded(traits)))
    }
}

struct Recorded(crate::continuation::ModelTraits);

impl ChatModel for Recorded {
    fn chat<'a>(
        &'a self,
        _request: &'a troupe_llm::ChatRequest,
    ) -> troupe_llm::BoxFuture<'a, Result<troupe_llm::ChatResponse, LlmError>> {
        Box::pin(async {
            Err(LlmError::Config {
                message: "this run answers model calls only from a recording".into(),
                hint: "run without `--replay-calls` to call the model".into(),
            })
        })
    }
    fn name(&self) -> String {
        self.0.name.clone()
    }
    fn context_window(&self) -> Option<u32> {
        self.0.window
    }
    fn constrained_decoding(&self) -> bool {
        self.0.constrained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(model: &str, base_url: &str, rpm: Option<u32>) -> LlmSettings {
        LlmSettings {
            provider: Some(Provider::Openai),
            model: model.into(),
            base_url: Some(base_url.into()),
            api_key_env: "OPENAI_API_KEY".into(),
            temperature: None,
            max_tokens: None,
            context_window: None,
            timeout: std::time::Duration::from_secs(5),
            max_attempts: 1,
            requests_per_minute: rpm,
            max_response_kb: None,
            input_cost_per_mtok: None,
            output_cost_per_mtok: None,
            cached_input_cost_per_mtok: None,
        }
    }

    /// `requests_per_minute` is the endpoint's: agents on one endpoint share one limiter, even
    /// with different models or answer caps; another endpoint has its own. (The limiter's
    /// spacing is timed on tokio's paused clock in `troupe-llm`'s `retry` tests.)
    #[test]
    fn agents_on_one_endpoint_share_its_rate_limiter() {
        let factory = ProviderFactory::new(|_| None);
        let a = settings("m1", "http://127.0.0.1:9/v1", Some(300));
        let b = LlmSettings {
            max_tokens: Some(64),
            ..settings("m2", "http://127.0.0.1:9/v1", Some(300))
        };
        let other = settings("m1", "http://127.0.0.1:10/v1", Some(300));
        let unlimited = settings("m3", "http://127.0.0.1:9/v1", None);
        for s in [&a, &b, &other, &unlimited] {
            factory.model(s).unwrap();
        }
        let limiters = factory.limiters.lock().unwrap();
        let mut keys: Vec<&String> = limiters.keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "http://127.0.0.1:10/v1|OPENAI_API_KEY|300",
                "http://127.0.0.1:9/v1|OPENAI_API_KEY|300"
            ]
        );
        // Four settings, four models (they differ), but two limiters.
        assert_eq!(factory.models.lock().unwrap().len(), 4);
    }

    /// A factory over a fake environment whose models directory holds the default model.
    fn factory(vars: &[(&str, &str)]) -> (tempfile::TempDir, ProviderFactory) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gemma-3-270m-q4_k_m.gguf"), b"GGUF").unwrap();
        std::fs::write(dir.path().join("installed.gguf"), b"GGUF").unwrap();
        let mut env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("TROUPE_MODELS_DIR".into(), dir.path().display().to_string());
        (dir, ProviderFactory::new(move |k| env.get(k).cloned()))
    }

    fn named(provider: Option<Provider>, model: &str) -> LlmSettings {
        LlmSettings {
            provider,
            base_url: None,
            ..settings(model, "", None)
        }
    }

    fn which(f: &ProviderFactory, llm: &LlmSettings) -> Result<String, String> {
        match f.resolve(llm) {
            Ok((Which::Api(l, url, _), fb)) => Ok(format!("api {} at {url} {fb:?}", l.model)),
            Ok((Which::Local(p), fb)) => Ok(format!(
                "local {} {fb:?}",
                p.file_name().unwrap().to_string_lossy()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    #[cfg(feature = "local")]
    #[test]
    fn the_model_a_crew_runs_on_is_the_one_it_names() {
        let (_d, offline) = factory(&[]);
        let (_d2, keyed) = factory(&[("OPENAI_API_KEY", "sk-x")]);
        // An API model name with nowhere to send it: an error, not the embedded model.
        let e = which(&offline, &named(None, "gpt-4o-mini")).unwrap_err();
        assert!(
            e.contains("model `gpt-4o-mini` is not a local model"),
            "{e}"
        );
        // Asked for, the stand-in comes with the reason.
        let got = which(&offline, &named(Some(Provider::Auto), "gpt-4o-mini")).unwrap();
        assert!(
            got.starts_with(
                "local gemma-3-270m-q4_k_m.gguf Some(Fallback { requested: \"gpt-4o-mini\""
            ),
            "{got}"
        );
        // No model named, or an installed one: the embedded model, no stand-in.
        assert_eq!(
            which(&offline, &named(None, "")).unwrap(),
            "local gemma-3-270m-q4_k_m.gguf None"
        );
        assert_eq!(
            which(&offline, &named(None, "installed")).unwrap(),
            "local installed.gguf None"
        );
        assert_eq!(
            which(&offline, &named(Some(Provider::Auto), "")).unwrap(),
            "local gemma-3-270m-q4_k_m.gguf None"
        );
        // With a key: the API, with the name as written, `/` and all.
        for name in [
            "gpt-4o-mini",
            "Qwen/Qwen2.5-7B-Instruct",
            "openai/gpt-4o-mini",
        ] {
            for p in [None, Some(Provider::Auto), Some(Provider::Openai)] {
                let got = which(&keyed, &named(p, name)).unwrap();
                assert_eq!(got, format!("api {name} at {DEFAULT_BASE_URL} None"));
            }
        }
        // A GGUF file runs locally even when an endpoint is configured; a missing one is an error.
        let gguf = _d2.path().join("installed.gguf").display().to_string();
        assert_eq!(
            which(&keyed, &named(None, &gguf)).unwrap(),
            "local installed.gguf None"
        );
        assert!(
            which(&keyed, &named(None, "/nope/x.gguf"))
                .unwrap_err()
                .contains("not found")
        );
        // An explicit `local` never falls back.
        assert!(
            which(&offline, &named(Some(Provider::Local), "gpt-4o-mini"))
                .unwrap_err()
                .contains("not found")
        );
        // `check` says the same as `model` would, without loading anything.
        assert!(offline.check(&named(None, "gpt-4o-mini")).is_err());
        assert!(
            offline
                .check(&named(Some(Provider::Auto), "gpt-4o-mini"))
                .unwrap()
                .is_some()
        );
    }
}
