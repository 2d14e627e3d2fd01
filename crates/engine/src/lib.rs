//! The contract between Lathe's runtime and its engines, and nothing else: a synchronous
//! [`Servable`] (a loaded, immutable model version that computes a batch) and a [`Loader`]
//! (builds servables from version folders). Engines depend on this crate, the runtime calls
//! it from its compute threads; neither side sees the other's types.
//!
//! Modelled on TEI's `backends/core`: small, synchronous, no async runtime, no I/O of its own.
//! Inputs and outputs are [`lathe_types::Tensor`]s whose first dimension is the batch.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod generation;

use std::path::Path;
use std::sync::Arc;

use lathe_formats::Manifest;
use lathe_types::{ApiError, Signature, Tensor};

/// A loaded, immutable model version that computes outputs from batched inputs. Engines
/// implement it; the runtime calls it only from its compute threads, never from the async
/// executor.
pub trait Servable: Send + Sync + 'static {
    /// Inputs and outputs, batch dimension first (`-1`).
    fn signature(&self) -> &Signature;

    /// Runs a batch: `inputs` follow the signature's input order and dtypes, each with the
    /// same number of rows; returns every output of the signature, in order, with as many rows.
    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ApiError>;

    /// Class names indexed by output unit, for classifiers.
    fn class_names(&self) -> &[String] {
        &[]
    }

    /// Whether the rows of several requests may be concatenated along the first dimension
    /// into one run. `false` for graphs whose first dimension is fixed or is not a batch
    /// dimension: the runtime then runs one request at a time.
    fn batches(&self) -> bool {
        true
    }

    /// Platform string for model metadata (e.g. `lathe_native`).
    fn platform(&self) -> &str;

    /// For text models: the longest row of a (preprocessed) request, in tokens, which the
    /// batcher uses for its token budget (a batch costs rows × longest row once padded).
    fn tokens_per_row(&self, _inputs: &[Tensor]) -> Option<usize> {
        None
    }

    /// Whether [`Servable::preprocess`] does work (then callers run it off the compute
    /// threads, e.g. tokenisation on a blocking pool, before queueing).
    fn preprocesses(&self) -> bool {
        false
    }

    /// Turns signature-shaped inputs into what [`Servable::infer`] computes on (for example
    /// texts into padded token ids). Every output must have one row per input row and the
    /// same width for every request, so that requests can be batched. `infer` must still
    /// accept signature-shaped inputs.
    fn preprocess(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ApiError> {
        Ok(inputs)
    }

    /// For text models that take token ids in place of texts: turns one id sequence per row
    /// into what [`Servable::infer`] computes on, like [`Servable::preprocess`] does for texts.
    /// `None` when the model takes no token ids.
    fn preprocess_token_ids(&self, _ids: &[Vec<i64>]) -> Option<Result<Vec<Tensor>, ApiError>> {
        None
    }

    /// For text models: each row's length in tokens before truncation, read from what
    /// [`Servable::preprocess`] or [`Servable::preprocess_token_ids`] returned, so that callers
    /// can refuse over-long inputs before computing. `None` for other models.
    fn untruncated_lengths(&self, _preprocessed: &[Tensor]) -> Option<Vec<usize>> {
        None
    }

    /// One valid row of signature-shaped inputs for the runtime to run before the version
    /// takes traffic, when an all-zero row is not valid input (a table's text columns need
    /// a known category). `None`: the runtime sends zeros.
    fn warm_up_inputs(&self) -> Option<Vec<Tensor>> {
        None
    }

    /// For engines with a backward pass (the sequential engine): for `rows` rows of features
    /// (`rows · features` values, what [`Servable::preprocess`] hands to [`Servable::infer`]:
    /// the signature's single input, or a table's encoded columns), output unit `unit` of each
    /// row and its gradient w.r.t. every feature (`rows · features`), in the output's units.
    /// `None` when the engine has no backward pass; explanations then use occlusion.
    fn output_gradients(&self, _features: &[f32], _rows: usize, _unit: usize) -> Option<GradientResult> {
        None
    }

    /// For models whose [`Servable::preprocess`] encodes several signature inputs into one row
    /// of features (a table's columns): the signature input each feature comes from, and its
    /// name (`colour=red` for a one-hot category). `None` when the features are the values of
    /// the single input.
    fn feature_layout(&self) -> Option<Vec<(usize, String)>> {
        None
    }

    /// A reference row of features for attributions (integrated gradients' baseline, the value
    /// occlusion puts in): a table's training means when the model standardises, else `None`
    /// (zeros, a black image).
    fn baseline_features(&self) -> Option<Vec<f32>> {
        None
    }

    /// For engines that can show their layers: each layer's output for one request, and the
    /// weights' statistics. `None` when the engine does not expose layers.
    fn inspect(&self, _inputs: &[Tensor]) -> Option<Result<Vec<LayerReport>, ApiError>> {
        None
    }

    /// For text-generation models: the generator the runtime's scheduler drives (such
    /// versions are served by the generation APIs, not by [`Servable::infer`]).
    fn text_generator(self: Arc<Self>) -> Option<Arc<dyn generation::TextGenerator>> {
        None
    }
}

