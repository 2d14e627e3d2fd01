//! Read-only memory maps of files that nobody writes while they are mapped.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

/// A file mapped read-only into memory; dereferences to its bytes.
pub struct Mapped {
    map: memmap2::Mmap,
}

impl Mapped {
    /// Maps the file at `path`.
    ///
    /// Only for files that no process modifies or truncates while the map lives, such as the
    /// files of a published (immutable) model version: a change underneath would change bytes
    /// that safe code already read, and a truncation would fault.
    ///
    /// # Errors
    /// When the file cannot be opened or mapped.
    pub fn open_immutable(path: &Path) -> std::io::Result<Mapped> {
        let file = File::open(path)?;
        // SAFETY: the contract above: callers map only immutable files (Lathe never writes
        // into a published version folder; versions are replaced by new folders).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Mapped { map })
    }
}

impl Deref for Mapped {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_bytes_of_a_file() {
        let dir = std::env::temp_dir().join(format!("lathe-kernels-mmap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data.bin");
        std::fs::write(&path, b"lathe").unwrap();
        assert_eq!(&*Mapped::open_immutable(&path).unwrap(), b"lathe");
        assert!(Mapped::open_immutable(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
