//! `lathe bench onnx`: an ONNX version run in process by tract at batch 1 and 32 (median
//! latency of a run), and with `--baseline-python` onnxruntime on the same graph, inputs and
//! thread count in the same run, with the ratio.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use lathe_engine::Servable;
use lathe_types::{DType, ModelRef, Tensor, TensorData};
use serde_json::{json, Value};

use crate::Cli;

/// Arguments of `bench onnx`.
#[derive(Args, Debug)]
pub struct BenchOnnxArgs {
    /// ONNX model (NAME or NAME:VERSION) in the repository.
    #[arg(long, env = "LATHE_BENCH_MODEL")]
    pub model: ModelRef,
    /// Batch sizes (the first dimension; other symbolic dimensions are 1).
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub batches: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, env = "LATHE_BENCH_SECONDS", default_value_t = 2.0)]
    pub seconds: f64,
    /// A Python with numpy and onnxruntime: runs the same cases with one intra-op thread (tract
    /// runs on one) and prints the ratio.
    #[arg(long, env = "LATHE_BENCH_BASELINE_PYTHON")]
    pub baseline_python: Option<std::path::PathBuf>,
}

/// onnxruntime's side of the comparison.
const BASELINE_SCRIPT: &str = include_str!("bench_onnx_baseline.py");

pub fn run(cli: &Cli, args: &BenchOnnxArgs) -> Result<()> {
    let info = cli.synced(Some(&args.model.name))?.resolve(&args.model)?;
    let spec = info.manifest.onnx().with_context(|| format!("{} is not an ONNX version", info.name))?;
    let path = info.path.join(lathe_formats::ONNX_FILE);
    let model = lathe_onnx::OnnxModel::load(&path)?.configured(spec);
    let mut cases = Vec::new();
    for &batch in &args.batches {
        let inputs = inputs_for(&model, batch)?;
        let p50 = measure(args.seconds, || model.infer(&inputs).map(drop).map_err(|e| anyhow::anyhow!("{e}")))?;
        let shapes: Vec<Value> =
            inputs.iter().map(|t| json!({"name": t.name, "dtype": t.dtype().name(), "shape": t.shape})).collect();
        cases.push(json!({"batch": batch, "lathe_p50_us": p50, "inputs": shapes}));
    }
    if let Some(python) = &args.baseline_python {
        let baseline = run_baseline(python, &path, args.seconds, &cases)?;
        for (case, b) in cases.iter_mut().zip(baseline) {
            let ort = b["p50_us"].as_f64().unwrap_or(f64::NAN);
            case["onnxruntime_p50_us"] = json!(ort);
            case["onnxruntime"] = b["onnxruntime"].clone();
            case["speedup"] = json!(ort / case["lathe_p50_us"].as_f64().unwrap_or(f64::NAN));
        }
    }
    print_cases(cli, &info.name, &cases);
    Ok(())
}

fn print_cases(cli: &Cli, name: &str, cases: &[Value]) {
    if cli.json {
        println!("{}", json!({ "model": name, "threads": 1, "results": cases }));
        return;
    }
    for c in cases {
        let mut line =
            format!("{name} batch {:>3}: tract {:>9.1} µs/run", c["batch"], c["lathe_p50_us"].as_f64().unwrap_or(0.0));
        if let Some(ort) = c["onnxruntime_p50_us"].as_f64() {
            line += &format!(
                " | onnxruntime {} {:>9.1} µs/run | onnxruntime/tract {:.2}",
                c["onnxruntime"].as_str().unwrap_or(""),
                ort,
                c["speedup"].as_f64().unwrap_or(f64::NAN)
            );
        }
        println!("{line}");
    }
}

/// Inputs of `batch` rows: floats `(i mod 255) / 255`, integers 0, booleans false.
fn inputs_for(model: &lathe_onnx::OnnxModel, batch: usize) -> Result<Vec<Tensor>> {
    model
        .signature()
        .inputs
        .iter()
        .map(|s| {
            let mut shape: Vec<usize> = s.shape.iter().map(|&d| d.max(1) as usize).collect();
            if s.shape.first() == Some(&-1) {
                shape[0] = batch;
            }
            let n: usize = shape.iter().product();
            let floats = (0..n).map(|i| (i % 255) as f32 / 255.0);
            let data = match s.datatype {
                DType::F32 => TensorData::F32(floats.collect()),
                DType::F64 => TensorData::F64(floats.map(f64::from).collect()),
                DType::F16 => TensorData::F16(floats.map(|x| half::f16::from_f32(x).to_bits()).collect()),
                DType::I64 => TensorData::I64(vec![0; n]),
                DType::I32 => TensorData::I32(vec![0; n]),
                DType::I8 => TensorData::I8(vec![0; n]),
                DType::U8 => TensorData::U8(vec![0; n]),
                DType::Bool => TensorData::Bool(vec![false; n]),
                other => anyhow::bail!("bench onnx does not fill {other} inputs"),
            };
            Ok(Tensor { name: s.name.clone(), shape, data })
        })
        .collect()
}

/// Median microseconds of a run over `seconds`, after 20 warm-up runs.
fn measure(seconds: f64, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..20 {
        run()?;
    }
    let mut times = Vec::new();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        let t = Instant::now();
        run()?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Runs the onnxruntime baseline on the same cases; one JSON object per case.
fn run_baseline(
    python: &std::path::Path,
    model: &std::path::Path,
    seconds: f64,
    cases: &[Value],
) -> Result<Vec<Value>> {
    let job = json!({ "model": model, "threads": 1, "seconds": seconds, "cases": cases });
    super::bench::run_python(python, BASELINE_SCRIPT, &job, "onnxruntime")
}
