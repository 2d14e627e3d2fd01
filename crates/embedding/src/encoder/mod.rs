//! Lathe's own CPU encoder: BERT on packed sequences (no padding) with bfloat16 (AVX-512
//! BF16) or f32 matrix products and fused epilogues, all from `lathe-kernels`.

pub mod bert;
