//! The manifest of a version: what every kind shares, and a typed section per kind, tagged
//! by `kind` on disk.

use std::collections::BTreeMap;

use lathe_types::Signature;
use serde::{Deserialize, Serialize};

use crate::Preprocessing;

/// File name of the manifest inside a version folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the weights inside a version folder.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// Schema version of `manifest.json` written by this build.
pub const MANIFEST_FORMAT: u32 = 1;

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class name.
    pub class: String,
    /// TP / (TP + FP); 0 when the class is never predicted.
    pub precision: f64,
    /// TP / (TP + FN); 0 when the class never occurs.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// Number of samples whose true class this is.
    pub support: u64,
}

/// Mean absolute error, root mean squared error and R² of one regression target, in the
/// target's own units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetMetrics {
    /// Target column.
    pub target: String,
    /// Mean of |prediction − truth|.
    pub mae: f64,
    /// Square root of the mean of (prediction − truth)².
    pub rmse: f64,
    /// Coefficient of determination, 1 − SSE / SST (SST around the evaluated data's mean; 0
    /// when the target is constant there and SSE is not 0, 1 when both are 0).
    pub r2: f64,
}

/// Evaluation of a model on a labelled data set: a classifier's accuracy, per-class figures
/// and confusion matrix (plus ROC AUC and log loss for two classes), or a regressor's MAE,
/// RMSE and R² (overall: the mean over targets, and per target). Figures a task does not have
/// are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Samples evaluated.
    pub samples: u64,
    /// Mean loss (of standardised targets for regressors).
    pub loss: f64,
    /// Fraction classified correctly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Unweighted mean of the per-class precisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_precision: Option<f64>,
    /// Unweighted mean of the per-class recalls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_recall: Option<f64>,
    /// Unweighted mean of the per-class F1 scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    /// Area under the ROC curve of the second class's probability (two classes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    /// Mean −ln p(true class), probabilities clipped to [1e-15, 1 − 1e-15] (two classes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_loss: Option<f64>,
    /// Mean absolute error, averaged over targets (regressors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    /// Root mean squared error, averaged over targets (regressors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// R², averaged over targets (regressors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
    /// Per-class figures, in class order (classifiers; empty for regressors).
    #[serde(default)]
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts (classifiers; empty for regressors).
    #[serde(default)]
    pub confusion: Vec<Vec<u64>>,
    /// Per-target figures, in target order (regressors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_target: Vec<TargetMetrics>,
}

impl Default for Evaluation {
    /// An empty classifier evaluation: zeros, as every manifest carried before regression.
    fn default() -> Self {
        Evaluation {
            samples: 0,
            loss: 0.0,
            accuracy: Some(0.0),
            macro_precision: Some(0.0),
            macro_recall: Some(0.0),
            macro_f1: Some(0.0),
            roc_auc: None,
            log_loss: None,
            mae: None,
            rmse: None,
            r2: None,
            per_class: Vec::new(),
            confusion: Vec::new(),
            per_target: Vec::new(),
        }
    }
}

impl Evaluation {
    /// A named figure (`accuracy`, `macro_f1`, `r2`, `loss`, …), when this evaluation has it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => Some(self.loss),
            "accuracy" => self.accuracy,
            "macro_precision" => self.macro_precision,
            "macro_recall" => self.macro_recall,
            "macro_f1" => self.macro_f1,
            "roc_auc" => self.roc_auc,
            "log_loss" => self.log_loss,
            "mae" => self.mae,
            "rmse" => self.rmse,
            "r2" => self.r2,
            _ => None,
        }
    }
}

/// Metrics of one training epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Training accuracy over the epoch (classifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Validation loss, when a validation split exists.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
    /// Validation accuracy, when a validation split exists.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_accuracy: Option<f64>,
    /// Learning rate used in the epoch (at its start).
    pub lr: f64,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
}

/// Where the training data came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataLineage {
    /// The path given by the user.
    pub source: String,
    /// Dataset format (`idx`, `csv`).
    pub format: String,
    /// sha256 over the decoded samples and labels of every split.
    pub fingerprint: String,
    /// Samples used for gradient steps.
    pub train_samples: u64,
    /// Samples held out for validation.
    pub validation_samples: u64,
    /// Samples in the test split the metrics were measured on.
    pub test_samples: u64,
}

