//! Optimistic promotion: label and traffic changes with `If-Match` (one of two concurrent
//! changes expecting the same value wins, the other gets 409), and without it as before.

use std::sync::{Arc, Barrier};

use serde_json::Value;

use crate::common::*;

fn send(base: &str, method: &str, path: &str, if_match: Option<&str>, body: &str) -> (u16, Option<String>, Value) {
    let url = format!("{base}{path}");
    let agent = agent();
    let mut r = match (method, if_match) {
        ("PUT", Some(tag)) => agent.put(url).header("If-Match", tag).send(body.as_bytes()),
        ("PUT", None) => agent.put(url).send(body.as_bytes()),
        ("DELETE", Some(tag)) => agent.delete(url).header("If-Match", tag).call(),
        ("DELETE", None) => agent.delete(url).call(),
        _ => agent.get(url).call(),
    }
    .unwrap();
    let etag = r.headers().get("etag").map(|v| v.to_str().unwrap().to_string());
    let text = r.body_mut().read_to_string().unwrap();
    (r.status().as_u16(), etag, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn two_promotions_expecting_the_same_label_one_wins_the_other_is_409() {
    let s = TestServer::with_mnist();
    publish(&s.repo(), "mnist");
    let (code, tag, _) = send(&s.base, "PUT", "/v1/models/mnist/labels/stable", None, r#"{"version": 1}"#);
    assert_eq!((code, tag.as_deref()), (200, Some("\"1\"")));
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (base, barrier) = (s.base.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                send(&base, "PUT", "/v1/models/mnist/labels/stable", Some("\"1\""), r#"{"version": 2}"#)
            })
        })
        .collect();
    let mut outcomes: Vec<(u16, Value)> =
        racers.into_iter().map(|r| r.join().unwrap()).map(|(c, _, b)| (c, b)).collect();
    outcomes.sort_by_key(|o| o.0);
    assert_eq!((outcomes[0].0, outcomes[1].0), (200, 409), "{outcomes:?}");
    let message = outcomes[1].1["error"].as_str().unwrap();
    assert!(message.contains("label \"stable\" of model \"mnist\" is \"2\", not \"1\""), "{message}");
    assert_eq!(s.repo().labels("mnist").unwrap()["stable"], 2);
    // A stale removal is refused too; the current value (quotes optional) is accepted.
    assert_eq!(send(&s.base, "DELETE", "/v1/models/mnist/labels/stable", Some("1"), "").0, 409);
    assert_eq!(send(&s.base, "DELETE", "/v1/models/mnist/labels/stable", Some("2"), "").0, 200);
    // Without If-Match the last writer wins, as before.
    assert_eq!(send(&s.base, "PUT", "/v1/models/mnist/labels/stable", None, r#"{"version": 1}"#).0, 200);
}

#[test]
fn traffic_changes_carry_the_policy_tag() {
    let s = TestServer::with_mnist();
    publish(&s.repo(), "mnist");
    let (code, none, _) = send(&s.base, "GET", "/v1/models/mnist/traffic", None, "");
    assert_eq!((code, none.as_deref()), (200, Some("\"none\"")));
    let split = r#"{"routes": [{"target": "1", "weight": 50}, {"target": "2", "weight": 50}]}"#;
    let (code, tag, _) = send(&s.base, "PUT", "/v1/models/mnist/traffic", Some("\"none\""), split);
    assert_eq!(code, 200);
    let tag = tag.unwrap();
    assert_eq!(send(&s.base, "GET", "/v1/models/mnist/traffic", None, "").1.as_deref(), Some(tag.as_str()));
    let (code, _, body) = send(&s.base, "PUT", "/v1/models/mnist/traffic", Some("\"none\""), split);
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("the traffic policy of model \"mnist\" is"), "{body}");
    assert_eq!(send(&s.base, "DELETE", "/v1/models/mnist/traffic", Some("\"stale\""), "").0, 409);
    assert!(s.repo().traffic("mnist").unwrap().is_some(), "a refused change changes nothing");
    assert_eq!(send(&s.base, "DELETE", "/v1/models/mnist/traffic", Some(&tag), "").0, 200);
    assert!(s.repo().traffic("mnist").unwrap().is_none());
}
