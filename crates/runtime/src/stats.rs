//! Lock-free counters and histograms of a model version, read by `/metrics` and the
//! statistics endpoints.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of latency buckets: 25 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] =
    [25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0, 2.5, 10.0];
/// Upper bounds (seconds) of generation latency buckets (time to first token, inter-token
/// latency, end-to-end and queue time): 1 ms to 10 minutes.
pub const GENERATION_BUCKETS: [f64; 18] =
    [1e-3, 5e-3, 1e-2, 2e-2, 4e-2, 6e-2, 8e-2, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0];
/// Upper bounds of batch-size buckets.
pub const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// A Prometheus-style histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A point-in-time copy of a histogram.
#[derive(Debug, Clone)]
pub struct HistogramSnapshot {
    /// Bucket upper bounds.
    pub bounds: &'static [f64],
    /// Cumulative counts per bucket.
    pub cumulative: Vec<u64>,
    /// Sum of observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// A histogram over `bounds`.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one value.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add((v * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the current values.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                acc += c.load(Ordering::Relaxed);
                acc
            })
            .collect();
        HistogramSnapshot {
            bounds: self.bounds,
            cumulative,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// Count and total time of one phase (Triton's `{count, ns}` pairs).
#[derive(Debug, Default)]
pub struct Duration2 {
    count: AtomicU64,
    nanos: AtomicU64,
}

impl Duration2 {
    /// Adds one occurrence.
    pub fn add(&self, d: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// `(count, ns)`.
    pub fn get(&self) -> (u64, u64) {
        (self.count.load(Ordering::Relaxed), self.nanos.load(Ordering::Relaxed))
    }
}

/// Statistics of one model version.
#[derive(Debug)]
pub struct VersionStats {
    /// Rows inferred (a batch-N request counts N).
    pub inference_count: AtomicU64,
    /// Model executions (batches).
    pub execution_count: AtomicU64,
    /// Successful requests and their queue + compute time.
    pub success: Duration2,
    /// Failed requests.
    pub fail: Duration2,
    /// Time requests waited in the queue.
    pub queue: Duration2,
    /// Time batches spent computing.
    pub compute_infer: Duration2,
    /// Requests waiting in the queue now.
    pub queue_depth: AtomicU64,
    /// Milliseconds since the Unix epoch of the last inference.
    pub last_inference_ms: AtomicU64,
    /// Queue wait per request, seconds.
    pub queue_seconds: Histogram,
    /// Compute per batch, seconds.
    pub compute_seconds: Histogram,
    /// Rows per executed batch.
    pub batch_size: Histogram,
    /// Per batch size: executions and compute time.
    pub per_batch_size: Mutex<std::collections::BTreeMap<usize, (u64, u64)>>,
    /// Text generation (language models only).
    pub generation: GenerationStats,
}

/// What the generation scheduler counts (vLLM's metric set).
#[derive(Debug)]
pub struct GenerationStats {
    /// Sequences in the running batch now.
    pub running: AtomicU64,
    /// Sequences waiting to be scheduled now (preempted ones included).
    pub waiting: AtomicU64,
    /// KV-cache blocks in the pool.
    pub kv_blocks_total: AtomicU64,
    /// KV-cache blocks held by sequences now.
    pub kv_blocks_used: AtomicU64,
    /// Prompt tokens looked up in the prefix cache.
    pub prefix_queries: AtomicU64,
    /// Of those, tokens found (their prefill skipped).
    pub prefix_hits: AtomicU64,
    /// Sequences preempted (KV blocks freed, recomputed later).
    pub preemptions: AtomicU64,
    /// Prompt tokens of finished requests.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generation_tokens: AtomicU64,
    /// Finished requests by reason: stop, length, abort (client gone).
    pub finished: [AtomicU64; 3],
    /// Seconds from arrival to the first generated token.
    pub time_to_first_token: Histogram,
    /// Seconds between consecutive tokens of a request.
    pub inter_token_latency: Histogram,
    /// Seconds from arrival to the last token.
    pub e2e_latency: Histogram,
    /// Seconds from arrival to the first scheduling.
    pub queue_time: Histogram,
    /// Tokens per scheduler step (prompt and generated).
    pub iteration_tokens: Histogram,
}

/// The reasons of [`GenerationStats::finished`], in order.
pub const FINISHED_REASONS: [&str; 3] = ["stop", "length", "abort"];

impl Default for GenerationStats {
    fn default() -> Self {
        GenerationStats {
            running: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            kv_blocks_total: AtomicU64::new(0),
            kv_blocks_used: AtomicU64::new(0),
            prefix_queries: AtomicU64::new(0),
            prefix_hits: AtomicU64::new(0),
            preemptions: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            finished: Default::default(),
            time_to_first_token: Histogram::new(&GENERATION_BUCKETS),
            inter_token_latency: Histogram::new(&GENERATION_BUCKETS),
            e2e_latency: Histogram::new(&GENERATION_BUCKETS),
            queue_time: Histogram::new(&GENERATION_BUCKETS),
            iteration_tokens: Histogram::new(&BATCH_BUCKETS),
        }
    }
}

impl Default for VersionStats {
    fn default() -> Self {
        VersionStats {
            inference_count: AtomicU64::new(0),
            execution_count: AtomicU64::new(0),
            success: Duration2::default(),
            fail: Duration2::default(),
            queue: Duration2::default(),
            compute_infer: Duration2::default(),
            queue_depth: AtomicU64::new(0),
            last_inference_ms: AtomicU64::new(0),
            queue_seconds: Histogram::new(&LATENCY_BUCKETS),
            compute_seconds: Histogram::new(&LATENCY_BUCKETS),
            batch_size: Histogram::new(&BATCH_BUCKETS),
            per_batch_size: Mutex::new(Default::default()),
            generation: GenerationStats::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&BATCH_BUCKETS);
        for v in [1.0, 3.0, 3.0, 2000.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[2], 3);
        assert_eq!(*s.cumulative.last().unwrap(), 3, "2000 only in +Inf");
        assert_eq!(s.count, 4);
        assert!((s.sum - 2007.0).abs() < 1e-6);
    }
}
