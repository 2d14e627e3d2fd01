//! Hugging Face model folders: `config.json` (both the `rope_theta`/`rope_scaling` form and
//! transformers 5's `rope_parameters`), weights in one or more `*.safetensors` files (f32, f16,
//! bf16; memory-mapped, never copied), read under llama.cpp's tensor names so the decoder
//! needs one code path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lathe_kernels::mmap::Mapped;
use lathe_kernels::quant::GgmlType;
use serde_json::Value;
use thiserror::Error;

use crate::config::{Architecture, DecoderConfig, RopeStyle};
use crate::weights::{TensorData, TensorSource};

/// Why a Hugging Face folder cannot be read.
#[derive(Debug, Error)]
pub enum HfError {
    /// A file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A required file is absent.
    #[error("{dir}: no {what}")]
    Missing {
        /// The folder.
        dir: PathBuf,
        /// What is missing.
        what: String,
    },
    /// A file is not what its name says (bad JSON, bad safetensors header, unsupported dtype).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A `config.json` key is missing, mistyped or unsupported.
    #[error("{path}: {key}: {problem}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// Reads and parses a JSON file.
pub(crate) fn read_json(path: &Path) -> Result<Value, HfError> {
    let text = std::fs::read_to_string(path).map_err(|source| HfError::Io { path: path.into(), source })?;
    serde_json::from_str(&text).map_err(|e| HfError::Invalid { path: path.into(), message: format!("not JSON: {e}") })
}

/// The safetensors files of a folder, every tensor by its Hugging Face name.
pub struct SafetensorsFolder {
    dir: PathBuf,
    tensors: HashMap<String, TensorData>,
}

impl SafetensorsFolder {
    /// Maps the weight files of `dir` (see [`weight_files`]) and checks each header against
    /// its file.
    pub fn open(dir: &Path) -> Result<SafetensorsFolder, HfError> {
        let mut tensors = HashMap::new();
        for path in weight_files(dir)? {
            read_shard(&path, &mut tensors)?;
        }
        Ok(SafetensorsFolder { dir: dir.into(), tensors })
    }
}

/// The safetensors files holding a folder's weights: those `model.safetensors.index.json`
/// maps tensors to when it exists (folders may also carry other checkpoints, such as
/// Mistral's `consolidated.safetensors`), else every `*.safetensors` file.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, HfError> {
    let index = dir.join("model.safetensors.index.json");
    let mut files: Vec<PathBuf> = if index.is_file() {
        let json = read_json(&index)?;
        let map = json["weight_map"].as_object().ok_or_else(|| HfError::Invalid {
            path: index.clone(),
            message: "weight_map: expected an object of tensor names to file names".into(),
        })?;
        let mut names: Vec<&str> = map.values().filter_map(Value::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names.iter().map(|n| dir.join(n)).collect()
    } else {
        let entries = std::fs::read_dir(dir).map_err(|source| HfError::Io { path: dir.into(), source })?;
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect()
    };
    files.sort();
    if files.is_empty() {
        return Err(HfError::Missing { dir: dir.into(), what: "*.safetensors weights".into() });
    }
    Ok(files)
}

fn read_shard(path: &Path, tensors: &mut HashMap<String, TensorData>) -> Result<(), HfError> {
    let invalid = |message: String| HfError::Invalid { path: path.into(), message };
    let map = Arc::new(Mapped::open_immutable(path).map_err(|source| HfError::Io { path: path.into(), source })?);
    let (header, metadata) =
        safetensors::SafeTensors::read_metadata(&map).map_err(|e| invalid(format!("not a safetensors file: {e}")))?;
    for (name, info) in metadata.tensors() {
        let ty = match info.dtype {
            safetensors::Dtype::F32 => GgmlType::F32,
            safetensors::Dtype::F16 => GgmlType::F16,
            safetensors::Dtype::BF16 => GgmlType::BF16,
            other => return Err(invalid(format!("tensor {name:?} has dtype {other:?}; supported: F32, F16, BF16"))),
        };
        let (start, end) = (8 + header + info.data_offsets.0, 8 + header + info.data_offsets.1);
        let dims: Vec<usize> = info.shape.iter().rev().copied().collect();
        let values: usize = dims.iter().product();
        if end > map.len() || ty.bytes_for(values) != Some(end - start) {
            return Err(invalid(format!("tensor {name:?}: bytes {start}..{end} do not hold {values} values")));
        }
        tensors.insert(name, TensorData { map: map.clone(), start, len: end - start, ty, dims });
    }
    Ok(())
}

/// llama.cpp's tensor name → Hugging Face's (`llama-arch.cpp` ↔ `modeling_llama.py`).
fn hf_name(name: &str) -> Option<String> {
    let global = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(g) = global {
        return Some(g.into());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let (part, kind) = part.rsplit_once('.')?;
    let hf = match part {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

impl TensorSource for SafetensorsFolder {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn tensor_data(&self, name: &str) -> Option<TensorData> {
        self.tensors.get(&hf_name(name)?).cloned()
    }
}

/// Typed access to `config.json`, errors naming the key.
struct Config<'a> {
    path: &'a Path,
    json: &'a Value,
}

impl Config<'_> {
    fn error(&self, key: &str, problem: impl Into<String>) -> HfError {
        HfError::Config { path: self.path.into(), key: key.into(), problem: problem.into() }
    }

    fn usize_opt(&self, key: &str) -> Result<Option<usize>, HfError> {
        match self.json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(|v| Some(v as usize)).ok_or_else(|| self.error(key, "expected an integer")),
        }
    }

    fn usize(&self, key: &str) -> Result<usize, HfError> {
        self.usize_opt(key)?.ok_or_else(|| self.error(key, "missing"))
    }

    fn float_in(&self, obj: Option<&Value>, key: &str) -> Result<Option<f64>, HfError> {
        match obj.and_then(|o| o.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| self.error(key, "expected a number")),
        }
    }
}

