//! `POST /v1/completions`: OpenAI's (legacy) text completions of raw prompts.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use lathe_engine::generation::{TextGenerator, TokenLogprob};
use lathe_runtime::generation::{Delta, Finished};
use lathe_types::ApiError;
use serde_json::{json, Map, Value};

use super::request::{check_fields, Common, MAX_TOP_LOGPROBS};
use super::stream::{sse, Encoder};
use super::{answered, blocking, collect_all, created, openai_labels, request_id, resolve_llm, submit, usage, Llm};
use crate::body::{json_ok, read_body};
use crate::metrics::RequestLabels;
use crate::state::AppState;

/// OpenAI's default `max_tokens` for text completions.
const DEFAULT_MAX_TOKENS: usize = 16;

/// Most prompts per request.
const MAX_PROMPTS: usize = 64;

/// A prompt as given: text (tokenized with the model's BOS) or token ids (used as given).
enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

fn ids(items: &[Value], at: &str) -> Result<Vec<u32>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(j, v)| {
            let id = v.as_u64().filter(|&id| id <= u32::MAX as u64);
            id.map(|id| id as u32).ok_or_else(|| ApiError::invalid(format!("{at}[{j}]: expected a token id")))
        })
        .collect()
}

/// `prompt`: a string, a list of strings, a list of token ids or a list of lists of them.
fn prompts(obj: &Map<String, Value>) -> Result<Vec<Prompt>, ApiError> {
    const EXPECTED: &str = "a string, a list of strings, a list of token ids or a list of lists of token ids";
    let list = match obj.get("prompt") {
        Some(Value::String(s)) => return Ok(vec![Prompt::Text(s.clone())]),
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) => return Err(ApiError::invalid("prompt: the list is empty")),
        _ => return Err(ApiError::invalid(format!("prompt: expected {EXPECTED}"))),
    };
    if list[0].is_number() {
        return Ok(vec![Prompt::Ids(ids(list, "prompt")?)]);
    }
    if list.len() > MAX_PROMPTS {
        return Err(ApiError::invalid(format!("prompt: {} prompts, more than {MAX_PROMPTS}", list.len())));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(Prompt::Text(s.clone())),
            Value::Array(inner) if !inner.is_empty() => Ok(Prompt::Ids(ids(inner, &format!("prompt[{i}]"))?)),
            _ => Err(ApiError::invalid(format!("prompt[{i}]: expected {EXPECTED}"))),
        })
        .collect()
}

fn parse(bytes: &[u8], max_n: usize) -> Result<(Common, Vec<Prompt>), ApiError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))?;
    let Value::Object(obj) = value else { return Err(ApiError::invalid("expected a JSON object")) };
    check_fields(&obj, &["prompt"])?;
    let top = match obj.get("logprobs") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(t) if t as usize <= MAX_TOP_LOGPROBS => Some(t as usize),
            _ => return Err(ApiError::invalid(format!("logprobs: expected an integer from 0 to {MAX_TOP_LOGPROBS}"))),
        },
    };
    Ok((Common::parse(&obj, max_n, top)?, prompts(&obj)?))
}

/// `POST /v1/completions`.
#[utoipa::path(
    post,
    path = "/v1/completions",
    tag = "openai",
    summary = "OpenAI text completions: prompt (string, strings, token ids or lists of them), max_tokens \
        (default 16), sampling and stop fields as chat completions, n, logprobs (top alternatives), stream",
    responses(
        (status = 200, description = "`text_completion`, or a `text/event-stream` ending with `data: [DONE]`"),
        (status = 400, description = "Invalid request (OpenAI error envelope naming the field)"),
        (status = 404, description = "Unknown model"),
        (status = 429, description = "Too many requests waiting"),
    ),
)]
pub async fn completions(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (started, mut labels) = (Instant::now(), openai_labels("completions"));
    let result = answer(&st, &headers, body, &mut labels).await;
    answered(&st, labels, started, result)
}

