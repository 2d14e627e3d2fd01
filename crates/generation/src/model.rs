//! A language model ready to generate: decoder, tokenizer, chat template, end-of-generation
//! tokens and sampling defaults, opened from a GGUF file or a Hugging Face folder.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

use crate::chat::{ChatTemplate, TemplateError};
use crate::config::DecoderConfig;
use crate::decoder::Decoder;
use crate::gguf::{GgufError, GgufFile};
use crate::hf::{self, HfError, SafetensorsFolder};
use crate::tokenizer::{TextTokenizer, TokenType, TokenizerError};
use crate::weights::{TensorSource, Weights, WeightsError};

/// Why a model cannot be opened; each names the file and what is wrong.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The GGUF file is unreadable, truncated, of an unsupported architecture or type.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The Hugging Face folder lacks a file or has an invalid one.
    #[error(transparent)]
    Hf(#[from] HfError),
    /// The vocabulary cannot be used.
    #[error("{0}")]
    Tokenizer(#[from] TokenizerError),
    /// A tensor is missing or mis-shaped.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The chat template does not compile.
    #[error("chat template: {0}")]
    Template(#[from] TemplateError),
}

/// Why a chat cannot become a prompt.
#[derive(Debug, Error)]
pub enum PromptError {
    /// The model has no chat template.
    #[error("this model has no chat template: use raw completion (lathe generate, /v1/completions)")]
    NoTemplate,
    /// The template failed on these messages.
    #[error("chat template: {0}")]
    Template(#[from] TemplateError),
    /// Tokenizing the rendered prompt failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// Sampling defaults a model ships (`generation_config.json`); `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationDefaults {
    /// Temperature (0 when the config says `do_sample: false`).
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// Top-k cut-off.
    pub top_k: Option<usize>,
    /// Min-p cut-off.
    pub min_p: Option<f32>,
    /// Repetition penalty.
    pub repetition_penalty: Option<f32>,
}

/// A model's description for manifests and listings.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFacts {
    /// `gguf` or `hf`.
    pub format: &'static str,
    /// The architecture name (`llama`, `qwen2`).
    pub architecture: String,
    /// Training context length in tokens.
    pub context_length: usize,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// The tensor type holding most of the weights' bytes (`Q4_1`, `BF16`).
    pub quantization: String,
    /// Whether a chat template is present.
    pub chat_template: bool,
    /// Parameters (values in the weight tensors).
    pub parameters: u64,
}

/// A language model ready to generate.
pub struct LanguageModel {
    /// The transformer.
    pub decoder: Decoder,
    /// Its vocabulary.
    pub tokenizer: TextTokenizer,
    /// Its chat template, when it has one.
    pub template: Option<ChatTemplate>,
    /// Tokens that end a generation (EOS, end of turn).
    pub end_of_generation: Vec<u32>,
    /// Sampling defaults it ships.
    pub defaults: GenerationDefaults,
    /// What it is.
    pub facts: ModelFacts,
}

impl LanguageModel {
    /// Opens a GGUF file, or a Hugging Face folder when `path` is a directory.
    pub fn open(path: &Path) -> Result<LanguageModel, LoadError> {
        if path.is_dir() {
            LanguageModel::open_hf(path)
        } else {
            LanguageModel::open_gguf(path)
        }
    }

    /// Opens a GGUF file: metadata, vocabulary, template and every tensor checked.
    pub fn open_gguf(path: &Path) -> Result<LanguageModel, LoadError> {
        let file = Arc::new(GgufFile::open(path)?);
        let cfg = DecoderConfig::from_gguf(&file)?;
        let weights = Weights::load(file.as_ref(), &cfg)?;
        let tokenizer = TextTokenizer::from_gguf(&file)?;
        let token = |key: &str| -> Result<Option<u32>, GgufError> { Ok(file.unsigned_opt(key)?.map(|v| v as u32)) };
        let (bos, eos) = (token("tokenizer.ggml.bos_token_id")?, token("tokenizer.ggml.eos_token_id")?);
        let text = |id: Option<u32>| id.and_then(|i| tokenizer.token_text(i)).unwrap_or("").to_string();
        let template = match file.get("tokenizer.chat_template") {
            Some(_) => Some(ChatTemplate::new(file.string("tokenizer.chat_template")?, &text(bos), &text(eos))?),
            None => None,
        };
        let mut end = vec![eos, token("tokenizer.ggml.eot_token_id")?];
        end.extend(known_end_tokens(&tokenizer).into_iter().map(Some));
        let facts = facts("gguf", file.string("general.architecture")?, &cfg, file.as_ref(), template.is_some());
        Ok(LanguageModel {
            decoder: Decoder::new(cfg, weights),
            tokenizer,
            template,
            end_of_generation: dedup(end.into_iter().flatten()),
            defaults: GenerationDefaults::default(),
            facts,
        })
    }

    /// Opens a Hugging Face folder: `config.json`, `*.safetensors`, `tokenizer.json`, the chat
    /// template (`chat_template.jinja` or `tokenizer_config.json`), `generation_config.json`.
    pub fn open_hf(dir: &Path) -> Result<LanguageModel, LoadError> {
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(HfError::Missing { dir: dir.into(), what: "config.json".into() }.into());
        }
        let config = hf::read_json(&config_path)?;
        let cfg = hf::decoder_config(&config_path, &config)?;
        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            let what = "tokenizer.json (the tokenizer; folders with only tokenizer.model are not supported)";
            return Err(HfError::Missing { dir: dir.into(), what: what.into() }.into());
        }
        let tokenizer = TextTokenizer::from_tokenizer_json(&tokenizer_path)?;
        let folder = SafetensorsFolder::open(dir)?;
        let weights = Weights::load(&folder, &cfg)?;
        let tokenizer_config = optional_json(&dir.join("tokenizer_config.json"))?;
        let generation = optional_json(&dir.join("generation_config.json"))?;
        let template = hf_template(dir, &tokenizer_config)?;
        let mut end: Vec<u32> = ids(&generation["eos_token_id"]);
        end.extend(ids(&config["eos_token_id"]));
        end.extend(token_name(&tokenizer_config["eos_token"]).and_then(|t| tokenizer.token_id(&t)));
        end.extend(known_end_tokens(&tokenizer));
        let arch = config["model_type"].as_str().unwrap_or("llama").to_string();
        let facts = facts("hf", &arch, &cfg, &folder, template.is_some());
        Ok(LanguageModel {
            decoder: Decoder::new(cfg, weights),
            tokenizer,
            template,
            end_of_generation: dedup(end.into_iter()),
            defaults: hf_defaults(&generation),
            facts,
        })
    }
}

