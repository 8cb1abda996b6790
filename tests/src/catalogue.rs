//! The catalogue of a test's archive, read and written as a user does with
//! SQL: rusqlite on the SQLite file, a PostgreSQL session on the test's
//! own database. Every value comes back as the text the backend's own
//! client shows (`sqlite3`, `psql`), `NULL` for null.

use crate::Backend;
use muninn_sync_test_postgres::TestDatabase;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where a test archive's catalogue is, and how to reach it.
pub(crate) enum Catalogue {
    Sqlite(PathBuf),
    Postgresql(Box<Postgresql>),
}

/// A test's PostgreSQL database and the session its queries use.
pub(crate) struct Postgresql {
    /// Opened on first use (declared first: it goes before the database is
    /// dropped).
    session: Mutex<Option<postgres::Client>>,
    database: TestDatabase,
}

impl Catalogue {
    pub fn sqlite(path: PathBuf) -> Catalogue {
        Catalogue::Sqlite(path)
    }

    pub fn postgresql(database: TestDatabase) -> Catalogue {
        Catalogue::Postgresql(Box::new(Postgresql {
            session: Mutex::new(None),
            database,
        }))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Catalogue::Sqlite(_) => Backend::Sqlite,
            Catalogue::Postgresql(_) => Backend::Postgresql,
        }
    }

    pub fn database(&self) -> Option<&TestDatabase> {
        match self {
            Catalogue::Sqlite(_) => None,
            Catalogue::Postgresql(postgresql) => Some(&postgresql.database),
        }
    }

    /// Every row of a query, or the backend's refusal (no such table yet).
    pub fn try_rows(&self, sql: &str) -> Result<Vec<Vec<String>>, String> {
        match self {
            Catalogue::Sqlite(path) => sqlite_rows(path, sql),
            Catalogue::Postgresql(_) => self.with_session(|client| {
                let mut rows = Vec::new();
                for message in client.simple_query(sql).map_err(describe)? {
                    if let postgres::SimpleQueryMessage::Row(row) = message {
                        rows.push(
                            (0..row.len())
                                .map(|i| row.get(i).unwrap_or("NULL").to_string())
                                .collect(),
                        );
                    }
                }
                Ok(rows)
            }),
        }
    }

    /// Runs statements as another program writing the catalogue would.
    pub fn execute(&self, sql: &str) {
        match self {
            // Foreign keys on, as muninn's sqlite backend connects.
            Catalogue::Sqlite(path) => rusqlite::Connection::open(path)
                .and_then(|db| {
                    db.execute_batch("PRAGMA foreign_keys = ON")?;
                    db.execute_batch(sql)
                })
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Catalogue::Postgresql(_) => self
                .with_session(|client| client.batch_execute(sql).map_err(describe))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// Runs `work` on the kept session, opened on first use and opened
    /// again when the last one broke.
    fn with_session<T>(
        &self,
        work: impl FnOnce(&mut postgres::Client) -> Result<T, String>,
    ) -> Result<T, String> {
        let Catalogue::Postgresql(postgresql) = self else {
            unreachable!("a SQLite catalogue has no session");
        };
        let mut session = postgresql.session.lock().unwrap_or_else(|e| e.into_inner());
        if session.as_ref().is_none_or(postgres::Client::is_closed) {
            *session = Some(postgresql.database.client());
        }
        work(session.as_mut().expect("opened above"))
    }
}

/// A PostgreSQL error with the server's own message ("db error" alone
/// says nothing).
fn describe(error: postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

fn sqlite_rows(path: &Path, sql: &str) -> Result<Vec<Vec<String>>, String> {
    use rusqlite::types::Value;
    // Read-only, SpatiaLite not loaded: what a plain SQL user sees.
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| e.to_string())?;
    let mut statement = db.prepare(sql).map_err(|e| e.to_string())?;
    let columns = statement.column_count();
    let rows = statement
        .query_map([], |row| {
            (0..columns)
                .map(|i| {
                    Ok(match row.get::<_, Value>(i)? {
                        Value::Null => "NULL".to_string(),
                        Value::Integer(n) => n.to_string(),
                        Value::Real(f) => f.to_string(),
                        Value::Text(t) => t,
                        Value::Blob(b) => format!("<{} bytes>", b.len()),
                    })
                })
                .collect()
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
}
