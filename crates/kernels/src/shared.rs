//! An output buffer that several threads write at once, each to its own elements.

/// A raw view of an `f32` buffer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(*mut f32);

// SAFETY: users write disjoint elements from each thread and join before the buffer's
// owner reads it again (rayon's `for_each` returns only when every task is done).
unsafe impl Send for SharedOut {}
// SAFETY: as above; the pointer itself is never written through by two tasks at one place.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Shares `out` for the lifetime of the borrow the caller holds.
    pub(crate) fn new(out: &mut [f32]) -> SharedOut {
        SharedOut(out.as_mut_ptr())
    }

    /// Pointer to element `offset`.
    ///
    /// # Safety
    /// `offset` must lie in the buffer, the buffer must still be borrowed by the caller of
    /// [`SharedOut::new`], and no other thread may touch what is written there.
    pub(crate) unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller guarantees `offset` is inside the buffer.
        unsafe { self.0.add(offset) }
    }
}
