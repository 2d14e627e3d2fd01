//! The `compile` (optimizer, loss) and `fit` (epochs, batches, schedules) sections.

use serde::Serialize;
use serde_json::Value;

use super::reader::{describe, err, number, Fields};
use super::SpecError;

/// The optimizer and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OptimizerSpec {
    /// Stochastic gradient descent with optional (Nesterov) momentum.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum in [0, 1).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// Adam.
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay rates of the first and second moments.
        betas: [f64; 2],
        /// Added to the denominator.
        eps: f64,
    },
    /// Adam with decoupled weight decay (applied to kernels, not to biases or normalisation).
    Adamw {
        /// Learning rate.
        lr: f64,
        /// Decay rates of the first and second moments.
        betas: [f64; 2],
        /// Added to the denominator.
        eps: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
}

impl OptimizerSpec {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerSpec::Sgd { lr, .. } | OptimizerSpec::Adam { lr, .. } | OptimizerSpec::Adamw { lr, .. } => *lr,
        }
    }

    fn parse(v: &Value, path: &str) -> Result<OptimizerSpec, SpecError> {
        let owned;
        let v = match v {
            Value::String(s) => {
                owned = serde_json::json!({ "type": s });
                &owned
            }
            other => other,
        };
        let mut f = Fields::new(v, path)?;
        let type_path = f.key_path("type");
        let kind =
            f.opt_str("type")?.ok_or_else(|| err(&type_path, "missing required key; expected sgd, adam or adamw"))?;
        let opt = match kind {
            "sgd" => OptimizerSpec::Sgd {
                lr: f.opt_positive_f64("lr")?.unwrap_or(0.01),
                momentum: f.opt_in_range("momentum", 0.0, 1.0, true)?.unwrap_or(0.0),
                nesterov: f.opt_bool("nesterov")?.unwrap_or(false),
            },
            "adam" | "adamw" => {
                let lr = f.opt_positive_f64("lr")?.unwrap_or(0.001);
                let betas = betas(&mut f)?;
                let eps = f.opt_positive_f64("eps")?.unwrap_or(1e-7);
                if kind == "adam" {
                    OptimizerSpec::Adam { lr, betas, eps }
                } else {
                    OptimizerSpec::Adamw {
                        lr,
                        betas,
                        eps,
                        weight_decay: f.opt_in_range("weight_decay", 0.0, 1.0, false)?.unwrap_or(0.004),
                    }
                }
            }
            other => return Err(err(&type_path, format!("unknown optimizer {other:?}; expected sgd, adam or adamw"))),
        };
        f.finish()?;
        Ok(opt)
    }
}

fn betas(f: &mut Fields) -> Result<[f64; 2], SpecError> {
    let path = f.key_path("betas");
    let Some(v) = f.get("betas") else {
        return Ok([0.9, 0.999]);
    };
    let bad = || err(&path, "expected two numbers in [0, 1), e.g. [0.9, 0.999]");
    let Value::Array(items) = v else {
        return Err(bad());
    };
    if items.len() != 2 {
        return Err(bad());
    }
    let mut out = [0.0; 2];
    for (i, item) in items.iter().enumerate() {
        let x = number(item, &format!("{path}[{i}]"))?;
        if !(0.0..1.0).contains(&x) {
            return Err(err(&format!("{path}[{i}]"), format!("expected a number in [0, 1), got {x}")));
        }
        out[i] = x;
    }
    Ok(out)
}

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Cross-entropy with integer class labels.
    SparseCategoricalCrossentropy,
    /// Cross-entropy with one-hot targets (built from the class labels).
    CategoricalCrossentropy,
    /// Binary cross-entropy: one sigmoid unit for two classes, or one per class (one-hot).
    BinaryCrossentropy,
    /// Mean squared error against one-hot targets.
    Mse,
    /// Mean absolute error against one-hot targets.
    Mae,
    /// Huber loss with δ = 1 (on standardised targets): squared below δ, linear above.
    Huber,
}

const LOSSES: &str = "sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy, mse, mae, huber";

impl LossKind {
    fn parse(v: &Value, path: &str) -> Result<LossKind, SpecError> {
        let Value::String(s) = v else {
            return Err(err(path, format!("expected one of {LOSSES}, got {}", describe(v))));
        };
        Ok(match s.as_str() {
            "sparse_categorical_crossentropy" => LossKind::SparseCategoricalCrossentropy,
            "categorical_crossentropy" => LossKind::CategoricalCrossentropy,
            "binary_crossentropy" => LossKind::BinaryCrossentropy,
            "mse" | "mean_squared_error" => LossKind::Mse,
            "mae" | "mean_absolute_error" => LossKind::Mae,
            "huber" => LossKind::Huber,
            other => return Err(err(path, format!("unknown loss {other:?}; expected one of {LOSSES}"))),
        })
    }
}

/// Optimizer and loss.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompileSpec {
    /// The optimizer.
    pub optimizer: OptimizerSpec,
    /// The loss.
    pub loss: LossKind,
}

impl CompileSpec {
    pub(crate) fn parse(v: &Value, path: &str) -> Result<CompileSpec, SpecError> {
        let mut f = Fields::new(v, path)?;
        let opt_path = f.key_path("optimizer");
        let optimizer = OptimizerSpec::parse(f.req("optimizer")?, &opt_path)?;
        let loss_path = f.key_path("loss");
        let loss = LossKind::parse(f.req("loss")?, &loss_path)?;
        f.finish()?;
        Ok(CompileSpec { optimizer, loss })
    }
}

