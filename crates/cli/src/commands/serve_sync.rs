//! Keeping the serving folder in step with shared state: an `s3://` repository's versions
//! (fetched into the cache) and, with Postgres, the labels and traffic policies every replica
//! shares. The repository watcher then loads what changed in the folder.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use lathe_registry::Repository;
use lathe_store::PostgresStore;

/// Syncs once (an unreachable store stops the server here, with its error), then on a thread
/// of its own every `every` and whenever Postgres announces a change. Nothing to do for a
/// folder repository without Postgres.
pub fn start(repo: &Repository, every: Duration, postgres: Option<&PostgresStore>, json: bool) -> Result<()> {
    if repo.remote().is_none() && repo.shared().is_none() {
        return Ok(());
    }
    if let Some(remote) = repo.remote() {
        if !json {
            eprintln!("fetching the versions of {} into {}", remote.url(), repo.root().display());
        }
    }
    let imported = repo.import_documents().context("sharing this folder's labels and traffic policies")?;
    if imported > 0 {
        tracing::info!(imported, "labels and traffic policies copied into the shared store");
    }
    let first = repo.sync().with_context(|| format!("reading the repository {}", repo.location()))?;
    tracing::info!(fetched = first.fetched.len(), skipped = first.skipped.len(), "repository in step");
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    if let Some(pg) = postgres {
        pg.listen(move |_model| {
            let _ = wake.try_send(());
        })?;
    }
    let repo = repo.clone();
    std::thread::Builder::new()
        .name("repo-sync".into())
        .spawn(move || loop {
            if let Err(mpsc::RecvTimeoutError::Disconnected) = woken.recv_timeout(every) {
                std::thread::sleep(every);
            }
            match repo.sync() {
                Ok(report) if !report.is_empty() => tracing::info!(
                    fetched = ?report.fetched,
                    removed = ?report.removed,
                    documents = ?report.documents,
                    "repository in step"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "syncing the repository failed; retrying"),
            }
        })
        .context("starting the repository sync")?;
    Ok(())
}
