//! The run history and watermarks on PostgreSQL: `muninn_sync_runs` and
//! `muninn_sync_watermarks` under the archive's table prefix, written in
//! the batch's transaction as on SQLite.

use super::Store;
use crate::runs::{RunCounts, RunOutcome, RunRecord, RunStart, Watermarks};
use crate::{CatalogueError, Result};
use muninn_sync_model::Timestamp;
use std::collections::BTreeMap;

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn naive(t: &Timestamp) -> chrono::NaiveDateTime {
    t.naive_utc()
}

impl Store {
    /// Runs `work` in a transaction of its own, outside any batch.
    fn in_own_transaction<T>(&mut self, work: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.in_transaction || !self.pending.is_empty() {
            return Err(CatalogueError::Storage(anyhow::anyhow!(
                "muninn-sync internal error: run bookkeeping inside an open batch"
            )));
        }
        self.client.batch_execute("BEGIN")?;
        match work(self) {
            Ok(value) => {
                self.client.batch_execute("COMMIT")?;
                Ok(value)
            }
            Err(error) => {
                let _ = self.client.batch_execute("ROLLBACK");
                Err(error)
            }
        }
    }

    pub(super) fn begin_run(&mut self, run: &RunStart) -> Result<i64> {
        let runs = self.tables.runs.clone();
        self.in_own_transaction(|store| {
            store.client.execute(
                &format!("UPDATE {runs} SET outcome = $1, error = $2 WHERE synchronizer = $3 AND outcome = $4"),
                &[
                    &RunOutcome::Abandoned.name(),
                    &"the run ended without recording how (killed, or the machine stopped); \
                      its committed batches are kept",
                    &run.synchronizer,
                    &RunOutcome::Running.name(),
                ],
            )?;
            let product_types = run
                .product_types
                .as_ref()
                .map(|types| serde_json::to_string(types).expect("strings serialize"));
            let row = store.client.query_one(
                &format!(
                    "INSERT INTO {runs} (synchronizer, plugin, product_types, window_start, window_end, \
                     incremental, force, started, pid, hostname, outcome) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id"
                ),
                &[
                    &run.synchronizer,
                    &run.plugin,
                    &product_types,
                    &run.window_start.as_ref().map(naive),
                    &run.window_end.as_ref().map(naive),
                    &run.incremental,
                    &run.force,
                    &naive(&run.started),
                    &i64::from(run.pid),
                    &run.hostname,
                    &RunOutcome::Running.name(),
                ],
            )?;
            Ok(row.get(0))
        })
    }

    /// The run's counts and raised watermarks, in the batch's transaction.
    pub(super) fn record_progress(
        &mut self,
        run: i64,
        counts: &RunCounts,
        watermarks: &Watermarks,
    ) -> Result<()> {
        self.flush_held_back()?;
        self.begin()?;
        let sql = format!(
            "UPDATE {} SET created = $1, updated = $2, unchanged = $3, removed = $4, failed = $5 WHERE id = $6",
            self.tables.runs
        );
        let statement = self.statement(&sql)?;
        self.client.execute(
            &statement,
            &[
                &count(counts.created),
                &count(counts.updated),
                &count(counts.unchanged),
                &count(counts.removed),
                &count(counts.failed),
                &run,
            ],
        )?;
        if watermarks.is_empty() {
            return Ok(());
        }
        let types: Vec<&str> = watermarks.keys().map(String::as_str).collect();
        let times: Vec<chrono::NaiveDateTime> = watermarks.values().map(naive).collect();
        let sql = format!(
            "INSERT INTO {w} AS w (synchronizer, product_type, watermark, run_id) \
             SELECT r.synchronizer, t.product_type, t.watermark, r.id \
             FROM {r} r, unnest($1::text[], $2::timestamp[]) AS t(product_type, watermark) WHERE r.id = $3 \
             ON CONFLICT (synchronizer, product_type) DO UPDATE \
             SET watermark = EXCLUDED.watermark, run_id = EXCLUDED.run_id \
             WHERE EXCLUDED.watermark > w.watermark",
            w = self.tables.watermarks,
            r = self.tables.runs
        );
        let statement = self.statement(&sql)?;
        self.client.execute(&statement, &[&types, &times, &run])?;
        Ok(())
    }

