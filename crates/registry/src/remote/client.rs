//! The object operations a repository needs: claims, uploads, the manifest, downloads, deletes.

use std::io::{Read, Write};
use std::path::Path;

use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use super::{Remote, CLAIM_FILE};
use crate::RegistryError;

/// Files above this size are uploaded in parts.
const SINGLE_PUT_BYTES: u64 = 8 << 20;
/// The size of one part of a multipart upload.
const PART_BYTES: usize = 16 << 20;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

impl Remote {
    /// Claims version `version` of `name` by creating `<name>/<version>/.claim` only if no
    /// object has that key (`If-None-Match: *`). `Ok(true)`: this call claimed it;
    /// `Ok(false)`: someone else had.
    pub fn claim(&self, name: &str, version: u64, owner: &str) -> Result<bool, RegistryError> {
        let key = self.key(&[name, &version.to_string(), CLAIM_FILE]);
        match self.create(&key, owner.as_bytes().to_vec())? {
            Ok(()) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.store_error(&key, e)),
        }
    }

    /// Creates `<name>/<version>/manifest.json`, once: the last write of a publish, after
    /// which the version exists for every reader.
    pub fn put_manifest(&self, name: &str, version: u64, json: Vec<u8>) -> Result<(), RegistryError> {
        let key = self.key(&[name, &version.to_string(), lathe_formats::MANIFEST_FILE]);
        self.create(&key, json)?.map_err(|e| self.store_error(&key, e))
    }

    fn create(&self, key: &Key, body: Vec<u8>) -> Result<Result<(), object_store::Error>, RegistryError> {
        let (store, at) = (self.store.clone(), key.clone());
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.block(async move { store.put_opts(&at, PutPayload::from(body), options).await.map(|_| ()) })
    }

    /// Uploads the local file `from` as `<name>/<version>/<file>`; files above 8 MiB go in
    /// 16 MiB parts, four in flight.
    pub fn upload(&self, name: &str, version: u64, file: &str, from: &Path) -> Result<(), RegistryError> {
        self.upload_key(self.key(&[name, &version.to_string(), file]), from)
    }

    fn upload_key(&self, key: Key, from: &Path) -> Result<(), RegistryError> {
        let io = |e: std::io::Error| RegistryError::Io { path: from.display().to_string(), source: e };
        let mut source = std::fs::File::open(from).map_err(io)?;
        let size = source.metadata().map_err(io)?.len();
        let (store, at) = (self.store.clone(), key.clone());
        let sent = if size <= SINGLE_PUT_BYTES {
            let mut bytes = Vec::with_capacity(size as usize);
            source.read_to_end(&mut bytes).map_err(io)?;
            self.block(async move { store.put(&at, PutPayload::from(bytes)).await.map(|_| ()) })?
        } else {
            let streamed = self.block(async move {
                let mut writer = WriteMultipart::new_with_chunk_size(store.put_multipart(&at).await?, PART_BYTES);
                let mut buffer = vec![0u8; 1 << 20];
                loop {
                    let n = match source.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) => {
                            let _ = writer.abort().await;
                            return Ok(Err(e));
                        }
                    };
                    if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                        let _ = writer.abort().await;
                        return Err(e);
                    }
                    writer.write(&buffer[..n]);
                }
                writer.finish().await.map(|_| Ok(()))
            })?;
            match streamed {
                Ok(read) => read.map_err(io)?,
                Err(e) => return Err(self.store_error(&key, e)),
            }
            Ok(())
        };
        sent.map_err(|e| self.store_error(&key, e))
    }

    /// The bytes of `<name>/<version>/<file>`, or `None` when there is no such object.
    pub fn read(&self, name: &str, version: u64, file: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let key = self.key(&[name, &version.to_string(), file]);
        let (store, at) = (self.store.clone(), key.clone());
        let got = self.block(async move {
            match store.get(&at).await {
                Ok(result) => result.bytes().await.map(|b| Some(b.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map_err(|e| self.store_error(&key, e))
    }

    /// Streams `<name>/<version>/<file>` into the new local file `to` (fsynced) and returns its
    /// sha256 (hex) and size in bytes.
    pub fn download(&self, name: &str, version: u64, file: &str, to: &Path) -> Result<(String, u64), RegistryError> {
        self.download_key(self.key(&[name, &version.to_string(), file]), to)
    }

    fn download_key(&self, key: Key, to: &Path) -> Result<(String, u64), RegistryError> {
        let io = |e: std::io::Error| RegistryError::Io { path: to.display().to_string(), source: e };
        let mut out = std::fs::File::create(to).map_err(io)?;
        let (store, at) = (self.store.clone(), key.clone());
        let copied = self.block(async move {
            use futures_util::StreamExt;
            let mut stream = store.get(&at).await?.into_stream();
            let (mut hasher, mut bytes) = (Sha256::new(), 0u64);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                bytes += chunk.len() as u64;
                if let Err(e) = out.write_all(&chunk) {
                    return Ok(Err(e));
                }
            }
            Ok(out.sync_all().map(|()| (hex::encode(hasher.finalize()), bytes)))
        })?;
        copied.map_err(|e| self.store_error(&key, e))?.map_err(io)
    }

    /// Uploads the files of `dir` (not its subfolders or hidden files) to `<area>/<id>/`,
    /// the files named in `last` after the others, and removes the objects there that `dir`
    /// no longer has: a folder of training checkpoints, whose state file names its tensors.
    pub fn push_folder(&self, area: &str, id: &str, dir: &Path, last: &[&str]) -> Result<(), RegistryError> {
        let io = |e: std::io::Error| RegistryError::Io { path: dir.display().to_string(), source: e };
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map_err(io)?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !n.starts_with('.'))
            .collect();
        files.sort_by_key(|f| (last.contains(&f.as_str()), f.clone()));
        for file in &files {
            self.upload_key(self.key(&[area, id, file]), &dir.join(file))?;
        }
        let folder = self.key(&[area, id]);
        for key in self.list_keys(&folder)? {
            if key.filename().is_some_and(|f| !files.iter().any(|n| n == f)) {
                self.delete_key(&key)?;
            }
        }
        Ok(())
    }

    /// Downloads every object under `<area>/<id>/` into `dir` (created); returns how many.
    pub fn pull_folder(&self, area: &str, id: &str, dir: &Path) -> Result<usize, RegistryError> {
        let folder = self.key(&[area, id]);
        let keys = self.list_keys(&folder)?;
        if keys.is_empty() {
            return Ok(0);
        }
        std::fs::create_dir_all(dir).map_err(|e| RegistryError::Io { path: dir.display().to_string(), source: e })?;
        for key in &keys {
            let Some(file) = key.filename().filter(|f| !f.starts_with('.')) else { continue };
            // Readers of the folder (another job on the same dataset) see whole files only.
            let part = dir.join(format!(".{file}.part-{}", crate::repository::unique_suffix()));
            let fetched = self.download_key(key.clone(), &part);
            let placed = fetched.and_then(|_| {
                std::fs::rename(&part, dir.join(file))
                    .map_err(|e| RegistryError::Io { path: dir.join(file).display().to_string(), source: e })
            });
            if placed.is_err() {
                let _ = std::fs::remove_file(&part);
            }
            placed?;
        }
        Ok(keys.len())
    }

    /// Uploads one file as `<area>/<id>/<file>` (a dataset's file).
    pub fn put_file(&self, area: &str, id: &str, file: &str, from: &Path) -> Result<(), RegistryError> {
        self.upload_key(self.key(&[area, id, file]), from)
    }

    /// Removes every object under `<area>/<id>/`.
    pub fn delete_folder(&self, area: &str, id: &str) -> Result<(), RegistryError> {
        for key in self.list_keys(&self.key(&[area, id]))? {
            self.delete_key(&key)?;
        }
        Ok(())
    }

    fn delete_key(&self, key: &Key) -> Result<(), RegistryError> {
        let (store, at) = (self.store.clone(), key.clone());
        match self.block(async move { store.delete(&at).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_error(key, e)),
        }
    }

    /// Deletes version `version` of `name`: its manifest first (readers stop seeing it), then
    /// its files; the claim stays, so that the number is never handed out again.
    pub fn delete_version(&self, name: &str, version: u64) -> Result<(), RegistryError> {
        let folder = self.key(&[name, &version.to_string()]);
        let manifest = folder.clone().join(lathe_formats::MANIFEST_FILE);
        let mut keys = self.list_keys(&folder)?;
        keys.retain(|k| k.filename() != Some(CLAIM_FILE));
        keys.sort_by_key(|k| *k != manifest);
        for key in keys {
            self.delete_key(&key)?;
        }
        Ok(())
    }
}
