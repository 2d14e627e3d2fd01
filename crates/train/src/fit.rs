//! The training loop: shuffled mini-batches, forward, fused loss gradient, backward,
//! optimizer step; validation, early stopping and a checkpoint at every epoch end.
//!
//! Reproducibility: initial weights, the shuffle of epoch `e` and the dropout masks of epoch
//! `e` come from separate random streams derived from the seed, so a run resumed at epoch `e`
//! continues exactly as the uninterrupted run would have.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, RwLock};
use std::time::Instant;

use lathe_formats::spec::{Activation, EarlyStoppingSpec, Monitor, Spec};
use lathe_formats::{EpochRecord, Evaluation, NamedTensor, TrainingInfo};
use lathe_sequential::{Gradients, Network, Rng};

use crate::checkpoint::{CheckpointState, CheckpointStore};
use crate::error::TrainError;
use crate::events::Event;
use crate::loss::Loss;
use crate::metrics::evaluate;
use crate::optim::{learning_rate, Optimizer};
use crate::prepare::Prepared;
use crate::shard::{add_gradients, helper, Done, Job, Shard};

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

struct Best {
    value: Option<f64>,
    epoch: usize,
    wait: usize,
    weights: Option<Vec<NamedTensor>>,
}

/// Trains the model of `spec` on `data`.
pub fn fit(spec: &Spec, data: &Prepared, opts: FitOptions) -> Result<FitResult, TrainError> {
    let seed = opts.seed;
    let mut net = Network::from_spec(spec, &mut Rng::derived(seed, STREAM_INIT, 0))?;
    let mut optimizer = Optimizer::new(&spec.compile.optimizer, &net);
    let loss = Loss::new(spec.compile.loss, net.final_activation().unwrap_or(Activation::Linear));
    let n = data.train.len();
    let bs = spec.fit.batch_size.min(n);
    let epochs = spec.fit.epochs;
    let total_steps = (n.div_ceil(bs) * epochs) as u64;
    let spec_json = spec.to_json();

    let mut history = Vec::new();
    let mut best = Best { value: None, epoch: 0, wait: 0, weights: None };
    let mut start_epoch = 0;
    let mut prior_seconds = 0.0;
    let mut resumed = false;
    if let (true, Some(store)) = (opts.resume, opts.checkpoints) {
        if store.exists() {
            let (state, tensors) = store.load()?;
            if state.spec != spec_json || state.data_fingerprint != data.fingerprint || state.seed != seed {
                return Err(TrainError::Checkpoint(format!(
                    "{}: the checkpoint was made with another spec, data or seed; train without --resume to start over",
                    store.dir().display()
                )));
            }
            let (net_t, rest): (Vec<_>, Vec<_>) = tensors.into_iter().partition(|t| t.name.starts_with("layers."));
            net.load_tensors(&net_t)?;
            let get = |name: &str| rest.iter().find(|t| t.name == format!("opt.{name}")).map(|t| t.data.clone());
            if !optimizer.restore(state.optimizer_step, get) {
                return Err(TrainError::Checkpoint(format!(
                    "{}: optimizer state does not fit the model",
                    store.dir().display()
                )));
            }
            let best_w: Vec<NamedTensor> = rest
                .iter()
                .filter_map(|t| t.name.strip_prefix("best.").map(|n| NamedTensor { name: n.to_string(), ..t.clone() }))
                .collect();
            best = Best {
                value: state.best_value,
                epoch: state.best_epoch,
                wait: state.wait,
                weights: (!best_w.is_empty()).then_some(best_w),
            };
            start_epoch = state.epochs_done;
            history = state.history;
            prior_seconds = state.fit_seconds;
            resumed = true;
            (opts.on_event)(&Event::Resumed { epochs_done: start_epoch });
        }
    }

    let early = spec.fit.early_stopping.as_ref();
    let threads = opts.threads.clamp(1, bs);
    let started = Instant::now();
    let mut stopped_early = false;
    let mut epochs_run = start_epoch;
    let mut phases = PhaseTimes::default();
    let net = RwLock::new(net);
    let read = || net.read().expect("network lock");

    std::thread::scope(|scope| -> Result<(), TrainError> {
        let mut helpers: Vec<Helper> = (1..threads)
            .map(|_| {
                let (jobs, job_rx) = mpsc::channel();
                let (done_tx, done) = mpsc::channel();
                let (net, train, loss) = (&net, &data.train, &loss);
                scope.spawn(move || helper(net, train, loss, job_rx, done_tx));
                Helper { jobs, done, grads: Some(read().zero_gradients()) }
            })
            .collect();
        let mut main = Shard::new(&read(), Rng::new(0));
        let mut order: Vec<usize> = (0..n).collect();
        for epoch in start_epoch..epochs {
            let epoch_start = Instant::now();
            (opts.on_event)(&Event::EpochStart { epoch: epoch + 1, epochs, samples: n });
            order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
            if spec.fit.shuffle {
                Rng::derived(seed, STREAM_SHUFFLE, epoch as u64).shuffle(&mut order);
            }
            main.rng = Rng::derived(seed, STREAM_DROPOUT, epoch as u64);
            for (t, h) in helpers.iter().enumerate() {
                let rng = Rng::derived(seed, STREAM_DROPOUT + 16 * (t as u64 + 1), epoch as u64);
                h.jobs.send((Job::Reseed(rng), None)).map_err(|_| helper_failed())?;
            }
            let base_lr = spec.compile.optimizer.lr();
            let schedule = spec.fit.lr_schedule.as_ref();
            let epoch_lr = learning_rate(base_lr, schedule, epoch, optimizer.step, total_steps);
            let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
            for (b, chunk) in order.chunks(bs).enumerate() {
                if opts.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                    return Err(TrainError::Interrupted);
                }
                let m = chunk.len();
                let parts: Vec<&[usize]> = chunk.chunks(m.div_ceil(threads)).collect();
                for (h, part) in helpers.iter_mut().zip(&parts[1..]) {
                    let job = Job::Step { indices: part.to_vec(), total: m };
                    h.jobs.send((job, h.grads.take())).map_err(|_| helper_failed())?;
                }
                let mut batch = main.compute(&read(), &data.train, parts[0], m, &loss, Some(&mut phases));
                let wait = Instant::now();
                for h in helpers.iter_mut().take(parts.len() - 1) {
                    let done = h.done.recv().map_err(|_| helper_failed())?;
                    add_gradients(&mut main.grads, &done.grads);
                    batch.sum += done.loss.sum;
                    batch.correct += done.loss.correct;
                    h.grads = Some(done.grads);
                }
                phases.wait += wait.elapsed().as_secs_f64();
                let update = Instant::now();
                {
                    let mut net = net.write().expect("network lock");
                    net.commit_statistics(main.workspace());
                    let lr = learning_rate(base_lr, schedule, epoch, optimizer.step, total_steps);
                    optimizer.apply(&mut net, &main.grads, lr as f32);
                }
                phases.optimizer += update.elapsed().as_secs_f64();
                loss_sum += batch.sum;
                correct += batch.correct;
                seen += m;
                if (b + 1) % PROGRESS_EVERY == 0 || seen == n {
                    (opts.on_event)(&Event::Progress {
                        epoch: epoch + 1,
                        seen,
                        samples: n,
                        loss: loss_sum / seen as f64,
                        accuracy: correct as f64 / seen as f64,
                    });
                }
            }
            let end_start = Instant::now();
            let net = read();
            let (val_loss, val_accuracy) = if data.validation.is_empty() {
                (None, None)
            } else {
                let e = evaluate(&net, &data.validation.x, &data.validation.y, &loss, &data.class_names);
                (Some(e.loss), Some(e.accuracy))
            };
            let record = EpochRecord {
                epoch: epoch + 1,
                loss: loss_sum / n as f64,
                accuracy: correct as f64 / n as f64,
                val_loss,
                val_accuracy,
                lr: epoch_lr,
                seconds: epoch_start.elapsed().as_secs_f64(),
            };
            (opts.on_event)(&Event::EpochEnd(record.clone()));
            history.push(record.clone());
            epochs_run = epoch + 1;
            if let Some(es) = early {
                best.observe(es, &record, &net);
            }
            if let Some(store) = opts.checkpoints {
                let fit_seconds = prior_seconds + started.elapsed().as_secs_f64();
                save_checkpoint(store, &net, &optimizer, &best, &history, &spec_json, data, seed, fit_seconds)?;
            }
            phases.epoch_end += end_start.elapsed().as_secs_f64();
            if early.is_some_and(|es| best.wait >= es.patience.max(1)) && epoch + 1 < epochs {
                stopped_early = true;
                (opts.on_event)(&Event::EarlyStop { epoch: epoch + 1, best_epoch: best.epoch });
                break;
            }
        }
        Ok(())
    })?;
    let fit_seconds = prior_seconds + started.elapsed().as_secs_f64();
    let mut net = net.into_inner().expect("network lock");
    let mut best_epoch = epochs_run;
    if let Some(w) = best.weights.take() {
        net.load_tensors(&w)?;
        best_epoch = best.epoch;
    }
    let test = evaluate(&net, &data.test.x, &data.test.y, &loss, &data.class_names);
    Ok(FitResult {
        phases,
        network: net,
        history,
        info: TrainingInfo { epochs_run, stopped_early, best_epoch, fit_seconds, resumed },
        test,
    })
}

