//! Publishing a version folder into the store: claim a number, upload the files, manifest last.

use std::path::Path;

use super::Remote;
use crate::RegistryError;

/// How many numbers a publisher tries before giving up (each taken one means another
/// publisher claimed it between the listing and the claim).
const CLAIM_TRIES: usize = 64;

impl Remote {
    /// Publishes the complete version folder `folder` (its `files` and the manifest `json`) as
    /// the next version of `name` and returns its number: claims the number after the highest
    /// one in the store (a claimed-but-unpublished number counts as taken), uploads every file,
    /// then creates the manifest. A publisher that dies midway leaves a claimed number without
    /// a manifest, which readers ignore.
    pub fn publish_folder(
        &self,
        name: &str,
        folder: &Path,
        files: &[&str],
        json: Vec<u8>,
    ) -> Result<u64, RegistryError> {
        let version = self.claim_next(name)?;
        for file in files {
            self.upload(name, version, file, &folder.join(file))?;
        }
        self.put_manifest(name, version, json)?;
        tracing::info!(model = name, version, store = %self.url, "published");
        Ok(version)
    }

    fn claim_next(&self, name: &str) -> Result<u64, RegistryError> {
        let owner = claim_owner();
        let first = self.versions_of(name)?.keys().last().copied().unwrap_or(0) + 1;
        for version in (first..).take(CLAIM_TRIES) {
            if self.claim(name, version, &owner)? {
                return Ok(version);
            }
        }
        Err(self.error(format!("no free version number of {name:?} after {CLAIM_TRIES} claims")))
    }
}

/// Who claims: host, process and time, for whoever finds an abandoned claim.
fn claim_owner() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs());
    serde_json::json!({
        "host": std::env::var("HOSTNAME").unwrap_or_default(),
        "pid": std::process::id(),
        "claimed_at_unix": seconds.unwrap_or(0),
    })
    .to_string()
}
