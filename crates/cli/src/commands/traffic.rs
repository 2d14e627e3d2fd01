//! `lathe --server URL traffic …`.

use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::Cli;

/// Traffic policies on a server.
#[derive(Subcommand, Debug)]
pub enum TrafficCommand {
    /// Show a model's traffic policy.
    Show {
        /// Model name.
        name: String,
    },
    /// Split requests that name no version: TARGET=WEIGHT pairs (a version or a label).
    ///
    /// Example: lathe --server http://127.0.0.1:8080 traffic set mnist 1=90 2=10 --shadow 3:5
    Set {
        /// Model name.
        name: String,
        /// Weighted targets, e.g. `1=50 stable=50`.
        #[arg(required = true)]
        routes: Vec<String>,
        /// Mirror PERCENT of requests to TARGET (answers discarded): `TARGET:PERCENT`.
        #[arg(long)]
        shadow: Option<String>,
    },
    /// Send all traffic back to one target (default: the `stable` label).
    Rollback {
        /// Model name.
        name: String,
        /// Version or label.
        #[arg(long)]
        to: Option<String>,
    },
    /// Remove the policy (back to the default route).
    Clear {
        /// Model name.
        name: String,
    },
}

pub fn run(cli: &Cli, cmd: &TrafficCommand) -> Result<()> {
    let remote = cli.remote()?;
    let out: Value = match cmd {
        TrafficCommand::Show { name } => remote.get(&format!("/v1/models/{name}/traffic"))?,
        TrafficCommand::Set { name, routes, shadow } => {
            let mut list = Vec::new();
            for r in routes {
                let Some((target, weight)) = r.split_once('=') else { bail!("route {r:?}: expected TARGET=WEIGHT") };
                let weight: u32 =
                    weight.parse().map_err(|_| anyhow::anyhow!("route {r:?}: the weight must be a whole number"))?;
                list.push(json!({ "target": target, "weight": weight }));
            }
            let mut body = json!({ "routes": list });
            if let Some(s) = shadow {
                let Some((target, pct)) = s.split_once(':') else { bail!("--shadow {s:?}: expected TARGET:PERCENT") };
                let pct: f64 =
                    pct.parse().map_err(|_| anyhow::anyhow!("--shadow {s:?}: the percentage must be a number"))?;
                body["shadow"] = json!({ "target": target, "percent": pct });
            }
            remote.put_json(&format!("/v1/models/{name}/traffic"), &body)?
        }
        TrafficCommand::Rollback { name, to } => {
            let body = match to {
                Some(t) => json!({ "to": t }),
                None => json!({}),
            };
            remote.post(&format!("/v1/models/{name}/rollback"), &body)?
        }
        TrafficCommand::Clear { name } => remote.delete(&format!("/v1/models/{name}/traffic"))?,
    };
    if cli.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
