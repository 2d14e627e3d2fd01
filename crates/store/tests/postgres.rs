//! The Postgres store against a real server started here (Debian's Postgres, a temporary
//! cluster on loopback): records, migrations under concurrent starts, TLS with a private CA,
//! a lost connection, and errors that name the URL without its password.

mod support {
    pub mod cluster;
}

use lathe_store::{DatasetFile, DatasetRecord, EvaluationRecord, JobRecord, JobState, MetadataStore, PostgresStore};
use support::cluster::{make_certificates, Cluster};

fn job(id: &str, state: JobState, created_at: &str) -> JobRecord {
    JobRecord {
        id: id.into(),
        request: serde_json::json!({"name": "m", "dataset": "d"}),
        state,
        version: None,
        error: None,
        progress: None,
        created_at: created_at.into(),
        started_at: None,
        finished_at: None,
    }
}

#[test]
fn records_round_trip_and_survive_reopening() {
    let cluster = Cluster::start(false);
    let url = cluster.database("records");
    {
        let s = PostgresStore::open(&url).unwrap();
        let files = vec![DatasetFile { name: "data.csv".into(), bytes: 3, sha256: "ab".into() }];
        let summary = Some(serde_json::json!({"rows": 3}));
        let d =
            DatasetRecord { name: "prices".into(), files, summary, created_at: "t0".into(), updated_at: "t0".into() };
        s.put_dataset(&d).unwrap();
        s.put_dataset(&DatasetRecord { updated_at: "t1".into(), ..d.clone() }).unwrap();
        s.put_job(&job("a", JobState::Queued, "2026-01-01T00:00:00Z")).unwrap();
        let mut b = job("b", JobState::Running, "2026-01-02T00:00:00Z");
        s.put_job(&b).unwrap();
        b.state = JobState::Succeeded;
        b.version = Some(7);
        b.progress = Some(serde_json::json!({"epoch": 3}));
        s.put_job(&b).unwrap();
        let evaluation = |id: &str, version| EvaluationRecord {
            id: id.into(),
            model: "m".into(),
            version,
            dataset: "d".into(),
            dataset_sha256: "ff".into(),
            metrics: serde_json::json!({"accuracy": 0.9}),
            created_at: format!("t{version}"),
        };
        s.put_evaluation(&evaluation("e1", 1)).unwrap();
        s.put_evaluation(&evaluation("e2", 2)).unwrap();
        for action in ["job.submit", "label.set"] {
            s.audit("t", "ops", action, "m", "{}").unwrap();
        }
    }
    let s = PostgresStore::open(&url).unwrap();
    let d = s.dataset("prices").unwrap().unwrap();
    assert_eq!((d.files[0].bytes, d.updated_at.as_str(), d.summary.unwrap()["rows"].as_u64()), (3, "t1", Some(3)));
    assert_eq!(s.datasets().unwrap().len(), 1);
    let all: Vec<String> = s.jobs(&[]).unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(all, ["b", "a"], "newest first");
    let done = s.jobs(&[JobState::Succeeded]).unwrap();
    assert_eq!(
        (done.len(), done[0].version, done[0].progress.clone()),
        (1, Some(7), Some(serde_json::json!({"epoch": 3})))
    );
    assert_eq!(s.job("a").unwrap().unwrap().state, JobState::Queued);
    assert!(s.job("zz").unwrap().is_none());
    assert_eq!(s.evaluations(Some("m"), Some(2)).unwrap()[0].id, "e2");
    assert_eq!(s.evaluations(None, None).unwrap().len(), 2);
    assert_eq!(s.audit_log(1).unwrap()[0].action, "label.set");
    assert!(s.delete_dataset("prices").unwrap() && !s.delete_dataset("prices").unwrap());
}

