//! AVX-512 versions of the non-linear functions, for the fused kernel epilogues and softmax:
//! `e^x` on `vscalefps`, GELU with an erf whose division is a refined `vrcp14ps`.
//!
//! The register functions are safe `#[target_feature]` functions: callers compiled with
//! AVX-512 call them directly, others only after checking the CPU.

use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(x: f32) -> __m512 {
    _mm512_set1_ps(x)
}

/// `e^x` lane-wise, relative error under 2e-7 (same polynomial as [`crate::math::exp`]).
#[inline]
#[target_feature(enable = "avx512f")]
pub fn exp(x: __m512) -> __m512 {
    let x = _mm512_max_ps(_mm512_min_ps(x, splat(87.0)), splat(-87.0));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
        x,
        splat(std::f32::consts::LOG2_E),
    ));
    let r = _mm512_fnmadd_ps(n, splat(0.693_145_75), x);
    let r = _mm512_fnmadd_ps(n, splat(1.428_606_8e-6), r);
    let mut p = splat(0.001_388_889);
    for c in [0.008_333_345, 0.041_666_668, 0.166_666_67, 0.5, 1.0, 1.0] {
        p = _mm512_fmadd_ps(p, r, splat(c));
    }
    _mm512_scalef_ps(p, n)
}

/// `1 / d` from `vrcp14ps` and one Newton step (full f32 precision).
#[inline]
#[target_feature(enable = "avx512f")]
fn recip(d: __m512) -> __m512 {
    let r = _mm512_rcp14_ps(d);
    _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, splat(2.0)))
}

/// GELU with the exact normal CDF (erf as in [`crate::math::erf`]).
#[inline]
#[target_feature(enable = "avx512f")]
pub fn gelu(x: __m512) -> __m512 {
    let z = _mm512_mul_ps(x, splat(std::f32::consts::FRAC_1_SQRT_2));
    let a = _mm512_abs_ps(z);
    let t = recip(_mm512_fmadd_ps(splat(0.327_591_1), a, splat(1.0)));
    let mut p = splat(1.061_405_4);
    for c in [-1.453_152_1, 1.421_413_7, -0.284_496_74, 0.254_829_6] {
        p = _mm512_fmadd_ps(p, t, splat(c));
    }
    p = _mm512_mul_ps(p, t);
    let e = exp(_mm512_mul_ps(a, _mm512_sub_ps(_mm512_setzero_ps(), a)));
    let y = _mm512_fnmadd_ps(p, e, splat(1.0));
    let sign = _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(i32::MIN));
    let erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y), sign));
    _mm512_mul_ps(_mm512_mul_ps(x, splat(0.5)), _mm512_add_ps(erf, splat(1.0)))
}

/// GELU with the tanh approximation.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn gelu_tanh(x: __m512) -> __m512 {
    let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    let u = _mm512_mul_ps(splat(0.797_884_6), _mm512_fmadd_ps(splat(0.044_715), x3, x));
    let e = exp(_mm512_mul_ps(u, splat(2.0)));
    let th = _mm512_fnmadd_ps(splat(2.0), recip(_mm512_add_ps(e, splat(1.0))), splat(1.0));
    _mm512_mul_ps(_mm512_mul_ps(x, splat(0.5)), _mm512_add_ps(th, splat(1.0)))
}

/// Lanes `0..n` of a 16-lane register (all when `n >= 16`).
#[inline(always)]
pub fn mask(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// The 16-lane group of `row` that starts at `i`, lanes past the end zero.
#[inline]
#[target_feature(enable = "avx512f")]
fn load(row: &[f32], i: usize) -> __m512 {
    assert!(i < row.len());
    // SAFETY: i is inside the row and the mask limits the load to the row.len() - i values left.
    unsafe { _mm512_maskz_loadu_ps(mask(row.len() - i), row.as_ptr().add(i)) }
}

/// Stores the lanes of `v` that fall inside `row`, from `i` on.
#[inline]
#[target_feature(enable = "avx512f")]
fn store(row: &mut [f32], i: usize, v: __m512) {
    assert!(i < row.len());
    // SAFETY: i is inside the row and the mask limits the store to the row.len() - i values left.
    unsafe { _mm512_mask_storeu_ps(row.as_mut_ptr().add(i), mask(row.len() - i), v) }
}

/// Softmax of `row * scale`, in place.
#[target_feature(enable = "avx512f")]
pub fn softmax(row: &mut [f32], scale: f32) {
    let n = row.len();
    let mut max = splat(f32::NEG_INFINITY);
    for i in (0..n).step_by(16) {
        max = _mm512_mask_max_ps(max, mask(n - i), max, load(row, i));
    }
    let max = splat(_mm512_reduce_max_ps(max));
    let scale = splat(scale);
    let mut sum = _mm512_setzero_ps();
    for i in (0..n).step_by(16) {
        let v = exp(_mm512_mul_ps(_mm512_sub_ps(load(row, i), max), scale));
        sum = _mm512_mask_add_ps(sum, mask(n - i), sum, v);
        store(row, i, v);
    }
    let inv = splat(1.0 / _mm512_reduce_add_ps(sum));
    for i in (0..n).step_by(16) {
        store(row, i, _mm512_mul_ps(load(row, i), inv));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math;

    /// A lane-wise function of a register.
    type Vector = fn(__m512) -> __m512;

    #[target_feature(enable = "avx512f")]
    fn lanes(f: Vector, x: &[f32; 16]) -> [f32; 16] {
        let mut out = [0f32; 16];
        // SAFETY: both pointers address 16 f32 values.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), f(_mm512_loadu_ps(x.as_ptr()))) };
        out
    }

    #[test]
    fn vector_functions_agree_with_the_scalar_ones() {
        if crate::cpu::detected_level() < crate::cpu::Level::Avx512 {
            println!("vector_functions_agree_with_the_scalar_ones: skipped avx512 (the CPU lacks it)");
            return;
        }
        println!("vector_functions_agree_with_the_scalar_ones: ran avx512");
        // SAFETY (the three closures): AVX-512 was detected above.
        let exp_v: Vector = |x| unsafe { exp(x) };
        let gelu_v: Vector = |x| unsafe { gelu(x) };
        let gelu_tanh_v: Vector = |x| unsafe { gelu_tanh(x) };
        for start in (-96..96).step_by(16) {
            let x: [f32; 16] = std::array::from_fn(|i| (start + i as i32) as f32 / 8.0);
            for (vector, scalar, tol) in [
                (exp_v, math::exp as fn(f32) -> f32, 3e-7),
                (gelu_v, math::gelu, 1e-6),
                (gelu_tanh_v, math::gelu_tanh, 1e-6),
            ] {
                // SAFETY: AVX-512 was detected above.
                let got = unsafe { lanes(vector, &x) };
                for (g, &v) in got.iter().zip(&x) {
                    let want = scalar(v);
                    assert!((g - want).abs() <= tol * want.abs().max(1.0), "f({v}) = {g}, scalar {want}");
                }
            }
        }
        let mut row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let mut want = row.clone();
        math::softmax_scalar(&mut want, 0.7);
        // SAFETY: AVX-512 was detected above.
        unsafe { softmax(&mut row, 0.7) };
        row.iter().zip(&want).for_each(|(g, w)| assert!((g - w).abs() < 1e-6, "{g} vs {w}"));
    }
}
