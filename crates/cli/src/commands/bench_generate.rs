//! `lathe bench generate`: prompt processing (prefill) tokens/s for 64- and 512-token prompts
//! and single-stream decoding tokens/s, in process, at each thread count, with where the time
//! goes per operation; then concurrent streaming chats over HTTP (`lathe serve` in process):
//! aggregate decode tokens/s and time to first token. With `--baseline-llama-cpp`, llama.cpp's
//! `llama-bench` runs the same in-process tests and `llama-server` takes the same HTTP load,
//! on the same file in the same run, and the ratios are printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use lathe_generation::decoder::{Op, OpTimes};
use lathe_generation::LanguageModel;
use lathe_types::ModelRef;
use serde_json::{json, Value};

use super::bench_generate_http::{drive, Level, LlamaServer, Load, QUESTIONS};
use super::bench_serve::BenchServer;
use crate::Cli;

/// Arguments of `bench generate`.
#[derive(Args, Debug)]
pub struct BenchGenerateArgs {
    /// The causal-lm version (NAME, NAME:VERSION).
    #[arg(long, env = "LATHE_BENCH_MODEL")]
    pub model: ModelRef,
    /// Thread counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Prompt lengths of the prefill tests (random token ids, one batch each, as llama-bench).
    #[arg(long, value_delimiter = ',', default_value = "64,512")]
    pub prompt_lengths: Vec<usize>,
    /// Tokens generated one at a time from an empty context in the decode test.
    #[arg(long, env = "LATHE_BENCH_DECODE_TOKENS", default_value_t = 128)]
    pub decode_tokens: usize,
    /// Timed repetitions per test (after one warm-up); mean and standard deviation reported.
    #[arg(long, env = "LATHE_BENCH_REPETITIONS", default_value_t = 3)]
    pub repetitions: usize,
    /// A folder with llama.cpp's llama-bench (and its shared libraries): runs the same tests
    /// on the version's GGUF file with the same threads and prints Lathe's ratio.
    #[arg(long, env = "LATHE_BENCH_BASELINE_LLAMA_CPP")]
    pub baseline_llama_cpp: Option<PathBuf>,
    /// Concurrent streaming chats of the HTTP case (empty: no HTTP case).
    #[arg(long, env = "LATHE_BENCH_HTTP_CONCURRENCY", value_delimiter = ',', default_value = "1,4,16")]
    pub http_concurrency: Vec<usize>,
    /// Requests each stream of the HTTP case sends, one after the other.
    #[arg(long, env = "LATHE_BENCH_HTTP_REQUESTS", default_value_t = 2)]
    pub http_requests: usize,
    /// Tokens each HTTP request generates (end of sequence ignored).
    #[arg(long, env = "LATHE_BENCH_HTTP_MAX_TOKENS", default_value_t = 64)]
    pub http_max_tokens: usize,
    /// Threads of llama-server in the HTTP baseline (`-t`).
    #[arg(long, env = "LATHE_BENCH_BASELINE_THREADS", default_value_t = 2)]
    pub baseline_threads: usize,
}

/// One test's result.
struct Measured {
    test: String,
    threads: usize,
    mean: f64,
    stddev: f64,
    ops: OpTimes,
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len().saturating_sub(1)).max(1) as f64;
    (mean, var.sqrt())
}

/// Deterministic pseudo-random token ids below `vocab`.
fn random_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) % vocab as u64) as u32
        })
        .collect()
}

/// Tokens/s of `run` over `reps` timed runs after a warm-up.
fn measure(reps: usize, tokens: usize, mut run: impl FnMut(&mut OpTimes)) -> (Vec<f64>, OpTimes) {
    run(&mut OpTimes::default());
    let mut ops = OpTimes::default();
    let rates = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            run(&mut ops);
            tokens as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    (rates, ops)
}

