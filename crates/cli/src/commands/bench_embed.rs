//! `lathe bench embed`: sentences per second of an embedding version, in process (batch 1,
//! 8, 16, 32) and over HTTP `/v1/embeddings` (one sentence per request, concurrency 1, 16,
//! 64), for short (~12 tokens) and long (~200 tokens) sentences; with `--baseline-python`,
//! sentence-transformers runs the same in-process cases on the same number of threads and
//! the ratios are printed.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use lathe_embedding::{Backend, Embedder};
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
    /// Most requests per batch on the HTTP server (as `serve --max-batch-size`).
    #[arg(long, env = "LATHE_MAX_BATCH_SIZE", default_value_t = 64)]
    pub max_batch_size: usize,
    /// Only the in-process cases (and the baseline), no HTTP.
    #[arg(long, env = "LATHE_BENCH_NO_HTTP")]
    pub no_http: bool,
    /// In-process batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,8,16,32")]
    pub batches: Vec<usize>,
    /// Encoder backend: auto, encoder-bf16, encoder-f32 or candle (the earlier names
    /// native-bf16 and native-f32 are still accepted).
    #[arg(long, env = "LATHE_EMBEDDING_BACKEND", default_value = "auto")]
    pub backend: Backend,
    /// A Python with torch and sentence-transformers: runs the in-process cases on the same
    /// model folder and thread count, side by side, and prints Lathe's speed-up.
    #[arg(long, env = "LATHE_BENCH_BASELINE_PYTHON")]
    pub baseline_python: Option<std::path::PathBuf>,
}

/// The sentence-transformers side of the comparison.
const BASELINE_SCRIPT: &str = include_str!("bench_embed_baseline.py");

const SHORT: &str = "Predictive maintenance reduces unplanned downtime.";

fn long_sentence() -> String {
    "A spindle motor bearing shows abnormal vibration at 120 Hz and needs inspection. ".repeat(12)
}

pub fn run(cli: &Cli, args: &BenchEmbedArgs) -> Result<()> {
    let repo = cli.synced(Some(&args.model.name))?;
    let info = repo.resolve(&args.model).with_context(|| format!("no model {} in {}", args.model, cli.repo))?;
    let embedder = Embedder::load_with(&info.path, args.backend)?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if !cli.json {
        println!("backend {} on {threads} threads", embedder.backend());
    }
    let long = long_sentence();
    let mut report = Vec::new();
    let mut cases = Vec::new();
    for (label, text) in [("short", SHORT), ("long", long.as_str())] {
        let tokens = embedder.tokenize(&[text], true)?.ids[0].len();
        for &batch in &args.batches {
            let texts = vec![text; batch.max(1)];
            embedder.embed(&texts)?; // warm-up
            let end = Instant::now() + Duration::from_secs_f64(args.seconds);
            let start = Instant::now();
            let mut n = 0usize;
            while Instant::now() < end {
                embedder.embed(&texts)?;
                n += texts.len();
            }
            let rate = n as f64 / start.elapsed().as_secs_f64();
            if !cli.json {
                println!("in-process {label:<5} ({tokens:>3} tokens) batch {batch:>2}: {rate:>8.1} sentences/s");
            }
            cases.push(json!({ "length": label, "text": text, "batch": texts.len(), "lathe": rate }));
            report.push(json!({
                "mode": "in-process",
                "length": label,
                "tokens": tokens,
                "batch": batch,
                "sentences_per_second": rate,
                "backend": embedder.backend().to_string()
            }));
        }
    }
    if let Some(python) = &args.baseline_python {
        for result in run_baseline(python, &info.path, threads, args.seconds, &cases)? {
            let lathe = cases
                .iter()
                .find(|c| c["length"] == result["length"] && c["batch"] == result["batch"])
                .and_then(|c| c["lathe"].as_f64())
                .unwrap_or(0.0);
            let base = result["sentences_per_second"].as_f64().unwrap_or(0.0);
            let ratio = if base > 0.0 { lathe / base } else { 0.0 };
            if !cli.json {
                println!(
                    "baseline   {:<5} ({:>3} tokens) batch {:>2}: {base:>8.1} sentences/s  (sentence-transformers, \
                        torch {}, {} threads)  lathe/baseline {ratio:.2}x",
                    result["length"].as_str().unwrap_or(""),
                    result["tokens"],
                    result["batch"],
                    result["torch"].as_str().unwrap_or("?"),
                    result["threads"],
                );
            }
            report.push(json!({
                "mode": "baseline",
                "length": result["length"],
                "tokens": result["tokens"],
                "batch": result["batch"],
                "sentences_per_second": base,
                "ratio": ratio,
                "torch": result["torch"]
            }));
        }
    }
    if args.no_http {
        if cli.json {
            println!("{}", json!({ "results": report }));
        }
        return Ok(());
    }
    let server = BenchServer::start(repo.root(), &args.model.name, 2, args.max_batch_size.max(1), args.backend)?;
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
                    "http       {label:<5} concurrency {c:>2}: {:>8.1} sentences/s  p50 {:>8.1} µs  p99 {:>8.1} µs  \
                        errors {}",
                    m.rps, m.p50_us, m.p99_us, m.errors
                );
            }
            report.push(json!({
                "mode": "http",
                "length": label,
                "concurrency": c,
                "sentences_per_second": m.rps,
                "p50_us": m.p50_us,
                "p99_us": m.p99_us,
                "errors": m.errors
            }));
        }
    }
    if cli.json {
        println!("{}", json!({ "results": report }));
    }
    Ok(())
}

/// Runs the sentence-transformers baseline on the same cases; one JSON object per case.
fn run_baseline(
    python: &std::path::Path,
    model: &std::path::Path,
    threads: usize,
    seconds: f64,
    cases: &[serde_json::Value],
) -> Result<Vec<serde_json::Value>> {
    let job = json!({ "model": model, "threads": threads, "seconds": seconds, "cases": cases });
    super::bench::run_python(python, BASELINE_SCRIPT, &job, "torch and sentence-transformers")
}
