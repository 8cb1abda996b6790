//! The archive's catalogue backend, as its configuration chooses: SQLite
//! (a file) or PostgreSQL + PostGIS (a server). What differs between the
//! two for the host is here: opening the catalogue for a run or a dry run,
//! naming it in messages, the run lock, and reading the run history for
//! `--list` and `--history`. Everything else goes through the
//! [`Catalogue`] interface.

use crate::config::{ArchiveConfig, Database};
use crate::lock::{self, Holder, RunLock, Wait};
use anyhow::Result;
use muninn_sync_catalogue::{
    Catalogue, CatalogueError, PostgresCatalogue, PostgresRunLock, RunHistory, RunLog, RunRecord,
    SqliteCatalogue, Watermarks,
};
use muninn_sync_model::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// A catalogue open for a run, and what must live as long as it.
pub enum OpenCatalogue {
    /// The SQLite catalogue, and the scratch copy's directory of a dry run
    /// that works on one.
    Sqlite(Box<SqliteCatalogue>, Option<tempfile::TempDir>),
    Postgres(Box<PostgresCatalogue>),
}

impl OpenCatalogue {
    /// Opens the archive's catalogue; a dry run's leaves the archive as it
    /// is, not even created.
    pub fn open(config: &ArchiveConfig, dry_run: bool) -> Result<OpenCatalogue> {
        Ok(match &config.database {
            Database::Sqlite if dry_run => {
                let (catalogue, scratch) = SqliteCatalogue::open_for_dry_run(&config.sqlite)?;
                OpenCatalogue::Sqlite(Box::new(catalogue), scratch)
            }
            Database::Sqlite => {
                OpenCatalogue::Sqlite(Box::new(SqliteCatalogue::open(&config.sqlite)?), None)
            }
            Database::Postgresql(options) if dry_run => {
                OpenCatalogue::Postgres(Box::new(PostgresCatalogue::open_for_dry_run(options)?))
            }
            Database::Postgresql(options) => {
                OpenCatalogue::Postgres(Box::new(PostgresCatalogue::open(options)?))
            }
        })
    }

    pub fn catalogue(&mut self) -> &mut (dyn Catalogue + Send) {
        match self {
            OpenCatalogue::Sqlite(catalogue, _) => catalogue.as_mut(),
            OpenCatalogue::Postgres(catalogue) => catalogue.as_mut(),
        }
    }
}

/// The catalogue as messages name it: `catalogue "PATH"`, or
/// `PostgreSQL catalogue HOST:PORT/DATABASE as USER` (never a password).
pub fn describe(config: &ArchiveConfig) -> String {
    match &config.database {
        Database::Sqlite => format!("catalogue \"{}\"", config.sqlite.path.display()),
        Database::Postgresql(options) => {
            format!(
                "PostgreSQL catalogue {}",
                muninn_sync_catalogue::describe_postgres(options)
            )
        }
    }
}

/// Whether the catalogue exists already, as far as the host can tell
/// without opening it: a PostgreSQL server's is taken to.
pub fn may_exist(config: &ArchiveConfig) -> bool {
    match &config.database {
        Database::Sqlite => config.sqlite.path.exists(),
        Database::Postgresql(_) => true,
    }
}

/// The lock that keeps a second run of a synchronizer off the archive.
#[derive(Debug)]
pub enum RunLockGuard {
    /// A lock file beside the SQLite catalogue.
    File(RunLock),
    /// An advisory lock in the PostgreSQL server, held by its session.
    Postgres(Box<PostgresRunLock>),
}

impl RunLockGuard {
    /// Lets go of the lock (as dropping it does).
    pub fn release(self) {
        drop(self);
    }
}

/// Another run holds the lock: who, and where the lock lives.
pub struct Busy {
    pub holder: String,
    pub lock: String,
}

/// A run left its lock behind (killed): who it was.
pub struct Abandoned {
    pub holder: String,
    pub lock: String,
}