/// How the training run went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Epochs completed.
    pub epochs_run: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// Wall time of the fit, data loading excluded.
    pub fit_seconds: f64,
    /// Whether the run was resumed from a checkpoint.
    pub resumed: bool,
}

/// Where a version trained by a job came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobLineage {
    /// The job id.
    pub job: String,
    /// The dataset name.
    pub dataset: String,
    /// sha256 over the dataset's file digests (name order).
    pub dataset_sha256: String,
    /// The model's latest version when this one was published.
    pub parent_version: Option<u64>,
    /// Wall time of the job, seconds.
    pub duration_seconds: f64,
}

/// A file of the version and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Hex sha256 of the file's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Kind tag of Keras-like sequential models trained by Lathe.
pub const SEQUENTIAL_KIND: &str = "native-sequential";
/// Kind tag of sentence-embedding models imported from Hugging Face.
pub const EMBEDDING_KIND: &str = "sentence-embedding";
/// Kind tag of text-generation models (decoder-only LLMs) imported from GGUF or Hugging Face.
pub const CAUSAL_LM_KIND: &str = "causal-lm";
/// Kind tag of ONNX graphs imported from other frameworks (Keras, PyTorch, scikit-learn).
pub const ONNX_KIND: &str = "onnx";
/// The graph file of an ONNX version.
pub const ONNX_FILE: &str = "model.onnx";

/// The manifest of one model version. The version number is the name of the folder.
///
/// On disk it is one JSON object: the shared fields, `kind`, and the fields of that kind's
/// section side by side (`#[serde(flatten)]`), exactly as versions have always been written,
/// so every published version stays readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Schema version of this document.
    pub format: u32,
    /// Model name.
    pub name: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Version of Lathe that wrote it.
    pub lathe_version: String,
    /// Input and output tensors.
    pub signature: Signature,
    /// What kind of model this is (decides the engine), with what only that kind has.
    #[serde(flatten)]
    pub model: ModelSection,
    /// Every other file of the version with its digest.
    pub files: BTreeMap<String, FileEntry>,
}

/// The part of a manifest that depends on the kind of model, tagged by `kind` on disk.
#[derive(Debug, Clone, PartialEq)]
// One manifest per version in memory: boxing the larger section would save nothing.
#[allow(clippy::large_enum_variant)]
pub enum ModelSection {
    /// A Keras-like sequential model trained by Lathe (`native-sequential`).
    Sequential(SequentialSection),
    /// A sentence-embedding encoder (`sentence-embedding`).
    SentenceEmbedding(EmbeddingSection),
    /// A text-generation model (`causal-lm`).
    CausalLm(CausalLmSection),
    /// An ONNX graph made elsewhere (`onnx`).
    Onnx(OnnxSection),
    /// A kind this build has no section for (a version written by a newer Lathe): kept
    /// field for field, so listings still show it and serving says which kind is missing.
    Other {
        /// The `kind` tag.
        kind: String,
        /// Every other field of the section.
        fields: serde_json::Map<String, serde_json::Value>,
    },
}

impl Serialize for ModelSection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let fields = match self {
            ModelSection::Sequential(s) => serde_json::to_value(s).map_err(S::Error::custom)?,
            ModelSection::SentenceEmbedding(e) => serde_json::to_value(e).map_err(S::Error::custom)?,
            ModelSection::CausalLm(c) => serde_json::to_value(c).map_err(S::Error::custom)?,
            ModelSection::Onnx(o) => serde_json::to_value(o).map_err(S::Error::custom)?,
            ModelSection::Other { fields, .. } => serde_json::Value::Object(fields.clone()),
        };
        let serde_json::Value::Object(fields) = fields else {
            return Err(S::Error::custom("a manifest section must be a JSON object"));
        };
        let kind = ("kind".to_string(), serde_json::Value::String(self.kind().to_string()));
        serializer.collect_map(std::iter::once(kind).chain(fields))
    }
}

