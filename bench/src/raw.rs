//! The physical limit on SQLite: the rows a first sync writes, inserted
//! straight into a fresh catalogue with rusqlite (prepared statements, one
//! transaction per batch, the catalogue's schema, indexes, spatial index,
//! page cache and journal settings), no plugin, no look-ups, no comparison.
//!
//! As on PostgreSQL (`raw_copy.rs`), two sets of rows: every row a first
//! sync through the jsonl plugin writes for a product (`core`, `eo`, the
//! plugin's `jsonl` row and the owner record), "the same rows"; and only
//! `core` and `eo`, the limit as it was first measured.

use crate::feed::{self, product, sql_time};
use crate::raw_copy::{hash, Rows};
use anyhow::{Context, Result};
use muninn_sync_catalogue::{SqliteCatalogue, SqliteOptions};
use muninn_sync_model::Value;
use rusqlite::types::Value as Sql;
use std::path::Path;
use std::time::{Duration, Instant};

/// The batch size muninn-sync commits at.
const BATCH: u64 = 5000;

/// Inserts `rows` of products 0..n into a new catalogue at `path`, as
/// synchronizer `synchronizer`; returns the time spent inserting
/// (generating the rows is not counted).
pub fn insert(path: &Path, n: u64, rows: Rows, synchronizer: &str) -> Result<Duration> {
    // The catalogue creates the schema exactly as a sync would.
    drop(SqliteCatalogue::open(&SqliteOptions::new(path))?);
    let conn = rusqlite::Connection::open(path)?;
    // SAFETY: the system's mod_spatialite, as the catalogue loads it.
    unsafe {
        let _guard = rusqlite::LoadExtensionGuard::new(&conn)?;
        conn.load_extension("mod_spatialite", None::<&str>)
            .context("the benchmark needs mod_spatialite (Debian: libsqlite3-mod-spatialite)")?;
    }
    // The catalogue's own settings (catalogue/src/sqlite/open.rs).
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;
         CREATE TABLE eo (uuid UUID TEXT PRIMARY KEY REFERENCES core(uuid) ON DELETE CASCADE,
                          cloud_cover REAL, orbit INTEGER, platform TEXT, sensing_time TIMESTAMP);
         CREATE TABLE jsonl (uuid UUID TEXT PRIMARY KEY REFERENCES core(uuid) ON DELETE CASCADE,
                             fingerprint INTEGER, key INTEGER, modified TIMESTAMP);",
    )?;
    let every = rows == Rows::Every;
    let mut spent = Duration::ZERO;
    let mut first = 0;
    while first < n {
        let last = (first + BATCH).min(n);
        let batch: Vec<ProductRows> = (first..last).map(|i| product_rows(i, n)).collect();
        let started = Instant::now();
        let tx = conn.unchecked_transaction()?;
        {
            let mut core = tx.prepare_cached(
                "INSERT INTO core (uuid, active, hash, size, metadata_date, archive_date, archive_path, product_type, \
                 product_name, physical_name, validity_start, validity_stop, creation_date, footprint, remote_url) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?;
            let mut eo = tx.prepare_cached(
                "INSERT INTO eo (uuid, cloud_cover, orbit, platform, sensing_time) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut jsonl = tx.prepare_cached(
                "INSERT INTO jsonl (uuid, fingerprint, key, modified) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for rows in &batch {
                core.execute(rusqlite::params_from_iter(&rows.core))?;
                eo.execute(rusqlite::params_from_iter(&rows.eo))?;
                if every {
                    jsonl.execute(rusqlite::params_from_iter(&rows.jsonl))?;
                }
            }
            if every {
                // As the host records them: at the batch's end, in uuid order.
                let mut owners = tx.prepare_cached(
                    "INSERT INTO muninn_sync_owners (uuid, synchronizer) VALUES (?1, ?2)",
                )?;
                let mut uuids: Vec<&Sql> = batch.iter().map(|rows| &rows.core[0]).collect();
                uuids.sort_by(|a, b| match (a, b) {
                    (Sql::Text(a), Sql::Text(b)) => a.cmp(b),
                    _ => std::cmp::Ordering::Equal,
                });
                for uuid in uuids {
                    owners.execute(rusqlite::params![uuid, synchronizer])?;
                }
            }
        }
        tx.commit()?;
        spent += started.elapsed();
        first = last;
    }
    Ok(spent)
}

fn text(value: Option<String>) -> Sql {
    value.map_or(Sql::Null, Sql::Text)
}

/// The rows of one product, as the catalogue would store them.
struct ProductRows {
    core: Vec<Sql>,
    eo: Vec<Sql>,
    jsonl: Vec<Sql>,
}

/// The rows of product `i`.
fn product_rows(i: u64, n: u64) -> ProductRows {
    let (modified, p) = product(i, n, 0);
    let uuid = p.uuid.simple().to_string();
    let now = muninn_sync_model::format_timestamp(&chrono::Utc::now());
    let core = vec![
        Sql::Text(uuid.clone()),
        Sql::Integer(1),
        text(p.hash.clone()),
        p.size.map_or(Sql::Null, Sql::Integer),
        Sql::Text(now),
        Sql::Null,
        Sql::Null,
        Sql::Text(p.product_type.clone()),
        Sql::Text(p.product_name.clone()),
        Sql::Text(p.physical_name.clone()),
        text(sql_time(&p.validity_start)),
        text(sql_time(&p.validity_stop)),
        text(sql_time(&p.creation_date)),
        p.footprint
            .as_ref()
            .map_or(Sql::Null, |g| Sql::Blob(g.to_spatialite_blob())),
        text(p.remote_url.clone()),
    ];
    let eo_values = &p.namespaces["eo"];
    let get = |name: &str| match &eo_values[name] {
        Value::Real(r) => Sql::Real(*r),
        Value::Integer(i) => Sql::Integer(*i),
        Value::Text(t) => Sql::Text(t.clone()),
        Value::Timestamp(t) => Sql::Text(muninn_sync_model::format_timestamp(t)),
        other => Sql::Text(other.to_string()),
    };
    let eo = vec![
        Sql::Text(uuid.clone()),
        get("cloud_cover"),
        get("orbit"),
        get("platform"),
        get("sensing_time"),
    ];
    // The plugin keeps a hash of the product's line and one of its type
    // and name; any 64-bit hash has the same size.
    let jsonl = vec![
        Sql::Text(uuid),
        Sql::Integer(hash(&feed::line(&modified, &p))),
        Sql::Integer(hash(&(&p.product_type, &p.product_name))),
        Sql::Text(muninn_sync_model::format_timestamp(&modified)),
    ];
    ProductRows { core, eo, jsonl }
}
