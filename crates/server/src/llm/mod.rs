//! Language models over HTTP: OpenAI's chat and text completions (streaming included),
//! vLLM's `/tokenize` and `/detokenize`, and Triton's generate extension. Handlers parse and
//! tokenize (on the blocking pool), submit each choice to the version's scheduler
//! (`lathe_runtime::generation`), and encode what it sends back; compute never runs here.

pub mod chat;
pub mod completions;
pub mod request;
mod stream;
pub mod tokenize;
pub mod triton;

use std::sync::Arc;

use axum::http::HeaderMap;
use lathe_engine::generation::{TextGenerator, TokenLogprob};
use lathe_runtime::generation::{Delta, Finished, Generation};
use lathe_runtime::{LoadedVersion, Selector};
use lathe_types::{ApiError, ErrorKind};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::metrics::RequestLabels;
use crate::openai::openai_error;
use crate::state::AppState;
use axum::response::Response;
use request::Common;
use std::time::Instant;

/// A version's name, number and scheduler, as a request resolved it.
pub struct Llm {
    /// The model name the request used.
    pub name: String,
    /// The version that answers (kept alive while the request runs).
    pub loaded: Arc<LoadedVersion>,
}

impl Llm {
    /// The version's scheduler.
    pub fn generation(&self) -> &Generation {
        self.loaded.generation.as_ref().expect("resolve_llm checks for a scheduler")
    }

    /// The model.
    pub fn generator(&self) -> Arc<dyn TextGenerator> {
        self.generation().generator().clone()
    }

    /// Its context length in tokens.
    pub fn context(&self) -> usize {
        self.generation().generator().facts().context_length
    }
}

/// Resolves `model` (`NAME`, `NAME:VERSION` or `NAME:LABEL`; absent: the only language model
/// served) to a serving language-model version; traffic policies route a bare name, sticky on
/// the `X-Request-Id` header.
pub fn resolve_llm(st: &AppState, model: Option<&str>, headers: &HeaderMap) -> Result<Llm, ApiError> {
    let Some(model) = model else { return only_llm(st) };
    let at_model = |e: ApiError| ApiError::new(e.kind, format!("model: {}", e.message));
    let (name, loaded) = match model.split_once(':') {
        Some((name, sel)) => {
            let selector = match sel.parse::<u64>() {
                Ok(v) => Selector::Version(v),
                Err(_) => Selector::Label(sel.to_string()),
            };
            (name, st.manager.resolve(name, &selector).map_err(at_model)?)
        }
        None => {
            let key = headers.get("x-request-id").and_then(|v| v.to_str().ok());
            (model, st.manager.route(model, key).map_err(at_model)?.primary)
        }
    };
    if loaded.generation.is_none() {
        let kind = loaded.manifest.kind();
        return Err(ApiError::invalid(format!(
            "model: {name:?} is a {kind} model, not a language model; it does not generate text"
        )));
    }
    Ok(Llm { name: name.to_string(), loaded })
}

/// The one language model served, for requests without `model`.
fn only_llm(st: &AppState) -> Result<Llm, ApiError> {
    let llms: Vec<Llm> = st
        .manager
        .models()
        .into_iter()
        .filter_map(|m| st.manager.resolve(&m.name, &Selector::Default).ok().map(|l| (m.name, l)))
        .filter(|(_, l)| l.generation.is_some())
        .map(|(name, loaded)| Llm { name, loaded })
        .collect();
    match <[Llm; 1]>::try_from(llms) {
        Ok([one]) => Ok(one),
        Err(many) => Err(ApiError::invalid(format!(
            "model: expected the model's name ({} language models are served)",
            many.len()
        ))),
    }
}

/// The OpenAI `param` an error is about: the field its message starts with.
pub fn param_of(e: &ApiError) -> Option<String> {
    let head = e.message.split(':').next()?;
    let field = head.split(['[', '.']).next()?;
    let known = field.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !field.is_empty();
    known.then(|| field.to_string())
}

/// The metrics labels of an OpenAI request to `api`, model and version filled in once resolved.
pub fn openai_labels(api: &'static str) -> RequestLabels {
    RequestLabels { model: String::new(), version: String::new(), protocol: "openai", api, code: 0 }
}

/// The response of an OpenAI handler (an error in OpenAI's envelope), counted in the metrics.
pub fn answered(
    st: &AppState,
    mut labels: RequestLabels,
    started: Instant,
    result: Result<Response, ApiError>,
) -> Response {
    let response = result.unwrap_or_else(|e| openai_error(&e, param_of(&e).as_deref()));
    labels.code = response.status().as_u16();
    st.metrics.record(labels, started.elapsed().as_secs_f64());
    response
}

/// Runs `f` on the blocking pool (tokenization and template rendering are compute).
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("tokenization failed: {e}")))
}

