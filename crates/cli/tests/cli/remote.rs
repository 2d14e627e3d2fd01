//! The `lathe` CLI against a running server with API keys: datasets, jobs, models, traffic.

use serde_json::Value;

use crate::common::*;

#[test]
fn the_cli_drives_a_secured_server() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let key = ok(&lathe(cwd, &["keys", "new", "--name", "ops", "--scope", "admin", "--file", "keys.json"]))
        .trim()
        .to_string();
    let read_key = ok(&lathe(cwd, &["keys", "new", "--name", "dash", "--scope", "read", "--file", "keys.json"]))
        .trim()
        .to_string();
    let keys: Value = serde_json::from_slice(&std::fs::read(cwd.join("keys.json")).unwrap()).unwrap();
    assert!(!keys.to_string().contains(&key), "the keys file holds digests only");
    let (mut server, first) = spawn_serve(cwd, &["--poll-seconds", "0.2", "--api-keys-file", "keys.json"]);
    let url = format!("http://{}", first["address"].as_str().unwrap());
    let remote = |k: &str, args: &[&str]| {
        let mut c = command(cwd, args);
        c.env("LATHE_SERVER", &url).env("LATHE_API_KEY", k);
        c.output().unwrap()
    };

    let data = mnist_subset(cwd, 3000, 500);
    let up = last_json(&ok(&remote(&key, &["datasets", "upload", "digits", data.to_str().unwrap(), "--json"])));
    assert_eq!(up["summary"]["train_rows"], 3000);
    let spec = write_spec(cwd, "small.yaml", SMALL_MLP);
    for _ in 0..2 {
        let out = ok(&remote(
            &key,
            &[
                "jobs",
                "submit",
                "--spec",
                spec.to_str().unwrap(),
                "--dataset",
                "digits",
                "--name",
                "digits",
                "--promote",
                "stable",
                "--json",
            ],
        ));
        let job = last_json(&out);
        assert_eq!(job["state"], "succeeded", "{out}");
        assert!(out.lines().any(|l| l.contains("\"epoch_end\"")), "progress events reach the CLI: {out}");
    }
    let list = last_json(&ok(&remote(&key, &["models", "list", "--json"])));
    assert_eq!(list["models"][0]["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        list["models"][0]["labels"]["stable"], 2,
        "same seed, same accuracy: the second version takes the label"
    );
    ok(&remote(&key, &["traffic", "set", "digits", "1=70", "stable=30", "--shadow", "1:10"]));
    let t = last_json(&ok(&remote(&key, &["traffic", "show", "digits", "--json"])));
    assert_eq!(t["traffic"]["shadow"]["percent"], 10.0);
    let r = last_json(&ok(&remote(&key, &["traffic", "rollback", "digits", "--to", "1", "--json"])));
    assert_eq!(r["traffic"]["routes"][0]["target"], "1");
    // A read-only key may list but not change anything; a wrong key is refused.
    assert!(!remote(&read_key, &["models", "list"]).status.success(), "models list needs admin on the server");
    let denied = remote(&read_key, &["traffic", "clear", "digits"]);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("lacks the admin scope"));
    let wrong = remote("not-a-real-key-at-all", &["jobs", "list"]);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("401: invalid, revoked or expired API key"));
    let bad = remote(&key, &["traffic", "set", "digits", "9=100"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("version 9 does not exist"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let _ = server.kill();
    let _ = server.wait();
}
