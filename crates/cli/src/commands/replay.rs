//! `lathe replay`: sends the requests of a request log (`lathe serve --request-log`) to a
//! server, in order, and compares each answer's status with the logged one.

use std::io::{BufRead, Read};
use std::path::PathBuf;

use anyhow::{Context, Result};
use base64::Engine;
use clap::Args;
use serde_json::{json, Value};

use crate::Cli;

/// Replay a request log against a server (--server): each logged request is sent as it was
/// (path, query, body and content type); redacted requests are skipped. Reports how many
/// answered with the logged status.
#[derive(Args, Debug)]
#[command(after_help = "Example:\n  lathe serve --request-log requests.jsonl --request-log-sample 1 &\n  \
    lathe replay requests.jsonl --server http://127.0.0.1:8080")]
pub struct ReplayArgs {
    /// The JSON-lines log.
    pub file: PathBuf,
    /// Send at most this many requests (0: all).
    #[arg(long, env = "LATHE_REPLAY_LIMIT", default_value_t = 0)]
    pub limit: usize,
    /// Send to this model instead of the logged one (the path's model segment is replaced).
    #[arg(long, env = "LATHE_REPLAY_MODEL")]
    pub model: Option<String>,
}

#[derive(Default)]
struct Tally {
    sent: u64,
    same_status: u64,
    other_status: Vec<(u64, String, u16, u16)>,
    skipped_redacted: u64,
    unreadable: u64,
}

pub fn run(cli: &Cli, args: &ReplayArgs) -> Result<()> {
    let remote = cli.remote()?;
    let file = std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    // Only what the log holds now: a server logging the replay appends to the same file.
    let length = file.metadata()?.len();
    let mut tally = Tally::default();
    for (n, line) in std::io::BufReader::new(file.take(length)).lines().enumerate() {
        if args.limit > 0 && tally.sent as usize >= args.limit {
            break;
        }
        let line = line.with_context(|| format!("{}: line {}", args.file.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(record) = serde_json::from_str::<Value>(&line) else {
            tally.unreadable += 1;
            continue;
        };
        if record["redacted"] == true {
            tally.skipped_redacted += 1;
            continue;
        }
        let Some((path, headers, body)) = request_of(&record, args.model.as_deref()) else {
            tally.unreadable += 1;
            continue;
        };
        let (status, _) = remote.post_any(&path, &headers, &body)?;
        tally.sent += 1;
        let logged = record["status"].as_u64().unwrap_or(0) as u16;
        if status == logged {
            tally.same_status += 1;
        } else {
            tally.other_status.push((n as u64 + 1, path, logged, status));
        }
    }
    report(cli, &tally);
    Ok(())
}

/// A request as sent: path with query, headers, body.
type Request = (String, Vec<(&'static str, String)>, Vec<u8>);

/// The request a log line records.
fn request_of(record: &Value, model: Option<&str>) -> Option<Request> {
    let mut path = record["path"].as_str()?.to_string();
    if let (Some(to), Some(from)) = (model, record["model"].as_str()) {
        path = path.replacen(&format!("/models/{from}"), &format!("/models/{to}"), 1);
    }
    if let Some(q) = record["query"].as_str() {
        path = format!("{path}?{q}");
    }
    let body = match record["request_base64"].as_str() {
        Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64).ok()?,
        None => serde_json::to_vec(record.get("request")?).ok()?,
    };
    let mut headers = vec![("content-type", record["content_type"].as_str().unwrap_or("application/json").to_string())];
    if let Some(len) = record["inference_header_content_length"].as_str() {
        headers.push(("inference-header-content-length", len.to_string()));
    }
    Some((path, headers, body))
}

fn report(cli: &Cli, t: &Tally) {
    if cli.json {
        let differing: Vec<_> = t
            .other_status
            .iter()
            .map(|(line, path, logged, got)| json!({"line": line, "path": path, "logged": logged, "status": got}))
            .collect();
        println!(
            "{}",
            json!({"sent": t.sent, "same_status": t.same_status, "different_status": differing,
                "skipped_redacted": t.skipped_redacted, "unreadable": t.unreadable})
        );
        return;
    }
    println!(
        "sent {} requests: {} answered with the logged status, {} differently; {} redacted skipped, {} unreadable",
        t.sent,
        t.same_status,
        t.other_status.len(),
        t.skipped_redacted,
        t.unreadable
    );
    for (line, path, logged, got) in t.other_status.iter().take(20) {
        println!("  line {line}: {path}: logged {logged}, now {got}");
    }
}
