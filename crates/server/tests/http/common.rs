//! Fixtures: a trained MNIST model in a temporary repository, a server on a free port, a client.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lathe_engine::Loader;
use lathe_registry::Repository;
use lathe_runtime::{BatchConfig, Manager, ServeOptions, Watcher};
use lathe_sequential::SequentialLoader;
use lathe_server::{AppState, Limits, ServerMetrics};
use lathe_train::data::{Dataset, LoadOptions};
use lathe_train::{fit, prepare, version_files, DataSource, FitOptions};
use serde_json::Value;

/// Real MNIST (`LATHE_TEST_DATA`, default `../shared` next to the checkout).
pub fn mnist() -> PathBuf {
    let shared = std::env::var_os("LATHE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("data/mnist");
    assert!(
        dir.join("t10k-images-idx3-ubyte.gz").is_file(),
        "missing test data {} (set LATHE_TEST_DATA)",
        dir.display()
    );
    dir
}

/// Files (weights, statistics, manifest) of a small MLP trained for one epoch on real MNIST,
/// built once.
pub fn trained_version() -> &'static lathe_train::VersionFiles {
    static V: OnceLock<lathe_train::VersionFiles> = OnceLock::new();
    V.get_or_init(|| {
        let spec = lathe_formats::Spec::from_yaml_str(
            "input: {shape: [28, 28], preprocessing: {kind: rescale, divisor: 255}}
layers: [{type: flatten}, {type: dense, units: 32, activation: relu}, {type: dense, units: 10, activation: softmax}]
compile: {optimizer: {type: adam, lr: 0.003}, loss: sparse_categorical_crossentropy}
fit: {epochs: 1, batch_size: 64}",
        )
        .unwrap();
        let data = Dataset::load(&mnist(), &LoadOptions::default()).unwrap();
        let prepared = prepare(&spec, data, 0.2, 1).unwrap();
        let mut ignore = |_: &lathe_train::Event| {};
        let r = fit(
            &spec,
            &prepared,
            FitOptions { seed: 1, threads: 1, stop: None, checkpoints: None, resume: false, on_event: &mut ignore },
        )
        .unwrap();
        let src = DataSource { source: "mnist", format: "idx", feature_names: &[] };
        version_files("mnist", &spec, &prepared, &src, &r).unwrap()
    })
}

/// Publishes the trained model as the next version of `name`.
pub fn publish(repo: &Repository, name: &str) -> u64 {
    let version = trained_version();
    let mut m = version.manifest.clone();
    m.name = name.to_string();
    repo.publish(name, &version.files(), m).unwrap().version
}

/// The first `n` MNIST test images as raw pixel rows, and their labels.
pub fn test_images(n: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let images = lathe_train::data::read_idx(&mnist().join("t10k-images-idx3-ubyte.gz"), 3).unwrap();
    let labels = lathe_train::data::read_idx(&mnist().join("t10k-labels-idx1-ubyte.gz"), 1).unwrap();
    ((0..n).map(|i| images.data[i * 784..(i + 1) * 784].to_vec()).collect(), labels.data[..n].to_vec())
}

/// Status, headers and body of a response.
pub type RawResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// A running server; dropped, it shuts down gracefully.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The router it serves.
    pub manager: Arc<Manager>,
    /// Temporary repository folder (kept alive with the server).
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _watcher: Watcher,
}

/// Settings for a test server.
pub struct Setup {
    pub defaults: BatchConfig,
    pub limits: Limits,
    pub loader: Arc<dyn Loader>,
    pub poll: Duration,
    pub keys: Arc<lathe_server::auth::KeyRing>,
    pub observe: Arc<lathe_server::observe::Observability>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            defaults: BatchConfig::default(),
            limits: Limits::default(),
            loader: Arc::new(SequentialLoader),
            poll: Duration::from_millis(100),
            keys: Arc::new(lathe_server::auth::KeyRing::open()),
            observe: lathe_server::observe::Observability::start(Default::default(), None),
        }
    }
}

impl TestServer {
    /// A server over a fresh repository holding `mnist` version 1.
    pub fn with_mnist() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        publish(&Repository::new(dir.path()), "mnist");
        TestServer::start(dir, Setup::default())
    }

    /// A server over `dir`; returns once every model is ready.
    pub fn start(dir: tempfile::TempDir, setup: Setup) -> TestServer {
        let repo = Repository::new(dir.path());
        let manager = Manager::new(
            repo,
            setup.loader,
            ServeOptions { defaults: setup.defaults, drain_timeout: Duration::from_secs(10), ..Default::default() },
        );
        let watcher = Watcher::start(manager.clone(), setup.poll);
        let state = AppState {
            manager: manager.clone(),
            metrics: Arc::new(ServerMetrics::default()),
            limits: setup.limits,
            keys: setup.keys,
            admin: None,
            observe: setup.observe,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                lathe_server::serve(listener, state, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        let server = TestServer {
            base: format!("http://{addr}"),
            manager,
            dir,
            stop: Some(stop_tx),
            thread: Some(thread),
            _watcher: watcher,
        };
        server.wait_until(|s| s.manager.is_ready(), "the server to become ready");
        server
    }

    /// Polls `cond` every 10 ms for up to 20 s.
    pub fn wait_until(&self, cond: impl Fn(&TestServer) -> bool, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !cond(self) {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The repository.
    pub fn repo(&self) -> Repository {
        Repository::new(self.dir.path())
    }

    /// GET, returning status and body.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = agent().get(format!("{}{path}", self.base)).call().unwrap();
        json_of(r)
    }

    /// POST a JSON body (any bytes), returning status and body.
    pub fn post(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let r =
            agent().post(format!("{}{path}", self.base)).header("content-type", "application/json").send(body).unwrap();
        json_of(r)
    }

    /// POST with headers, returning status, headers and raw body.
    pub fn post_raw(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut req = agent().post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let mut r = req.send(body).unwrap();
        let status = r.status().as_u16();
        let hs = r.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
        let body = r.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
        (status, hs, body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client that returns 4xx/5xx responses instead of errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn json_of(mut r: ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.body_mut().with_config().limit(1 << 30).read_to_string().unwrap();
    let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, v)
}

/// Index of the largest value.
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
