//! A published model version loaded for prediction.

use std::path::Path;

use lathe_formats::atomic::sha256_file;
use lathe_formats::{read_weights, Manifest, Preprocessing, Spec, MANIFEST_FILE, WEIGHTS_FILE};

use crate::{EngineError, Network, Rng, Workspace};

/// Samples per forward pass when predicting large inputs.
const PREDICT_CHUNK: usize = 256;

/// A loaded, verified, immutable model version: preprocessing plus network.
pub struct SequentialModel {
    /// The version's manifest.
    pub manifest: Manifest,
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
        let spec = Spec::from_value(&manifest.spec).map_err(EngineError::Spec)?;
        let mut network = Network::from_spec(&spec, &mut Rng::new(0))?;
        network.load_tensors(tensors)?;
        if network.output_len() != manifest.class_names.len()
            && !(network.output_len() == 1 && manifest.class_names.len() == 2)
        {
            return Err(EngineError::Manifest(format!(
                "the model has {} outputs but the manifest names {} classes",
                network.output_len(),
                manifest.class_names.len()
            )));
        }
        Ok(SequentialModel { manifest, spec, network, workspaces: Default::default() })
    }

    /// The preprocessing applied to raw inputs.
    pub fn preprocessing(&self) -> &Preprocessing {
        &self.manifest.preprocessing
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
    /// model outputs (class probabilities for softmax models).
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
            self.manifest.preprocessing.apply(&mut buf, len);
            let m = chunk.len() / len;
            out.extend_from_slice(self.network.forward(&buf, m, &mut ws, false, &mut rng));
        }
        self.workspaces.lock().expect("workspace pool").push(ws);
        out
    }
}
