use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lathe_formats::atomic::{copy_synced, sha256_hex, sync_dir, write_synced};
use lathe_formats::{FileEntry, Manifest, MANIFEST_FILE};
use lathe_types::ModelRef;

use crate::remote::{Location, Remote, RemoteOptions};
use crate::RegistryError;

pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// A model repository rooted at a folder; with a [`Remote`], the folder is a cache of the
/// versions in an object store, which is the repository's truth.
#[derive(Clone)]
pub struct Repository {
    root: PathBuf,
    pub(crate) remote: Option<Arc<Remote>>,
    /// The most bytes of version files the cache keeps (with a remote).
    pub(crate) cache_limit: Option<u64>,
    /// Where labels and traffic policies are shared with other replicas, if anywhere.
    pub(crate) shared: Option<Arc<dyn crate::SharedDocuments>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("root", &self.root)
            .field("remote", &self.remote)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

/// Where a publish landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The new version number.
    pub version: u64,
    /// Its folder.
    pub path: PathBuf,
}

/// Where a file of a new version comes from.
#[derive(Debug, Clone, Copy)]
pub enum FileSource<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// A copy of this file, streamed (model weights too large to hold in memory).
    Copy(&'a Path),
}

/// A check of a version's written files (its temporary folder) before the version appears.
pub type CheckFiles<'a> = Box<dyn FnMut(&Path) -> Result<(), String> + 'a>;

/// What a publish tells and asks its caller along the way.
pub struct Publishing<'a> {
    /// Bytes copied so far across all files.
    pub progress: Box<dyn FnMut(u64) + 'a>,
    /// Checks the written files (the version's temporary folder) before the version appears;
    /// an error leaves no version.
    pub check: CheckFiles<'a>,
}

impl Default for Publishing<'_> {
    fn default() -> Self {
        Publishing { progress: Box::new(|_| {}), check: Box::new(|_| Ok(())) }
    }
}

/// A version with its manifest.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Version folder.
    pub path: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
}

impl Repository {
    /// A repository at `root` (created on first publish).
    pub fn new(root: impl Into<PathBuf>) -> Repository {
        Repository { root: root.into(), remote: None, cache_limit: None, shared: None }
    }

    /// The repository at `location` (`DIR`, `file://DIR` or `s3://bucket/prefix`); an object
    /// store's versions are cached in `cache` (made `cache_for(location)` when `None`).
    ///
    /// # Errors
    /// [`RegistryError::Location`] for a location that cannot be used (see [`Location::parse`]
    /// and [`Remote::s3`]).
    pub fn open(location: &str, cache: Option<&Path>, options: &RemoteOptions) -> Result<Repository, RegistryError> {
        match Location::parse(location)? {
            Location::Folder(root) => Ok(Repository::new(root)),
            Location::S3 { bucket, prefix } => {
                let remote = Remote::s3(&bucket, &prefix, options)?;
                let root = cache.map(Path::to_path_buf).unwrap_or_else(|| default_cache(&bucket, &prefix));
                Ok(Repository { root, remote: Some(Arc::new(remote)), cache_limit: None, shared: None })
            }
        }
    }

    /// Keeps at most `bytes` of version files in the cache of a remote repository (each
    /// model's newest version and the versions its labels and traffic name are kept even
    /// above it; see [`Repository::sync`]).
    pub fn with_cache_limit(mut self, bytes: Option<u64>) -> Repository {
        self.cache_limit = bytes;
        self
    }

    /// Where the repository lives, as a user names it: the store's `s3://` URL, or the folder.
    pub fn location(&self) -> String {
        match &self.remote {
            Some(remote) => remote.url().to_string(),
            None => self.root.display().to_string(),
        }
    }

    /// The object store behind this repository, if any.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_deref()
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Folder for the training checkpoint of model `name` (outside the versions).
    pub fn checkpoint_dir(&self, name: &str) -> PathBuf {
        self.root.join(".checkpoints").join(name)
    }

