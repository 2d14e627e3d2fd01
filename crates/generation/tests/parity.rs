//! The forward pass against transformers: the tiny Llama and Qwen2 models, from their Hugging
//! Face folders and their f32 GGUF files, give transformers' input ids, last-position logits
//! (within 1e-4), argmax and 24 greedy tokens; prompts run as one batch and token by token.

mod common;

use common::{log_probs, shared};
use lathe_generation::decoder::OpTimes;
use lathe_generation::sampling::argmax;
use lathe_generation::{Decoder, KvCache, LanguageModel, Message};

fn model(path: &str) -> LanguageModel {
    LanguageModel::open(&shared(path)).unwrap()
}

/// Runs `ids`: in one batch when `batched`, else one token at a time.
fn run_prompt(d: &Decoder, ids: &[u32], cache: &mut KvCache, batched: bool) -> Vec<f32> {
    if batched {
        return d.run(ids, cache, &mut OpTimes::default());
    }
    let mut logits = Vec::new();
    for &id in ids {
        logits = d.forward(id, cache);
    }
    logits
}

/// Runs every reference case (`english_only`: the two English prompts) and compares logits
/// (when `logits_tolerance` is given), argmax and the 24 greedy tokens.
fn check(model_dir: &str, file: &str, logits_tolerance: Option<f32>, english_only: bool) {
    let model_name = model_dir;
    let m = model(&format!("models/{model_dir}/{file}"));
    let d = &m.decoder;
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared(&format!("models/{model_dir}/reference-outputs.json"))).unwrap())
            .unwrap();
    let cases = reference["cases"].as_array().unwrap();
    let cases = if english_only { &cases[..2] } else { &cases[..] };
    for (n, case) in cases.iter().enumerate() {
        let ids: Vec<u32> = case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let encoded = m.tokenizer.encode_prompt(case["prompt"].as_str().unwrap()).unwrap();
        assert_eq!(encoded, ids, "{model_name} {file}: input ids of {:?}", case["prompt"]);
        let mut cache = d.new_cache();
        let mut logits = run_prompt(d, &ids, &mut cache, n % 2 == 1);
        let want = case.get("last_logits").unwrap_or(&case["last_logits_first16"]).as_array().unwrap();
        for (i, w) in want.iter().enumerate().filter(|_| logits_tolerance.is_some()) {
            let (w, tolerance) = (w.as_f64().unwrap() as f32, logits_tolerance.unwrap_or_default());
            assert!(
                (logits[i] - w).abs() <= tolerance,
                "{model_name} {file} logit {i}: {} vs transformers {w}",
                logits[i]
            );
        }
        assert_eq!(argmax(&logits) as u64, case["last_logits_argmax"].as_u64().unwrap(), "{model_name} {file}");
        let mut greedy = Vec::new();
        for _ in 0..24 {
            let next = argmax(&logits);
            greedy.push(next as u64);
            logits = d.forward(next, &mut cache);
        }
        let want: Vec<u64> =
            case["greedy_24_token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(greedy, want, "{model_name} {file}: greedy tokens of {:?}", case["prompt"]);
    }
}

#[test]
fn tiny_llama_hf_folder_matches_transformers() {
    check("tiny-llama-random", "", Some(1e-4), false);
}

#[test]
fn tiny_qwen2_hf_folder_matches_transformers() {
    check("tiny-qwen2-random", "", Some(1e-4), false);
}

