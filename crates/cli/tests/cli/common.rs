//! Helpers: the binary, the shared data, scratch folders, MNIST subsets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The shared read-only material (`LATHE_TEST_DATA`, default `../shared` next to the checkout).
pub fn shared() -> PathBuf {
    std::env::var_os("LATHE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// The real MNIST folder; fails with the missing file's name when it is absent.
pub fn mnist() -> PathBuf {
    let dir = shared().join("data/mnist");
    for f in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        assert!(dir.join(f).is_file(), "missing test data {} (set LATHE_TEST_DATA)", dir.join(f).display());
    }
    dir
}

/// An example spec of this repository.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

/// Runs `lathe` in `cwd` with a repository under it.
pub fn lathe(cwd: &Path, args: &[&str]) -> Output {
    command(cwd, args).output().expect("run lathe")
}

/// A `lathe` command in `cwd`, repository `cwd/repo`, without the caller's LATHE_* settings.
pub fn command(cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lathe"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LATHE_") {
            c.env_remove(k);
        }
    }
    c.current_dir(cwd).arg("--repo").arg(cwd.join("repo")).args(args);
    c
}

/// Asserts success and returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "lathe failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The last JSON line of a `--json` run.
pub fn last_json(stdout: &str) -> Value {
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).expect("a JSON line");
    serde_json::from_str(line).unwrap()
}

/// Numbered version folders of `name` in the test repository.
pub fn version_dirs(cwd: &Path, name: &str) -> Vec<String> {
    let dir = cwd.join("repo").join(name);
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn write_idx(path: &Path, dims: &[usize], data: &[u8]) {
    let mut b = vec![0u8, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

/// Writes the first `train` / `test` samples of the real MNIST as raw (uncompressed) IDX.
pub fn mnist_subset(dir: &Path, train: usize, test: usize) -> PathBuf {
    let out = dir.join("mnist-subset");
    std::fs::create_dir_all(&out).unwrap();
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let images = lathe_train::data::read_idx(&mnist().join(format!("{prefix}-images-idx3-ubyte.gz")), 3).unwrap();
        let labels = lathe_train::data::read_idx(&mnist().join(format!("{prefix}-labels-idx1-ubyte.gz")), 1).unwrap();
        write_idx(&out.join(format!("{prefix}-images-idx3-ubyte")), &[n, 28, 28], &images.data[..n * 784]);
        write_idx(&out.join(format!("{prefix}-labels-idx1-ubyte")), &[n], &labels.data[..n]);
    }
    out
}

/// The i-th test image of real MNIST and its label.
pub fn mnist_test_image(i: usize) -> (Vec<u8>, u8) {
    let images = lathe_train::data::read_idx(&mnist().join("t10k-images-idx3-ubyte.gz"), 3).unwrap();
    let labels = lathe_train::data::read_idx(&mnist().join("t10k-labels-idx1-ubyte.gz"), 1).unwrap();
    (images.data[i * 784..(i + 1) * 784].to_vec(), labels.data[i])
}

/// A small spec file written into `dir`.
pub fn write_spec(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p
}

/// A quick MLP for MNIST subsets.
pub const SMALL_MLP: &str = "
input: {shape: [28, 28], preprocessing: {kind: rescale, divisor: 255}}
layers:
  - {type: flatten}
  - {type: dense, units: 64, activation: relu}
  - {type: dropout, rate: 0.1}
  - {type: dense, units: 10, activation: softmax}
compile: {optimizer: {type: adam, lr: 0.002}, loss: sparse_categorical_crossentropy}
fit: {epochs: 3, batch_size: 32, seed: 7}
";

/// Starts `lathe serve --port 0 --json ARGS` in `cwd`; returns the child and its
/// `listening` event (stdout keeps being drained so the server never blocks on it).
pub fn spawn_serve(cwd: &Path, args: &[&str]) -> (std::process::Child, Value) {
    let mut all = vec!["serve", "--port", "0", "--json"];
    all.extend_from_slice(args);
    spawn_listening(&mut command(cwd, &all))
}

/// Spawns `serve` (a `lathe serve --json` command) and returns the child and its `listening`
/// event; stdout keeps being drained.
pub fn spawn_listening(serve: &mut Command) -> (std::process::Child, Value) {
    use std::io::{BufRead, BufReader};
    let mut child = serve.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "listening");
    std::thread::spawn(move || lines.for_each(drop));
    (child, first)
}

/// A `lathe serve` process and its base URL; killed on drop.
pub struct Server {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lathe serve` in `cwd` polling the repository every 0.2 s, with `extra` arguments.
pub fn start_server_with(cwd: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--poll-seconds", "0.2"];
    args.extend_from_slice(extra);
    let (child, first) = spawn_serve(cwd, &args);
    Server { child, base: format!("http://{}", first["address"].as_str().unwrap()) }
}

/// 300 rows of `a,b,y` with `y = 2a - b + 5`: a small regression table for jobs.
pub fn linear_csv() -> String {
    let mut csv = String::from("a,b,y\n");
    for i in 0..300 {
        let (a, b) = ((i % 37) as f64 / 7.0, (i % 23) as f64 / 5.0);
        csv.push_str(&format!("{a},{b},{}\n", 2.0 * a - b + 5.0));
    }
    csv
}

/// The body of `POST /v1/jobs` training model `lin` on dataset `lin` (`linear_csv`) for
/// `epochs` epochs.
pub fn linear_job(epochs: u32) -> Value {
    let spec = serde_json::json!({
        "input": {"preprocessing": "standardize"},
        "layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": "auto"}],
        "compile": {"optimizer": {"type": "adam", "lr": 0.01}, "loss": "mse"},
        "fit": {"epochs": epochs},
    });
    serde_json::json!({"name": "lin", "spec": spec, "dataset": "lin", "label_column": "y"})
}
