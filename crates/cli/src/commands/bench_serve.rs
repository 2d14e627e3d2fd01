//! `lathe bench serve`: requests per second and latency percentiles of batch-1 predictions
//! over TF Serving JSON, V2 JSON and V2 binary, with the load generator in the same process
//! (so on the same cores), next to the in-process compute floor and with batching on and off.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use lathe_registry::Repository;
use lathe_runtime::{BatchConfig, Manager, Selector, ServeOptions, Watcher};
use lathe_server::{AppState, Limits, ServerMetrics};
use lathe_types::ModelRef;
use lathe_types::{Tensor, TensorData};
use serde_json::json;

use crate::Cli;

/// Arguments of `bench serve`.
#[derive(Args, Debug)]
pub struct BenchServeArgs {
    /// Model to call (NAME or NAME:VERSION); its input must be one FP32 tensor.
    #[arg(long, env = "LATHE_BENCH_MODEL", default_value = "mnist")]
    pub model: ModelRef,
    /// Concurrency levels (connections sending back to back).
    #[arg(long, env = "LATHE_BENCH_CONCURRENCY", value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Seconds per case and server (split over the rounds).
    #[arg(long, env = "LATHE_BENCH_SECONDS", default_value_t = 3.0)]
    pub seconds: f64,
    /// Alternations between the batching and non-batching servers per case (medians reported;
    /// even counts let each server go first equally often).
    #[arg(long, env = "LATHE_BENCH_ROUNDS", default_value_t = 4)]
    pub rounds: usize,
    /// Threads for the server's HTTP side (the load generator gets one more thread).
    #[arg(long, env = "LATHE_HTTP_THREADS", default_value_t = 2)]
    pub http_threads: usize,
    /// Max batch size while batching.
    #[arg(long, env = "LATHE_MAX_BATCH_SIZE", default_value_t = 64)]
    pub max_batch_size: usize,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Protocol {
    TfsJson,
    V2Json,
    V2Binary,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::TfsJson => "tfserving-json",
            Protocol::V2Json => "v2-json",
            Protocol::V2Binary => "v2-binary",
        }
    }
}

pub(crate) struct Measured {
    pub(crate) rps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) errors: u64,
}

pub fn run(cli: &Cli, args: &BenchServeArgs) -> Result<()> {
    let repo = cli.synced(Some(&args.model.name))?;
    let info = repo.resolve(&args.model).with_context(|| format!("no model {} in {}", args.model, cli.repo))?;
    let [input] = info.manifest.signature.inputs.as_slice() else {
        anyhow::bail!(
            "bench serve drives models with one input; {} has {}",
            info.name,
            info.manifest.signature.inputs.len()
        );
    };
    anyhow::ensure!(
        input.datatype == lathe_types::DType::F32,
        "bench serve sends FP32 rows; input {:?} of {} is {}",
        input.name,
        info.name,
        input.datatype
    );
    let shape = &input.shape;
    let per_row: usize = shape.iter().skip(1).map(|&d| d.max(1) as usize).product();
    let row: Vec<f32> = (0..per_row).map(|i| (i % 255) as f32).collect();
    let name = info.name.clone();

    let mut report = Vec::new();
    // The floor: the same request computed in-process, no HTTP, no queue.
    let floor = compute_floor(&info, &row, args.seconds)?;
    if !cli.json {
        println!(
            "compute floor (in-process Servable::infer, batch 1): {:.0} req/s, p50 {:.1} µs, p99 {:.1} µs",
            floor.rps, floor.p50_us, floor.p99_us
        );
    }
    report.push(json!({"case": "compute-floor", "rps": floor.rps, "p50_us": floor.p50_us, "p99_us": floor.p99_us}));

    // Both servers run side by side; each case alternates between them `rounds` times and
    // reports medians, so background noise hits both alike.
    let backend = lathe_embedding::Backend::Auto;
    let on = BenchServer::start(repo.root(), &name, args.http_threads, args.max_batch_size, backend)?;
    let off = BenchServer::start(repo.root(), &name, args.http_threads, 1, backend)?;
    let target = format!("{}:{}", name, info.version);
    let rounds = args.rounds.max(1);
    let slice = args.seconds / rounds as f64;
    for protocol in [Protocol::TfsJson, Protocol::V2Json, Protocol::V2Binary] {
        let (path, headers, body) = request_for(protocol, &name, info.version, input, &row);
        for &c in &args.concurrency {
            let (mut with, mut without) = (Vec::new(), Vec::new());
            // Settle both servers at this concurrency before measuring (connections, caches).
            load(on.addr, &path, &headers, body.clone(), c, 0.3)?;
            load(off.addr, &path, &headers, body.clone(), c, 0.3)?;
            for round in 0..rounds {
                // Alternate which server goes first, so neither always runs on a cold start.
                if round % 2 == 0 {
                    with.push(load(on.addr, &path, &headers, body.clone(), c, slice)?);
                    without.push(load(off.addr, &path, &headers, body.clone(), c, slice)?);
                } else {
                    without.push(load(off.addr, &path, &headers, body.clone(), c, slice)?);
                    with.push(load(on.addr, &path, &headers, body.clone(), c, slice)?);
                }
            }
            let (m_on, m_off) = (median(with), median(without));
            if !cli.json {
                println!(
                    "{:<15} c={:<3} batching on {:>7.0} req/s p50 {:>7.1} µs p99 {:>7.1} µs | off {:>7.0} req/s p50 \
                        {:>7.1} µs p99 {:>7.1} µs | on/off throughput {:.2}x, p50 {:.2}x{}",
                    protocol.name(),
                    c,
                    m_on.rps,
                    m_on.p50_us,
                    m_on.p99_us,
                    m_off.rps,
                    m_off.p50_us,
                    m_off.p99_us,
                    m_on.rps / m_off.rps.max(1e-9),
                    m_on.p50_us / m_off.p50_us.max(1e-9),
                    if m_on.errors + m_off.errors > 0 {
                        format!("  ERRORS {}/{}", m_on.errors, m_off.errors)
                    } else {
                        String::new()
                    },
                );
            }
            for (batching, m) in [(true, &m_on), (false, &m_off)] {
                report.push(json!({"case": protocol.name(), "model": target, "batching": batching, "concurrency": c,
                    "rps": m.rps, "p50_us": m.p50_us, "p99_us": m.p99_us, "errors": m.errors}));
            }
        }
    }
    if cli.json {
        println!("{}", json!({ "results": report }));
    }
    Ok(())
}