fn bench_threads(model: &LanguageModel, args: &BenchGenerateArgs, threads: usize) -> Result<Vec<Measured>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let d = &model.decoder;
    let vocab = d.config().vocab_size;
    Ok(pool.install(|| {
        let mut out = Vec::new();
        for &n in &args.prompt_lengths {
            let tokens = random_tokens(n, vocab, n as u64);
            let (rates, ops) = measure(args.repetitions, n, |ops| {
                d.run(&tokens, &mut d.new_cache(), ops);
            });
            let (mean, stddev) = mean_sd(&rates);
            out.push(Measured { test: format!("pp{n}"), threads, mean, stddev, ops });
        }
        let n = args.decode_tokens;
        let tokens = random_tokens(n, vocab, 7);
        let (rates, ops) = measure(args.repetitions, n, |ops| {
            let mut cache = d.new_cache();
            tokens.iter().for_each(|&t| drop(d.run(&[t], &mut cache, ops)));
        });
        let (mean, stddev) = mean_sd(&rates);
        out.push(Measured { test: format!("tg{n}"), threads, mean, stddev, ops });
        out
    }))
}

/// One llama-bench result.
struct Baseline {
    test: String,
    threads: usize,
    mean: f64,
    stddev: f64,
}

/// llama-bench's mean tokens/s per (test, threads), on the CPU only (`-ngl 0`).
fn llama_bench(dir: &Path, gguf: &Path, args: &BenchGenerateArgs) -> Result<Vec<Baseline>> {
    let join = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
    let bin = dir.join("llama-bench");
    let output = Command::new(&bin)
        .env("LD_LIBRARY_PATH", dir)
        .args(["-m", &gguf.display().to_string(), "-t", &join(&args.threads), "-p", &join(&args.prompt_lengths)])
        .args(["-n", &args.decode_tokens.to_string(), "-r", &args.repetitions.to_string(), "-o", "json"])
        .args(["-ngl", "0"])
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !output.status.success() {
        bail!("{} failed ({}): {}", bin.display(), output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).context("reading llama-bench's JSON")?;
    let rows = rows.as_array().context("llama-bench printed no JSON array")?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let (p, g) = (r["n_prompt"].as_u64().unwrap_or(0), r["n_gen"].as_u64().unwrap_or(0));
            let test = if g > 0 { format!("tg{g}") } else { format!("pp{p}") };
            let threads = r["n_threads"].as_u64()? as usize;
            let mean = r["avg_ts"].as_f64().filter(|&m| m > 0.0)?;
            Some(Baseline { test, threads, mean, stddev: r["stddev_ts"].as_f64().unwrap_or(0.0) })
        })
        .collect())
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// What a run measured, for printing.
struct Report {
    results: Vec<Measured>,
    baseline: Vec<Baseline>,
    /// Peak resident memory, model files and KV cache at the longest test, bytes.
    memory: (u64, u64, u64),
    /// Positions of that KV cache.
    positions: usize,
    /// The HTTP case: Lathe's levels and llama-server's.
    http: Vec<Level>,
    http_baseline: Vec<Level>,
    /// Decode tokens/s of the single-stream chats run in process (same requests, same threads).
    in_process_stream: Option<f64>,
}

impl Report {
    fn baseline_of(&self, m: &Measured) -> Option<&Baseline> {
        self.baseline.iter().find(|b| b.test == m.test && b.threads == m.threads)
    }

    fn json(&self, name: &str, version: u64) -> serde_json::Value {
        let rows: Vec<_> = self
            .results
            .iter()
            .map(|m| {
                let b = self.baseline_of(m);
                let ops: serde_json::Map<String, serde_json::Value> =
                    Op::ALL.iter().map(|&op| (op.name().to_string(), m.ops.get(op).as_secs_f64().into())).collect();
                json!({
                    "test": m.test, "threads": m.threads, "tokens_per_second": m.mean, "stddev": m.stddev,
                    "llama_cpp_tokens_per_second": b.map(|b| b.mean), "ratio": b.map(|b| m.mean / b.mean),
                    "seconds_per_op": ops,
                })
            })
            .collect();
        let (rss, model, kv) = self.memory;
        let memory = json!({ "peak_rss_bytes": rss, "model_bytes": model, "kv_cache_bytes": kv });
        let http: Vec<Value> = self
            .http
            .iter()
            .map(|l| {
                let b = self.http_baseline.iter().find(|b| b.concurrency == l.concurrency);
                let mut v = l.json();
                v["llama_server"] = b.map_or(Value::Null, Level::json);
                v["ratio"] = b.map_or(Value::Null, |b| json!(l.tokens_per_second() / b.tokens_per_second()));
                v
            })
            .collect();
        let single = self.single_stream().map(|(http, local)| json!({"http": http, "in_process": local}));
        json!({ "model": name, "version": version, "results": rows, "memory": memory, "http": http,
            "single_stream": single })
    }