impl LanguageModel {
    /// The token ids of a chat: the template rendered with the generation prompt and
    /// tokenized with special tokens parsed. A Hugging Face folder's template writes any BOS
    /// itself (transformers' `apply_chat_template(…, add_generation_prompt=True,
    /// tokenize=True)`); a GGUF vocabulary that asks for BOS gets one in front unless the
    /// template already wrote it (llama.cpp's server).
    pub fn chat_prompt(&self, messages: &[crate::chat::Message]) -> Result<Vec<u32>, PromptError> {
        let template = self.template.as_ref().ok_or(PromptError::NoTemplate)?;
        let text = template.render(messages, true)?;
        let mut ids = self.tokenizer.encode(&text, true)?;
        if let Some(bos) = self.tokenizer.bos() {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }
}

fn dedup(ids: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    ids.for_each(|id| {
        if !out.contains(&id) {
            out.push(id)
        }
    });
    out
}

/// Control tokens that end a turn by their text, as llama.cpp's `llama_vocab::load` finds them.
fn known_end_tokens(t: &TextTokenizer) -> Vec<u32> {
    const END: [&str; 7] =
        ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "</s>"];
    END.iter()
        .filter_map(|text| t.token_id(text))
        .filter(|&id| matches!(t.token_type(id), Some(TokenType::Control | TokenType::UserDefined)))
        .collect()
}

