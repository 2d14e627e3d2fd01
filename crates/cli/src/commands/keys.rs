//! `lathe keys new`: create an API key and store its digest in a keys file.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lathe_server::auth::{hash_key, KeyEntry, KeysFile, Scope};

use crate::Cli;

/// Manage API keys.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key, add its sha256 to the keys file, print the key once.
    New(NewKeyArgs),
}

/// Arguments of `keys new`.
#[derive(Args, Debug)]
pub struct NewKeyArgs {
    /// Who holds the key (shown in logs and the audit trail).
    #[arg(long)]
    pub name: String,
    /// Scopes: infer, read, admin (repeat or comma-separate).
    #[arg(long = "scope", value_delimiter = ',', required = true)]
    pub scopes: Vec<String>,
    /// Days until the key expires.
    #[arg(long)]
    pub expires_days: Option<u64>,
    /// Keys file to add to (created if missing).
    #[arg(long, env = "LATHE_API_KEYS_FILE", default_value = "lathe-data/keys.json")]
    pub file: PathBuf,
}

pub fn run(cli: &Cli, cmd: &KeysCommand) -> Result<()> {
    let KeysCommand::New(args) = cmd;
    let scopes = args
        .scopes
        .iter()
        .map(|s| {
            serde_json::from_value::<Scope>(serde_json::Value::String(s.clone()))
                .map_err(|_| anyhow::anyhow!("unknown scope {s:?}; expected infer, read or admin"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut raw = [0u8; 24];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut raw)).context("reading /dev/urandom")?;
    let key = format!("lathe_{}", hex::encode(raw));
    let mut file: KeysFile = match std::fs::read(&args.file) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("reading {}", args.file.display()))?,
        Err(_) => KeysFile::default(),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    file.keys.retain(|k| k.name != args.name);
    file.keys.push(KeyEntry {
        name: args.name.clone(),
        sha256: hash_key(&key),
        scopes,
        expires_at: args.expires_days.map(|d| now + d * 86_400),
    });
    if let Some(dir) = args.file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    lathe_formats::atomic::write_atomic(&args.file, &serde_json::to_vec_pretty(&file)?)?;
    if cli.json {
        println!("{}", serde_json::json!({ "name": args.name, "key": key, "file": args.file }));
    } else {
        eprintln!(
            "added key {:?} to {} (only its sha256 is stored; this is the only time the key is shown):",
            args.name,
            args.file.display()
        );
        println!("{key}");
    }
    Ok(())
}
