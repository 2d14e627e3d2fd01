//! Matrix products on AVX-512 BF16 (`vdpbf16ps`): activations and weights rounded to bfloat16,
//! products accumulated in f32. Weights are packed once, at load time, into panels of
//! [`NR`] output columns whose k-pairs lie side by side, the layout `vdpbf16ps` reads.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows of one register tile.
pub const MR: usize = 8;
/// Output columns of one panel (three 16-lane registers).
pub const NR: usize = 48;

/// Rounds an f32 to bfloat16 (round to nearest, ties to even; NaN stays NaN).
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16;
    let quiet_nan = ((bits >> 16) | 0x40) as u16;
    if x.is_nan() {
        quiet_nan
    } else {
        rounded
    }
}

/// The f32 value of a bfloat16.
#[inline]
pub fn from_bf16(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}

/// Whether this CPU runs the kernel.
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Weights `[n, k]` (PyTorch's `Linear` layout) packed into panels of [`NR`] columns:
/// panel `p`, pair `kp`, column `c` holds `(w[p*NR+c][2kp], w[p*NR+c][2kp+1])`.
pub struct PackedBf16 {
    data: Vec<u16>,
    /// Output columns.
    pub n: usize,
    /// Inner dimension, rounded up to even.
    pub k: usize,
}

impl PackedBf16 {
    /// Packs `w` (`n` rows of `k`); missing columns and the odd tail of `k` are zeros.
    ///
    /// # Panics
    /// When the CPU lacks AVX-512 BF16: packed weights exist only where the kernel runs.
    pub fn pack(w: &[f32], n: usize, k: usize) -> PackedBf16 {
        assert!(supported(), "AVX-512 BF16 is not available");
        let k_even = k.div_ceil(2) * 2;
        let panels = n.div_ceil(NR);
        let mut data = vec![0u16; panels * k_even * NR];
        for p in 0..panels {
            let panel = &mut data[p * k_even * NR..(p + 1) * k_even * NR];
            for c in 0..NR.min(n - p * NR) {
                let row = &w[(p * NR + c) * k..(p * NR + c + 1) * k];
                for (kk, &x) in row.iter().enumerate() {
                    panel[(kk / 2) * NR * 2 + c * 2 + kk % 2] = to_bf16(x);
                }
            }
        }
        PackedBf16 { data, n, k: k_even }
    }

    /// Number of panels.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    fn panel(&self, p: usize) -> &[u16] {
        &self.data[p * self.k * NR..(p + 1) * self.k * NR]
    }

    /// One tile: rows `a` (`MR` rows of `self.k` bfloat16, row-major) times panel `p`,
    /// finished as `dst` says.
    ///
    /// # Safety
    /// `dst` must describe writable memory of `dst.rows` rows (stride `dst.stride`) of at least
    /// `dst.cols` values, no other thread may touch it, and a residual must be readable in the
    /// same layout.
    ///
    /// # Panics
    /// When `a` is shorter than `MR * k` or `dst` is larger than a tile.
    pub unsafe fn tile(&self, a: &[u16], p: usize, dst: &TileOut) {
        assert!(a.len() >= MR * self.k && dst.rows <= MR && dst.cols <= NR && dst.bias.len() >= dst.cols);
        // The CPU features were checked when the weights were packed.
        #[cfg(target_arch = "x86_64")]
        tile_avx512(a.as_ptr(), self.k, self.panel(p).as_ptr(), dst)
    }
}

/// The step after a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None.
    Identity,
    /// GELU (exact).
    Gelu,
    /// GELU (tanh approximation).
    GeluTanh,
    /// ReLU.
    Relu,
}

/// Where a tile's results go: `out[r * stride + c] = act(acc + bias[c] (+ residual[r * stride + c]))`
/// for `r < rows`, `c < cols`.
pub struct TileOut<'a> {
    /// First element of the tile in the output.
    pub out: *mut f32,
    /// Row stride of the output (and the residual).
    pub stride: usize,
    /// Valid rows.
    pub rows: usize,
    /// Valid columns.
    pub cols: usize,
    /// Bias of the tile's columns.
    pub bias: &'a [f32],
    /// First element of the residual, when one is added.
    pub residual: Option<*const f32>,
    /// Applied last.
    pub activation: Activation,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_avx512(a: *const u16, k: usize, b: *const u16, dst: &TileOut) {
    use super::avx512;
    let mut acc = [[_mm512_setzero_ps(); 3]; MR];
    for kp in 0..k / 2 {
        let bp = b.add(kp * NR * 2) as *const __m512i;
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(1)));
        let b2: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(2)));
        for (r, row) in acc.iter_mut().enumerate() {
            let pair = (a.add(r * k + kp * 2) as *const i32).read_unaligned();
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
            row[0] = _mm512_dpbf16_ps(row[0], av, b0);
            row[1] = _mm512_dpbf16_ps(row[1], av, b1);
            row[2] = _mm512_dpbf16_ps(row[2], av, b2);
        }
    }
    let masks = [0, 1, 2].map(|j| avx512::mask(dst.cols.saturating_sub(16 * j)));
    let bias = [0, 1, 2].map(|j| _mm512_maskz_loadu_ps(masks[j], dst.bias.as_ptr().add(16 * j)));
    for (r, row) in acc.iter().enumerate() {
        if r >= dst.rows {
            break;
        }
        for j in 0..3 {
            let mut v = _mm512_add_ps(row[j], bias[j]);
            if let Some(res) = dst.residual {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(masks[j], res.add(r * dst.stride + 16 * j)));
            }
            v = match dst.activation {
                Activation::Identity => v,
                Activation::Gelu => avx512::gelu(v),
                Activation::GeluTanh => avx512::gelu_tanh(v),
                Activation::Relu => _mm512_max_ps(v, _mm512_setzero_ps()),
            };
            _mm512_mask_storeu_ps(dst.out.add(r * dst.stride + 16 * j), masks[j], v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0); // tie, rounds to even
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    }

    #[test]
    fn tile_matches_a_plain_product_of_the_rounded_values() {
        if !supported() {
            return;
        }
        let (n, k) = (50, 37);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
        let packed = PackedBf16::pack(&w, n, k);
        let x: Vec<f32> = (0..MR * k).map(|i| ((i * 104729) % 97) as f32 / 40.0 - 1.2).collect();
        let mut a = vec![0u16; MR * packed.k];
        for r in 0..MR {
            for c in 0..k {
                a[r * packed.k + c] = to_bf16(x[r * k + c]);
            }
        }
        let zeros = [0f32; NR];
        for p in 0..packed.panels() {
            let mut tile = [0f32; MR * NR];
            let dst = TileOut {
                out: tile.as_mut_ptr(),
                stride: NR,
                rows: MR,
                cols: NR,
                bias: &zeros,
                residual: None,
                activation: Activation::Identity,
            };
            // SAFETY: the tile buffer holds MR rows of NR values.
            unsafe { packed.tile(&a, p, &dst) };
            for r in 0..MR {
                for c in 0..NR {
                    let col = p * NR + c;
                    let want: f64 = if col < n {
                        (0..k)
                            .map(|i| {
                                from_bf16(to_bf16(x[r * k + i])) as f64 * from_bf16(to_bf16(w[col * k + i])) as f64
                            })
                            .sum()
                    } else {
                        0.0
                    };
                    let got = tile[r * NR + c] as f64;
                    assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "({r},{col}): {got} vs {want}");
                }
            }
        }
    }
}
