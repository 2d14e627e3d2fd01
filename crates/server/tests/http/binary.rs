//! The binary tensor data extension, checked byte by byte.

use serde_json::{json, Value};

use crate::common::*;

fn header_len(headers: &[(String, String)]) -> usize {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("inference-header-content-length"))
        .expect("Inference-Header-Content-Length on a binary response")
        .1
        .parse()
        .unwrap()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn binary_requests_and_responses_match_json() {
    let s = TestServer::with_mnist();
    let (images, _) = test_images(2);
    let pixels: Vec<f32> = images.concat().iter().map(|&p| p as f32).collect();

    // Reference over plain JSON.
    let body = json!({"inputs": [{"name": "input", "shape": [2, 28, 28], "datatype": "FP32", "data": pixels}]});
    let (_, reference) = s.post("/v2/models/mnist/infer", body.to_string().as_bytes());
    let want: Vec<f32> =
        reference["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();

    // Binary input, binary output for all outputs.
    let raw: Vec<u8> = pixels.iter().flat_map(|x| x.to_le_bytes()).collect();
    let header = json!({
        "inputs": [{
            "name": "input",
            "shape": [2, 28, 28],
            "datatype": "FP32",
            "parameters": {"binary_data_size": raw.len()}
        }],
        "parameters": {"binary_data_output": true},
    })
    .to_string();
    let mut body = header.as_bytes().to_vec();
    body.extend_from_slice(&raw);
    let headers = [
        ("inference-header-content-length", header.len().to_string()),
        ("content-type", "application/octet-stream".to_string()),
    ];
    let (code, hs, resp) = s.post_raw("/v2/models/mnist/infer", &headers, &body);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&resp));
    let n = header_len(&hs);
    let json: Value = serde_json::from_slice(&resp[..n]).unwrap();
    let out = &json["outputs"][0];
    assert_eq!(out["parameters"]["binary_data_size"], 80);
    assert!(out.get("data").is_none(), "binary outputs carry no data field");
    assert_eq!(resp.len(), n + 80, "the blob follows the JSON header exactly");
    assert_eq!(f32s(&resp[n..]), want, "binary output bits equal the JSON values");

    // Binary output chosen per output, with a UINT8 binary input (784 bytes per image).
    let header = json!({
        "inputs": [{
            "name": "input",
            "shape": [1, 28, 28],
            "datatype": "UINT8",
            "parameters": {"binary_data_size": 784}
        }],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}}],
    })
    .to_string();
    let mut body = header.as_bytes().to_vec();
    body.extend_from_slice(&images[0]);
    let (code, hs, resp) =
        s.post_raw("/v2/models/mnist/infer", &[("inference-header-content-length", header.len().to_string())], &body);
    assert_eq!(code, 200);
    let n = header_len(&hs);
    assert_eq!(f32s(&resp[n..]), want[..10]);

    // Raw body: the whole body is the only input, batch 1; outputs come back binary.
    let raw1: Vec<u8> = raw[..784 * 4].to_vec();
    let (code, hs, resp) =
        s.post_raw("/v2/models/mnist/infer", &[("inference-header-content-length", "0".to_string())], &raw1);
    assert_eq!(code, 200);
    let n = header_len(&hs);
    let json: Value = serde_json::from_slice(&resp[..n]).unwrap();
    assert_eq!(json["outputs"][0]["shape"], json!([1, 10]));
    assert_eq!(f32s(&resp[n..]), want[..10]);

    // Sizes that do not add up are 400s naming the problem.
    let (code, _, resp) =
        s.post_raw("/v2/models/mnist/infer", &[("inference-header-content-length", "0".to_string())], &raw1[..100]);
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&resp).contains("raw binary request: 100 bytes, expected 3136"));
    let (code, _, resp) =
        s.post_raw("/v2/models/mnist/infer", &[("inference-header-content-length", "99999".to_string())], b"{}");
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&resp).contains("Inference-Header-Content-Length is 99999"));
    let mut extra = body.clone();
    extra.push(0);
    let (code, _, resp) =
        s.post_raw("/v2/models/mnist/infer", &[("inference-header-content-length", header.len().to_string())], &extra);
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&resp).contains("1 binary bytes follow the JSON but no input claims them"));
    let nan: Vec<u8> = std::iter::repeat_n(f32::NAN.to_le_bytes(), 784).flatten().collect();
    let (code, _, resp) =
        s.post_raw("/v2/models/mnist/infer", &[("inference-header-content-length", "0".to_string())], &nan);
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&resp).contains("element 0 is NaN, expected a finite number"));
}
