//! `lathe quickstart`: the reference workflow in one command.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use lathe_formats::Spec;

use super::serve::{serve, ServeArgs};
use super::train::{train_and_publish, CommonTrainArgs};
use crate::download::ensure_mnist;
use crate::Cli;
use lathe_train::data::read_idx;

/// The reference MLP spec (examples/mnist-mlp.yaml), built in.
pub const MNIST_MLP: &str = include_str!("../../../../examples/mnist-mlp.yaml");

/// Train the reference MNIST model (flatten → dense 128 relu → dropout 0.2 → dense 10
/// softmax, Adam, 5 epochs), publish it, print its test evaluation, then serve it and print
/// a ready-to-paste `curl` (Ctrl-C stops the server).
///
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  lathe quickstart --data ../shared/data/mnist\n\nThen: lathe models show mnist, lathe \
        predict mnist --input digit.png"
)]
pub struct QuickstartArgs {
    /// Folder with the MNIST IDX files; without it MNIST is downloaded (checksums verified)
    /// into lathe-data/datasets/mnist.
    #[arg(long, env = "LATHE_DATA")]
    pub data: Option<PathBuf>,
    /// Name to publish the model under.
    #[arg(long, env = "LATHE_NAME", default_value = "mnist")]
    pub name: String,
    /// Stop after training instead of serving the model.
    #[arg(long, env = "LATHE_NO_SERVE")]
    pub no_serve: bool,
    #[command(flatten)]
    pub common: CommonTrainArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

pub fn run(cli: &Cli, args: &QuickstartArgs) -> Result<()> {
    let data = match &args.data {
        Some(d) => d.clone(),
        None => ensure_mnist(&PathBuf::from("lathe-data/datasets/mnist"))?,
    };
    let spec = Spec::from_yaml_str(MNIST_MLP).map_err(|e| anyhow::anyhow!("built-in spec: {e}"))?;
    train_and_publish(cli, Some(spec), &data, &args.name, &args.common)?;
    if args.no_serve {
        return Ok(());
    }
    let request = write_example_request(&data)?;
    let name = args.name.clone();
    serve(cli.repository()?, &args.serve, cli.json, move |addr| {
        eprintln!();
        eprintln!("try it (three MNIST test digits; Ctrl-C stops the server):");
        eprintln!(
            "  curl -s -X POST http://{addr}/v1/models/{name}:predict -H 'content-type: application/json' -d @{}",
            request.display()
        );
        eprintln!("  curl -s http://{addr}/v2/models/{name}");
        eprintln!("or open the dashboard (draw a digit, training curves, live metrics): http://{addr}/ui/");
    })
}

/// Writes the first three test images as a TF Serving predict request; returns its path.
fn write_example_request(data: &Path) -> Result<PathBuf> {
    let images = read_idx(&data.join("t10k-images-idx3-ubyte.gz"), 3)
        .or_else(|_| read_idx(&data.join("t10k-images-idx3-ubyte"), 3))
        .context("reading test images for the example request")?;
    let instances: Vec<Vec<&[u8]>> = images.data.chunks(784).take(3).map(|img| img.chunks(28).collect()).collect();
    let path = PathBuf::from("lathe-data/examples/mnist-request.json");
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    std::fs::write(&path, serde_json::json!({ "instances": instances }).to_string())?;
    Ok(path)
}
