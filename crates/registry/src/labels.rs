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
    /// Path of the serving configuration file of `name`.
    pub fn config_path(&self, name: &str) -> PathBuf {
        self.root().join(name).join(CONFIG_FILE)
    }

    /// The labels of `name` (empty when none are set).
    pub fn labels(&self, name: &str) -> Result<BTreeMap<String, u64>, RegistryError> {
        self.labels_from(name, self.read_local(name, LABELS_FILE)?)
    }

    fn labels_from(&self, name: &str, document: Option<Vec<u8>>) -> Result<BTreeMap<String, u64>, RegistryError> {
        document.map_or_else(|| Ok(BTreeMap::new()), |bytes| self.parse_document(name, LABELS_FILE, &bytes))
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
        self.labels_from(name, self.shared_document(name, LABELS_FILE)?)
    }

    /// Changes the labels of `name` with `change`, which may refuse with its own error and may
    /// run more than once (see [`Repository::update_document`]).
    pub fn update_labels<E: From<RegistryError>>(
        &self,
        name: &str,
        mut change: impl FnMut(&mut BTreeMap<String, u64>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.update_document(name, LABELS_FILE, |current| {
            let mut labels = self.labels_from(name, current.map(<[u8]>::to_vec))?;
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
