//! `lathe --server URL jobs …`: training jobs, with a live progress bar fed by the server's
//! event stream.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use lathe_formats::Spec;
use lathe_store::JobState;
use serde_json::{json, Value};

use crate::progress::Reporter;
use crate::Cli;

/// Training jobs on a server.
#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Submit a job and follow it to the end (unless --detach).
    Submit(SubmitArgs),
    /// Follow a job's events until it finishes.
    Follow {
        /// Job id.
        id: String,
    },
    /// List jobs, newest first.
    List,
    /// Show one job.
    Show {
        /// Job id.
        id: String,
    },
    /// Cancel a queued or running job.
    Cancel {
        /// Job id.
        id: String,
    },
}

/// Arguments of `jobs submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// Model spec (YAML or JSON); sent as JSON.
    #[arg(long)]
    pub spec: PathBuf,
    /// Dataset name on the server.
    #[arg(long)]
    pub dataset: String,
    /// Model name to publish under.
    #[arg(long)]
    pub name: String,
    /// Seed (overrides the spec's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Move this label to the new version if its accuracy is at least the labelled one's.
    #[arg(long)]
    pub promote: Option<String>,
    /// CSV label column.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Return right after submitting.
    #[arg(long)]
    pub detach: bool,
}

pub fn run(cli: &Cli, cmd: &JobsCommand) -> Result<()> {
    let remote = cli.remote()?;
    let print = |v: &Value| -> Result<()> {
        if cli.json {
            println!("{v}");
        } else {
            println!("{}", serde_json::to_string_pretty(v)?);
        }
        Ok(())
    };
    match cmd {
        JobsCommand::Submit(a) => {
            let spec = Spec::from_file(&a.spec).map_err(|e| anyhow::anyhow!("{}: {e}", a.spec.display()))?;
            let mut body = json!({ "name": a.name, "spec": spec.to_json(), "dataset": a.dataset });
            if let Some(s) = a.seed {
                body["seed"] = json!(s);
            }
            if let Some(l) = &a.promote {
                body["auto_promote"] = json!({ "label": l });
            }
            if let Some(c) = &a.label_column {
                body["label_column"] = json!(c);
            }
            let job = remote.post("/v1/jobs", &body)?;
            let id = job["id"].as_str().unwrap_or_default().to_string();
            if !cli.json {
                eprintln!("submitted {id}");
            }
            if a.detach {
                return print(&job);
            }
            follow(cli, &remote, &id)
        }
        JobsCommand::Follow { id } => follow(cli, &remote, id),
        JobsCommand::List => print(&remote.get("/v1/jobs")?),
        JobsCommand::Show { id } => print(&remote.get(&format!("/v1/jobs/{id}"))?),
        JobsCommand::Cancel { id } => print(&remote.post(&format!("/v1/jobs/{id}/cancel"), &json!({}))?),
    }
}

fn follow(cli: &Cli, remote: &crate::remote::Remote, id: &str) -> Result<()> {
    let mut reporter = Reporter::new(cli.json);
    remote.events(&format!("/v1/jobs/{id}/events"), |kind, data| {
        match kind {
            "progress" => {
                if let Ok(e) = serde_json::from_value::<lathe_train::Event>(data) {
                    reporter.event(&e);
                }
            }
            "epoch" => {
                if let Ok(r) = serde_json::from_value::<lathe_formats::EpochRecord>(data) {
                    reporter.event(&lathe_train::Event::EpochEnd(r));
                }
            }
            "state" if cli.json => println!("{}", json!({ "event": "state", "data": data })),
            "state" => eprintln!("{id}: {}", data["state"].as_str().unwrap_or("?")),
            "log" if !cli.json => eprintln!("{}", data["message"].as_str().unwrap_or("")),
            _ => {}
        }
        true
    })?;
    let job = remote.get(&format!("/v1/jobs/{id}"))?;
    if cli.json {
        println!("{job}");
    } else {
        println!(
            "{id}: {}{}",
            job["state"].as_str().unwrap_or("?"),
            job["version"].as_u64().map(|v| format!(", published version {v}")).unwrap_or_default()
        );
    }
    match job["state"].as_str().and_then(JobState::parse) {
        Some(JobState::Succeeded) => Ok(()),
        Some(s) => bail!("job {id} {s}{}", job["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default()),
        None => bail!("job {id}: no state"),
    }
}
