//! An embedded model: llama.cpp in-process through `llama-cpp-2`, so crews run offline.
//!
//! One GGUF is loaded once per process and owned by a model actor (a thread of its own; llama.cpp
//! calls block). Every agent shares it: requests queue on the actor's channel and are served one
//! at a time, each in a cleared KV cache, so no conversation leaks into another.
//!
//! Tool calls and structured outputs are constrained by a grammar generated from JSON Schema
//! (`json_schema_to_grammar`): a small local model then always emits a well-formed tool call or a
//! valid JSON answer. Grammar checking over a 262k vocabulary is slow, so each token is sampled
//! first without the grammar and only checked against it; the full grammar pass runs only when
//! that token is rejected.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use serde_json::{Value, json};

use crate::model::BoxFuture;
use crate::{ChatModel, ChatRequest, ChatResponse, LlmError, Message, ToolCall, Usage};

/// File name of the default model (Gemma 3 270M, Q4_K_M).
pub const DEFAULT_MODEL: &str = "gemma-3-270m-q4_k_m.gguf";
/// Answers are capped at this many tokens when the request sets no cap.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;
/// Context window used when the model was trained on a larger one.
pub const DEFAULT_CONTEXT: u32 = 8192;

/// Where named models live: `$TROUPE_MODELS_DIR`, else `~/.cache/troupe/models`.
pub fn models_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    env("TROUPE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env("HOME").unwrap_or_else(|| ".".into())).join(".cache/troupe/models")
        })
}

/// The GGUF file for `model`: a path to a `.gguf`, or a name in the models directory (with or
/// without `.gguf`); an empty name means the default model.
pub fn resolve(model: &str, dir: &Path) -> Result<PathBuf, LlmError> {
    let name = if model.is_empty() {
        DEFAULT_MODEL
    } else {
        model
    };
    let direct = PathBuf::from(name);
    let candidates = [
        direct.clone(),
        dir.join(name),
        dir.join(format!("{name}.gguf")),
    ];
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let hint = if name == DEFAULT_MODEL {
        format!(
            "run `scripts/fetch-model.sh` to install the default model into {}, or set \
             `OPENAI_API_KEY` / `OPENAI_BASE_URL` to use an API instead",
            dir.display()
        )
    } else {
        format!(
            "set `llm.model` to the path of a GGUF file, or put `{name}` in {} \
             (`TROUPE_MODELS_DIR` changes that directory)",
            dir.display()
        )
    };
    Err(LlmError::Config {
        message: format!("local model `{name}` not found"),
        hint,
    })
}

type Reply = tokio::sync::oneshot::Sender<Result<ChatResponse, LlmError>>;

/// A loaded GGUF model, shared by every agent that uses it.
pub struct LocalModel {
    tx: Mutex<mpsc::Sender<(ChatRequest, Reply)>>,
    name: String,
    /// Seconds the load took (for benchmarks and the run record).
    pub load_seconds: f64,
}

fn backend() -> Result<&'static LlamaBackend, LlmError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| e.to_string())?;
            b.void_logs();
            Ok(b)
        })
        .as_ref()
        .map_err(|e| LlmError::Other(format!("cannot start llama.cpp: {e}")))
}

impl LocalModel {
    /// The model at `path`, loaded on first use and shared afterwards.
    pub fn shared(path: &Path) -> Result<Arc<Self>, LlmError> {
        static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<LocalModel>>>> = OnceLock::new();
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mut loaded = LOADED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(m) = loaded.get(&key) {
            return Ok(m.clone());
        }
        let model = Arc::new(Self::load(&key)?);
        loaded.insert(key, model.clone());
        Ok(model)
    }

