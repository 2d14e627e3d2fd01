//! Turning an ONNX file into the files and manifest of a Lathe version, checked completely
//! first: it reads, types, optimizes and runs once on zeros before anything is published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lathe_engine::Batching;
use lathe_formats::{Manifest, ModelSection, OnnxSection, OnnxSpec, ONNX_FILE};

use crate::error::OnnxError;
use crate::graph::read_checked;
use crate::servable::OnnxModel;

/// What `lathe import onnx` publishes: files (path inside the version, source file) and the
/// manifest (without digests; publishing adds them).
pub struct OnnxImport {
    /// `model.onnx` and any external data files.
    pub files: Vec<(String, PathBuf)>,
    /// The manifest.
    pub manifest: Manifest,
}

/// Reads and checks `path` and prepares its version.
///
/// # Errors
/// Everything [`read_checked`] and loading refuse, and [`OnnxError::Request`] when batching is
/// asked for a graph without a shared symbolic first dimension, or when class names do not
/// fit any output.
pub fn prepare(
    path: &Path,
    name: &str,
    class_names: Vec<String>,
    batching: Batching,
    created_at: &str,
) -> Result<OnnxImport, OnnxError> {
    let checked = read_checked(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let model = OnnxModel::from_checked(&checked, dir)?;
    let batchable = model.batchable();
    if batching == Batching::On && !batchable {
        return Err(OnnxError::Request(format!("batching was asked for, but {}", why_not_batchable(&model))));
    }
    let signature = lathe_engine::Servable::signature(&model).clone();
    check_class_names(&signature, &class_names)?;
    let spec = OnnxSpec {
        source: path.display().to_string(),
        producer: checked.producer.clone(),
        opset: checked.opset,
        ops: checked.ops.clone(),
        batching: batchable && batching != Batching::Off,
        class_names,
    };
    let model = model.configured(&spec);
    model.run_warm_up()?;
    let mut files = vec![(ONNX_FILE.to_string(), path.to_path_buf())];
    files.extend(checked.external.iter().map(|f| (f.clone(), dir.join(f))));
    let manifest = Manifest {
        format: lathe_formats::MANIFEST_FORMAT,
        name: name.to_string(),
        created_at: created_at.to_string(),
        lathe_version: env!("CARGO_PKG_VERSION").to_string(),
        signature,
        model: ModelSection::Onnx(OnnxSection { spec }),
        files: BTreeMap::new(),
    };
    Ok(OnnxImport { files, manifest })
}

/// Which input or output keeps a graph from batching.
fn why_not_batchable(model: &OnnxModel) -> String {
    let sig = lathe_engine::Servable::signature(model);
    let fixed = sig.inputs.iter().chain(&sig.outputs).find(|t| t.shape.first().is_none_or(|&d| d >= 0));
    match fixed {
        Some(t) => format!(
            "{:?} has no symbolic first dimension (shape {:?}); export the graph with a dynamic batch axis \
             (torch.onnx.export dynamic_axes or dynamic_shapes, tf2onnx --inputs x:0[-1,...])",
            t.name, t.shape
        ),
        None => "the inputs and outputs do not share one symbolic first dimension".into(),
    }
}

/// Class names must match the last dimension of some floating-point output.
fn check_class_names(sig: &lathe_types::Signature, names: &[String]) -> Result<(), OnnxError> {
    if names.is_empty() {
        return Ok(());
    }
    let fits = sig.outputs.iter().any(|o| o.shape.last() == Some(&(names.len() as i64)) && o.shape.len() == 2);
    if fits {
        return Ok(());
    }
    let shapes: Vec<String> = sig.outputs.iter().map(|o| format!("{} {:?}", o.name, o.shape)).collect();
    Err(OnnxError::Request(format!(
        "{} class names given, but no output has shape [-1, {}]; the outputs are {}",
        names.len(),
        names.len(),
        shapes.join(", ")
    )))
}
