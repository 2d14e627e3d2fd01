//! Layer kinds of the spec and their parsing.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::reader::{describe, err, pair, positive, Fields};
use super::SpecError;

/// An elementwise (or, for softmax, per-row) activation function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// Identity.
    Linear,
    /// max(0, x).
    Relu,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// Gaussian error linear unit (tanh approximation).
    Gelu,
    /// x for x > 0, alpha·x otherwise.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
}

/// Default negative slope of `leaky_relu`.
pub const DEFAULT_LEAKY_ALPHA: f32 = 0.01;

const ACTIVATIONS: &str = "linear, relu, sigmoid, tanh, softmax, gelu, leaky_relu";

impl Activation {
    fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
            Activation::Gelu => "gelu",
            Activation::LeakyRelu { .. } => "leaky_relu",
        }
    }

    fn from_name(name: &str, path: &str) -> Result<Activation, SpecError> {
        Ok(match name {
            "linear" | "none" => Activation::Linear,
            "relu" => Activation::Relu,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "softmax" => Activation::Softmax,
            "gelu" => Activation::Gelu,
            "leaky_relu" => Activation::LeakyRelu { alpha: DEFAULT_LEAKY_ALPHA },
            other => return Err(err(path, format!("unknown activation {other:?}; expected one of: {ACTIVATIONS}"))),
        })
    }

    /// Parses `relu` or `{type: leaky_relu, alpha: 0.2}`.
    pub(crate) fn parse(v: &Value, path: &str) -> Result<Activation, SpecError> {
        match v {
            Value::String(s) => Self::from_name(s, path),
            Value::Object(_) => {
                let mut f = Fields::new(v, path)?;
                let name = f.opt_str("type")?.ok_or_else(|| err(&f.key_path("type"), "missing required key"))?;
                let mut act = Self::from_name(name, &f.key_path("type"))?;
                if let Activation::LeakyRelu { alpha } = &mut act {
                    if let Some(a) = f.opt_in_range("alpha", 0.0, 1.0, false)? {
                        *alpha = a as f32;
                    }
                }
                f.finish()?;
                Ok(act)
            }
            other => Err(err(path, format!("expected an activation name ({ACTIVATIONS}), got {}", describe(other)))),
        }
    }
}

impl Serialize for Activation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Activation::LeakyRelu { alpha } if *alpha != DEFAULT_LEAKY_ALPHA => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "leaky_relu")?;
                m.serialize_entry("alpha", alpha)?;
                m.end()
            }
            other => s.serialize_str(other.name()),
        }
    }
}

/// Padding of convolutions and pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// No padding: the window stays inside the input.
    Valid,
    /// Zero padding so that the output has ceil(input / stride) positions.
    Same,
}

/// One layer of a sequential model.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    /// Flattens one sample to a vector.
    Flatten,
    /// Fully connected layer on a flat input.
    Dense {
        /// Output size; [`AUTO_UNITS`](super::AUTO_UNITS) when written `auto`.
        #[serde(serialize_with = "super::task::serialize_units")]
        units: usize,
        /// Activation applied to the output.
        activation: Activation,
    },
    /// Randomly zeroes a fraction of values during training (inverted dropout).
    Dropout {
        /// Fraction dropped, in [0, 1).
        rate: f32,
    },
    /// 2-D convolution over a `[height, width, channels]` input.
    Conv2d {
        /// Number of output channels.
        filters: usize,
        /// Kernel height and width.
        kernel: [usize; 2],
        /// Stride along height and width.
        stride: [usize; 2],
        /// Padding mode.
        padding: Padding,
        /// Activation applied to the output.
        activation: Activation,
    },
    /// Maximum over windows.
    MaxPool2d {
        /// Window height and width.
        pool: [usize; 2],
        /// Stride; defaults to the window size.
        stride: [usize; 2],
        /// Padding mode.
        padding: Padding,
    },
    /// Mean over windows (padding excluded from the mean).
    AvgPool2d {
        /// Window height and width.
        pool: [usize; 2],
        /// Stride; defaults to the window size.
        stride: [usize; 2],
        /// Padding mode.
        padding: Padding,
    },
    /// Batch normalisation over the last axis.
    BatchNorm {
        /// Moving-average momentum of the inference statistics.
        momentum: f32,
        /// Added to the variance.
        epsilon: f32,
    },
    /// A standalone activation.
    Activation {
        /// The function.
        activation: Activation,
    },
}

