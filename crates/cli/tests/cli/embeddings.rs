//! An imported sentence-transformers model served over OpenAI /v1/embeddings and V2.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::*;

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt())
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn openai_embeddings_and_v2_match_sentence_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let model_dir = shared().join("models/all-MiniLM-L6-v2");
    let out = last_json(&ok(&lathe(cwd, &["import", "hf", model_dir.to_str().unwrap(), "--name", "minilm", "--json"])));
    assert_eq!(out["version"], 1);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("repo/minilm/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["kind"], "sentence-embedding");
    assert!(manifest["files"]["1_Pooling/config.json"]["sha256"].is_string(), "every file is checksummed");
    assert_eq!(
        (manifest["spec"]["max_tokens"].as_u64(), manifest["spec"]["pooling"].as_str()),
        (Some(256), Some("mean"))
    );

    let (mut server, first) = spawn_serve(cwd, &[]);
    let base = format!("http://{}", first["address"].as_str().unwrap());
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let post = |path: &str, body: &Value| -> (u16, Value) {
        let mut r = agent.post(format!("{base}{path}")).send(body.to_string().as_bytes()).unwrap();
        (r.status().as_u16(), serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while agent.get(format!("{base}/v2/models/minilm/ready")).call().map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(std::time::Instant::now() < deadline, "the model never became ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let reference: Value =
        serde_json::from_slice(&std::fs::read(model_dir.join("reference-embeddings.json")).unwrap()).unwrap();
    let sentences = reference["sentences"].clone();
    let (code, r) = post("/v1/embeddings", &json!({ "model": "minilm", "input": sentences }));
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["object"], "list");
    let want_tokens: usize =
        reference["input_ids"].as_array().unwrap().iter().map(|ids| ids.as_array().unwrap().len()).sum();
    assert_eq!(r["usage"]["prompt_tokens"], want_tokens);
    for (i, want) in reference["embeddings"].as_array().unwrap().iter().enumerate() {
        let got = floats(&r["data"][i]["embedding"]);
        assert_eq!(r["data"][i]["index"], i);
        let c = cosine(&got, &floats(want));
        assert!(c >= 0.9999, "sentence {i}: cosine {c}");
    }
    // Token-id inputs (the model's own ids, used as given) give the same vectors as the texts.
    let (code, by_ids) = post("/v1/embeddings", &json!({ "model": "minilm", "input": reference["input_ids"] }));
    assert_eq!(code, 200, "{by_ids}");
    assert_eq!(by_ids["usage"]["prompt_tokens"], want_tokens);
    for (i, want) in reference["embeddings"].as_array().unwrap().iter().enumerate() {
        let c = cosine(&floats(&by_ids["data"][i]["embedding"]), &floats(want));
        assert!(c >= 0.9999, "token ids of sentence {i}: cosine {c}");
    }
    let (code, one) = post("/v1/embeddings", &json!({ "model": "minilm", "input": reference["input_ids"][5] }));
    assert_eq!(code, 200, "{one}");
    assert!(cosine(&floats(&one["data"][0]["embedding"]), &floats(&r["data"][5]["embedding"])) > 0.99999);
    let (code, cut) = post("/v1/embeddings", &json!({ "model": "minilm", "input": [vec![1000; 300]] }));
    assert_eq!(code, 200, "{cut}");
    assert_eq!((cut["truncated_inputs"].clone(), cut["usage"]["prompt_tokens"].clone()), (json!([0]), json!(256)));
    // base64 and dimensions.
    let (_, b) = post(
        "/v1/embeddings",
        &json!({ "model": "minilm", "input": "Short", "encoding_format": "base64", "dimensions": 64 }),
    );
    let bytes = base64::engine::general_purpose::STANDARD.decode(b["data"][0]["embedding"].as_str().unwrap()).unwrap();
    let v: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(v.len(), 64);
    assert!((v.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() < 1e-5, "truncated vectors are renormalised");
    let full = floats(&r["data"][5]["embedding"]);
    assert!(cosine(&v.iter().map(|x| *x as f64).collect::<Vec<_>>(), &full[..64]) > 0.9999);
    // V2 infer with a BYTES input.
    let (code, v2) = post(
        "/v2/models/minilm/infer",
        &json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["Short"]}]}),
    );
    assert_eq!(code, 200, "{v2}");
    assert!(cosine(&floats(&v2["outputs"][0]["data"]), &full) > 0.99999);
    assert_eq!(v2["outputs"][1]["name"], "tokens");
    // V2 goes through the same embedding operation: `dimensions` and `truncate` parameters.
    let text_input = |text: &str| json!([{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]);
    let (code, narrow) =
        post("/v2/models/minilm/infer", &json!({"inputs": text_input("Short"), "parameters": {"dimensions": 64}}));
    assert_eq!(code, 200, "{narrow}");
    assert_eq!(narrow["outputs"][0]["shape"], json!([1, 64]));
    assert!(cosine(&floats(&narrow["outputs"][0]["data"]), &floats(&json!(v))) > 0.9999);
    let batches = || {
        let text = agent.get(format!("{base}/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
        let line = text.lines().find(|l| l.starts_with("lathe_inference_batch_size_count{model=\"minilm\""));
        line.and_then(|l| l.rsplit(' ').next()).unwrap().parse::<f64>().unwrap()
    };
    let before = batches();
    let refused = json!({"inputs": text_input(&"word ".repeat(400)), "parameters": {"truncate": false}});
    let (code, e) = post("/v2/models/minilm/infer", &refused);
    assert_eq!(code, 422, "{e}");
    assert!(e["error"].as_str().unwrap().contains("402 tokens, more than the model's limit of 256"), "{e}");
    let refused = json!({ "model": "minilm", "input": ["word ".repeat(400)], "truncate": false });
    assert_eq!(post("/v1/embeddings", &refused).0, 422);
    assert_eq!(batches(), before, "over-long inputs are refused before anything is computed");

    // Bad input: OpenAI's error envelope with the right status.
    let long = "word ".repeat(400);
    let cases = [
        (json!({ "model": "minilm", "input": [] }), 400, "the list is empty"),
        (json!({ "model": "minilm", "input": vec!["a"; 65] }), 422, "more than the limit of 64"),
        (
            json!({ "model": "minilm", "input": [long.clone()], "truncate": false }),
            422,
            "402 tokens, more than the model's limit of 256",
        ),
        (json!({ "model": "minilm", "input": ["ok", 3] }), 400, "input[1]: expected a string like input[0]"),
        (json!({ "model": "minilm", "input": [{"x": 1}] }), 400, "input[0]: expected a string, a token id or a list"),
        (json!({ "model": "minilm", "input": [101, -5, 102] }), 400, "input[1]: expected a token id"),
        (json!({ "model": "minilm", "input": [101, 2.5] }), 400, "input[1]: expected a token id"),
        (json!({ "model": "minilm", "input": [[101, 102], []] }), 400, "input[1]: the token list is empty"),
        (json!({ "model": "minilm", "input": [[101, 102], "x"] }), 400, "input[1]: expected a list of token ids"),
        (
            json!({ "model": "minilm", "input": [[101, 102], [101, 30522, 102]] }),
            400,
            "input[1]: token id 30522 is outside the vocabulary (0 to 30521)",
        ),
        (
            json!({ "model": "minilm", "input": [vec![1000; 300]], "truncate": false }),
            422,
            "300 tokens, more than the model's limit of 256",
        ),
        (json!({ "model": "nope", "input": "x" }), 404, "model \"nope\" not found"),
        (
            json!({ "model": "minilm", "input": "x", "dimensions": 999 }),
            400,
            "dimensions: expected an integer from 1 to 384",
        ),
        (json!({ "model": "minilm", "input": "x", "encoding_format": "hex" }), 400, "encoding_format"),
        (json!({ "model": "minilm", "inputs": "x" }), 400, "unknown field \"inputs\""),
    ];
    for (body, status, needle) in cases {
        let (code, e) = post("/v1/embeddings", &body);
        assert_eq!(code, status, "{e}");
        assert_eq!(e["error"]["code"], status);
        assert!(e["error"]["message"].as_str().unwrap().contains(needle), "expected {needle:?} in {e}");
        assert!(e["error"]["type"].is_string());
    }
    let (code, r) = post("/v1/embeddings", &json!({ "model": "minilm", "input": [long] }));
    assert_eq!(code, 200);
    assert_eq!(
        (r["truncated_inputs"].clone(), r["usage"]["prompt_tokens"].clone()),
        (json!([0]), json!(256)),
        "truncation is on by default and reported"
    );
    // Invalid UTF-8 in BYTES over the binary extension.
    let header =
        json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]})
            .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&2u32.to_le_bytes());
    body.extend_from_slice(&[0xff, 0xfe]);
    let mut resp = agent
        .post(format!("{base}/v2/models/minilm/infer"))
        .header("inference-header-content-length", header.len().to_string())
        .send(&body[..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.body_mut().read_to_string().unwrap().contains("not valid UTF-8"));
    let metrics = agent.get(format!("{base}/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
    for name in [
        "lathe_request_tokens_count{model=\"minilm\"}",
        "lathe_preprocess_duration_seconds_count{model=\"minilm\"}",
        "lathe_inference_batch_size_sum{model=\"minilm\",version=\"1\"}",
    ] {
        assert!(metrics.contains(name), "missing {name}");
    }
    let _ = server.kill();
    let _ = server.wait();
}
