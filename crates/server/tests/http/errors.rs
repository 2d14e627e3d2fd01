//! Bad input never panics and never gets a 5xx; overload and slowness get 429 and 504.

use std::sync::Arc;
use std::time::Duration;

use lathe_engine::{Loader, Servable};
use lathe_runtime::BatchConfig;
use lathe_server::Limits;
use lathe_types::{ApiError, DType, Signature, Tensor, TensorData, TensorSignature};
use serde_json::json;

use crate::common::*;

fn error_of(code_and_body: (u16, serde_json::Value)) -> (u16, String) {
    let (code, body) = code_and_body;
    (code, body["error"].as_str().unwrap_or_else(|| panic!("no error field in {body}")).to_string())
}

#[test]
fn bad_requests_get_4xx_in_the_protocol_shape() {
    let s = TestServer::with_mnist();
    let row: Vec<u8> = vec![0; 784];
    let v2 = |body: serde_json::Value| error_of(s.post("/v2/models/mnist/infer", body.to_string().as_bytes()));
    let input = |shape: serde_json::Value, dtype: &str, data: serde_json::Value| {
        let tensor = json!({"name": "input", "shape": shape, "datatype": dtype, "data": data});
        json!({ "inputs": [tensor] })
    };
    let cases: Vec<((u16, String), u16, &str)> = vec![
        (error_of(s.post("/v2/models/mnist/infer", b"{not json")), 400, "malformed inference request"),
        (error_of(s.post("/v2/models/mnist/infer", b"NaN")), 400, "malformed inference request"),
        (v2(input(json!([1, 27, 28]), "FP32", json!(vec![0; 756]))), 400, "does not match the model's [-1, 28, 28]"),
        (
            v2(input(json!([1, 28, 28]), "FP32", json!(vec![0; 5]))),
            400,
            "data has 5 elements, shape [1, 28, 28] needs 784",
        ),
        (v2(input(json!([1, 784]), "BYTES", json!(vec!["a"; 784]))), 400, "datatype BYTES cannot be converted"),
        (v2(input(json!([1, 784]), "FP32", json!(vec!["a"; 784]))), 400, "expected a number, got a string"),
        (v2(input(json!([1, 784]), "UINT8", json!(vec![300; 784]))), 400, "expected an integer in the range of u8"),
        (v2(input(json!([100000, 100000, 100000]), "FP32", json!([]))), 400, "has more than"),
        (v2(input(json!([-1, 784]), "FP32", json!([]))), 400, "negative dimension"),
        (v2(json!({"inputs": []})), 400, "expected inputs [\"input\"], got []"),
        (
            v2(json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "UINT8", "data": row},
                              {"name": "extra", "shape": [1], "datatype": "FP32", "data": [1]}]})),
            400,
            "expected inputs [\"input\"], got [\"input\", \"extra\"]",
        ),
        (
            v2(json!({"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": row}]})),
            400,
            "missing input \"input\"",
        ),
        (v2(json!({"inputz": []})), 400, "unknown field `inputz`"),
        (
            v2(json!({
                "inputs": [{"name": "input", "shape": [1, 784], "datatype": "UINT8", "data": row}],
                "outputs": [{"name": "logits"}]
            })),
            400,
            "unknown output \"logits\"",
        ),
        (error_of(s.post("/v2/models/nope/infer", b"{}")), 404, "model \"nope\" not found"),
        (
            error_of(s.post("/v2/models/mnist/versions/7/infer", b"{}")),
            404,
            "version 7 of model \"mnist\" is not served",
        ),
        (error_of(s.post("/v2/models/mnist/versions/x/infer", b"{}")), 400, "invalid version \"x\""),
        (error_of(s.get("/v2/models/mnist/versions/9")), 404, "version 9"),
        (
            error_of(s.post("/v1/models/mnist/labels/canary:predict", b"{}")),
            404,
            "model \"mnist\" has no label \"canary\"",
        ),
        (error_of(s.post("/v1/models/mnist:predict", b"[")), 400, "malformed JSON request"),
        (
            error_of(s.post("/v1/models/mnist:predict", json!({"instances": [[1, 2]]}).to_string().as_bytes())),
            400,
            "does not match the model's",
        ),
        (
            error_of(s.post(
                "/v1/models/mnist:predict",
                json!({"instances": [row.clone()], "inputs": [row.clone()]}).to_string().as_bytes(),
            )),
            400,
            "not both",
        ),
        (
            error_of(s.post("/v1/models/mnist:predict", json!({"instances": []}).to_string().as_bytes())),
            400,
            "the list is empty",
        ),
        (error_of(s.post("/v1/models/mnist:frobnicate", b"{}")), 400, "unknown method :frobnicate"),
        (error_of(s.post("/v1/models/mnist/versions/1/labels/x:predict", b"{}")), 400, "malformed request path"),
        (error_of(s.get("/v2/nothing")), 404, "no route for GET /v2/nothing"),
        (error_of(s.post("/v2/repository/index", b"[1]")), 400, "expected a JSON object"),
    ];
    for ((code, msg), want_code, needle) in cases {
        assert_eq!(code, want_code, "{msg}");
        assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
    }
    // The server is still healthy after all of that.
    assert_eq!(s.get("/v2/health/ready").0, 200);
}

