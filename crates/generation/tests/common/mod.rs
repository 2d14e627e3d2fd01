//! What the tests share: the path of the shared models.

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
