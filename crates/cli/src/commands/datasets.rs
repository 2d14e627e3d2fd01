//! `lathe --server URL datasets …`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use lathe_server::admin::DATASET_FILES;
use serde_json::Value;

use crate::Cli;

/// Datasets on a server.
#[derive(Subcommand, Debug)]
pub enum DatasetsCommand {
    /// Upload a folder of MNIST-style IDX files, or a CSV file, as dataset NAME.
    Upload {
        /// Dataset name.
        name: String,
        /// A folder with train-/t10k- IDX files (raw or .gz), or a .csv file.
        path: PathBuf,
    },
    /// List datasets.
    List,
    /// Describe a dataset: files, rows, columns, class balance.
    Show {
        /// Dataset name.
        name: String,
    },
    /// Delete a dataset (refused while a job uses it).
    Delete {
        /// Dataset name.
        name: String,
    },
}

pub fn run(cli: &Cli, cmd: &DatasetsCommand) -> Result<()> {
    let remote = cli.remote()?;
    let out: Value = match cmd {
        DatasetsCommand::Upload { name, path } => {
            let idx = DATASET_FILES.iter().filter(|f| **f != "data.csv");
            let files: Vec<(PathBuf, &str)> = if path.is_dir() {
                idx.map(|f| (path.join(f), *f)).filter(|(p, _)| p.is_file()).collect()
            } else {
                vec![(path.clone(), "data.csv")]
            };
            anyhow::ensure!(
                !files.is_empty(),
                "{}: no IDX files found (expected train-/t10k- images and labels)",
                path.display()
            );
            for (file, as_name) in &files {
                let f = std::fs::File::open(file).with_context(|| file.display().to_string())?;
                let r = remote.put_stream(&format!("/v1/datasets/{name}/files/{as_name}"), f)?;
                if !cli.json {
                    eprintln!(
                        "uploaded {} ({} bytes, sha256 {})",
                        file.display(),
                        r["bytes"],
                        r["sha256"].as_str().unwrap_or("")
                    );
                }
            }
            remote.get(&format!("/v1/datasets/{name}"))?
        }
        DatasetsCommand::List => remote.get("/v1/datasets")?,
        DatasetsCommand::Show { name } => remote.get(&format!("/v1/datasets/{name}"))?,
        DatasetsCommand::Delete { name } => remote.delete(&format!("/v1/datasets/{name}"))?,
    };
    if cli.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
