//! Bad input: a one-line error naming the problem, a non-zero exit, and no version.

use std::path::Path;

use crate::common::*;

/// Runs a command that must fail with one error line containing `needle`; returns that line.
fn fails_with(cwd: &Path, args: &[&str], needle: &str) -> String {
    let out = lathe(cwd, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code for {args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line of error for {args:?}, got: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{args:?}: expected {needle:?} in {stderr}");
    assert!(version_dirs(cwd, "m").is_empty(), "no version published for {args:?}");
    lines[0].to_string()
}

#[test]
fn corrupt_data_bad_specs_and_missing_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let data = mnist_subset(cwd, 200, 50);
    let spec = write_spec(cwd, "small.yaml", SMALL_MLP);
    let (d, s) = (data.to_str().unwrap(), spec.to_str().unwrap());

    // Wrong magic number in the training images.
    let images = data.join("train-images-idx3-ubyte");
    let good = std::fs::read(&images).unwrap();
    let mut bad = good.clone();
    bad[3] = 1;
    std::fs::write(&images, &bad).unwrap();
    fails_with(
        cwd,
        &["train", "--spec", s, "--data", d, "--name", "m"],
        "wrong IDX magic number 0x00000801, expected 0x00000803",
    );
    // Truncated training images.
    std::fs::write(&images, &good[..good.len() - 100]).unwrap();
    fails_with(cwd, &["train", "--spec", s, "--data", d, "--name", "m"], "truncated IDX data");
    std::fs::write(&images, &good).unwrap();

    // A CSV with a non-numeric feature cell.
    std::fs::write(cwd.join("t.csv"), "a,b,label\n1,2,x\n3,oops,y\n").unwrap();
    let tab = write_spec(
        cwd,
        "tab.yaml",
        "input: {shape: [2]}\nlayers: \
        [{type: dense, units: 2, activation: softmax}]\
        \ncompile: {optimizer: adam, loss: sparse_categorical_crossentropy}\n",
    );
    fails_with(
        cwd,
        &["train", "--spec", tab.to_str().unwrap(), "--data", "t.csv", "--name", "m"],
        "line 3: column \"b\": expected a number, got \"oops\"",
    );

    // Specs: an unknown layer, an impossible shape, a negative unit count.
    let unknown = write_spec(cwd, "u.yaml", &SMALL_MLP.replace("type: dropout", "type: dropup"));
    fails_with(
        cwd,
        &["train", "--spec", unknown.to_str().unwrap(), "--data", d, "--name", "m"],
        "layers[2].type: unknown layer type \"dropup\"",
    );
    let impossible =
        write_spec(cwd, "i.yaml", &SMALL_MLP.replace("{type: flatten}", "{type: conv2d, filters: 4, kernel: 40}"));
    fails_with(
        cwd,
        &["train", "--spec", impossible.to_str().unwrap(), "--data", d, "--name", "m"],
        "layers[0]: impossible shape",
    );
    let negative = write_spec(cwd, "n.yaml", &SMALL_MLP.replace("units: 64", "units: -3"));
    fails_with(
        cwd,
        &["train", "--spec", negative.to_str().unwrap(), "--data", d, "--name", "m"],
        "layers[1].units: expected a positive integer or auto, got -3",
    );
    let mismatch = write_spec(cwd, "o.yaml", &SMALL_MLP.replace("units: 10", "units: 7"));
    fails_with(
        cwd,
        &["train", "--spec", mismatch.to_str().unwrap(), "--data", d, "--name", "m"],
        "the model outputs 7 values but the data has 10 classes",
    );

    // An IDX label outside the spec's classes: the sentence once, after the layer's path.
    let labels = data.join("train-labels-idx1-ubyte");
    let good_labels = std::fs::read(&labels).unwrap();
    let mut bad_labels = good_labels.clone();
    bad_labels[8 + 3] = 12;
    std::fs::write(&labels, &bad_labels).unwrap();
    let line = fails_with(
        cwd,
        &["train", "--spec", s, "--data", d, "--name", "m"],
        "error: layers[3]: the model outputs 10 values but the data has 11 classes",
    );
    assert_eq!(line.matches("the data has").count(), 1, "{line}");
    assert!(line.ends_with("\"9\", \"12\"]"), "{line}");
    std::fs::write(&labels, &good_labels).unwrap();
    // A spec error at the top level reads `path: message` too.
    let no_input = write_spec(cwd, "x.yaml", "layers: [{type: dense, units: 3}]\n");
    fails_with(
        cwd,
        &["train", "--spec", no_input.to_str().unwrap(), "--data", d, "--name", "m"],
        "x.yaml: input: missing required key",
    );

    // A missing data directory, a bad model name, and an unknown version.
    fails_with(
        cwd,
        &["train", "--spec", s, "--data", "no/such/dir", "--name", "m"],
        "data path no/such/dir does not exist",
    );
    fails_with(cwd, &["train", "--spec", s, "--data", d, "--name", "../m"], "invalid model name");
    fails_with(cwd, &["eval", "m:3", "--data", d], "model \"m\" not found");
}

#[test]
fn a_mistyped_cpu_cap_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = command(tmp.path(), &["models", "list"]).env("LATHE_CPU", "sse9").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim(), "error: LATHE_CPU=\"sse9\": expected generic, avx2 or avx512");
    let out = command(tmp.path(), &["models", "list"]).env("LATHE_CPU", "generic").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