    /// Decode tokens/s of one stream of chats over HTTP and of the same chats in process.
    fn single_stream(&self) -> Option<(f64, f64)> {
        let http = self.http.iter().find(|l| l.concurrency == 1)?;
        Some((http.stream_decode, self.in_process_stream?))
    }

    fn print_http(&self) {
        if self.http.is_empty() {
            return;
        }
        println!("\nconcurrent streaming chats over HTTP (aggregate decode tokens/s; time to first token p50 / p99):");
        println!(
            "{:>7} {:>12} {:>18} {:>14} {:>18} {:>7}",
            "streams", "lathe tok/s", "lathe TTFT", "llama tok/s", "llama TTFT", "ratio"
        );
        for l in &self.http {
            let ttft = |l: &Level| format!("{:.2} / {:.2} s", l.ttft_quantile(0.5), l.ttft_quantile(0.99));
            let (base, base_ttft, ratio) = match self.http_baseline.iter().find(|b| b.concurrency == l.concurrency) {
                Some(b) => (
                    format!("{:.1}", b.tokens_per_second()),
                    ttft(b),
                    format!("{:.2}", l.tokens_per_second() / b.tokens_per_second()),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            println!(
                "{:>7} {:>12.1} {:>18} {:>14} {:>18} {:>7}",
                l.concurrency,
                l.tokens_per_second(),
                ttft(l),
                base,
                base_ttft,
                ratio
            );
        }
        if let Some((http, local)) = self.single_stream() {
            println!(
                "single stream: {http:.1} tokens/s decoding over HTTP, {local:.1} for the same chats in process: {:.2}",
                http / local
            );
        }
    }

    fn print(&self) {
        println!("{:<8} {:>7} {:>18} {:>22} {:>7}", "test", "threads", "lathe tok/s", "llama.cpp tok/s", "ratio");
        for m in &self.results {
            let (base, ratio) = match self.baseline_of(m) {
                Some(b) => (format!("{:.1} ± {:.1}", b.mean, b.stddev), format!("{:.2}", m.mean / b.mean)),
                None => ("-".into(), "-".into()),
            };
            let ours = format!("{:.1} ± {:.1}", m.mean, m.stddev);
            println!("{:<8} {:>7} {:>18} {:>22} {:>7}", m.test, m.threads, ours, base, ratio);
        }
        println!("\nwhere the time goes (share of each test's time):");
        for m in &self.results {
            let total: f64 = Op::ALL.iter().map(|&op| m.ops.get(op).as_secs_f64()).sum::<f64>().max(1e-12);
            let shares: Vec<String> = Op::ALL
                .iter()
                .map(|&op| format!("{} {:.0}%", op.name(), 100.0 * m.ops.get(op).as_secs_f64() / total))
                .collect();
            println!("  {} t{}: {}", m.test, m.threads, shares.join(", "));
        }
        let mb = |b: u64| b as f64 / (1 << 20) as f64;
        let (rss, model, kv) = self.memory;
        println!(
            "\nmemory: peak resident {:.1} MiB = model file {:.1} MiB + KV cache ({} positions) {:.1} MiB + {:.1} MiB",
            mb(rss),
            mb(model),
            self.positions,
            mb(kv),
            mb(rss) - mb(model) - mb(kv)
        );
        self.print_http();
    }
}

/// Decode tokens/s of the single-stream HTTP load's chats generated in process, one after the
/// other, on as many threads as the server's scheduler uses; measured as over HTTP (tokens
/// after the first over the time from the first piece of text to the last).
fn in_process_chats(model: &LanguageModel, load: Load) -> Result<f64> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let mut rates = Vec::new();
    for r in 0..load.requests {
        let prompt = model.chat_prompt(&[lathe_generation::Message::new("user", QUESTIONS[r % QUESTIONS.len()])])?;
        let mut req = lathe_generation::Request::new(prompt, load.max_tokens);
        req.params.sampling.temperature = 0.0;
        req.params.ignore_eos = true;
        let (mut first, mut last) = (None, Instant::now());
        let mut session = lathe_generation::Session::new(model);
        let done = pool.install(|| {
            lathe_generation::generate(model, &mut session, &req, &mut |text| {
                if !text.is_empty() {
                    last = Instant::now();
                    first.get_or_insert(last);
                }
                true
            })
        })?;
        if let Some(first) = first.filter(|&f| last > f) {
            rates.push(done.completion_tokens.saturating_sub(1) as f64 / (last - first).as_secs_f64());
        }
    }
    Ok(rates.iter().sum::<f64>() / rates.len().max(1) as f64)
}

/// The HTTP case: `lathe serve` in process, then llama-server when a baseline is given.
fn http_case(
    cli: &Cli,
    args: &BenchGenerateArgs,
    name: &str,
    model: &LanguageModel,
    gguf: &Path,
) -> Result<(Vec<Level>, Vec<Level>, Option<f64>)> {
    let loads: Vec<Load> = args
        .http_concurrency
        .iter()
        .map(|&concurrency| Load { concurrency, requests: args.http_requests, max_tokens: args.http_max_tokens })
        .collect();
    if loads.is_empty() {
        return Ok((Vec::new(), Vec::new(), None));
    }
    let server = BenchServer::start(cli.synced(Some(name))?.root(), name, 1, 64, lathe_embedding::Backend::Auto)?;
    let base = format!("http://{}", server.addr);
    let ours = loads.iter().map(|&l| drive(&base, name, l)).collect::<Result<Vec<_>>>()?;
    drop(server);
    let single = Load { concurrency: 1, requests: args.http_requests, max_tokens: args.http_max_tokens };
    let in_process = in_process_chats(model, single)?;
    let Some(dir) = &args.baseline_llama_cpp else { return Ok((ours, Vec::new(), Some(in_process))) };
    let slots = args.http_concurrency.iter().copied().max().unwrap_or(1);
    let longest_prompt = QUESTIONS
        .iter()
        .filter_map(|q| model.chat_prompt(&[lathe_generation::Message::new("user", q)]).ok())
        .map(|p| p.len())
        .max()
        .unwrap_or(64);
    let server = LlamaServer::start(dir, gguf, slots, longest_prompt + args.http_max_tokens, args.baseline_threads)?;
    let theirs = loads.iter().map(|&l| drive(&server.base, name, l)).collect::<Result<Vec<_>>>()?;
    Ok((ours, theirs, Some(in_process)))
}

/// Runs `lathe bench generate`: Lathe's tests first, then llama-bench's, then the report.
pub fn run(cli: &Cli, args: &BenchGenerateArgs) -> Result<()> {
    let zero = args.http_concurrency.contains(&0) || args.http_requests == 0 || args.http_max_tokens == 0;
    if args.prompt_lengths.contains(&0) || args.decode_tokens == 0 || args.threads.contains(&0) || zero {
        bail!("--prompt-lengths, --decode-tokens, --threads and the --http-* counts must be at least 1");
    }
    let repo = cli.synced(Some(&args.model.name))?;
    let info = repo.resolve(&args.model)?;
    let model = super::llm::open(cli, &args.model)?;
    let gguf = info.path.join(lathe_generation::import::GGUF_FILE);
    if args.baseline_llama_cpp.is_some() && !gguf.is_file() {
        bail!("--baseline-llama-cpp needs a version imported from GGUF");
    }
    let mut results = Vec::new();
    for &t in &args.threads {
        results.extend(bench_threads(&model, args, t)?);
    }
    let rss = peak_rss().unwrap_or(0);
    let baseline = match &args.baseline_llama_cpp {
        Some(dir) => llama_bench(dir, &gguf, args)?,
        None => Vec::new(),
    };
    let model_bytes: u64 = info.manifest.files.values().map(|f| f.bytes).sum();
    let positions = args.prompt_lengths.iter().copied().max().unwrap_or(0).max(args.decode_tokens);
    let kv_bytes = (model.decoder.config().kv_bytes_per_position() * positions) as u64;
    let (http, http_baseline, in_process_stream) = http_case(cli, args, &info.name, &model, &gguf)?;
    let memory = (rss, model_bytes, kv_bytes);
    let report = Report { results, baseline, memory, positions, http, http_baseline, in_process_stream };
    if cli.json {
        println!("{}", report.json(&info.name, info.version));
    } else {
        println!("{}:{}  ({}, {})", info.name, info.version, model.facts.architecture, model.facts.quantization);
        report.print();
    }
    Ok(())
}
