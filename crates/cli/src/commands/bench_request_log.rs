//! `lathe bench request-log`: what the sampled request log costs serving. Three servers over
//! the same repository in the same process, the log off, at 10 % and at 100 %, driven in
//! alternating rounds with batch-1 TF Serving JSON requests; medians and the throughput ratios.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use lathe_monitor::{RequestLog, RequestLogConfig, Rotation, Sink};
use lathe_registry::Repository;
use lathe_server::observe::{Observability, RequestLogSettings};
use lathe_types::ModelRef;
use serde_json::json;

use super::bench_serve::{load, median, request_for, BenchServer, Measured, Protocol};
use crate::Cli;

/// Arguments of `bench request-log`.
#[derive(Args, Debug)]
pub struct BenchRequestLogArgs {
    /// Model to call (NAME or NAME:VERSION); its input must be one FP32 tensor.
    #[arg(long, env = "LATHE_BENCH_MODEL", default_value = "mnist")]
    pub model: ModelRef,
    /// Connections sending back to back.
    #[arg(long, env = "LATHE_BENCH_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds per server (split over the rounds).
    #[arg(long, env = "LATHE_BENCH_SECONDS", default_value_t = 8.0)]
    pub seconds: f64,
    /// Rounds; each round runs every server once, in a rotating order (medians reported).
    #[arg(long, env = "LATHE_BENCH_ROUNDS", default_value_t = 6)]
    pub rounds: usize,
    /// Threads for each server's HTTP side.
    #[arg(long, env = "LATHE_HTTP_THREADS", default_value_t = 2)]
    pub http_threads: usize,
}

pub fn run(cli: &Cli, args: &BenchRequestLogArgs) -> Result<()> {
    let repo = Repository::new(&cli.repo);
    let info =
        repo.resolve(&args.model).with_context(|| format!("no model {} in {}", args.model, cli.repo.display()))?;
    let [input] = info.manifest.signature.inputs.as_slice() else {
        anyhow::bail!("bench request-log drives models with one input; {} has more", info.name);
    };
    let per_row: usize = input.shape.iter().skip(1).map(|&d| d.max(1) as usize).product();
    let row: Vec<f32> = (0..per_row).map(|i| (i % 255) as f32).collect();
    let (path, headers, body) = request_for(Protocol::TfsJson, &info.name, info.version, input, &row);
    let logs = tempfile::tempdir()?;
    let shares = [None, Some(0.1), Some(1.0)];
    let servers: Vec<BenchServer> = shares
        .iter()
        .map(|share| {
            let observe = observability(*share, logs.path())?;
            BenchServer::start_with(
                &cli.repo,
                &info.name,
                args.http_threads,
                64,
                lathe_embedding::Backend::Auto,
                observe,
            )
        })
        .collect::<Result<_>>()?;
    let rounds = args.rounds.max(1);
    let slice = args.seconds / rounds as f64;
    let mut runs: Vec<Vec<Measured>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for s in &servers {
        load(s.addr, &path, &headers, body.clone(), args.concurrency, 0.3)?;
    }
    for round in 0..rounds {
        for k in 0..servers.len() {
            let i = (k + round) % servers.len();
            runs[i].push(load(servers[i].addr, &path, &headers, body.clone(), args.concurrency, slice)?);
        }
    }
    let medians: Vec<Measured> = runs.into_iter().map(median).collect();
    let lines: Vec<u64> = (1..=2).map(|i| count_lines(&logs.path().join(format!("log-{i}.jsonl")))).collect();
    report(cli, &info.name, args.concurrency, &medians, &lines);
    Ok(())
}

fn observability(share: Option<f64>, dir: &std::path::Path) -> Result<Arc<Observability>> {
    let Some(sample) = share else { return Ok(Observability::start(Default::default(), None)) };
    let n = if sample < 1.0 { 1 } else { 2 };
    let sink = Sink::File(dir.join(format!("log-{n}.jsonl")));
    let log = RequestLog::start(RequestLogConfig { sink, rotation: Rotation::default(), queue: 4096 })?;
    let settings = RequestLogSettings { log, sample, per_model: Default::default(), redact: Vec::new() };
    Ok(Observability::start(Default::default(), Some(settings)))
}

fn count_lines(path: &std::path::Path) -> u64 {
    std::fs::read(path).map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64).unwrap_or(0)
}

fn report(cli: &Cli, model: &str, concurrency: usize, m: &[Measured], lines: &[u64]) {
    let names = ["off", "10%", "100%"];
    let overhead = |i: usize| 1.0 - m[i].rps / m[0].rps.max(1e-9);
    if cli.json {
        let cases: Vec<_> = (0..3)
            .map(|i| {
                json!({"request_log": names[i], "rps": m[i].rps, "p50_us": m[i].p50_us, "p99_us": m[i].p99_us,
                    "errors": m[i].errors, "throughput_overhead": overhead(i)})
            })
            .collect();
        println!("{}", json!({"model": model, "concurrency": concurrency, "cases": cases, "lines_written": lines}));
        return;
    }
    for i in 0..3 {
        println!(
            "request log {:<5} {:>7.0} req/s p50 {:>7.1} µs p99 {:>7.1} µs  overhead {:>+5.1}%{}",
            names[i],
            m[i].rps,
            m[i].p50_us,
            m[i].p99_us,
            overhead(i) * 100.0,
            if m[i].errors > 0 { format!("  ERRORS {}", m[i].errors) } else { String::new() }
        );
    }
    println!("lines written: {} at 10 %, {} at 100 %", lines[0], lines[1]);
}
