//! GGUF's tensor types: block layouts and their dequantization to f32.
//!
//! A row of a quantized matrix is a run of blocks (32 or 256 values each) that never crosses
//! rows. Layouts and formulas follow llama.cpp's reference dequantizers
//! (`ggml/src/ggml-quants.c`, `dequantize_row_*`) and gguf-py's `gguf/quants.py`; the tests
//! compare with the latter on random blocks.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod blocks;
mod dot;
mod matmul;

pub use dot::{dot_row, quantize_activations, Activations, Q8Block, Q8KBlock};
pub use matmul::{matmul, matmul_quantized, matvec, matvec_group, quantize_rows, GroupMember};

use thiserror::Error;

/// A tensor type of GGUF files (ggml's `ggml_type`), as far as Lathe reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// IEEE f32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16 (the high half of an f32).
    BF16,
    /// 32 values: f16 scale, 4-bit values offset by 8.
    Q4_0,
    /// 32 values: f16 scale and min, 4-bit values.
    Q4_1,
    /// 32 values: f16 scale, 5-bit values offset by 16.
    Q5_0,
    /// 32 values: f16 scale and min, 5-bit values.
    Q5_1,
    /// 32 values: f16 scale, 8-bit signed values.
    Q8_0,
    /// 256 values: 8 sub-blocks with 6-bit scales and mins, 4-bit values.
    Q4K,
    /// 256 values: 8 sub-blocks with 6-bit scales and mins, 5-bit values.
    Q5K,
    /// 256 values: 16 sub-blocks with 8-bit scales, 6-bit values offset by 32.
    Q6K,
}

/// Why a row could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum QuantError {
    /// A type id Lathe does not read.
    #[error("unsupported tensor type {id} ({name}); supported: {supported}")]
    UnsupportedType {
        /// The ggml type id.
        id: u32,
        /// Its ggml name, or `unknown`.
        name: &'static str,
        /// The supported names.
        supported: String,
    },
    /// The byte and value counts do not fit the type's blocks.
    #[error("{ty:?}: {bytes} bytes cannot hold {values} values ({per_block} values in {block_bytes} bytes per block)")]
    Size {
        /// The type.
        ty: GgmlType,
        /// Bytes given.
        bytes: usize,
        /// Values asked for.
        values: usize,
        /// Values per block.
        per_block: usize,
        /// Bytes per block.
        block_bytes: usize,
    },
}

/// Every type Lathe reads, in ggml id order.
pub const SUPPORTED: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::BF16,
];

impl GgmlType {
    /// The type with ggml id `id` (`ggml.h`'s `enum ggml_type`).
    pub fn from_id(id: u32) -> Result<GgmlType, QuantError> {
        if let Some(ty) = SUPPORTED.into_iter().find(|t| t.id() == id) {
            return Ok(ty);
        }
        let supported = SUPPORTED.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ");
        Err(QuantError::UnsupportedType { id, name: ggml_name(id), supported })
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::BF16 => 30,
        }
    }

    /// The ggml name (`Q4_K`, …).
    pub fn name(self) -> &'static str {
        ggml_name(self.id())
    }

    /// Values per block.
    pub fn block_values(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => 32,
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q5_1 => 24,
            GgmlType::Q8_0 => 34,
            GgmlType::Q4K => 144,
            GgmlType::Q5K => 176,
            GgmlType::Q6K => 210,
        }
    }

    /// Bytes of `values` values (`None` unless a whole number of blocks, or on overflow).
    pub fn bytes_for(self, values: usize) -> Option<usize> {
        values
            .is_multiple_of(self.block_values())
            .then(|| (values / self.block_values()).checked_mul(self.block_bytes()))?
    }
}

fn ggml_name(id: u32) -> &'static str {
    const NAMES: [&str; 31] = [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
        "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16",
        "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES.get(id as usize).copied().unwrap_or("unknown")
}

/// Decodes `values` values of type `ty` from `bytes` into `out` (`out.len() == values`).
///
/// Errors: [`QuantError::Size`] when `bytes` is not exactly the blocks of `out.len()` values.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let size_error = || QuantError::Size {
        ty,
        bytes: bytes.len(),
        values: out.len(),
        per_block: ty.block_values(),
        block_bytes: ty.block_bytes(),
    };
    if ty.bytes_for(out.len()) != Some(bytes.len()) {
        return Err(size_error());
    }
    let per_block = ty.block_values();
    let blocks = bytes.chunks_exact(ty.block_bytes()).zip(out.chunks_exact_mut(per_block));
    match ty {
        GgmlType::F32 => blocks.for_each(|(b, o)| o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        GgmlType::F16 => blocks.for_each(|(b, o)| o[0] = blocks::f16(b, 0)),
        GgmlType::BF16 => {
            blocks.for_each(|(b, o)| o[0] = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
        }
        GgmlType::Q4_0 => blocks.for_each(|(b, o)| blocks::q4_0(b, o)),
        GgmlType::Q4_1 => blocks.for_each(|(b, o)| blocks::q4_1(b, o)),
        GgmlType::Q5_0 => blocks.for_each(|(b, o)| blocks::q5_0(b, o)),
        GgmlType::Q5_1 => blocks.for_each(|(b, o)| blocks::q5_1(b, o)),
        GgmlType::Q8_0 => blocks.for_each(|(b, o)| blocks::q8_0(b, o)),
        GgmlType::Q4K => blocks.for_each(|(b, o)| blocks::q4_k(b, o)),
        GgmlType::Q5K => blocks.for_each(|(b, o)| blocks::q5_k(b, o)),
        GgmlType::Q6K => blocks.for_each(|(b, o)| blocks::q6_k(b, o)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_types_are_named() {
        for ty in SUPPORTED {
            assert_eq!(GgmlType::from_id(ty.id()).unwrap(), ty);
        }
        let e = GgmlType::from_id(11).unwrap_err();
        assert!(e.to_string().starts_with("unsupported tensor type 11 (Q3_K); supported: F32, F16, Q4_0"), "{e}");
        assert!(GgmlType::from_id(99).unwrap_err().to_string().contains("(unknown)"));
    }

    #[test]
    fn sizes_must_be_whole_blocks() {
        assert_eq!(GgmlType::Q4K.bytes_for(512), Some(288));
        assert_eq!(GgmlType::Q4K.bytes_for(100), None);
        let mut out = vec![0.0; 32];
        assert!(matches!(dequantize(GgmlType::Q8_0, &[0; 33], &mut out), Err(QuantError::Size { .. })));
    }
}
