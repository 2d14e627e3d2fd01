//! Server-sent events of generations: one task per response forwards the choices' deltas as
//! `data: <json>` events and stops (dropping the choices, so their sequences are freed) the
//! moment the client goes away.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use futures_util::stream::{self, Stream, StreamExt};
use lathe_runtime::generation::Delta;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::Choice;

/// How a protocol writes its events.
pub trait Encoder: Send + 'static {
    /// The events for `delta` of choice `choice` (may be none).
    fn delta(&mut self, choice: usize, delta: &Delta) -> Vec<Value>;
    /// The events after every choice has finished (a usage chunk).
    fn finish(&mut self) -> Vec<Value> {
        Vec::new()
    }
    /// Whether the stream ends with `data: [DONE]` (OpenAI) or just ends (Triton).
    fn done_marker(&self) -> bool {
        true
    }
    /// The event of an error after the response began (OpenAI's envelope, as vLLM sends it).
    fn error(&self, message: &str) -> Value {
        json!({"error": {"message": message, "type": "server_error", "param": null, "code": 500}})
    }
}

/// A choice's deltas, ending with `Err` when the scheduler stopped before it finished.
fn deltas(index: usize, choice: Choice) -> impl Stream<Item = (usize, Result<Delta, ()>)> + Send {
    stream::unfold((choice.rx, false), move |(mut rx, ended)| async move {
        if ended {
            return None;
        }
        match rx.recv().await {
            Some(d) => {
                let last = d.finished.is_some();
                Some(((index, Ok(d)), (rx, last)))
            }
            None => Some(((index, Err(())), (rx, true))),
        }
    })
}

fn event(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// The streaming response: `first` events, then each delta as `encoder` writes it, then its
/// closing events and `data: [DONE]`.
pub fn sse(choices: Vec<Choice>, first: Vec<Value>, mut encoder: impl Encoder) -> Response {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for v in &first {
            if tx.send(event(v)).await.is_err() {
                return;
            }
        }
        let mut merged = stream::select_all(choices.into_iter().enumerate().map(|(i, c)| deltas(i, c).boxed()));
        loop {
            let item = tokio::select! {
                _ = tx.closed() => return, // the client went away: the choices drop here
                item = merged.next() => item,
            };
            let events = match item {
                None => break,
                Some((i, Ok(delta))) => encoder.delta(i, &delta),
                Some((_, Err(()))) => {
                    let error = encoder.error("generation stopped before the sequence finished");
                    let _ = tx.send(event(&error)).await;
                    break;
                }
            };
            for v in &events {
                if tx.send(event(v)).await.is_err() {
                    return;
                }
            }
        }
        for v in &encoder.finish() {
            if tx.send(event(v)).await.is_err() {
                return;
            }
        }
        if encoder.done_marker() {
            let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
        }
    });
    let body = stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(Ok::<_, Infallible>)));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
