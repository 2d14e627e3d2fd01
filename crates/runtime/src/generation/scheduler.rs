//! The scheduler loop: each step takes the running sequences first (one token each when
//! decoding, a chunk of the prompt otherwise), then admits waiting ones while the token budget
//! and `max_num_seqs` allow, runs them all in one forward pass, samples, and sends each
//! request its delta. A sequence that cannot get a block preempts the latest running one,
//! which frees its blocks and is recomputed later (vLLM V1's recompute preemption).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use lathe_engine::generation::{FinishReason, KvBlocks, SequenceChunk, TextGenerator};

use super::{BlockPool, Delta, Finished, GenerationConfig, Sequence, Shared};
use crate::stats::VersionStats;

/// A sequence's share of one step: `len` tokens from position `start`.
struct Planned {
    start: usize,
    len: usize,
}

/// The scheduler's state, owned by its thread.
pub(super) struct Scheduler {
    generator: Arc<dyn TextGenerator>,
    config: GenerationConfig,
    shared: Arc<Shared>,
    stats: Arc<VersionStats>,
    kv: KvBlocks,
    pool: BlockPool,
    running: Vec<Sequence>,
}

impl Scheduler {
    pub(super) fn new(
        generator: Arc<dyn TextGenerator>,
        config: GenerationConfig,
        shared: Arc<Shared>,
        stats: Arc<VersionStats>,
        kv: KvBlocks,
        pool: BlockPool,
    ) -> Scheduler {
        Scheduler { generator, config, shared, stats, kv, pool, running: Vec::new() }
    }

