//! `lathe generate NAME --prompt TEXT`: a raw completion, streamed to stdout; `--json` prints
//! the text, token ids, finish reason, usage and timings as llama.cpp's server reports them.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use lathe_generation::{generate, Completion, Request, Session};
use lathe_types::ModelRef;
use serde_json::json;

use super::llm::{self, SamplingArgs};
use crate::Cli;

/// Arguments of `generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The causal-lm version: NAME, NAME:VERSION or NAME@LABEL.
    pub model: ModelRef,
    /// The text to continue (special tokens such as <|im_start|> are parsed).
    #[arg(long, env = "LATHE_PROMPT")]
    pub prompt: String,
    /// Report each generated token's log-probability and this many alternatives (0 to 20).
    #[arg(long, env = "LATHE_LOGPROBS")]
    pub logprobs: Option<usize>,
    /// Keep generating past end-of-text tokens.
    #[arg(long, env = "LATHE_IGNORE_EOS")]
    pub ignore_eos: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs `lathe generate`.
pub fn run(cli: &Cli, args: &GenerateArgs) -> Result<()> {
    llm::set_threads(args.sampling.threads)?;
    let model = llm::open(cli, &args.model)?;
    let mut req = Request::new(model.tokenizer.encode_prompt(&args.prompt)?, args.sampling.max_tokens);
    req.params.sampling = args.sampling.params(&model);
    req.params.stop = args.sampling.stop.clone();
    req.params.top_logprobs = args.logprobs;
    req.params.ignore_eos = args.ignore_eos;
    let mut session = Session::new(&model);
    let stream = !cli.json;
    let mut out = std::io::stdout();
    let done = generate(&model, &mut session, &req, &mut |text| {
        if stream {
            let _ = write!(out, "{text}");
            let _ = out.flush();
        }
        true
    })?;
    if cli.json {
        println!("{}", completion_json(&model, &done));
    } else {
        println!();
        let t = &done.timings;
        eprintln!(
            "[{} prompt tokens at {:.1}/s, {} generated at {:.1}/s, finish: {}]",
            t.prompt_tokens,
            t.prompt_per_second(),
            t.predicted_tokens,
            t.predicted_per_second(),
            done.finish_reason.as_str()
        );
    }
    Ok(())
}

/// A completion as JSON: text, ids, finish reason, OpenAI's `usage`, llama.cpp's `timings`.
pub fn completion_json(model: &lathe_generation::LanguageModel, c: &Completion) -> serde_json::Value {
    let t = &c.timings;
    let text_of = |id: u32| String::from_utf8_lossy(&model.tokenizer.token_bytes(id, true)).into_owned();
    let logprobs: Vec<serde_json::Value> = c
        .logprobs
        .iter()
        .map(|l| {
            let top: Vec<_> =
                l.top.iter().map(|&(id, lp)| json!({ "id": id, "token": text_of(id), "logprob": lp })).collect();
            json!({ "id": l.id, "token": text_of(l.id), "logprob": l.logprob, "top_logprobs": top })
        })
        .collect();
    let mut v = json!({
        "text": c.text,
        "token_ids": c.token_ids,
        "finish_reason": c.finish_reason.as_str(),
        "usage": {
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens + c.completion_tokens,
        },
        "timings": {
            "prompt_n": t.prompt_tokens,
            "prompt_ms": t.prompt_ms,
            "prompt_per_second": t.prompt_per_second(),
            "predicted_n": t.predicted_tokens,
            "predicted_ms": t.predicted_ms,
            "predicted_per_second": t.predicted_per_second(),
        },
    });
    if !logprobs.is_empty() {
        v["logprobs"] = logprobs.into();
    }
    v
}
