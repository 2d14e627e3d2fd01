//! Requests exactly as clients send them: compressed bodies, TF Serving's bare number tokens,
//! and the errors of malformed requests, each over real HTTP with a real body.

use std::io::Write;

use lathe_registry::Repository;
use lathe_server::Limits;
use serde_json::{json, Value};

use crate::common::*;

fn predict_body() -> (Vec<u8>, u8) {
    let (images, labels) = test_images(1);
    (json!({ "instances": [images[0]] }).to_string().into_bytes(), labels[0])
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn predicted(body: &[u8]) -> usize {
    let v: Value = serde_json::from_slice(body).unwrap();
    let row: Vec<f64> = v["predictions"][0].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    argmax(&row)
}

fn error_of(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn gzip_zlib_and_raw_deflate_bodies_are_decoded() {
    let s = TestServer::with_mnist();
    let (body, label) = predict_body();
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(&body).unwrap();
    let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    raw.write_all(&body).unwrap();
    for (coding, bytes) in
        [("gzip", gzip(&body)), ("deflate", zlib.finish().unwrap()), ("deflate", raw.finish().unwrap())]
    {
        let headers = [("content-encoding", coding.to_string())];
        let (code, _, out) = s.post_raw("/v1/models/mnist:predict", &headers, &bytes);
        assert_eq!(code, 200, "{coding}: {}", String::from_utf8_lossy(&out));
        assert_eq!(predicted(&out), label as usize, "{coding}");
    }
    // Every route: V2 too.
    let v2 = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 784], "data": vec![0.0; 784]}]});
    let headers = [("content-encoding", "gzip".to_string())];
    let (code, _, out) = s.post_raw("/v2/models/mnist/infer", &headers, &gzip(v2.to_string().as_bytes()));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&out));
}

#[test]
fn a_body_larger_than_the_limit_once_decoded_is_413_and_other_codings_415() {
    let dir = tempfile::tempdir().unwrap();
    publish(&Repository::new(dir.path()), "mnist");
    let limits = Limits { max_body_bytes: 64 << 10, ..Limits::default() };
    let s = TestServer::start(dir, Setup { limits, ..Setup::default() });
    // 1 MiB of JSON whitespace compresses to about 1 KiB: small on the wire, too large decoded.
    let mut bomb = b"{\"instances\": [".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 1 << 20));
    bomb.extend_from_slice(b"]}");
    let small = gzip(&bomb);
    assert!(small.len() < 8 << 10, "{} bytes compressed", small.len());
    let (code, _, out) = s.post_raw("/v1/models/mnist:predict", &[("content-encoding", "gzip".into())], &small);
    assert_eq!(code, 413, "{}", String::from_utf8_lossy(&out));
    assert!(error_of(&out).contains("larger than the limit of 65536 bytes once decoded"), "{}", error_of(&out));

    let (body, _) = predict_body();
    let (code, _, out) = s.post_raw("/v1/models/mnist:predict", &[("content-encoding", "br".into())], &body);
    assert_eq!(code, 415, "{}", String::from_utf8_lossy(&out));
    assert_eq!(error_of(&out), "Content-Encoding \"br\" is not supported; send one of identity, gzip, deflate");
    let (code, _, out) = s.post_raw("/v1/models/mnist:predict", &[("content-encoding", "gzip".into())], &body);
    assert_eq!(code, 400, "a plain body labelled gzip: {}", String::from_utf8_lossy(&out));
    assert!(error_of(&out).starts_with("Content-Encoding gzip: the body is not valid gzip data"));
}

#[test]
fn tf_serving_number_tokens_reach_the_finite_value_check() {
    let s = TestServer::with_mnist();
    let mut row = vec!["0".to_string(); 784];
    for (token, index) in [("NaN", 3), ("Infinity", 5), ("-Infinity", 7)] {
        row[index] = token.to_string();
        let body = format!("{{\"instances\": [[{}]]}}", row.join(", "));
        let (code, v) = s.post("/v1/models/mnist:predict", body.as_bytes());
        assert_eq!(code, 400, "{v}");
        let value = token.replace("Infinity", "inf");
        assert_eq!(v["error"], format!("input \"input\": element {index} is {value}, expected a finite number"));
        row[index] = "0".to_string();
    }
    // Inside strings the tokens are text, not numbers.
    let body = br#"{"instances": [{"input": "NaN"}]}"#;
    let (code, v) = s.post("/v1/models/mnist:predict", body);
    assert_eq!(code, 400, "{v}");
    assert!(!v["error"].as_str().unwrap().contains("finite"), "{v}");
}

#[test]
fn unknown_signatures_and_mixed_instances_are_clear_400s() {
    let s = TestServer::with_mnist();
    let zeros = vec![0; 784];
    let body = json!({"signature_name": "predict_images", "instances": [zeros]}).to_string();
    let (code, v) = s.post("/v1/models/mnist:predict", body.as_bytes());
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["error"], "signature_name \"predict_images\" not found; the model's signature is \"serving_default\"");
    let body = json!({"instances": [{"input": zeros}, zeros]}).to_string();
    let (code, v) = s.post("/v1/models/mnist:predict", body.as_bytes());
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["error"],
        "instances[1]: every instance must have the same form; instances[0] is an object of named inputs and \
         instances[1] is a bare value"
    );
}

#[test]
fn metadata_says_the_model_rescales_raw_pixels_itself() {
    let s = TestServer::with_mnist();
    let (code, v2) = s.get("/v2/models/mnist");
    assert_eq!(code, 200, "{v2}");
    let p = &v2["parameters"];
    assert_eq!(
        (&p["preprocessing"], &p["rescale_divisor"], &p["input_range"]),
        (&json!("rescale"), &json!(255.0), &json!("0-255"))
    );
    let said = p["preprocessing_description"].as_str().unwrap();
    assert!(said.contains("divides every value by 255 itself"), "{said}");
    assert!(said.contains("already scaled to [0, 1] give confident wrong answers"), "{said}");
    assert_eq!(v2["inputs"][0], json!({"name": "input", "datatype": "FP32", "shape": [-1, 28, 28]}));

    let (code, tfs) = s.get("/v1/models/mnist/metadata");
    assert_eq!(code, 200, "{tfs}");
    let entry = &tfs["metadata"]["preprocessing"];
    assert_eq!(entry["preprocessing"], "rescale", "{tfs}");
    assert_eq!(entry["preprocessing_description"], p["preprocessing_description"]);
    assert_eq!(entry["inputs"], json!({}), "no raw table columns");
    assert!(tfs["metadata"]["signature_def"]["signature_def"]["serving_default"].is_object(), "signature unchanged");
}
