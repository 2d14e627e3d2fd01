//! Language models served by `lathe serve`, driven by real clients: the `openai` Python
//! package (chat, streaming, completions), curl, bad input in OpenAI's error envelope, and a
//! client that goes away mid-stream.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// A server of SmolLM2, imported as `smol`, once it is ready.
fn serve_smollm2(cwd: &Path, args: &[&str]) -> Server {
    let gguf = shared().join("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    ok(&lathe(cwd, &["import", "gguf", gguf.to_str().unwrap(), "--name", "smol", "--json"]));
    let server = start_server_with(cwd, args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&server.base, "/v2/models/smol/ready").0 != 200 {
        assert!(Instant::now() < deadline, "the language model never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn get(base: &str, path: &str) -> (u16, String) {
    match agent().get(format!("{base}{path}")).call() {
        Ok(mut r) => (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

fn post(base: &str, path: &str, body: &str) -> (u16, Value) {
    let mut r = agent().post(format!("{base}{path}")).send(body.as_bytes()).unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    (r.status().as_u16(), serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The value of the series `name{…labels…}` in a /metrics text.
fn metric(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

const CLIENT: &str = r#"
import sys, openai
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused")
question = [{"role": "user", "content": "What is the capital of Germany?"}]
whole = client.chat.completions.create(model="smol", messages=question, temperature=0, max_tokens=24)
answer = whole.choices[0].message.content
assert "Berlin" in answer, whole
assert whole.choices[0].finish_reason == "stop" and whole.usage.prompt_tokens == 37, whole

parts, usage = [], None
stream = client.chat.completions.create(model="smol", messages=question, temperature=0, max_tokens=24,
                                        stream=True, stream_options={"include_usage": True})
for chunk in stream:
    if chunk.choices:
        parts.append(chunk.choices[0].delta.content or "")
    if chunk.usage:
        usage = chunk.usage
assert "".join(parts) == answer, (parts, answer)
assert usage.completion_tokens == whole.usage.completion_tokens and usage.prompt_tokens == 37, usage
assert usage.prompt_tokens_details.cached_tokens >= 32, usage

text = client.completions.create(model="smol", prompt="The capital of France is", max_tokens=8, temperature=0)
assert text.choices[0].text.startswith(" Paris"), text
streamed = "".join(c.choices[0].text for c in client.completions.create(
    model="smol", prompt="The capital of France is", max_tokens=8, temperature=0, stream=True) if c.choices)
assert streamed == text.choices[0].text, (streamed, text)

two = client.chat.completions.create(model="smol", messages=question, n=2, seed=3, max_tokens=6,
                                     logprobs=True, top_logprobs=2,
                                     extra_body={"top_k": 40, "some_future_field": 1})
assert [c.index for c in two.choices] == [0, 1], two
first = two.choices[0].logprobs.content[0]
assert len(first.top_logprobs) == 2 and first.logprob <= 0, first

assert any(m.id == "smol" for m in client.models.list().data)
try:
    client.chat.completions.create(model="nope", messages=question)
    raise SystemExit("expected an error for an unknown model")
except openai.NotFoundError as e:
    assert e.status_code == 404
print("ok")
"#;

#[test]
fn the_openai_package_and_curl_chat_stream_and_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_smollm2(tmp.path(), &[]);
    let script = tmp.path().join("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let out = Command::new("python3").arg(&script).arg(&server.base).output().expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the openai client failed (pip install openai):\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");

    let body = r#"{"model": "smol", "messages": [{"role": "user", "content": "What is the capital of Germany?"}],
        "temperature": 0}"#;
    let url = format!("{}/v1/chat/completions", server.base);
    let curl = Command::new("curl").args(["-sS", &url, "-H", "Content-Type: application/json", "-d", body]).output();
    let reply: Value = serde_json::from_slice(&curl.unwrap().stdout).unwrap();
    assert!(reply["choices"][0]["message"]["content"].as_str().unwrap().contains("Berlin"), "{reply}");
    let stream = json!({"model": "smol", "prompt": "Hello", "max_tokens": 4, "stream": true}).to_string();
    let curl = Command::new("curl").args(["-sSN", &format!("{}/v1/completions", server.base), "-d", &stream]).output();
    let events = String::from_utf8(curl.unwrap().stdout).unwrap();
    assert!(events.trim_end().ends_with("data: [DONE]"), "{events}");
    assert_eq!(events.matches("\"finish_reason\":\"length\"").count(), 1, "{events}");

    let (status, models) = get(&server.base, "/v1/models");
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!((status, &models["data"][0]["max_model_len"]), (200, &json!(8192)), "{models}");
    let (_, metrics) = get(&server.base, "/metrics");
    let label = "model=\"smol\"";
    assert!(metric(&metrics, "lathe_generation_time_to_first_token_seconds_count", label).unwrap() >= 6.0);
    assert!(metric(&metrics, "lathe_generation_prefix_cache_hits_total", label).unwrap() >= 32.0, "{metrics}");
    assert!(metric(&metrics, "lathe_generation_tokens_total", label).unwrap() > 0.0);
}

#[test]
fn bad_requests_get_openai_errors_naming_the_field_and_the_server_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_smollm2(tmp.path(), &["--max-n", "2"]);
    let user = json!([{"role": "user", "content": "Hi"}]);
    let long_prompt = "hello ".repeat(9000);
    let many_biases: serde_json::Map<String, Value> = (0..301).map(|i| (i.to_string(), json!(1))).collect();
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        ("/v1/chat/completions", json!({"model": "nope", "messages": user}), 404, "model", "not found"),
        ("/v1/chat/completions", json!({"model": "smol", "messages": []}), 400, "messages", "at least one"),
        (
            "/v1/chat/completions",
            json!({"model": "smol", "messages": [{"role": "robot", "content": "x"}]}),
            400,
            "messages",
            "messages[0].role: expected system, developer, user or assistant",
        ),
        ("/v1/chat/completions", json!({"model": "smol", "messages": user, "max_tokens": 0}), 400, "max_tokens", ""),
        ("/v1/chat/completions", json!({"model": "smol", "messages": user, "max_tokens": -5}), 400, "max_tokens", ""),
        (
            "/v1/chat/completions",
            json!({"model": "smol", "messages": user, "max_tokens": 9000}),
            400,
            "max_tokens",
            "plus max_tokens 9000 exceed the model's context of 8192 tokens",
        ),
        (
            "/v1/completions",
            json!({"model": "smol", "prompt": long_prompt}),
            400,
            "prompt",
            "tokens do not fit the model's context of 8192 tokens",
        ),
        ("/v1/chat/completions", json!({"model": "smol", "messages": user, "temperature": -1}), 400, "temperature", ""),
        ("/v1/chat/completions", json!({"model": "smol", "messages": user, "n": 3}), 400, "n", "--max-n"),
        (
            "/v1/chat/completions",
            json!({"model": "smol", "messages": user, "logit_bias": {"x": 1}}),
            400,
            "logit_bias",
            "",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "smol", "messages": user, "logit_bias": {"99999999": 1}}),
            400,
            "logit_bias",
            "expected an id below 49152",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "smol", "messages": user, "logit_bias": {"5": 500}}),
            400,
            "logit_bias",
            "",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "smol", "messages": user, "tools": [{"type": "function", "function": {"name": "f"}}]}),
            400,
            "tools",
            "not supported",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "smol", "messages": user, "response_format": {"type": "json_object"}}),
            400,
            "response_format",
            "",
        ),
        ("/v1/completions", json!({"model": "smol", "prompt": "a", "best_of": 3}), 400, "best_of", ""),
        (
            "/v1/completions",
            json!({"model": "smol", "prompt": "a", "logit_bias": many_biases}),
            400,
            "logit_bias",
            "301 entries, more than 300",
        ),
        (
            "/v1/completions",
            json!({"model": "smol", "prompt": "a", "repetition_penalty": 5}),
            400,
            "repetition_penalty",
            "at most 2",
        ),
        ("/v1/completions", json!({"model": "smol", "prompt": [1, 99999999]}), 400, "prompt", "outside the vocabulary"),
        ("/v1/completions", json!({"model": "smol", "prompt": "a", "suffix": "z"}), 400, "suffix", ""),
    ];
    for (path, body, status, param, message) in cases {
        let (got, reply) = post(&server.base, path, &body.to_string());
        let error = &reply["error"];
        assert_eq!(got, status, "{body}: {reply}");
        assert_eq!((error["param"].as_str(), error["code"].as_u64()), (Some(param), Some(status as u64)), "{reply}");
        assert!(error["message"].as_str().unwrap().contains(message), "{body}: {reply}");
        assert!(error["type"].is_string(), "{reply}");
    }
    let (status, reply) = post(&server.base, "/v1/chat/completions", "{not json");
    assert_eq!((status, reply["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{reply}");
    let good = json!({"model": "smol", "messages": user, "max_tokens": 2}).to_string();
    assert_eq!(post(&server.base, "/v1/chat/completions", &good).0, 200, "the server still answers");
}

#[test]
fn a_client_that_disconnects_mid_stream_frees_its_sequence_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_smollm2(tmp.path(), &[]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let body = json!({"model": "smol", "prompt": "Count from one to a thousand:", "max_tokens": 4000,
        "ignore_eos": true, "temperature": 0, "stream": true})
    .to_string();
    let mut conn = TcpStream::connect(&addr).unwrap();
    let head = format!("POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n");
    let request = format!("{head}Content-Length: {}\r\n\r\n{body}", body.len());
    conn.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut events = 0;
    let mut line = String::new();
    while events < 5 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended early");
        events += line.starts_with("data: ") as usize;
    }
    let running = |text: &str| metric(text, "lathe_generation_requests_running", "model=\"smol\"");
    assert_eq!(running(&get(&server.base, "/metrics").1), Some(1.0), "the sequence runs while streaming");
    conn.shutdown(std::net::Shutdown::Both).unwrap();
    drop((reader, conn));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, text) = get(&server.base, "/metrics");
        let usage = metric(&text, "lathe_generation_kv_cache_usage_ratio", "model=\"smol\"");
        let aborted = metric(&text, "lathe_generation_requests_finished_total", "finished_reason=\"abort\"");
        if running(&text) == Some(0.0) && usage == Some(0.0) && aborted == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the sequence was not freed:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a streaming completion on a raw connection and reads until its first text event.
