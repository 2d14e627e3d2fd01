//! `POST /v1/chat/completions`: OpenAI's chat completions, whole or streamed.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use lathe_engine::generation::{ChatMessage, TextGenerator, TokenLogprob};
use lathe_runtime::generation::Delta;
use lathe_types::ApiError;
use serde_json::{json, Map, Value};

use super::request::{boolean, check_fields, Common};
use super::stream::{sse, Encoder};
use super::{answered, blocking, collect_all, created, openai_labels, request_id, resolve_llm, submit, usage, Llm};
use crate::body::{json_ok, read_body};
use crate::metrics::RequestLabels;
use crate::state::AppState;

/// Fields of chat completions besides the shared ones.
const OWN: [&str; 5] = ["messages", "top_logprobs", "chat_template_kwargs", "add_generation_prompt", "metadata"];

/// Roles a message may have (`developer` is rendered as `system`, as OpenAI defines it).
const ROLES: [&str; 4] = ["system", "developer", "user", "assistant"];

/// A message's text: a string, or text parts joined by newlines (vLLM).
fn content(v: Option<&Value>, at: &str) -> Result<String, ApiError> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) | None => Ok(String::new()),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| match (part.get("type").and_then(Value::as_str), part.get("text")) {
                (Some("text"), Some(Value::String(t))) => Ok(t.clone()),
                (Some("text"), _) => Err(ApiError::invalid(format!("{at}.content[{j}].text: expected a string"))),
                (other, _) => Err(ApiError::invalid(format!(
                    "{at}.content[{j}].type: only text parts are supported, got {}",
                    other.map_or("none".to_string(), |t| format!("{t:?}"))
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join("\n")),
        Some(_) => Err(ApiError::invalid(format!("{at}.content: expected a string or a list of text parts"))),
    }
}

/// `messages`: a non-empty list of `{role, content}`.
pub fn parse_messages(obj: &Map<String, Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let list = match obj.get("messages") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) => return Err(ApiError::invalid("messages: expected at least one message")),
        _ => return Err(ApiError::invalid("messages: expected a list of {role, content} messages")),
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let at = format!("messages[{i}]");
            let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
            if !ROLES.contains(&role) {
                return Err(ApiError::invalid(format!(
                    "{at}.role: expected system, developer, user or assistant, got {:?}",
                    m.get("role").unwrap_or(&Value::Null)
                )));
            }
            let role = if role == "developer" { "system" } else { role };
            Ok(ChatMessage::new(role, &content(m.get("content"), &at)?))
        })
        .collect()
}

/// The parsed request.
struct ChatRequest {
    common: Common,
    messages: Vec<ChatMessage>,
}

fn parse(bytes: &[u8], max_n: usize) -> Result<ChatRequest, ApiError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))?;
    let Value::Object(obj) = value else { return Err(ApiError::invalid("expected a JSON object")) };
    check_fields(&obj, &OWN)?;
    let top = match (boolean(&obj, "logprobs")?, obj.get("top_logprobs").filter(|v| !v.is_null())) {
        (Some(true), None) => Some(0),
        (Some(true), Some(t)) => {
            let expected = || ApiError::invalid("top_logprobs: expected an integer from 0 to 20");
            Some(t.as_u64().ok_or_else(expected)? as usize)
        }
        (_, Some(_)) => return Err(ApiError::invalid("top_logprobs: only allowed with logprobs: true")),
        _ => None,
    };
    Ok(ChatRequest { common: Common::parse(&obj, max_n, top)?, messages: parse_messages(&obj)? })
}

