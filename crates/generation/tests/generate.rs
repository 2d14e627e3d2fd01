//! The generation loop on the tiny Llama: streamed text equals the final text whatever ends
//! generation, log-probabilities line up with the tokens, a session reuses its KV cache.

mod common;

use common::shared;
use lathe_generation::{generate, FinishReason, LanguageModel, Request, SamplingParams, Session};

fn model() -> LanguageModel {
    LanguageModel::open(&shared("models/tiny-llama-random")).unwrap()
}

fn greedy(prompt: Vec<u32>, max_tokens: usize) -> Request {
    let mut req = Request::new(prompt, max_tokens);
    req.params.sampling = SamplingParams { temperature: 0.0, ..SamplingParams::default() };
    req
}

/// Runs `req`; returns the completion and the text streamed to the callback.
fn run(m: &LanguageModel, session: &mut Session, req: &Request) -> (lathe_generation::Completion, String) {
    let mut streamed = String::new();
    let done = generate(m, session, req, &mut |t| {
        streamed.push_str(t);
        true
    })
    .unwrap();
    (done, streamed)
}

#[test]
fn streamed_text_is_the_final_text_however_generation_ends() {
    let m = model();
    let prompt = m.tokenizer.encode_prompt("Hello, how are you").unwrap();
    let mut req = greedy(prompt.clone(), 24);
    req.params.ignore_eos = true;
    let (full, streamed) = run(&m, &mut Session::new(&m), &req);
    assert_eq!((full.finish_reason, streamed.as_str()), (FinishReason::Length, full.text.as_str()));
    assert_eq!(full.token_ids.len(), 24);

    // A stop string taken from the middle of the full text: everything before it, streamed too.
    let stop: String = full.text.chars().skip(full.text.chars().count() / 2).take(3).collect();
    let mut with_stop = req.clone();
    with_stop.params.stop = vec![stop.clone()];
    let (done, streamed) = run(&m, &mut Session::new(&m), &with_stop);
    assert_eq!(done.finish_reason, FinishReason::Stop);
    assert_eq!(done.text, full.text[..full.text.find(&stop).unwrap()]);
    assert_eq!(streamed, done.text);

    // A stop token: the text of the tokens before it, and held-back text is not lost.
    let ids = &full.token_ids;
    let at = (3..ids.len()).find(|&i| !ids[..i].contains(&ids[i])).expect("a token not seen before");
    let mut with_token = req.clone();
    with_token.params.stop_token_ids = vec![ids[at]];
    let (done, streamed) = run(&m, &mut Session::new(&m), &with_token);
    assert_eq!((done.finish_reason, done.token_ids.as_slice()), (FinishReason::Stop, &ids[..at]));
    assert_eq!(done.text, m.tokenizer.decode(&ids[..at]));
    assert_eq!(streamed, done.text);
}

#[test]
fn logprobs_line_up_with_the_generated_tokens() {
    let m = model();
    let mut req = greedy(m.tokenizer.encode_prompt("Hello, how are you").unwrap(), 12);
    req.params.top_logprobs = Some(3);
    let (done, _) = run(&m, &mut Session::new(&m), &req);
    assert_eq!(done.logprobs.len(), done.token_ids.len());
    for (lp, &id) in done.logprobs.iter().zip(&done.token_ids) {
        assert_eq!((lp.id, lp.top.len(), lp.top[0].0), (id, 3, id), "greedy picks the most likely token");
        assert!(lp.logprob <= 0.0 && lp.top.windows(2).all(|w| w[0].1 >= w[1].1), "{lp:?}");
    }
}

#[test]
fn a_session_runs_only_the_new_part_of_a_longer_prompt() {
    let m = model();
    let first = m.tokenizer.encode_prompt("Hello, how are you").unwrap();
    let mut session = Session::new(&m);
    let (a, _) = run(&m, &mut session, &greedy(first.clone(), 4));
    assert_eq!(a.timings.prompt_tokens, first.len());
    // The session holds the prompt and the 3 generated tokens that went through the model
    // (the 4th was sampled last); a prompt extending them runs only its new tokens.
    let mut longer = first.clone();
    longer.extend(&a.token_ids);
    longer.extend(m.tokenizer.encode(" and then", false).unwrap());
    let new = longer.len() - first.len() - 3;
    let (b, _) = run(&m, &mut session, &greedy(longer.clone(), 4));
    assert_eq!(b.timings.prompt_tokens, new, "the cached prefix is not run again");
    let (fresh, _) = run(&m, &mut Session::new(&m), &greedy(longer, 4));
    assert_eq!(b.token_ids, fresh.token_ids, "reusing the cache changes nothing");
}

#[test]
fn requests_out_of_range_are_refused_by_field() {
    let m = model();
    let vocab = m.decoder.config().vocab_size as u32;
    let e = generate(&m, &mut Session::new(&m), &greedy(vec![vocab], 4), &mut |_| true).unwrap_err();
    assert!(e.to_string().contains("outside the vocabulary"), "{e}");
    let e = generate(&m, &mut Session::new(&m), &greedy(Vec::new(), 4), &mut |_| true).unwrap_err();
    assert!(e.to_string().contains("at least one token"), "{e}");
    let mut req = greedy(vec![1], 4);
    req.params.stop = vec![String::new()];
    let e = generate(&m, &mut Session::new(&m), &req, &mut |_| true).unwrap_err();
    assert!(e.to_string().contains("stop"), "{e}");
    let too_long = vec![1; m.decoder.config().context_length];
    let e = generate(&m, &mut Session::new(&m), &greedy(too_long, 4), &mut |_| true).unwrap_err();
    assert!(e.to_string().contains("do not fit the model's context"), "{e}");
}
