//! A repository in an S3-compatible store (moto's server on loopback): claims, publishing,
//! verified caches, concurrency, versions without a manifest, the cache's limit, deletion.

#[path = "support/s3.rs"]
mod s3;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use lathe_formats::{Manifest, ModelSection, MANIFEST_FILE};
use lathe_registry::remote::RemoteOptions;
use lathe_registry::{RegistryError, Repository};
use lathe_types::Signature;

fn manifest(name: &str, created_at: &str) -> Manifest {
    Manifest {
        format: 1,
        name: name.into(),
        created_at: created_at.into(),
        lathe_version: "test".into(),
        signature: Signature { inputs: vec![], outputs: vec![] },
        model: ModelSection::Other { kind: "test".into(), fields: Default::default() },
        files: Default::default(),
    }
}

fn options() -> RemoteOptions {
    RemoteOptions { allow_http: true, settings: s3::shared().settings() }
}

/// A repository in `bucket` whose cache is `cache`.
fn open(bucket: &str, cache: &Path) -> Repository {
    Repository::open(&format!("s3://{bucket}/models"), Some(cache), &options()).unwrap()
}

fn publish(repo: &Repository, name: &str, weights: &[u8], created_at: &str) -> u64 {
    let files: [(&str, &[u8]); 2] = [("weights.safetensors", weights), ("extra/notes.txt", b"notes")];
    repo.publish(name, &files, manifest(name, created_at)).unwrap().version
}

fn cached(repo: &Repository, name: &str) -> Vec<u64> {
    repo.versions(name).unwrap()
}

#[test]
fn the_store_refuses_a_second_conditional_create() {
    let bucket = s3::fresh_bucket("claims");
    let cache = tempfile::tempdir().unwrap();
    let repo = open(&bucket, cache.path());
    let remote = repo.remote().unwrap();
    assert!(remote.claim("m", 1, "first").unwrap());
    assert!(!remote.claim("m", 1, "second").unwrap(), "a second If-None-Match create must be refused");
    assert_eq!(remote.read("m", 1, ".claim").unwrap().unwrap(), b"first");
}

#[test]
fn a_published_version_reaches_another_cache_verified() {
    let bucket = s3::fresh_bucket("publish");
    let (a_cache, b_cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(&bucket, a_cache.path()), open(&bucket, b_cache.path()));
    assert_eq!(publish(&a, "m", b"weights one", "2026-01-01T00:00:01Z"), 1);
    assert_eq!(cached(&a, "m"), vec![1], "the publisher's cache holds its version at once");
    assert!(cached(&b, "m").is_empty());
    let report = b.sync().unwrap();
    assert_eq!(report.fetched, vec![("m".to_string(), 1)]);
    for file in ["weights.safetensors", "extra/notes.txt", MANIFEST_FILE] {
        let (x, y) = (a_cache.path().join("m/1").join(file), b_cache.path().join("m/1").join(file));
        assert_eq!(fs::read(&x).unwrap(), fs::read(&y).unwrap(), "{file}");
    }
    let info = b.resolve(&lathe_types::ModelRef { name: "m".into(), version: None }).unwrap();
    assert_eq!((info.version, info.manifest.files.len()), (1, 2));
    assert!(b.sync().unwrap().is_empty(), "a second sync has nothing to do");
}

