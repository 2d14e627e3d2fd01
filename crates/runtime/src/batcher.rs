//! Dynamic batching on dedicated compute threads.
//!
//! Requests wait in one bounded queue per model version. Each compute thread ("instance")
//! takes the oldest request and, without waiting, every queued request that still fits in
//! `max_batch_size` rows: an idle worker dispatches at once, so a lone request is never
//! delayed, and under load batches form by themselves while the workers are busy. With
//! `max_queue_delay` above zero a worker may also wait for more requests, until the oldest
//! request has waited that long or the batch is full (Triton's semantics). A full queue
//! rejects new requests at once (the server answers 429 with `Retry-After`). Only requests whose
//! inputs have the same shape past the first dimension share a run, and a model that does not
//! batch ([`Servable::batches`]) runs one request at a time.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lathe_types::{ApiError, ErrorKind, Tensor};
use tokio::sync::oneshot;

use crate::stats::VersionStats;
use lathe_engine::Servable;

/// Batching settings of one model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Most rows in one execution.
    pub max_batch_size: usize,
    /// How long a worker may wait to fill a batch, from the oldest request's arrival (µs).
    pub max_queue_delay_us: u64,
    /// Most requests waiting; more are rejected with 429.
    pub max_queue_size: usize,
    /// Compute threads for the model.
    pub instances: usize,
    /// Text models: most padded tokens (rows × longest row) in one execution; 0 = no limit.
    pub max_batch_tokens: usize,
    /// Most requests in one execution; 0 = no limit.
    pub max_batch_requests: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch_size: 64,
            max_queue_delay_us: 0,
            max_queue_size: 1024,
            instances: 1,
            max_batch_tokens: 16384,
            max_batch_requests: 0,
        }
    }
}

/// How far past a request that does not fit the batcher looks for one that does.
const LOOKAHEAD: usize = 32;

/// What a batch costs so far, and whether one more request fits.
#[derive(Clone, Copy)]
struct Budget {
    rows: usize,
    longest: usize,
    requests: usize,
}

impl Budget {
    fn of(p: &Pending) -> Budget {
        Budget { rows: p.rows, longest: p.tokens.unwrap_or(0), requests: 1 }
    }

    fn with(self, p: &Pending) -> Budget {
        Budget {
            rows: self.rows + p.rows,
            longest: self.longest.max(p.tokens.unwrap_or(0)),
            requests: self.requests + 1,
        }
    }

    fn fits(&self, c: &BatchConfig) -> bool {
        self.rows <= c.max_batch_size
            && (c.max_batch_tokens == 0 || self.longest == 0 || self.rows * self.longest <= c.max_batch_tokens)
            && (c.max_batch_requests == 0 || self.requests <= c.max_batch_requests)
    }
}

/// The answer to one request.
pub type Reply = Result<Vec<Tensor>, ApiError>;

struct Pending {
    inputs: Vec<Tensor>,
    rows: usize,
    /// Every input's shape past the first dimension: only requests with equal shapes are
    /// concatenated (a symbolic sequence length must match within a batch).
    row_shapes: Vec<Vec<usize>>,
    tokens: Option<usize>,
    enqueued: Instant,
    reply: oneshot::Sender<Reply>,
}

struct Queue {
    items: VecDeque<Pending>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    config: BatchConfig,
    model: Arc<dyn Servable>,
    /// Whether the model takes several requests in one run ([`Servable::batches`]).
    batches: bool,
    stats: Arc<VersionStats>,
}