    /// Loads `path` on a new model thread.
    pub fn load(path: &Path) -> Result<Self, LlmError> {
        let started = Instant::now();
        let backend = backend()?;
        let (tx, rx) = mpsc::channel::<(ChatRequest, Reply)>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), LlmError>>();
        let file = path.to_path_buf();
        std::thread::Builder::new()
            .name("troupe-local-model".into())
            .spawn(move || serve(backend, &file, &rx, &ready_tx))
            .map_err(|e| LlmError::Other(format!("cannot start the model thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| LlmError::Other("the model thread stopped while loading".into()))??;
        let name = path
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned());
        Ok(Self {
            tx: Mutex::new(tx),
            name,
            load_seconds: started.elapsed().as_secs_f64(),
        })
    }
}

impl ChatModel for LocalModel {
    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        Box::pin(async move {
            let (reply, rx) = tokio::sync::oneshot::channel();
            let sent = self
                .tx
                .lock()
                .map_err(|_| LlmError::Other("the model lock is poisoned".into()))?
                .send((request.clone(), reply));
            if sent.is_err() {
                return Err(LlmError::Other(
                    "the local model is no longer running".into(),
                ));
            }
            rx.await
                .map_err(|_| LlmError::Other("the local model stopped during the call".into()))?
        })
    }

    fn name(&self) -> String {
        format!("local:{}", self.name)
    }
}

/// The model thread: load, report readiness, then answer requests in order until every sender is
/// gone.
fn serve(
    backend: &LlamaBackend,
    file: &Path,
    rx: &mpsc::Receiver<(ChatRequest, Reply)>,
    ready: &mpsc::Sender<Result<(), LlmError>>,
) {
    let model = match LlamaModel::load_from_file(backend, file, &LlamaModelParams::default()) {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(LlmError::Config {
                message: format!("cannot load the model `{}`: {e}", file.display()),
                hint: "check that the file is a complete GGUF model (re-download it if unsure)"
                    .into(),
            }));
            return;
        }
    };
    let n_ctx = model.n_ctx_train().clamp(512, DEFAULT_CONTEXT);
    let threads =
        std::thread::available_parallelism().map_or(2, |n| i32::try_from(n.get()).unwrap_or(2));
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(LlmError::Other(format!(
                "cannot create a llama.cpp context: {e}"
            ))));
            return;
        }
    };
    let template = match template_for(&model) {
        Ok(t) => t,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    while let Ok((request, reply)) = rx.recv() {
        let _ = reply.send(generate(&model, &mut ctx, &template, &request));
    }
}

/// The GGUF's own chat template, or llama.cpp's built-in one for its architecture (the default
/// Gemma 3 270M ships none; the built-in `gemma` template fits it).
fn template_for(model: &LlamaModel) -> Result<LlamaChatTemplate, LlmError> {
    if let Ok(t) = model.chat_template(None) {
        return Ok(t);
    }
    let arch = model
        .meta_val_str("general.architecture")
        .unwrap_or_default();
    let name = match arch.as_str() {
        a if a.starts_with("gemma") => "gemma",
        a if a.starts_with("llama") => "llama3",
        a if a.starts_with("phi3") => "phi3",
        a if a.starts_with("mistral") => "mistral-v7",
        _ => "chatml",
    };
    LlamaChatTemplate::new(name).map_err(|e| LlmError::Other(format!("chat template: {e}")))
}

/// What the answer must look like: free text, JSON for a schema, or a tool call / final answer.
fn answer_schema(request: &ChatRequest) -> Option<Value> {
    let answer = request.output.as_ref().map(|o| o.schema.clone());
    if request.tools.is_empty() {
        return answer;
    }
    let mut choices: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {"tool": {"const": t.name}, "arguments": t.parameters},
                "required": ["tool", "arguments"],
                "additionalProperties": false
            })
        })
        .collect();
    if !request.require_tool {
        choices.push(json!({
            "type": "object",
            "properties": {"answer": answer.unwrap_or(json!({"type": "string"}))},
            "required": ["answer"],
            "additionalProperties": false
        }));
    }
    Some(json!({ "oneOf": choices }))
}

/// Explains the tool-call format to the model, in the system prompt.
fn tool_instructions(request: &ChatRequest) -> String {
    let mut s = String::from(
        "\n\nYou can use tools. To call one, reply with only this JSON: \
         {\"tool\": \"<name>\", \"arguments\": {…}}. When you are done, reply with only this \
         JSON: {\"answer\": …}.\nTools:\n",
    );
    for t in &request.tools {
        s.push_str(&format!(
            "- {}: {} Arguments (JSON Schema): {}\n",
            t.name, t.description, t.parameters
        ));
    }
    s
}