const LAYER_TYPES: &str = "flatten, dense, dropout, conv2d, max_pool2d, avg_pool2d, batch_norm, activation";

impl LayerSpec {
    /// Parses one layer at `path` (e.g. `layers[2]`).
    pub(crate) fn parse(v: &Value, path: &str) -> Result<LayerSpec, SpecError> {
        let mut f = Fields::new(v, path)?;
        let type_path = f.key_path("type");
        let kind = f
            .opt_str("type")?
            .ok_or_else(|| err(&type_path, format!("missing required key; expected one of: {LAYER_TYPES}")))?;
        let layer = match kind {
            "flatten" => LayerSpec::Flatten,
            "dense" => LayerSpec::Dense { units: units_field(&mut f)?, activation: activation_field(&mut f)? },
            "dropout" => LayerSpec::Dropout {
                rate: f
                    .opt_in_range("rate", 0.0, 1.0, true)?
                    .ok_or_else(|| err(&f.key_path("rate"), "missing required key"))? as f32,
            },
            "conv2d" => {
                let filters = f.req_positive("filters")?;
                let kernel_path = f.key_path("kernel");
                let kernel = pair(f.req("kernel")?, &kernel_path)?;
                let stride = opt_pair(&mut f, "stride")?.unwrap_or([1, 1]);
                let padding = padding_field(&mut f)?;
                LayerSpec::Conv2d { filters, kernel, stride, padding, activation: activation_field(&mut f)? }
            }
            "max_pool2d" | "avg_pool2d" => {
                let pool = opt_pair(&mut f, "pool")?.unwrap_or([2, 2]);
                let stride = opt_pair(&mut f, "stride")?.unwrap_or(pool);
                let padding = padding_field(&mut f)?;
                if kind == "max_pool2d" {
                    LayerSpec::MaxPool2d { pool, stride, padding }
                } else {
                    LayerSpec::AvgPool2d { pool, stride, padding }
                }
            }
            "batch_norm" => LayerSpec::BatchNorm {
                momentum: f.opt_in_range("momentum", 0.0, 1.0, true)?.unwrap_or(0.99) as f32,
                epsilon: f.opt_positive_f64("epsilon")?.unwrap_or(1e-3) as f32,
            },
            "activation" => {
                let act_path = f.key_path("activation");
                LayerSpec::Activation { activation: Activation::parse(f.req("activation")?, &act_path)? }
            }
            other => {
                return Err(err(&type_path, format!("unknown layer type {other:?}; expected one of: {LAYER_TYPES}")))
            }
        };
        f.finish()?;
        Ok(layer)
    }

    /// The layer's type name as written in specs.
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerSpec::Flatten => "flatten",
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool2d { .. } => "max_pool2d",
            LayerSpec::AvgPool2d { .. } => "avg_pool2d",
            LayerSpec::BatchNorm { .. } => "batch_norm",
            LayerSpec::Activation { .. } => "activation",
        }
    }
}

fn units_field(f: &mut Fields) -> Result<usize, SpecError> {
    let path = f.key_path("units");
    match f.req("units")? {
        Value::String(s) if s == "auto" => Ok(super::AUTO_UNITS),
        other => positive(other, &path)
            .map_err(|_| err(&path, format!("expected a positive integer or auto, got {}", describe(other)))),
    }
}

fn activation_field(f: &mut Fields) -> Result<Activation, SpecError> {
    let path = f.key_path("activation");
    match f.get("activation") {
        Some(v) => Activation::parse(v, &path),
        None => Ok(Activation::Linear),
    }
}

fn padding_field(f: &mut Fields) -> Result<Padding, SpecError> {
    match f.opt_str("padding")? {
        None | Some("valid") => Ok(Padding::Valid),
        Some("same") => Ok(Padding::Same),
        Some(other) => Err(err(&f.key_path("padding"), format!("expected valid or same, got {other:?}"))),
    }
}

fn opt_pair(f: &mut Fields, key: &'static str) -> Result<Option<[usize; 2]>, SpecError> {
    let path = f.key_path(key);
    f.get(key).map(|v| pair(v, &path)).transpose()
}