#[test]
fn hf_folders_render_the_chat_template_as_transformers() {
    for name in ["tiny-llama-random", "tiny-qwen2-random"] {
        let m = model(&format!("models/{name}"));
        let reference: serde_json::Value =
            serde_json::from_slice(&std::fs::read(shared(&format!("models/{name}/reference-outputs.json"))).unwrap())
                .unwrap();
        let case = &reference["chat_template_case"];
        let messages: Vec<Message> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let rendered = m.template.as_ref().unwrap().render(&messages, true).unwrap();
        assert_eq!(rendered, case["rendered"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn tiny_llama_f32_gguf_matches_transformers() {
    check("tiny-llama-random", "model-f32.gguf", Some(1e-4), false);
}

#[test]
fn tiny_llama_q8_0_gguf_keeps_the_greedy_tokens() {
    check("tiny-llama-random", "model-q8_0.gguf", None, true);
}

#[test]
fn tiny_qwen2_q8_0_gguf_keeps_the_greedy_tokens() {
    check("tiny-qwen2-random", "model-q8_0.gguf", None, true);
}

#[test]
fn tiny_qwen2_f32_gguf_matches_transformers() {
    check("tiny-qwen2-random", "model-f32.gguf", Some(1e-4), false);
}

#[test]
fn every_gguf_type_of_tiny_llama_256_generates_llama_cpp_tokens() {
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared("models/tiny-llama-256/reference-llamacpp.json")).unwrap())
            .unwrap();
    let models = reference["models"].as_object().unwrap();
    assert_eq!(models.len(), 10, "one reference per GGUF type");
    for (file, cases) in models {
        let m = model(&format!("models/tiny-llama-256/{file}"));
        let d = &m.decoder;
        for (n, case) in cases.as_array().unwrap().iter().enumerate() {
            let ids: Vec<u32> =
                case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let mut cache = d.new_cache();
            let mut logits = run_prompt(d, &ids, &mut cache, n % 2 == 1);
            for (step, want) in case["steps"].as_array().unwrap().iter().enumerate() {
                let chosen = argmax(&logits) as usize;
                assert_eq!(chosen as u64, want["id"].as_u64().unwrap(), "{file} {:?} step {step}", case["prompt"]);
                let (ours, theirs) = (log_probs(&logits)[chosen], want["logprob"].as_f64().unwrap());
                assert!((ours - theirs).abs() <= 0.05, "{file} step {step}: log-prob {ours} vs llama.cpp {theirs}");
                logits = d.forward(chosen as u32, &mut cache);
            }
        }
    }
}

/// The tiny Llama folder with its weights converted to `dtype` (f16 or bf16) in `dir`.
fn half_precision_copy(dir: &std::path::Path, dtype: safetensors::Dtype) {
    let source = shared("models/tiny-llama-random");
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja"]
    {
        std::fs::copy(source.join(f), dir.join(f)).unwrap();
    }
    let bytes = std::fs::read(source.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let converted: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()));
            let data: Vec<u8> = match dtype {
                safetensors::Dtype::F16 => values.flat_map(|v| half::f16::from_f32(v).to_le_bytes()).collect(),
                _ => values.flat_map(|v| half::bf16::from_f32(v).to_le_bytes()).collect(),
            };
            (name, view.shape().to_vec(), data)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = converted
        .iter()
        .map(|(n, shape, data)| (n.clone(), safetensors::tensor::TensorView::new(dtype, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

#[test]
fn f16_and_bf16_safetensors_stay_close_to_transformers_f32() {
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared("models/tiny-llama-random/reference-outputs.json")).unwrap())
            .unwrap();
    for (dtype, tolerance) in [(safetensors::Dtype::F16, 0.01), (safetensors::Dtype::BF16, 0.1)] {
        let dir = tempfile::tempdir().unwrap();
        half_precision_copy(dir.path(), dtype);
        let m = LanguageModel::open(dir.path()).unwrap();
        assert_eq!(m.facts.quantization, format!("{dtype:?}"));
        for case in reference["cases"].as_array().unwrap() {
            let ids: Vec<u32> =
                case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let logits = run_prompt(&m.decoder, &ids, &mut m.decoder.new_cache(), true);
            for (i, w) in case["last_logits_first16"].as_array().unwrap().iter().enumerate() {
                let w = w.as_f64().unwrap() as f32;
                assert!((logits[i] - w).abs() <= tolerance, "{dtype:?} logit {i}: {} vs transformers {w}", logits[i]);
            }
        }
    }
}
