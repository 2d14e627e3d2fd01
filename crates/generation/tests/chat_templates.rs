//! Chat templates rendered byte for byte as transformers renders them, and SmolLM2's chat
//! prompts tokenized to llama.cpp's prompt token counts.

mod common;

use std::path::Path;

use common::shared;
use lathe_generation::{ChatTemplate, GgufFile, Message, TextTokenizer};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn messages(v: &serde_json::Value) -> Vec<Message> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn tiny_models_render_like_transformers() {
    for model in ["tiny-llama-random", "tiny-qwen2-random"] {
        let dir = shared(&format!("models/{model}"));
        let source = std::fs::read_to_string(dir.join("chat_template.jinja")).unwrap();
        let case = &json(&dir.join("reference-outputs.json"))["chat_template_case"];
        let template = ChatTemplate::new(&source, "", "").unwrap();
        let rendered = template.render(&messages(&case["messages"]), true).unwrap();
        assert_eq!(rendered, case["rendered"].as_str().unwrap(), "{model}");
    }
}

#[test]
fn smollm2_chat_prompts_have_llama_cpp_token_counts() {
    let dir = shared("models/smollm2-135m-instruct");
    let file = GgufFile::open(&dir.join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let tokenizer = TextTokenizer::from_gguf(&file).unwrap();
    let template =
        ChatTemplate::new(file.string("tokenizer.chat_template").unwrap(), "<|im_start|>", "<|im_end|>").unwrap();
    let chats = json(&dir.join("reference-llamacpp.json"))["chats"].clone();
    for chat in chats.as_array().unwrap() {
        let prompt = template.render(&messages(&chat["messages"]), true).unwrap();
        let ids = tokenizer.encode(&prompt, true).unwrap();
        assert_eq!(ids.len() as u64, chat["prompt_tokens"].as_u64().unwrap(), "{prompt:?}");
    }
    let one = template.render(&[Message::new("user", "What is the capital of Germany?")], true).unwrap();
    let want = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
        <|im_start|>user\nWhat is the capital of Germany?<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(one, want);
}