#[test]
fn bodies_over_the_limit_get_413() {
    let dir = tempfile::tempdir().unwrap();
    publish(&lathe_registry::Repository::new(dir.path()), "mnist");
    let s = TestServer::start(
        dir,
        Setup { limits: Limits { max_body_bytes: 1000, ..Limits::default() }, ..Setup::default() },
    );
    let big = vec![b' '; 5000];
    let (code, body) = s.post("/v2/models/mnist/infer", &big);
    assert_eq!(code, 413);
    assert_eq!(body["error"], "request body is larger than the limit of 1000 bytes");
    assert_eq!(s.post("/v1/models/mnist:predict", &big).0, 413);
}

/// A model that sleeps through every batch, to fill queues and exceed deadlines on purpose.
struct Slow(Signature, Duration);

impl Servable for Slow {
    fn signature(&self) -> &Signature {
        &self.0
    }
    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ApiError> {
        std::thread::sleep(self.1);
        let n = inputs[0].rows();
        Ok(vec![Tensor { name: "y".into(), shape: vec![n, 1], data: TensorData::F32(vec![1.0; n]) }])
    }
    fn platform(&self) -> &str {
        "test_slow"
    }
}

struct SlowLoader(Duration);

impl Loader for SlowLoader {
    fn load(&self, _: &std::path::Path, _: &lathe_formats::Manifest) -> Result<Arc<dyn Servable>, String> {
        Ok(Arc::new(Slow(
            Signature {
                inputs: vec![TensorSignature { name: "input".into(), datatype: DType::F32, shape: vec![-1, 28, 28] }],
                outputs: vec![TensorSignature { name: "y".into(), datatype: DType::F32, shape: vec![-1, 1] }],
            },
            self.0,
        )))
    }
}

fn slow_server(sleep: Duration, defaults: BatchConfig, limits: Limits) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    publish(&lathe_registry::Repository::new(dir.path()), "mnist");
    TestServer::start(dir, Setup { defaults, limits, loader: Arc::new(SlowLoader(sleep)), ..Setup::default() })
}

fn small_body() -> String {
    json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": vec![0.0; 784]}]}).to_string()
}

#[test]
fn full_queues_get_429_with_retry_after() {
    let defaults = BatchConfig { max_batch_size: 1, max_queue_size: 1, ..BatchConfig::default() };
    let s = slow_server(Duration::from_secs(1), defaults, Limits::default());
    let body = small_body();
    let results: Vec<RawResponse> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..6).map(|_| scope.spawn(|| s.post_raw("/v2/models/mnist/infer", &[], body.as_bytes()))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let codes: Vec<u16> = results.iter().map(|r| r.0).collect();
    assert!(codes.contains(&200), "{codes:?}");
    let rejected = results.iter().find(|r| r.0 == 429).unwrap_or_else(|| panic!("no 429 in {codes:?}"));
    assert!(rejected.1.iter().any(|(k, v)| k.eq_ignore_ascii_case("retry-after") && v == "1"));
    assert!(String::from_utf8_lossy(&rejected.2).contains("queue is full"));
    assert!(codes.iter().all(|c| [200, 429].contains(c)), "{codes:?}");
}

#[test]
fn slow_requests_get_504() {
    let limits = Limits { request_timeout: Duration::from_millis(100), ..Limits::default() };
    let s = slow_server(Duration::from_millis(400), BatchConfig::default(), limits);
    let (code, _, body) = s.post_raw("/v2/models/mnist/infer", &[], small_body().as_bytes());
    assert_eq!(code, 504);
    assert!(String::from_utf8_lossy(&body).contains("the request took longer than 100 ms"));
}

#[test]
fn shutdown_lets_in_flight_requests_finish() {
    let s = slow_server(Duration::from_millis(300), BatchConfig::default(), Limits::default());
    let body = small_body();
    let base = s.base.clone();
    let in_flight = std::thread::spawn(move || {
        let mut r = agent().post(format!("{base}/v2/models/mnist/infer")).send(body.as_bytes()).unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    });
    std::thread::sleep(Duration::from_millis(100));
    let base = s.base.clone();
    drop(s); // graceful shutdown: waits for the request above
    let (code, body) = in_flight.join().unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(agent().get(format!("{base}/v2/health/live")).call().is_err(), "no longer accepting connections");
}

#[test]
fn wrong_methods_get_405_in_the_error_shape() {
    let s = TestServer::with_mnist();
    let (code, body) = s.post("/v2/health/live", b"");
    assert_eq!(code, 405);
    assert_eq!(body["error"], "method POST is not allowed on /v2/health/live");
    let r = agent().delete(format!("{}/v2/models/mnist/infer", s.base)).call().unwrap();
    assert_eq!(r.status().as_u16(), 405);
}
