//! What the tests share: the path of the shared models, log-probabilities.

use std::path::{Path, PathBuf};

/// `path` under the shared data folder (`LATHE_TEST_DATA`, default `../shared` beside the
/// checkout); fails naming the path when it is missing.
pub fn shared(path: &str) -> PathBuf {
    let root = std::env::var_os("LATHE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = root.join(path);
    assert!(path.exists(), "missing test file {} (set LATHE_TEST_DATA)", path.display());
    path
}

/// Natural log-probabilities of `logits` (log-softmax in f64).
#[allow(dead_code)] // not every test file compares log-probabilities
pub fn log_probs(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits.iter().map(|&l| l as f64 - max - sum.ln()).collect()
}
