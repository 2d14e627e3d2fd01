//! The IDX format of MNIST-style data sets, raw or gzip-compressed.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use crate::error::{data_err, TrainError};

/// An IDX array of unsigned bytes.
#[derive(Debug)]
pub struct IdxArray {
    /// Dimensions, first is the number of items.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<u8>,
}

/// Reads a file, transparently un-gzipping it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, TrainError> {
    let raw = std::fs::read(path).map_err(|e| data_err(format!("{}: cannot read: {e}", path.display())))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| data_err(format!("{}: corrupt gzip stream: {e}", path.display())))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes holding unsigned bytes with `ndims` dimensions.
pub fn parse_idx(bytes: &[u8], ndims: u8, what: &str) -> Result<IdxArray, TrainError> {
    let expected_magic = 0x0000_0800u32 | ndims as u32;
    if bytes.len() < 4 {
        return Err(data_err(format!("{what}: truncated IDX file: {} bytes, no header", bytes.len())));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        return Err(data_err(format!(
            "{what}: wrong IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x} (unsigned bytes, {ndims} \
                dimension{})",
            if ndims == 1 { "" } else { "s" }
        )));
    }
    let header = 4 + 4 * ndims as usize;
    if bytes.len() < header {
        return Err(data_err(format!("{what}: truncated IDX header: {} bytes, expected {header}", bytes.len())));
    }
    let dims: Vec<usize> = (0..ndims as usize)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let len = dims.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d));
    let body = bytes.len() - header;
    match len {
        Some(len) if len == body => Ok(IdxArray { dims, data: bytes[header..].to_vec() }),
        Some(len) if len > body => Err(data_err(format!(
            "{what}: truncated IDX data: header {dims:?} announces {len} bytes, the file holds {body}"
        ))),
        _ => Err(data_err(format!("{what}: IDX size mismatch: header {dims:?} does not match the {body} data bytes"))),
    }
}

/// Reads an IDX file (raw or gzip) with `ndims` dimensions.
pub fn read_idx(path: &Path, ndims: u8) -> Result<IdxArray, TrainError> {
    let bytes = read_maybe_gz(path)?;
    parse_idx(&bytes, ndims, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn parses_a_well_formed_array() {
        let a = parse_idx(&idx(&[2, 2], &[1, 2, 3, 4]), 2, "x").unwrap();
        assert_eq!(a.dims, vec![2, 2]);
        assert_eq!(a.data, vec![1, 2, 3, 4]);
    }

    #[test]
    fn rejects_wrong_magic_and_truncation() {
        let mut bad = idx(&[2], &[1, 2]);
        bad[2] = 9;
        let e = parse_idx(&bad, 1, "labels").unwrap_err().to_string();
        assert!(e.contains("wrong IDX magic number 0x00000901, expected 0x00000801"), "{e}");
        let e = parse_idx(&idx(&[3, 2], &[1, 2, 3]), 2, "images").unwrap_err().to_string();
        assert!(e.contains("truncated IDX data"), "{e}");
        let e = parse_idx(&[0, 0], 1, "tiny").unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
