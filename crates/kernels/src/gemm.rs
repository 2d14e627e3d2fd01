//! Safe wrapper over `matrixmultiply::sgemm` for row-major matrices with optional transposes.
//! matrixmultiply picks its own microkernel (AVX2/FMA or portable) from the CPU; the cap of
//! [`crate::cpu`] does not reach inside it.

/// Whether an operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// As stored.
    N,
    /// Transposed.
    T,
}

/// `c = alpha · op(a) · op(b) + beta · c` for row-major matrices, where `op(a)` is `m × k`,
/// `op(b)` is `k × n` and `c` is `m × n`. `a` is stored as `m × k` (`Op::N`) or `k × m`
/// (`Op::T`); likewise `b`.
// Inlined into the engines' layers, as when this lived beside them: a batch-1 dense layer is a
// few microseconds, and the cross-crate call cost 15 % of it.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    beta: f32,
    c: &mut [f32],
) {
    let size = |rows: usize, cols: usize| rows.checked_mul(cols).expect("sgemm: matrix size overflows usize");
    assert!(a.len() >= size(m, k), "sgemm: a has {} values, needs {}", a.len(), m * k);
    assert!(b.len() >= size(k, n), "sgemm: b has {} values, needs {}", b.len(), k * n);
    assert!(c.len() >= size(m, n), "sgemm: c has {} values, needs {}", c.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    if m <= SMALL_M && op_a == Op::N && op_b == Op::N {
        small_m(m, k, n, alpha, a, b, beta, c);
        return;
    }
    let (rsa, csa) = match op_a {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (rsb, csb) = match op_b {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    // SAFETY: the asserts above guarantee every index the strides reach is in bounds, and
    // `c` does not alias `a` or `b` (it is borrowed mutably).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Rows of `a` up to which a row-by-row product beats packing `b` (inference on small batches:
/// the packing copy of the whole weight matrix costs more than the arithmetic).
const SMALL_M: usize = 4;

/// `c = alpha · a · b + beta · c` one row at a time: each output row accumulates rows of `b`
/// scaled by the row of `a` (contiguous, vectorisable axpy updates).
#[allow(clippy::too_many_arguments)]
#[inline]
fn small_m(m: usize, k: usize, n: usize, alpha: f32, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        if beta == 0.0 {
            row.fill(0.0);
        } else if beta != 1.0 {
            row.iter_mut().for_each(|x| *x *= beta);
        }
        for (p, &x) in a[i * k..(i + 1) * k].iter().enumerate() {
            if x == 0.0 {
                continue;
            }
            let s = alpha * x;
            row.iter_mut().zip(&b[p * n..(p + 1) * n]).for_each(|(y, w)| *y += s * w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], ta: Op, b: &[f32], tb: Op) -> Vec<f32> {
        let at = |i: usize, p: usize| {
            if ta == Op::N {
                a[i * k + p]
            } else {
                a[p * m + i]
            }
        };
        let bt = |p: usize, j: usize| {
            if tb == Op::N {
                b[p * n + j]
            } else {
                b[j * k + p]
            }
        };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
            }
        }
        c
    }

    #[test]
    fn small_batches_match_naive_with_beta() {
        let (k, n) = (9, 6);
        for m in 1..=4 {
            let a: Vec<f32> = (0..m * k).map(|i| if i % 3 == 0 { 0.0 } else { (i as f32 * 0.3).sin() }).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.7).cos()).collect();
            let mut c = vec![2.0; m * n];
            sgemm(m, k, n, 0.5, &a, Op::N, &b, Op::N, 1.0, &mut c);
            let want = naive(m, k, n, &a, Op::N, &b, Op::N);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - (2.0 + 0.5 * y)).abs() < 1e-5, "m={m}: {x} vs {}", 2.0 + 0.5 * y);
            }
        }
    }

    #[test]
    fn matches_naive_for_every_transpose() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for ta in [Op::N, Op::T] {
            for tb in [Op::N, Op::T] {
                let mut c = vec![1.0; m * n];
                sgemm(m, k, n, 1.0, &a, ta, &b, tb, 0.0, &mut c);
                let want = naive(m, k, n, &a, ta, &b, tb);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-5, "{ta:?}{tb:?}: {x} vs {y}");
                }
            }
        }
    }
}
