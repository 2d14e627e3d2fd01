//! Choosing the next token from logits: penalties and logit bias first, then greedy at
//! temperature 0, else top-k, top-p and min-p filtering, temperature and a draw from a seeded
//! generator (the order of llama.cpp's default sampler chain, `common/sampling.cpp`; OpenAI's
//! parameter ranges and meanings).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use lathe_engine::generation::{SamplingError, SamplingParams};

/// Chooses tokens with one set of parameters and one random stream.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler of checked `params` (see [`SamplingParams::validate`]).
    pub fn new(params: SamplingParams) -> Sampler {
        let rng = match params.seed {
            Some(seed) => ChaCha8Rng::seed_from_u64(seed),
            None => ChaCha8Rng::from_os_rng(),
        };
        Sampler { params, rng }
    }

    /// The next token for `logits` (modified in place), given the tokens of the prompt
    /// (`prompt`, for the repetition penalty) and those generated so far (`generated`).
    pub fn sample(&mut self, logits: &mut [f32], prompt: &[u32], generated: &[u32]) -> u32 {
        self.penalize(logits, prompt, generated);
        for &(id, bias) in &self.params.logit_bias {
            logits[id as usize] += bias;
        }
        if self.params.temperature == 0.0 {
            return argmax(logits);
        }
        let candidates = self.candidates(logits);
        let total: f32 = candidates.iter().map(|c| c.1).sum();
        let mut draw = self.rng.random::<f32>() * total;
        for &(id, p) in &candidates {
            if draw < p {
                return id;
            }
            draw -= p;
        }
        candidates.last().map_or_else(|| argmax(logits), |c| c.0)
    }

    fn penalize(&self, logits: &mut [f32], prompt: &[u32], generated: &[u32]) {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let mut seen: Vec<u32> = prompt.iter().chain(generated).copied().collect();
            seen.sort_unstable();
            seen.dedup();
            for id in seen {
                let l = &mut logits[id as usize];
                *l = if *l > 0.0 { *l / p.repetition_penalty } else { *l * p.repetition_penalty };
            }
        }
        if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
            let mut counts = std::collections::HashMap::<u32, usize>::new();
            generated.iter().for_each(|&id| *counts.entry(id).or_default() += 1);
            for (id, n) in counts {
                logits[id as usize] -= p.presence_penalty + p.frequency_penalty * n as f32;
            }
        }
    }

    /// The tokens left after top-k, top-p and min-p, with their probabilities at the
    /// sampling temperature (unnormalised after filtering), most likely first.
    fn candidates(&self, logits: &[f32]) -> Vec<(u32, f32)> {
        let p = &self.params;
        let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
        ids.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        if p.top_k > 0 {
            ids.truncate(p.top_k);
        }
        let max = logits[ids[0] as usize];
        let probs: Vec<f32> = ids.iter().map(|&id| ((logits[id as usize] - max) / p.temperature).exp()).collect();
        let sum: f32 = probs.iter().sum();
        let mut kept = Vec::with_capacity(ids.len());
        let mut mass = 0.0;
        for (&id, &q) in ids.iter().zip(&probs) {
            if q < p.min_p * probs[0] || (mass >= p.top_p * sum && !kept.is_empty()) {
                break;
            }
            mass += q;
            kept.push((id, q));
        }
        kept
    }
}

/// The index of the largest value (the first one on ties).
pub fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best }) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(f: impl FnOnce(&mut SamplingParams)) -> SamplingParams {
        let mut p = SamplingParams { seed: Some(7), ..SamplingParams::default() };
        f(&mut p);
        p
    }

    #[test]
    fn temperature_zero_is_greedy_and_bias_applies_first() {
        let mut s = Sampler::new(params(|p| p.temperature = 0.0));
        assert_eq!(s.sample(&mut [0.1, 2.0, 1.0], &[], &[]), 1);
        let mut s = Sampler::new(params(|p| {
            p.temperature = 0.0;
            p.logit_bias = vec![(2, 5.0)];
        }));
        assert_eq!(s.sample(&mut [0.1, 2.0, 1.0], &[], &[]), 2);
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens() {
        let logits = [1.0, 1.1, 0.9, 1.05, 0.2];
        let draws = |seed| {
            let mut s = Sampler::new(params(|p| p.seed = Some(seed)));
            (0..32).map(|_| s.sample(&mut logits.clone(), &[], &[])).collect::<Vec<_>>()
        };
        assert_eq!(draws(1), draws(1));
        assert_ne!(draws(1), draws(2));
        assert!(draws(3).iter().collect::<std::collections::HashSet<_>>().len() >= 4, "draws spread over tokens");
    }

    #[test]
    fn filters_keep_only_likely_tokens() {
        let logits = [5.0, 4.0, 0.0, -1.0];
        for (p, allowed) in [
            (params(|p| p.top_k = 2), vec![0, 1]),
            (params(|p| p.top_p = 0.5), vec![0]),
            (params(|p| p.min_p = 0.2), vec![0, 1]),
        ] {
            let mut s = Sampler::new(p);
            for _ in 0..50 {
                assert!(allowed.contains(&s.sample(&mut logits.clone(), &[], &[])));
            }
        }
    }

    #[test]
    fn penalties_discourage_repeats() {
        let mut s = Sampler::new(params(|p| {
            p.temperature = 0.0;
            p.frequency_penalty = 2.0;
        }));
        assert_eq!(s.sample(&mut [3.0, 2.5], &[], &[0]), 1, "3 − 2 < 2.5");
        let mut s = Sampler::new(params(|p| {
            p.temperature = 0.0;
            p.repetition_penalty = 2.0;
        }));
        assert_eq!(s.sample(&mut [3.0, 2.0], &[0], &[]), 1, "3 / 2 < 2");
    }

    #[test]
    fn parameters_out_of_range_name_the_field() {
        let e = params(|p| p.logit_bias = vec![(600, 1.0)]).validate(512).unwrap_err();
        assert_eq!(e.field, "logit_bias");
        assert!(e.to_string().contains("token id 600: expected an id below 512"), "{e}");
        assert_eq!(params(|p| p.temperature = 3.0).validate(512).unwrap_err().field, "temperature");
        assert_eq!(params(|p| p.top_p = 0.0).validate(512).unwrap_err().field, "top_p");
        assert!(params(|_| {}).validate(512).is_ok());
    }
}
