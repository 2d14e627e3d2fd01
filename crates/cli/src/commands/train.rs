//! `lathe train`: spec + data → fit → evaluate → publish a version.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, OnceLock};

use anyhow::Result;
use clap::Args;
use lathe_formats::Spec;
use lathe_jobs::{train_version, TrainObserver, TrainRun, TrainedVersion};
use lathe_registry::Repository;
use lathe_train::{CheckpointStore, Prepared};
use lathe_types::ModelRef;
use serde_json::json;

use crate::progress::Reporter;
use crate::render::print_evaluation;
use crate::Cli;

/// Train a model and publish it.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  lathe train --spec examples/mnist-mlp.yaml --data ../shared/data/mnist --name mnist\n  \
        lathe train --spec examples/tabular.yaml --data table.csv --label-column species --name flowers\
        \n  lathe train --spec examples/mnist-mlp.yaml --data ../shared/data/mnist --name mnist --resume   # after \
        Ctrl-C\n\nThe spec format is documented in docs/spec.md. A checkpoint is written at every epoch end;\
        \nCtrl-C stops at the next batch boundary and publishes nothing."
)]
pub struct TrainArgs {
    /// Model spec (YAML, or JSON for .json files); see docs/spec.md.
    #[arg(long, env = "LATHE_SPEC")]
    pub spec: PathBuf,
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
    /// CSV column holding the class label (default: `label`, else the last column).
    #[arg(long, env = "LATHE_LABEL_COLUMN")]
    pub label_column: Option<String>,
    /// Threads to split each batch over (0: all cores for large models, one for small ones).
    /// Results are reproducible for a given seed and thread count.
    #[arg(long, env = "LATHE_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Fraction of a CSV held out as the test split (IDX folders bring their own t10k files).
    #[arg(long, env = "LATHE_TEST_FRACTION", default_value_t = 0.2)]
    pub test_fraction: f64,
}

pub fn run(cli: &Cli, args: &TrainArgs) -> Result<()> {
    let spec = Spec::from_file(&args.spec).map_err(|e| anyhow::anyhow!("{}: {e}", args.spec.display()))?;
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
    mut spec: Spec,
    data_path: &Path,
    name: &str,
    common: &CommonTrainArgs,
) -> Result<()> {
    ModelRef::validate_name(name)?;
    if !(0.0..1.0).contains(&common.test_fraction) {
        anyhow::bail!("--test-fraction: expected a number in [0, 1), got {}", common.test_fraction);
    }
    if let Some(seed) = common.seed {
        spec.fit.seed = seed;
    }
    let repo = Repository::new(&cli.repo);
    let stop = stop_flag();
    let source = data_path.display().to_string();
    let run = TrainRun {
        repo: &repo,
        name,
        spec,
        data: data_path,
        source: &source,
        label_column: common.label_column.clone(),
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
    fn prepared(&mut self, prepared: &Prepared, load_seconds: f64) {
        arm_stop_flag();
        if !self.json {
            eprintln!(
                "data: {} training, {} validation, {} test samples, {} classes (loaded in {load_seconds:.2}s)",
                prepared.train.len(),
                prepared.validation.len(),
                prepared.test.len(),
                prepared.class_names.len()
            );
        }
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