/// Renders the conversation with the model's chat template.
fn prompt(
    model: &LlamaModel,
    template: &LlamaChatTemplate,
    request: &ChatRequest,
) -> Result<String, LlmError> {
    let mut tool_names: HashMap<&str, &str> = HashMap::new();
    let mut chat = Vec::new();
    let mut system_seen = false;
    for m in &request.messages {
        let (role, content) = match m {
            Message::System { content } => {
                system_seen = true;
                let mut c = content.clone();
                if !request.tools.is_empty() {
                    c.push_str(&tool_instructions(request));
                }
                ("system", c)
            }
            Message::User { content } => ("user", content.clone()),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                for c in tool_calls {
                    tool_names.insert(&c.id, &c.name);
                }
                let text = match tool_calls.first() {
                    Some(c) => json!({
                        "tool": c.name,
                        "arguments": serde_json::from_str::<Value>(&c.arguments).unwrap_or(Value::Null)
                    })
                    .to_string(),
                    None => content.clone().unwrap_or_default(),
                };
                ("assistant", text)
            }
            Message::Tool { call_id, content } => (
                "user",
                format!(
                    "Result of tool `{}`:\n{content}",
                    tool_names.get(call_id.as_str()).copied().unwrap_or("?")
                ),
            ),
        };
        chat.push(
            LlamaChatMessage::new(role.into(), content)
                .map_err(|e| LlmError::Other(format!("cannot pass a message to llama.cpp: {e}")))?,
        );
    }
    if !system_seen && !request.tools.is_empty() {
        let sys = LlamaChatMessage::new("system".into(), tool_instructions(request))
            .map_err(|e| LlmError::Other(e.to_string()))?;
        chat.insert(0, sys);
    }
    model
        .apply_chat_template(template, &chat, true)
        .map_err(|e| LlmError::Other(format!("cannot apply the chat template: {e}")))
}

/// One answer: prefill the prompt, then sample until end of turn, grammar completion or the cap.
fn generate(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    template: &LlamaChatTemplate,
    request: &ChatRequest,
) -> Result<ChatResponse, LlmError> {
    let text = prompt(model, template, request)?;
    let vocab = model.vocab();
    let tokens = vocab.tokenize(text.as_bytes(), true, true);
    let n_ctx = ctx.n_ctx();
    let n_prompt = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
    if n_prompt + 16 >= n_ctx {
        return Err(LlmError::Api {
            status: 400,
            message: format!(
                "the prompt has {n_prompt} tokens, more than this model's context window of \
                 {n_ctx} allows"
            ),
            attempts: 1,
        });
    }
    let cap = request
        .max_tokens
        .unwrap_or(DEFAULT_MAX_TOKENS)
        .min(n_ctx - n_prompt - 1);

    let schema = answer_schema(request);
    let mut grammar = match &schema {
        Some(s) => {
            let g = llama_cpp_2::json_schema_to_grammar(&s.to_string()).map_err(|e| {
                LlmError::Other(format!("cannot turn the schema into a grammar: {e}"))
            })?;
            Some(
                LlamaSampler::grammar(model, &g, "root")
                    .map_err(|e| LlmError::Other(format!("invalid grammar: {e}")))?,
            )
        }
        None => None,
    };
    // A mild repetition penalty over the last 64 tokens: small models otherwise loop on a phrase.
    let penalties = LlamaSampler::penalties(model.n_vocab(), 64, 1.15, 0.0, 0.0);
    let mut base = match request.temperature {
        Some(t) if t > 0.0 => LlamaSampler::chain_simple([
            penalties,
            LlamaSampler::top_k(40),
            LlamaSampler::top_p(0.95, 1),
            LlamaSampler::temp(t),
            LlamaSampler::dist(0x7e57),
        ]),
        _ => LlamaSampler::chain_simple([penalties, LlamaSampler::greedy()]),
    };

    ctx.clear_kv_cache();
    let n_batch = usize::try_from(ctx.n_batch()).unwrap_or(512);
    let mut batch = LlamaBatch::new(n_batch, 1);
    let last = tokens.len() - 1;
    for (chunk_i, chunk) in tokens.chunks(n_batch).enumerate() {
        batch.clear();
        for (j, &tok) in chunk.iter().enumerate() {
            let pos = chunk_i * n_batch + j;
            batch
                .add(
                    tok,
                    i32::try_from(pos).unwrap_or(i32::MAX),
                    &[0],
                    pos == last,
                )
                .map_err(|e| LlmError::Other(format!("batch: {e}")))?;
        }
        ctx.decode(&mut batch)
            .map_err(|e| LlmError::Other(format!("prefill failed: {e}")))?;
    }

    let mut out: Vec<u8> = Vec::new();
    let mut n_out: u32 = 0;
    let mut pos = i32::try_from(tokens.len()).unwrap_or(i32::MAX);
    let mut finish = "length";
    while n_out < cap {
        let token = sample(ctx, batch.n_tokens() - 1, &mut base, grammar.as_mut());
        // End of turn, or any other control token (`<start_of_turn>`, …): a base model that does
        // not close its turn starts the next one instead.
        if vocab.is_eog(token) || vocab.is_control(token) {
            finish = "stop";
            break;
        }
        if let Some(g) = grammar.as_mut() {
            g.accept(token);
        }
        out.extend(vocab.token_to_piece(token, false, None));
        n_out += 1;
        batch.clear();
        batch
            .add(token, pos, &[0], true)
            .map_err(|e| LlmError::Other(format!("batch: {e}")))?;
        pos += 1;
        ctx.decode(&mut batch)
            .map_err(|e| LlmError::Other(format!("generation failed: {e}")))?;
    }
    let text = String::from_utf8_lossy(&out).trim().to_string();
    let usage = Usage {
        input_tokens: u64::from(n_prompt),
        output_tokens: u64::from(n_out),
    };
    Ok(interpret(text, request, usage, finish))
}

