//! Ctrl-C and SIGKILL during training: nothing is published, and `--resume` continues from the
//! last epoch checkpoint to exactly the result of an uninterrupted run.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::common::*;

const SIX_EPOCHS: &str = "
input: {shape: [28, 28], preprocessing: {kind: rescale, divisor: 255}}
layers:
  - {type: flatten}
  - {type: dense, units: 64, activation: relu}
  - {type: dropout, rate: 0.2}
  - {type: dense, units: 10, activation: softmax}
compile: {optimizer: {type: adam, lr: 0.001}, loss: sparse_categorical_crossentropy}
fit: {epochs: 6, batch_size: 32, seed: 5}
";

/// Starts a JSON training run and returns the child once `until` says stop reading.
fn start_until(cwd: &std::path::Path, spec: &str, data: &str, until: impl Fn(&Value) -> bool) -> std::process::Child {
    let mut child = command(cwd, &["train", "--spec", spec, "--data", data, "--name", "k", "--json", "--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if until(&event) {
            // Keep draining stdout so that the child never writes into a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return child;
        }
    }
    let status = child.wait();
    panic!("training ended ({status:?}) before the interruption point");
}

#[test]
fn sigkill_leaves_no_version_and_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let spec = write_spec(cwd, "six.yaml", SIX_EPOCHS);
    let (spec_s, data) = (spec.to_str().unwrap().to_string(), mnist());
    let data_s = data.to_str().unwrap();

    let mut child = start_until(cwd, &spec_s, data_s, |e| e["event"] == "epoch_end" && e["epoch"] == 2);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(version_dirs(cwd, "k").is_empty(), "no version after SIGKILL: {:?}", version_dirs(cwd, "k"));
    let state: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("repo/.checkpoints/k/checkpoint.json")).unwrap()).unwrap();
    let done = state["epochs_done"].as_u64().unwrap();
    assert!((1..=2).contains(&done), "checkpoint after epoch {done}");

    let out = ok(&lathe(
        cwd,
        &["train", "--spec", &spec_s, "--data", data_s, "--name", "k", "--json", "--resume", "--threads", "1"],
    ));
    let events: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!((events[0]["event"].as_str(), events[1]["event"].as_str()), (Some("prepared"), Some("resumed")));
    assert_eq!(events[1]["epochs_done"].as_u64(), Some(done));
    let trained: Vec<u64> =
        events.iter().filter(|e| e["event"] == "epoch_end").map(|e| e["epoch"].as_u64().unwrap()).collect();
    assert_eq!(trained, ((done + 1)..=6).collect::<Vec<_>>(), "only the missing epochs run");
    let resumed = events.last().unwrap().clone();
    assert_eq!(resumed["version"], 1);

    let full = last_json(&ok(&lathe(
        cwd,
        &["train", "--spec", &spec_s, "--data", data_s, "--name", "full", "--json", "--threads", "1"],
    )));
    assert_eq!(resumed["metrics"], full["metrics"], "resumed run equals the uninterrupted one");
    let show = last_json(&ok(&lathe(cwd, &["models", "show", "k", "--json"])));
    assert_eq!(show["training"]["resumed"], true);
    assert_eq!(show["history"].as_array().unwrap().len(), 6);
}

#[test]
fn ctrl_c_stops_at_a_batch_boundary_and_publishes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let spec = write_spec(cwd, "six.yaml", SIX_EPOCHS);
    let data = mnist();
    let child = start_until(cwd, spec.to_str().unwrap(), data.to_str().unwrap(), |e| e["event"] == "progress");
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("training interrupted at a batch boundary"));
    assert!(version_dirs(cwd, "k").is_empty());
}