/// Per row, the attributed output's value; per row and feature, its gradient.
pub type GradientResult = Result<(Vec<f32>, Vec<f32>), ApiError>;

/// One layer of a network as a request passed through it ([`Servable::inspect`]).
#[derive(Debug, Clone)]
pub struct LayerReport {
    /// Position and kind (`layers[2] dense`).
    pub name: String,
    /// The output's shape, rows first.
    pub output_shape: Vec<usize>,
    /// The output's values, row-major.
    pub output: Vec<f32>,
    /// The layer's parameters: name, shape, values.
    pub parameters: Vec<(String, Vec<usize>, Vec<f32>)>,
}

/// Whether an imported graph's requests are concatenated along the first dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// When the graph allows it.
    Auto,
    /// Always; refused when the graph does not allow it.
    On,
    /// Never: one request per run.
    Off,
}

impl std::str::FromStr for Batching {
    type Err = String;

    fn from_str(s: &str) -> Result<Batching, String> {
        match s {
            "auto" => Ok(Batching::Auto),
            "on" => Ok(Batching::On),
            "off" => Ok(Batching::Off),
            other => Err(format!("batching: expected auto, on or off, got {other:?}")),
        }
    }
}

/// What an import is asked for besides the file.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Class names of a classifier, in output order (empty: none).
    pub class_names: Vec<String>,
    /// Batching.
    pub batching: Batching,
    /// Creation time for the manifest, RFC 3339 UTC.
    pub created_at: String,
}

/// A checked model file, ready to publish.
pub struct PreparedImport {
    /// Files of the version: path inside it, source file to copy.
    pub files: Vec<(String, std::path::PathBuf)>,
    /// The manifest (without digests; publishing adds them).
    pub manifest: Manifest,
}

/// Turns model files made elsewhere into versions; the binary provides one for the formats
/// its engines read, so that the server can import uploads without knowing the engines.
pub trait Importer: Send + Sync + 'static {
    /// Checks `file`, in `format` (`onnx`), completely and prepares the version `name`.
    ///
    /// # Errors
    /// An [`ApiError`] naming what is wrong with the file or the options (invalid argument),
    /// or an unknown format (unimplemented).
    fn prepare(
        &self,
        format: &str,
        file: &Path,
        name: &str,
        options: &ImportOptions,
    ) -> Result<PreparedImport, ApiError>;

    /// Checks a published copy in `dir` before the version appears: it loads and has the
    /// manifest's signature.
    ///
    /// # Errors
    /// What differs, or why it does not load.
    fn check_copy(&self, dir: &Path, manifest: &Manifest) -> Result<(), String>;
}

/// Builds servables from version folders; the binary registers one per model kind.
pub trait Loader: Send + Sync + 'static {
    /// Loads the version in `dir` described by `manifest`.
    fn load(&self, dir: &Path, manifest: &Manifest) -> Result<Arc<dyn Servable>, String>;
}