/// Samples a token: without the grammar first; only when the grammar rejects that token, again
/// over the grammar-filtered distribution. The grammar sampler itself is advanced by the caller.
fn sample(
    ctx: &LlamaContext<'_>,
    idx: i32,
    base: &mut LlamaSampler,
    grammar: Option<&mut LlamaSampler>,
) -> LlamaToken {
    // Sampled in llama.cpp straight from the logits: no 262k-entry array is built for it.
    let first = base.sample(ctx, idx);
    let Some(grammar) = grammar else {
        return first;
    };
    let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(first, 1.0, 1.0)], false);
    single.apply_sampler(grammar);
    if single.data.first().is_some_and(|d| d.logit().is_finite()) {
        return first;
    }
    let mut constrained = ctx.token_data_array_ith(idx);
    constrained.apply_sampler(grammar);
    constrained.apply_sampler(base);
    let token = constrained
        .selected_token()
        .unwrap_or_else(|| constrained.sample_token_greedy());
    // `sample` accepted `first` into the penalty history; this path replaces it. (`accept` is
    // only ever called on tokens chosen through `apply_sampler`, never after `sample` for the
    // same token: llama.cpp aborts on a double accept into a grammar.)
    base.accept(token);
    token
}

/// Turns generated text into an answer or a tool call.
fn interpret(text: String, request: &ChatRequest, usage: Usage, finish: &str) -> ChatResponse {
    let mut response = ChatResponse {
        usage,
        finish_reason: Some(finish.into()),
        ..Default::default()
    };
    if request.tools.is_empty() {
        response.content = Some(text);
        return response;
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v.get("tool").is_some() => {
            response.tool_calls.push(ToolCall {
                id: format!("call_{}", request.messages.len()),
                name: v["tool"].as_str().unwrap_or_default().to_string(),
                arguments: v.get("arguments").map_or("{}".into(), Value::to_string),
            });
            response.finish_reason = Some("tool_calls".into());
        }
        Ok(v) => {
            response.content = Some(match v.get("answer") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => text,
            });
        }
        // Cut off by the cap before the JSON closed: hand back what there is.
        Err(_) => response.content = Some(text),
    }
    response
}
