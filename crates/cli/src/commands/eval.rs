//! `lathe eval`: score a published version on labelled data.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lathe_sequential::SequentialModel;
use lathe_train::data::{Dataset, LoadOptions};
use lathe_train::{evaluate_servable, evaluate_version, label_columns_for};
use lathe_types::ModelRef;

use crate::render::print_evaluation;
use crate::Cli;

/// Evaluate a version: loss, accuracy, per-class precision/recall/F1 and confusion matrix for
/// classifiers (ROC AUC and log loss for two classes); MAE, RMSE and R² for regressors.
///
/// An IDX folder is evaluated on its test files (t10k-*), a CSV on all its rows. Imported ONNX
/// classifiers are scored the same way: raw samples in, the `[-1, classes]` scores output.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  lathe eval mnist --data ../shared/data/mnist          # latest version\n  lathe eval \
        flowers:2 --data holdout.csv --label-column species --json"
)]
pub struct EvalArgs {
    /// The version: NAME (latest) or NAME:VERSION.
    pub model: ModelRef,
    /// Labelled data: a folder of IDX files or a CSV file.
    #[arg(long, env = "LATHE_DATA")]
    pub data: PathBuf,
    /// CSV column holding the class label, or a regressor's target columns (`a,b`); default:
    /// the columns the model was trained on.
    #[arg(long, env = "LATHE_LABEL_COLUMN", value_delimiter = ',')]
    pub label_column: Vec<String>,
}

pub fn run(cli: &Cli, args: &EvalArgs) -> Result<()> {
    let info = cli.synced(Some(&args.model.name))?.resolve(&args.model)?;
    let loading = || format!("loading {}:{}", info.name, info.version);
    let evaluation = if info.manifest.kind() == lathe_onnx::ONNX_KIND {
        let spec = info.manifest.onnx().expect("an ONNX manifest");
        let model = lathe_onnx::OnnxModel::load(&info.path.join(lathe_formats::ONNX_FILE))
            .with_context(loading)?
            .configured(spec);
        let data = Dataset::load(&args.data, &LoadOptions { label_columns: args.label_column.clone() })?;
        evaluate_servable(&model, data).with_context(|| args.data.display().to_string())?
    } else {
        let model = SequentialModel::load(&info.path).with_context(loading)?;
        let label_columns = label_columns_for(&model, &args.label_column);
        let data = Dataset::load(&args.data, &LoadOptions { label_columns })?;
        evaluate_version(&model, data).with_context(|| args.data.display().to_string())?
    };
    if cli.json {
        let out = serde_json::json!({ "name": info.name, "version": info.version, "metrics": evaluation });
        println!("{out}");
    } else {
        println!("{}:{} on {}", info.name, info.version, args.data.display());
        print_evaluation(&evaluation);
    }
    Ok(())
}
