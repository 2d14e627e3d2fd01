//! `--repo s3://…`: versions trained into an S3-compatible store (moto on loopback) are served
//! by a server with a cache of its own, and new ones reach it while it runs.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::s3;

/// `lathe --repo s3://BUCKET/models --repo-cache CACHE --s3-allow-http ARGS` in `cwd`, with
/// the test server's AWS settings and none of the caller's LATHE_* ones.
pub(crate) fn lathe_s3(cwd: &Path, bucket: &str, cache: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lathe"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LATHE_") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.envs(s3::shared().settings());
    let repo = format!("s3://{bucket}/models");
    c.current_dir(cwd).args(["--repo", &repo, "--repo-cache", cache, "--s3-allow-http"]).args(args);
    c
}

pub(crate) fn run_lathe(c: &mut Command) -> Output {
    c.output().expect("run lathe")
}

fn train(cwd: &Path, bucket: &str, data: &Path, spec: &Path) -> u64 {
    let args = ["train", "--spec", spec.to_str().unwrap(), "--data", data.to_str().unwrap(), "--name", "digits"];
    let out = ok(&run_lathe(lathe_s3(cwd, bucket, "cache-trainer", &args).arg("--json")));
    last_json(&out)["version"].as_u64().unwrap()
}

pub(crate) fn served_versions(base: &str) -> Vec<u64> {
    served_versions_of(base, "digits")
}

/// The versions of `model` that `base` serves (AVAILABLE), ascending.
pub(crate) fn served_versions_of(base: &str, model: &str) -> Vec<u64> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let Ok(mut answer) = agent.get(&format!("{base}/v1/models/{model}")).call() else { return vec![] };
    let text = answer.body_mut().read_to_string().unwrap_or_default();
    let status: Value = serde_json::from_str(&text).unwrap_or_default();
    let mut out: Vec<u64> = status["model_version_status"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["state"] == "AVAILABLE")
        .filter_map(|v| v["version"].as_str()?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

fn wait_for(base: &str, versions: &[u64], within: Duration) -> Duration {
    let start = Instant::now();
    while served_versions(base) != versions {
        assert!(
            start.elapsed() < within,
            "versions {versions:?} not served within {within:?}: {:?}",
            served_versions(base)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
fn versions_trained_into_s3_are_served_from_a_cache_of_the_servers_own() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let bucket = s3::fresh_bucket("cli-serve");
    let data = mnist_subset(cwd, 1000, 200);
    let spec = write_spec(cwd, "small.yaml", SMALL_MLP);
    assert_eq!(train(cwd, &bucket, &data, &spec), 1);
    let mut serve = lathe_s3(cwd, &bucket, "cache-server", &["serve", "--port", "0", "--json", "--poll-seconds", "1"]);
    let (child, first) = spawn_listening(&mut serve);
    let server = Server { child, base: format!("http://{}", first["address"].as_str().unwrap()) };
    assert_eq!(first["repo"], format!("s3://{bucket}/models"));
    wait_for(&server.base, &[1], Duration::from_secs(60));
    assert_eq!(train(cwd, &bucket, &data, &spec), 2);
    let took = wait_for(&server.base, &[2], Duration::from_secs(5));
    eprintln!("version 2 served {took:?} after its publish");
    let cached = cwd.join("cache-server/digits/2/weights.safetensors");
    assert!(cached.is_file(), "the server's cache holds the version it serves");
    // Another cache reads the same store: a prediction with version 2.
    let (pixels, label) = mnist_test_image(0);
    image::GrayImage::from_raw(28, 28, pixels).unwrap().save(cwd.join("digit.png")).unwrap();
    let predict = ["predict", "digits:2", "--input", "digit.png", "--json"];
    let answer = last_json(&ok(&run_lathe(&mut lathe_s3(cwd, &bucket, "cache-cli", &predict))));
    assert_eq!(answer["version"], 2, "{answer}");
    assert_eq!(answer["predictions"].as_array().map(Vec::len), Some(1), "{answer}, label {label}");
    assert!(cwd.join("cache-cli/digits/2/manifest.json").is_file());
}

#[test]
fn a_plain_http_endpoint_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let c = lathe_s3(dir.path(), "nothing", "cache", &["models", "list"]);
    let args: Vec<String> =
        c.get_args().map(|a| a.to_string_lossy().into_owned()).filter(|a| a != "--s3-allow-http").collect();
    let mut refused = Command::new(c.get_program());
    refused.current_dir(dir.path()).envs(s3::shared().settings()).args(&args).env_remove("LATHE_S3_ALLOW_HTTP");
    let out = run_lathe(&mut refused);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plain HTTP") && stderr.contains("--s3-allow-http"), "{stderr}");
}
