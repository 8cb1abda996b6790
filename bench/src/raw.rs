//! The physical limit: the same rows inserted straight into a fresh
//! catalogue with rusqlite (prepared statements, one transaction per batch,
//! same schema, indexes, spatial index and page cache), no plugin, no
//! look-ups, no comparison.

use crate::feed::{product, sql_time};
use anyhow::{Context, Result};
use muninn_sync_catalogue::{SqliteCatalogue, SqliteOptions};
use muninn_sync_model::Value;
use rusqlite::types::Value as Sql;
use std::path::Path;
use std::time::{Duration, Instant};

/// The batch size muninn-sync commits at.
const BATCH: u64 = 5000;

/// Inserts products 0..n into a new catalogue at `path`; returns the time
/// spent inserting (generating the rows is not counted).
pub fn insert(path: &Path, n: u64) -> Result<Duration> {
    // The catalogue creates the schema exactly as a sync would.
    drop(SqliteCatalogue::open(&SqliteOptions::new(path))?);
    let conn = rusqlite::Connection::open(path)?;
    // SAFETY: the system's mod_spatialite, as the catalogue loads it.
    unsafe {
        let _guard = rusqlite::LoadExtensionGuard::new(&conn)?;
        conn.load_extension("mod_spatialite", None::<&str>)
            .context("the benchmark needs mod_spatialite (Debian: libsqlite3-mod-spatialite)")?;
    }
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384;
         CREATE TABLE eo (uuid UUID TEXT PRIMARY KEY REFERENCES core(uuid) ON DELETE CASCADE,
                          cloud_cover REAL, orbit INTEGER, platform TEXT, sensing_time TIMESTAMP);",
    )?;
    let mut spent = Duration::ZERO;
    let mut first = 0;
    while first < n {
        let last = (first + BATCH).min(n);
        let rows: Vec<(Vec<Sql>, Vec<Sql>)> = (first..last).map(|i| rows(i, n)).collect();
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
            for (core_row, eo_row) in &rows {
                core.execute(rusqlite::params_from_iter(core_row))?;
                eo.execute(rusqlite::params_from_iter(eo_row))?;
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

/// The core and `eo` rows of product `i`, as the catalogue would store them.
fn rows(i: u64, n: u64) -> (Vec<Sql>, Vec<Sql>) {
    let (_, p) = product(i, n, 0);
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
        Sql::Text(uuid),
        get("cloud_cover"),
        get("orbit"),
        get("platform"),
        get("sensing_time"),
    ];
    (core, eo)
}
