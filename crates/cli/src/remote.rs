//! A small client for a running `lathe serve`: JSON requests with the API key, the server's
//! `{"error": …}` turned into a one-line error.

use std::io::Read;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Where the server is and how to authenticate.
pub struct Remote {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

impl Remote {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, key: Option<String>) -> Remote {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        Remote { base: base.trim_end_matches('/').to_string(), key, agent }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn finish(
        &self,
        method: &str,
        path: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let mut r = r.with_context(|| format!("{method} {}", self.url(path)))?;
        let status = r.status().as_u16();
        let text = r.body_mut().with_config().limit(256 << 20).read_to_string().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            let msg = v.get("error").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| v.to_string());
            bail!("{method} {path}: {status}: {msg}");
        }
        Ok(v)
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.key {
            Some(k) => req.header("authorization", format!("Bearer {k}")),
            None => req,
        }
    }

    /// POSTs `body` with `headers` and returns the status and the answer's bytes, whatever
    /// the status (for replaying requests as they were).
    pub fn post_any(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let mut req = self.auth(self.agent.post(self.url(path)));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let mut r = req.send(body).with_context(|| format!("POST {}", self.url(path)))?;
        let bytes = r.body_mut().with_config().limit(256 << 20).read_to_vec().unwrap_or_default();
        Ok((r.status().as_u16(), bytes))
    }

    /// GET a JSON document.
    pub fn get(&self, path: &str) -> Result<Value> {
        let r = self.auth(self.agent.get(self.url(path))).call();
        self.finish("GET", path, r)
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> Result<Value> {
        let r = self.auth(self.agent.delete(self.url(path))).call();
        self.finish("DELETE", path, r)
    }

    /// POST a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send_json("POST", self.agent.post(self.url(path)), path, body)
    }

    /// PUT a JSON body.
    pub fn put_json(&self, path: &str, body: &Value) -> Result<Value> {
        self.send_json("PUT", self.agent.put(self.url(path)), path, body)
    }

    fn send_json(
        &self,
        method: &str,
        req: ureq::RequestBuilder<ureq::typestate::WithBody>,
        path: &str,
        body: &Value,
    ) -> Result<Value> {
        let r = self.auth(req).header("content-type", "application/json").send(body.to_string().as_bytes());
        self.finish(method, path, r)
    }

    /// PUT raw bytes streamed from a reader.
    pub fn put_stream(&self, path: &str, reader: impl Read + 'static) -> Result<Value> {
        let r = self.auth(self.agent.put(self.url(path))).send(ureq::SendBody::from_owned_reader(reader));
        self.finish("PUT", path, r)
    }

    /// Opens a server-sent event stream and calls `f(event, data)` for each event until it
    /// ends or `f` returns false.
    pub fn events(&self, path: &str, mut f: impl FnMut(&str, Value) -> bool) -> Result<()> {
        use std::io::BufRead;
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let r = self.auth(agent.get(self.url(path))).call().with_context(|| format!("GET {}", self.url(path)))?;
        if r.status().as_u16() >= 400 {
            return self.finish("GET", path, Ok(r)).map(|_| ());
        }
        let mut name = String::new();
        for line in std::io::BufReader::new(r.into_body().into_reader()).lines() {
            let line = line?;
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                if !f(&name, serde_json::from_str(d).unwrap_or(Value::Null)) {
                    break;
                }
            }
        }
        Ok(())
    }
}
