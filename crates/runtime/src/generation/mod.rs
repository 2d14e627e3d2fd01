//! Text generation for many clients at once: a scheduler per language-model version, on its
//! own thread with its own compute threads, doing continuous batching at the iteration level
//! over a paged KV cache with automatic prefix caching (the design of vLLM V1, summarised in
//! `docs/generation.md`).
//!
//! Handlers [`Generation::submit`] a prompt with its [`TokenSequence`] and read [`Delta`]s
//! from the returned channel; dropping the receiver (a client that went away) frees the
//! sequence and its KV blocks at the next step.

mod blocks;
mod scheduler;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use lathe_engine::generation::{FinishReason, TextGenerator, TokenLogprob, TokenSequence};
use lathe_types::{ApiError, ErrorKind};
use tokio::sync::mpsc;

use crate::stats::VersionStats;
pub use blocks::BlockPool;

/// Scheduler settings (vLLM's names).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most sequences in the running batch.
    pub max_num_seqs: usize,
    /// Most tokens (prompt chunks and decoded tokens) in one step.
    pub max_num_batched_tokens: usize,
    /// Bytes of KV cache per model version.
    pub kv_cache_bytes: usize,
    /// Token positions per KV-cache block.
    pub block_size: usize,
    /// Compute threads per model version.
    pub threads: usize,
    /// Most requests waiting for a place in the running batch; more get 429.
    pub max_waiting: usize,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_num_seqs: 32,
            max_num_batched_tokens: 256,
            kv_cache_bytes: 1 << 30,
            block_size: 16,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_waiting: 256,
        }
    }
}

/// How a request ended, with its token counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Why it ended.
    pub reason: FinishReason,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens sampled (an ending token included).
    pub completion_tokens: usize,
    /// Prompt tokens found in the prefix cache (their prefill skipped).
    pub cached_tokens: usize,
}

/// What one step produced for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    /// Text that became final (may be empty).
    pub text: String,
    /// The generated token, when one is part of the output.
    pub token: Option<u32>,
    /// Its log-probability, when asked for.
    pub logprob: Option<TokenLogprob>,
    /// Set on the last delta of a request.
    pub finished: Option<Finished>,
}

/// A request waiting for, or holding, a place in the running batch.
struct Sequence {
    /// Prompt then generated tokens.
    tokens: Vec<u32>,
    prompt_len: usize,
    /// Most tokens the sequence may reach (prompt + max_tokens, within the context).
    max_len: usize,
    decoding: Box<dyn TokenSequence>,
    tx: mpsc::UnboundedSender<Delta>,
    /// The block table, and the hashes of its full computed blocks.
    blocks: Vec<u32>,
    hashes: Vec<u64>,
    /// Positions whose keys and values are in the blocks.
    computed: usize,
    sampled: usize,
    cached_tokens: Option<usize>,
    arrived: Instant,
    last_token: Option<Instant>,
}

/// The queue the handlers and the scheduler share.
struct Inbox {
    waiting: VecDeque<Sequence>,
    closing: bool,
    /// The engine panicked: nothing runs any more.
    failed: bool,
}

struct Shared {
    inbox: Mutex<Inbox>,
    wake: Condvar,
}

/// A language-model version's scheduler: submit requests, read their deltas.
pub struct Generation {
    generator: Arc<dyn TextGenerator>,
    config: GenerationConfig,
    shared: Arc<Shared>,
    stats: Arc<VersionStats>,
    kv_tokens: usize,
}

