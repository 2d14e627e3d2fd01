//! Fully connected layers (`y = x·Wᵀ + b`) with the step that follows fused in: nothing, an
//! activation, or a residual sum. Products run in bfloat16 on CPUs with AVX-512 BF16, else in
//! f32 on `matrixmultiply`; the output columns are split over the worker threads.

use rayon::prelude::*;

use crate::bf16::{self, Activation, PackedBf16, TileOut, MR, NR};
use crate::gemm::{self, Op};
use crate::math;
use crate::shared::SharedOut;

/// Arithmetic of the matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 throughout.
    F32,
    /// bfloat16 inputs, f32 accumulation (AVX-512 BF16 only).
    Bf16,
}

/// What happens to `x·Wᵀ + b` before it is stored.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    /// Stored as is.
    Plain,
    /// GELU (exact).
    Gelu,
    /// GELU (tanh approximation).
    GeluTanh,
    /// ReLU.
    Relu,
    /// Plus a residual of the output's shape.
    Residual(&'a [f32]),
}

enum Weights {
    F32(Vec<f32>),
    Bf16(PackedBf16),
}

/// One layer's weights, ready for products.
pub struct Linear {
    weights: Weights,
    bias: Vec<f32>,
    n: usize,
    k: usize,
}

impl Linear {
    /// Takes `w` `[n, k]` (PyTorch's `Linear` layout) and `b` `[n]`.
    ///
    /// # Panics
    /// When `w` or `b` has the wrong length, or [`Precision::Bf16`] is asked of a CPU without
    /// AVX-512 BF16.
    pub fn new(w: Vec<f32>, bias: Vec<f32>, n: usize, k: usize, precision: Precision) -> Linear {
        assert_eq!(Some(w.len()), n.checked_mul(k), "Linear: w has {} values, expected {n} x {k}", w.len());
        assert_eq!(bias.len(), n, "Linear: bias has {} values, expected {n}", bias.len());
        let weights = match precision {
            Precision::Bf16 => Weights::Bf16(PackedBf16::pack(&w, n, k)),
            Precision::F32 => Weights::F32(w),
        };
        Linear { weights, bias, n, k }
    }

    /// `out[m, n] = epilogue(x[m, k]·Wᵀ + b)`; the output columns are split over rayon's
    /// threads.
    ///
    /// # Panics
    /// When `x`, `out` or a residual has the wrong length.
    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32], epilogue: Epilogue) {
        assert_eq!(Some(x.len()), m.checked_mul(self.k), "Linear: x is not [{m}, {}]", self.k);
        assert_eq!(Some(out.len()), m.checked_mul(self.n), "Linear: out is not [{m}, {}]", self.n);
        if let Epilogue::Residual(r) = epilogue {
            assert_eq!(r.len(), out.len());
        }
        if m == 0 {
            return;
        }
        match &self.weights {
            Weights::Bf16(packed) => self.forward_bf16(packed, x, m, out, epilogue),
            Weights::F32(w) => self.forward_f32(w, x, m, out, epilogue),
        }
    }

    fn forward_bf16(&self, packed: &PackedBf16, x: &[f32], m: usize, out: &mut [f32], epilogue: Epilogue) {
        let (k, kp) = (self.k, packed.k);
        let m_pad = m.div_ceil(MR) * MR;
        let mut a = vec![0u16; m_pad * kp];
        for (dst, src) in a.chunks_exact_mut(kp).zip(x.chunks_exact(k)) {
            round_row(dst, src);
        }
        let out_ptr = SharedOut::new(out);
        let tasks = packed.panels() * m_pad.div_ceil(64 * MR);
        let (residual, activation) = match epilogue {
            Epilogue::Plain => (None, Activation::Identity),
            Epilogue::Gelu => (None, Activation::Gelu),
            Epilogue::GeluTanh => (None, Activation::GeluTanh),
            Epilogue::Relu => (None, Activation::Relu),
            Epilogue::Residual(r) => (Some(r), Activation::Identity),
        };
        (0..tasks).into_par_iter().for_each(|task| {
            let (p, chunk) = (task % packed.panels(), task / packed.panels());
            let col0 = p * NR;
            let cols = NR.min(self.n - col0);
            for mb in (chunk * 64..((chunk + 1) * 64).min(m_pad / MR)).map(|b| b * MR) {
                let offset = mb * self.n + col0;
                // SAFETY: this task alone writes columns col0..col0+cols of rows mb..mb+rows,
                // all inside `out`; the residual has the output's shape.
                unsafe {
                    let dst = TileOut {
                        out: out_ptr.at(offset),
                        stride: self.n,
                        rows: MR.min(m - mb),
                        cols,
                        bias: &self.bias[col0..col0 + cols],
                        residual: residual.map(|r| r[offset..].as_ptr()),
                        activation,
                    };
                    packed.tile(&a[mb * kp..(mb + MR) * kp], p, &dst);
                }
            }
        });
    }

    fn forward_f32(&self, w: &[f32], x: &[f32], m: usize, out: &mut [f32], epilogue: Epilogue) {
        let (n, k) = (self.n, self.k);
        let threads = rayon::current_num_threads().max(1);
        let step = n.div_ceil(threads).div_ceil(16) * 16;
        let out_ptr = SharedOut::new(out);
        (0..n.div_ceil(step)).into_par_iter().for_each(|t| {
            let col0 = t * step;
            let cols = step.min(n - col0);
            let mut product = vec![0f32; m * cols];
            // Rows col0..col0+cols of w, transposed: k x cols.
            let w_cols = &w[col0 * k..(col0 + cols) * k];
            gemm::sgemm(m, k, cols, 1.0, x, Op::N, w_cols, Op::T, 0.0, &mut product);
            for (row, src) in product.chunks_exact(cols).enumerate() {
                // SAFETY: this task alone writes columns col0..col0+cols of the output.
                let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.at(row * n + col0), cols) };
                self.finish(dst, src, col0, row, epilogue);
            }
        });
    }

    /// Adds the bias and applies the epilogue to one row segment.
    #[inline]
    fn finish(&self, dst: &mut [f32], src: &[f32], col0: usize, row: usize, epilogue: Epilogue) {
        let bias = &self.bias[col0..col0 + dst.len()];
        let residual = match epilogue {
            Epilogue::Residual(res) => &res[row * self.n + col0..row * self.n + col0 + dst.len()],
            _ => &[],
        };
        apply(dst, src, bias, residual, epilogue);
    }
}

