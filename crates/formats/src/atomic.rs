//! Durable, atomic file writes: temp file, fsync, rename, fsync of the directory.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Writes `bytes` to a new file at `path` and flushes it to disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Flushes a directory's entries (new names, renames) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` atomically: readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    // Unique per call: two threads replacing the same file must not share a temp file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id()));
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Hex sha256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads `path` in chunks, hashing each and handing it to `each` with the bytes read so far;
/// returns the hex sha256 and length of what was read.
fn hash_chunks(path: &Path, each: &mut dyn FnMut(&[u8], u64) -> io::Result<()>) -> io::Result<(String, u64)> {
    let mut input = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        each(&buf[..n], total)?;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// Copies `from` to a new file `to` in chunks, synced, calling `progress` with the bytes
/// copied so far; returns the copy's hex sha256 and length (hashed as written, so a file
/// changing during the copy cannot leave a digest that does not match the copy).
pub fn copy_synced(from: &Path, to: &Path, progress: &mut dyn FnMut(u64)) -> io::Result<(String, u64)> {
    let mut output = File::create(to)?;
    let digest = hash_chunks(from, &mut |chunk, total| {
        output.write_all(chunk)?;
        progress(total);
        Ok(())
    })?;
    output.sync_all()?;
    Ok(digest)
}

/// Hex sha256 and length of a file, read in chunks.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    hash_chunks(path, &mut |_, _| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "only the target file remains: {names:?}");
    }

    #[test]
    fn atomic_write_to_a_bare_file_name_uses_the_current_folder() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        let result = write_atomic(Path::new("bare.json"), b"x");
        std::env::set_current_dir(old).unwrap();
        result.unwrap();
        assert_eq!(fs::read(dir.path().join("bare.json")).unwrap(), b"x");
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), (sha256_hex(b"abc"), 3));
    }
}
