//! The model repository on the file system: `<root>/<name>/<version>/` folders, each an
//! immutable model version with `manifest.json` and the files it lists.
//!
//! Publishing is atomic: the files are written and fsynced in a hidden temporary folder next
//! to the versions, the manifest last, and the folder is then renamed to the next free
//! version number. Readers (and the serving watcher) only ever see complete versions; a
//! killed publisher leaves a hidden temporary folder that listing ignores and the next
//! publish of that model removes. Two concurrent publishers never get the same number:
//! renaming onto an existing, non-empty version folder fails, and the loser takes the next.
//!
//! The versions may instead live in an S3-compatible object store (`s3://bucket/prefix`,
//! [`remote`]); the folder is then a verified cache of them ([`Repository::sync`]).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod cache;
mod error;
mod labels;
pub mod remote;
mod repository;
mod shared;
mod traffic;

pub use cache::SyncReport;
pub use error::RegistryError;
pub use labels::{validate_label, CONFIG_FILE, LABELS_FILE};
pub use repository::{read_manifest, FileSource, Published, Publishing, Repository, VersionInfo};
pub use shared::{Revised, SharedDocuments, SHARED_FILES};
pub use traffic::{target_version, Route, Shadow, Traffic, TRAFFIC_FILE};