fn compute_floor(info: &lathe_registry::VersionInfo, row: &[f32], seconds: f64) -> Result<Measured> {
    let loader = crate::loaders::KindLoader { embedding_backend: lathe_embedding::Backend::Auto };
    let servable = lathe_engine::Loader::load(&loader, &info.path, &info.manifest).map_err(anyhow::Error::msg)?;
    let mut shape = vec![1usize];
    shape.extend(info.manifest.signature.inputs[0].shape.iter().skip(1).map(|&d| d.max(1) as usize));
    let input = vec![Tensor {
        name: info.manifest.signature.inputs[0].name.clone(),
        shape,
        data: TensorData::F32(row.to_vec()),
    }];
    let mut lat = Vec::new();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    while Instant::now() < end {
        let t = Instant::now();
        servable.infer(&input).map_err(|e| anyhow::anyhow!("{e}"))?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(summarise(lat, start.elapsed().as_secs_f64(), 0))
}

pub(crate) fn request_for(
    p: Protocol,
    name: &str,
    version: u64,
    input: &lathe_types::TensorSignature,
    row: &[f32],
) -> (String, Vec<(&'static str, String)>, Bytes) {
    let mut full_shape = vec![1i64];
    full_shape.extend(input.shape.iter().skip(1).map(|&d| d.max(1)));
    let input_name = input.name.as_str();
    match p {
        Protocol::TfsJson => (
            format!("/v1/models/{name}/versions/{version}:predict"),
            vec![("content-type", "application/json".into())],
            Bytes::from(json!({ "instances": [row] }).to_string()),
        ),
        Protocol::V2Json => (
            format!("/v2/models/{name}/versions/{version}/infer"),
            vec![("content-type", "application/json".into())],
            Bytes::from(
                json!({"inputs": [{"name": input_name, "shape": full_shape, "datatype": "FP32", "data": row}]})
                    .to_string(),
            ),
        ),
        Protocol::V2Binary => {
            let header = json!({"inputs": [{"name": input_name, "shape": full_shape, "datatype": "FP32",
                "parameters": {"binary_data_size": row.len() * 4}}], "parameters": {"binary_data_output": true}})
            .to_string();
            let mut body = header.clone().into_bytes();
            body.extend(row.iter().flat_map(|x| x.to_le_bytes()));
            (
                format!("/v2/models/{name}/versions/{version}/infer"),
                vec![
                    ("content-type", "application/octet-stream".into()),
                    ("inference-header-content-length", header.len().to_string()),
                ],
                Bytes::from(body),
            )
        }
    }
}

pub(crate) struct BenchServer {
    pub(crate) addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _watcher: Watcher,
}

impl BenchServer {
    /// Serves `repo` in process and waits until `model` (the one measured; other models of the
    /// repository may fail to load without stopping the benchmark) has a ready version.
    pub(crate) fn start(
        repo: &std::path::Path,
        model: &str,
        threads: usize,
        max_batch: usize,
        embedding_backend: lathe_embedding::Backend,
    ) -> Result<BenchServer> {
        let observe = lathe_server::observe::Observability::start(Default::default(), None);
        BenchServer::start_with(repo, model, threads, max_batch, embedding_backend, observe)
    }

    /// As [`BenchServer::start`], with the given monitoring (a request log, say).
    pub(crate) fn start_with(
        repo: &std::path::Path,
        model: &str,
        threads: usize,
        max_batch: usize,
        embedding_backend: lathe_embedding::Backend,
        observe: Arc<lathe_server::observe::Observability>,
    ) -> Result<BenchServer> {
        let defaults = BatchConfig { max_batch_size: max_batch, ..BatchConfig::default() };
        let manager = Manager::new(
            Repository::new(repo),
            Arc::new(crate::loaders::KindLoader { embedding_backend }),
            ServeOptions { defaults, ..ServeOptions::default() },
        );
        let watcher = Watcher::start(manager.clone(), Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = manager.resolve(model, &lathe_runtime::Selector::Default) {
            anyhow::ensure!(Instant::now() < deadline, "model {model:?} did not become ready: {}", e.message);
            std::thread::sleep(Duration::from_millis(10));
        }
        let state = AppState {
            manager: manager.clone(),
            metrics: Arc::new(ServerMetrics::default()),
            limits: Limits::default(),
            keys: Arc::new(lathe_server::auth::KeyRing::open()),
            admin: None,
            observe,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).expect("send addr");
                let _ = lathe_server::serve(listener, state, async {
                    let _ = stop_rx.await;
                })
                .await;
            });
        });
        let _ = manager.resolve("", &Selector::Default);
        Ok(BenchServer { addr: addr_rx.recv()?, stop: Some(stop_tx), thread: Some(thread), _watcher: watcher })
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Drives `concurrency` keep-alive connections for `seconds` on a one-thread runtime.
pub(crate) fn load(
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, String)],
    body: Bytes,
    concurrency: usize,
    seconds: f64,
) -> Result<Measured> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let end = Instant::now() + Duration::from_secs_f64(seconds);
        let warm = Duration::from_millis(200).min(Duration::from_secs_f64(seconds / 4.0));
        let warm_end = Instant::now() + warm;
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (path, headers, body) = (path.to_string(), headers.to_vec(), body.clone());
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                let mut lat = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < end {
                    let mut req = Request::post(path.as_str()).header("host", addr.to_string());
                    for (k, v) in &headers {
                        req = req.header(*k, v);
                    }
                    let req = req.body(Full::new(body.clone()))?;
                    let t = Instant::now();
                    let resp = sender.send_request(req).await?;
                    let ok = resp.status().is_success();
                    resp.into_body().collect().await?;
                    if t >= warm_end {
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                        errors += (!ok) as u64;
                    }
                }
                anyhow::Ok((lat, errors))
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await??;
            all.extend(lat);
            errors += e;
        }
        Ok(summarise(all, seconds - warm.as_secs_f64(), errors))
    })
}

pub(crate) fn median(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mid = runs.len() / 2;
    let rps = runs[mid].rps;
    let mut p50: Vec<f64> = runs.iter().map(|m| m.p50_us).collect();
    let mut p99: Vec<f64> = runs.iter().map(|m| m.p99_us).collect();
    p50.sort_by(f64::total_cmp);
    p99.sort_by(f64::total_cmp);
    Measured { rps, p50_us: p50[mid], p99_us: p99[mid], errors: runs.iter().map(|m| m.errors).sum() }
}

fn summarise(mut lat: Vec<f64>, seconds: f64, errors: u64) -> Measured {
    lat.sort_by(f64::total_cmp);
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0.0);
    Measured { rps: lat.len() as f64 / seconds.max(1e-9), p50_us: pct(0.5), p99_us: pct(0.99), errors }
}
