//! `lathe bench train`: how fast a spec trains here, and where the time goes.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use lathe_formats::Spec;
use lathe_train::data::{Dataset, LoadOptions};
use lathe_train::{auto_threads, fit, prepare, FitOptions, PhaseTimes};
use serde_json::json;

use crate::render::figure;
use crate::Cli;

/// Benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time full fits of a spec (data loading excluded) and report samples/s, the phases of
    /// the step, arithmetic throughput and the test accuracy reached.
    ///
    /// Example: lathe bench train --spec examples/mnist-mlp.yaml --data ../shared/data/mnist
    Train(BenchTrainArgs),
    /// Start a server on the repository and measure batch-1 predictions over TF Serving
    /// JSON, V2 JSON and V2 binary at several concurrencies (load generator in-process),
    /// next to the in-process compute floor, with batching on and off.
    ///
    /// Example: lathe bench serve --model mnist --concurrency 1,16,64
    Serve(super::bench_serve::BenchServeArgs),
    /// Sentences per second of an embedding version, in process and over /v1/embeddings.
    ///
    /// Example: lathe bench embed --model minilm
    Embed(super::bench_embed::BenchEmbedArgs),
    /// Prefill and decode tokens per second of a causal-lm version at 1 and 2 threads, with
    /// where the time goes; with --baseline-llama-cpp, llama-bench side by side and the ratios.
    ///
    /// Example: lathe bench generate --model smollm2 --baseline-llama-cpp /tmp/llama-cpp-bin
    Generate(super::bench_generate::BenchGenerateArgs),
    /// Latency of an ONNX version run in process by tract at batch 1 and 32; with
    /// --baseline-python, onnxruntime on the same graph, inputs and thread count, and the ratio.
    ///
    /// Example: lathe bench onnx --model mnist-keras --baseline-python .venv/bin/python
    Onnx(super::bench_onnx::BenchOnnxArgs),
    /// What monitoring costs serving: drift monitoring off and on, then the request log at 10 %
    /// and 100 % sampling, side by side.
    ///
    /// Example: lathe bench monitoring --model mnist
    Monitoring(super::bench_monitoring::BenchMonitoringArgs),
}

/// Arguments of `bench train`.
#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    /// Model spec.
    #[arg(long, env = "LATHE_SPEC")]
    pub spec: PathBuf,
    /// Training data.
    #[arg(long, env = "LATHE_DATA")]
    pub data: PathBuf,
    /// Number of timed fits; the median is reported.
    #[arg(long, env = "LATHE_BENCH_RUNS", default_value_t = 3)]
    pub runs: usize,
    /// Threads to split each batch over (0: automatic, as in `train`).
    #[arg(long, env = "LATHE_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Target fit wall time in seconds to compare against.
    #[arg(long, env = "LATHE_BENCH_TARGET", default_value_t = 6.0)]
    pub target_seconds: f64,
}

pub fn run(cli: &Cli, cmd: &BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Train(args) => train(cli, args),
        BenchCommand::Serve(args) => super::bench_serve::run(cli, args),
        BenchCommand::Embed(args) => super::bench_embed::run(cli, args),
        BenchCommand::Generate(args) => super::bench_generate::run(cli, args),
        BenchCommand::Onnx(args) => super::bench_onnx::run(cli, args),
        BenchCommand::Monitoring(args) => super::bench_monitoring::run(cli, args),
    }
}

fn train(cli: &Cli, args: &BenchTrainArgs) -> Result<()> {
    let spec = Spec::from_file(&args.spec).map_err(|e| anyhow::anyhow!("{}: {e}", args.spec.display()))?;
    let load = Instant::now();
    let data = prepare(&spec, Dataset::load(&args.data, &LoadOptions::default())?, 0.2, spec.fit.seed)?;
    let spec = data.spec.clone();
    let load_seconds = load.elapsed().as_secs_f64();
    let samples = data.train.len() * spec.fit.epochs;
    let flops = spec.train_flops_per_sample() * samples as f64;
    let mut runs = Vec::new();
    for i in 0..args.runs.max(1) {
        let mut ignore = |_: &lathe_train::Event| {};
        let r = fit(
            &spec,
            &data,
            FitOptions {
                seed: spec.fit.seed,
                threads: if args.threads == 0 { auto_threads(&spec) } else { args.threads },
                stop: None,
                checkpoints: None,
                resume: false,
                on_event: &mut ignore,
            },
        )?;
        if !cli.json {
            eprintln!("run {}: fit {:.3}s, test accuracy {}", i + 1, r.info.fit_seconds, figure(r.test.accuracy));
        }
        runs.push((r.info.fit_seconds, r.test.accuracy, r.phases));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, accuracy, phases) = runs[runs.len() / 2].clone();
    let report = json!({
        "spec": args.spec,
        "runs": runs.iter().map(|r| r.0).collect::<Vec<_>>(),
        "median_fit_seconds": median,
        "data_load_seconds": load_seconds,
        "samples_per_second": samples as f64 / median,
        "train_gflop": flops / 1e9,
        "gflop_per_second": flops / 1e9 / median,
        "test_accuracy": accuracy,
        "phases_seconds": phases,
        "target_seconds": args.target_seconds,
        "ratio_to_target": median / args.target_seconds,
    });
    if cli.json {
        println!("{report}");
        return Ok(());
    }
    println!("spec            {}", args.spec.display());
    println!(
        "fits            {} (median {:.3}s, min {:.3}s, max {:.3}s)",
        runs.len(),
        median,
        runs[0].0,
        runs[runs.len() - 1].0
    );
    println!("data loading    {load_seconds:.2}s (excluded)");
    println!(
        "throughput      {:.0} samples/s over {} epochs x {} samples",
        samples as f64 / median,
        spec.fit.epochs,
        data.train.len()
    );
    println!("arithmetic      {:.1} GFLOP in GEMMs, {:.1} GFLOP/s", flops / 1e9, flops / 1e9 / median);
    println!("test accuracy   {}", figure(accuracy));
    println!(
        "target          {:.1}s  -> median is {:.2}x the target",
        args.target_seconds,
        median / args.target_seconds
    );
    print_phases(&phases, median);
    Ok(())
}

fn print_phases(p: &PhaseTimes, total: f64) {
    println!("where the time goes:");
    for (name, s) in [
        ("forward", p.forward),
        ("backward", p.backward),
        ("optimizer", p.optimizer),
        ("loss", p.loss),
        ("batch gather", p.gather),
        ("thread wait", p.wait),
        ("epoch end", p.epoch_end),
    ] {
        println!("  {name:<13} {s:>7.3}s  {:>5.1}%", 100.0 * s / total.max(1e-9));
    }
}

/// Runs a baseline `script` with `python`, the `job` on its stdin; returns the JSON objects it
/// prints one per line. `needs` names what the Python must have, for the error.
pub(crate) fn run_python(
    python: &std::path::Path,
    script: &str,
    job: &serde_json::Value,
    needs: &str,
) -> Result<Vec<serde_json::Value>> {
    use std::io::Write;
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("running {}: {e}", python.display()))?;
    child.stdin.take().ok_or_else(|| anyhow::anyhow!("baseline stdin"))?.write_all(job.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "the baseline ({} with {needs}) failed: {}", python.display(), out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).map_err(|e| anyhow::anyhow!("baseline output: {e}")))
        .collect()
}
