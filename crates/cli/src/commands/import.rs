//! `lathe import hf DIR --name NAME`: a Hugging Face folder becomes a Lathe version.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use lathe_registry::Repository;
use lathe_types::ModelRef;

use crate::Cli;

/// Import models made elsewhere.
#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// A sentence-transformers folder (config.json, model.safetensors, tokenizer.json,
    /// 1_Pooling/config.json, modules.json): BERT-family encoders.
    ///
    /// Example: lathe import hf ../shared/models/all-MiniLM-L6-v2 --name minilm
    Hf {
        /// The folder.
        dir: PathBuf,
        /// Model name to publish under.
        #[arg(long, env = "LATHE_NAME")]
        name: String,
    },
}

pub fn run(cli: &Cli, cmd: &ImportCommand) -> Result<()> {
    let ImportCommand::Hf { dir, name } = cmd;
    ModelRef::validate_name(name)?;
    let (files, manifest) = lathe_embedding::import_hf(dir, name, &lathe_train::rfc3339_now())
        .with_context(|| format!("importing {}", dir.display()))?;
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let published = Repository::new(&cli.repo).publish(name, &refs, manifest)?;
    if cli.json {
        println!("{}", serde_json::json!({ "name": name, "version": published.version, "path": published.path }));
    } else {
        println!("imported {} as {name}:{} at {}", dir.display(), published.version, published.path.display());
    }
    Ok(())
}
