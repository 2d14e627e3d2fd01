//! Turns a finished fit into the files of a model version: weights and manifest.

use lathe_formats::spec::{Activation, Spec, Task};
use lathe_formats::{
    write_weights, ColumnEncoding, DataLineage, Manifest, ModelSection, SequentialSection, WeightsError,
    MANIFEST_FORMAT, STATISTICS_FILE, WEIGHTS_FILE,
};
use lathe_types::{DType, Signature, TensorSignature};

use crate::fit::FitResult;
use crate::prepare::Prepared;

pub use lathe_sequential::SEQUENTIAL_KIND;

/// What the user pointed training at.
pub struct DataSource<'a> {
    /// Path as given.
    pub source: &'a str,
    /// `idx` or `csv`.
    pub format: &'a str,
    /// Feature column names (tabular data).
    pub feature_names: &'a [String],
}

/// The outputs of a version: `probabilities` (softmax or sigmoid) or `outputs` `[-1, units]`
/// for a classifier; one `[-1]` tensor per target, named after it, for a regressor.
fn output_signature(data: &Prepared, result: &FitResult) -> Vec<TensorSignature> {
    if data.task == Task::Regression {
        return data
            .targets
            .iter()
            .map(|t| TensorSignature { name: t.name.clone(), datatype: DType::F32, shape: vec![-1] })
            .collect();
    }
    let output_name = match result.network.final_activation() {
        Some(Activation::Softmax | Activation::Sigmoid) => "probabilities",
        _ => "outputs",
    };
    let shape = vec![-1, result.network.output_len() as i64];
    vec![TensorSignature { name: output_name.into(), datatype: DType::F32, shape }]
}

/// The inputs of a version: one `input` tensor `[-1, …shape]`, or for a table whose columns
/// are encoded, one `[-1]` tensor per raw column named after it (FP32 numbers, BYTES texts).
fn input_signature(spec: &Spec, data: &Prepared) -> Vec<TensorSignature> {
    if data.columns.is_empty() {
        let mut shape = vec![-1i64];
        shape.extend(spec.input.shape.iter().map(|&d| d as i64));
        return vec![TensorSignature { name: "input".into(), datatype: DType::F32, shape }];
    }
    data.columns
        .iter()
        .map(|c| {
            let datatype = match c {
                ColumnEncoding::Numeric { .. } => DType::F32,
                ColumnEncoding::Categorical { .. } => DType::Bytes,
            };
            TensorSignature { name: c.name().to_string(), datatype, shape: vec![-1] }
        })
        .collect()
}

/// The files of a trained version, ready to publish.
#[derive(Debug, Clone)]
pub struct VersionFiles {
    /// `weights.safetensors`.
    pub weights: Vec<u8>,
    /// `statistics.json`: the training statistics drift is measured against.
    pub statistics: Vec<u8>,
    /// The manifest (without file digests, which publishing fills in).
    pub manifest: Manifest,
}

impl VersionFiles {
    /// The files other than the manifest, as `(name in the version, bytes)`.
    pub fn files(&self) -> [(&'static str, &[u8]); 2] {
        [(WEIGHTS_FILE, &self.weights), (STATISTICS_FILE, &self.statistics)]
    }
}

/// The weights, the training statistics and the manifest. `spec` is the resolved spec the fit
/// ran (`data.spec`).
pub fn version_files(
    name: &str,
    spec: &Spec,
    data: &Prepared,
    source: &DataSource,
    result: &FitResult,
) -> Result<VersionFiles, WeightsError> {
    let weights = write_weights(&result.network.tensors(), None)?;
    let statistics = serde_json::to_vec(&data.statistics).expect("statistics serialize");
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        name: name.to_string(),
        created_at: rfc3339_now(),
        lathe_version: env!("CARGO_PKG_VERSION").to_string(),
        signature: Signature { inputs: input_signature(spec, data), outputs: output_signature(data, result) },
        model: ModelSection::Sequential(SequentialSection {
            spec: spec.to_json(),
            preprocessing: data.preprocessing.clone(),
            class_names: data.class_names.clone(),
            feature_names: source.feature_names.to_vec(),
            columns: data.columns.clone(),
            targets: data.targets.clone(),
            metrics: result.test.clone(),
            history: result.history.clone(),
            data: DataLineage {
                source: source.source.to_string(),
                format: source.format.to_string(),
                fingerprint: data.fingerprint.clone(),
                train_samples: data.train.len() as u64,
                validation_samples: data.validation.len() as u64,
                test_samples: data.test.len() as u64,
            },
            seed: spec.fit.seed,
            training: result.info.clone(),
            job: None,
        }),
        files: Default::default(),
    };
    Ok(VersionFiles { weights, statistics, manifest })
}

/// The current time as RFC 3339 UTC, to the second.
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339(secs)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (`2026-12-29T01:02:03Z`).
pub fn rfc3339(secs: u64) -> String {
    let instant = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    instant.format(&time::format_description::well_known::Rfc3339).expect("RFC 3339 formats every UTC instant")
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_798_502_400 + 3_723), "2026-12-29T01:02:03Z");
    }
}
