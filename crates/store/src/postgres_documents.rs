//! Labels and traffic policies in Postgres ([`SharedDocuments`]): table `documents`, one row
//! per model and file with a revision (from one sequence, never repeated) for compare-and-set, and `NOTIFY` on the
//! [`CHANGES_CHANNEL`] after every change so that replicas mirror it at once.

use std::time::Duration;

use lathe_registry::{Revised, SharedDocuments};
use postgres::fallible_iterator::FallibleIterator;

use crate::postgres::PostgresStore;
use crate::StoreError;

/// The channel replicas `LISTEN` on; the payload is the model that changed.
pub const CHANGES_CHANNEL: &str = "lathe_repository";

/// How long the listener waits before trying again after losing its connection.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

impl SharedDocuments for PostgresStore {
    fn read(&self, model: &str, file: &str) -> Result<Option<Revised>, String> {
        let (model, file) = (model.to_string(), file.to_string());
        let row = self.run(move |c| {
            c.query_opt("SELECT body, revision FROM documents WHERE model = $1 AND file = $2", &[&model, &file])
        });
        let row = row.map_err(|e| e.0)?;
        Ok(row.map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, i64>(1).to_string())))
    }

    fn write_if(&self, model: &str, file: &str, body: Option<&[u8]>, revision: Option<&str>) -> Result<bool, String> {
        let revision: Option<i64> = match revision {
            Some(r) => Some(r.parse().map_err(|_| format!("revision {r:?} is not one of this store's"))?),
            None => None,
        };
        let (model, file, body) = (model.to_string(), file.to_string(), body.map(<[u8]>::to_vec));
        let written = self.run(move |c| {
            let mut tx = c.transaction()?;
            let key: [&(dyn postgres::types::ToSql + Sync); 2] = [&model, &file];
            let rows = match (&body, revision) {
                (Some(b), None) => tx.execute(
                    "INSERT INTO documents (model, file, body, revision) \
                     VALUES ($1, $2, $3, nextval('document_revisions')) \
                     ON CONFLICT DO NOTHING",
                    &[&model, &file, b],
                )?,
                (Some(b), Some(r)) => tx.execute(
                    "UPDATE documents SET body = $3, revision = nextval('document_revisions') \
                     WHERE model = $1 AND file = $2 AND revision = $4",
                    &[&model, &file, b, &r],
                )?,
                (None, Some(r)) => tx.execute(
                    "DELETE FROM documents WHERE model = $1 AND file = $2 AND revision = $3",
                    &[&model, &file, &r],
                )?,
                (None, None) => {
                    let absent = tx.query_opt("SELECT 1 FROM documents WHERE model = $1 AND file = $2", &key)?;
                    return Ok(absent.is_none());
                }
            };
            if rows == 1 {
                tx.execute("SELECT pg_notify($1, $2)", &[&CHANGES_CHANNEL, &model])?;
            }
            tx.commit()?;
            Ok(rows == 1)
        });
        written.map_err(|e| e.0)
    }

    fn all(&self) -> Result<Vec<(String, String, Vec<u8>)>, String> {
        let rows = self.run(|c| c.query("SELECT model, file, body FROM documents ORDER BY model, file", &[]));
        Ok(rows.map_err(|e| e.0)?.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    fn announce(&self, model: &str) -> Result<(), String> {
        let model = model.to_string();
        let sent = self.run(move |c| c.execute("SELECT pg_notify($1, $2)", &[&CHANGES_CHANNEL, &model]));
        sent.map(|_| ()).map_err(|e| e.0)
    }
}

impl PostgresStore {
    /// Calls `on_change(model)` for every change announced on [`CHANGES_CHANNEL`], from a
    /// thread with a connection of its own; after (re)connecting it calls `on_change("")`,
    /// since changes made while it was away were not heard.
    ///
    /// # Errors
    /// The first connection's failure; later ones are retried every second.
    pub fn listen(&self, on_change: impl Fn(&str) + Send + 'static) -> Result<(), StoreError> {
        let target = self.target.clone();
        let shown = self.shown.clone();
        let mut client = target.connect().map_err(|e| StoreError(format!("{shown}: {}", e.0)))?;
        client.batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))?;
        std::thread::Builder::new()
            .name("postgres-listen".into())
            .spawn(move || loop {
                on_change("");
                hear(&mut client, &on_change);
                tracing::warn!(database = %shown, "lost the connection that listens for changes; reconnecting");
                client = loop {
                    std::thread::sleep(RELISTEN_AFTER);
                    let connected = target.connect().and_then(|mut c| {
                        c.batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))?;
                        Ok(c)
                    });
                    match connected {
                        Ok(c) => break c,
                        Err(e) => tracing::warn!(error = %e, "listening for changes"),
                    }
                };
            })
            .map_err(|e| StoreError(format!("starting the listener: {e}")))?;
        Ok(())
    }
}

/// Hands each notification to `on_change` until the connection is lost.
fn hear(client: &mut postgres::Client, on_change: &impl Fn(&str)) {
    loop {
        {
            let mut notifications = client.notifications();
            let mut waiting = notifications.timeout_iter(Duration::from_secs(5));
            loop {
                match waiting.next() {
                    Ok(Some(n)) => on_change(n.payload()),
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
        // A quiet interval: check that the connection is still there.
        if client.is_closed() || client.simple_query("SELECT 1").is_err() {
            return;
        }
    }
}