multiversion! {
/// `dst = epilogue(src + bias)`; `residual` is the row segment a residual epilogue adds.
fn apply(dst: &mut [f32], src: &[f32], bias: &[f32], residual: &[f32], epilogue: Epilogue) {
    let sums = dst.iter_mut().zip(src).zip(bias);
    match epilogue {
        Epilogue::Plain => sums.for_each(|((d, s), b)| *d = s + b),
        Epilogue::Gelu => sums.for_each(|((d, s), b)| *d = math::gelu(s + b)),
        Epilogue::GeluTanh => sums.for_each(|((d, s), b)| *d = math::gelu_tanh(s + b)),
        Epilogue::Relu => sums.for_each(|((d, s), b)| *d = (s + b).max(0.0)),
        Epilogue::Residual(_) => sums.zip(residual).for_each(|(((d, s), b), r)| *d = s + b + r),
    }
}
}

multiversion! {
/// Rounds a row to bfloat16.
fn round_row(dst: &mut [u16], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = bf16::to_bf16(s));
}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(w: &[f32], b: &[f32], x: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = b[j] + (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum::<f32>();
            }
        }
        y
    }

    #[test]
    fn both_precisions_match_a_plain_product_with_every_epilogue() {
        crate::cpu::for_each_level("both_precisions_match_a_plain_product_with_every_epilogue", |_| {
            check_both_precisions()
        });
    }

    fn check_both_precisions() {
        let (m, n, k) = (19, 100, 66);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 31) % 53) as f32 / 53.0 - 0.5).collect();
        let b: Vec<f32> = (0..n).map(|i| i as f32 / 100.0).collect();
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 17) % 41) as f32 / 41.0 - 0.5).collect();
        let res: Vec<f32> = (0..m * n).map(|i| i as f32 / 1000.0).collect();
        let want = reference(&w, &b, &x, m, n, k);
        let mut precisions = vec![(Precision::F32, 1e-5)];
        if bf16::supported() {
            precisions.push((Precision::Bf16, 0.05));
        }
        for (precision, tol) in precisions {
            let layer = Linear::new(w.clone(), b.clone(), n, k, precision);
            let mut out = vec![0f32; m * n];
            layer.forward(&x, m, &mut out, Epilogue::Plain);
            out.iter().zip(&want).for_each(|(g, w)| assert!((g - w).abs() < tol, "{precision:?}: {g} vs {w}"));
            layer.forward(&x, m, &mut out, Epilogue::Residual(&res));
            for ((g, w), r) in out.iter().zip(&want).zip(&res) {
                assert!((g - w - r).abs() < tol, "{precision:?} residual");
            }
            layer.forward(&x, m, &mut out, Epilogue::Gelu);
            for (g, w) in out.iter().zip(&want) {
                assert!((g - math::gelu(*w)).abs() < tol, "{precision:?} gelu");
            }
        }
    }
}