    /// Steps until the version is unloaded and nothing is left to do. A panic in the engine
    /// ends every request in flight (their channels close: the server answers 500) and the
    /// scheduler: later submissions get 503.
    pub(super) fn run(mut self) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.warm_up();
            loop {
                if self.running.is_empty() && !self.wait_for_work() {
                    return;
                }
                self.drop_abandoned();
                let plan = self.schedule();
                if plan.is_empty() {
                    continue;
                }
                self.step(plan);
                self.publish_gauges();
            }
        }));
        if outcome.is_err() {
            tracing::error!("the generation engine panicked; the version stops taking requests");
            // Refuse new submissions before the requests in flight see their streams end, so
            // that a client retrying at once gets the failure, not a queue.
            let mut inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
            inbox.failed = true;
            inbox.waiting.clear();
            drop(inbox);
            self.running.clear();
            self.stats.generation.running.store(0, Ordering::Relaxed);
            self.stats.generation.waiting.store(0, Ordering::Relaxed);
        }
    }

    /// One token through the model so that the weights are paged in before traffic.
    fn warm_up(&mut self) {
        if let Some(block) = self.pool.allocate() {
            let chunk = SequenceChunk { tokens: &[0], start: 0, blocks: &[block], logits: true };
            self.generator.forward(&[chunk], &mut self.kv);
            self.pool.release(&[block]);
        }
    }

    /// Blocks until a request waits; `false` when the version is unloading and idle.
    fn wait_for_work(&self) -> bool {
        let mut inbox = self.shared.inbox.lock().expect("inbox lock");
        while inbox.waiting.is_empty() {
            if inbox.closing {
                return false;
            }
            inbox = self.shared.wake.wait(inbox).expect("inbox lock");
        }
        true
    }

    /// Frees the sequences whose clients went away.
    fn drop_abandoned(&mut self) {
        let (gone, kept): (Vec<Sequence>, Vec<Sequence>) = self.running.drain(..).partition(|s| s.tx.is_closed());
        self.running = kept;
        for seq in gone {
            self.pool.release(&seq.blocks);
            self.stats.generation.finished[2].fetch_add(1, Ordering::Relaxed);
        }
        let mut inbox = self.shared.inbox.lock().expect("inbox lock");
        let before = inbox.waiting.len();
        inbox.waiting.retain(|s| !s.tx.is_closed());
        let dropped = (before - inbox.waiting.len()) as u64;
        self.stats.generation.finished[2].fetch_add(dropped, Ordering::Relaxed);
        self.publish_gauges_locked(inbox.waiting.len());
    }

    /// Chooses this step's tokens: running sequences in arrival order, then waiting ones.
    fn schedule(&mut self) -> Vec<Planned> {
        // Every running sequence can decode in each step (vLLM asks max_num_batched_tokens ≥
        // max_num_seqs for the same reason).
        let mut budget = self.config.max_num_batched_tokens.max(self.config.max_num_seqs).max(1);
        let mut plan = Vec::new();
        let mut preempted = false;
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let take = (self.running[i].tokens.len() - self.running[i].computed).min(budget);
            if !self.grow(i, take, &mut preempted) {
                break; // sequence i itself was preempted
            }
            plan.push(Planned { start: self.running[i].computed, len: take });
            budget -= take;
            i += 1;
        }
        if !preempted {
            self.admit(&mut plan, budget);
        }
        plan
    }

    /// Gives running sequence `i` blocks for `take` more positions, preempting from the end
    /// of the running batch while none are free; `false` when `i` itself was preempted.
    fn grow(&mut self, i: usize, take: usize, preempted: &mut bool) -> bool {
        let needed = (self.running[i].computed + take).div_ceil(self.pool.block_size());
        while self.running[i].blocks.len() < needed {
            if let Some(block) = self.pool.allocate() {
                self.running[i].blocks.push(block);
                continue;
            }
            *preempted = true;
            let victim = self.running.pop().expect("sequence i is running");
            self.preempt(victim);
            if self.running.len() == i {
                return false;
            }
        }
        true
    }

    /// Frees a running sequence's blocks and puts it at the front of the waiting queue.
    fn preempt(&mut self, mut seq: Sequence) {
        self.pool.release(&seq.blocks);
        seq.blocks.clear();
        seq.hashes.clear();
        seq.computed = 0;
        self.stats.generation.preemptions.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(tokens = seq.tokens.len(), "sequence preempted; it will be recomputed");
        self.shared.inbox.lock().expect("inbox lock").waiting.push_front(seq);
    }

    /// Admits waiting sequences while the budget, `max_num_seqs` and free blocks allow.
    fn admit(&mut self, plan: &mut Vec<Planned>, mut budget: usize) {
        while budget > 0 && self.running.len() < self.config.max_num_seqs {
            let Some(mut seq) = self.shared.inbox.lock().expect("inbox lock").waiting.pop_front() else { break };
            let (blocks, hashes) = self.pool.lookup(&seq.tokens, seq.tokens.len() - 1);
            seq.computed = blocks.len() * self.pool.block_size();
            (seq.blocks, seq.hashes) = (blocks, hashes);
            let take = (seq.tokens.len() - seq.computed).min(budget);
            let needed = (seq.computed + take).div_ceil(self.pool.block_size());
            while seq.blocks.len() < needed {
                match self.pool.allocate() {
                    Some(block) => seq.blocks.push(block),
                    None => break,
                }
            }
            if seq.blocks.len() < needed {
                self.pool.release(&seq.blocks);
                seq.blocks.clear();
                seq.hashes.clear();
                self.shared.inbox.lock().expect("inbox lock").waiting.push_front(seq);
                break;
            }
            self.first_admission(&mut seq);
            plan.push(Planned { start: seq.computed, len: take });
            self.running.push(seq);
            budget -= take;
        }
    }

    /// Counts a sequence's prefix-cache lookup and queue time the first time it runs.
    fn first_admission(&self, seq: &mut Sequence) {
        if seq.cached_tokens.is_none() {
            let g = &self.stats.generation;
            seq.cached_tokens = Some(seq.computed);
            g.prefix_queries.fetch_add(seq.prompt_len as u64, Ordering::Relaxed);
            g.prefix_hits.fetch_add(seq.computed as u64, Ordering::Relaxed);
            g.queue_time.observe(seq.arrived.elapsed().as_secs_f64());
        }
    }

    /// Runs the planned chunks in one forward pass, then samples and answers.
    fn step(&mut self, plan: Vec<Planned>) {
        let chunks: Vec<SequenceChunk> = self
            .running
            .iter()
            .zip(&plan)
            .map(|(s, p)| SequenceChunk {
                tokens: &s.tokens[p.start..p.start + p.len],
                start: p.start,
                blocks: &s.blocks,
                logits: p.start + p.len == s.tokens.len(),
            })
            .collect();
        let wants: Vec<bool> = chunks.iter().map(|c| c.logits).collect();
        self.stats.generation.iteration_tokens.observe(plan.iter().map(|p| p.len).sum::<usize>() as f64);
        let mut logits = self.generator.forward(&chunks, &mut self.kv).into_iter();
        let mut finished = Vec::new();
        for (i, (p, want)) in plan.iter().zip(wants).enumerate() {
            self.computed(i, p.start + p.len);
            if want {
                let mut l = logits.next().expect("logits for each chunk that asked");
                if self.sample(i, &mut l) {
                    finished.push(i);
                }
            }
        }
        for i in finished.into_iter().rev() {
            let seq = self.running.remove(i);
            self.pool.release(&seq.blocks);
        }
    }

    /// Records that sequence `i` has `computed` positions cached; registers its newly full
    /// blocks for prefix reuse.
    fn computed(&mut self, i: usize, computed: usize) {
        let bs = self.pool.block_size();
        let seq = &mut self.running[i];
        seq.computed = computed;
        while (seq.hashes.len() + 1) * bs <= seq.computed {
            let k = seq.hashes.len();
            let tokens = &seq.tokens[k * bs..(k + 1) * bs];
            let hash = self.pool.hash(seq.hashes.last().copied(), tokens);
            self.pool.register(seq.blocks[k], hash, tokens);
            seq.hashes.push(hash);
        }
    }

    /// Samples sequence `i`'s next token and sends the delta; `true` when it finished.
    fn sample(&mut self, i: usize, logits: &mut [f32]) -> bool {
        let g = &self.stats.generation;
        let seq = &mut self.running[i];
        let (prompt, generated) = seq.tokens.split_at(seq.prompt_len);
        let step = seq.decoding.next(logits, prompt, generated);
        seq.sampled += 1;
        let now = Instant::now();
        match seq.last_token {
            None => g.time_to_first_token.observe((now - seq.arrived).as_secs_f64()),
            Some(t) => g.inter_token_latency.observe((now - t).as_secs_f64()),
        }
        seq.last_token = Some(now);
        g.generation_tokens.fetch_add(1, Ordering::Relaxed);
        let mut delta = Delta { text: step.text, token: None, logprob: step.logprob, finished: None };
        let mut reason = step.finish;
        if step.emitted {
            delta.token = Some(step.id);
            seq.tokens.push(step.id);
            if reason.is_none() && seq.tokens.len() >= seq.max_len {
                delta.text += &seq.decoding.finish();
                reason = Some(FinishReason::Length);
            }
        }
        if let Some(reason) = reason {
            delta.finished = Some(Finished {
                reason,
                prompt_tokens: seq.prompt_len,
                completion_tokens: seq.sampled,
                cached_tokens: seq.cached_tokens.unwrap_or(0),
            });
            let slot = if reason == FinishReason::Length { 1 } else { 0 };
            g.finished[slot].fetch_add(1, Ordering::Relaxed);
            g.prompt_tokens.fetch_add(seq.prompt_len as u64, Ordering::Relaxed);
            g.e2e_latency.observe(seq.arrived.elapsed().as_secs_f64());
        }
        let done = delta.finished.is_some();
        let _ = seq.tx.send(delta); // a closed receiver is dropped at the next step
        done
    }

    fn publish_gauges(&self) {
        let waiting = self.shared.inbox.lock().expect("inbox lock").waiting.len();
        self.publish_gauges_locked(waiting);
    }

    fn publish_gauges_locked(&self, waiting: usize) {
        let g = &self.stats.generation;
        g.running.store(self.running.len() as u64, Ordering::Relaxed);
        g.waiting.store(waiting as u64, Ordering::Relaxed);
        g.kv_blocks_used.store(self.pool.used() as u64, Ordering::Relaxed);
    }
}
