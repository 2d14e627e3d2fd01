//! `lathe quickstart`: the reference workflow in one command.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use lathe_formats::Spec;

use super::train::{train_and_publish, CommonTrainArgs};
use crate::download::ensure_mnist;
use crate::Cli;

/// The reference MLP spec (examples/mnist-mlp.yaml), built in.
pub const MNIST_MLP: &str = include_str!("../../../../examples/mnist-mlp.yaml");

/// Train the reference MNIST model (flatten → dense 128 relu → dropout 0.2 → dense 10
/// softmax, Adam, 5 epochs), publish it and print its test evaluation.
///
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  lathe quickstart --data ../shared/data/mnist\n\nThen: lathe models show mnist, lathe predict mnist --input digit.png"
)]
pub struct QuickstartArgs {
    /// Folder with the MNIST IDX files; without it MNIST is downloaded (checksums verified)
    /// into lathe-data/datasets/mnist.
    #[arg(long, env = "LATHE_DATA")]
    pub data: Option<PathBuf>,
    /// Name to publish the model under.
    #[arg(long, env = "LATHE_NAME", default_value = "mnist")]
    pub name: String,
    #[command(flatten)]
    pub common: CommonTrainArgs,
}

pub fn run(cli: &Cli, args: &QuickstartArgs) -> Result<()> {
    let data = match &args.data {
        Some(d) => d.clone(),
        None => ensure_mnist(&PathBuf::from("lathe-data/datasets/mnist"))?,
    };
    let spec = Spec::from_yaml_str(MNIST_MLP).map_err(|e| anyhow::anyhow!("built-in spec: {e}"))?;
    train_and_publish(cli, spec, &data, &args.name, &args.common)
}
