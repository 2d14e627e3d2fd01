//! A published model version loaded for prediction.

use std::path::Path;

use lathe_formats::atomic::sha256_file;
use lathe_formats::spec::Task;
use lathe_formats::{
    encode_rows, encoded_width, read_weights, Cell, ColumnEncoding, Manifest, ModelSection, Preprocessing,
    SequentialSection, Spec, TargetScaling, Unseen, MANIFEST_FILE, WEIGHTS_FILE,
};

use crate::{EngineError, Network, Rng, Workspace};

/// Samples per forward pass when predicting large inputs.
const PREDICT_CHUNK: usize = 256;

/// A loaded, verified, immutable model version: preprocessing plus network.
pub struct SequentialModel {
    /// The version's manifest (always of kind `native-sequential`, checked at load).
    manifest: Manifest,
    /// The parsed spec.
    pub spec: Spec,
    network: Network,
    /// Workspaces reused across calls (one per concurrent caller at most).
    workspaces: std::sync::Mutex<Vec<Workspace>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io { path: path.display().to_string(), source }
}

impl SequentialModel {
    /// Loads the version in `dir`, checking every file against the manifest's sha256.
    pub fn load(dir: &Path) -> Result<SequentialModel, EngineError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path).map_err(io_err(&manifest_path))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| EngineError::Manifest(format!("{}: {e}", manifest_path.display())))?;
        for (file, entry) in &manifest.files {
            let path = dir.join(file);
            let (sha, _) = sha256_file(&path).map_err(io_err(&path))?;
            if sha != entry.sha256 {
                return Err(EngineError::Manifest(format!(
                    "{}: sha256 {sha} does not match the manifest ({})",
                    path.display(),
                    entry.sha256
                )));
            }
        }
        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&weights_path).map_err(io_err(&weights_path))?;
        let tensors = read_weights(&bytes).map_err(|e| EngineError::Weights(e.to_string()))?;
        Self::from_parts(manifest, &tensors)
    }

    /// Builds a model from a manifest and its weights.
    pub fn from_parts(
        manifest: Manifest,
        tensors: &[lathe_formats::NamedTensor],
    ) -> Result<SequentialModel, EngineError> {
        let Some(section) = manifest.sequential() else {
            return Err(EngineError::Manifest(format!("model kind {:?} is not a sequential model", manifest.kind())));
        };
        let spec = Spec::from_value(&section.spec).map_err(EngineError::Spec)?;
        let mut network = Network::from_spec(&spec, &mut Rng::new(0))?;
        network.load_tensors(tensors)?;
        let (outputs, classes, targets) = (network.output_len(), section.class_names.len(), section.targets.len());
        let width = encoded_width(&section.columns);
        if width != 0 && width != network.input_len() {
            return Err(EngineError::Manifest(format!(
                "the model takes {} features but its columns encode to {width}",
                network.input_len()
            )));
        }
        let fits = match spec.task() {
            Task::Regression => outputs == targets,
            Task::Classification => outputs == classes || (outputs == 1 && classes == 2),
        };
        if !fits {
            return Err(EngineError::Manifest(format!(
                "the model has {outputs} outputs but the manifest names {classes} classes and {targets} targets",
            )));
        }
        Ok(SequentialModel { manifest, spec, network, workspaces: Default::default() })
    }

    /// The version's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The sequential section of the manifest: spec, preprocessing, classes, training record.
    pub fn section(&self) -> &SequentialSection {
        match &self.manifest.model {
            ModelSection::Sequential(section) => section,
            // `from_parts` refuses every other kind, and the manifest is private.
            _ => unreachable!("a SequentialModel always holds a sequential manifest"),
        }
    }

    /// The preprocessing applied to raw inputs.
    pub fn preprocessing(&self) -> &Preprocessing {
        &self.section().preprocessing
    }

    /// Class names, indexed by output unit.
    pub fn class_names(&self) -> &[String] {
        &self.section().class_names
    }

    /// How a table's raw columns become the network's features (empty when the inputs are
    /// the features).
    pub fn columns(&self) -> &[ColumnEncoding] {
        &self.section().columns
    }

    /// Encodes `rows` raw table rows, `cell(row, column)` in the order of [`Self::columns`],
    /// into `rows · input_len` features; unseen categories are refused.
    ///
    /// # Errors
    /// The first cell that cannot be encoded (`row 3: input "colour": category …`).
    pub fn encode_cells<'a>(
        &self,
        rows: usize,
        cell: impl FnMut(usize, usize) -> Cell<'a>,
    ) -> Result<Vec<f32>, String> {
        encode_rows(self.columns(), rows, Unseen::Refuse, cell)
    }

    /// Regression targets in output order with their standardisation (empty for classifiers).
    pub fn targets(&self) -> &[TargetScaling] {
        &self.section().targets
    }

    /// Values per raw input sample.
    pub fn input_len(&self) -> usize {
        self.network.input_len()
    }

    /// Values per output sample.
    pub fn output_len(&self) -> usize {
        self.network.output_len()
    }

    /// The network (for evaluation with a known loss).
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Predicts `n` raw samples (preprocessing is applied here) and returns `n · output_len`
    /// model outputs: class probabilities for softmax models, targets in their own units for
    /// regressors.
    pub fn predict(&self, raw: &[f32], n: usize) -> Vec<f32> {
        let len = self.input_len();
        assert_eq!(raw.len(), n * len, "predict: expected {n} x {len} values");
        let mut ws = self.workspaces.lock().expect("workspace pool").pop().unwrap_or_default();
        let mut rng = Rng::new(0);
        let mut out = Vec::with_capacity(n * self.output_len());
        let mut buf = Vec::new();
        for chunk in raw.chunks(PREDICT_CHUNK * len) {
            buf.clear();
            buf.extend_from_slice(chunk);
            self.section().preprocessing.apply(&mut buf, len);
            let m = chunk.len() / len;
            out.extend_from_slice(self.network.forward(&buf, m, &mut ws, false, &mut rng));
        }
        self.workspaces.lock().expect("workspace pool").push(ws);
        let targets = self.targets();
        if !targets.is_empty() {
            for row in out.chunks_exact_mut(targets.len()) {
                for (v, t) in row.iter_mut().zip(targets) {
                    *v = (*v as f64 * t.std + t.mean) as f32;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEQUENTIAL: &str = include_str!("../../formats/tests/fixtures/manifest-native-sequential.json");
    const EMBEDDING: &str = include_str!("../../formats/tests/fixtures/manifest-sentence-embedding.json");

    #[test]
    fn a_version_published_before_the_typed_manifest_loads_and_predicts() {
        let manifest: Manifest = serde_json::from_str(SEQUENTIAL).unwrap();
        let spec = Spec::from_value(&manifest.sequential().unwrap().spec).unwrap();
        let weights = Network::from_spec(&spec, &mut Rng::new(1)).unwrap().tensors();
        let model = SequentialModel::from_parts(manifest, &weights).unwrap();
        assert_eq!(model.class_names().len(), 10);
        assert_eq!(model.preprocessing(), &Preprocessing::Rescale { divisor: 255.0 });
        let probabilities = model.predict(&vec![128.0; 784], 1);
        assert_eq!(probabilities.len(), 10);
        assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5, "softmax output");
    }

    #[test]
    fn another_kind_is_refused_naming_it() {
        let manifest: Manifest = serde_json::from_str(EMBEDDING).unwrap();
        let err = SequentialModel::from_parts(manifest, &[]).err().expect("refused").to_string();
        assert!(err.contains("\"sentence-embedding\" is not a sequential model"), "{err}");
    }
}
