//! The generation scheduler on SmolLM2-135M-Instruct (Q4_1): continuous batching gives every
//! request the tokens it gets alone, a KV pool too small for everyone preempts and recomputes
//! without changing outputs, and a chat's second turn reuses the first turn's blocks.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use lathe_engine::generation::{ChatMessage, FinishReason, GenerationParams, SamplingParams, TextGenerator};
use lathe_generation::{Generator, LanguageModel};
use lathe_runtime::generation::{Generation, GenerationConfig};
use lathe_runtime::stats::VersionStats;

fn shared(path: &str) -> PathBuf {
    let root = std::env::var_os("LATHE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = root.join(path);
    assert!(path.exists(), "missing test file {} (set LATHE_TEST_DATA)", path.display());
    path
}

fn generator() -> Arc<dyn TextGenerator> {
    let path = shared("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    Arc::new(Generator::new(LanguageModel::open(&path).unwrap()))
}

/// A scheduler with `kv_blocks` blocks of 16 positions.
fn scheduler(g: &Arc<dyn TextGenerator>, kv_blocks: usize) -> (Generation, Arc<VersionStats>) {
    let config = GenerationConfig {
        kv_cache_bytes: kv_blocks * 16 * g.facts().kv_bytes_per_token,
        max_num_batched_tokens: 64,
        ..GenerationConfig::default()
    };
    let stats = Arc::new(VersionStats::default());
    (Generation::start(g.clone(), config, stats.clone(), "test").unwrap(), stats)
}

fn greedy(max_tokens: usize) -> GenerationParams {
    GenerationParams {
        sampling: SamplingParams { temperature: 0.0, ..SamplingParams::default() },
        ..GenerationParams::new(max_tokens)
    }
}

/// The tokens and text of each request, submitted all at once.
fn run_all(gen: &Generation, prompts: &[Vec<u32>], max_tokens: usize) -> Vec<(Vec<u32>, String, FinishReason)> {
    let g = gen.generator();
    let receivers: Vec<_> = prompts
        .iter()
        .map(|p| gen.submit(p.clone(), max_tokens, g.start(&greedy(max_tokens)).unwrap()).unwrap())
        .collect();
    receivers
        .into_iter()
        .map(|mut rx| {
            let (mut tokens, mut text) = (Vec::new(), String::new());
            loop {
                let d = rx.blocking_recv().expect("the sequence finishes");
                tokens.extend(d.token);
                text.push_str(&d.text);
                if let Some(f) = d.finished {
                    return (tokens, text, f.reason);
                }
            }
        })
        .collect()
}

fn prompts(g: &Arc<dyn TextGenerator>) -> Vec<Vec<u32>> {
    let questions = [
        "What is the capital of Germany?",
        "Name three primary colors.",
        "Write a haiku about the sea.",
        "What is 12 times 12?",
        "Who wrote Hamlet?",
        "Give me a synonym for happy.",
        "What is the boiling point of water?",
        "Translate 'good morning' to French.",
        "List two planets.",
        "What do bees make?",
        "Spell the word 'cat' backwards.",
        "What color is the sky on a clear day?",
        "How many legs does a spider have?",
        "What is the opposite of hot?",
        "Name a fruit that is yellow.",
        "What language is spoken in Spain?",
    ];
    questions.iter().map(|q| g.chat_prompt(&[ChatMessage::new("user", q)]).unwrap()).collect()
}

#[test]
fn sixteen_concurrent_requests_get_the_tokens_each_gets_alone() {
    let g = generator();
    let prompts = prompts(&g);
    let (gen, stats) = scheduler(&g, 1024);
    let alone: Vec<_> = prompts.iter().flat_map(|p| run_all(&gen, std::slice::from_ref(p), 20)).collect();
    let together = run_all(&gen, &prompts, 20);
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a, t, "request {i}: batched output differs from its output alone");
    }
    assert!(alone[0].1.contains("Berlin"), "{:?}", alone[0]);
    let s = &stats.generation;
    assert_eq!(s.preemptions.load(Ordering::Relaxed), 0, "the pool holds everyone");
    assert!(s.iteration_tokens.snapshot().sum >= 16.0 * 20.0, "tokens were counted per step");
    assert_eq!(s.finished[0].load(Ordering::Relaxed) + s.finished[1].load(Ordering::Relaxed), 32);
}

#[test]
fn a_pool_too_small_for_everyone_preempts_and_recomputes_with_the_same_outputs() {
    let g = generator();
    let prompts = prompts(&g);
    let (roomy, _) = scheduler(&g, 1024);
    let expected = run_all(&roomy, &prompts, 24);
    // 20 blocks of 16 positions: about five of the ~60-position sequences at a time.
    let (tight, stats) = scheduler(&g, 20);
    let got = run_all(&tight, &prompts, 24);
    assert_eq!(got, expected, "preemption changed an output");
    let preempted = stats.generation.preemptions.load(Ordering::Relaxed);
    assert!(preempted > 0, "expected preemptions with 20 blocks");
    assert_eq!(stats.generation.kv_blocks_total.load(Ordering::Relaxed), 20);
    eprintln!("{preempted} preemptions");
}

#[test]
fn a_second_chat_turn_reuses_the_first_turns_blocks_with_the_same_tokens() {
    let g = generator();
    let mut messages = vec![ChatMessage::new("user", "What is the capital of Germany?")];
    let (gen, stats) = scheduler(&g, 256);
    let first = run_all(&gen, &[g.chat_prompt(&messages).unwrap()], 24).remove(0);
    messages.push(ChatMessage::new("assistant", &first.1));
    messages.push(ChatMessage::new("user", "And of France?"));
    let second_prompt = g.chat_prompt(&messages).unwrap();
    let hits_before = stats.generation.prefix_hits.load(Ordering::Relaxed);
    let second = run_all(&gen, std::slice::from_ref(&second_prompt), 24).remove(0);
    let hits = stats.generation.prefix_hits.load(Ordering::Relaxed) - hits_before;
    assert!(hits >= 32, "the first turn's blocks were reused: {hits} prompt tokens hit");
    let (fresh, fresh_stats) = scheduler(&g, 256);
    let without_reuse = run_all(&fresh, &[second_prompt], 24).remove(0);
    assert_eq!(fresh_stats.generation.prefix_hits.load(Ordering::Relaxed), 0);
    assert_eq!(second, without_reuse, "prefix reuse changed the second turn");
    assert!(second.1.contains("Paris"), "{second:?}");
}
