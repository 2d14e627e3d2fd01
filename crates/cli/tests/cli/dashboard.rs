//! The `/ui` dashboard in a real browser: headless Chromium from Debian's packages, driven by
//! Playwright for Python (`crates/cli/tests/ui/dashboard.py`) against a `lathe serve` holding
//! an MNIST classifier in two versions, SmolLM2 and all-MiniLM-L6-v2, with API keys.
//!
//! Screenshots of every page are written to `target/ui-screenshots/` of the checkout.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

fn new_key(cwd: &Path, name: &str, scope: &str) -> String {
    let out = ok(&lathe(cwd, &["keys", "new", "--name", name, "--scope", scope, "--file", "keys.json", "--json"]));
    last_json(&out)["key"].as_str().unwrap().to_string()
}

/// `digits` v1 (a small subset, quickly) and v2 (all of MNIST, the reference MLP), `smol`, `minilm`.
fn fill_repository(cwd: &Path) {
    let subset = mnist_subset(cwd, 2000, 500);
    let spec = example("mnist-mlp.yaml");
    let spec = spec.to_str().unwrap();
    for data in [subset, mnist()] {
        ok(&lathe(cwd, &["train", "--spec", spec, "--data", data.to_str().unwrap(), "--name", "digits", "--json"]));
    }
    let gguf = shared().join("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    ok(&lathe(cwd, &["import", "gguf", gguf.to_str().unwrap(), "--name", "smol", "--json"]));
    let minilm = shared().join("models/all-MiniLM-L6-v2");
    ok(&lathe(cwd, &["import", "hf", minilm.to_str().unwrap(), "--name", "minilm", "--json"]));
}

fn wait_ready(base: &str, model: &str, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    loop {
        let url = format!("{base}/v2/models/{model}/ready");
        let status = agent.get(&url).header("Authorization", &format!("Bearer {key}")).call().map(|r| r.status());
        if status.is_ok_and(|s| s == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{model} never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_dashboard_works_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    fill_repository(cwd);
    let admin = new_key(cwd, "ops", "admin");
    let read = new_key(cwd, "dash", "read");
    let dataset = mnist_subset(&cwd.join("upload"), 2000, 500);
    let server = start_server_with(cwd, &["--api-keys-file", "keys.json"]);
    for model in ["digits", "smol", "minilm"] {
        wait_ready(&server.base, model, &admin);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/dashboard.py");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    let out = Command::new("python3")
        .arg(&script)
        .args([&server.base, &admin, &read])
        .arg(&shots)
        .arg(&dataset)
        .output()
        .expect("python3 runs (Playwright for Python and Debian's chromium are needed: see .ci/run)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(out.status.success(), "the browser checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("dashboard: every check passed"), "{stdout}");
    for page in ["models", "model", "draw-7", "draw-3", "metrics", "jobs", "chat", "embeddings"] {
        assert!(shots.join(format!("{page}.png")).is_file(), "no screenshot of {page}");
    }
}