    pub(super) fn end_run(
        &mut self,
        run: i64,
        finished: Timestamp,
        counts: &RunCounts,
        outcome: RunOutcome,
        error: Option<&str>,
    ) -> Result<()> {
        let runs = self.tables.runs.clone();
        self.in_own_transaction(|store| {
            store.client.execute(
                &format!(
                    "UPDATE {runs} SET finished = $1, created = $2, updated = $3, unchanged = $4, \
                     removed = $5, failed = $6, outcome = $7, error = $8 WHERE id = $9"
                ),
                &[
                    &naive(&finished),
                    &count(counts.created),
                    &count(counts.updated),
                    &count(counts.unchanged),
                    &count(counts.removed),
                    &count(counts.failed),
                    &outcome.name(),
                    &error,
                    &run,
                ],
            )?;
            Ok(())
        })
    }

    pub(super) fn read_watermarks(&mut self) -> Result<BTreeMap<String, Watermarks>> {
        let mut all: BTreeMap<String, Watermarks> = BTreeMap::new();
        let sql = format!(
            "SELECT synchronizer, product_type, watermark FROM {}",
            self.tables.watermarks
        );
        for row in self.client.query(&sql, &[])? {
            let time: chrono::NaiveDateTime = row.get(2);
            all.entry(row.get(0))
                .or_default()
                .insert(row.get(1), time.and_utc());
        }
        Ok(all)
    }

    pub(super) fn read_runs(
        &mut self,
        synchronizer: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT id, synchronizer, plugin, product_types, window_start, window_end, incremental, \
             force, started, finished, pid, hostname, created, updated, unchanged, removed, failed, \
             outcome, error FROM {} WHERE $1::text IS NULL OR synchronizer = $1 ORDER BY id DESC LIMIT $2",
            self.tables.runs
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.client.query(&sql, &[&synchronizer, &limit])?;
        let time = |t: Option<chrono::NaiveDateTime>| t.map(|t| t.and_utc());
        Ok(rows
            .iter()
            .map(|row| {
                let product_types: Option<String> = row.get(3);
                let outcome: String = row.get(17);
                let number = |i: usize| row.get::<_, i64>(i).max(0) as u64;
                RunRecord {
                    id: row.get(0),
                    start: RunStart {
                        synchronizer: row.get(1),
                        plugin: row.get(2),
                        product_types: product_types.and_then(|t| serde_json::from_str(&t).ok()),
                        window_start: time(row.get(4)),
                        window_end: time(row.get(5)),
                        incremental: row.get(6),
                        force: row.get(7),
                        started: time(row.get(8)).unwrap_or_default(),
                        pid: u32::try_from(row.get::<_, i64>(10)).unwrap_or(0),
                        hostname: row.get(11),
                    },
                    finished: time(row.get(9)),
                    counts: RunCounts {
                        created: number(12),
                        updated: number(13),
                        unchanged: number(14),
                        removed: number(15),
                        failed: number(16),
                    },
                    outcome: RunOutcome::from_name(&outcome).unwrap_or(RunOutcome::Failed),
                    error: row.get(18),
                }
            })
            .collect())
    }

    pub(super) fn read_last_successes(&mut self) -> Result<BTreeMap<String, Timestamp>> {
        let sql = format!(
            "SELECT synchronizer, max(finished) FROM {} WHERE outcome = $1 GROUP BY synchronizer",
            self.tables.runs
        );
        Ok(self
            .client
            .query(&sql, &[&RunOutcome::Succeeded.name()])?
            .iter()
            .filter_map(|row| {
                let time: Option<chrono::NaiveDateTime> = row.get(1);
                Some((row.get(0), time?.and_utc()))
            })
            .collect())
    }
}
