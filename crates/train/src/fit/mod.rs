//! The training loop: shuffled mini-batches, forward, fused loss gradient, backward,
//! optimizer step; validation, early stopping and a checkpoint at every epoch end.
//!
//! Reproducibility: initial weights, the shuffle of epoch `e` and the dropout masks of epoch
//! `e` come from separate random streams derived from the seed, so a run resumed at epoch `e`
//! continues exactly as the uninterrupted run would have.

mod epochs;
mod progress;

use std::sync::atomic::AtomicBool;
use std::sync::RwLock;
use std::time::Instant;

use lathe_formats::spec::{Activation, Spec};
use lathe_formats::{EpochRecord, Evaluation, TrainingInfo};
use lathe_sequential::{Network, Rng};

use self::epochs::{run_epochs, Outcome};
use self::progress::{resume, Progress};
use crate::checkpoint::CheckpointStore;
use crate::error::TrainError;
use crate::events::Event;
use crate::loss::Loss;
use crate::metrics::evaluate;
use crate::optim::Optimizer;
use crate::prepare::Prepared;

const STREAM_INIT: u64 = 1;
const STREAM_SHUFFLE: u64 = 2;
const STREAM_DROPOUT: u64 = 3;
/// Progress events are sent every this many batches.
const PROGRESS_EVERY: usize = 25;

/// How to run a fit.
pub struct FitOptions<'a> {
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
    /// Threads each batch is split over (data parallel; results are reproducible for a
    /// given seed and thread count).
    pub threads: usize,
    /// Set to stop at the next batch boundary (Ctrl-C).
    pub stop: Option<&'a AtomicBool>,
    /// Where to write epoch-end checkpoints.
    pub checkpoints: Option<&'a CheckpointStore>,
    /// Continue from the checkpoint in `checkpoints`, if there is one.
    pub resume: bool,
    /// Receives progress events.
    pub on_event: &'a mut dyn FnMut(&Event),
}

/// Where the fit's wall time went, in seconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PhaseTimes {
    /// Copying shuffled samples into the batch buffer.
    pub gather: f64,
    /// Forward passes.
    pub forward: f64,
    /// Loss and its gradient.
    pub loss: f64,
    /// Backward passes.
    pub backward: f64,
    /// Optimizer updates.
    pub optimizer: f64,
    /// Waiting for helper threads and summing their gradients.
    pub wait: f64,
    /// Validation passes and checkpoints at epoch ends.
    pub epoch_end: f64,
}

/// The outcome of a fit.
pub struct FitResult {
    /// Where the time went.
    pub phases: PhaseTimes,
    /// The trained network (best weights when early stopping restores them).
    pub network: Network,
    /// Per-epoch metrics.
    pub history: Vec<EpochRecord>,
    /// Summary of the run.
    pub info: TrainingInfo,
    /// Evaluation on the test split.
    pub test: Evaluation,
}

/// Steps below this many FLOPs are too small to split across threads: the hand-off would
/// cost more than the arithmetic saved.
const PARALLEL_MIN_FLOPS_PER_STEP: f64 = 1e8;

/// Threads worth using for `spec` on this machine: all cores (up to 8) for steps large
/// enough to split, one otherwise.
pub fn auto_threads(spec: &Spec) -> usize {
    let step = spec.train_flops_per_sample() * spec.fit.batch_size as f64;
    if step < PARALLEL_MIN_FLOPS_PER_STEP {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// The fixed parts of a fit.
struct Setup<'a> {
    spec: &'a Spec,
    data: &'a Prepared,
    seed: u64,
    loss: Loss,
    /// Training samples.
    n: usize,
    /// Batch size (at most `n`).
    bs: usize,
    epochs: usize,
    /// Optimizer steps of the whole fit, for learning-rate schedules.
    total_steps: u64,
    /// The spec as a checkpoint records it.
    spec_json: serde_json::Value,
    /// Threads each batch is split over (at most the batch size).
    threads: usize,
}

/// Trains the model of `spec` (the prepared, resolved spec: `data.spec`) on `data`: build the
/// network and optimizer, resume from a checkpoint when asked, run the epochs, restore the best
/// weights, evaluate on the test split.
pub fn fit(spec: &Spec, data: &Prepared, mut opts: FitOptions) -> Result<FitResult, TrainError> {
    let (setup, mut net, mut optimizer) = prepare(spec, data, &opts)?;
    let mut progress = match opts.checkpoints {
        Some(store) if opts.resume && store.exists() => {
            let progress = resume(&setup, store, &mut net, &mut optimizer)?;
            (opts.on_event)(&Event::Resumed { epochs_done: progress.start_epoch });
            progress
        }
        _ => Progress::fresh(),
    };
    let started = Instant::now();
    let net = RwLock::new(net);
    let outcome = run_epochs(&setup, &net, &mut optimizer, &mut progress, &mut opts, started)?;
    let fit_seconds = progress.prior_seconds + started.elapsed().as_secs_f64();
    finish(&setup, net.into_inner().expect("network lock"), progress, outcome, fit_seconds)
}

/// The network (initialised from stream `STREAM_INIT`), its optimizer and the fixed sizes.
fn prepare<'a>(
    spec: &'a Spec,
    data: &'a Prepared,
    opts: &FitOptions,
) -> Result<(Setup<'a>, Network, Optimizer), TrainError> {
    let net = Network::from_spec(spec, &mut Rng::derived(opts.seed, STREAM_INIT, 0))?;
    let optimizer = Optimizer::new(&spec.compile.optimizer, &net);
    let loss = Loss::for_task(spec.compile.loss, net.final_activation().unwrap_or(Activation::Linear), data.task);
    let n = data.train.len();
    let bs = spec.fit.batch_size.min(n);
    let setup = Setup {
        spec,
        data,
        seed: opts.seed,
        loss,
        n,
        bs,
        epochs: spec.fit.epochs,
        total_steps: (n.div_ceil(bs) * spec.fit.epochs) as u64,
        spec_json: spec.to_json(),
        threads: opts.threads.clamp(1, bs),
    };
    Ok((setup, net, optimizer))
}

/// Restores the best weights when early stopping kept them, and evaluates on the test split.
fn finish(
    setup: &Setup,
    mut net: Network,
    mut progress: Progress,
    outcome: Outcome,
    fit_seconds: f64,
) -> Result<FitResult, TrainError> {
    let mut best_epoch = outcome.epochs_run;
    if let Some(w) = progress.best.weights.take() {
        net.load_tensors(&w)?;
        best_epoch = progress.best.epoch;
    }
    let data = setup.data;
    let test = evaluate(&net, &data.test.x, &data.test.y, &setup.loss, data.truths());
    let info = TrainingInfo {
        epochs_run: outcome.epochs_run,
        stopped_early: outcome.stopped_early,
        best_epoch,
        fit_seconds,
        resumed: progress.resumed,
    };
    Ok(FitResult { phases: outcome.phases, network: net, history: progress.history, info, test })
}
