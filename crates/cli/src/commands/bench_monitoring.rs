//! `lathe bench monitoring`: what monitoring costs serving. Four servers over the same
//! repository in the same process, driven in rotating rounds with batch-1 TF Serving JSON
//! requests: no monitoring, drift monitoring (the default), and drift plus the request log at
//! 10 % and at 100 % sampling; medians and each case's throughput against the one before.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use lathe_monitor::{RequestLog, RequestLogConfig, Rotation, Sink};
use lathe_server::observe::{Observability, ObserveConfig, RequestLogSettings};
use lathe_types::ModelRef;
use serde_json::json;

use super::bench_serve::{load, median, request_for, BenchServer, Measured, Protocol};
use crate::Cli;

/// Arguments of `bench monitoring`.
#[derive(Args, Debug)]
pub struct BenchMonitoringArgs {
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

/// The cases: name, drift window rows, request-log share.
const CASES: [(&str, usize, Option<f64>); 4] = [
    ("nothing", 0, None),
    ("drift", 1000, None),
    ("drift + log 10%", 1000, Some(0.1)),
    ("drift + log 100%", 1000, Some(1.0)),
];

pub fn run(cli: &Cli, args: &BenchMonitoringArgs) -> Result<()> {
    let repo = cli.synced(Some(&args.model.name))?;
    let info = repo.resolve(&args.model).with_context(|| format!("no model {} in {}", args.model, cli.repo))?;
    let [input] = info.manifest.signature.inputs.as_slice() else {
        anyhow::bail!("bench monitoring drives models with one input; {} has more", info.name);
    };
    let per_row: usize = input.shape.iter().skip(1).map(|&d| d.max(1) as usize).product();
    let row: Vec<f32> = (0..per_row).map(|i| (i % 255) as f32).collect();
    let (path, headers, body) = request_for(Protocol::TfsJson, &info.name, info.version, input, &row);
    let logs = tempfile::tempdir()?;
    let servers: Vec<BenchServer> = CASES
        .iter()
        .enumerate()
        .map(|(i, &(_, window, share))| {
            let observe = observability(window, share, &logs.path().join(format!("log-{i}.jsonl")))?;
            let backend = lathe_embedding::Backend::Auto;
            BenchServer::start_with(repo.root(), &info.name, args.http_threads, 64, backend, observe)
        })
        .collect::<Result<_>>()?;
    let rounds = args.rounds.max(1);
    let slice = args.seconds / rounds as f64;
    let mut runs: Vec<Vec<Measured>> = CASES.iter().map(|_| Vec::new()).collect();
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
    let lines: Vec<u64> = (0..CASES.len()).map(|i| count_lines(&logs.path().join(format!("log-{i}.jsonl")))).collect();
    report(cli, &info.name, args.concurrency, &medians, &lines);
    Ok(())
}

fn observability(window: usize, share: Option<f64>, log: &std::path::Path) -> Result<Arc<Observability>> {
    let config = ObserveConfig { window_rows: window, ..ObserveConfig::default() };
    let settings = match share {
        None => None,
        Some(sample) => {
            let sink = Sink::File(log.to_path_buf());
            let log = RequestLog::start(RequestLogConfig { sink, rotation: Rotation::default(), queue: 4096 })?;
            Some(RequestLogSettings { log, sample, per_model: Default::default(), redact: Vec::new() })
        }
    };
    Ok(Observability::start(config, settings))
}

fn count_lines(path: &std::path::Path) -> u64 {
    std::fs::read(path).map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64).unwrap_or(0)
}

/// Each case's throughput cost against the case it adds to: drift against nothing, each
/// request-log case against drift alone.
fn overhead(m: &[Measured], i: usize) -> f64 {
    let base = if i <= 1 { 0 } else { 1 };
    if i == 0 {
        return 0.0;
    }
    1.0 - m[i].rps / m[base].rps.max(1e-9)
}

fn report(cli: &Cli, model: &str, concurrency: usize, m: &[Measured], lines: &[u64]) {
    if cli.json {
        let cases: Vec<_> = CASES
            .iter()
            .enumerate()
            .map(|(i, (name, _, _))| {
                json!({"case": name, "rps": m[i].rps, "p50_us": m[i].p50_us, "p99_us": m[i].p99_us,
                    "errors": m[i].errors, "throughput_overhead": overhead(m, i), "log_lines": lines[i]})
            })
            .collect();
        println!("{}", json!({"model": model, "concurrency": concurrency, "cases": cases}));
        return;
    }
    for (i, (name, _, _)) in CASES.iter().enumerate() {
        let against = match i {
            0 => String::new(),
            1 => format!("  {:+.1}% vs nothing", -overhead(m, i) * 100.0),
            _ => format!("  {:+.1}% vs drift", -overhead(m, i) * 100.0),
        };
        println!(
            "{name:<17} {:>7.0} req/s p50 {:>7.1} µs p99 {:>7.1} µs{against}{}",
            m[i].rps,
            m[i].p50_us,
            m[i].p99_us,
            if m[i].errors > 0 { format!("  ERRORS {}", m[i].errors) } else { String::new() }
        );
    }
    println!("log lines written: {} at 10 %, {} at 100 %", lines[2], lines[3]);
}