/// A model version's queue and compute threads. Dropping it stops accepting requests, lets
/// the workers finish what is queued, and joins them.
pub struct Batcher {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Batcher {
    /// Starts `config.instances` compute threads for `model`.
    pub fn start(model: Arc<dyn Servable>, config: BatchConfig, stats: Arc<VersionStats>, name: &str) -> Batcher {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { items: VecDeque::new(), closed: false }),
            ready: Condvar::new(),
            config: config.clone(),
            batches: model.batches(),
            model,
            stats,
        });
        let workers = (0..config.instances.max(1))
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("compute-{name}-{i}"))
                    .spawn(move || worker(&s))
                    .expect("spawn compute thread")
            })
            .collect();
        Batcher { shared, workers }
    }

    /// The batching settings.
    pub fn config(&self) -> &BatchConfig {
        &self.shared.config
    }

    /// Queues a request of `rows` rows; the receiver yields the outputs.
    pub fn submit(&self, inputs: Vec<Tensor>, rows: usize) -> Result<oneshot::Receiver<Reply>, ApiError> {
        let max = self.shared.config.max_batch_size;
        if rows > max {
            return Err(ApiError::invalid(format!("batch of {rows} rows exceeds the model's max_batch_size {max}")));
        }
        let (tx, rx) = oneshot::channel();
        let tokens = self.shared.model.tokens_per_row(&inputs);
        {
            let mut q = self.shared.queue.lock().expect("queue lock");
            if q.closed {
                return Err(ApiError::new(ErrorKind::Unavailable, "the model version is unloading"));
            }
            if q.items.len() >= self.shared.config.max_queue_size {
                return Err(ApiError::new(
                    ErrorKind::ResourceExhausted,
                    format!("the model's queue is full ({} requests); retry later", q.items.len()),
                ));
            }
            let row_shapes = inputs.iter().map(|t| t.shape.iter().skip(1).copied().collect()).collect();
            let pending = Pending { inputs, rows, row_shapes, tokens, enqueued: Instant::now(), reply: tx };
            q.items.push_back(pending);
            self.shared.stats.queue_depth.store(q.items.len() as u64, Ordering::Relaxed);
        }
        self.shared.ready.notify_one();
        Ok(rx)
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shared.queue.lock().expect("queue lock").closed = true;
        self.shared.ready.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Takes the next batch: blocks for the first request, then gathers what fits.
fn next_batch(s: &Shared) -> Option<Vec<Pending>> {
    let max = s.config.max_batch_size;
    let delay = Duration::from_micros(s.config.max_queue_delay_us);
    let mut q = s.queue.lock().expect("queue lock");
    while q.items.is_empty() {
        if q.closed {
            return None;
        }
        q = s.ready.wait(q).expect("queue lock");
    }
    let first = q.items.pop_front().expect("non-empty");
    let mut budget = Budget::of(&first);
    let deadline = first.enqueued + delay;
    let mut batch = vec![first];
    loop {
        // In arrival order; a request that does not fit is passed over for later ones of a
        // similar size (up to LOOKAHEAD of them), so long and short texts are not padded
        // together. The passed-over request leads the next batch.
        let mut i = 0;
        while i < q.items.len().min(LOOKAHEAD) && s.batches {
            let grown = budget.with(&q.items[i]);
            if grown.fits(&s.config) && q.items[i].row_shapes == batch[0].row_shapes {
                budget = grown;
                batch.push(q.items.remove(i).expect("index in range"));
            } else {
                i += 1;
            }
        }
        let now = Instant::now();
        let full = q.items.front().is_some() || budget.rows >= max || !s.batches;
        if full || delay.is_zero() || now >= deadline || q.closed {
            break;
        }
        q = s.ready.wait_timeout(q, deadline - now).expect("queue lock").0;
    }
    s.stats.queue_depth.store(q.items.len() as u64, Ordering::Relaxed);
    if !q.items.is_empty() {
        s.ready.notify_one();
    }
    Some(batch)
}

fn worker(s: &Shared) {
    while let Some(batch) = next_batch(s) {
        let started = Instant::now();
        for p in &batch {
            let waited = started - p.enqueued;
            s.stats.queue.add(waited);
            s.stats.queue_seconds.observe(waited.as_secs_f64());
        }
        let rows: usize = batch.iter().map(|p| p.rows).sum();
        let result = run(s, &batch, rows);
        let compute = started.elapsed();
        s.stats.compute_infer.add(compute);
        s.stats.compute_seconds.observe(compute.as_secs_f64());
        s.stats.batch_size.observe(rows as f64);
        s.stats.execution_count.fetch_add(1, Ordering::Relaxed);
        s.stats.inference_count.fetch_add(rows as u64, Ordering::Relaxed);
        {
            let mut per = s.stats.per_batch_size.lock().expect("stats lock");
            let e = per.entry(rows).or_insert((0, 0));
            e.0 += 1;
            e.1 += compute.as_nanos() as u64;
        }
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        s.stats.last_inference_ms.store(now_ms, Ordering::Relaxed);
        match result {
            Ok(mut parts) => {
                for (p, outputs) in batch.into_iter().zip(parts.drain(..)) {
                    let total = p.enqueued.elapsed();
                    s.stats.success.add(total);
                    let _ = p.reply.send(Ok(outputs));
                }
            }
            Err(e) => {
                for p in batch {
                    s.stats.fail.add(p.enqueued.elapsed());
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Concatenates the batch's inputs, runs the model, and splits the outputs per request.
fn run(s: &Shared, batch: &[Pending], rows: usize) -> Result<Vec<Vec<Tensor>>, ApiError> {
    let outputs = if batch.len() == 1 {
        s.model.infer(&batch[0].inputs)?
    } else {
        let inputs = concat_inputs(batch)?;
        s.model.infer(&inputs)?
    };
    let mut per_request: Vec<Vec<Tensor>> = batch.iter().map(|_| Vec::with_capacity(outputs.len())).collect();
    for out in outputs {
        let mut offset = 0;
        for (p, dest) in batch.iter().zip(per_request.iter_mut()) {
            let part = out.slice_rows(offset, p.rows).filter(|_| out.rows() == rows).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Internal,
                    format!("output {} has {} rows, expected {rows}", out.name, out.rows()),
                )
            })?;
            dest.push(part);
            offset += p.rows;
        }
    }
    Ok(per_request)
}

fn concat_inputs(batch: &[Pending]) -> Result<Vec<Tensor>, ApiError> {
    (0..batch[0].inputs.len())
        .map(|i| {
            let parts: Vec<&Tensor> = batch.iter().map(|p| &p.inputs[i]).collect();
            Tensor::concat_rows(&parts).ok_or_else(|| ApiError::new(ErrorKind::Internal, "mixed dtypes in one batch"))
        })
        .collect()
}
