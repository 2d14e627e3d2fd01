//! `lathe train`: spec + data → fit → evaluate → publish a version.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, OnceLock};

use anyhow::Result;
use clap::Args;
use lathe_formats::spec::Task;
use lathe_formats::Spec;
use lathe_jobs::{train_version, TrainObserver, TrainRun, TrainedVersion};
use lathe_train::{CheckpointStore, Prepared};
use lathe_types::ModelRef;
use serde_json::json;

use crate::progress::Reporter;
use crate::render::print_evaluation;
use crate::Cli;

/// Train a model and publish it.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  lathe train --data table.csv --label-column price --name prices   # default network\n  \
        lathe train --data table.csv --label-column a,b --task regression --name two-targets\n  \
        lathe train --spec examples/mnist-mlp.yaml --data ../shared/data/mnist --name mnist\n  \
        lathe train --spec examples/tabular.yaml --data table.csv --label-column species --name flowers\
        \n  lathe train --spec examples/mnist-mlp.yaml --data ../shared/data/mnist --name mnist --resume   # after \
        Ctrl-C\n\nWithout --spec, the task comes from --task or the label column (text, booleans or at most 20 \
        distinct\nintegers: classification; other numbers: regression) and a default network is trained. The spec \
        format\nand the default networks are documented in docs/spec.md. A checkpoint is written at every epoch \
        end;\nCtrl-C stops at the next batch boundary and publishes nothing."
)]
pub struct TrainArgs {
    /// Model spec (YAML, or JSON for .json files); see docs/spec.md. Without it, the default
    /// network for the data and task is trained.
    #[arg(long, env = "LATHE_SPEC")]
    pub spec: Option<PathBuf>,
    /// Training data: a folder of MNIST-style IDX files, or a CSV file with a header.
    #[arg(long, env = "LATHE_DATA")]
    pub data: PathBuf,
    /// Model name; the new version is published under it.
    #[arg(long, env = "LATHE_NAME")]
    pub name: String,
    #[command(flatten)]
    pub common: CommonTrainArgs,
}

/// Flags shared by `train` and `quickstart`.
#[derive(Args, Debug, Clone)]
pub struct CommonTrainArgs {
    /// Seed for initialisation, shuffling and dropout; overrides fit.seed of the spec.
    #[arg(long, env = "LATHE_SEED")]
    pub seed: Option<u64>,
    /// Continue an interrupted run of the same spec, data and seed from its last checkpoint.
    #[arg(long, env = "LATHE_RESUME")]
    pub resume: bool,
    /// CSV column holding the class label, or the regression targets (`a,b`); default: the
    /// spec's `targets`, else `label`, else the last column.
    #[arg(long, env = "LATHE_LABEL_COLUMN", value_delimiter = ',')]
    pub label_column: Vec<String>,
    /// `classification` or `regression`, over the spec's `task`; default: decided from the
    /// label column.
    #[arg(long, env = "LATHE_TASK", value_parser = parse_task)]
    pub task: Option<Task>,
    /// Threads to split each batch over (0: all cores for large models, one for small ones).
    /// Results are reproducible for a given seed and thread count.
    #[arg(long, env = "LATHE_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Fraction of a CSV held out as the test split (IDX folders bring their own t10k files).
    #[arg(long, env = "LATHE_TEST_FRACTION", default_value_t = 0.2)]
    pub test_fraction: f64,
}

fn parse_task(text: &str) -> Result<Task, String> {
    Task::parse(text).ok_or_else(|| format!("expected classification or regression, got {text:?}"))
}

pub fn run(cli: &Cli, args: &TrainArgs) -> Result<()> {
    let spec = match &args.spec {
        Some(path) => Some(Spec::from_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?),
        None => None,
    };
    train_and_publish(cli, spec, &args.data, &args.name, &args.common)
}

/// The process's stop flag, set by Ctrl-C once [`arm_stop_flag`] ran.
pub fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false))).clone()
}

