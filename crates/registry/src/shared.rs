//! Labels and traffic policies shared by every replica: kept in a database (Postgres, see
//! `lathe-store`) behind [`SharedDocuments`], and mirrored into the repository folder, where
//! the server reads them like any other file.
//!
//! Changes are compare-and-set: read a document and its revision, compute the new one, write
//! it only if the revision is unchanged, else read again. A check made on the document read
//! (an `If-Match`) therefore holds against every replica, not just this process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lathe_formats::atomic::write_atomic;

use crate::labels::LABELS_FILE;
use crate::traffic::TRAFFIC_FILE;
use crate::{RegistryError, Repository};

/// The documents a deployment shares: `labels.json` and `traffic.json` of each model.
pub const SHARED_FILES: [&str; 2] = [LABELS_FILE, TRAFFIC_FILE];

/// How many times a change is recomputed when other writers keep getting there first.
const WRITE_TRIES: usize = 32;

/// A document and its revision (opaque; changes with every write).
pub type Revised = (Vec<u8>, String);

/// A store of small per-model documents that every replica sees; compare-and-set writes.
pub trait SharedDocuments: Send + Sync {
    /// The document `file` of `model` with its revision; `None` when absent.
    fn read(&self, model: &str, file: &str) -> Result<Option<Revised>, String>;

    /// Writes `body` (`None` removes the document) if it is still at `revision` (`None`: still
    /// absent). `Ok(false)` when another writer changed it first.
    fn write_if(&self, model: &str, file: &str, body: Option<&[u8]>, revision: Option<&str>) -> Result<bool, String>;

    /// Every document: (model, file, body).
    fn all(&self) -> Result<Vec<(String, String, Vec<u8>)>, String>;

    /// Tells the other replicas that something of `model` changed (a version was published).
    fn announce(&self, model: &str) -> Result<(), String>;
}

/// Serialises the read-modify-write of folder documents within this process (without a
/// shared store the folder is the truth).
static LOCAL_WRITES: Mutex<()> = Mutex::new(());

impl Repository {
    /// Shares labels and traffic policies through `documents` (see the module documentation).
    pub fn with_shared(mut self, documents: Arc<dyn SharedDocuments>) -> Repository {
        self.shared = Some(documents);
        self
    }

    /// The shared store of labels and traffic policies, if any.
    pub fn shared(&self) -> Option<&Arc<dyn SharedDocuments>> {
        self.shared.as_ref()
    }

    fn document_path(&self, name: &str, file: &str) -> PathBuf {
        self.root().join(name).join(file)
    }

    fn shared_error(&self, name: &str, file: &str, message: String) -> RegistryError {
        RegistryError::Shared { document: format!("{name}/{file}"), message }
    }

    /// Replaces document `file` of `name` with what `change` makes of the current one (`None`:
    /// absent); `change` may refuse with its own error, and may run more than once when other
    /// writers get there first. The folder's copy is updated too.
    pub fn update_document<E: From<RegistryError>>(
        &self,
        name: &str,
        file: &str,
        mut change: impl FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<(), E> {
        lathe_types::ModelRef::validate_name(name).map_err(RegistryError::from)?;
        let Some(shared) = &self.shared else {
            let _held = LOCAL_WRITES.lock().unwrap_or_else(|p| p.into_inner());
            let current = self.read_local(name, file)?;
            let next = change(current.as_deref())?;
            return Ok(self.write_local(name, file, next.as_deref())?);
        };
        for _ in 0..WRITE_TRIES {
            let current = shared.read(name, file).map_err(|m| self.shared_error(name, file, m))?;
            let next = change(current.as_ref().map(|(body, _)| body.as_slice()))?;
            let revision = current.as_ref().map(|(_, r)| r.as_str());
            if shared.write_if(name, file, next.as_deref(), revision).map_err(|m| self.shared_error(name, file, m))? {
                return Ok(self.write_local(name, file, next.as_deref())?);
            }
        }
        let message = format!("still changing after {WRITE_TRIES} tries");
        Err(self.shared_error(name, file, message).into())
    }

    /// Document `file` of `name` as every replica sees it: the shared store's when there is
    /// one (this folder's copy may lag behind it), else the folder's.
    pub(crate) fn shared_document(&self, name: &str, file: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let Some(shared) = &self.shared else { return self.read_local(name, file) };
        let document = shared.read(name, file).map_err(|m| self.shared_error(name, file, m))?;
        Ok(document.map(|(body, _)| body))
    }

    /// Parses document `file` of `name` (labels or a traffic policy); errors name its path.
    pub(crate) fn parse_document<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        file: &str,
        bytes: &[u8],
    ) -> Result<T, RegistryError> {
        serde_json::from_slice(bytes).map_err(|e| RegistryError::Manifest {
            path: self.document_path(name, file).display().to_string(),
            message: e.to_string(),
        })
    }

    pub(crate) fn read_local(&self, name: &str, file: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let path = self.document_path(name, file);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::Io { path: path.display().to_string(), source: e }),
        }
    }

    fn write_local(&self, name: &str, file: &str, body: Option<&[u8]>) -> Result<(), RegistryError> {
        let path = self.document_path(name, file);
        match body {
            Some(bytes) => {
                let dir = self.root().join(name);
                std::fs::create_dir_all(&dir).map_err(RegistryError::io(&dir))?;
                write_atomic(&path, bytes).map_err(RegistryError::io(&path))
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RegistryError::io(&path)(e)),
                _ => Ok(()),
            },
        }
    }

    /// Copies the shared documents into the folder: changed ones are rewritten, and a model's
    /// labels or policy removed from the store leave the folder. Returns the models touched.
    pub fn sync_documents(&self) -> Result<Vec<String>, RegistryError> {
        let Some(shared) = &self.shared else { return Ok(Vec::new()) };
        let all = shared.all().map_err(|m| RegistryError::Shared { document: "*".into(), message: m })?;
        let mut wanted: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
        for (model, file, body) in all {
            if lathe_types::ModelRef::validate_name(&model).is_ok() && SHARED_FILES.contains(&file.as_str()) {
                wanted.insert((model, file), body);
            }
        }
        let mut touched = Vec::new();
        let models: std::collections::BTreeSet<String> =
            self.models().into_iter().chain(wanted.keys().map(|(m, _)| m.clone())).collect();
        for model in models {
            for file in SHARED_FILES {
                let want = wanted.get(&(model.clone(), file.to_string()));
                if self.read_local(&model, file)?.as_ref() != want {
                    self.write_local(&model, file, want.map(Vec::as_slice))?;
                    touched.push(model.clone());
                }
            }
        }
        touched.dedup();
        Ok(touched)
    }

    /// Adds the folder's labels and traffic policies that the shared store lacks (a
    /// deployment moving to a shared store keeps its promotions); existing ones win.
    pub fn import_documents(&self) -> Result<usize, RegistryError> {
        let Some(shared) = &self.shared else { return Ok(0) };
        // Once, into an empty store: later, a folder's copy may be older than the store (a
        // policy cleared since) and must not come back.
        let existing = shared.all().map_err(|m| RegistryError::Shared { document: "*".into(), message: m })?;
        if !existing.is_empty() {
            return Ok(0);
        }
        let mut imported = 0;
        for model in self.models() {
            for file in SHARED_FILES {
                let Some(body) = self.read_local(&model, file)? else { continue };
                let added = shared.write_if(&model, file, Some(&body), None);
                if added.map_err(|m| self.shared_error(&model, file, m))? {
                    imported += 1;
                }
            }
        }
        Ok(imported)
    }
}
