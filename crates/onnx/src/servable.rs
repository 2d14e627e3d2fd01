//! An ONNX version behind the runtime's contract: inputs in signature order go to tract as
//! they are, outputs come back in graph order under their graph names.

use std::path::Path;
use std::sync::Arc;

use lathe_engine::{Loader, Servable};
use lathe_formats::{Manifest, OnnxSpec, ONNX_FILE};
use lathe_types::{ApiError, HasErrorKind, Signature, Tensor, TensorSignature};
use tract_onnx::prelude::{IntoTValue, TValue, TVec};

use crate::convert::{from_tract, to_tract};
use crate::error::OnnxError;
use crate::graph::{read_checked, CheckedGraph, Dim};
use crate::plan::Plans;

/// Platform name in model metadata (Triton's name for ONNX models is `onnxruntime_onnx`).
pub const PLATFORM: &str = "tract_onnx";

/// A loaded ONNX graph.
pub struct OnnxModel {
    plans: Plans,
    signature: Signature,
    class_names: Vec<String>,
    batching: bool,
}

impl OnnxModel {
    /// Reads, checks and prepares the graph in `path` (external data beside it).
    ///
    /// # Errors
    /// Whatever [`read_checked`] and [`Plans::build`] refuse.
    pub fn load(path: &Path) -> Result<OnnxModel, OnnxError> {
        OnnxModel::from_checked(&read_checked(path)?, path.parent().unwrap_or(Path::new(".")))
    }

    /// Prepares a checked graph whose external data lives in `dir`.
    ///
    /// # Errors
    /// Whatever [`Plans::build`] refuses, and outputs of types Lathe does not carry.
    pub fn from_checked(checked: &CheckedGraph, dir: &Path) -> Result<OnnxModel, OnnxError> {
        let plans = Plans::build(checked, dir)?;
        let batching = plans.batchable();
        let inputs = checked
            .inputs
            .iter()
            .map(|i| TensorSignature { name: i.name.clone(), datatype: i.dtype, shape: shape_of(&i.dims) })
            .collect();
        let outputs = checked
            .outputs
            .iter()
            .zip(plans.output_facts())
            .map(|(name, f)| {
                let datatype = crate::convert::dtype_of(f.datum_type).ok_or_else(|| {
                    OnnxError::Unsupported(format!("output {name:?}: type {:?} is not served", f.datum_type))
                })?;
                Ok(TensorSignature {
                    name: name.clone(),
                    datatype,
                    shape: f.dims.iter().map(|d| d.unwrap_or(-1)).collect(),
                })
            })
            .collect::<Result<_, OnnxError>>()?;
        Ok(OnnxModel { plans, signature: Signature { inputs, outputs }, class_names: Vec::new(), batching })
    }

    /// Whether every input and output starts with the same symbolic dimension.
    pub fn batchable(&self) -> bool {
        self.plans.batchable()
    }

    /// Serves with or without batching (only a batchable graph may batch) and with class names.
    pub fn configured(mut self, spec: &OnnxSpec) -> OnnxModel {
        self.batching = spec.batching && self.batchable();
        self.class_names = spec.class_names.clone();
        self
    }

    /// Runs the graph on signature-ordered inputs.
    ///
    /// # Errors
    /// [`OnnxError::Run`] when tract refuses the inputs or fails.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, OnnxError> {
        let values: TVec<TValue> =
            inputs.iter().map(|t| to_tract(t).map(|t| t.into_tvalue())).collect::<Result<_, _>>()?;
        let outputs = self.plans.run(values)?;
        self.signature.outputs.iter().zip(outputs.iter()).map(|(s, t)| from_tract(&s.name, t)).collect()
    }

    /// Runs one row of zeros (symbolic dimensions 1), as the runtime does before traffic.
    ///
    /// # Errors
    /// As [`OnnxModel::run`].
    pub fn run_warm_up(&self) -> Result<Vec<Tensor>, OnnxError> {
        let inputs: Result<Vec<Tensor>, String> = self.signature.inputs.iter().map(Tensor::zero_row).collect();
        self.run(&inputs.map_err(OnnxError::Run)?)
    }

    /// Plans made for one shape and kept (for tests and statistics).
    pub fn cached_plans(&self) -> usize {
        self.plans.cached_plans()
    }
}

/// Declared dimensions as signature sizes: symbolic and unknown ones are `-1`.
fn shape_of(dims: &[Dim]) -> Vec<i64> {
    dims.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { -1 }).collect()
}

impl Servable for OnnxModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ApiError> {
        self.run(inputs).map_err(|e| e.to_api_error())
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn platform(&self) -> &str {
        PLATFORM
    }

    fn batches(&self) -> bool {
        self.batching
    }
}

/// Loads ONNX versions (`model.onnx` and its external data in the version folder).
pub struct OnnxLoader;

impl Loader for OnnxLoader {
    fn load(&self, dir: &Path, manifest: &Manifest) -> Result<Arc<dyn Servable>, String> {
        let spec = manifest.onnx().ok_or_else(|| format!("not an ONNX manifest (kind {:?})", manifest.kind()))?;
        let model = OnnxModel::load(&dir.join(ONNX_FILE)).map_err(|e| e.to_string())?.configured(spec);
        if model.signature != manifest.signature {
            return Err("the graph's signature differs from the manifest's".into());
        }
        Ok(Arc::new(model))
    }
}
