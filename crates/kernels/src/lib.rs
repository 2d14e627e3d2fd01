//! Lathe's compute kernels: every `unsafe` of the library crates lives here, behind safe
//! functions with checked bounds.
//!
//! - [`cpu`]: what the CPU has, capped by `LATHE_CPU=generic|avx2|avx512` (or [`cpu::set_cap`]
//!   from tests) so that the portable path can be forced and tested on any machine.
//! - [`gemm`]: f32 matrix products (`matrixmultiply`, plus a row-by-row path for small batches).
//! - [`bf16`] and [`linear`]: bfloat16 products on AVX-512 BF16 with f32 accumulation and fused
//!   bias/activation/residual epilogues; dense layers that split their columns over threads.
//! - [`math`]: `e^x`, erf, GELU, layer norm, softmax, compiled once per code path.
//! - [`attention`]: scaled dot-product attention over packed sequences.
//! - [`causal`]: causal attention of new tokens over a KV cache, grouped-query heads.
//! - [`mmap`]: read-only memory maps of immutable files (model weights).
//! - [`quant`]: GGUF's tensor types (F32, F16, BF16, Q4_0 … Q8_0, Q4_K, Q5_K, Q6_K), their
//!   dequantization, and quantized matrix products (portable and AVX2).
//!
//! Why one crate: soundness arguments stay in one place that can be reviewed as a whole, and
//! engines stay `#![forbid(unsafe_code)]`. The layout follows tract's `linalg`: kernels know
//! nothing of models, only of slices and shapes.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[macro_use]
mod multiversion;
pub mod attention;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod bf16;
pub mod causal;
pub mod cpu;
pub mod gemm;
pub mod linear;
pub mod math;
pub mod mmap;
pub mod quant;
mod shared;
