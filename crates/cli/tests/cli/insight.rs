//! `lathe explain` (a PNG overlay of a digit's attributions) and `lathe replay` (a request log
//! sent back to a server), end to end with the binary.

use serde_json::{json, Value};

use crate::common::*;

fn train_digits(cwd: &std::path::Path) {
    let data = mnist_subset(cwd, 2000, 200);
    let spec = write_spec(cwd, "mlp.yaml", SMALL_MLP);
    let args = ["train", "--spec", spec.to_str().unwrap(), "--data", data.to_str().unwrap(), "--name", "digits"];
    ok(&lathe(cwd, &args));
}

#[test]
fn explain_writes_an_overlay_and_the_attributions_are_complete() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    train_digits(cwd);
    let (pixels, label) = mnist_test_image(0);
    image::GrayImage::from_raw(28, 28, pixels).unwrap().save(cwd.join("digit.png")).unwrap();
    let args = ["explain", "digits", "--input", "digit.png", "--output", "seven.png", "--json"];
    let out = last_json(&ok(&lathe(cwd, &args)));
    let e = &out["explanations"][0];
    assert_eq!(e["method"], "integrated_gradients");
    assert_eq!(e["class"], label.to_string(), "{e}");
    let gap = e["convergence_delta"].as_f64().unwrap();
    let delta = e["score"].as_f64().unwrap() - e["baseline_score"].as_f64().unwrap();
    assert!(gap.abs() <= 0.05 * delta.abs(), "completeness gap {gap} of {delta}");
    let overlay = image::open(cwd.join("seven.png")).unwrap().to_rgb8();
    assert_eq!(overlay.dimensions(), (224, 224));
    let red = overlay.pixels().filter(|p| p[0] > 150 && p[1] < 80).count();
    assert!(red > 100, "the overlay shows where the digit raises its class ({red} red pixels)");
    let text = ok(&lathe(cwd, &["explain", "digits", "--input", "digit.png", "--method", "occlusion"]));
    assert!(text.contains("by occlusion") && text.contains("overlay written to explanation.png"), "{text}");
    let bad = lathe(cwd, &["explain", "digits", "--input", "digit.png", "--method", "lime"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected integrated_gradients, saliency or occlusion"));
}

#[test]
fn a_request_log_replays_against_the_server_with_the_same_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    train_digits(cwd);
    let log = cwd.join("requests.jsonl");
    let args = ["--request-log", log.to_str().unwrap(), "--request-log-sample", "1"];
    let server = start_server_with(cwd, &args);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let (pixels, _) = mnist_test_image(1);
    let good = json!({ "instances": [pixels] }).to_string();
    for (path, body) in [
        ("/v1/models/digits:predict", good.as_str()),
        ("/v1/models/digits:predict", "{\"instances\": [[1, 2]]}"),
        ("/v2/models/digits/infer", "{\"inputs\": []}"),
    ] {
        agent.post(format!("{}{path}", server.base)).header("content-type", "application/json").send(body).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() == 3 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let records: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let statuses: Vec<u64> = records.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 400, 400]);
    assert_eq!(records[0]["version"], Value::Null, "TF Serving answers do not name the version");
    let replay = last_json(&ok(&lathe(cwd, &["replay", "requests.jsonl", "--server", &server.base, "--json"])));
    assert_eq!(replay["sent"], 3);
    assert_eq!(replay["same_status"], 3, "{replay}");
}
