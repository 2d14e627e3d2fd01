//! `lathe models list|show`.

use anyhow::Result;
use clap::Subcommand;
use lathe_formats::{CausalLmSpec, ColumnEncoding, EmbeddingSpec, ModelSection, SequentialSection};
use lathe_registry::Repository;
use lathe_types::ModelRef;

use crate::render::{figure, print_evaluation};
use crate::Cli;

/// Inspect the repository.
#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// List models with their versions and the latest version's accuracy.
    List,
    /// Show one version: spec summary, signature, data lineage, history and metrics.
    Show {
        /// NAME (latest) or NAME:VERSION.
        model: ModelRef,
    },
    /// Point a label (stable, canary, default, …) at a version; servers apply it when that
    /// version is ready. `default` overrides the default route. `--remove` deletes it.
    Label {
        /// Model name.
        name: String,
        /// Label: letters, digits and underscores.
        label: String,
        /// Version the label names (omit with --remove).
        version: Option<u64>,
        /// Remove the label instead.
        #[arg(long)]
        remove: bool,
    },
}

pub fn run(cli: &Cli, cmd: &ModelsCommand) -> Result<()> {
    if cli.server.is_some() {
        return remote(cli, cmd);
    }
    let repo = match cmd {
        ModelsCommand::List => cli.synced(None)?,
        ModelsCommand::Show { model } => cli.synced(Some(&model.name))?,
        ModelsCommand::Label { .. } => cli.repository()?,
    };
    match cmd {
        ModelsCommand::List => list(cli, &repo),
        ModelsCommand::Show { model } => show(cli, &repo, model),
        ModelsCommand::Label { .. } if repo.remote().is_some() => anyhow::bail!(
            "labels of an s3:// repository are kept by its servers: give --server URL (a `lathe serve` \
             with --metadata postgres://…, so that every replica agrees)"
        ),
        ModelsCommand::Label { name, label, version, remove } => {
            match (version, remove) {
                (_, true) => {
                    let existed = repo.remove_label(name, label)?;
                    if !cli.json {
                        println!(
                            "{}",
                            if existed {
                                format!("removed label {label} from {name}")
                            } else {
                                format!("{name} had no label {label}")
                            }
                        );
                    }
                }
                (Some(v), false) => {
                    repo.set_label(name, label, *v)?;
                    if !cli.json {
                        println!("{name}:{label} -> version {v}");
                    }
                }
                (None, false) => anyhow::bail!("give the version the label names, or --remove"),
            }
            if cli.json {
                println!("{}", serde_json::json!({ "name": name, "labels": repo.labels(name)? }));
            }
            Ok(())
        }
    }
}