impl<'de> Deserialize<'de> for ModelSection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = serde_json::Map::deserialize(deserializer)?;
        let kind = match fields.remove("kind") {
            Some(serde_json::Value::String(kind)) => kind,
            Some(other) => return Err(D::Error::custom(format!("kind: expected a string, got {other}"))),
            None => return Err(D::Error::missing_field("kind")),
        };
        let section = |fields| serde_json::Value::Object(fields);
        let named = |e: serde_json::Error| D::Error::custom(format!("{kind} manifest: {e}"));
        match kind.as_str() {
            SEQUENTIAL_KIND => serde_json::from_value(section(fields)).map(ModelSection::Sequential).map_err(named),
            EMBEDDING_KIND => {
                serde_json::from_value(section(fields)).map(ModelSection::SentenceEmbedding).map_err(named)
            }
            CAUSAL_LM_KIND => serde_json::from_value(section(fields)).map(ModelSection::CausalLm).map_err(named),
            ONNX_KIND => serde_json::from_value(section(fields)).map(ModelSection::Onnx).map_err(named),
            _ => Ok(ModelSection::Other { kind, fields }),
        }
    }
}

/// What a trained sequential model records: how to rebuild it, and how it was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialSection {
    /// The spec, in canonical form.
    pub spec: serde_json::Value,
    /// Preprocessing applied to raw inputs.
    pub preprocessing: Preprocessing,
    /// Class names, indexed by output unit (empty for regressors).
    pub class_names: Vec<String>,
    /// Names of the input features of tabular models, in input order (empty for images).
    #[serde(default)]
    pub feature_names: Vec<String>,
    /// How the raw columns of a table become features (one-hot categories, imputed missing
    /// cells); empty when the features are the raw numbers. When present, the signature takes
    /// one input per raw column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<crate::ColumnEncoding>,
    /// Regression targets in output order, with the statistics they were standardised with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetScaling>,
    /// Evaluation on the test split.
    #[serde(default)]
    pub metrics: Evaluation,
    /// Per-epoch training history.
    #[serde(default)]
    pub history: Vec<EpochRecord>,
    /// Lineage of the training data.
    #[serde(default)]
    pub data: DataLineage,
    /// Seed of the run.
    #[serde(default)]
    pub seed: u64,
    /// How training went.
    #[serde(default)]
    pub training: TrainingInfo,
    /// The training job, when a job trained it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobLineage>,
}

/// A regression target and the training split's statistics: the network predicts
/// `(y − mean) / std`, and predictions are returned as `output · std + mean`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetScaling {
    /// Target column.
    pub name: String,
    /// Mean on the training split.
    pub mean: f64,
    /// Standard deviation on the training split (1 when the target is constant there).
    pub std: f64,
}

/// What a sentence-embedding version records (under `spec` on disk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingSection {
    /// The encoder and its pooling.
    pub spec: EmbeddingSpec,
    /// The training fields every manifest carried before it was typed, empty for this kind:
    /// still written so that earlier Lathe builds can list and load the version.
    #[serde(flatten)]
    pub untrained: UntrainedFields,
}

/// Training fields as an imported (untrained) model writes them: all empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UntrainedFields {
    /// `{"kind": "none"}`.
    #[serde(default)]
    pub preprocessing: Preprocessing,
    /// Empty.
    #[serde(default)]
    pub class_names: Vec<String>,
    /// Empty.
    #[serde(default)]
    pub feature_names: Vec<String>,
    /// Zeros.
    #[serde(default)]
    pub metrics: Evaluation,
    /// Empty.
    #[serde(default)]
    pub history: Vec<EpochRecord>,
    /// Empty.
    #[serde(default)]
    pub data: DataLineage,
    /// 0.
    #[serde(default)]
    pub seed: u64,
    /// Zeros.
    #[serde(default)]
    pub training: TrainingInfo,
}

