//! The training loop: shuffled mini-batches, forward, fused loss gradient, backward,
//! optimizer step; validation, early stopping and a checkpoint at every epoch end.
//!
//! Reproducibility: initial weights, the shuffle of epoch `e` and the dropout masks of epoch
//! `e` come from separate random streams derived from the seed, so a run resumed at epoch `e`
//! continues exactly as the uninterrupted run would have.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use lathe_engine_native::{Network, Rng, Workspace};
use lathe_formats::spec::{Activation, Monitor, Spec};
use lathe_formats::{EpochRecord, Evaluation, NamedTensor, TrainingInfo};

use crate::checkpoint::{CheckpointState, CheckpointStore};
use crate::error::TrainError;
use crate::events::Event;
use crate::loss::Loss;
use crate::metrics::evaluate;
use crate::optim::{learning_rate, Optimizer};
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
    let (len, width) = (net.input_len(), net.output_len());
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
                return Err(TrainError::Checkpoint(format!("{}: optimizer state does not fit the model", store.dir().display())));
            }
            let best_w: Vec<NamedTensor> = rest
                .iter()
                .filter_map(|t| t.name.strip_prefix("best.").map(|n| NamedTensor { name: n.to_string(), ..t.clone() }))
                .collect();
            best = Best { value: state.best_value, epoch: state.best_epoch, wait: state.wait, weights: (!best_w.is_empty()).then_some(best_w) };
            start_epoch = state.epochs_done;
            history = state.history;
            prior_seconds = state.fit_seconds;
            resumed = true;
            (opts.on_event)(&Event::Resumed { epochs_done: start_epoch });
        }
    }

    let early = spec.fit.early_stopping.as_ref();
    let mut ws = Workspace::default();
    let mut grads = net.zero_gradients();
    let mut xb = vec![0f32; bs * len];
    let mut yb = vec![0u32; bs];
    let mut gbuf = vec![0f32; bs * width];
    let mut order: Vec<usize> = (0..n).collect();
    let started = Instant::now();
    let mut stopped_early = false;
    let mut epochs_run = start_epoch;
    let mut phases = PhaseTimes::default();
    let mut lap = Instant::now();
    let mut tick = |slot: &mut f64| {
        let now = Instant::now();
        *slot += (now - lap).as_secs_f64();
        lap = now;
    };

    for epoch in start_epoch..epochs {
        let epoch_start = Instant::now();
        (opts.on_event)(&Event::EpochStart { epoch: epoch + 1, epochs, samples: n });
        order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
        if spec.fit.shuffle {
            Rng::derived(seed, STREAM_SHUFFLE, epoch as u64).shuffle(&mut order);
        }
        let mut dropout_rng = Rng::derived(seed, STREAM_DROPOUT, epoch as u64);
        let epoch_lr = learning_rate(spec.compile.optimizer.lr(), spec.fit.lr_schedule.as_ref(), epoch, optimizer.step, total_steps);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for (b, chunk) in order.chunks(bs).enumerate() {
            if opts.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Err(TrainError::Interrupted);
            }
            let m = chunk.len();
            tick(&mut phases.epoch_end);
            for (j, &i) in chunk.iter().enumerate() {
                xb[j * len..(j + 1) * len].copy_from_slice(&data.train.x[i * len..(i + 1) * len]);
                yb[j] = data.train.y[i];
            }
            let lr = learning_rate(spec.compile.optimizer.lr(), spec.fit.lr_schedule.as_ref(), epoch, optimizer.step, total_steps);
            tick(&mut phases.gather);
            let out = net.forward(&xb[..m * len], m, &mut ws, true, &mut dropout_rng);
            tick(&mut phases.forward);
            let batch = loss.evaluate(out, &yb[..m], width, Some(&mut gbuf[..m * width]));
            net.output_grad(&mut ws).copy_from_slice(&gbuf[..m * width]);
            tick(&mut phases.loss);
            net.backward(&xb[..m * len], &mut ws, &mut grads, loss.fused());
            net.commit_statistics(&ws);
            tick(&mut phases.backward);
            optimizer.apply(&mut net, &grads, lr as f32);
            tick(&mut phases.optimizer);
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
            let value = match es.monitor {
                Monitor::Loss => Some(record.loss),
                Monitor::Accuracy => Some(record.accuracy),
                Monitor::ValLoss => record.val_loss,
                Monitor::ValAccuracy => record.val_accuracy,
            }
            .unwrap_or(f64::NAN);
            let improved = match best.value {
                None => true,
                Some(b) if es.monitor.higher_is_better() => value > b + es.min_delta,
                Some(b) => value < b - es.min_delta,
            };
            if improved {
                best.value = Some(value);
                best.epoch = epoch + 1;
                best.wait = 0;
                if es.restore_best {
                    best.weights = Some(net.tensors());
                }
            } else {
                best.wait += 1;
            }
        }
        if let Some(store) = opts.checkpoints {
            save_checkpoint(store, &net, &optimizer, &best, &history, &spec_json, data, seed, prior_seconds + started.elapsed().as_secs_f64())?;
        }
        if early.is_some_and(|es| best.wait >= es.patience.max(1)) {
            stopped_early = epoch + 1 < epochs;
            if stopped_early {
                (opts.on_event)(&Event::EarlyStop { epoch: epoch + 1, best_epoch: best.epoch });
                break;
            }
        }
    }
    tick(&mut phases.epoch_end);
    let fit_seconds = prior_seconds + started.elapsed().as_secs_f64();
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
    };
    store.save(state, &tensors)
}
