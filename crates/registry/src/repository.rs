use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use lathe_formats::atomic::{copy_synced, sha256_hex, sync_dir, write_synced};
use lathe_formats::{FileEntry, Manifest, MANIFEST_FILE};
use lathe_types::ModelRef;

use crate::RegistryError;

const TEMP_PREFIX: &str = ".tmp-";

/// A model repository rooted at a folder.
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
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
        Repository { root: root.into() }
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
            let safe = !file.is_empty()
                && std::path::Path::new(file).components().all(|c| matches!(c, std::path::Component::Normal(_)));
            if !safe {
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
        manifest.files = entries;
        let json = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
        let manifest_path = tmp.join(MANIFEST_FILE);
        write_synced(&manifest_path, &json).map_err(RegistryError::io(&manifest_path))?;
        sync_dir(tmp).map_err(RegistryError::io(tmp))?;
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

    fn list_versions(&self, model_dir: &Path) -> Vec<u64> {
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

fn unique_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// Removes temporary folders left by publishers that no longer run (killed mid-publish).
fn remove_stale_temps(model_dir: &Path) {
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