async fn answer(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
    labels: &mut RequestLabels,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, st.limits.max_body_bytes).await?;
    let (common, given) = parse(&bytes, st.limits.max_n)?;
    let llm = resolve_llm(st, common.model.as_deref(), headers)?;
    labels.model = llm.name.clone();
    labels.version = llm.loaded.version.to_string();
    let generator = llm.generator();
    let prompts: Vec<Vec<u32>> = blocking(move || {
        given
            .into_iter()
            .map(|p| match p {
                Prompt::Text(t) => generator.tokenize(&t, true),
                Prompt::Ids(ids) => generator
                    .detokenize(&ids)
                    .map(|_| ids)
                    .map_err(|e| ApiError::invalid(format!("prompt: {}", e.message))),
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    if prompts.iter().any(Vec::is_empty) {
        return Err(ApiError::invalid("prompt: a prompt has no tokens"));
    }
    let choices = submit(&llm, &prompts, &common, Some(DEFAULT_MAX_TOKENS))?;
    let id = request_id("cmpl");
    let lens: Vec<usize> = prompts.iter().map(Vec::len).collect();
    if common.stream {
        let encoder = TextChunks {
            id,
            llm,
            lens,
            n: common.n,
            finished: Vec::new(),
            offsets: std::collections::HashMap::new(),
            usage: common.include_usage,
            logprobs: common.top_logprobs.is_some(),
        };
        return Ok(sse(choices, Vec::new(), encoder));
    }
    let outputs = collect_all(choices).await?;
    let generator = llm.generator();
    let choices: Vec<Value> = outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            json!({
                "index": i,
                "text": o.text,
                "logprobs": common.top_logprobs.map(|_| text_logprobs(generator.as_ref(), &o.logprobs, 0)),
                "finish_reason": o.finished.reason.as_str(),
            })
        })
        .collect();
    let finished: Vec<_> = outputs.iter().map(|o| &o.finished).enumerate().collect();
    Ok(json_ok(&json!({
        "id": id,
        "object": "text_completion",
        "created": created(),
        "model": llm.name,
        "choices": choices,
        "usage": usage(&lens, &finished, common.n),
    })))
}

/// The completions API's logprobs: `{tokens, token_logprobs, top_logprobs, text_offset}`,
/// offsets counted from `offset`.
fn text_logprobs(g: &dyn TextGenerator, lps: &[TokenLogprob], mut offset: usize) -> Value {
    let mut out = json!({"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []});
    for lp in lps {
        let text = g.token_text(lp.id);
        let top: Map<String, Value> = lp.top.iter().map(|&(id, l)| (g.token_text(id), json!(l))).collect();
        out["tokens"].as_array_mut().expect("array").push(json!(text));
        out["token_logprobs"].as_array_mut().expect("array").push(json!(lp.logprob));
        out["top_logprobs"].as_array_mut().expect("array").push(Value::Object(top));
        out["text_offset"].as_array_mut().expect("array").push(json!(offset));
        offset += text.len();
    }
    out
}

/// Text completion chunks of a streamed answer.
struct TextChunks {
    id: String,
    llm: Llm,
    lens: Vec<usize>,
    n: usize,
    finished: Vec<(usize, Finished)>,
    /// Each choice's text length so far, for `text_offset`.
    offsets: std::collections::HashMap<usize, usize>,
    usage: bool,
    logprobs: bool,
}

impl Encoder for TextChunks {
    fn delta(&mut self, choice: usize, d: &Delta) -> Vec<Value> {
        if d.text.is_empty() && d.finished.is_none() && d.logprob.is_none() {
            return Vec::new();
        }
        let g = self.llm.generator();
        let offset = self.offsets.entry(choice).or_default();
        let logprobs = self.logprobs.then(|| text_logprobs(g.as_ref(), d.logprob.as_slice(), *offset));
        *offset += d.text.len();
        let finish = d.finished.as_ref().map(|f| f.reason.as_str());
        if let Some(f) = &d.finished {
            self.finished.push((choice, f.clone()));
        }
        let choices = json!([{"index": choice, "text": d.text, "logprobs": logprobs, "finish_reason": finish}]);
        let mut chunk = json!({"id": self.id, "object": "text_completion", "created": created(),
            "model": self.llm.name, "choices": choices});
        if self.usage {
            chunk["usage"] = Value::Null;
        }
        vec![chunk]
    }

    fn finish(&mut self) -> Vec<Value> {
        if !self.usage {
            return Vec::new();
        }
        let finished: Vec<_> = self.finished.iter().map(|(i, f)| (*i, f)).collect();
        vec![json!({"id": self.id, "object": "text_completion", "created": created(), "model": self.llm.name,
            "choices": [], "usage": usage(&self.lens, &finished, self.n)})]
    }
}