/// The quantity early stopping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// Training loss (lower is better).
    Loss,
    /// Training accuracy (higher is better).
    Accuracy,
    /// Validation loss (lower is better).
    ValLoss,
    /// Validation accuracy (higher is better).
    ValAccuracy,
}

impl Monitor {
    /// Whether the quantity comes from the validation split.
    pub fn needs_validation(self) -> bool {
        matches!(self, Monitor::ValLoss | Monitor::ValAccuracy)
    }

    /// Whether the quantity is an accuracy (classifiers only).
    pub fn is_accuracy(self) -> bool {
        matches!(self, Monitor::Accuracy | Monitor::ValAccuracy)
    }

    /// Whether larger values are better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Monitor::Accuracy | Monitor::ValAccuracy)
    }
}

/// Stop when the monitored quantity stops improving.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EarlyStoppingSpec {
    /// What to watch.
    pub monitor: Monitor,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Restore the weights of the best epoch at the end.
    pub restore_best: bool,
}

/// Learning-rate schedule over epochs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LrSchedule {
    /// Multiply the rate by `gamma` every `step_epochs` epochs.
    Step {
        /// Epochs between decays.
        step_epochs: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// Cosine decay from the base rate to `min_lr` over all training steps.
    Cosine {
        /// Final learning rate.
        min_lr: f64,
    },
}

/// How to fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitSpec {
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per gradient step.
    pub batch_size: usize,
    /// Fraction of the training data (taken from its end) held out for validation.
    pub validation_split: f64,
    /// Shuffle the training data every epoch.
    pub shuffle: bool,
    /// Seed of initialisation, shuffling and dropout; `--seed` overrides it.
    pub seed: u64,
    /// Optional early stopping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingSpec>,
    /// Optional learning-rate schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_schedule: Option<LrSchedule>,
}

impl Default for FitSpec {
    fn default() -> Self {
        FitSpec {
            epochs: 1,
            batch_size: 32,
            validation_split: 0.0,
            shuffle: true,
            seed: 42,
            early_stopping: None,
            lr_schedule: None,
        }
    }
}

impl FitSpec {
    pub(crate) fn parse(v: &Value, path: &str) -> Result<FitSpec, SpecError> {
        let d = FitSpec::default();
        let mut f = Fields::new(v, path)?;
        let seed_path = f.key_path("seed");
        let seed = match f.get("seed") {
            None => d.seed,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| err(&seed_path, format!("expected a non-negative integer, got {}", describe(v))))?,
        };
        let fit = FitSpec {
            epochs: f.opt_positive("epochs")?.unwrap_or(d.epochs),
            batch_size: f.opt_positive("batch_size")?.unwrap_or(d.batch_size),
            validation_split: f.opt_in_range("validation_split", 0.0, 1.0, true)?.unwrap_or(0.0),
            shuffle: f.opt_bool("shuffle")?.unwrap_or(true),
            seed,
            early_stopping: {
                let p = f.key_path("early_stopping");
                f.get("early_stopping").map(|v| parse_early_stopping(v, &p)).transpose()?
            },
            lr_schedule: {
                let p = f.key_path("lr_schedule");
                f.get("lr_schedule").map(|v| parse_schedule(v, &p)).transpose()?
            },
        };
        f.finish()?;
        Ok(fit)
    }
}

fn parse_early_stopping(v: &Value, path: &str) -> Result<EarlyStoppingSpec, SpecError> {
    let mut f = Fields::new(v, path)?;
    let monitor = match f.opt_str("monitor")? {
        None | Some("val_loss") => Monitor::ValLoss,
        Some("val_accuracy") => Monitor::ValAccuracy,
        Some("loss") => Monitor::Loss,
        Some("accuracy") => Monitor::Accuracy,
        Some(other) => {
            return Err(err(
                &f.key_path("monitor"),
                format!("expected one of loss, accuracy, val_loss, val_accuracy, got {other:?}"),
            ))
        }
    };
    let patience_path = f.key_path("patience");
    let patience = match f.get("patience") {
        None => 3,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| err(&patience_path, format!("expected a non-negative integer, got {}", describe(v))))?
            as usize,
    };
    let es = EarlyStoppingSpec {
        monitor,
        patience,
        min_delta: f.opt_in_range("min_delta", 0.0, f64::MAX, false)?.unwrap_or(0.0),
        restore_best: f.opt_bool("restore_best")?.unwrap_or(true),
    };
    f.finish()?;
    Ok(es)
}

fn parse_schedule(v: &Value, path: &str) -> Result<LrSchedule, SpecError> {
    let mut f = Fields::new(v, path)?;
    let type_path = f.key_path("type");
    let s = match f.opt_str("type")? {
        Some("step") => LrSchedule::Step {
            step_epochs: f.opt_positive("step_epochs")?.unwrap_or(1),
            gamma: f.opt_in_range("gamma", 0.0, 1.0, false)?.unwrap_or(0.5),
        },
        Some("cosine") => LrSchedule::Cosine { min_lr: f.opt_in_range("min_lr", 0.0, f64::MAX, false)?.unwrap_or(0.0) },
        Some(other) => return Err(err(&type_path, format!("expected step or cosine, got {other:?}"))),
        None => return Err(err(&type_path, "missing required key; expected step or cosine")),
    };
    f.finish()?;
    Ok(s)
}