/// The decoder hyperparameters of a `config.json`.
pub fn decoder_config(path: &Path, json: &Value) -> Result<DecoderConfig, HfError> {
    let c = Config { path, json };
    let name = json["architectures"].get(0).and_then(Value::as_str).or(json["model_type"].as_str()).unwrap_or("");
    let architecture = match name {
        "LlamaForCausalLM" | "MistralForCausalLM" | "llama" | "mistral" => Architecture::Llama,
        "Qwen2ForCausalLM" | "qwen2" => Architecture::Qwen2,
        other => {
            let supported = "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM";
            return Err(c.error("architectures", format!("unsupported architecture {other:?}; supported: {supported}")));
        }
    };
    let hidden = c.usize("hidden_size")?;
    let heads = c.usize("num_attention_heads")?;
    let head_dim = c.usize_opt("head_dim")?.unwrap_or(hidden / heads.max(1));
    let rope = rope_of(&c, head_dim)?;
    let cfg = DecoderConfig {
        architecture,
        vocab_size: c.usize("vocab_size")?,
        hidden,
        layers: c.usize("num_hidden_layers")?,
        ffn: c.usize("intermediate_size")?,
        heads,
        kv_heads: c.usize_opt("num_key_value_heads")?.unwrap_or(heads),
        head_dim,
        rope_dims: rope.dims,
        rope_theta: rope.theta as f32,
        rope_freq_scale: rope.freq_scale,
        rope_style: RopeStyle::Neox,
        rope_freq_factors: rope.factors,
        rms_eps: c.float_in(Some(json), "rms_norm_eps")?.unwrap_or(1e-6) as f32,
        context_length: c.usize_opt("max_position_embeddings")?.unwrap_or(4096),
    };
    cfg.validate().map_err(|problem| c.error("hyperparameters", problem))?;
    Ok(cfg)
}

struct Rope {
    dims: usize,
    theta: f64,
    freq_scale: f32,
    factors: Option<Vec<f32>>,
}

/// RoPE from `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling`.
fn rope_of(c: &Config, head_dim: usize) -> Result<Rope, HfError> {
    let params = c.json.get("rope_parameters").filter(|v| v.is_object());
    let scaling = params.or(c.json.get("rope_scaling").filter(|v| v.is_object()));
    let theta = c.float_in(params, "rope_theta")?.or(c.float_in(Some(c.json), "rope_theta")?).unwrap_or(10_000.0);
    let partial = c.float_in(params, "partial_rotary_factor")?.or(c.float_in(Some(c.json), "partial_rotary_factor")?);
    let dims = partial.map_or(head_dim, |p| (head_dim as f64 * p) as usize);
    let kind = scaling.and_then(|s| s.get("rope_type").or(s.get("type"))).and_then(Value::as_str).unwrap_or("default");
    let factor = c.float_in(scaling, "factor")?.unwrap_or(1.0);
    let mut rope = Rope { dims, theta, freq_scale: 1.0, factors: None };
    match kind {
        "default" => {}
        "linear" => rope.freq_scale = (1.0 / factor) as f32,
        "llama3" => {
            let low = c.float_in(scaling, "low_freq_factor")?.unwrap_or(1.0);
            let high = c.float_in(scaling, "high_freq_factor")?.unwrap_or(4.0);
            let original = c.float_in(scaling, "original_max_position_embeddings")?.unwrap_or(8192.0);
            rope.factors = Some(llama3_factors(dims, theta, factor, low, high, original));
        }
        other => {
            let problem = format!("unsupported RoPE scaling {other:?}; supported: default, linear, llama3");
            return Err(c.error("rope_type", problem));
        }
    }
    Ok(rope)
}

