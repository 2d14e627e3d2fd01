//! Matrix products on AVX-512 BF16 (`vdpbf16ps`): activations and weights rounded to bfloat16,
//! products accumulated in f32. Weights are packed once, at load time, into panels of
//! [`NR`] output columns whose k-pairs lie side by side, the layout `vdpbf16ps` reads.

#[cfg(target_arch = "x86_64")]
use crate::avx512;
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

/// Whether the kernel runs now: the CPU has AVX-512 BF16 and the cap ([`crate::cpu`]) allows
/// AVX-512.
pub fn supported() -> bool {
    crate::cpu::bf16()
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
    /// When the CPU lacks AVX-512 BF16 (packed weights exist only where the kernel can run,
    /// which makes [`PackedBf16::tile`] sound), or when `w` is shorter than `n * k`.
    pub fn pack(w: &[f32], n: usize, k: usize) -> PackedBf16 {
        assert!(crate::cpu::detected_bf16(), "AVX-512 BF16 is not available");
        let needed = n.checked_mul(k).expect("pack: n * k overflows usize");
        assert!(w.len() >= needed, "pack: w has {} values, needs {needed}", w.len());
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
    /// `dst.out` must point to writable memory of `dst.rows` rows (stride `dst.stride`) of at
    /// least `dst.cols` values each, which no other thread reads or writes during the call; a
    /// residual must be readable in the same layout.
    ///
    /// # Panics
    /// When `a` is shorter than `MR * k`, `p` is not a panel, or `dst` is larger than a tile.
    pub(crate) unsafe fn tile(&self, a: &[u16], p: usize, dst: &TileOut) {
        assert!(a.len() >= MR * self.k && dst.rows <= MR && dst.cols <= NR && dst.bias.len() >= dst.cols);
        let panel = self.panel(p);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `pack` checked that the CPU has AVX-512 BF16; `a` holds MR rows of k values
        // and the panel k/2 pairs of NR columns (asserted above and by slicing); the caller
        // vouches for `dst`.
        unsafe {
            tile_avx512(a.as_ptr(), self.k, panel.as_ptr(), dst)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (a, panel, dst);
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
pub(crate) struct TileOut<'a> {
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

/// # Safety
/// The CPU must have AVX-512 F and BF16; `a` must hold `MR` rows of `k` values, `b` a panel
/// of `k / 2` pairs of `NR` columns, and `dst` must be as [`PackedBf16::tile`] requires.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_avx512(a: *const u16, k: usize, b: *const u16, dst: &TileOut) {
    let mut acc = [[_mm512_setzero_ps(); 3]; MR];
    for kp in 0..k / 2 {
        // SAFETY: pair kp of the panel is 3 × 32 bfloat16 values inside `b`; row r's pair kp is
        // inside `a` (caller's contract).
        unsafe {
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
    }
    // Only the 16-lane groups that hold a valid column are touched: pointers to the others
    // would lie past the end of the bias, residual or output.
    let groups = dst.cols.div_ceil(16);
    for (r, row) in acc.iter().enumerate().take(dst.rows) {
        for (j, &sum) in row.iter().enumerate().take(groups) {
            let mask = avx512::mask(dst.cols - 16 * j);
            // SAFETY: 16 * j < cols, so every pointer below is inside its buffer (bias has
            // `cols` values; row r of the output and residual has `cols` from its start), and
            // the masked loads and stores touch only lanes below `cols`.
            unsafe {
                let mut v = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask, dst.bias.as_ptr().add(16 * j)));
                if let Some(res) = dst.residual {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, res.add(r * dst.stride + 16 * j)));
                }
                v = match dst.activation {
                    Activation::Identity => v,
                    Activation::Gelu => avx512::gelu(v),
                    Activation::GeluTanh => avx512::gelu_tanh(v),
                    Activation::Relu => _mm512_max_ps(v, _mm512_setzero_ps()),
                };
                _mm512_mask_storeu_ps(dst.out.add(r * dst.stride + 16 * j), mask, v);
            }
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
        if !crate::cpu::detected_bf16() {
            println!("tile_matches_a_plain_product_of_the_rounded_values: skipped bf16 (the CPU lacks AVX-512 BF16)");
            return;
        }
        println!("tile_matches_a_plain_product_of_the_rounded_values: ran avx512+bf16");
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
