//! An S3-compatible server on loopback for tests: moto's server mode (PyPI's `moto[server]`,
//! which `.ci/deps` installs), which honours conditional puts. One per test binary; it exits
//! when the test binary does (a watchdog thread in the server's process sees its parent go).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// moto's server, exiting when its parent process goes.
const WATCHED_MOTO: &str = "
import os, sys, threading, time
parent = os.getppid()
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
";

/// A running moto server.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Mutex<Child>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl S3Server {
    /// Starts moto on a free loopback port and waits until it answers.
    pub fn start() -> S3Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-c", WATCHED_MOTO, "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]'; .ci/deps installs it)");
        let server = S3Server { endpoint: format!("http://127.0.0.1:{port}"), child: Mutex::new(child) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&server.endpoint).call().is_err() {
            let exited = server.child.lock().unwrap().try_wait().unwrap();
            assert!(exited.is_none(), "moto's server exited: {exited:?}");
            assert!(Instant::now() < deadline, "moto's server did not answer at {}", server.endpoint);
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Creates `bucket` (moto accepts an unsigned `PUT /bucket`).
    pub fn create_bucket(&self, bucket: &str) {
        ureq::put(&format!("{}/{bucket}", self.endpoint)).send_empty().expect("create bucket");
    }

    /// The AWS settings that reach this server: endpoint, dummy credentials, region.
    pub fn settings(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "lathe-test"),
            ("AWS_SECRET_ACCESS_KEY", "lathe-test-secret"),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// The test binary's server, started on first use.
pub fn shared() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(S3Server::start)
}

/// A bucket of its own for one test.
pub fn fresh_bucket(test: &str) -> String {
    let bucket = format!("lathe-{}", test.replace('_', "-"));
    shared().create_bucket(&bucket);
    bucket
}
