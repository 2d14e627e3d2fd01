//! Version labels (`stable`, `canary`, …) and per-model serving configuration files, kept
//! next to the versions: `<root>/<name>/labels.json` and `<root>/<name>/config.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
        self.update_labels(name, |labels| {
            self.check_label(name, label, version)?;
            labels.insert(label.to_string(), version);
            Ok::<(), RegistryError>(())
        })
    }

    /// Checks that `label` is a valid name and `version` a published version of `name`.
    pub fn check_label(&self, name: &str, label: &str, version: u64) -> Result<(), RegistryError> {
        validate_label(label).map_err(|m| RegistryError::Manifest { path: label.to_string(), message: m })?;
        let versions = self.published_versions(name)?;
        if !versions.contains(&version) {
            return Err(RegistryError::VersionNotFound { name: name.into(), version, available: versions });
        }
        Ok(())
    }

    /// Removes `label` from `name`; true when it existed.
    pub fn remove_label(&self, name: &str, label: &str) -> Result<bool, RegistryError> {
        let mut existed = false;
        self.update_labels(name, |labels| {
            existed = labels.remove(label).is_some();
            Ok::<(), RegistryError>(())
        })?;
        Ok(existed)
    }

    /// The labels of `name` as every replica sees them: the shared store's when there is one
    /// (this folder's copy may lag behind it), else the folder's.
    pub fn shared_labels(&self, name: &str) -> Result<BTreeMap<String, u64>, RegistryError> {
        let Some(shared) = self.shared() else { return self.labels(name) };
        let document = shared
            .read(name, LABELS_FILE)
            .map_err(|message| RegistryError::Shared { document: format!("{name}/{LABELS_FILE}"), message })?;
        match document {
            Some((bytes, _)) => serde_json::from_slice(&bytes)
                .map_err(|e| RegistryError::Manifest { path: format!("{name}/{LABELS_FILE}"), message: e.to_string() }),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Changes the labels of `name` with `change`, which may refuse with its own error and may
    /// run more than once (see [`Repository::update_document`]).
    pub fn update_labels<E: From<RegistryError>>(
        &self,
        name: &str,
        mut change: impl FnMut(&mut BTreeMap<String, u64>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.update_document(name, LABELS_FILE, |current| {
            let mut labels: BTreeMap<String, u64> = match current {
                Some(bytes) => serde_json::from_slice(bytes).map_err(|e| RegistryError::Manifest {
                    path: self.labels_path(name).display().to_string(),
                    message: e.to_string(),
                })?,
                None => BTreeMap::new(),
            };
            change(&mut labels)?;
            Ok(Some(serde_json::to_vec_pretty(&labels).expect("labels serialise")))
        })
    }

    /// The published versions of `name`: the store's for a remote repository, else the folder's.
    pub fn published_versions(&self, name: &str) -> Result<Vec<u64>, RegistryError> {
        match self.remote() {
            Some(remote) => {
                lathe_types::ModelRef::validate_name(name)?;
                remote.published_versions(name)
            }
            None => self.versions(name),
        }
    }
}
