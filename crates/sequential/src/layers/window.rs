//! Geometry shared by convolutions and pools: a window sliding over `[h, w, c]` samples.

use lathe_formats::spec::{same_pad_before, window_output, Padding};

/// A `kh × kw` window with strides `sh, sw` over `h × w × c` samples.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pad_top: usize,
    pad_left: usize,
}

impl Window {
    /// Geometry for an input `[h, w, c]`; the spec's shape inference has checked it fits.
    pub fn new(input: [usize; 3], kernel: [usize; 2], stride: [usize; 2], padding: Padding) -> Window {
        let [h, w, c] = input;
        let oh = window_output(h, kernel[0], stride[0], padding).expect("window fits (checked by the spec)");
        let ow = window_output(w, kernel[1], stride[1], padding).expect("window fits (checked by the spec)");
        let (pad_top, pad_left) = match padding {
            Padding::Valid => (0, 0),
            Padding::Same => (same_pad_before(h, kernel[0], stride[0]), same_pad_before(w, kernel[1], stride[1])),
        };
        Window { h, w, c, oh, ow, kh: kernel[0], kw: kernel[1], sh: stride[0], sw: stride[1], pad_top, pad_left }
    }

    /// Values per input sample.
    pub fn in_len(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Output positions per sample.
    pub fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// Input row and column of window offset `(ky, kx)` at output `(oy, ox)`, if inside.
    #[inline]
    pub fn source(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let iy = (oy * self.sh + ky).checked_sub(self.pad_top)?;
        let ix = (ox * self.sw + kx).checked_sub(self.pad_left)?;
        (iy < self.h && ix < self.w).then_some((iy, ix))
    }
}