/// One choice in flight: which prompt it answers and its deltas.
pub struct Choice {
    /// Index of its prompt.
    pub prompt: usize,
    /// Deltas from the scheduler.
    pub rx: UnboundedReceiver<Delta>,
}

/// Submits `common.n` choices for each prompt, after checking each prompt and `max_tokens`
/// against the context (`default_max`: tokens when the request gives none; `None`: up to the
/// context). Choices already submitted are cancelled when a later one fails.
pub fn submit(
    llm: &Llm,
    prompts: &[Vec<u32>],
    common: &Common,
    default_max: Option<usize>,
) -> Result<Vec<Choice>, ApiError> {
    let generator = llm.generator();
    let context = llm.context();
    let defaults = generator.sampling_defaults();
    let (kv_tokens, queue) = (llm.generation().kv_tokens(), llm.generation().config().max_waiting);
    if prompts.len() * common.n > queue {
        return Err(ApiError::invalid(format!(
            "n: {} prompts × n {} are more sequences than the server queues at once ({queue}, --max-waiting-seqs)",
            prompts.len(),
            common.n
        )));
    }
    let mut choices = Vec::new();
    for (p, prompt) in prompts.iter().enumerate() {
        if prompt.len() >= kv_tokens.min(context) && prompt.len() < context {
            return Err(ApiError::invalid(format!(
                "prompt: {} tokens do not fit the KV cache of {kv_tokens} positions (raise --kv-cache-memory)",
                prompt.len()
            )));
        }
        if prompt.len() >= context {
            return Err(ApiError::invalid(format!(
                "prompt: {} tokens do not fit the model's context of {context} tokens (at least one must be left \
                 to generate)",
                prompt.len()
            )));
        }
        let room = context - prompt.len();
        let max_tokens = match common.max_tokens {
            Some(m) if m > room => {
                return Err(ApiError::invalid(format!(
                    "max_tokens: the prompt's {} tokens plus max_tokens {m} exceed the model's context of {context} \
                     tokens",
                    prompt.len()
                )))
            }
            Some(m) => m,
            // Without a limit, up to the end of the context or of the KV cache.
            None => default_max.unwrap_or(room).min(room).min(kv_tokens - prompt.len()),
        };
        for c in 0..common.n {
            let sequence = generator.start(&common.params(&defaults, max_tokens, c))?;
            let rx = llm.generation().submit(prompt.clone(), max_tokens, sequence)?;
            choices.push(Choice { prompt: p, rx });
        }
    }
    Ok(choices)
}

/// What one choice produced, whole.
#[derive(Debug)]
pub struct Output {
    /// The text.
    pub text: String,
    /// The generated token ids.
    pub tokens: Vec<u32>,
    /// Their log-probabilities, when asked for.
    pub logprobs: Vec<TokenLogprob>,
    /// How it ended.
    pub finished: Finished,
}

/// Waits for a choice to finish.
pub async fn collect(mut choice: Choice) -> Result<Output, ApiError> {
    let (mut text, mut tokens, mut logprobs) = (String::new(), Vec::new(), Vec::new());
    while let Some(delta) = choice.rx.recv().await {
        text.push_str(&delta.text);
        tokens.extend(delta.token);
        logprobs.extend(delta.logprob);
        if let Some(finished) = delta.finished {
            return Ok(Output { text, tokens, logprobs, finished });
        }
    }
    Err(ApiError::new(ErrorKind::Internal, "generation stopped before the sequence finished"))
}

/// Waits for every choice, in order.
pub async fn collect_all(choices: Vec<Choice>) -> Result<Vec<Output>, ApiError> {
    let mut outputs = Vec::with_capacity(choices.len());
    for c in choices {
        outputs.push(collect(c).await?);
    }
    Ok(outputs)
}

/// OpenAI's `usage`: prompt tokens once per prompt, completion tokens of every choice, cached
/// prompt tokens of each prompt's first choice. `finished` holds each choice's index (prompt
/// `index / n`) and how it ended, in any order.
pub fn usage(prompt_lens: &[usize], finished: &[(usize, &Finished)], n: usize) -> serde_json::Value {
    let prompt: usize = prompt_lens.iter().sum();
    let completion: usize = finished.iter().map(|(_, f)| f.completion_tokens).sum();
    let cached: usize = finished.iter().filter(|(i, _)| i % n.max(1) == 0).map(|(_, f)| f.cached_tokens).sum();
    serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": cached },
    })
}

/// A request id with `prefix` (`chatcmpl-…`, `cmpl-…`): 32 hex digits from the clock and a
/// counter.
pub fn request_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:016x}{:016x}", nanos as u64, (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Seconds since the Unix epoch (OpenAI's `created`).
pub fn created() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
