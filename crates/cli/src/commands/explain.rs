//! `lathe explain`: attributions of a published version's prediction, computed locally with
//! the same code as the server's `:explain`; a PNG overlay for images, ranked features for
//! tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use lathe_engine::Servable;
use lathe_explain::{Explanation, Method, Options, Target};
use lathe_train::data::{read_cells, read_inputs};
use lathe_types::{DType, ModelRef, Tensor, TensorData};
use serde_json::json;

use crate::Cli;

/// Explain predictions of a version from a file (an image, CSV rows or JSON instances, as for
/// `lathe predict`): integrated gradients on Lathe's own networks, occlusion on imported
/// graphs. Images get a PNG overlay (red: pixels that raise the explained class, blue: that
/// lower it); tables list their features by attribution.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  lathe explain mnist --input digit.png --output digit-explained.png\n  \
    lathe explain credit --input applicants.csv --json\n  lathe explain mnist --input digit.png --method occlusion \
    --target 3")]
pub struct ExplainArgs {
    /// The version: NAME (latest) or NAME:VERSION.
    pub model: ModelRef,
    /// Input file: .png, .jpg, .jpeg, .csv or .json.
    #[arg(long, env = "LATHE_INPUT")]
    pub input: PathBuf,
    /// Where the overlay of an image goes (`-{row}` is added before the extension for several
    /// rows).
    #[arg(long, env = "LATHE_EXPLAIN_OUTPUT", default_value = "explanation.png")]
    pub output: PathBuf,
    /// integrated_gradients, saliency or occlusion (default: integrated gradients when the
    /// engine has a backward pass, else occlusion).
    #[arg(long, env = "LATHE_EXPLAIN_METHOD")]
    pub method: Option<String>,
    /// Integration steps of integrated gradients (1 to 256).
    #[arg(long, env = "LATHE_EXPLAIN_STEPS", default_value_t = lathe_explain::DEFAULT_STEPS)]
    pub steps: usize,
    /// The class (name or index) to explain; default: the predicted one.
    #[arg(long, env = "LATHE_EXPLAIN_TARGET")]
    pub target: Option<String>,
}

pub fn run(cli: &Cli, args: &ExplainArgs) -> Result<()> {
    let info = cli.synced(Some(&args.model.name))?.resolve(&args.model)?;
    let loader = crate::loaders::KindLoader { embedding_backend: lathe_embedding::Backend::Auto };
    let servable = lathe_engine::Loader::load(&loader, &info.path, &info.manifest)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("loading {}:{}", info.name, info.version))?;
    let inputs = read(&servable, &info.manifest, &args.input)?;
    let options = Options {
        method: args
            .method
            .as_deref()
            .map(str::parse::<Method>)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--method: {}", e.message))?,
        steps: args.steps,
        target: match &args.target {
            None => Target::Predicted,
            Some(t) if servable.class_names().contains(t) => Target::Name(t.clone()),
            Some(t) => t.parse().map(Target::Unit).unwrap_or_else(|_| Target::Name(t.clone())),
        },
        ..Options::default()
    };
    let shape = inputs[0].shape[1..].to_vec();
    let pixels = inputs[0].data.to_f32();
    let explanations = lathe_explain::explain(servable.as_ref(), inputs, info.manifest.feature_names(), &options)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let mut report = Vec::new();
    for (i, e) in explanations.iter().enumerate() {
        let overlay = match (&pixels, super::explain_overlay::grid(&shape)) {
            (Some(p), Some(grid)) => {
                let row = &p[i * grid.len()..(i + 1) * grid.len()];
                let path = numbered(&args.output, i, explanations.len());
                super::explain_overlay::write(&path, grid, row, &values(e))?;
                Some(path)
            }
            _ => None,
        };
        report.push((e, overlay));
    }
    print(cli, &info, &report);
    Ok(())
}

fn values(e: &Explanation) -> Vec<f32> {
    e.attributions.iter().flat_map(|t| t.data.to_f32().unwrap_or_default()).collect()
}

fn numbered(path: &Path, i: usize, n: usize) -> PathBuf {
    if n == 1 {
        return path.to_path_buf();
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("explanation");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("png");
    path.with_file_name(format!("{stem}-{i}.{ext}"))
}

fn print(cli: &Cli, info: &lathe_registry::VersionInfo, report: &[(&Explanation, Option<PathBuf>)]) {
    if cli.json {
        let rows: Vec<_> = report
            .iter()
            .map(|(e, overlay)| {
                let features: Vec<_> =
                    e.features.iter().map(|(n, a)| json!({"feature": n, "attribution": a})).collect();
                json!({
                    "method": e.method.name(), "output": e.output, "unit": e.unit, "class": e.class,
                    "score": e.score, "baseline_score": e.baseline_score, "convergence_delta": e.convergence_delta,
                    "features": features, "overlay": overlay,
                })
            })
            .collect();
        println!("{}", json!({ "name": info.name, "version": info.version, "explanations": rows }));
        return;
    }
    for (i, (e, overlay)) in report.iter().enumerate() {
        let class = e.class.as_deref().map(|c| format!(" class {c}")).unwrap_or_default();
        println!("{i:>4}  {}{class} (score {:.4}) by {}", e.output, e.score, e.method.name());
        for (name, a) in e.features.iter().take(10) {
            println!("        {name:<24} {a:+.4}");
        }
        if let Some(path) = overlay {
            println!("        overlay written to {}", path.display());
        }
    }
}

/// The file's rows as signature-shaped inputs.
fn read(servable: &Arc<dyn Servable>, manifest: &lathe_formats::Manifest, path: &Path) -> Result<Vec<Tensor>> {
    let sig = servable.signature();
    if let Some(columns) = manifest.sequential().map(|s| &s.columns).filter(|c| !c.is_empty()) {
        let names: Vec<String> = columns.iter().map(|c| c.name().to_string()).collect();
        let rows = read_cells(path, &names)?;
        return sig
            .inputs
            .iter()
            .enumerate()
            .map(|(c, s)| {
                let cells = rows.iter().map(|r| r[c].as_str());
                let data = match s.datatype {
                    DType::Bytes => TensorData::Bytes(cells.map(|t| t.as_bytes().to_vec()).collect()),
                    _ => TensorData::F32(
                        cells
                            .map(|t| {
                                t.trim()
                                    .parse::<f32>()
                                    .with_context(|| format!("column {:?}: {t:?} is not a number", s.name))
                            })
                            .collect::<Result<_>>()?,
                    ),
                };
                Ok(Tensor { name: s.name.clone(), shape: vec![rows.len()], data })
            })
            .collect();
    }
    let [input] = sig.inputs.as_slice() else {
        anyhow::bail!("explain reads files for models with one input; this one has {}", sig.inputs.len());
    };
    let shape: Vec<usize> = input
        .shape
        .iter()
        .skip(1)
        .map(|&d| {
            usize::try_from(d).map_err(|_| anyhow::anyhow!("input {:?} has a dimension of unknown size", input.name))
        })
        .collect::<Result<_>>()?;
    let (x, n) = read_inputs(path, &shape, manifest.feature_names())?;
    let full: Vec<usize> = std::iter::once(n).chain(shape.iter().copied()).collect();
    Ok(vec![Tensor { name: input.name.clone(), shape: full, data: TensorData::F32(x) }])
}