/// The main thread's end of a helper thread.
struct Helper {
    jobs: mpsc::Sender<(Job, Option<Gradients>)>,
    done: mpsc::Receiver<Done>,
    grads: Option<Gradients>,
}

fn helper_failed() -> TrainError {
    TrainError::Thread("a training thread stopped unexpectedly".into())
}

impl Best {
    /// Records an epoch's monitored value; keeps the weights when it improved.
    fn observe(&mut self, es: &EarlyStoppingSpec, record: &EpochRecord, net: &Network) {
        let value = match es.monitor {
            Monitor::Loss => Some(record.loss),
            Monitor::Accuracy => Some(record.accuracy),
            Monitor::ValLoss => record.val_loss,
            Monitor::ValAccuracy => record.val_accuracy,
        }
        .unwrap_or(f64::NAN);
        let improved = match self.value {
            None => true,
            Some(b) if es.monitor.higher_is_better() => value > b + es.min_delta,
            Some(b) => value < b - es.min_delta,
        };
        if improved {
            self.value = Some(value);
            self.epoch = record.epoch;
            self.wait = 0;
            if es.restore_best {
                self.weights = Some(net.tensors());
            }
        } else {
            self.wait += 1;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    store: &CheckpointStore,
    net: &Network,
    optimizer: &Optimizer,
    best: &Best,
    history: &[EpochRecord],
    spec_json: &serde_json::Value,
    data: &Prepared,
    seed: u64,
    fit_seconds: f64,
) -> Result<(), TrainError> {
    let mut tensors = net.tensors();
    for (name, values) in optimizer.state() {
        tensors.push(NamedTensor { name: format!("opt.{name}"), shape: vec![values.len()], data: values.to_vec() });
    }
    for t in best.weights.iter().flatten() {
        tensors.push(NamedTensor { name: format!("best.{}", t.name), ..t.clone() });
    }
    let state = CheckpointState {
        epochs_done: history.len(),
        history: history.to_vec(),
        best_value: best.value,
        best_epoch: best.epoch,
        wait: best.wait,
        optimizer_step: optimizer.step,
        spec: spec_json.clone(),
        data_fingerprint: data.fingerprint.clone(),
        seed,
        fit_seconds,
        tensors_sha256: String::new(),
        tensors_file: String::new(),
    };
    store.save(state, &tensors)
}
