//! The fields chat and text completions share, parsed from a JSON object with errors that
//! name the field (vLLM's `protocol.py` and OpenAI's API reference for names and ranges).

use lathe_engine::generation::{GenerationParams, SamplingParams};
use lathe_types::ApiError;
use serde_json::{Map, Value};

/// Most log-probability alternatives per token (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// Fields known to OpenAI or vLLM that Lathe does not support: a 400 naming the field.
const UNSUPPORTED: [&str; 7] = ["tools", "tool_choice", "functions", "function_call", "best_of", "suffix", "echo"];

/// Fields read by [`Common::parse`], besides each API's own.
const COMMON: [&str; 22] = [
    "model",
    "n",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "stop",
    "stop_token_ids",
    "ignore_eos",
    "user",
    "response_format",
    "parallel_tool_calls",
    "logprobs",
];

/// Sampling fields as given (`None`: the model's default).
#[derive(Debug, Default)]
struct Sampling {
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<usize>,
    min_p: Option<f32>,
    seed: Option<u64>,
    repetition_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    logit_bias: Vec<(u32, f32)>,
}

/// A completion request's shared fields, checked.
#[derive(Debug)]
pub struct Common {
    /// The `model` field (`None` when absent).
    pub model: Option<String>,
    /// Choices per prompt.
    pub n: usize,
    /// Server-sent events.
    pub stream: bool,
    /// A last chunk with `usage` (`stream_options.include_usage`).
    pub include_usage: bool,
    /// `max_tokens` or `max_completion_tokens` (`None`: up to the context).
    pub max_tokens: Option<usize>,
    /// Alternatives per token for logprobs (`None`: no logprobs).
    pub top_logprobs: Option<usize>,
    sampling: Sampling,
    stop: Vec<String>,
    stop_token_ids: Vec<u32>,
    ignore_eos: bool,
}

/// A field's number, or a 400 naming it.
fn number(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| ApiError::invalid(format!("{key}: expected a number"))),
    }
}

/// A field's integer, or a 400 naming it.
fn integer(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| ApiError::invalid(format!("{key}: expected an integer"))),
    }
}

/// A field's boolean, or a 400 naming it.
pub fn boolean(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(format!("{key}: expected true or false"))),
    }
}

fn positive(obj: &Map<String, Value>, key: &str) -> Result<Option<usize>, ApiError> {
    match integer(obj, key)? {
        Some(v) if v < 1 => Err(ApiError::invalid(format!("{key}: expected a positive integer, got {v}"))),
        other => Ok(other.map(|v| v as usize)),
    }
}

/// Refuses known fields Lathe does not support, logs unknown ones (ignored, as vLLM does).
pub fn check_fields(obj: &Map<String, Value>, own: &[&str]) -> Result<(), ApiError> {
    for (key, value) in obj {
        let unset = value.is_null()
            || (key == "tools" || key == "functions") && value.as_array().is_some_and(Vec::is_empty)
            || key == "tool_choice" && value == "none"
            || key == "best_of" && value.as_u64() == Some(1)
            || key == "suffix" && value.as_str().is_some_and(str::is_empty)
            || key == "echo" && value == &Value::Bool(false);
        if UNSUPPORTED.contains(&key.as_str()) && !unset {
            return Err(ApiError::invalid(format!("{key}: not supported by this server")));
        }
        if !UNSUPPORTED.contains(&key.as_str()) && !COMMON.contains(&key.as_str()) && !own.contains(&key.as_str()) {
            tracing::debug!(field = %key, "unknown request field ignored");
        }
    }
    if let Some(format) = obj.get("response_format").filter(|v| !v.is_null()) {
        if format.get("type").and_then(Value::as_str) != Some("text") {
            return Err(ApiError::invalid("response_format: only {\"type\": \"text\"} is supported"));
        }
    }
    Ok(())
}

fn logit_bias(obj: &Map<String, Value>) -> Result<Vec<(u32, f32)>, ApiError> {
    let Some(v) = obj.get("logit_bias").filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let map = v.as_object().ok_or_else(|| ApiError::invalid("logit_bias: expected an object of token id → bias"))?;
    if map.len() > lathe_engine::generation::MAX_LOGIT_BIAS {
        let most = lathe_engine::generation::MAX_LOGIT_BIAS;
        return Err(ApiError::invalid(format!("logit_bias: {} entries, more than {most}", map.len())));
    }
    let mut seen = std::collections::HashSet::new();
    map.iter()
        .map(|(k, v)| {
            let id = k
                .parse::<u32>()
                .map_err(|_| ApiError::invalid(format!("logit_bias: key {k:?}: expected a token id")))?;
            let bias = v.as_f64().ok_or_else(|| ApiError::invalid(format!("logit_bias: {k}: expected a number")))?;
            if !seen.insert(id) {
                return Err(ApiError::invalid(format!("logit_bias: token id {id} is given twice")));
            }
            Ok((id, bias as f32))
        })
        .collect()
}

