//! What a fit carries from epoch to epoch, and what a checkpoint saves and restores of it.

use lathe_formats::spec::{EarlyStoppingSpec, Monitor};
use lathe_formats::{EpochRecord, NamedTensor};
use lathe_sequential::Network;

use super::Setup;
use crate::checkpoint::{CheckpointState, CheckpointStore};
use crate::error::TrainError;
use crate::optim::Optimizer;

/// The best epoch so far, for early stopping.
pub(super) struct Best {
    /// The monitored value at the best epoch.
    pub value: Option<f64>,
    /// The best epoch (1-based).
    pub epoch: usize,
    /// Epochs since the best one.
    pub wait: usize,
    /// The best epoch's weights, when early stopping restores them.
    pub weights: Option<Vec<NamedTensor>>,
}

/// Where a fit stands: what a checkpoint holds besides the weights.
pub(super) struct Progress {
    /// Per-epoch metrics so far.
    pub history: Vec<EpochRecord>,
    /// The best epoch so far.
    pub best: Best,
    /// The first epoch this run trains (0-based; the checkpoint's epochs done when resumed).
    pub start_epoch: usize,
    /// Seconds spent fitting before this run (when resumed).
    pub prior_seconds: f64,
    /// Whether this run continues from a checkpoint.
    pub resumed: bool,
}

impl Progress {
    /// A fit from the first epoch.
    pub fn fresh() -> Progress {
        let best = Best { value: None, epoch: 0, wait: 0, weights: None };
        Progress { history: Vec::new(), best, start_epoch: 0, prior_seconds: 0.0, resumed: false }
    }
}

/// Loads the checkpoint in `store` into `net` and `optimizer`, refusing one made with another
/// spec, data or seed.
pub(super) fn resume(
    setup: &Setup,
    store: &CheckpointStore,
    net: &mut Network,
    optimizer: &mut Optimizer,
) -> Result<Progress, TrainError> {
    let (state, tensors) = store.load()?;
    if state.spec != setup.spec_json || state.data_fingerprint != setup.data.fingerprint || state.seed != setup.seed {
        return Err(TrainError::Checkpoint(format!(
            "{}: the checkpoint was made with another spec, data or seed; train without --resume to start over",
            store.dir().display()
        )));
    }
    let (layers, rest): (Vec<_>, Vec<_>) = tensors.into_iter().partition(|t| t.name.starts_with("layers."));
    net.load_tensors(&layers)?;
    let get = |name: &str| rest.iter().find(|t| t.name == format!("opt.{name}")).map(|t| t.data.clone());
    if !optimizer.restore(state.optimizer_step, get) {
        let message = format!("{}: optimizer state does not fit the model", store.dir().display());
        return Err(TrainError::Checkpoint(message));
    }
    let best_weights: Vec<NamedTensor> = rest
        .iter()
        .filter_map(|t| t.name.strip_prefix("best.").map(|n| NamedTensor { name: n.to_string(), ..t.clone() }))
        .collect();
    let best = Best {
        value: state.best_value,
        epoch: state.best_epoch,
        wait: state.wait,
        weights: (!best_weights.is_empty()).then_some(best_weights),
    };
    Ok(Progress {
        history: state.history,
        best,
        start_epoch: state.epochs_done,
        prior_seconds: state.fit_seconds,
        resumed: true,
    })
}

/// Writes an epoch-end checkpoint: weights, optimizer state, best weights and progress.
pub(super) fn save_checkpoint(
    setup: &Setup,
    store: &CheckpointStore,
    net: &Network,
    optimizer: &Optimizer,
    progress: &Progress,
    fit_seconds: f64,
) -> Result<(), TrainError> {
    let mut tensors = net.tensors();
    for (name, values) in optimizer.state() {
        tensors.push(NamedTensor { name: format!("opt.{name}"), shape: vec![values.len()], data: values.to_vec() });
    }
    for t in progress.best.weights.iter().flatten() {
        tensors.push(NamedTensor { name: format!("best.{}", t.name), ..t.clone() });
    }
    let state = CheckpointState {
        epochs_done: progress.history.len(),
        history: progress.history.clone(),
        best_value: progress.best.value,
        best_epoch: progress.best.epoch,
        wait: progress.best.wait,
        optimizer_step: optimizer.step,
        spec: setup.spec_json.clone(),
        data_fingerprint: setup.data.fingerprint.clone(),
        seed: setup.seed,
        fit_seconds,
        tensors_sha256: String::new(),
        tensors_file: String::new(),
    };
    store.save(state, &tensors)
}

impl Best {
    /// Records an epoch's monitored value; keeps the weights when it improved.
    pub fn observe(&mut self, es: &EarlyStoppingSpec, record: &EpochRecord, net: &Network) {
        let value = match es.monitor {
            Monitor::Loss => Some(record.loss),
            Monitor::Accuracy => record.accuracy,
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
