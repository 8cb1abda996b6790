//! The run history and watermarks in SQLite: `muninn_sync_runs` and
//! `muninn_sync_watermarks` (under the archive's table prefix).

use super::schema::{table_exists, Tables};
use super::{SqliteCatalogue, SqliteOptions};
use crate::runs::{RunCounts, RunLog, RunOutcome, RunRecord, RunStart, Watermarks};
use crate::{CatalogueError, Result};
use muninn_sync_model::{format_timestamp, parse_timestamp, Timestamp};
use rusqlite::{params, Connection, Row};
use std::collections::BTreeMap;

/// Creates the bookkeeping tables if this database has none yet: catalogues
/// made by an older muninn-sync, or by muninn itself, get them on their first
/// recorded run.
pub(crate) fn create_run_tables(conn: &Connection, tables: &Tables) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {runs} (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             synchronizer TEXT NOT NULL,
             plugin TEXT NOT NULL,
             product_types TEXT,
             window_start TEXT,
             window_end TEXT,
             incremental INTEGER NOT NULL,
             force INTEGER NOT NULL,
             started TEXT NOT NULL,
             finished TEXT,
             pid INTEGER NOT NULL,
             hostname TEXT NOT NULL,
             created INTEGER NOT NULL DEFAULT 0,
             updated INTEGER NOT NULL DEFAULT 0,
             unchanged INTEGER NOT NULL DEFAULT 0,
             removed INTEGER NOT NULL DEFAULT 0,
             failed INTEGER NOT NULL DEFAULT 0,
             outcome TEXT NOT NULL,
             error TEXT);
         CREATE INDEX IF NOT EXISTS idx_{runs}_synchronizer ON {runs} (synchronizer, id);
         CREATE TABLE IF NOT EXISTS {watermarks} (
             synchronizer TEXT NOT NULL,
             product_type TEXT NOT NULL,
             watermark TEXT NOT NULL,
             run_id INTEGER NOT NULL,
             PRIMARY KEY (synchronizer, product_type));",
        runs = tables.runs,
        watermarks = tables.watermarks,
    ))
}

fn timestamp_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Timestamp>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| {
        parse_timestamp(&t).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
        })
    })
    .transpose()
}

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl SqliteCatalogue {
    /// Runs `work` in a transaction of its own that takes the write lock at
    /// once, so that it waits its turn behind another synchronizer's batch.
    fn in_own_transaction<T>(&mut self, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if !self.conn.is_autocommit() {
            return Err(CatalogueError::Storage(anyhow::anyhow!(
                "muninn-sync internal error: run bookkeeping inside an open batch"
            )));
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match work(&self.conn) {
            Ok(value) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(value)
            }
            Err(error) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(error)
            }
        }
    }
}