fn open_stream(addr: &str, max_tokens: usize) -> (TcpStream, BufReader<TcpStream>) {
    let body = json!({"model": "smol", "prompt": "Once upon a time", "max_tokens": max_tokens,
        "ignore_eos": true, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}})
    .to_string();
    let mut conn = TcpStream::connect(addr).unwrap();
    let head = format!("POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n");
    conn.write_all(format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended before its first event");
    }
    (conn, reader)
}

/// The rest of a stream's events until `data: [DONE]`.
fn read_to_done(reader: &mut BufReader<TcpStream>) -> Vec<Value> {
    let mut events = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream was cut before [DONE]");
        match line.trim_end().strip_prefix("data: ") {
            Some("[DONE]") => return events,
            Some(data) => events.push(serde_json::from_str(data).unwrap()),
            None => {}
        }
    }
}

#[test]
fn tokenize_detokenize_and_tritons_generate_extension() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_smollm2(tmp.path(), &[]);
    let (status, t) = post(&server.base, "/tokenize", r#"{"model": "smol", "prompt": "The capital of France is"}"#);
    assert_eq!((status, t["count"].as_u64(), t["max_model_len"].as_u64()), (200, Some(5), Some(8192)), "{t}");
    let (status, d) = post(&server.base, "/detokenize", &json!({"model": "smol", "tokens": t["tokens"]}).to_string());
    assert_eq!((status, d["prompt"].as_str()), (200, Some("The capital of France is")), "{d}");
    let chat = json!({"messages": [{"role": "user", "content": "What is the capital of Germany?"}]}).to_string();
    let (_, c) = post(&server.base, "/tokenize", &chat);
    assert_eq!(c["count"], 37, "the chat template applies, and model may be left out with one LLM: {c}");
    let (status, e) = post(&server.base, "/detokenize", r#"{"tokens": [1, 99999999]}"#);
    assert_eq!((status, e["error"]["param"].as_str()), (400, Some("tokens")), "{e}");

    let body = r#"{"text_input": "The capital of France is", "parameters": {"max_tokens": 8, "temperature": 0}}"#;
    let (status, g) = post(&server.base, "/v2/models/smol/generate", body);
    assert_eq!((status, g["model_name"].as_str(), g["model_version"].as_str()), (200, Some("smol"), Some("1")));
    assert!(g["text_output"].as_str().unwrap().starts_with(" Paris"), "{g}");
    let url = format!("{}/v2/models/smol/versions/1/generate_stream", server.base);
    let out = Command::new("curl").args(["-sSN", &url, "-d", body]).output().unwrap();
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").map(|d| serde_json::from_str(d).unwrap()))
        .collect();
    let text: String = events.iter().map(|e| e["text_output"].as_str().unwrap()).collect();
    assert_eq!(text, g["text_output"].as_str().unwrap());
    assert_eq!(events.last().unwrap()["finish_reason"], "length");
    let (status, e) = post(&server.base, "/v2/models/smol/generate", r#"{"parameters": {}}"#);
    assert_eq!((status, e["error"].as_str()), (400, Some("text_input: expected a string")), "{e}");
}

#[test]
fn a_full_waiting_queue_answers_429() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_smollm2(tmp.path(), &["--max-num-seqs", "1", "--max-waiting-seqs", "1"]);
    let addr = server.base.trim_start_matches("http://").to_string();
    // Minutes of decoding: it holds the only place in the running batch until it is dropped.
    let (running, reader) = open_stream(&addr, 4000);
    // The gauges are published after each step: wait for the step's own figures, so that the
    // first request (waiting before it was scheduled) is not taken for the second one.
    let gauge = |name: &str| metric(&get(&server.base, "/metrics").1, name, "smol");
    let deadline = Instant::now() + Duration::from_secs(30);
    while (gauge("lathe_generation_requests_running"), gauge("lathe_generation_requests_waiting"))
        != (Some(1.0), Some(0.0))
    {
        assert!(Instant::now() < deadline, "the first request never ran alone");
        std::thread::sleep(Duration::from_millis(10));
    }
    let body = json!({"model": "smol", "prompt": "Hello", "max_tokens": 4}).to_string();
    let waiting = std::thread::spawn({
        let base = server.base.clone();
        move || post(&base, "/v1/completions", &body)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while gauge("lathe_generation_requests_waiting") != Some(1.0) {
        assert!(Instant::now() < deadline, "the second request never waited");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, e) = post(&server.base, "/v1/completions", r#"{"model": "smol", "prompt": "Hi"}"#);
    let metrics = get(&server.base, "/metrics").1;
    assert_eq!((status, e["error"]["type"].as_str()), (429, Some("rate_limit_error")), "{e}\n{metrics}");
    running.shutdown(std::net::Shutdown::Both).unwrap();
    drop((running, reader));
    let (status, done) = waiting.join().unwrap();
    assert_eq!((status, &done["usage"]["completion_tokens"]), (200, &json!(4)), "the waiting request ran: {done}");
}

#[test]
fn a_new_version_does_not_cut_running_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let server = serve_smollm2(cwd, &[]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let (_conn, mut stream) = open_stream(&addr, 1000);
    // Version 2 is published while the stream runs; it swaps in, the stream goes on.
    let gguf = shared().join("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    ok(&lathe(cwd, &["import", "gguf", gguf.to_str().unwrap(), "--name", "smol", "--json"]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&server.base, "/v2/models/smol/versions/2/ready").0 != 200 {
        assert!(Instant::now() < deadline, "version 2 never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, g) = post(&server.base, "/v2/models/smol/generate", r#"{"text_input": "Hi", "max_tokens": 2}"#);
    assert_eq!((status, g["model_version"].as_str()), (200, Some("2")), "{g}");
    let events = read_to_done(&mut stream);
    let texts = events.iter().filter(|e| e["choices"][0]["text"].as_str().is_some_and(|t| !t.is_empty())).count();
    assert!(texts > 10, "the stream was still running after the swap ({texts} more text events)");
    let usage = &events.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 1000, "the stream ran to its end on version 1: {usage}");
    let finish: Vec<&Value> = events.iter().filter_map(|e| e["choices"][0].get("finish_reason")).collect();
    assert_eq!(finish.last().unwrap().as_str(), Some("length"));
}
