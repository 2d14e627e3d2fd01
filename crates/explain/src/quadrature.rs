//! Gauss–Legendre nodes and weights on [0, 1] (Golub–Welsch's values found by Newton's method
//! on the Legendre polynomial, as in Numerical Recipes' `gauleg`).

/// `n` nodes in (0, 1), ascending, with weights summing to 1.
pub fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut out = vec![(0.0, 0.0); n];
    let m = n.div_ceil(2);
    for i in 0..m {
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (p, d) = legendre(n, z);
            dp = d;
            let step = p / d;
            z -= step;
            if step.abs() < 1e-15 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - z * z) * dp * dp);
        // Map [-1, 1] to [0, 1]: node (1 ± z) / 2, weight w / 2.
        out[i] = ((1.0 - z) / 2.0, w / 2.0);
        out[n - 1 - i] = ((1.0 + z) / 2.0, w / 2.0);
    }
    out
}

/// P_n(z) and its derivative.
fn legendre(n: usize, z: f64) -> (f64, f64) {
    let (mut p0, mut p1) = (1.0, z);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let p2 = ((2 * k - 1) as f64 * z * p1 - (k - 1) as f64 * p0) / k as f64;
        p0 = p1;
        p1 = p2;
    }
    let d = n as f64 * (z * p1 - p0) / (z * z - 1.0);
    (p1, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrates_polynomials_exactly_and_weights_sum_to_one() {
        for n in [1, 2, 5, 64] {
            let q = gauss_legendre(n);
            assert!((q.iter().map(|(_, w)| w).sum::<f64>() - 1.0).abs() < 1e-12, "n={n}");
            assert!(q.windows(2).all(|p| p[0].0 < p[1].0));
            // ∫₀¹ x^(2n−1) dx = 1 / 2n is exact for n points.
            let k = 2 * n as i32 - 1;
            let integral: f64 = q.iter().map(|(x, w)| w * x.powi(k)).sum();
            assert!((integral - 1.0 / (k as f64 + 1.0)).abs() < 1e-10, "n={n}: {integral}");
        }
    }
}