impl RunLog for SqliteCatalogue {
    fn begin_run(&mut self, run: &RunStart) -> Result<i64> {
        let tables = self.tables.clone();
        self.in_own_transaction(|conn| {
            create_run_tables(conn, &tables)?;
            conn.execute(
                &format!(
                    "UPDATE {} SET outcome = ?1, error = ?2 WHERE synchronizer = ?3 AND outcome = ?4",
                    tables.runs
                ),
                params![
                    RunOutcome::Abandoned.name(),
                    "the run ended without recording how (killed, or the machine stopped); \
                     its committed batches are kept",
                    run.synchronizer,
                    RunOutcome::Running.name()
                ],
            )?;
            let product_types = run
                .product_types
                .as_ref()
                .map(|types| serde_json::to_string(types).expect("strings serialize"));
            conn.execute(
                &format!(
                    "INSERT INTO {} (synchronizer, plugin, product_types, window_start, window_end, \
                     incremental, force, started, pid, hostname, outcome) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    tables.runs
                ),
                params![
                    run.synchronizer,
                    run.plugin,
                    product_types,
                    run.window_start.as_ref().map(format_timestamp),
                    run.window_end.as_ref().map(format_timestamp),
                    run.incremental,
                    run.force,
                    format_timestamp(&run.started),
                    run.pid,
                    run.hostname,
                    RunOutcome::Running.name(),
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    fn record_progress(
        &mut self,
        run: i64,
        counts: &RunCounts,
        watermarks: &Watermarks,
    ) -> Result<()> {
        self.begin()?;
        let sql = format!(
            "UPDATE {} SET created = ?1, updated = ?2, unchanged = ?3, removed = ?4, failed = ?5 \
             WHERE id = ?6",
            self.tables.runs
        );
        self.conn.prepare_cached(&sql)?.execute(params![
            count(counts.created),
            count(counts.updated),
            count(counts.unchanged),
            count(counts.removed),
            count(counts.failed),
            run
        ])?;
        if watermarks.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO {w} (synchronizer, product_type, watermark, run_id) \
             SELECT synchronizer, ?1, ?2, id FROM {r} WHERE id = ?3 \
             ON CONFLICT (synchronizer, product_type) DO UPDATE \
             SET watermark = excluded.watermark, run_id = excluded.run_id \
             WHERE excluded.watermark > watermark",
            w = self.tables.watermarks,
            r = self.tables.runs
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        for (product_type, time) in watermarks {
            // muninn's timestamp text sorts as the times do, so the
            // comparison above never lowers a watermark.
            statement.execute(params![product_type, format_timestamp(time), run])?;
        }
        Ok(())
    }

    fn end_run(
        &mut self,
        run: i64,
        finished: Timestamp,
        counts: &RunCounts,
        outcome: RunOutcome,
        error: Option<&str>,
    ) -> Result<()> {
        let runs = self.tables.runs.clone();
        self.in_own_transaction(|conn| {
            conn.execute(
                &format!(
                    "UPDATE {runs} SET finished = ?1, created = ?2, updated = ?3, unchanged = ?4, \
                     removed = ?5, failed = ?6, outcome = ?7, error = ?8 WHERE id = ?9"
                ),
                params![
                    format_timestamp(&finished),
                    count(counts.created),
                    count(counts.updated),
                    count(counts.unchanged),
                    count(counts.removed),
                    count(counts.failed),
                    outcome.name(),
                    error,
                    run
                ],
            )?;
            Ok(())
        })
    }

    fn watermarks(&self, synchronizer: &str) -> Result<Watermarks> {
        Ok(self
            .all_watermarks()?
            .remove(synchronizer)
            .unwrap_or_default())
    }

    fn all_watermarks(&self) -> Result<BTreeMap<String, Watermarks>> {
        read_watermarks(&self.conn, &self.tables)
    }

    fn runs(&self, synchronizer: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        read_runs(&self.conn, &self.tables, synchronizer, limit)
    }

    fn last_successes(&self) -> Result<BTreeMap<String, Timestamp>> {
        read_last_successes(&self.conn, &self.tables)
    }
}

/// The run history and watermarks of a catalogue, read without writing
/// anything: what `muninn-sync ARCHIVE --list` and `--history` show. It
/// opens the database read-only, creates no table, and takes no lock a
/// running sync would wait for.
pub struct RunHistory {
    conn: Connection,
    tables: Tables,
}

impl RunHistory {
    /// Opens the catalogue's history; `None` when the database file does
    /// not exist yet (no run has created it).
    pub fn open(options: &SqliteOptions) -> anyhow::Result<Option<RunHistory>> {
        super::schema::validate_table_prefix(&options.table_prefix)?;
        if !options.path.exists() {
            return Ok(None);
        }
        let conn = super::open_read_only(&options.path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        if let Err(error) = conn.execute_batch("SELECT count(*) FROM sqlite_master") {
            let locked = matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            );
            let why = if locked {
                "is locked by another process (a sync committing a large batch, or one of muninn's tools) for more than 30 s; try again"
            } else {
                "is not a usable SQLite database"
            };
            return Err(anyhow::Error::new(error).context(format!(
                "the catalogue \"{}\" {why}",
                options.path.display()
            )));
        }
        Ok(Some(RunHistory {
            conn,
            tables: Tables::new(&options.table_prefix),
        }))
    }

    /// Every synchronizer's watermarks.
    pub fn all_watermarks(&self) -> Result<BTreeMap<String, Watermarks>> {
        read_watermarks(&self.conn, &self.tables)
    }

    /// The latest `limit` runs, newest first, of one synchronizer or all.
    pub fn runs(&self, synchronizer: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        read_runs(&self.conn, &self.tables, synchronizer, limit)
    }

    /// When each synchronizer last succeeded.
    pub fn last_successes(&self) -> Result<BTreeMap<String, Timestamp>> {
        read_last_successes(&self.conn, &self.tables)
    }

    /// How many products each synchronizer owns, and how many nobody owns
    /// (all of them in a catalogue without owner records yet).
    pub fn owned_counts(&self) -> Result<(BTreeMap<String, u64>, u64)> {
        if !table_exists(&self.conn, &self.tables.core)? {
            return Ok((BTreeMap::new(), 0));
        }
        super::owners::owned_counts(&self.conn, &self.tables)
    }
}

fn read_watermarks(conn: &Connection, tables: &Tables) -> Result<BTreeMap<String, Watermarks>> {
    let mut all: BTreeMap<String, Watermarks> = BTreeMap::new();
    if !table_exists(conn, &tables.watermarks)? {
        return Ok(all);
    }
    let mut statement = conn.prepare(&format!(
        "SELECT synchronizer, product_type, watermark FROM {}",
        tables.watermarks
    ))?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            timestamp_column(row, 2)?,
        ))
    })?;
    for row in rows {
        let (synchronizer, product_type, time) = row?;
        if let Some(time) = time {
            all.entry(synchronizer)
                .or_default()
                .insert(product_type, time);
        }
    }
    Ok(all)
}

fn read_runs(
    conn: &Connection,
    tables: &Tables,
    synchronizer: Option<&str>,
    limit: usize,
) -> Result<Vec<RunRecord>> {
    if !table_exists(conn, &tables.runs)? {
        return Ok(Vec::new());
    }
    let mut statement = conn.prepare(&format!(
        "SELECT id, synchronizer, plugin, product_types, window_start, window_end, incremental, \
         force, started, finished, pid, hostname, created, updated, unchanged, removed, failed, \
         outcome, error FROM {} WHERE ?1 IS NULL OR synchronizer = ?1 ORDER BY id DESC LIMIT ?2",
        tables.runs
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![synchronizer, limit], |row| {
        let product_types: Option<String> = row.get(3)?;
        let outcome: String = row.get(17)?;
        let number = |i: usize| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
        Ok(RunRecord {
            id: row.get(0)?,
            start: RunStart {
                synchronizer: row.get(1)?,
                plugin: row.get(2)?,
                product_types: product_types.and_then(|t| serde_json::from_str(&t).ok()),
                window_start: timestamp_column(row, 4)?,
                window_end: timestamp_column(row, 5)?,
                incremental: row.get(6)?,
                force: row.get(7)?,
                started: timestamp_column(row, 8)?.unwrap_or_default(),
                pid: row.get(10)?,
                hostname: row.get(11)?,
            },
            finished: timestamp_column(row, 9)?,
            counts: RunCounts {
                created: number(12)?,
                updated: number(13)?,
                unchanged: number(14)?,
                removed: number(15)?,
                failed: number(16)?,
            },
            outcome: RunOutcome::from_name(&outcome).unwrap_or(RunOutcome::Failed),
            error: row.get(18)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn read_last_successes(conn: &Connection, tables: &Tables) -> Result<BTreeMap<String, Timestamp>> {
    let mut last = BTreeMap::new();
    if !table_exists(conn, &tables.runs)? {
        return Ok(last);
    }
    let mut statement = conn.prepare(&format!(
        "SELECT synchronizer, max(finished) FROM {} WHERE outcome = ?1 GROUP BY synchronizer",
        tables.runs
    ))?;
    let rows = statement.query_map([RunOutcome::Succeeded.name()], |row| {
        Ok((row.get::<_, String>(0)?, timestamp_column(row, 1)?))
    })?;
    for row in rows {
        if let (synchronizer, Some(time)) = row? {
            last.insert(synchronizer, time);
        }
    }
    Ok(last)
}