fn facts(
    format: &'static str,
    arch: &str,
    cfg: &DecoderConfig,
    source: &dyn TensorSource,
    template: bool,
) -> ModelFacts {
    let mut bytes: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut parameters = 0u64;
    let mut names = vec!["token_embd.weight".to_string(), "output.weight".into(), "output_norm.weight".into()];
    for i in 0..cfg.layers {
        for t in ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"] {
            names.push(format!("blk.{i}.{t}.weight"));
        }
        for t in ["attn_norm.weight", "ffn_norm.weight", "attn_q.bias", "attn_k.bias", "attn_v.bias"] {
            names.push(format!("blk.{i}.{t}"));
        }
    }
    for data in names.iter().filter_map(|n| source.tensor_data(n)) {
        *bytes.entry(data.ty.name()).or_default() += data.len;
        parameters += data.dims.iter().product::<usize>() as u64;
    }
    let quantization = bytes.iter().max_by_key(|(_, b)| **b).map_or("F32", |(t, _)| t).to_string();
    ModelFacts {
        format,
        architecture: arch.to_string(),
        context_length: cfg.context_length,
        vocab_size: cfg.vocab_size,
        quantization,
        chat_template: template,
        parameters,
    }
}

fn optional_json(path: &Path) -> Result<Value, HfError> {
    if path.is_file() {
        hf::read_json(path)
    } else {
        Ok(Value::Null)
    }
}

/// Token ids from an integer or a list of integers.
fn ids(v: &Value) -> Vec<u32> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| n as u32).into_iter().collect(),
        Value::Array(a) => a.iter().filter_map(Value::as_u64).map(|n| n as u32).collect(),
        _ => Vec::new(),
    }
}

/// A special token's text: a string or `{"content": …}`.
fn token_name(v: &Value) -> Option<String> {
    v.as_str().or_else(|| v["content"].as_str()).map(str::to_string)
}

/// The template transformers would use: `chat_template.jinja`, else `tokenizer_config.json`'s
/// `chat_template` (a string, or a list whose `default` entry is taken).
fn hf_template(dir: &Path, tokenizer_config: &Value) -> Result<Option<ChatTemplate>, LoadError> {
    let jinja = dir.join("chat_template.jinja");
    let source = if jinja.is_file() {
        Some(std::fs::read_to_string(&jinja).map_err(|source| HfError::Io { path: jinja, source })?)
    } else {
        match &tokenizer_config["chat_template"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(list) => list
                .iter()
                .find(|t| t["name"] == "default")
                .or(list.first())
                .and_then(|t| t["template"].as_str())
                .map(str::to_string),
            _ => None,
        }
    };
    let Some(source) = source else { return Ok(None) };
    let bos = token_name(&tokenizer_config["bos_token"]).unwrap_or_default();
    let eos = token_name(&tokenizer_config["eos_token"]).unwrap_or_default();
    Ok(Some(ChatTemplate::new(&source, &bos, &eos)?))
}

/// Defaults of a `generation_config.json` as transformers reads it: greedy unless
/// `do_sample` is true (no file: nothing, so OpenAI's defaults apply).
fn hf_defaults(g: &Value) -> GenerationDefaults {
    if g.is_null() {
        return GenerationDefaults::default();
    }
    let f = |k: &str| g[k].as_f64().map(|v| v as f32);
    let greedy = g["do_sample"] != Value::Bool(true);
    GenerationDefaults {
        temperature: if greedy { Some(0.0) } else { f("temperature") },
        top_p: f("top_p"),
        top_k: g["top_k"].as_u64().map(|v| v as usize),
        min_p: f("min_p"),
        repetition_penalty: f("repetition_penalty"),
    }
}
