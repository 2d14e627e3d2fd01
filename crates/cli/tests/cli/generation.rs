//! Language models from the command line: import from GGUF and Hugging Face folders, raw
//! generation, one-shot and interactive chat, and every bad input refused before publishing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use crate::common::*;

fn smollm2() -> PathBuf {
    shared().join("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn import_smollm2(cwd: &Path) {
    let out = last_json(&ok(&lathe(cwd, &["import", "gguf", smollm2().to_str().unwrap(), "--name", "smol", "--json"])));
    assert_eq!(out["version"], 1);
}

fn json_run(cwd: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    last_json(&ok(&lathe(cwd, &all)))
}

#[test]
fn a_gguf_model_imports_generates_and_chats() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    import_smollm2(cwd);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("repo/smol/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["kind"], "causal-lm");
    let spec = &manifest["spec"];
    assert_eq!((spec["format"].as_str(), spec["architecture"].as_str()), (Some("gguf"), Some("llama")));
    assert_eq!((spec["context_length"].as_u64(), spec["vocab_size"].as_u64()), (Some(8192), Some(49152)));
    assert_eq!((spec["quantization"].as_str(), spec["chat_template"].as_bool()), (Some("Q4_1"), Some(true)));
    assert_eq!(manifest["files"]["model.gguf"]["bytes"].as_u64(), Some(std::fs::metadata(smollm2()).unwrap().len()));

    let g = json_run(
        cwd,
        &["generate", "smol", "--prompt", "The capital of France is", "--temperature", "0", "--max-tokens", "8"],
    );
    assert!(g["text"].as_str().unwrap().starts_with(" Paris."), "{g}");
    assert_eq!(g["token_ids"][0], 7042);
    assert_eq!((g["usage"]["prompt_tokens"].as_u64(), g["usage"]["completion_tokens"].as_u64()), (Some(5), Some(8)));
    assert_eq!(g["finish_reason"], "length");
    assert!(g["timings"]["predicted_per_second"].as_f64().unwrap() > 0.0, "{g}");

    let stopped = json_run(
        cwd,
        &["generate", "smol", "--prompt", "The capital of France is", "--temperature", "0", "--stop", "."],
    );
    assert_eq!((stopped["text"].as_str(), stopped["finish_reason"].as_str()), (Some(" Paris"), Some("stop")));

    let sampled = |seed: &str| {
        let args = ["generate", "smol", "--prompt", "Once upon a time", "--temperature", "1.0", "--seed", seed];
        json_run(cwd, &[&args[..], &["--max-tokens", "24"]].concat())["text"].as_str().unwrap().to_string()
    };
    assert_eq!(sampled("7"), sampled("7"), "the same seed gives the same text");
    assert_ne!(sampled("7"), sampled("8"), "another seed gives another text");

    let berlin = json_run(cwd, &["chat", "smol", "What is the capital of Germany?", "--temperature", "0"]);
    assert!(berlin["text"].as_str().unwrap().contains("Berlin"), "{berlin}");
    assert_eq!(berlin["usage"]["prompt_tokens"], 37);
    assert_eq!(berlin["finish_reason"], "stop");
    let args =
        ["chat", "smol", "Name three primary colors.", "--system", "You are a terse assistant.", "--temperature", "0"];
    let colors = json_run(cwd, &args);
    let text = colors["text"].as_str().unwrap().to_lowercase();
    assert!(["red", "blue", "yellow"].iter().all(|c| text.contains(c)), "{colors}");
    assert_eq!(colors["usage"]["prompt_tokens"], 26);
}

#[test]
fn interactive_chat_keeps_the_conversation() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    import_smollm2(cwd);
    let mut child = command(cwd, &["chat", "smol", "--temperature", "0", "--max-tokens", "40"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = "What is the capital of Germany?\n\"\"\"And what is\nthe capital of France?\"\"\"\n/bye\n";
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = ok(&out);
    let answers: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(answers.len() >= 2, "two answers expected: {stdout:?}");
    assert!(stdout.contains("Berlin"), "{stdout}");
    assert!(stdout.contains("Paris"), "{stdout}");
}

#[test]
fn a_hugging_face_folder_imports_and_generates_transformers_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let dir = shared().join("models/tiny-qwen2-random");
    let out = json_run(cwd, &["import", "hf", dir.to_str().unwrap(), "--name", "tiny"]);
    assert_eq!(out["version"], 1);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("repo/tiny/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(
        (manifest["spec"]["format"].as_str(), manifest["spec"]["quantization"].as_str()),
        (Some("hf"), Some("F32"))
    );
    let files = manifest["files"].as_object().unwrap();
    assert!(files.contains_key("model.safetensors") && files.contains_key("tokenizer.json"), "{files:?}");
    assert!(!files.keys().any(|f| f.ends_with(".gguf")), "only the folder's model files are kept: {files:?}");
    let reference: Value = serde_json::from_slice(&std::fs::read(dir.join("reference-outputs.json")).unwrap()).unwrap();
    let case = &reference["cases"][0];
    let args = ["generate", "tiny", "--prompt", case["prompt"].as_str().unwrap(), "--temperature", "0"];
    let g = json_run(cwd, &[&args[..], &["--max-tokens", "24", "--ignore-eos"]].concat());
    assert_eq!(g["token_ids"], case["greedy_24_token_ids"], "{g}");
}

/// A copy of `src` in `dir` with `edit` applied to its bytes.
fn edited_copy(src: &Path, dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(src).unwrap();
    edit(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn find(bytes: &[u8], what: &[u8]) -> usize {
    bytes.windows(what.len()).position(|w| w == what).unwrap()
}

/// Runs an import that must fail; returns its error message and checks no version exists.
fn refused(cwd: &Path, args: &[&str]) -> String {
    let out = lathe(cwd, args);
    assert!(!out.status.success(), "accepted: {}", String::from_utf8_lossy(&out.stdout));
    assert!(version_dirs(cwd, "bad").is_empty(), "a refused import published a version");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn broken_models_are_refused_with_one_clear_error_and_no_version() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let good = shared().join("models/tiny-llama-256/model-f32.gguf");

    let truncated = edited_copy(&good, cwd, "truncated.gguf", |b| b.truncate(b.len() / 2));
    let e = refused(cwd, &["import", "gguf", truncated.to_str().unwrap(), "--name", "bad"]);
    assert!(e.contains("truncated") && e.contains("truncated.gguf"), "{e}");

    let other_arch = edited_copy(&good, cwd, "bloom.gguf", |b| {
        let at = find(b, b"general.architecture") + "general.architecture".len() + 4 + 8;
        assert_eq!(&b[at..at + 5], b"llama");
        b[at..at + 5].copy_from_slice(b"bloom");
    });
    let e = refused(cwd, &["import", "gguf", other_arch.to_str().unwrap(), "--name", "bad"]);
    assert!(e.contains("unsupported architecture \"bloom\"") && e.contains("llama, mistral, qwen2"), "{e}");

    let other_type = edited_copy(&good, cwd, "q3k.gguf", |b| {
        let name = b"output_norm.weight";
        let at = find(b, name) + name.len() + 4 + 8;
        b[at..at + 4].copy_from_slice(&11u32.to_le_bytes());
    });
    let e = refused(cwd, &["import", "gguf", other_type.to_str().unwrap(), "--name", "bad"]);
    assert!(e.contains("Q3_K") && e.contains("output_norm.weight"), "{e}");

    let folder = cwd.join("no-tokenizer");
    std::fs::create_dir(&folder).unwrap();
    let source = shared().join("models/tiny-llama-random");
    for f in ["config.json", "model.safetensors", "tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(source.join(f), folder.join(f)).unwrap();
    }
    let e = refused(cwd, &["import", "hf", folder.to_str().unwrap(), "--name", "bad"]);
    assert!(e.contains("no tokenizer.json"), "{e}");

    let e = refused(cwd, &["import", "gguf", folder.to_str().unwrap(), "--name", "bad"]);
    assert!(e.contains("this is a folder"), "{e}");
}