    /// Publishes `files` and `manifest` as the next version of `name`. The manifest's `files`
    /// map is filled with the digest of every file.
    pub fn publish(&self, name: &str, files: &[(&str, &[u8])], manifest: Manifest) -> Result<Published, RegistryError> {
        let sources: Vec<(&str, FileSource)> = files.iter().map(|(n, b)| (*n, FileSource::Bytes(b))).collect();
        self.publish_from(name, &sources, manifest, &mut Publishing::default())
    }

    /// As [`Repository::publish`], with files given as bytes or as paths to copy; `hooks`
    /// hear of the bytes copied and may check the written files before the version appears.
    pub fn publish_from(
        &self,
        name: &str,
        files: &[(&str, FileSource)],
        mut manifest: Manifest,
        hooks: &mut Publishing,
    ) -> Result<Published, RegistryError> {
        ModelRef::validate_name(name)?;
        let model_dir = self.root.join(name);
        fs::create_dir_all(&model_dir).map_err(RegistryError::io(&model_dir))?;
        remove_stale_temps(&model_dir);
        let tmp = model_dir.join(format!("{TEMP_PREFIX}{}-{}", std::process::id(), unique_suffix()));
        fs::create_dir(&tmp).map_err(RegistryError::io(&tmp))?;
        let result = self.fill_and_rename(&model_dir, &tmp, files, &mut manifest, hooks);
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn fill_and_rename(
        &self,
        model_dir: &Path,
        tmp: &Path,
        files: &[(&str, FileSource)],
        manifest: &mut Manifest,
        hooks: &mut Publishing,
    ) -> Result<Published, RegistryError> {
        let mut entries = BTreeMap::new();
        let mut copied = 0u64;
        for (file, source) in files {
            if !is_plain_relative(file) {
                return Err(RegistryError::Manifest {
                    path: file.to_string(),
                    message: "file names must be relative paths without '..'".into(),
                });
            }
            let path = tmp.join(file);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(RegistryError::io(dir))?;
            }
            let (sha256, bytes) = match source {
                FileSource::Bytes(bytes) => {
                    write_synced(&path, bytes).map_err(RegistryError::io(&path))?;
                    (sha256_hex(bytes), bytes.len() as u64)
                }
                FileSource::Copy(from) => {
                    let progress = &mut hooks.progress;
                    copy_synced(from, &path, &mut |n| progress(copied + n)).map_err(RegistryError::io(from))?
                }
            };
            copied += bytes;
            entries.insert(file.to_string(), FileEntry { sha256, bytes });
        }
        (hooks.check)(tmp).map_err(|message| RegistryError::Check { path: tmp.display().to_string(), message })?;
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        manifest.files = entries;
        let json = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
        let manifest_path = tmp.join(MANIFEST_FILE);
        write_synced(&manifest_path, &json).map_err(RegistryError::io(&manifest_path))?;
        sync_dir(tmp).map_err(RegistryError::io(tmp))?;
        let name = model_dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let published = match &self.remote {
            None => self.rename_to_next(model_dir, tmp)?,
            Some(remote) => {
                let version = remote.publish_folder(name, tmp, &names, json)?;
                let path = self.place(model_dir, tmp, version)?;
                Published { version, path }
            }
        };
        self.announce(name);
        Ok(published)
    }

    /// Tells the other replicas, through the shared store, that `name` changed; a failure
    /// only delays them until their next scan.
    pub(crate) fn announce(&self, name: &str) {
        if let Some(shared) = &self.shared {
            if let Err(e) = shared.announce(name) {
                tracing::warn!(model = name, error = %e, "announcing a change failed; replicas see it when they scan");
            }
        }
    }