/// Takes `synchronizer`'s lock on the archive, waiting as `wait` says.
pub fn take_lock(
    config: &ArchiveConfig,
    synchronizer: &str,
    wait: Wait,
    hostname: &str,
) -> Result<std::result::Result<(RunLockGuard, Option<Abandoned>), Busy>> {
    match &config.database {
        Database::Sqlite => {
            let path = lock::lock_path(&config.sqlite.path, synchronizer);
            if wait != Wait::No {
                tracing::debug!(lock = %path.display(), "waiting for the lock");
            }
            let lock_name = format!("lock file \"{}\"", path.display());
            Ok(match RunLock::acquire(&path, wait, hostname)? {
                Ok((lock, previous)) => Ok((
                    RunLockGuard::File(lock),
                    previous.map(|holder: Holder| Abandoned {
                        holder: holder.describe(),
                        lock: lock_name,
                    }),
                )),
                Err(busy) => Err(Busy {
                    holder: busy.holder.describe(),
                    lock: lock_name,
                }),
            })
        }
        Database::Postgresql(options) => {
            let patience = match wait {
                Wait::No => Some(Duration::ZERO),
                Wait::UpTo(limit) => Some(limit),
                Wait::Forever => None,
            };
            let holder_name = format!(
                "muninn-sync {synchronizer} pid {} on {hostname}",
                std::process::id()
            );
            let lock_name = format!(
                "advisory lock in PostgreSQL catalogue {}",
                muninn_sync_catalogue::describe_postgres(options)
            );
            Ok(
                match PostgresRunLock::acquire(options, synchronizer, patience, &holder_name)? {
                    // The server drops a killed run's lock with its session:
                    // nothing is left behind to report.
                    Ok(lock) => Ok((RunLockGuard::Postgres(Box::new(lock)), None)),
                    Err(holder) => Err(Busy {
                        holder,
                        lock: lock_name,
                    }),
                },
            )
        }
    }
}

/// The run history and watermarks of a catalogue, read without changing
/// it: what `--list` and `--history` show.
pub enum History {
    Sqlite(Box<RunHistory>),
    /// Opened to read ([`PostgresCatalogue::open_to_read`]): nothing it
    /// does is ever committed.
    Postgres(Box<PostgresCatalogue>),
}

impl History {
    /// The history, or `None` when there is no catalogue yet.
    pub fn open(config: &ArchiveConfig) -> Result<Option<History>> {
        Ok(match &config.database {
            Database::Sqlite => {
                RunHistory::open(&config.sqlite)?.map(|h| History::Sqlite(Box::new(h)))
            }
            Database::Postgresql(options) => {
                PostgresCatalogue::open_to_read(options)?.map(|c| History::Postgres(Box::new(c)))
            }
        })
    }

    pub fn all_watermarks(
        &self,
    ) -> std::result::Result<BTreeMap<String, Watermarks>, CatalogueError> {
        match self {
            History::Sqlite(history) => history.all_watermarks(),
            History::Postgres(catalogue) => catalogue.all_watermarks(),
        }
    }

    pub fn runs(
        &self,
        synchronizer: Option<&str>,
        limit: usize,
    ) -> std::result::Result<Vec<RunRecord>, CatalogueError> {
        match self {
            History::Sqlite(history) => history.runs(synchronizer, limit),
            History::Postgres(catalogue) => catalogue.runs(synchronizer, limit),
        }
    }

    pub fn last_successes(
        &self,
    ) -> std::result::Result<BTreeMap<String, Timestamp>, CatalogueError> {
        match self {
            History::Sqlite(history) => history.last_successes(),
            History::Postgres(catalogue) => catalogue.last_successes(),
        }
    }

    pub fn owned_counts(
        &self,
    ) -> std::result::Result<(BTreeMap<String, u64>, u64), CatalogueError> {
        match self {
            History::Sqlite(history) => history.owned_counts(),
            History::Postgres(catalogue) => catalogue.owned_counts(),
        }
    }
}