impl Generation {
    /// Starts the scheduler thread of `generator` with a KV pool of `config.kv_cache_bytes`
    /// (at least one context's worth of blocks).
    pub fn start(
        generator: Arc<dyn TextGenerator>,
        config: GenerationConfig,
        stats: Arc<VersionStats>,
        name: &str,
    ) -> Result<Generation, String> {
        let facts = generator.facts();
        let block_bytes = facts.kv_bytes_per_token.max(1) * config.block_size;
        let blocks = config.kv_cache_bytes / block_bytes;
        if blocks < 2 {
            let needed = 2 * block_bytes;
            return Err(format!(
                "--kv-cache-memory of {} bytes holds no KV blocks (at least {needed})",
                config.kv_cache_bytes
            ));
        }
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads.max(1))
            .thread_name({
                let name = name.to_string();
                move |i| format!("gen-{name}-{i}")
            })
            .build()
            .map_err(|e| format!("generation threads: {e}"))?;
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox { waiting: VecDeque::new(), closing: false, failed: false }),
            wake: Condvar::new(),
        });
        stats.generation.kv_blocks_total.store(blocks as u64, Ordering::Relaxed);
        let kv = threads.install(|| generator.new_kv_blocks(blocks, config.block_size));
        let pool = BlockPool::new(blocks, config.block_size);
        let scheduler =
            scheduler::Scheduler::new(generator.clone(), config.clone(), shared.clone(), stats.clone(), kv, pool);
        std::thread::Builder::new()
            .name(format!("sched-{name}"))
            .spawn(move || threads.install(move || scheduler.run()))
            .map_err(|e| format!("scheduler thread: {e}"))?;
        let kv_tokens = blocks * config.block_size;
        Ok(Generation { generator, config, shared, stats, kv_tokens })
    }

    /// The model.
    pub fn generator(&self) -> &Arc<dyn TextGenerator> {
        &self.generator
    }

    /// Token positions the KV cache holds.
    pub fn kv_tokens(&self) -> usize {
        self.kv_tokens
    }

    /// The scheduler's settings.
    pub fn config(&self) -> &GenerationConfig {
        &self.config
    }

    /// Queues `prompt` (checked against the context by the caller) for generation of up to
    /// `max_tokens` tokens with `decoding`. Errors: 429 when the waiting queue is full, 400
    /// when the sequence could never fit the KV cache, 503 while the version unloads.
    pub fn submit(
        &self,
        prompt: Vec<u32>,
        max_tokens: usize,
        decoding: Box<dyn TokenSequence>,
    ) -> Result<mpsc::UnboundedReceiver<Delta>, ApiError> {
        let context = self.generator.facts().context_length;
        let max_len = (prompt.len() + max_tokens).min(context);
        if prompt.is_empty() {
            return Err(ApiError::invalid("prompt: expected at least one token"));
        }
        if max_len > self.kv_tokens {
            return Err(ApiError::invalid(format!(
                "prompt ({} tokens) and max_tokens ({max_tokens}) need {max_len} positions, more than the KV \
                 cache's {} (raise --kv-cache-memory)",
                prompt.len(),
                self.kv_tokens
            )));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let seq = Sequence {
            prompt_len: prompt.len(),
            tokens: prompt,
            max_len,
            decoding,
            tx,
            blocks: Vec::new(),
            hashes: Vec::new(),
            computed: 0,
            sampled: 0,
            cached_tokens: None,
            arrived: Instant::now(),
            last_token: None,
        };
        let mut inbox = self.shared.inbox.lock().expect("inbox lock");
        if inbox.failed {
            return Err(ApiError::new(
                ErrorKind::Internal,
                "the generation engine of this version failed (see the server log); publish or load it again",
            ));
        }
        if inbox.closing {
            return Err(ApiError::new(ErrorKind::Unavailable, "the model version is unloading"));
        }
        if inbox.waiting.len() >= self.config.max_waiting {
            return Err(ApiError::new(
                ErrorKind::ResourceExhausted,
                format!("{} requests are already waiting (--max-waiting-seqs); retry later", inbox.waiting.len()),
            ));
        }
        inbox.waiting.push_back(seq);
        self.stats.generation.waiting.store(inbox.waiting.len() as u64, Ordering::Relaxed);
        drop(inbox);
        self.shared.wake.notify_one();
        Ok(rx)
    }
}

impl Drop for Generation {
    /// The scheduler finishes what is running and waiting, then its thread ends.
    fn drop(&mut self) {
        self.shared.inbox.lock().expect("inbox lock").closing = true;
        self.shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lathe_engine::generation::{
        ChatMessage, GenerationParams, GeneratorFacts, KvBlocks, SamplingParams, SequenceChunk, TokenStep,
    };

    /// A model whose forward pass panics.
    struct Broken;

    struct Never;

    impl TokenSequence for Never {
        fn next(&mut self, _: &mut [f32], _: &[u32], _: &[u32]) -> TokenStep {
            unreachable!("no logits are ever produced")
        }
        fn finish(&mut self) -> String {
            String::new()
        }
    }

    impl TextGenerator for Broken {
        fn facts(&self) -> GeneratorFacts {
            GeneratorFacts { context_length: 64, vocab_size: 8, kv_bytes_per_token: 4, chat_template: false }
        }
        fn tokenize(&self, _: &str, _: bool) -> Result<Vec<u32>, ApiError> {
            Ok(vec![1])
        }
        fn detokenize(&self, _: &[u32]) -> Result<String, ApiError> {
            Ok(String::new())
        }
        fn token_text(&self, _: u32) -> String {
            String::new()
        }
        fn chat_prompt(&self, _: &[ChatMessage]) -> Result<Vec<u32>, ApiError> {
            Ok(vec![1])
        }
        fn sampling_defaults(&self) -> SamplingParams {
            SamplingParams::default()
        }
        fn start(&self, _: &GenerationParams) -> Result<Box<dyn TokenSequence>, ApiError> {
            Ok(Box::new(Never))
        }
        fn new_kv_blocks(&self, blocks: usize, block_size: usize) -> KvBlocks {
            KvBlocks { block_size, floats_per_block: block_size, data: vec![0.0; blocks * block_size] }
        }
        fn forward(&self, chunks: &[SequenceChunk<'_>], _: &mut KvBlocks) -> Vec<Vec<f32>> {
            if chunks.iter().any(|c| c.tokens.len() > 1) {
                panic!("the engine failed");
            }
            vec![vec![0.0; 8]; chunks.iter().filter(|c| c.logits).count()]
        }
    }

    #[test]
    fn an_engine_panic_ends_the_requests_in_flight_and_refuses_new_ones() {
        let stats = Arc::new(VersionStats::default());
        let config = GenerationConfig { kv_cache_bytes: 4 * 16 * 8, threads: 1, ..GenerationConfig::default() };
        let gen = Generation::start(Arc::new(Broken), config, stats.clone(), "broken").unwrap();
        let mut rx = gen.submit(vec![1, 2, 3], 4, Box::new(Never)).unwrap();
        assert!(rx.blocking_recv().is_none(), "the request ends without a delta");
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let err = loop {
            match gen.submit(vec![1, 2], 4, Box::new(Never)) {
                Err(e) => break e,
                Ok(_) => assert!(Instant::now() < deadline, "submissions are still accepted"),
            }
        };
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.message.contains("failed"), "{err:?}");
        assert_eq!(stats.generation.running.load(Ordering::Relaxed), 0);
    }
}