    /// Renames the complete folder `tmp` to `model_dir/<version>`; when the version is already
    /// there (a concurrent sync fetched it first), `tmp` is removed.
    pub(crate) fn place(&self, model_dir: &Path, tmp: &Path, version: u64) -> Result<PathBuf, RegistryError> {
        let target = model_dir.join(version.to_string());
        match fs::rename(tmp, &target) {
            Ok(()) => sync_dir(model_dir).map_err(RegistryError::io(model_dir))?,
            Err(_) if target.join(MANIFEST_FILE).is_file() => {
                let _ = fs::remove_dir_all(tmp);
            }
            Err(e) => return Err(RegistryError::Io { path: target.display().to_string(), source: e }),
        }
        Ok(target)
    }

    /// Renames the complete folder `tmp` to the next free version number of the folder.
    fn rename_to_next(&self, model_dir: &Path, tmp: &Path) -> Result<Published, RegistryError> {
        loop {
            let version = self.list_versions(model_dir).last().copied().unwrap_or(0) + 1;
            let target = model_dir.join(version.to_string());
            match fs::rename(tmp, &target) {
                Ok(()) => {
                    sync_dir(model_dir).map_err(RegistryError::io(model_dir))?;
                    return Ok(Published { version, path: target });
                }
                Err(e) if target.exists() && e.kind() != std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(RegistryError::Io { path: target.display().to_string(), source: e }),
            }
        }
    }

    pub(crate) fn list_versions(&self, model_dir: &Path) -> Vec<u64> {
        let mut out: Vec<u64> = fs::read_dir(model_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v: u64 = e.file_name().to_str()?.parse().ok()?;
                (v > 0 && e.path().join(MANIFEST_FILE).is_file()).then_some(v)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Published versions of `name`, ascending.
    pub fn versions(&self, name: &str) -> Result<Vec<u64>, RegistryError> {
        ModelRef::validate_name(name)?;
        Ok(self.list_versions(&self.root.join(name)))
    }

    /// Names of the models with at least one version, sorted.
    pub fn models(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| ModelRef::validate_name(n).is_ok() && !self.list_versions(&self.root.join(n)).is_empty())
            .collect();
        names.sort();
        names
    }

    /// Resolves `NAME[:VERSION]` (latest when no version is given) to a version and its manifest.
    pub fn resolve(&self, r: &ModelRef) -> Result<VersionInfo, RegistryError> {
        let versions = self.versions(&r.name)?;
        let version = match r.version {
            None => *versions.last().ok_or_else(|| RegistryError::ModelNotFound {
                name: r.name.clone(),
                root: self.root.display().to_string(),
            })?,
            Some(v) if versions.contains(&v) => v,
            Some(_) if versions.is_empty() => {
                return Err(RegistryError::ModelNotFound {
                    name: r.name.clone(),
                    root: self.root.display().to_string(),
                });
            }
            Some(v) => {
                return Err(RegistryError::VersionNotFound { name: r.name.clone(), version: v, available: versions })
            }
        };
        let path = self.root.join(&r.name).join(version.to_string());
        let manifest = read_manifest(&path)?;
        Ok(VersionInfo { name: r.name.clone(), version, path, manifest })
    }
}

/// Reads and parses the manifest of a version folder.
pub fn read_manifest(dir: &Path) -> Result<Manifest, RegistryError> {
    let path = dir.join(MANIFEST_FILE);
    let text = fs::read(&path).map_err(RegistryError::io(&path))?;
    serde_json::from_slice(&text)
        .map_err(|e| RegistryError::Manifest { path: path.display().to_string(), message: e.to_string() })
}

/// Whether a version's file name is a relative path without `..`, `.` or a root: it stays
/// inside the version's folder.
pub(crate) fn is_plain_relative(file: &str) -> bool {
    !file.is_empty() && Path::new(file).components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// `$XDG_CACHE_HOME/lathe/s3/<bucket>/<prefix>` (or `~/.cache/…`, or the temp folder when
/// there is no home).
fn default_cache(bucket: &str, prefix: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("lathe").join("s3").join(bucket).join(prefix)
}

pub(crate) fn unique_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// Removes temporary folders left by publishers that no longer run (killed mid-publish).
pub(crate) fn remove_stale_temps(model_dir: &Path) {
    for entry in fs::read_dir(model_dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else { continue };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
