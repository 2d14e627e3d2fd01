//! `lathe serve --metadata postgres://…`: datasets, jobs, evaluations and the audit log kept in
//! a real Postgres server (started here), surviving a restart, with no SQLite file written.

use crate::cluster;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

fn call(s: &Server, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{}{path}", s.base);
    let mut r = match method {
        "GET" => agent.get(url).call(),
        "PUT" => agent.put(url).send(body),
        _ => agent.post(url).header("content-type", "application/json").send(body),
    }
    .unwrap();
    let code = r.status().as_u16();
    (code, serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null))
}

fn wait_for_job(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, job) = call(s, "GET", &format!("/v1/jobs/{id}"), b"");
        if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap_or("")) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} never finished: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn jobs_datasets_and_evaluations_live_in_postgres_and_survive_a_restart() {
    let cluster = cluster::Cluster::start(false);
    let url = cluster.database("lathe");
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let csv = linear_csv();
    let id = {
        let s = start_server_with(cwd, &["--metadata", &url, "--run-jobs"]);
        let (code, r) = call(&s, "PUT", "/v1/datasets/lin/files/data.csv", csv.as_bytes());
        assert_eq!(code, 201, "{r}");
        let (code, job) = call(&s, "POST", "/v1/jobs", linear_job(5).to_string().as_bytes());
        assert_eq!(code, 201, "{job}");
        let id = job["id"].as_str().unwrap().to_string();
        assert_eq!(wait_for_job(&s, &id)["state"], "succeeded");
        let (code, e) = call(&s, "POST", "/v1/evaluations", br#"{"model": "lin", "dataset": "lin"}"#);
        assert_eq!(code, 200, "{e}");
        id
    };
    // What the server recorded is in the database, read with a plain client.
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let job = db.query_one("SELECT state, version FROM jobs WHERE id = $1", &[&id]).unwrap();
    assert_eq!((job.get::<_, String>(0), job.get::<_, Option<i64>>(1)), ("succeeded".into(), Some(1)));
    let actions: Vec<String> =
        db.query("SELECT action FROM audit ORDER BY id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert!(actions.contains(&"job.submit".to_string()), "{actions:?}");
    let datasets: i64 = db.query_one("SELECT count(*) FROM datasets WHERE name = 'lin'", &[]).unwrap().get(0);
    assert_eq!(datasets, 1);
    assert!(!cwd.join("lathe-data/lathe.db").exists(), "no SQLite store is written with --metadata");
    // A new server on the same database sees it all.
    let s = start_server_with(cwd, &["--metadata", &url]);
    let (_, jobs) = call(&s, "GET", "/v1/jobs", b"");
    assert_eq!(jobs["jobs"][0]["id"], id, "{jobs}");
    let (_, evaluations) = call(&s, "GET", "/v1/evaluations?model=lin", b"");
    assert_eq!(evaluations["evaluations"].as_array().map(Vec::len), Some(1), "{evaluations}");
}

#[test]
fn a_metadata_url_of_another_kind_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = lathe(tmp.path(), &["serve", "--port", "0", "--metadata", "mysql://root:pw@db/lathe"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected sqlite://FILE or postgres://"), "{err}");
    assert!(!err.contains("pw@"), "{err}");
}
