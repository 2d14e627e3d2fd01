//! The local cache of a remote repository: versions copied from the object store, each file
//! verified against the manifest's sha256 before the version appears in the folder.
//!
//! [`Repository::sync`] mirrors the store. It fetches each model's newest version and the
//! versions its labels and traffic policy name ("wanted"), evicting other cached versions
//! (oldest made first) when the byte limit needs room; other versions are fetched newest
//! first while they fit without evicting anything, so two syncs never undo each other.
//! Versions deleted from the store leave the cache.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use lathe_formats::atomic::{sync_dir, write_synced};
use lathe_formats::{Manifest, MANIFEST_FILE};
use lathe_types::ModelRef;

use crate::remote::Remote;
use crate::repository::{is_plain_relative, remove_stale_temps, unique_suffix, TEMP_PREFIX};
use crate::{RegistryError, Repository};

/// What a sync changed in the cache.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Versions copied into the cache (model, version).
    pub fetched: Vec<(String, u64)>,
    /// Versions removed: deleted from the store, or evicted to make room.
    pub removed: Vec<(String, u64)>,
    /// Published versions left out because the cache is full.
    pub skipped: Vec<(String, u64)>,
    /// Models whose labels or traffic policy changed in the shared store.
    pub documents: Vec<String>,
    /// Published versions that could not be fetched (model, version, why); tried again at
    /// the next sync.
    pub failed: Vec<(String, u64, String)>,
}

impl SyncReport {
    /// True when the sync changed nothing.
    pub fn is_empty(&self) -> bool {
        self.fetched.is_empty() && self.removed.is_empty() && self.documents.is_empty()
    }
}

/// A cached version: which, how large, when it was made.
struct Cached {
    name: String,
    version: u64,
    bytes: u64,
    created_at: String,
}

impl Repository {
    /// Mirrors the shared labels and traffic policies ([`Repository::sync_documents`]) and
    /// every model of the object store into the cache (see the module's rules); a folder
    /// repository without a shared store has nothing to sync.
    ///
    /// # Errors
    /// A store or file error that stops the whole sync (the store cannot be listed); a
    /// version that cannot be fetched is reported in [`SyncReport::failed`] instead.
    pub fn sync(&self) -> Result<SyncReport, RegistryError> {
        let mut report = SyncReport { documents: self.sync_documents()?, ..SyncReport::default() };
        let Some(remote) = self.remote.as_deref() else { return Ok(report) };
        let names: BTreeSet<String> = remote.model_names()?.into_iter().chain(self.models()).collect();
        for name in names {
            self.sync_with(remote, &name, &mut report)?;
        }
        Ok(report)
    }

    /// As [`Repository::sync`], for one model.
    pub fn sync_model(&self, name: &str) -> Result<SyncReport, RegistryError> {
        ModelRef::validate_name(name)?;
        let Some(remote) = self.remote.as_deref() else { return Ok(SyncReport::default()) };
        let mut report = SyncReport::default();
        self.sync_with(remote, name, &mut report)?;
        Ok(report)
    }

    fn sync_with(&self, remote: &Remote, name: &str, report: &mut SyncReport) -> Result<(), RegistryError> {
        let published = remote.published_versions(name)?;
        let model_dir = self.root().join(name);
        for gone in self.list_versions(&model_dir).into_iter().filter(|v| !published.contains(v)) {
            self.remove_cached(name, gone)?;
            report.removed.push((name.to_string(), gone));
        }
        let cached: BTreeSet<u64> = self.list_versions(&model_dir).into_iter().collect();
        let wanted = self.wanted(name, &published);
        for &version in published.iter().rev().filter(|v| !cached.contains(v)) {
            // One unreadable version (a corrupt object, a delete racing this read) is reported
            // and skipped; the others are still fetched.
            if let Err(e) = self.sync_version(remote, name, version, wanted.contains(&version), report) {
                tracing::warn!(model = name, version, error = %e, "a version could not be fetched");
                report.failed.push((name.to_string(), version, e.to_string()));
            }
        }
        Ok(())
    }

    fn sync_version(
        &self,
        remote: &Remote,
        name: &str,
        version: u64,
        wanted: bool,
        report: &mut SyncReport,
    ) -> Result<(), RegistryError> {
        let manifest = self.remote_manifest(remote, name, version)?;
        let bytes = manifest.0.files.values().map(|f| f.bytes).sum();
        if !self.make_room(bytes, wanted, report)? {
            report.skipped.push((name.to_string(), version));
            return Ok(());
        }
        self.fetch(remote, name, version, manifest)?;
        report.fetched.push((name.to_string(), version));
        Ok(())
    }

    /// Makes sure version `version` of `name` is in the cache (fetching it, and evicting older
    /// versions if the limit needs room) and returns its folder.
    pub fn fetch_version(&self, name: &str, version: u64) -> Result<PathBuf, RegistryError> {
        let path = self.root().join(name).join(version.to_string());
        let Some(remote) = self.remote.as_deref() else { return Ok(path) };
        if path.join(MANIFEST_FILE).is_file() {
            return Ok(path);
        }
        let manifest = self.remote_manifest(remote, name, version)?;
        let bytes = manifest.0.files.values().map(|f| f.bytes).sum();
        self.make_room(bytes, true, &mut SyncReport::default())?;
        self.fetch(remote, name, version, manifest)
    }

