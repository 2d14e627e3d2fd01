//! Version labels (`stable`, `canary`, …) and per-model serving configuration files, kept
//! next to the versions: `<root>/<name>/labels.json` and `<root>/<name>/config.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lathe_formats::atomic::write_atomic;

use crate::{RegistryError, Repository};

/// File holding a model's labels.
pub const LABELS_FILE: &str = "labels.json";
/// File holding a model's serving configuration.
pub const CONFIG_FILE: &str = "config.json";

/// Checks a label name: `[A-Za-z0-9_]+`, as TF Serving requires.
pub fn validate_label(label: &str) -> Result<(), String> {
    if !label.is_empty() && label.len() <= 64 && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!("invalid label {label:?}: expected 1-64 characters from A-Z a-z 0-9 _"))
    }
}

impl Repository {
    fn labels_path(&self, name: &str) -> PathBuf {
        self.root().join(name).join(LABELS_FILE)
    }

    /// Path of the serving configuration file of `name`.
    pub fn config_path(&self, name: &str) -> PathBuf {
        self.root().join(name).join(CONFIG_FILE)
    }

    /// The labels of `name` (empty when none are set).
    pub fn labels(&self, name: &str) -> Result<BTreeMap<String, u64>, RegistryError> {
        let path = self.labels_path(name);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| RegistryError::Manifest { path: path.display().to_string(), message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(RegistryError::Io { path: path.display().to_string(), source: e }),
        }
    }

    /// Points `label` at `version` of `name`. The version must exist; it need not be loaded
    /// anywhere (servers apply the label when the version is ready).
    pub fn set_label(&self, name: &str, label: &str, version: u64) -> Result<(), RegistryError> {
        validate_label(label).map_err(|m| RegistryError::Manifest { path: label.to_string(), message: m })?;
        let versions = self.versions(name)?;
        if !versions.contains(&version) {
            return Err(RegistryError::VersionNotFound { name: name.into(), version, available: versions });
        }
        let mut labels = self.labels(name)?;
        labels.insert(label.to_string(), version);
        self.write_labels(name, &labels)
    }

    /// Removes `label` from `name`; true when it existed.
    pub fn remove_label(&self, name: &str, label: &str) -> Result<bool, RegistryError> {
        let mut labels = self.labels(name)?;
        let existed = labels.remove(label).is_some();
        if existed {
            self.write_labels(name, &labels)?;
        }
        Ok(existed)
    }

    fn write_labels(&self, name: &str, labels: &BTreeMap<String, u64>) -> Result<(), RegistryError> {
        let path = self.labels_path(name);
        let json = serde_json::to_vec_pretty(labels).expect("labels serialise");
        write_atomic(&path, &json).map_err(RegistryError::io(&path))
    }
}
