//! Lathe's own CPU encoder: BERT on packed sequences with bfloat16 (AVX-512 BF16) or f32
//! matrix products.

#[macro_use]
mod simd;
mod attention;
mod avx512;
pub mod bert;
pub mod bf16_kernel;
pub mod linear;
mod math;

/// An output buffer written by several threads, each to its own elements.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(*mut f32);

// SAFETY: users write disjoint elements from each thread and join before reading.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Shares `out`.
    pub(crate) fn new(out: &mut [f32]) -> SharedOut {
        SharedOut(out.as_mut_ptr())
    }

    /// Pointer to element `offset`.
    ///
    /// # Safety
    /// `offset` must lie in the buffer, and no other thread may touch what is written there.
    pub(crate) unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}