#[test]
fn concurrent_publishers_get_distinct_versions() {
    let bucket = s3::fresh_bucket("concurrent");
    let caches: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let versions: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = caches
            .iter()
            .enumerate()
            .map(|(i, cache)| {
                let bucket = bucket.clone();
                scope.spawn(move || {
                    let repo = open(&bucket, cache.path());
                    publish(&repo, "m", format!("weights {i}").as_bytes(), "2026-01-01T00:00:00Z")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: BTreeSet<u64> = versions.iter().copied().collect();
    assert_eq!(distinct, (1..=4).collect(), "{versions:?}");
    let reader_cache = tempfile::tempdir().unwrap();
    let reader = open(&bucket, reader_cache.path());
    assert_eq!(reader.remote().unwrap().published_versions("m").unwrap(), vec![1, 2, 3, 4]);
    reader.sync().unwrap();
    let weights: BTreeSet<Vec<u8>> =
        (1..=4).map(|v| fs::read(reader_cache.path().join(format!("m/{v}/weights.safetensors"))).unwrap()).collect();
    assert_eq!(weights.len(), 4, "every version holds its own publisher's files");
}

#[test]
fn a_version_without_a_manifest_is_ignored_and_its_number_stays_taken() {
    let bucket = s3::fresh_bucket("no-manifest");
    let (a_cache, b_cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(&bucket, a_cache.path()), open(&bucket, b_cache.path()));
    assert_eq!(publish(&a, "m", b"one", "2026-01-01T00:00:01Z"), 1);
    // A publisher that died after its claim and one file.
    let remote = a.remote().unwrap();
    assert!(remote.claim("m", 2, "died").unwrap());
    let orphan = a_cache.path().join("orphan.bin");
    fs::write(&orphan, b"half a model").unwrap();
    remote.upload("m", 2, "weights.safetensors", &orphan).unwrap();
    assert_eq!(remote.published_versions("m").unwrap(), vec![1]);
    b.sync().unwrap();
    assert_eq!(cached(&b, "m"), vec![1]);
    assert!(!b_cache.path().join("m/2").exists());
    assert_eq!(publish(&b, "m", b"three", "2026-01-01T00:00:03Z"), 3, "the claimed number is skipped");
}

#[test]
fn a_file_that_does_not_match_its_manifest_is_refused() {
    let bucket = s3::fresh_bucket("corrupt");
    let (a_cache, b_cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(&bucket, a_cache.path()), open(&bucket, b_cache.path()));
    publish(&a, "m", b"the real weights", "2026-01-01T00:00:01Z");
    let tampered = a_cache.path().join("tampered.bin");
    fs::write(&tampered, b"the fake weights").unwrap();
    a.remote().unwrap().upload("m", 1, "weights.safetensors", &tampered).unwrap();
    let report = b.sync().unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let (model, version, message) = &report.failed[0];
    assert_eq!((model.as_str(), *version), ("m", 1));
    assert!(message.contains("weights.safetensors") && message.contains("sha256"), "{message}");
    let err = b.fetch_version("m", 1).unwrap_err();
    assert!(matches!(err, RegistryError::Check { .. }), "{err:?}");
    assert!(cached(&b, "m").is_empty(), "nothing unverified appears in the cache");
    let leftovers: Vec<_> = fs::read_dir(b_cache.path().join("m")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_cache_keeps_to_its_limit_and_keeps_what_is_served() {
    let bucket = s3::fresh_bucket("limit");
    let (a_cache, b_cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(&bucket, a_cache.path());
    // Each version is 1,000 + 5 bytes; the limit holds two.
    for (v, at) in [(1, "2026-01-01T00:00:01Z"), (2, "2026-01-01T00:00:02Z"), (3, "2026-01-01T00:00:03Z")] {
        assert_eq!(publish(&a, "m", &vec![v as u8; 1000], at), v);
    }
    let b = open(&bucket, b_cache.path()).with_cache_limit(Some(2100));
    let report = b.sync().unwrap();
    assert_eq!(report.fetched, vec![("m".to_string(), 3), ("m".to_string(), 2)], "newest first");
    assert_eq!(report.skipped, vec![("m".to_string(), 1)]);
    assert_eq!(cached(&b, "m"), vec![2, 3]);
    // A new newest version evicts the oldest version that nothing names.
    assert_eq!(publish(&a, "m", &[4; 1000], "2026-01-01T00:00:04Z"), 4);
    let report = b.sync().unwrap();
    assert_eq!(report.fetched, vec![("m".to_string(), 4)]);
    assert_eq!(report.removed, vec![("m".to_string(), 2)]);
    assert_eq!(cached(&b, "m"), vec![3, 4]);
    // Asking for a version fetches it, evicting what is not wanted.
    b.fetch_version("m", 1).unwrap();
    assert_eq!(cached(&b, "m"), vec![1, 4]);
}

#[test]
fn a_deleted_version_leaves_the_store_and_every_cache() {
    let bucket = s3::fresh_bucket("delete");
    let (a_cache, b_cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(&bucket, a_cache.path()), open(&bucket, b_cache.path()));
    publish(&a, "m", b"one", "2026-01-01T00:00:01Z");
    publish(&a, "m", b"two", "2026-01-01T00:00:02Z");
    b.sync().unwrap();
    assert_eq!(cached(&b, "m"), vec![1, 2]);
    a.delete_version("m", 1).unwrap();
    assert_eq!(a.remote().unwrap().published_versions("m").unwrap(), vec![2]);
    assert_eq!(cached(&a, "m"), vec![2]);
    assert_eq!(b.sync().unwrap().removed, vec![("m".to_string(), 1)]);
    assert_eq!(cached(&b, "m"), vec![2]);
}

#[test]
fn a_plain_http_endpoint_needs_to_be_allowed() {
    let cache = tempfile::tempdir().unwrap();
    let options = RemoteOptions { allow_http: false, settings: s3::shared().settings() };
    let err = Repository::open("s3://bucket", Some(cache.path()), &options).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, RegistryError::Location { .. }), "{err:?}");
    assert!(message.contains("plain HTTP") && message.contains("--s3-allow-http"), "{message}");
}
