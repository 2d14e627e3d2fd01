//! SmolLM2-135M-Instruct (Q4_1) against llama.cpp: greedy continuations, the chosen tokens'
//! log-probabilities and top-5 alternatives, chat prompt lengths and replies.
//!
//! The reference was made by an AVX-512 build of llama.cpp with flash attention and an f16 KV
//! cache. With activations quantized to 8 bits before every product, this 30-layer model
//! turns differences in float summation order into log-probability differences of up to
//! ~0.3: llama.cpp's own AVX2 build, run with the reference's flags on an AVX2 machine,
//! differs from the reference by up to 0.11 (0.33 with `-fa off -ctk f32 -ctv f32`) and
//! follows its first 16 tokens on 2 of the 5 prompts; Lathe's portable and AVX2 paths differ
//! from each other by up to ~0.1 (measured: the AVX2 path follows 16 tokens on 4 prompts within
//! 0.14, the portable one on 3 within 0.26); where the 4th and 5th candidates are nearly tied,
//! they swap. The bounds below leave room for that spread (tokens and log-probabilities at
//! least as close as llama.cpp's own AVX2 build; 3 rather than 4 of the top 5), not the 0.05
//! that only a bit-exact replay of the reference build's arithmetic could meet.

mod common;

use common::{log_probs, shared};
use lathe_generation::sampling::argmax;
use lathe_generation::{generate, LanguageModel, Message, Request, SamplingParams, Session};

const DIR: &str = "models/smollm2-135m-instruct";

/// How far a chosen token's log-probability may be from the reference's (see above).
const LOGPROB_SPREAD: f64 = 0.3;

fn model() -> LanguageModel {
    LanguageModel::open(&shared(&format!("{DIR}/SmolLM2-135M-Instruct.Q4_1.gguf"))).unwrap()
}

fn reference() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(shared(&format!("{DIR}/reference-llamacpp.json"))).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

#[test]
fn greedy_continuations_follow_llama_cpp() {
    let m = model();
    let d = &m.decoder;
    let mut identical = 0;
    for case in reference()["completions"].as_array().unwrap() {
        let prompt = ids(&case["prompt_token_ids"]);
        assert_eq!(m.tokenizer.encode_prompt(case["prompt"].as_str().unwrap()).unwrap(), prompt);
        let mut cache = d.new_cache();
        let mut logits = d.run(&prompt, &mut cache, &mut Default::default());
        let mut same = 0;
        for want in case["steps"].as_array().unwrap().iter().take(16) {
            let lp = log_probs(&logits);
            let chosen = argmax(&logits) as usize;
            if chosen as u64 != want["id"].as_u64().unwrap() {
                break;
            }
            let theirs = want["logprob"].as_f64().unwrap();
            let (prompt, ours) = (&case["prompt"], lp[chosen]);
            assert!((ours - theirs).abs() <= LOGPROB_SPREAD, "{prompt:?} step {same}: {ours:.4} vs {theirs:.4}");
            let mut ours: Vec<usize> = (0..lp.len()).collect();
            ours.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]));
            let top: Vec<usize> =
                want["top"].as_array().unwrap().iter().map(|t| t[0].as_u64().unwrap() as usize).collect();
            let shared_top = top.iter().filter(|id| ours[..5].contains(id)).count();
            assert!(shared_top >= 3, "{:?} step {same}: top-5 {:?} vs llama.cpp {top:?}", case["prompt"], &ours[..5]);
            same += 1;
            logits = d.forward(chosen as u32, &mut cache);
        }
        identical += usize::from(same == 16);
    }
    assert!(identical >= 2, "{identical} of 5 prompts follow llama.cpp's first 16 greedy tokens");
}

#[test]
fn chat_replies_name_berlin_and_the_primary_colors() {
    let m = model();
    let chats = reference()["chats"].clone();
    let mut replies = Vec::new();
    for chat in chats.as_array().unwrap() {
        let messages: Vec<Message> = chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| Message::new(x["role"].as_str().unwrap(), x["content"].as_str().unwrap()))
            .collect();
        let prompt = m.chat_prompt(&messages).unwrap();
        assert_eq!(prompt.len() as u64, chat["prompt_tokens"].as_u64().unwrap());
        let mut req = Request::new(prompt, 64);
        req.params.sampling = SamplingParams { temperature: 0.0, ..SamplingParams::default() };
        let done = generate(&m, &mut Session::new(&m), &req, &mut |_| true).unwrap();
        replies.push(done.text.to_lowercase());
    }
    assert!(replies[0].contains("berlin"), "{:?}", replies[0]);
    for color in ["red", "blue", "yellow"] {
        assert!(replies[1].contains(color), "{:?}", replies[1]);
    }
}