/// `POST /v1/chat/completions`.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    summary = "OpenAI chat completions: messages (system, developer, user, assistant; string or text parts), \
        max_tokens / max_completion_tokens, temperature, top_p, top_k, min_p, seed, penalties, logit_bias, stop, \
        stop_token_ids, n, logprobs, top_logprobs, stream, stream_options.include_usage",
    responses(
        (status = 200, description = "`chat.completion`, or `text/event-stream` of `chat.completion.chunk` events \
            ending with `data: [DONE]`"),
        (status = 400, description = "Invalid request (OpenAI error envelope naming the field)"),
        (status = 404, description = "Unknown model"),
        (status = 429, description = "Too many requests waiting"),
    ),
)]
pub async fn completions(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (started, mut labels) = (Instant::now(), openai_labels("chat_completions"));
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
    let req = parse(&bytes, st.limits.max_n)?;
    let llm = resolve_llm(st, req.common.model.as_deref(), headers)?;
    labels.model = llm.name.clone();
    labels.version = llm.loaded.version.to_string();
    let generator = llm.generator();
    let messages = req.messages;
    let prompt = blocking(move || generator.chat_prompt(&messages)).await??;
    let choices = submit(&llm, std::slice::from_ref(&prompt), &req.common, None)?;
    let id = request_id("chatcmpl");
    if req.common.stream {
        let encoder = ChatChunks {
            id,
            llm,
            prompt_len: prompt.len(),
            n: req.common.n,
            finished: Vec::new(),
            usage: req.common.include_usage,
        };
        let role = |i| {
            json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null,
            "finish_reason": null}])
        };
        let first: Vec<Value> = (0..choices.len()).map(|i| encoder.chunk(role(i))).collect();
        return Ok(sse(choices, first, encoder));
    }
    let n = req.common.n;
    let outputs = collect_all(choices).await?;
    let generator = llm.generator();
    let choices: Vec<Value> = outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            json!({
                "index": i,
                "message": {"role": "assistant", "content": o.text},
                "logprobs": req.common.top_logprobs.map(|_| logprobs_of(generator.as_ref(), &o.logprobs)),
                "finish_reason": o.finished.reason.as_str(),
            })
        })
        .collect();
    let finished: Vec<_> = outputs.iter().map(|o| &o.finished).enumerate().collect();
    Ok(json_ok(&json!({
        "id": id,
        "object": "chat.completion",
        "created": created(),
        "model": llm.name,
        "choices": choices,
        "usage": usage(&[prompt.len()], &finished, n),
    })))
}

/// A `chat.completion.chunk` with `choices`.
fn chunk(id: &str, llm: &Llm, choices: Value) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": created(), "model": llm.name, "choices": choices})
}

/// `{token, logprob, bytes}`.
fn token_entry(g: &dyn TextGenerator, id: u32, logprob: f32) -> Value {
    let text = g.token_text(id);
    json!({"token": text, "logprob": logprob, "bytes": text.as_bytes()})
}

/// Chat's `logprobs`: `{content: [...]}`.
fn logprobs_of(g: &dyn TextGenerator, lps: &[TokenLogprob]) -> Value {
    json!({ "content": logprob_list(g, lps) })
}

/// Chat's `logprobs.content`.
pub fn logprob_list(g: &dyn TextGenerator, lps: &[TokenLogprob]) -> Vec<Value> {
    lps.iter()
        .map(|lp| {
            let mut entry = token_entry(g, lp.id, lp.logprob);
            let top: Vec<Value> = lp.top.iter().map(|&(id, l)| token_entry(g, id, l)).collect();
            entry["top_logprobs"] = Value::Array(top);
            entry
        })
        .collect()
}

/// Chat completion chunks of a streamed answer.
struct ChatChunks {
    id: String,
    llm: Llm,
    prompt_len: usize,
    n: usize,
    finished: Vec<(usize, lathe_runtime::generation::Finished)>,
    usage: bool,
}

impl ChatChunks {
    /// A chunk of this answer; with `include_usage`, every chunk carries `"usage": null`.
    fn chunk(&self, choices: Value) -> Value {
        let mut c = chunk(&self.id, &self.llm, choices);
        if self.usage {
            c["usage"] = Value::Null;
        }
        c
    }
}

impl Encoder for ChatChunks {
    fn delta(&mut self, choice: usize, d: &Delta) -> Vec<Value> {
        let mut events = Vec::new();
        let logprobs =
            d.logprob.as_ref().map(|lp| logprobs_of(self.llm.generator().as_ref(), std::slice::from_ref(lp)));
        if !d.text.is_empty() || logprobs.is_some() {
            let c =
                json!([{"index": choice, "delta": {"content": d.text}, "logprobs": logprobs, "finish_reason": null}]);
            events.push(self.chunk(c));
        }
        if let Some(f) = &d.finished {
            let c = json!([{"index": choice, "delta": {}, "logprobs": null, "finish_reason": f.reason.as_str()}]);
            events.push(self.chunk(c));
            self.finished.push((choice, f.clone()));
        }
        events
    }

    fn finish(&mut self) -> Vec<Value> {
        if !self.usage {
            return Vec::new();
        }
        let finished: Vec<_> = self.finished.iter().map(|(i, f)| (*i, f)).collect();
        let mut last = chunk(&self.id, &self.llm, json!([]));
        last["usage"] = usage(&[self.prompt_len], &finished, self.n);
        vec![last]
    }
}
