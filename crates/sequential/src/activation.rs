//! Activation functions: forward in place, and backward from the output (or the saved input).

use lathe_formats::spec::Activation;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

/// Whether the backward pass needs the pre-activation values (only GELU does).
pub fn needs_input(act: Activation) -> bool {
    matches!(act, Activation::Gelu)
}

/// Applies `act` in place to rows of `width` values (softmax is taken per row).
pub fn forward(act: Activation, v: &mut [f32], width: usize) {
    match act {
        Activation::Linear => {}
        Activation::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
        Activation::LeakyRelu { alpha } => v.iter_mut().for_each(|x| {
            if *x < 0.0 {
                *x *= alpha
            }
        }),
        Activation::Sigmoid => v.iter_mut().for_each(|x| *x = sigmoid(*x)),
        Activation::Tanh => v.iter_mut().for_each(|x| *x = x.tanh()),
        Activation::Gelu => v.iter_mut().for_each(|x| {
            let u = SQRT_2_OVER_PI * (*x + GELU_C * *x * *x * *x);
            *x = 0.5 * *x * (1.0 + u.tanh());
        }),
        Activation::Softmax => v.chunks_exact_mut(width).for_each(softmax_row),
    }
}

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

/// Turns `dy` (gradient w.r.t. the output `y`) into the gradient w.r.t. the input, in place.
/// `z` holds the pre-activation values when `needs_input(act)`.
pub fn backward(act: Activation, y: &[f32], z: &[f32], dy: &mut [f32], width: usize) {
    match act {
        Activation::Linear => {}
        Activation::Relu => dy.iter_mut().zip(y).for_each(|(d, y)| *d = if *y > 0.0 { *d } else { 0.0 }),
        Activation::LeakyRelu { alpha } => dy.iter_mut().zip(y).for_each(|(d, y)| {
            if *y < 0.0 {
                *d *= alpha
            }
        }),
        Activation::Sigmoid => dy.iter_mut().zip(y).for_each(|(d, y)| *d *= y * (1.0 - y)),
        Activation::Tanh => dy.iter_mut().zip(y).for_each(|(d, y)| *d *= 1.0 - y * y),
        Activation::Gelu => dy.iter_mut().zip(z).for_each(|(d, &x)| {
            let u = SQRT_2_OVER_PI * (x + GELU_C * x * x * x);
            let t = u.tanh();
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
            *d *= 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
        }),
        Activation::Softmax => {
            for (d, y) in dy.chunks_exact_mut(width).zip(y.chunks_exact(width)) {
                let dot: f32 = d.iter().zip(y).map(|(a, b)| a * b).sum();
                d.iter_mut().zip(y).for_each(|(d, y)| *d = y * (*d - dot));
            }
        }
    }
}
