//! `lathe eval`: score a published version on labelled data.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lathe_engine_native::NativeModel;
use lathe_formats::spec::Activation;
use lathe_registry::Repository;
use lathe_train::data::{encode_labels, Dataset, LoadOptions};
use lathe_train::metrics::evaluate;
use lathe_train::Loss;
use lathe_types::ModelRef;

use crate::render::print_evaluation;
use crate::Cli;

/// Evaluate a version: loss, accuracy, per-class precision/recall/F1, confusion matrix.
///
/// An IDX folder is evaluated on its test files (t10k-*), a CSV on all its rows.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  lathe eval mnist --data ../shared/data/mnist          # latest version\n  lathe eval flowers:2 --data holdout.csv --label-column species --json"
)]
pub struct EvalArgs {
    /// The version: NAME (latest) or NAME:VERSION.
    pub model: ModelRef,
    /// Labelled data: a folder of IDX files or a CSV file.
    #[arg(long, env = "LATHE_DATA")]
    pub data: PathBuf,
    /// CSV column holding the class label (default: `label`, else the last column).
    #[arg(long, env = "LATHE_LABEL_COLUMN")]
    pub label_column: Option<String>,
}

pub fn run(cli: &Cli, args: &EvalArgs) -> Result<()> {
    let info = Repository::new(&cli.repo).resolve(&args.model)?;
    let model = NativeModel::load(&info.path).with_context(|| format!("loading {}:{}", info.name, info.version))?;
    let data = Dataset::load(&args.data, &LoadOptions { label_column: args.label_column.clone() })?;
    if data.features() != model.input_len() {
        anyhow::bail!(
            "{}: samples have {} values ({:?}), the model expects {}",
            args.data.display(),
            data.features(),
            data.sample_shape,
            model.input_len()
        );
    }
    let features = data.features();
    let split = data.test.unwrap_or(data.train);
    let labels = encode_labels(&split.labels, &model.manifest.class_names)?;
    let mut x = split.x;
    model.preprocessing().apply(&mut x, features);
    let loss = Loss::new(model.spec.compile.loss, model.network().final_activation().unwrap_or(Activation::Linear));
    let evaluation = evaluate(model.network(), &x, &labels, &loss, &model.manifest.class_names);
    if cli.json {
        let out = serde_json::json!({ "name": info.name, "version": info.version, "metrics": evaluation });
        println!("{out}");
    } else {
        println!("{}:{} on {}", info.name, info.version, args.data.display());
        print_evaluation(&evaluation);
    }
    Ok(())
}
