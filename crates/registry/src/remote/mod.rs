//! Model versions in an S3-compatible object store (AWS S3, MinIO, Ceph, R2, …) through the
//! `object_store` crate: `<prefix>/<name>/<version>/…`, the same layout as on disk.
//!
//! A publisher claims version `N` by creating `<name>/<N>/.claim` with a conditional put
//! (`If-None-Match: *`), so two publishers never share a number; it then uploads the files and
//! the manifest last. A version without `manifest.json` (a publisher still writing, or one that
//! died) is ignored by every reader. Readers copy versions into a local cache folder and verify
//! every file against the manifest's sha256 before the version appears there ([`crate::cache`]).
//!
//! The calls block: each runs on a small tokio runtime owned by the [`Remote`], so callers may be
//! plain threads (training jobs, the CLI) as well as blocking tasks of the server.

mod client;
mod location;
mod publish;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use object_store::path::Path as Key;
use object_store::ObjectStore;

use crate::RegistryError;

pub use location::{Location, RemoteOptions};

/// Name of the object that claims a version number.
pub const CLAIM_FILE: &str = ".claim";

/// An S3-compatible bucket (and prefix) holding model versions.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    /// `prefix` without leading or trailing `/`; empty for the bucket's root.
    prefix: String,
    /// `s3://bucket/prefix`, for messages.
    url: String,
    /// Runs the store's futures; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Waiting for the runtime's threads would panic when the last clone of a repository
        // goes on an async executor's thread.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Remote {
    /// The store's URL (`s3://bucket/prefix`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key of `parts` below the prefix (`parts` may themselves hold `/`).
    fn key(&self, parts: &[&str]) -> Key {
        let mut path = self.prefix.clone();
        for part in parts {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
        }
        Key::from(path)
    }

    /// Runs `future` on the store's runtime and waits for it on this thread.
    fn block<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> Result<T, RegistryError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let runtime = self.runtime.as_ref().ok_or_else(|| self.error("the object store's runtime stopped"))?;
        runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().map_err(|_| self.error("the object store's runtime stopped"))
    }

    fn error(&self, message: impl std::fmt::Display) -> RegistryError {
        RegistryError::Remote { url: self.url.clone(), message: message.to_string() }
    }

    fn store_error(&self, key: &Key, e: object_store::Error) -> RegistryError {
        let mut message = format!("{key}: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        self.error(message)
    }

    /// The models with at least one object in the store (published or not), sorted.
    pub fn model_names(&self) -> Result<Vec<String>, RegistryError> {
        let store = self.store.clone();
        let root = (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()));
        let listed = self.block(async move { store.list_with_delimiter(root.as_ref()).await })?;
        let listed = listed.map_err(|e| self.store_error(&self.key(&[]), e))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|n| lathe_types::ModelRef::validate_name(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every version number of `name` that has an object in the store, claimed or published:
    /// number → whether its manifest is there (the version is published).
    pub fn versions_of(&self, name: &str) -> Result<BTreeMap<u64, bool>, RegistryError> {
        let model = self.key(&[name]);
        let keys = self.list_keys(&model)?;
        let mut out: BTreeMap<u64, bool> = BTreeMap::new();
        for key in keys {
            let Some(mut parts) = key.prefix_match(&model) else { continue };
            let Some(version) = parts.next().and_then(|p| p.as_ref().parse::<u64>().ok()) else { continue };
            if version == 0 {
                continue;
            }
            let rest: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
            let manifest = rest.len() == 1 && rest[0] == lathe_formats::MANIFEST_FILE;
            *out.entry(version).or_default() |= manifest;
        }
        Ok(out)
    }

    /// The published versions of `name` (their manifest is present), ascending.
    pub fn published_versions(&self, name: &str) -> Result<Vec<u64>, RegistryError> {
        Ok(self.versions_of(name)?.into_iter().filter(|(_, published)| *published).map(|(n, _)| n).collect())
    }

    fn list_keys(&self, prefix: &Key) -> Result<Vec<Key>, RegistryError> {
        let store = self.store.clone();
        let at = prefix.clone();
        let listed = self.block(async move {
            use futures_util::StreamExt;
            let mut stream = store.list(Some(&at));
            let mut keys = Vec::new();
            while let Some(item) = stream.next().await {
                keys.push(item?.location);
            }
            Ok::<_, object_store::Error>(keys)
        })?;
        listed.map_err(|e| self.store_error(prefix, e))
    }
}
