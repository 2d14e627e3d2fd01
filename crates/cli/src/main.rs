//! `lathe`: train, evaluate, version and predict with models from the command line.

mod commands;
mod download;
mod progress;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Lathe trains models from a declarative spec, evaluates them, keeps every trained model as
/// an immutable numbered version in a repository, and predicts with them.
///
/// Start with `lathe quickstart --data DIR` (MNIST in IDX format) to train and evaluate the
/// reference model, then `lathe models list` to see the version it published.
#[derive(Parser, Debug)]
#[command(name = "lathe", version, propagate_version = true)]
pub struct Cli {
    /// Model repository: one folder per model, one numbered folder per version.
    #[arg(long, global = true, env = "LATHE_REPO", default_value = "lathe-data/models")]
    pub repo: PathBuf,

    /// Machine-readable output: JSON lines of progress events, then one JSON result.
    #[arg(long, global = true, env = "LATHE_JSON")]
    pub json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train the reference MNIST model (downloading MNIST if no --data) and print its evaluation.
    Quickstart(commands::quickstart::QuickstartArgs),
    /// Train a model from a spec and publish it as the next version of NAME.
    Train(commands::train::TrainArgs),
    /// Evaluate a published version on labelled data.
    Eval(commands::eval::EvalArgs),
    /// Predict with a published version from JSON instances, CSV rows or an image.
    Predict(commands::predict::PredictArgs),
    /// Serve the repository over TF Serving REST, KServe V1 and Open Inference Protocol V2.
    Serve(commands::serve::ServeArgs),
    /// List, inspect and label published models.
    #[command(subcommand)]
    Models(commands::models::ModelsCommand),
    /// Manage the API keys `serve` accepts.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Measure training and serving speed.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`lathe models show x | head`), as command-line tools do.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LATHE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Quickstart(a) => commands::quickstart::run(&cli, a),
        Command::Train(a) => commands::train::run(&cli, a),
        Command::Eval(a) => commands::eval::run(&cli, a),
        Command::Predict(a) => commands::predict::run(&cli, a),
        Command::Serve(a) => commands::serve::run(&cli, a),
        Command::Models(c) => commands::models::run(&cli, c),
        Command::Bench(c) => commands::bench::run(&cli, c),
        Command::Keys(c) => commands::keys::run(&cli, c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let interrupted = e
                .downcast_ref::<lathe_train::TrainError>()
                .is_some_and(|t| matches!(t, lathe_train::TrainError::Interrupted));
            let msg = format!("{e:#}").replace('\n', " ");
            if cli.json {
                println!("{}", serde_json::json!({ "error": msg }));
            }
            eprintln!("error: {msg}");
            ExitCode::from(if interrupted { 130 } else { 1 })
        }
    }
}
