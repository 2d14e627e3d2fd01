//! `lathe serve`: the repository over TF Serving REST, KServe V1 and Open Inference Protocol V2.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use lathe_registry::Repository;
use lathe_runtime::generation::GenerationConfig;
use lathe_runtime::{BatchConfig, Manager, ServeOptions, Watcher};
use lathe_server::{AppState, Limits, ServerMetrics};
use lathe_store::{MetadataStore, PostgresStore};

use crate::Cli;

/// Serve every model in the repository on one HTTP port.
#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  lathe serve\n  lathe serve --port 8501 --max-batch-size 32 --instances 2\n  curl -s \
        localhost:8080/v2/models/mnist\
        \n  curl -s -X POST localhost:8080/v1/models/mnist:predict -d '{\"instances\": [[...784 pixels...]]}'\n\
        \nNew versions published into the repository are loaded in the background and swapped in\
        \nwithout dropping requests. Per-model settings go in <repo>/<model>/config.json:\
        \n  {\"version_policy\": {\"latest\": {\"num_versions\": 2}}, \"max_batch_size\": 32,\
        \n   \"max_queue_delay_us\": 200, \"max_queue_size\": 512, \"instances\": 1}\
        \nLabels: lathe models label NAME stable 3\n\
        \nLanguage models (lathe import gguf|hf) answer OpenAI's API:\
        \n  curl -s localhost:8080/v1/chat/completions \
        -d '{\"model\": \"smollm2\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}'"
)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LATHE_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "LATHE_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Default most rows per model execution (config.json may override per model).
    #[arg(long, env = "LATHE_MAX_BATCH_SIZE", default_value_t = 64)]
    pub max_batch_size: usize,
    /// Default wait to fill a batch, from the oldest queued request, in µs (0: never wait).
    #[arg(long, env = "LATHE_MAX_QUEUE_DELAY_US", default_value_t = 0)]
    pub max_queue_delay_us: u64,
    /// Default most queued requests per model version; more get 429.
    #[arg(long, env = "LATHE_MAX_QUEUE_SIZE", default_value_t = 1024)]
    pub max_queue_size: usize,
    /// Text models: most padded tokens (rows × longest row) per execution (0: no limit).
    #[arg(long, env = "LATHE_MAX_BATCH_TOKENS", default_value_t = 16384)]
    pub max_batch_tokens: usize,
    /// Encoder of sentence-embedding models: auto (Lathe's encoder, in bfloat16 on CPUs with
    /// AVX-512 BF16, else f32), encoder-bf16, encoder-f32 or candle (the earlier names
    /// native-bf16 and native-f32 are still accepted).
    #[arg(long, env = "LATHE_EMBEDDING_BACKEND", default_value = "auto")]
    pub embedding_backend: lathe_embedding::Backend,
    /// Most requests per execution (0: no limit).
    #[arg(long, env = "LATHE_MAX_BATCH_REQUESTS", default_value_t = 0)]
    pub max_batch_requests: usize,
    /// Default compute threads per model version.
    #[arg(long, env = "LATHE_INSTANCES", default_value_t = 1)]
    pub instances: usize,
    /// Threads handling HTTP (0: one per core).
    #[arg(long, env = "LATHE_HTTP_THREADS", default_value_t = 0)]
    pub http_threads: usize,
    /// Seconds between repository scans (file notifications trigger scans at once as well);
    /// an s3:// repository's store is listed this often.
    #[arg(long, env = "LATHE_POLL_SECONDS", default_value_t = 2.0)]
    pub poll_seconds: f64,
    /// Largest request body, bytes (413 above).
    #[arg(long, env = "LATHE_MAX_BODY_BYTES", default_value_t = 32 << 20)]
    pub max_body_bytes: usize,
    /// Longest a request may take, milliseconds (504 after).
    #[arg(long, env = "LATHE_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// API keys file (JSON, sha256 digests only; see `lathe keys new`). Re-read when it
    /// changes. Keys can also come from LATHE_API_KEYS (name:scope[+scope]:key,...). Without
    /// any key the server listens on 127.0.0.1 only.
    #[arg(long, env = "LATHE_API_KEYS_FILE")]
    pub api_keys_file: Option<std::path::PathBuf>,
    /// Serve HTTPS: certificate chain (PEM). Needs --tls-key.
    #[arg(long, env = "LATHE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Serve HTTPS: private key (PEM). Needs --tls-cert.
    #[arg(long, env = "LATHE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Origins allowed to call the API from browsers (CORS); `*` for any.
    #[arg(long = "cors-origin", env = "LATHE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Folder of the metadata store (lathe.db, unless --metadata names another) and uploaded datasets.
    #[arg(long, env = "LATHE_STATE_DIR", default_value = "lathe-data")]
    pub state_dir: std::path::PathBuf,
    /// Where datasets, jobs, evaluations and the audit log are recorded: `sqlite://FILE` (default:
    /// STATE_DIR/lathe.db) or a Postgres URL shared by every replica,
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=require&sslrootcert=CA.pem]`.
    #[arg(long, env = "LATHE_METADATA")]
    pub metadata: Option<String>,
    /// Training jobs running at once; more wait in the queue.
    #[arg(long, env = "LATHE_MAX_CONCURRENT_JOBS", default_value_t = 1)]
    pub max_concurrent_jobs: usize,
    /// With Postgres (--metadata postgres://…), also run training jobs here, claimed from the
    /// database as `lathe worker`s claim them; without it, jobs wait for workers.
    #[arg(long, env = "LATHE_RUN_JOBS")]
    pub run_jobs: bool,
    /// Seconds a claimed job's lease lasts without a heartbeat (renewed every third of it);
    /// another worker takes over a job whose lease ran out, from its last checkpoint.
    #[arg(long, env = "LATHE_JOB_LEASE", default_value_t = 30.0)]
    pub job_lease: f64,
    /// Largest dataset file accepted by an upload, bytes.
    #[arg(long, env = "LATHE_MAX_UPLOAD_BYTES", default_value_t = 1 << 30)]
    pub max_upload_bytes: u64,
    /// Largest model file accepted by an upload (`PUT /v1/admin/models/{name}/onnx`), bytes.
    #[arg(long, env = "LATHE_MAX_MODEL_UPLOAD_BYTES", default_value_t = 4 << 30)]
    pub max_model_upload_bytes: u64,
    /// Longest wait for in-flight requests before an old version is unloaded, milliseconds.
    #[arg(long, env = "LATHE_DRAIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub drain_timeout_ms: u64,
    /// Language models: most sequences decoding together in one step (the running batch).
    #[arg(long, env = "LATHE_MAX_NUM_SEQS", default_value_t = 32, help_heading = "Language models")]
    pub max_num_seqs: usize,
    /// Language models: most tokens per step, prompt chunks and decoded tokens together.
    /// Smaller values keep inter-token latency low while long prompts are processed;
    /// larger ones give a lower time to first token.
    #[arg(long, env = "LATHE_MAX_NUM_BATCHED_TOKENS", default_value_t = 256, help_heading = "Language models")]
    pub max_num_batched_tokens: usize,
    /// Language models: KV-cache memory per model version (e.g. 512MiB, 2GiB). Sequences
    /// that do not fit wait; running ones are preempted and recomputed when it runs out.
    #[arg(long, env = "LATHE_KV_CACHE_MEMORY", default_value = "1GiB", help_heading = "Language models")]
    pub kv_cache_memory: bytesize::ByteSize,
    /// Language models: compute threads per model version (0: one per core).
    #[arg(long, env = "LATHE_GENERATION_THREADS", default_value_t = 0, help_heading = "Language models")]
    pub generation_threads: usize,
    /// Language models: most requests waiting for a place in the running batch; more get 429.
    #[arg(long, env = "LATHE_MAX_WAITING_SEQS", default_value_t = 256, help_heading = "Language models")]
    pub max_waiting_seqs: usize,
    /// Language models: most choices (`n`) per request.
    #[arg(long, env = "LATHE_MAX_N", default_value_t = 8, help_heading = "Language models")]
    pub max_n: usize,
    /// Explanations, drift and the request log.
    #[command(flatten)]
    pub observe: super::serve_observe::ObserveArgs,
}

impl ServeArgs {
    /// The scheduler settings of language models.
    fn generation(&self) -> GenerationConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        GenerationConfig {
            max_num_seqs: self.max_num_seqs.max(1),
            max_num_batched_tokens: self.max_num_batched_tokens.max(1),
            kv_cache_bytes: usize::try_from(self.kv_cache_memory.as_u64()).unwrap_or(usize::MAX),
            threads: if self.generation_threads == 0 { cores } else { self.generation_threads },
            max_waiting: self.max_waiting_seqs.max(1),
            ..GenerationConfig::default()
        }
    }
}

pub fn run(cli: &Cli, args: &ServeArgs) -> Result<()> {
    serve(cli.repository()?, args, cli.json, |_| {})
}

/// The Postgres store, when `--metadata` names one: it also shares labels and traffic.
type SharedPostgres = Arc<PostgresStore>;

/// The metadata store `--metadata` names (SQLite under `--state-dir` by default), and the
/// Postgres store again when it is one (it also shares labels and traffic policies).
fn open_metadata(args: &ServeArgs) -> Result<(Arc<dyn MetadataStore>, Option<SharedPostgres>)> {
    let opening = "opening the metadata store";
    match args.metadata.as_deref() {
        Some(url) if lathe_store::is_postgres(url) => {
            let pg = Arc::new(PostgresStore::open(url).map_err(anyhow::Error::msg).context(opening)?);
            Ok((pg.clone(), Some(pg)))
        }
        url => {
            let store = lathe_store::open(url, &args.state_dir.join("lathe.db"));
            Ok((store.map_err(anyhow::Error::msg).context(opening)?, None))
        }
    }
}

/// Serves `repo` until SIGTERM or Ctrl-C; `on_ready` gets the bound address.
pub fn serve(repo: Repository, args: &ServeArgs, json: bool, on_ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.http_threads > 0 {
        builder.worker_threads(args.http_threads);
    }
    let runtime = builder.enable_all().thread_name("http").build().context("starting the HTTP runtime")?;
    let defaults = BatchConfig {
        max_batch_size: args.max_batch_size.max(1),
        max_queue_delay_us: args.max_queue_delay_us,
        max_queue_size: args.max_queue_size.max(1),
        instances: args.instances.max(1),
        max_batch_tokens: args.max_batch_tokens,
        max_batch_requests: args.max_batch_requests,
    };
    let options = ServeOptions {
        defaults,
        drain_timeout: Duration::from_millis(args.drain_timeout_ms),
        generation: args.generation(),
    };
    let (store, postgres) = open_metadata(args)?;
    let repo = match &postgres {
        Some(pg) => repo.with_shared(pg.clone()),
        None => repo,
    };
    let scan_every = Duration::from_secs_f64(args.poll_seconds.max(0.05));
    super::serve_sync::start(&repo, scan_every, postgres.as_deref(), json)?;
    let manager = Manager::new(
        repo.clone(),
        Arc::new(crate::loaders::KindLoader { embedding_backend: args.embedding_backend }),
        options,
    );
    let watcher = Watcher::start(manager.clone(), scan_every);
    let keys = Arc::new(
        lathe_server::auth::KeyRing::load(args.api_keys_file.clone(), std::env::var("LATHE_API_KEYS").ok().as_deref())
            .map_err(anyhow::Error::msg)
            .context("loading API keys")?,
    );
    let host = if keys.is_enabled() {
        args.host.clone()
    } else {
        if !matches!(args.host.as_str(), "127.0.0.1" | "localhost" | "::1") {
            eprintln!("no API keys configured: listening on 127.0.0.1 instead of {} (see --api-keys-file)", args.host);
        }
        "127.0.0.1".to_string()
    };
    if keys.is_enabled() {
        let k = keys.clone();
        std::thread::Builder::new()
            .name("keys-reload".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                k.reload_if_changed();
            })
            .context("starting the key reloader")?;
    } else if !json {
        eprintln!("no API keys configured: every request is allowed, on loopback only");
    }
    // With Postgres, jobs are claimed from the database (by workers, and here with --run-jobs).
    let claim = postgres
        .as_ref()
        .map(|_| lathe_jobs::ClaimConfig::new(lathe_jobs::ClaimConfig::default_owner(), args.job_lease, 1.0));
    let max_concurrent = if claim.is_some() && !args.run_jobs { 0 } else { args.max_concurrent_jobs.max(1) };
    let jobs = lathe_jobs::JobRunner::start(
        store.clone(),
        repo.clone(),
        lathe_jobs::JobsConfig {
            max_concurrent,
            max_queued: 100,
            datasets_root: args.state_dir.join("datasets"),
            threads_per_job: 0,
            claim,
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("starting the job runner")?;
    let admin = Arc::new(lathe_server::admin::Admin {
        store,
        jobs: jobs.clone(),
        datasets_root: args.state_dir.join("datasets"),
        max_upload_bytes: args.max_upload_bytes,
        importer: Some(Arc::new(crate::loaders::FileImporter)),
        max_model_upload_bytes: args.max_model_upload_bytes,
        uploads_root: args.state_dir.join("uploads"),
    });
    let observe = args.observe.start()?;
    let state = AppState {
        observe,
        admin: Some(admin),
        keys,
        manager: manager.clone(),
        metrics: Arc::new(ServerMetrics::default()),
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            request_timeout: Duration::from_millis(args.request_timeout_ms.max(1)),
            max_n: args.max_n.max(1),
        },
    };
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((host.as_str(), args.port))
            .await
            .with_context(|| format!("binding {host}:{}", args.port))?;
        let addr = listener.local_addr()?;
        let scheme = if args.tls_cert.is_some() { "https" } else { "http" };
        if json {
            let event = serde_json::json!({
                "event": "listening",
                "address": addr.to_string(),
                "scheme": scheme,
                "repo": repo.location(),
            });
            println!("{event}");
        } else {
            eprintln!("serving {} on {scheme}://{addr} (dashboard: {scheme}://{addr}/ui/)", repo.location());
        }
        on_ready(addr);
        let options = lathe_server::ServeOptions {
            cors_origins: args.cors_origins.clone(),
            tls: args
                .tls_cert
                .clone()
                .zip(args.tls_key.clone())
                .map(|(cert, key)| lathe_server::TlsFiles { cert, key }),
        };
        lathe_server::serve_with(listener, state, options, shutdown_signal()).await.context("serving")?;
        anyhow::Ok(())
    })?;
    jobs.shutdown();
    drop(watcher);
    drop(manager);
    if !json {
        eprintln!("stopped");
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down: no new connections, draining in-flight requests");
}