/// How a sentence-embedding model turns text into a vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingSpec {
    /// The folder it was imported from.
    pub source: String,
    /// Encoder architecture (`bert`).
    pub architecture: String,
    /// Width of the embedding.
    pub dim: usize,
    /// Longest input in tokens; longer inputs are truncated or refused.
    pub max_tokens: usize,
    /// How token states become one vector.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised.
    pub normalize: bool,
}

/// What a causal-lm version records (under `spec` on disk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CausalLmSection {
    /// The model.
    pub spec: CausalLmSpec,
}

/// A text-generation model as imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CausalLmSpec {
    /// The file or folder it was imported from.
    pub source: String,
    /// `gguf` (the version holds `model.gguf`) or `hf` (the folder's files).
    pub format: String,
    /// Architecture (`llama`, `mistral`, `qwen2`).
    pub architecture: String,
    /// Training context length in tokens.
    pub context_length: usize,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// The tensor type holding most of the weights (`Q4_1`, `BF16`).
    pub quantization: String,
    /// Values in the weight tensors.
    pub parameters: u64,
    /// Whether it has a chat template (`lathe chat` and chat completions need one).
    pub chat_template: bool,
}

/// What an ONNX version records (under `spec` on disk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnnxSection {
    /// The graph.
    pub spec: OnnxSpec,
}

/// An ONNX graph as imported: where it came from and how it is served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnnxSpec {
    /// The file it was imported from.
    pub source: String,
    /// `producer_name producer_version` of the file (`tf2onnx 1.16.1`, `pytorch 2.5.0`,
    /// `skl2onnx 1.20.0`); empty when the file does not say.
    pub producer: String,
    /// Version of the default (`ai.onnx`) operator set.
    pub opset: i64,
    /// Operator types of the graph, sorted, each once (`Conv`, `Gemm`, `ai.onnx.ml.LinearClassifier`).
    pub ops: Vec<String>,
    /// Whether requests are concatenated along the first dimension (every input's and
    /// output's first dimension is the same symbolic one); otherwise one request per run.
    pub batching: bool,
    /// Class names indexed by the classifier output's last dimension (empty when not given).
    #[serde(default)]
    pub class_names: Vec<String>,
}

/// How token states are pooled into one embedding (sentence-transformers' pooling modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over the tokens (attention mask respected).
    Mean,
    /// The first ([CLS]) token.
    Cls,
    /// The last real token.
    LastToken,
}

impl Pooling {
    /// The name on disk and in model metadata (`mean`, `cls`, `last_token`).
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::LastToken => "last_token",
        }
    }
}

impl ModelSection {
    /// The kind tag.
    pub fn kind(&self) -> &str {
        match self {
            ModelSection::Sequential(_) => SEQUENTIAL_KIND,
            ModelSection::SentenceEmbedding(_) => EMBEDDING_KIND,
            ModelSection::CausalLm(_) => CAUSAL_LM_KIND,
            ModelSection::Onnx(_) => ONNX_KIND,
            ModelSection::Other { kind, .. } => kind,
        }
    }
}

impl Manifest {
    /// The kind tag (`native-sequential`, `sentence-embedding`, or one this build does not
    /// know).
    pub fn kind(&self) -> &str {
        self.model.kind()
    }

    /// The section of a sequential model; `None` for other kinds.
    pub fn sequential(&self) -> Option<&SequentialSection> {
        match &self.model {
            ModelSection::Sequential(s) => Some(s),
            _ => None,
        }
    }

    /// The section of a sequential model, mutably; `None` for other kinds.
    pub fn sequential_mut(&mut self) -> Option<&mut SequentialSection> {
        match &mut self.model {
            ModelSection::Sequential(s) => Some(s),
            _ => None,
        }
    }

    /// The embedding spec of a sentence-embedding model; `None` for other kinds.
    pub fn embedding(&self) -> Option<&EmbeddingSpec> {
        match &self.model {
            ModelSection::SentenceEmbedding(e) => Some(&e.spec),
            _ => None,
        }
    }

    /// The spec of a text-generation model; `None` for other kinds.
    pub fn causal_lm(&self) -> Option<&CausalLmSpec> {
        match &self.model {
            ModelSection::CausalLm(c) => Some(&c.spec),
            _ => None,
        }
    }