    /// Each model's newest version and those its labels and traffic policy name.
    fn wanted(&self, name: &str, published: &[u64]) -> BTreeSet<u64> {
        let labels = self.labels(name).unwrap_or_default();
        let mut wanted: BTreeSet<u64> = published.last().copied().into_iter().collect();
        wanted.extend(labels.values().copied());
        if let Ok(Some(traffic)) = self.traffic(name) {
            wanted.extend(published.iter().copied().filter(|&v| traffic.points_at(v, &labels)));
        }
        wanted
    }

    /// The parsed manifest of a version in the store, with its bytes as stored.
    fn remote_manifest(&self, remote: &Remote, name: &str, version: u64) -> Result<(Manifest, Vec<u8>), RegistryError> {
        let bytes = remote.read(name, version, MANIFEST_FILE)?.ok_or_else(|| RegistryError::Remote {
            url: remote.url().to_string(),
            message: format!("version {version} of {name:?} lost its manifest while being read"),
        })?;
        let manifest = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Manifest {
            path: format!("{}/{name}/{version}/{MANIFEST_FILE}", remote.url()),
            message: e.to_string(),
        })?;
        Ok((manifest, bytes))
    }

    /// Downloads every file the manifest lists into a temporary folder, checks sizes and
    /// digests, writes the manifest last and renames the folder into place.
    fn fetch(
        &self,
        remote: &Remote,
        name: &str,
        version: u64,
        (manifest, json): (Manifest, Vec<u8>),
    ) -> Result<PathBuf, RegistryError> {
        let model_dir = self.root().join(name);
        fs::create_dir_all(&model_dir).map_err(RegistryError::io(&model_dir))?;
        remove_stale_temps(&model_dir);
        let tmp = model_dir.join(format!("{TEMP_PREFIX}{}-{}", std::process::id(), unique_suffix()));
        fs::create_dir(&tmp).map_err(RegistryError::io(&tmp))?;
        let filled = fill_verified(remote, name, version, &manifest, &tmp);
        let filled = filled.and_then(|()| write_manifest(&tmp, &json));
        let placed = filled.and_then(|()| self.place(&model_dir, &tmp, version));
        if placed.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        tracing::info!(model = name, version, store = remote.url(), ok = placed.is_ok(), "fetched into the cache");
        placed
    }

    /// Evicts cached versions that are not wanted, oldest (by `created_at`) first, until `bytes` more
    /// fit under the limit; only a `wanted` version may evict. False when it does not fit.
    fn make_room(&self, bytes: u64, wanted: bool, report: &mut SyncReport) -> Result<bool, RegistryError> {
        let Some(limit) = self.cache_limit else { return Ok(true) };
        let mut cached = self.cached_versions();
        let mut used: u64 = cached.iter().map(|c| c.bytes).sum();
        if used + bytes <= limit {
            return Ok(true);
        }
        if !wanted {
            return Ok(false);
        }
        cached.sort_by(|a, b| (&a.created_at, &a.name, a.version).cmp(&(&b.created_at, &b.name, b.version)));
        for victim in cached {
            if used + bytes <= limit {
                break;
            }
            let published = self.list_versions(&self.root().join(&victim.name));
            if self.wanted(&victim.name, &published).contains(&victim.version) {
                continue;
            }
            self.remove_cached(&victim.name, victim.version)?;
            report.removed.push((victim.name, victim.version));
            used -= victim.bytes;
        }
        Ok(used + bytes <= limit)
    }

    fn cached_versions(&self) -> Vec<Cached> {
        let mut out = Vec::new();
        for name in self.models() {
            for version in self.list_versions(&self.root().join(&name)) {
                let dir = self.root().join(&name).join(version.to_string());
                let Ok(manifest) = crate::read_manifest(&dir) else { continue };
                let bytes = manifest.files.values().map(|f| f.bytes).sum();
                out.push(Cached { name: name.clone(), version, bytes, created_at: manifest.created_at });
            }
        }
        out
    }

    pub(crate) fn remove_cached(&self, name: &str, version: u64) -> Result<(), RegistryError> {
        let dir = self.root().join(name).join(version.to_string());
        let doomed = self.root().join(name).join(format!(".deleted-{version}-{}", unique_suffix()));
        match fs::rename(&dir, &doomed) {
            Ok(()) => fs::remove_dir_all(&doomed).map_err(RegistryError::io(&doomed)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RegistryError::Io { path: dir.display().to_string(), source: e }),
        }
    }
}

fn fill_verified(
    remote: &Remote,
    name: &str,
    version: u64,
    manifest: &Manifest,
    tmp: &Path,
) -> Result<(), RegistryError> {
    for (file, entry) in &manifest.files {
        if !is_plain_relative(file) {
            return Err(RegistryError::Manifest {
                path: format!("{}/{name}/{version}/{MANIFEST_FILE}", remote.url()),
                message: format!("file name {file:?} is not a relative path without '..'"),
            });
        }
        let path = tmp.join(file);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(RegistryError::io(dir))?;
        }
        let (sha256, bytes) = remote.download(name, version, file, &path)?;
        if sha256 != entry.sha256 || bytes != entry.bytes {
            return Err(RegistryError::Check {
                path: format!("{}/{name}/{version}/{file}", remote.url()),
                message: format!(
                    "{bytes} bytes with sha256 {sha256}, but the manifest lists {} bytes with sha256 {}",
                    entry.bytes, entry.sha256
                ),
            });
        }
    }
    Ok(())
}

/// Writes the manifest, last, and syncs the folder.
fn write_manifest(tmp: &Path, json: &[u8]) -> Result<(), RegistryError> {
    let manifest_path = tmp.join(MANIFEST_FILE);
    write_synced(&manifest_path, json).map_err(RegistryError::io(&manifest_path))?;
    sync_dir(tmp).map_err(RegistryError::io(tmp))
}