/// Llama 3.1's RoPE frequency divisors per pair (transformers' `_compute_llama3_parameters`;
/// llama.cpp stores the same as `rope_freqs.weight`): long wavelengths are divided by
/// `factor`, short ones kept, the band between interpolated.
pub fn llama3_factors(dims: usize, theta: f64, factor: f64, low: f64, high: f64, original: f64) -> Vec<f32> {
    (0..dims / 2)
        .map(|i| {
            let inv_freq = theta.powf(-2.0 * i as f64 / dims as f64);
            let wavelen = 2.0 * std::f64::consts::PI / inv_freq;
            if wavelen < original / high {
                1.0
            } else if wavelen > original / low {
                factor as f32
            } else {
                let smooth = (original / wavelen - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: Value) -> Result<DecoderConfig, HfError> {
        let mut json = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
            "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 176, "vocab_size": 512,
        });
        json.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        decoder_config(Path::new("config.json"), &json)
    }

    #[test]
    fn both_rope_forms_give_the_same_configuration() {
        let old =
            config(serde_json::json!({ "rope_theta": 500000.0, "rope_scaling": { "type": "linear", "factor": 2.0 } }));
        let new = config(serde_json::json!({
            "rope_parameters": { "rope_theta": 500000.0, "rope_type": "linear", "factor": 2.0 }
        }));
        let (old, new) = (old.unwrap(), new.unwrap());
        assert_eq!(old, new);
        assert_eq!((old.rope_theta, old.rope_freq_scale, old.head_dim, old.kv_heads), (500000.0, 0.5, 16, 2));
        assert_eq!(old.rope_style, RopeStyle::Neox, "Hugging Face weights are not permuted for NORM RoPE");
    }

    #[test]
    fn llama3_scaling_keeps_short_wavelengths_and_divides_long_ones() {
        // Llama 3.1: theta 500000, factor 8, low 1, high 4, original context 8192, head 128.
        let f = llama3_factors(128, 500000.0, 8.0, 1.0, 4.0, 8192.0);
        assert_eq!(f.len(), 64);
        assert_eq!(f[0], 1.0);
        assert_eq!(f[63], 8.0);
        assert!(f.windows(2).all(|w| w[0] <= w[1]), "divisors grow with the wavelength: {f:?}");
        assert!(f.iter().any(|&x| x > 1.0 && x < 8.0), "a band in between is interpolated");
        let cfg = config(serde_json::json!({ "rope_scaling": {
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192
        }}));
        assert_eq!(cfg.unwrap().rope_freq_factors.map(|f| f.len()), Some(8));
    }

    #[test]
    fn unsupported_settings_are_named() {
        let e = config(serde_json::json!({ "architectures": ["GPT2LMHeadModel"] })).unwrap_err().to_string();
        assert!(e.contains("architectures") && e.contains("GPT2LMHeadModel"), "{e}");
        let e = config(serde_json::json!({ "rope_scaling": { "rope_type": "yarn", "factor": 4.0 } })).unwrap_err();
        assert!(e.to_string().contains("unsupported RoPE scaling \"yarn\""), "{e}");
        let e = config(serde_json::json!({ "hidden_size": "64" })).unwrap_err().to_string();
        assert!(e.contains("hidden_size: expected an integer"), "{e}");
        let e = config(serde_json::json!({ "num_key_value_heads": 3 })).unwrap_err().to_string();
        assert!(e.contains("4 attention heads cannot share 3 key/value heads"), "{e}");
        let e = config(serde_json::json!({ "partial_rotary_factor": 2.0 })).unwrap_err().to_string();
        assert!(e.contains("RoPE dimensions 32 must be even and at most the head width 16"), "{e}");
        let e = config(serde_json::json!({ "num_attention_heads": 0 })).unwrap_err().to_string();
        assert!(e.contains("heads is 0"), "{e}");
        let huge = 1u64 << 40;
        let e = config(serde_json::json!({ "num_attention_heads": huge, "num_key_value_heads": huge, "head_dim": 2 }));
        assert!(e.unwrap_err().to_string().contains("expected 1 to"));
    }
}