    /// The spec of an ONNX graph; `None` for other kinds.
    pub fn onnx(&self) -> Option<&OnnxSpec> {
        match &self.model {
            ModelSection::Onnx(o) => Some(&o.spec),
            _ => None,
        }
    }

    /// Test-split evaluation, for kinds that are trained here.
    pub fn metrics(&self) -> Option<&Evaluation> {
        self.sequential().map(|s| &s.metrics)
    }

    /// The job that trained this version, if any.
    pub fn job(&self) -> Option<&JobLineage> {
        self.sequential().and_then(|s| s.job.as_ref())
    }

    /// Names of the input features of tabular models, in input order (empty otherwise).
    pub fn feature_names(&self) -> &[String] {
        self.sequential().map_or(&[], |s| &s.feature_names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Manifests as versions published before the typed manifest wrote them.
    const SEQUENTIAL_FIXTURE: &str = include_str!("../tests/fixtures/manifest-native-sequential.json");
    const EMBEDDING_FIXTURE: &str = include_str!("../tests/fixtures/manifest-sentence-embedding.json");

    #[test]
    fn a_sequential_manifest_from_before_the_typed_manifest_loads() {
        let m: Manifest = serde_json::from_str(SEQUENTIAL_FIXTURE).unwrap();
        assert_eq!(m.kind(), SEQUENTIAL_KIND);
        let s = m.sequential().unwrap();
        assert_eq!(s.class_names.len(), 10);
        assert_eq!(s.preprocessing, Preprocessing::Rescale { divisor: 255.0 });
        assert!(s.metrics.accuracy.unwrap() > 0.9);
        assert_eq!(s.history.len(), 1);
        assert_eq!(m.signature.inputs[0].shape, vec![-1, 28, 28]);
        assert!(m.files.contains_key(WEIGHTS_FILE));
        let again: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(again, m, "writing and reading back changes nothing");
        let old: serde_json::Value = serde_json::from_str(SEQUENTIAL_FIXTURE).unwrap();
        assert_eq!(serde_json::to_value(&m).unwrap(), old, "the on-disk shape is unchanged");
    }

    #[test]
    fn an_embedding_manifest_from_before_the_typed_manifest_loads() {
        let m: Manifest = serde_json::from_str(EMBEDDING_FIXTURE).unwrap();
        assert_eq!(m.kind(), EMBEDDING_KIND);
        let e = m.embedding().unwrap();
        assert_eq!((e.dim, e.max_tokens, e.pooling, e.normalize), (384, 256, Pooling::Mean, true));
        assert!(m.metrics().is_none() && m.sequential().is_none());
        let again: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(again, m);
        let old: serde_json::Value = serde_json::from_str(EMBEDDING_FIXTURE).unwrap();
        assert_eq!(serde_json::to_value(&m).unwrap(), old, "the on-disk shape is unchanged");
    }

    #[test]
    fn an_unknown_kind_is_kept_as_it_is() {
        let mut v: serde_json::Value = serde_json::from_str(EMBEDDING_FIXTURE).unwrap();
        v["kind"] = "hologram".into();
        let m: Manifest = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(m.kind(), "hologram");
        assert!(m.embedding().is_none() && m.sequential().is_none());
        assert_eq!(serde_json::to_value(&m).unwrap(), v, "written back unchanged");
    }

    #[test]
    fn a_known_kind_with_bad_fields_names_the_kind_and_the_field() {
        let mut v: serde_json::Value = serde_json::from_str(SEQUENTIAL_FIXTURE).unwrap();
        v["class_names"] = 3.into();
        let err = serde_json::from_value::<Manifest>(v).unwrap_err().to_string();
        assert!(err.contains("native-sequential manifest") && err.contains("expected a sequence"), "{err}");
        let mut v: serde_json::Value = serde_json::from_str(SEQUENTIAL_FIXTURE).unwrap();
        v.as_object_mut().unwrap().remove("kind");
        let err = serde_json::from_value::<Manifest>(v).unwrap_err().to_string();
        assert!(err.contains("kind"), "{err}");
    }
}
