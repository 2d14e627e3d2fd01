//! `lathe predict`: classes and probabilities from a published version.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lathe_formats::Cell;
use lathe_sequential::SequentialModel;
use lathe_train::class_probabilities;
use lathe_train::data::{read_cells, read_inputs};
use lathe_types::ModelRef;
use serde_json::json;

use crate::Cli;

/// Predict from a file: JSON instances ({"instances": [...]}), CSV rows with the model's
/// feature columns, or a PNG/JPEG image (converted to the model's input: grayscale or RGB,
/// resized, then the version's own preprocessing).
///
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  lathe predict mnist --input digit.png\n  lathe predict mnist:1 --input instances.json \
        --json     # {\"instances\": [[...784 pixels...]]}\n  lathe predict flowers --input rows.csv                 \
            # columns named like the training features"
)]
pub struct PredictArgs {
    /// The version: NAME (latest) or NAME:VERSION.
    pub model: ModelRef,
    /// Input file: .json, .csv, .png, .jpg or .jpeg.
    #[arg(long, env = "LATHE_INPUT")]
    pub input: PathBuf,
    /// Show the K most probable classes per sample.
    #[arg(long, env = "LATHE_TOP", default_value_t = 3)]
    pub top: usize,
}

pub fn run(cli: &Cli, args: &PredictArgs) -> Result<()> {
    let info = cli.synced(Some(&args.model.name))?.resolve(&args.model)?;
    let model = SequentialModel::load(&info.path).with_context(|| format!("loading {}:{}", info.name, info.version))?;
    let (raw, n) = if model.columns().is_empty() {
        read_inputs(&args.input, &model.spec.input.shape, &model.section().feature_names)?
    } else {
        let names: Vec<String> = model.columns().iter().map(|c| c.name().to_string()).collect();
        let rows = read_cells(&args.input, &names)?;
        let x = model
            .encode_cells(rows.len(), |r, c| Cell::Text(&rows[r][c]))
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?;
        (x, rows.len())
    };
    let out = model.predict(&raw, n);
    if !model.targets().is_empty() {
        print_values(cli, &info, &model, &out);
        return Ok(());
    }
    let classes = model.class_names();
    let mut predictions = Vec::with_capacity(n);
    for row in out.chunks_exact(model.output_len()) {
        let probs = class_probabilities(row);
        let mut ranked: Vec<usize> = (0..probs.len()).collect();
        ranked.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        predictions.push((ranked, probs));
    }
    if cli.json {
        let list: Vec<_> = predictions
            .iter()
            .map(|(ranked, probs)| {
                let map: serde_json::Map<String, serde_json::Value> =
                    classes.iter().zip(probs).map(|(c, p)| (c.clone(), json!(p))).collect();
                json!({ "class": classes[ranked[0]], "index": ranked[0], "probabilities": map })
            })
            .collect();
        println!("{}", json!({ "name": info.name, "version": info.version, "predictions": list }));
        return Ok(());
    }
    for (i, (ranked, probs)) in predictions.iter().enumerate() {
        let top: Vec<String> =
            ranked.iter().take(args.top.max(1)).map(|&c| format!("{} {:.4}", classes[c], probs[c])).collect();
        println!("{i:>4}  class {:<10} ({})", classes[ranked[0]], top.join(", "));
    }
    Ok(())
}

/// Prints a regressor's predictions: per row, every target's value in its own units.
fn print_values(cli: &Cli, info: &lathe_registry::VersionInfo, model: &SequentialModel, out: &[f32]) {
    let targets = model.targets();
    let rows = out.chunks_exact(targets.len());
    if cli.json {
        let list: Vec<_> = rows
            .map(|row| {
                let map: serde_json::Map<String, serde_json::Value> =
                    targets.iter().zip(row).map(|(t, v)| (t.name.clone(), json!(v))).collect();
                serde_json::Value::Object(map)
            })
            .collect();
        println!("{}", json!({ "name": info.name, "version": info.version, "predictions": list }));
        return;
    }
    for (i, row) in rows.enumerate() {
        let values: Vec<String> = targets.iter().zip(row).map(|(t, v)| format!("{} {v}", t.name)).collect();
        println!("{i:>4}  {}", values.join(", "));
    }
}
