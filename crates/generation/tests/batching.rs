//! Continuous batching in the decoder: sequences run together in one pass over a shared pool
//! of KV-cache blocks get the logits each gets alone, decoding and prompt chunks mixed.

mod common;

use common::shared;
use lathe_engine::generation::SequenceChunk;
use lathe_generation::decoder::OpTimes;
use lathe_generation::LanguageModel;

const BLOCK: usize = 16;

#[test]
fn sequences_batched_over_paged_blocks_get_their_logits_alone() {
    let m = LanguageModel::open(&shared("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let d = &m.decoder;
    let prompts: Vec<Vec<u32>> = ["The capital of France is", "1, 2, 3, 4, 5,", "Once upon a time, in a land far away"]
        .iter()
        .map(|p| m.tokenizer.encode_prompt(p).unwrap())
        .collect();
    // Alone: each prompt in one pass, then two decoding steps.
    let alone: Vec<Vec<Vec<f32>>> = prompts
        .iter()
        .map(|p| {
            let mut cache = d.new_cache();
            let first = d.run(p, &mut cache, &mut OpTimes::default());
            let second = d.run(&[10], &mut cache, &mut OpTimes::default());
            vec![first, second, d.run(&[11], &mut cache, &mut OpTimes::default())]
        })
        .collect();
    // Together: blocks interleaved in one pool; sequence 2's prompt is split in two chunks and
    // runs next to the others' decoding.
    let mut kv = d.new_kv_blocks(24, BLOCK);
    let tables: Vec<Vec<u32>> = (0..3u32).map(|s| (0..8).map(|b| b * 3 + s).collect()).collect();
    let chunk =
        |s: usize, tokens: &'static [u32], start| SequenceChunk { tokens, start, blocks: &tables[s], logits: true };
    let owned: Vec<&'static [u32]> = prompts.iter().map(|p| &*Vec::leak(p.clone())).collect();
    let split = owned[2].len() / 2;
    let first = d.run_chunks(
        &[
            chunk(0, owned[0], 0),
            chunk(1, owned[1], 0),
            SequenceChunk { logits: false, ..chunk(2, &owned[2][..split], 0) },
        ],
        &mut kv,
        &mut OpTimes::default(),
    );
    let (l0, l1, l2) = (owned[0].len(), owned[1].len(), owned[2].len());
    let second = d.run_chunks(
        &[chunk(0, &[10], l0), chunk(2, &owned[2][split..], split), chunk(1, &[10], l1)],
        &mut kv,
        &mut OpTimes::default(),
    );
    let third = d.run_chunks(
        &[chunk(1, &[11], l1 + 1), chunk(0, &[11], l0 + 1), chunk(2, &[10], l2)],
        &mut kv,
        &mut OpTimes::default(),
    );
    let last = d.run_chunks(&[chunk(2, &[11], l2 + 1)], &mut kv, &mut OpTimes::default());
    let together = [
        vec![first[0].clone(), second[0].clone(), third[1].clone()],
        vec![first[1].clone(), second[2].clone(), third[0].clone()],
        vec![second[1].clone(), third[2].clone(), last[0].clone()],
    ];
    for (s, (a, t)) in alone.iter().zip(&together).enumerate() {
        for (step, (x, y)) in a.iter().zip(t).enumerate() {
            let worst = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
            assert!(worst <= 1e-4, "sequence {s} step {step}: logits differ by {worst}");
            let argmax = |v: &[f32]| lathe_generation::sampling::argmax(v);
            assert_eq!(argmax(x), argmax(y), "sequence {s} step {step}: greedy tokens differ");
        }
    }
}
