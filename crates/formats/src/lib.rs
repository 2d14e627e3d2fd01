//! On-disk formats of Lathe.
//!
//! A model version is a folder holding `weights.safetensors` and `manifest.json`. The
//! manifest is the contract between training and serving: the spec the model was built from,
//! its input/output signature, the preprocessing to apply to raw inputs, class names,
//! metrics, lineage and the sha256 of every other file. This crate owns those types, the
//! strict spec parser, the weight files and the atomic file-writing primitives the registry
//! publishes with. It knows nothing of training or serving.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod atomic;
pub mod columns;
mod manifest;
mod preprocessing;
pub mod spec;
pub mod statistics;
mod weights;

pub use columns::{encode_rows, encoded_width, Cell, ColumnEncoding, Unseen};
pub use manifest::{
    CausalLmSection, CausalLmSpec, ClassMetrics, DataLineage, EmbeddingSection, EmbeddingSpec, EpochRecord, Evaluation,
    FileEntry, JobLineage, Manifest, ModelSection, OnnxSection, OnnxSpec, Pooling, SequentialSection, TargetMetrics,
    TargetScaling, TrainingInfo, UntrainedFields, CAUSAL_LM_KIND, EMBEDDING_KIND, MANIFEST_FILE, MANIFEST_FORMAT,
    ONNX_FILE, ONNX_KIND, SEQUENTIAL_KIND, WEIGHTS_FILE,
};
pub use preprocessing::Preprocessing;
pub use spec::{Spec, SpecError};
pub use statistics::{TrainingStatistics, STATISTICS_FILE};
pub use weights::{read_weights, write_weights, NamedTensor, WeightsError};
