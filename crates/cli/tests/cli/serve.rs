//! `lathe serve` as a process: it reports where it listens, serves what `lathe train`
//! publishes, and exits 0 on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

#[test]
fn serve_picks_up_a_trained_version_and_stops_gracefully_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let data = mnist_subset(cwd, 2000, 200);
    let spec = write_spec(cwd, "small.yaml", SMALL_MLP);
    let mut child = command(cwd, &["serve", "--port", "0", "--json", "--poll-seconds", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "listening");
    let base = format!("http://{}", first["address"].as_str().unwrap());
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let status = |path: &str| agent.get(format!("{base}{path}")).call().map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(status("/v2/health/live"), 200);
    assert_eq!(status("/v2/models/digits/ready"), 404, "nothing published yet");

    // Another process publishes a version; the server loads it without a restart.
    ok(&lathe(
        cwd,
        &["train", "--spec", spec.to_str().unwrap(), "--data", data.to_str().unwrap(), "--name", "digits", "--json"],
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while status("/v2/models/digits/ready") != 200 {
        assert!(Instant::now() < deadline, "the published version never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (pixels, label) = mnist_test_image(0);
    let body = serde_json::json!({ "instances": [pixels] }).to_string();
    let mut r = agent.post(format!("{base}/v1/models/digits:predict")).send(body.as_bytes()).unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let row: Vec<f64> = v["predictions"][0].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let best = (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
    assert_eq!(best, label as usize);

    // SIGTERM: stop accepting, drain, exit 0.
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
