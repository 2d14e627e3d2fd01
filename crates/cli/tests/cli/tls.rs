//! HTTPS with rustls and CORS for browsers, checked with real curl.

use std::process::Command;

use crate::common::*;

#[test]
fn https_and_cors() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .current_dir(cwd)
        .output()
        .expect("openssl is needed to make a test certificate");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (mut server, first) =
        spawn_serve(cwd, &["--tls-cert", "cert.pem", "--tls-key", "key.pem", "--cors-origin", "https://app.example"]);
    assert_eq!(first["scheme"], "https");
    let addr = first["address"].as_str().unwrap().to_string();
    let curl = |args: &[&str]| {
        Command::new("curl").args(["-s", "--cacert"]).arg(cwd.join("cert.pem")).args(args).output().expect("curl")
    };
    let live = curl(&[&format!("https://{addr}/v2/health/live")]);
    assert_eq!(String::from_utf8_lossy(&live.stdout), r#"{"live":true}"#);
    let plain = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{addr}/v2/health/live")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "000", "no plain HTTP on a TLS port");
    let preflight = curl(&[
        "-i",
        "-X",
        "OPTIONS",
        "-H",
        "Origin: https://app.example",
        "-H",
        "Access-Control-Request-Method: POST",
        &format!("https://{addr}/v2/models/m/infer"),
    ]);
    let text = String::from_utf8_lossy(&preflight.stdout).to_lowercase();
    assert!(text.contains("access-control-allow-origin: https://app.example"), "{text}");
    let other = curl(&["-i", "-H", "Origin: https://evil.example", &format!("https://{addr}/v2/health/live")]);
    assert!(
        !String::from_utf8_lossy(&other.stdout).to_lowercase().contains("access-control-allow-origin"),
        "other origins get no CORS grant"
    );
    let _ = server.kill();
    let _ = server.wait();
}
