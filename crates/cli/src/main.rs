//! `lathe`: train, evaluate, version and predict with models from the command line.

mod commands;
mod download;
mod loaders;
mod progress;
mod remote;
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
    /// Model repository: a folder (one folder per model, one numbered folder per version),
    /// `file:///DIR`, or `s3://BUCKET/PREFIX` in an S3-compatible store (AWS S3, MinIO, Ceph,
    /// R2), reached with the usual AWS_* variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION).
    #[arg(long, global = true, env = "LATHE_REPO", default_value = "lathe-data/models")]
    pub repo: String,

    /// Where the versions of an s3:// repository are kept, verified, before they are loaded
    /// [default: ~/.cache/lathe/s3/BUCKET/PREFIX].
    #[arg(long, global = true, env = "LATHE_REPO_CACHE", value_name = "DIR")]
    pub repo_cache: Option<PathBuf>,

    /// The most version files the cache of an s3:// repository keeps (e.g. 20GiB); each
    /// model's newest version and those its labels and traffic name are kept even beyond it.
    #[arg(long, global = true, env = "LATHE_REPO_CACHE_SIZE", value_name = "SIZE")]
    pub repo_cache_size: Option<bytesize::ByteSize>,

    /// Allow a plain-HTTP S3 endpoint (a MinIO on the same host, a test server); requests and
    /// their signatures then travel in clear text.
    #[arg(long, global = true, env = "LATHE_S3_ALLOW_HTTP")]
    pub s3_allow_http: bool,

    /// Machine-readable output: JSON lines of progress events, then one JSON result.
    #[arg(long, global = true, env = "LATHE_JSON")]
    pub json: bool,

    /// A running `lathe serve` to work against (datasets, jobs, traffic, models list/label).
    #[arg(long, global = true, env = "LATHE_SERVER")]
    pub server: Option<String>,

    /// API key for --server (sent as Authorization: Bearer).
    #[arg(long, global = true, env = "LATHE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

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
    /// Explain a version's predictions: attributions per pixel (a PNG overlay) or per feature.
    Explain(commands::explain::ExplainArgs),
    /// Send a request log (`serve --request-log`) back to a server and compare the statuses.
    Replay(commands::replay::ReplayArgs),
    /// Serve the repository over TF Serving REST, KServe V1 and Open Inference Protocol V2.
    Serve(commands::serve::ServeArgs),
    /// Run training jobs claimed from the shared metadata store (scale-out deployments).
    Worker(commands::worker::WorkerArgs),
    /// List, inspect and label published models.
    #[command(subcommand)]
    Models(commands::models::ModelsCommand),
    /// Upload, list, describe and delete datasets on a server (--server).
    #[command(subcommand)]
    Datasets(commands::datasets::DatasetsCommand),
    /// Submit, follow, list and cancel training jobs on a server (--server).
    #[command(subcommand)]
    Jobs(commands::jobs::JobsCommand),
    /// Split traffic between versions, mirror it, roll it back (--server).
    #[command(subcommand)]
    Traffic(commands::traffic::TrafficCommand),
    /// Import a model made elsewhere: an LLM from a GGUF file or a Hugging Face folder, or a
    /// sentence-transformers encoder.
    #[command(subcommand)]
    Import(commands::import::ImportCommand),
    /// Continue a prompt with a causal-lm version (raw completion, streamed).
    ///
    /// Example: lathe generate smollm2 --prompt "The capital of France is" --temperature 0
    Generate(commands::generate::GenerateArgs),
    /// Chat with a causal-lm version: one answer with MESSAGE, else an interactive conversation.
    ///
    /// Example: lathe chat smollm2 "What is the capital of Germany?"
    Chat(commands::chat::ChatArgs),
    /// Print the server's OpenAPI document (docs/openapi.json).
    Openapi,
    /// Manage the API keys `serve` accepts.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Measure training and serving speed.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

impl Cli {
    /// The repository `--repo` names (an s3:// one with its cache, nothing fetched yet).
    pub fn repository(&self) -> anyhow::Result<lathe_registry::Repository> {
        let options = lathe_registry::remote::RemoteOptions { allow_http: self.s3_allow_http, settings: vec![] };
        let repo = lathe_registry::Repository::open(&self.repo, self.repo_cache.as_deref(), &options)?;
        Ok(repo.with_cache_limit(self.repo_cache_size.map(|s| s.as_u64())))
    }

    /// The repository, with the versions of `model` (every model when `None`) of an s3://
    /// repository fetched into its cache first.
    pub fn synced(&self, model: Option<&str>) -> anyhow::Result<lathe_registry::Repository> {
        let repo = self.repository()?;
        if repo.remote().is_some() {
            match model {
                Some(name) => repo.sync_model(name)?,
                None => repo.sync()?,
            };
        }
        Ok(repo)
    }

    /// The client for `--server`, or an error saying the command needs one.
    pub fn remote(&self) -> anyhow::Result<remote::Remote> {
        let base = self
            .server
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("this command talks to a server: give --server URL (or LATHE_SERVER)"))?;
        Ok(remote::Remote::new(base, self.api_key.clone()))
    }
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
    if let Err(e) = lathe_kernels::cpu::env_cap_checked() {
        if cli.json {
            println!("{}", serde_json::json!({ "error": e.to_string() }));
        }
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    tracing::debug!(level = %lathe_kernels::cpu::level(), "CPU code path");
    let result = match &cli.command {
        Command::Quickstart(a) => commands::quickstart::run(&cli, a),
        Command::Train(a) => commands::train::run(&cli, a),
        Command::Eval(a) => commands::eval::run(&cli, a),
        Command::Predict(a) => commands::predict::run(&cli, a),
        Command::Explain(a) => commands::explain::run(&cli, a),
        Command::Replay(a) => commands::replay::run(&cli, a),
        Command::Serve(a) => commands::serve::run(&cli, a),
        Command::Worker(a) => commands::worker::run(&cli, a),
        Command::Models(c) => commands::models::run(&cli, c),
        Command::Bench(c) => commands::bench::run(&cli, c),
        Command::Keys(c) => commands::keys::run(&cli, c),
        Command::Import(c) => commands::import::run(&cli, c),
        Command::Generate(a) => commands::generate::run(&cli, a),
        Command::Chat(a) => commands::chat::run(&cli, a),
        Command::Openapi => {
            print!("{}", lathe_server::openapi::openapi_json());
            Ok(())
        }
        Command::Datasets(c) => commands::datasets::run(&cli, c),
        Command::Jobs(c) => commands::jobs::run(&cli, c),
        Command::Traffic(c) => commands::traffic::run(&cli, c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let interrupted = e.downcast_ref::<lathe_jobs::VersionError>().is_some_and(|v| v.is_interrupted())
                || matches!(e.downcast_ref::<lathe_train::TrainError>(), Some(lathe_train::TrainError::Interrupted));
            let msg = format!("{e:#}").replace('\n', " ");
            if cli.json {
                println!("{}", serde_json::json!({ "error": msg }));
            }
            eprintln!("error: {msg}");
            ExitCode::from(if interrupted { 130 } else { 1 })
        }
    }
}
