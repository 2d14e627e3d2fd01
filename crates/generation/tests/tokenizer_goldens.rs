//! llama.cpp's tokenizer goldens (models/gguf-vocab-fixtures): every test text of each
//! vocabulary-only GGUF file tokenizes to llama.cpp's ids (no BOS, special parsing off).

mod common;

use std::path::PathBuf;

use lathe_generation::{GgufFile, TextTokenizer};

fn fixtures() -> PathBuf {
    common::shared("models/gguf-vocab-fixtures")
}

/// Test texts and their ids: `.inp` texts end with `\n__ggml_vocab_test__\n`, `.out` has a
/// line of space-separated ids per text.
fn goldens(name: &str) -> Vec<(String, Vec<u32>)> {
    let dir = fixtures();
    let inp = std::fs::read_to_string(dir.join(format!("{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(dir.join(format!("{name}.gguf.out"))).unwrap();
    let texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let texts = &texts[..texts.len() - 1];
    let ids: Vec<Vec<u32>> = out.lines().map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect()).collect();
    assert_eq!(texts.len(), ids.len(), "{name}: texts and id lines");
    texts.iter().map(|t| t.to_string()).zip(ids).collect()
}

fn check(name: &str) {
    let file = GgufFile::open(&fixtures().join(format!("{name}.gguf"))).unwrap();
    let tokenizer = TextTokenizer::from_gguf(&file).unwrap();
    let cases = goldens(name);
    assert!(cases.len() >= 40, "{name}: {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| {
            let got = tokenizer.encode(text, false).unwrap();
            (&got != want).then(|| format!("{text:?}: got {got:?}, llama.cpp {want:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{name}: {} of {} differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    // Decoding gives the text back (SentencePiece adds the leading space it prefixed).
    for (text, ids) in &cases {
        let decoded = tokenizer.decode(ids);
        let decoded =
            if name.contains("spm") { decoded.strip_prefix(' ').unwrap_or(&decoded).to_string() } else { decoded };
        assert_eq!(&decoded, text, "{name}: decoding {ids:?}");
    }
}

#[test]
fn gpt2_goldens() {
    check("ggml-vocab-gpt-2");
}

#[test]
fn llama3_bpe_goldens() {
    check("ggml-vocab-llama-bpe");
}

#[test]
fn sentencepiece_goldens() {
    check("ggml-vocab-llama-spm");
}

#[test]
fn qwen2_goldens() {
    check("ggml-vocab-qwen2");
}

#[test]
fn smollm2_prompts_tokenize_as_llama_cpp() {
    let dir = fixtures().join("../smollm2-135m-instruct");
    let file = GgufFile::open(&dir.join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let tokenizer = TextTokenizer::from_gguf(&file).unwrap();
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference-llamacpp.json")).unwrap()).unwrap();
    let completions = reference["completions"].as_array().unwrap();
    assert_eq!(completions.len(), 5);
    for c in completions {
        let prompt = c["prompt"].as_str().unwrap();
        let want: Vec<u32> =
            c["prompt_token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(tokenizer.encode(prompt, true).unwrap(), want, "{prompt:?}");
    }
    // Control tokens are split out only when parsing specials.
    assert_eq!(tokenizer.encode("<|im_start|>user", true).unwrap()[0], 1);
    assert!(tokenizer.encode("<|im_start|>user", false).unwrap().len() > 2);
}