/// From now on the first Ctrl-C sets the stop flag (training stops at the next batch
/// boundary) and a second one quits; before, Ctrl-C ends the process at once (as while data
/// loads).
pub fn arm_stop_flag() {
    static ARMED: Once = Once::new();
    ARMED.call_once(|| {
        let flag = stop_flag();
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nstopping at the next batch boundary (Ctrl-C again to quit at once)");
        });
    });
}

/// Loads data, trains, publishes, prints; shared by `train` and `quickstart`.
pub fn train_and_publish(
    cli: &Cli,
    spec: Option<Spec>,
    data_path: &Path,
    name: &str,
    common: &CommonTrainArgs,
) -> Result<()> {
    ModelRef::validate_name(name)?;
    if !(0.0..1.0).contains(&common.test_fraction) {
        anyhow::bail!("--test-fraction: expected a number in [0, 1), got {}", common.test_fraction);
    }
    let repo = cli.repository()?;
    let stop = stop_flag();
    let source = data_path.display().to_string();
    let run = TrainRun {
        repo: &repo,
        name,
        spec,
        task: common.task,
        seed: common.seed,
        data: data_path,
        source: &source,
        label_columns: common.label_column.clone(),
        test_fraction: common.test_fraction,
        threads: common.threads,
        checkpoints: CheckpointStore::new(repo.checkpoint_dir(name)),
        resume: common.resume,
        stop: Some(stop.as_ref()),
        job: None,
    };
    let mut observer = CliObserver { json: cli.json, reporter: Reporter::new(cli.json) };
    let trained = train_version(run, &mut observer)?;
    if let Some(e) = &trained.checkpoint_left {
        anyhow::bail!("removing the checkpoint {}: {e}", repo.checkpoint_dir(name).display());
    }
    print_published(cli, name, &trained);
    Ok(())
}

/// Prints the data summary and the fit's progress (a bar, or JSON lines).
struct CliObserver {
    json: bool,
    reporter: Reporter,
}

impl TrainObserver for CliObserver {
    fn prepared(&mut self, prepared: &Prepared, default_spec: Option<&str>, load_seconds: f64) {
        arm_stop_flag();
        let outputs = match prepared.task {
            Task::Classification => format!("{} classes", prepared.class_names.len()),
            Task::Regression => format!("{} target(s)", prepared.targets.len()),
        };
        if self.json {
            let event = json!({
                "event": "prepared",
                "task": prepared.task,
                "task_reason": prepared.task_reason,
                "default_spec": default_spec,
                "spec": prepared.spec.to_json(),
                "train_samples": prepared.train.len(),
                "validation_samples": prepared.validation.len(),
                "test_samples": prepared.test.len(),
            });
            println!("{event}");
            return;
        }
        let why = prepared.task_reason.as_ref().map_or_else(String::new, |r| format!(" ({r})"));
        eprintln!("task: {}{why}", prepared.task);
        if let Some(name) = default_spec {
            eprintln!("spec: {name} (docs/spec.md), input {:?}", prepared.spec.input.shape);
        }
        eprintln!(
            "data: {} training, {} validation, {} test samples, {outputs} (loaded in {load_seconds:.2}s)",
            prepared.train.len(),
            prepared.validation.len(),
            prepared.test.len(),
        );
    }

    fn event(&mut self, event: &lathe_train::Event) {
        self.reporter.event(event);
    }
}

/// Reports the published version and its test evaluation.
fn print_published(cli: &Cli, name: &str, trained: &TrainedVersion) {
    let (published, result) = (&trained.published, &trained.result);
    let samples_per_sec = (trained.train_samples * result.info.epochs_run) as f64 / result.info.fit_seconds.max(1e-9);
    if cli.json {
        println!(
            "{}",
            json!({
                "event": "published",
                "name": name,
                "version": published.version,
                "path": published.path,
                "fit_seconds": result.info.fit_seconds,
                "samples_per_second": samples_per_sec,
                "metrics": result.test,
            })
        );
    } else {
        println!(
            "published {name}:{} at {} (fit {:.2}s, {:.0} samples/s)",
            published.version,
            published.path.display(),
            result.info.fit_seconds,
            samples_per_sec
        );
        println!();
        println!("test evaluation:");
        print_evaluation(&result.test);
    }
}