#[test]
fn replicas_starting_together_migrate_once() {
    let cluster = Cluster::start(false);
    let url = cluster.database("together");
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::open(&url).map(|_| ()))
        })
        .collect();
    for o in opened {
        o.join().unwrap().unwrap();
    }
    let mut db = postgres::Client::connect(
        &format!("host=127.0.0.1 port={} user=lathe dbname=together", cluster.port),
        postgres::NoTls,
    )
    .unwrap();
    let rows = db.query("SELECT version FROM lathe_schema", &[]).unwrap();
    assert_eq!((rows.len(), rows[0].get::<_, i32>(0)), (1, 3), "one row, every migration applied once");
}

#[test]
fn tls_with_a_private_ca_is_verified() {
    let cluster = Cluster::start(true);
    let ca = cluster.dir.path().join("ca.pem");
    let url = format!("{}?sslmode=require&sslrootcert={}", cluster.database("secure"), ca.display());
    let s = PostgresStore::open(&url).unwrap();
    s.audit("t", "ops", "tls", "x", "{}").unwrap();
    let mut c = cluster.client();
    let ssl: bool = c
        .query_one(
            "SELECT bool_or(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE datname = 'secure'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(ssl, "the store's connection is not encrypted");
    // A certificate from another CA is refused.
    let other = tempfile::tempdir().unwrap();
    make_certificates(other.path(), "other");
    let wrong =
        format!("{}?sslmode=require&sslrootcert={}", cluster.database("wrong"), other.path().join("ca.pem").display());
    let e = PostgresStore::open(&wrong).err().expect("a certificate from another CA must be refused");
    assert!(e.to_string().contains("certificate"), "{e}");
}

#[test]
fn a_lost_connection_is_reopened() {
    let cluster = Cluster::start(false);
    let url = cluster.database("lost");
    let s = PostgresStore::open(&url).unwrap();
    s.audit("t", "ops", "before", "x", "{}").unwrap();
    cluster
        .client()
        .batch_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'lost'")
        .unwrap();
    // The call that finds the connection closed may fail; the next one reconnects.
    let _ = s.audit("t", "ops", "maybe", "x", "{}");
    s.audit("t", "ops", "after", "x", "{}").unwrap();
    assert_eq!(s.audit_log(1).unwrap()[0].action, "after");
}

#[test]
fn errors_name_the_url_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://lathe:hunter2@127.0.0.1:{port}/lathe");
    let e = PostgresStore::open(&url).err().unwrap().to_string();
    assert!(e.contains(&format!("postgres://lathe:***@127.0.0.1:{port}/lathe")), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = lathe_store::open(Some("mysql://x"), std::path::Path::new("unused.db")).err().unwrap().to_string();
    assert!(e.contains("expected sqlite://FILE or postgres://"), "{e}");
}

#[test]
fn shared_documents_are_compare_and_set_and_announced() {
    use lathe_registry::SharedDocuments;
    let cluster = Cluster::start(false);
    let url = cluster.database("documents");
    let (a, b) = (PostgresStore::open(&url).unwrap(), PostgresStore::open(&url).unwrap());
    let (heard_tx, heard) = std::sync::mpsc::channel::<String>();
    b.listen(move |model| {
        let _ = heard_tx.send(model.to_string());
    })
    .unwrap();
    assert_eq!(heard.recv_timeout(std::time::Duration::from_secs(5)).unwrap(), "", "a fresh listener asks for a sync");

    assert_eq!(a.read("m", "labels.json").unwrap(), None);
    assert!(a.write_if("m", "labels.json", Some(br#"{"stable":1}"#), None).unwrap());
    assert!(!b.write_if("m", "labels.json", Some(br#"{"stable":9}"#), None).unwrap(), "created once");
    let (body, revision) = b.read("m", "labels.json").unwrap().unwrap();
    assert_eq!(body, br#"{"stable":1}"#);
    // Two writers holding the same revision: the first wins, the second must read again.
    assert!(b.write_if("m", "labels.json", Some(br#"{"stable":2}"#), Some(&revision)).unwrap());
    assert!(!a.write_if("m", "labels.json", Some(br#"{"stable":3}"#), Some(&revision)).unwrap());
    assert_eq!(a.read("m", "labels.json").unwrap().unwrap().0, br#"{"stable":2}"#);
    let heard_model = heard.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(heard_model, "m", "a change is announced to listeners");

    let (_, latest) = a.read("m", "labels.json").unwrap().unwrap();
    assert!(!a.write_if("m", "labels.json", None, Some(&revision)).unwrap(), "a stale delete changes nothing");
    assert!(a.write_if("m", "labels.json", None, Some(&latest)).unwrap());
    assert!(a.write_if("m", "traffic.json", Some(b"{}"), None).unwrap());
    assert_eq!(b.all().unwrap(), vec![("m".to_string(), "traffic.json".to_string(), b"{}".to_vec())]);
    a.announce("other").unwrap();
    // A document removed and made again never repeats a revision a writer may still hold.
    let (_, held) = a.read("m", "traffic.json").unwrap().unwrap();
    assert!(a.write_if("m", "traffic.json", None, Some(&held)).unwrap());
    assert!(b.write_if("m", "traffic.json", Some(b"{\"routes\": []}"), None).unwrap());
    assert!(!a.write_if("m", "traffic.json", Some(b"{}"), Some(&held)).unwrap(), "a stale revision stays stale");
    let mut names: Vec<String> = heard.try_iter().collect();
    while !names.contains(&"other".to_string()) {
        names.push(heard.recv_timeout(std::time::Duration::from_secs(5)).unwrap());
    }
}

/// Claims and leases on `store` (and `other`, a second connection to the same database).
fn check_claims(store: &dyn MetadataStore, other: &dyn MetadataStore) {
    use std::time::Duration;
    for (i, id) in ["j1", "j2", "j3"].iter().enumerate() {
        store.put_job(&job(id, JobState::Queued, &format!("2026-01-0{}T00:00:00Z", i + 1))).unwrap();
    }
    let long = Duration::from_secs(60);
    let first = store.claim_job("w1", long).unwrap().unwrap();
    let second = other.claim_job("w2", long).unwrap().unwrap();
    assert_eq!((first.id.as_str(), second.id.as_str()), ("j1", "j2"), "oldest first, never twice");
    assert_eq!(first.state, JobState::Running);
    assert!(store.renew_job_lease("j1", "w1", long).unwrap());
    assert!(!store.renew_job_lease("j1", "w2", long).unwrap(), "only the owner renews");
    // A short lease that is not renewed expires, and another worker takes the job over.
    let third = store.claim_job("w1", Duration::from_millis(100)).unwrap().unwrap();
    assert_eq!(third.id, "j3");
    assert!(other.claim_job("w2", long).unwrap().is_none(), "nothing else is claimable yet");
    std::thread::sleep(Duration::from_millis(300));
    let taken = other.claim_job("w2", long).unwrap().unwrap();
    assert_eq!(taken.id, "j3", "an expired lease is claimable");
    assert!(!store.renew_job_lease("j3", "w1", long).unwrap(), "the first owner lost it");
    let mut done = store.job("j1").unwrap().unwrap();
    done.state = JobState::Cancelled;
    store.put_job(&done).unwrap();
    assert!(!store.renew_job_lease("j1", "w1", long).unwrap(), "a cancelled job's lease ends");
}

#[test]
fn jobs_are_claimed_once_and_leases_expire() {
    let cluster = Cluster::start(false);
    let url = cluster.database("claims");
    let (a, b) = (PostgresStore::open(&url).unwrap(), PostgresStore::open(&url).unwrap());
    check_claims(&a, &b);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = lathe_store::SqliteStore::open(&dir.path().join("lathe.db")).unwrap();
    let same_file = lathe_store::SqliteStore::open(&dir.path().join("lathe.db")).unwrap();
    check_claims(&sqlite, &same_file);
}
