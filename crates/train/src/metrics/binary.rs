//! Two-class figures: ROC AUC and log loss, over the probability of the second class.

use lathe_formats::spec::Activation;

/// Probabilities are clipped to `[CLIP, 1 − CLIP]` before a logarithm (scikit-learn's
/// `log_loss` clips the same way).
const CLIP: f64 = 1e-15;

/// The probability of the second class from one output row: `row[1]` of two units or `row[0]`
/// of one; a softmax (two units) or sigmoid (one unit) is applied first when the model's last
/// activation is not one.
pub fn positive_probability(row: &[f32], final_activation: Activation) -> f64 {
    match (row, final_activation) {
        ([p], Activation::Sigmoid) => *p as f64,
        ([z], _) => 1.0 / (1.0 + (-*z as f64).exp()),
        ([_, p], Activation::Softmax) => *p as f64,
        ([a, b], _) => 1.0 / (1.0 + (*a as f64 - *b as f64).exp()),
        _ => f64::NAN,
    }
}

/// Area under the ROC curve of scores `p` for labels 0/1: the Mann–Whitney U statistic over
/// average ranks (ties count one half). `None` when one of the classes is absent.
pub fn roc_auc(p: &[f64], labels: &[u32]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l == 1).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && p[order[j + 1]] == p[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += average_rank * order[i..=j].iter().filter(|&&k| labels[k] == 1).count() as f64;
        i = j + 1;
    }
    let (pos, neg) = (positives as f64, negatives as f64);
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Mean −ln p(true class) with probabilities clipped to `[1e-15, 1 − 1e-15]`.
pub fn log_loss(p: &[f64], labels: &[u32]) -> f64 {
    let sum: f64 = p
        .iter()
        .zip(labels)
        .map(|(&p, &l)| {
            let p = p.clamp(CLIP, 1.0 - CLIP);
            -if l == 1 { p.ln() } else { (1.0 - p).ln() }
        })
        .sum();
    sum / p.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half_and_matches_a_hand_count() {
        let p = [0.1, 0.4, 0.35, 0.8, 0.4];
        let labels = [0, 0, 1, 1, 1];
        // positives 0.35, 0.8, 0.4 against negatives 0.1, 0.4: 0.35 → 1 + 0, 0.8 → 2, 0.4 → 1 + ½.
        assert!((roc_auc(&p, &labels).unwrap() - 4.5 / 6.0).abs() < 1e-12);
        assert_eq!(roc_auc(&p, &[1, 1, 1, 1, 1]), None);
    }

    #[test]
    fn log_loss_clips_and_averages() {
        let want = -(0.9f64.ln() + 0.8f64.ln()) / 2.0;
        assert!((log_loss(&[0.9, 0.2], &[1, 0]) - want).abs() < 1e-12);
        assert!((log_loss(&[0.0], &[1]) - -(1e-15f64).ln()).abs() < 1e-9);
    }

    #[test]
    fn logits_become_probabilities() {
        assert!((positive_probability(&[0.0], Activation::Linear) - 0.5).abs() < 1e-12);
        assert!((positive_probability(&[1.0, 1.0], Activation::Linear) - 0.5).abs() < 1e-12);
        assert_eq!(positive_probability(&[0.3, 0.7], Activation::Softmax), 0.7f32 as f64);
    }
}
