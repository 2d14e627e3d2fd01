//! Element-wise functions: `e^x`, erf, GELU, layer norm, softmax. Written as plain loops over
//! slices without branches in the inner bodies so the compiler vectorises them for each code
//! path ([`crate::cpu::Level`]).

/// `e^x` for the range the encoder needs (|x| < 87), relative error under 2e-7.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 87.0);
    // e^x = 2^n * e^r with n = round(x / ln 2), |r| <= ln2 / 2.
    let t = x * std::f32::consts::LOG2_E;
    let n = (t + 12_582_912.0) - 12_582_912.0; // round to nearest
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_345 + r * 0.001_388_889)))));
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

/// The error function (Abramowitz and Stegun 7.1.26 refined: absolute error under 3e-7).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// GELU as BERT defines it: `x * Φ(x)` with the exact normal CDF.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU with the tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
    // tanh(u) = 1 - 2 / (e^{2u} + 1)
    let th = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
    0.5 * x * (1.0 + th)
}

/// Sum of `f(x)` over `x`, in 16 independent lanes so it vectorises.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        acc.iter_mut().zip(c).for_each(|(a, &v)| *a += f(v));
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest value of `x`, in 16 independent lanes.
#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for c in chunks {
        acc.iter_mut().zip(c).for_each(|(a, &v)| *a = if v > *a { v } else { *a });
    }
    acc.iter().fold(tail, |m, &v| if v > m { v } else { m })
}

multiversion! {
/// Normalises each `width`-wide row of `x` in place: `(x - mean) / sqrt(var + eps) * g + b`.
pub fn layer_norm(x: &mut [f32], width: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(width) {
        let mean = lane_sum(row, |v| v) / width as f32;
        let var = lane_sum(row, |v| (v - mean) * (v - mean)) / width as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}
}

multiversion! {
/// SwiGLU's gating, in place: `gate = silu(gate) · up` with `silu(g) = g / (1 + e^−g)`
/// (Shazeer 2020, "GLU Variants Improve Transformer").
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + exp(-*g)) * u;
    }
}
}

/// Softmax of `row * scale`, in place.
pub fn softmax(row: &mut [f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::level() == crate::cpu::Level::Avx512 {
        // SAFETY: the level never exceeds what the CPU was detected to support.
        return unsafe { crate::avx512::softmax(row, scale) };
    }
    softmax_scalar(row, scale)
}

multiversion! {
/// Softmax of `row * scale`, in place, in portable code.
pub fn softmax_scalar(row: &mut [f32], scale: f32) {
    let max = lane_max(row);
    row.iter_mut().for_each(|v| *v = exp((*v - max) * scale));
    let inv = 1.0 / lane_sum(row, |v| v);
    row.iter_mut().for_each(|v| *v *= inv);
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -2000..2000 {
            let x = i as f32 / 100.0;
            let (e, want) = (exp(x) as f64, (x as f64).exp());
            assert!(((e - want) / want).abs() < 5e-7, "exp({x}) = {e}, want {want}");
        }
        // Reference values of erf.
        for (x, want) in [(0.0, 0.0), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (-2.0, -0.995_322_3), (3.5, 0.999_999_3)]
        {
            assert!((erf(x) - want).abs() < 5e-7, "erf({x}) = {}", erf(x));
        }
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
    }

    #[test]
    fn layer_norm_and_softmax() {
        crate::cpu::for_each_level("layer_norm_and_softmax", |_| {
            let mut x = vec![1.0, 2.0, 3.0, 4.0];
            layer_norm(&mut x, 4, &[1.0; 4], &[0.5; 4], 0.0);
            let want = [-1.341_640_8, -0.447_213_6, 0.447_213_6, 1.341_640_8];
            x.iter().zip(want).for_each(|(g, w)| assert!((g - 0.5 - w).abs() < 1e-6));
            let mut s = vec![1.0, 2.0, 3.0];
            softmax(&mut s, 0.5);
            let z: f32 = [0.5f32, 1.0, 1.5].iter().map(|v| v.exp()).sum();
            s.iter().zip([0.5f32, 1.0, 1.5]).for_each(|(g, v)| assert!((g - v.exp() / z).abs() < 1e-6));
        });
    }

    #[test]
    fn every_path_agrees_with_the_portable_one_on_long_rows() {
        let row: Vec<f32> = (0..103).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let gamma: Vec<f32> = (0..103).map(|i| 1.0 + i as f32 / 100.0).collect();
        let beta: Vec<f32> = (0..103).map(|i| i as f32 / 50.0).collect();
        let mut results = Vec::new();
        crate::cpu::for_each_level("every_path_agrees_with_the_portable_one_on_long_rows", |_| {
            let (mut norm, mut soft) = (row.clone(), row.clone());
            layer_norm(&mut norm, 103, &gamma, &beta, 1e-12);
            softmax(&mut soft, 0.3);
            results.push((norm, soft));
        });
        let (portable, others) = results.split_first().expect("the portable path always runs");
        for (norm, soft) in others {
            norm.iter().zip(&portable.0).for_each(|(g, w)| assert!((g - w).abs() < 1e-5, "{g} vs {w}"));
            soft.iter().zip(&portable.1).for_each(|(g, w)| assert!((g - w).abs() < 1e-6, "{g} vs {w}"));
        }
    }
}