fn stop(obj: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match obj.get("stop") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| ApiError::invalid("stop: expected strings")))
            .collect(),
        Some(_) => Err(ApiError::invalid("stop: expected a string or a list of strings")),
    }
}

fn stop_token_ids(obj: &Map<String, Value>) -> Result<Vec<u32>, ApiError> {
    match obj.get("stop_token_ids") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                let id = v.as_u64().filter(|&id| id <= u32::MAX as u64);
                id.map(|id| id as u32).ok_or_else(|| ApiError::invalid("stop_token_ids: expected token ids"))
            })
            .collect(),
        Some(_) => Err(ApiError::invalid("stop_token_ids: expected a list of token ids")),
    }
}

impl Common {
    /// Parses the shared fields; `top_logprobs` is each API's own reading of `logprobs`.
    pub fn parse(obj: &Map<String, Value>, max_n: usize, top_logprobs: Option<usize>) -> Result<Common, ApiError> {
        let model = match obj.get("model") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ApiError::invalid("model: expected the model's name")),
        };
        let n = positive(obj, "n")?.unwrap_or(1);
        if n > max_n {
            return Err(ApiError::invalid(format!("n: expected 1 to {max_n} (--max-n), got {n}")));
        }
        let stream = boolean(obj, "stream")?.unwrap_or(false);
        let include_usage = match obj.get("stream_options").filter(|v| !v.is_null()) {
            None => false,
            Some(_) if !stream => return Err(ApiError::invalid("stream_options: only allowed with stream: true")),
            Some(Value::Object(o)) => boolean(o, "include_usage")?.unwrap_or(false),
            Some(_) => return Err(ApiError::invalid("stream_options: expected an object")),
        };
        let max_tokens = match positive(obj, "max_completion_tokens")? {
            Some(m) => Some(m),
            None => positive(obj, "max_tokens")?,
        };
        if top_logprobs.is_some_and(|t| t > MAX_TOP_LOGPROBS) {
            return Err(ApiError::invalid(format!("top_logprobs: expected 0 to {MAX_TOP_LOGPROBS}")));
        }
        let f = |key| -> Result<Option<f32>, ApiError> { Ok(number(obj, key)?.map(|v| v as f32)) };
        let top_k = match integer(obj, "top_k")? {
            Some(k) if k < -1 => return Err(ApiError::invalid("top_k: expected -1 (all), 0 (all) or more")),
            Some(k) => Some(k.max(0) as usize),
            None => None,
        };
        let sampling = Sampling {
            temperature: f("temperature")?,
            top_p: f("top_p")?,
            top_k,
            min_p: f("min_p")?,
            seed: integer(obj, "seed")?.map(|s| s as u64),
            repetition_penalty: f("repetition_penalty")?,
            presence_penalty: f("presence_penalty")?,
            frequency_penalty: f("frequency_penalty")?,
            logit_bias: logit_bias(obj)?,
        };
        Ok(Common {
            model,
            n,
            stream,
            include_usage,
            max_tokens,
            top_logprobs,
            sampling,
            stop: stop(obj)?,
            stop_token_ids: stop_token_ids(obj)?,
            ignore_eos: boolean(obj, "ignore_eos")?.unwrap_or(false),
        })
    }

    /// The generation parameters of choice `choice` over the model's `defaults`, for up to
    /// `max_tokens` tokens (seeds differ per choice so that choices differ).
    pub fn params(&self, defaults: &SamplingParams, max_tokens: usize, choice: usize) -> GenerationParams {
        let s = &self.sampling;
        let sampling = SamplingParams {
            temperature: s.temperature.unwrap_or(defaults.temperature),
            top_p: s.top_p.unwrap_or(defaults.top_p),
            top_k: s.top_k.unwrap_or(defaults.top_k),
            min_p: s.min_p.unwrap_or(defaults.min_p),
            seed: s.seed.map(|seed| seed.wrapping_add(choice as u64)),
            repetition_penalty: s.repetition_penalty.unwrap_or(defaults.repetition_penalty),
            presence_penalty: s.presence_penalty.unwrap_or(defaults.presence_penalty),
            frequency_penalty: s.frequency_penalty.unwrap_or(defaults.frequency_penalty),
            logit_bias: s.logit_bias.clone(),
        };
        GenerationParams {
            sampling,
            max_tokens,
            stop: self.stop.clone(),
            stop_token_ids: self.stop_token_ids.clone(),
            top_logprobs: self.top_logprobs,
            ignore_eos: self.ignore_eos,
        }
    }
}
