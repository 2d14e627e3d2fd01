//! `lathe bench embed`: sentences per second of an embedding version, in process (batch 1,
//! 8, 16, 32) and over HTTP `/v1/embeddings` (one sentence per request, concurrency 1, 16,
//! 64), for short (~12 tokens) and long (~200 tokens) sentences.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use lathe_engine_candle::Embedder;
use lathe_registry::Repository;
use lathe_types::ModelRef;
use serde_json::json;

use super::bench_serve::{load, BenchServer};
use crate::Cli;

/// Arguments of `bench embed`.
#[derive(Args, Debug)]
pub struct BenchEmbedArgs {
    /// Embedding model (NAME or NAME:VERSION) in the repository.
    #[arg(long, env = "LATHE_BENCH_MODEL", default_value = "minilm")]
    pub model: ModelRef,
    /// Seconds per measurement.
    #[arg(long, env = "LATHE_BENCH_SECONDS", default_value_t = 3.0)]
    pub seconds: f64,
    /// HTTP concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
}

const SHORT: &str = "Predictive maintenance reduces unplanned downtime.";

fn long_sentence() -> String {
    "A spindle motor bearing shows abnormal vibration at 120 Hz and needs inspection. ".repeat(12)
}

pub fn run(cli: &Cli, args: &BenchEmbedArgs) -> Result<()> {
    let info = Repository::new(&cli.repo)
        .resolve(&args.model)
        .with_context(|| format!("no model {} in {}", args.model, cli.repo.display()))?;
    let embedder = Embedder::load(&info.path)?;
    let long = long_sentence();
    let mut report = Vec::new();
    for (label, text) in [("short", SHORT), ("long", long.as_str())] {
        let tokens = embedder.tokenize(&[text], true)?.ids[0].len();
        for batch in [1usize, 8, 16, 32] {
            let texts = vec![text; batch];
            let end = Instant::now() + Duration::from_secs_f64(args.seconds);
            let start = Instant::now();
            let mut n = 0usize;
            while Instant::now() < end {
                embedder.embed(&texts)?;
                n += batch;
            }
            let rate = n as f64 / start.elapsed().as_secs_f64();
            if !cli.json {
                println!("in-process {label:<5} ({tokens:>3} tokens) batch {batch:>2}: {rate:>8.1} sentences/s");
            }
            report.push(json!({ "mode": "in-process", "length": label, "tokens": tokens, "batch": batch, "sentences_per_second": rate }));
        }
    }
    let server = BenchServer::start(&cli.repo, 2, 32)?;
    for (label, text) in [("short", SHORT), ("long", long.as_str())] {
        let body = Bytes::from(json!({ "model": info.name, "input": text }).to_string());
        for &c in &args.concurrency {
            let m = load(
                server.addr,
                "/v1/embeddings",
                &[("content-type", "application/json".into())],
                body.clone(),
                c,
                args.seconds,
            )?;
            if !cli.json {
                println!(
                    "http       {label:<5} concurrency {c:>2}: {:>8.1} sentences/s  p50 {:>8.1} µs  p99 {:>8.1} µs  errors {}",
                    m.rps, m.p50_us, m.p99_us, m.errors
                );
            }
            report.push(json!({ "mode": "http", "length": label, "concurrency": c, "sentences_per_second": m.rps, "p50_us": m.p50_us, "p99_us": m.p99_us, "errors": m.errors }));
        }
    }
    if cli.json {
        println!("{}", json!({ "results": report }));
    }
    Ok(())
}
