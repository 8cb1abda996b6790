//! One run of a synchronizer at a time per archive, across hosts: a
//! PostgreSQL session-level advisory lock, keyed by the archive's table
//! prefix and the synchronizer. The server drops it with the session, so
//! a killed run's lock goes with its connection and the next run takes it.

use super::{connect, PostgresOptions};
use anyhow::Context;
use postgres::Client;
use std::time::{Duration, Instant};

/// How often a waiting run asks for the lock again.
const POLL: Duration = Duration::from_millis(200);

/// The lock of one synchronizer of one archive, held while its session
/// lives: until dropped.
pub struct PostgresRunLock {
    /// `None` once dropped.
    session: Option<Client>,
    table_prefix: String,
    synchronizer: String,
}

/// How long the end of a run waits for the server to confirm the unlock.
const UNLOCK_PATIENCE: Duration = Duration::from_secs(5);

impl Drop for PostgresRunLock {
    /// Unlocks before the session closes: the server notices a closed
    /// connection only a moment later, and a run that has returned must
    /// not be seen holding the lock by the next one, nor in `pg_locks`.
    /// The lock's connection sat idle for the whole run, and a network
    /// that silently lost it would hold the answer back until TCP gives
    /// up: the end of the run waits a few seconds at most, after which
    /// the lock goes with the session.
    fn drop(&mut self) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        let keys = [self.table_prefix.clone(), self.synchronizer.clone()];
        let (done, answer) = std::sync::mpsc::channel();
        let unlocking = std::thread::Builder::new()
            .name("run-unlock".into())
            .spawn(move || {
                let unlocked = session.execute(
                    &format!("SELECT pg_advisory_unlock({KEYS})"),
                    &[&keys[0], &keys[1]],
                );
                let _ = done.send(unlocked.map(drop));
            });
        let outcome = match unlocking {
            Ok(_) => answer
                .recv_timeout(UNLOCK_PATIENCE)
                .map_err(|_| "no answer from the server".to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = outcome {
            tracing::debug!(%error, "the run lock goes with its session instead");
        }
    }
}

impl std::fmt::Debug for PostgresRunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresRunLock")
    }
}

/// The two advisory lock keys: the archive (its table prefix) and the
/// synchronizer, hashed by the server so every host computes the same.
const KEYS: &str = "hashtext('muninn-sync run ' || $1), hashtext($2)";

impl PostgresRunLock {
    /// Takes the lock of `synchronizer`, waiting up to `patience` (`None`:
    /// as long as it takes). `Ok(Err(holder))` when another run holds it:
    /// who, as far as the server knows (its application name carries the
    /// holder's pid and host, its address and when it connected).
    pub fn acquire(
        options: &PostgresOptions,
        synchronizer: &str,
        patience: Option<Duration>,
        holder_name: &str,
    ) -> anyhow::Result<Result<PostgresRunLock, String>> {
        let target = connect::describe(options);
        let mut session = connect(options)?;
        // Shown in pg_stat_activity, where a blocked run reads it.
        let name: String = holder_name.chars().take(63).collect();
        session
            .execute("SELECT set_config('application_name', $1, false)", &[&name])
            .with_context(|| format!("PostgreSQL catalogue {target}"))?;
        let began = Instant::now();
        loop {
            let taken: bool = session
                .query_one(
                    &format!("SELECT pg_try_advisory_lock({KEYS})"),
                    &[&options.table_prefix, &synchronizer],
                )
                .with_context(|| {
                    format!("cannot take the run lock in PostgreSQL catalogue {target}")
                })?
                .get(0);
            if taken {
                return Ok(Ok(PostgresRunLock {
                    session: Some(session),
                    table_prefix: options.table_prefix.clone(),
                    synchronizer: synchronizer.to_string(),
                }));
            }
            if patience.is_some_and(|limit| began.elapsed() >= limit) {
                let holder = describe_holder(&mut session, &options.table_prefix, synchronizer)
                    .unwrap_or_else(|e| {
                        format!("another session (which, the server would not say: {e})")
                    });
                return Ok(Err(holder));
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The session holding the lock, from `pg_locks` and `pg_stat_activity`.
/// Its address is read with `host()`: `client_addr::text` prints an inet
/// with its mask (`127.0.0.1/32`), which reads as a network, not a client.
fn describe_holder(
    session: &mut Client,
    prefix: &str,
    synchronizer: &str,
) -> anyhow::Result<String> {
    let row = session.query_opt(
        &format!(
            "SELECT a.application_name, host(a.client_addr), a.backend_start::text
               FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                AND (l.classid, l.objid) = (SELECT k1::oid, k2::oid FROM (SELECT {KEYS}) AS k(k1, k2))"
        ),
        &[&prefix, &synchronizer],
    )?;
    Ok(match row {
        Some(row) => {
            let name: Option<String> = row.get(0);
            let address: Option<String> = row.get(1);
            let since: Option<String> = row.get(2);
            let mut text = match name.filter(|n| !n.is_empty()) {
                Some(name) => format!("\"{}\"", muninn_sync_model::printable(&name)),
                None => "a session".to_string(),
            };
            if let Some(address) = address {
                text.push_str(&format!(" from {address}"));
            }
            if let Some(since) = since {
                text.push_str(&format!(", connected {since}"));
            }
            text
        }
        None => "a session that has just let go of it".to_string(),
    })
}