/// `models list|label` against a server.
fn remote(cli: &Cli, cmd: &ModelsCommand) -> Result<()> {
    let r = cli.remote()?;
    let out = match cmd {
        ModelsCommand::List => r.get("/v1/admin/models")?,
        ModelsCommand::Label { name, label, version, remove } => match (version, remove) {
            (_, true) => r.delete(&format!("/v1/models/{name}/labels/{label}"))?,
            (Some(v), false) => {
                r.put_json(&format!("/v1/models/{name}/labels/{label}"), &serde_json::json!({ "version": v }))?
            }
            (None, false) => anyhow::bail!("give the version the label names, or --remove"),
        },
        ModelsCommand::Show { .. } => anyhow::bail!("models show reads the local repository; drop --server"),
    };
    if cli.json {
        println!("{out}");
        return Ok(());
    }
    if let ModelsCommand::List = cmd {
        let h = ("name", "version", "state", "accuracy", "macro_f1", "r2");
        println!("{:<20} {:>7} {:<12} {:>9} {:>9} {:>9}  labels", h.0, h.1, h.2, h.3, h.4, h.5);
        for m in out["models"].as_array().into_iter().flatten() {
            for v in m["versions"].as_array().into_iter().flatten() {
                let n = v["version"].as_u64().unwrap_or(0);
                let labels: Vec<&str> = m["labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, x)| x.as_u64() == Some(n))
                    .map(|(k, _)| k.as_str())
                    .collect();
                println!(
                    "{:<20} {:>7} {:<12} {:>9} {:>9} {:>9}  {}",
                    m["name"].as_str().unwrap_or(""),
                    n,
                    v["state"].as_str().unwrap_or(""),
                    figure(v["accuracy"].as_f64()),
                    figure(v["macro_f1"].as_f64()),
                    figure(v["r2"].as_f64()),
                    labels.join(",")
                );
            }
            if !m["traffic"].is_null() {
                println!("{:<20} traffic {}", "", m["traffic"]);
            }
        }
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

fn list(cli: &Cli, repo: &Repository) -> Result<()> {
    let mut rows = Vec::new();
    for name in repo.models() {
        let versions = repo.versions(&name)?;
        let latest = repo.resolve(&ModelRef { name: name.clone(), version: None })?;
        rows.push((name, versions, latest));
    }
    if cli.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(name, versions, latest)| {
                serde_json::json!({
                    "name": name,
                    "versions": versions,
                    "latest": latest.version,
                    "accuracy": latest.manifest.metrics().and_then(|m| m.accuracy),
                    "r2": latest.manifest.metrics().and_then(|m| m.r2),
                    "created_at": latest.manifest.created_at,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "models": list }));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no models in {}", repo.root().display());
        return Ok(());
    }
    println!("{:<24} {:>8} {:>7} {:>9} {:>9}  created", "name", "versions", "latest", "accuracy", "r2");
    for (name, versions, latest) in rows {
        let metrics = latest.manifest.metrics();
        println!(
            "{:<24} {:>8} {:>7} {:>9} {:>9}  {}",
            name,
            versions.len(),
            latest.version,
            figure(metrics.and_then(|m| m.accuracy)),
            figure(metrics.and_then(|m| m.r2)),
            latest.manifest.created_at
        );
    }
    Ok(())
}

fn show(cli: &Cli, repo: &Repository, model: &ModelRef) -> Result<()> {
    let info = repo.resolve(model)?;
    let m = &info.manifest;
    if cli.json {
        let mut v = serde_json::to_value(m)?;
        v["version"] = info.version.into();
        v["path"] = info.path.display().to_string().into();
        println!("{v}");
        return Ok(());
    }
    println!("{}:{}  ({})", info.name, info.version, info.path.display());
    println!("kind        {}", m.kind());
    println!("created     {}  by lathe {}", m.created_at, m.lathe_version);
    for t in &m.signature.inputs {
        println!("input       {} {} {:?}", t.name, t.datatype, t.shape);
    }
    for t in &m.signature.outputs {
        println!("output      {} {} {:?}", t.name, t.datatype, t.shape);
    }
    match &m.model {
        ModelSection::Sequential(s) => show_sequential(s),
        ModelSection::SentenceEmbedding(e) => show_embedding(&e.spec),
        ModelSection::CausalLm(c) => show_causal_lm(&c.spec),
        ModelSection::Onnx(o) => show_onnx(&o.spec),
        ModelSection::Other { .. } => println!("section     not known to this build of Lathe"),
    }
    for (file, e) in &m.files {
        println!("file        {file}  {} bytes  sha256 {}", e.bytes, e.sha256);
    }
    if let Some(metrics) = m.metrics() {
        println!();
        print_evaluation(metrics);
    }
    Ok(())
}

/// The training record of a sequential model.
fn show_sequential(m: &SequentialSection) {
    if m.targets.is_empty() {
        println!("classes     {}", m.class_names.join(", "));
    }
    for t in &m.targets {
        println!("target      {} (standardised with mean {}, std {})", t.name, t.mean, t.std);
    }
    for c in &m.columns {
        let (what, fill) = match c {
            ColumnEncoding::Numeric { fill, .. } => ("number".to_string(), fill.map(|f| f.to_string())),
            ColumnEncoding::Categorical { categories, other, fill, .. } => {
                let other = if *other { " + other" } else { "" };
                (format!("{} categories{other}", categories.len()), fill.clone())
            }
        };
        let fill = fill.map_or_else(String::new, |f| format!(", missing → {f}"));
        println!("column      {} ({what}{fill})", c.name());
    }
    println!("data        {} ({}) sha256 {}", m.data.source, m.data.format, m.data.fingerprint);
    println!(
        "            {} train / {} validation / {} test samples, seed {}",
        m.data.train_samples, m.data.validation_samples, m.data.test_samples, m.seed
    );
    println!(
        "training    {} epochs{} in {:.2}s, kept epoch {}",
        m.training.epochs_run,
        if m.training.stopped_early { " (stopped early)" } else { "" },
        m.training.fit_seconds,
        m.training.best_epoch
    );
    for r in &m.history {
        println!("  epoch {:>3}  loss {:.4}  acc {}", r.epoch, r.loss, figure(r.accuracy));
    }
}

/// What a text-generation model is.
fn show_causal_lm(c: &CausalLmSpec) {
    println!("decoder     {} ({}) from {}", c.architecture, c.format, c.source);
    println!("weights     {} parameters, {}", c.parameters, c.quantization);
    println!("context     {} tokens, vocabulary {}", c.context_length, c.vocab_size);
    println!("chat        {}", if c.chat_template { "template included" } else { "no template (raw completion only)" });
}

/// Where an ONNX graph came from and how it is served.
fn show_onnx(o: &lathe_formats::OnnxSpec) {
    let producer = if o.producer.is_empty() { "an unnamed producer" } else { o.producer.as_str() };
    println!("graph       ONNX opset {} by {producer}, from {}", o.opset, o.source);
    println!("operators   {}", o.ops.join(", "));
    println!("batching    {}", if o.batching { "requests share runs" } else { "one request per run" });
    if !o.class_names.is_empty() {
        println!("classes     {}", o.class_names.join(", "));
    }
}

/// What a sentence-embedding model computes.
fn show_embedding(e: &EmbeddingSpec) {
    println!("encoder     {} from {}", e.architecture, e.source);
    println!(
        "embedding   {} dims, {} pooling{}",
        e.dim,
        e.pooling.name(),
        if e.normalize { ", L2-normalised" } else { "" }
    );
    println!("max tokens  {}", e.max_tokens);
}
