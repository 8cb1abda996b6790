//! muninn-sync's records about products beside muninn's tables: which
//! synchronizer owns each product (`muninn_sync_owners`), which products a
//! synchronizer's remote deleted (`muninn_sync_deletions`, tombstones), and
//! the product types the catalogue holds.
//!
//! An owner row references muninn's `core` row with `ON DELETE CASCADE`:
//! removing a product through muninn (which turns foreign keys on) removes
//! the record with it, so muninn's tools need to know nothing of it.

use super::reads::{placeholders, LOOKUP_CHUNK};
use super::schema::Tables;
use super::SqliteCatalogue;
use crate::Result;
use muninn_sync_model::{
    format_timestamp, parse_timestamp, Deletion, ProductTypeSummary, Timestamp, Uuid,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap};

/// Creates the tables if this database has none yet (catalogues made by an
/// older muninn-sync or by muninn get them on their first run).
///
/// Every created product adds an owner row, so the table is kept to one
/// B-tree keyed by uuid (WITHOUT ROWID, no index on the synchronizer):
/// the counts per synchronizer that `--list` and `product_types` ask for
/// scan it, which is rare, while every first sync pays for each index.
pub(crate) fn create_owner_tables(conn: &Connection, tables: &Tables) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {owners} (
             uuid UUID TEXT PRIMARY KEY NOT NULL REFERENCES {core}(uuid) ON DELETE CASCADE ON UPDATE CASCADE,
             synchronizer TEXT NOT NULL) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS {deletions} (
             synchronizer TEXT NOT NULL,
             product_type TEXT NOT NULL,
             product_name TEXT NOT NULL,
             uuid TEXT,
             deleted TEXT NOT NULL,
             PRIMARY KEY (synchronizer, product_type, product_name));",
        owners = tables.owners,
        deletions = tables.deletions,
        core = tables.core,
    ))
}

/// How many products each synchronizer owns, and how many nobody owns.
pub(crate) fn owned_counts(
    conn: &Connection,
    tables: &Tables,
) -> Result<(BTreeMap<String, u64>, u64)> {
    if !super::schema::table_exists(conn, &tables.owners)? {
        let all: i64 =
            conn.query_row(&format!("SELECT count(*) FROM {}", tables.core), [], |r| {
                r.get(0)
            })?;
        return Ok((BTreeMap::new(), all as u64));
    }
    let mut owned = BTreeMap::new();
    let mut statement = conn.prepare(&format!(
        "SELECT synchronizer, count(*) FROM {} GROUP BY synchronizer",
        tables.owners
    ))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        owned.insert(row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64);
    }
    let unowned: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM {core} c WHERE NOT EXISTS (SELECT 1 FROM {owners} o WHERE o.uuid = c.uuid)",
            core = tables.core,
            owners = tables.owners
        ),
        [],
        |r| r.get(0),
    )?;
    Ok((owned, unowned as u64))
}

/// The SQL condition "product `c` is owned by nobody and of one of
/// `types`", with its parameters from `?first` on.
fn unowned_of_types(tables: &Tables, types: &[String], first: usize) -> String {
    format!(
        "c.product_type IN ({}) AND NOT EXISTS (SELECT 1 FROM {} o WHERE o.uuid = c.uuid)",
        placeholders(first, types.len()),
        tables.owners
    )
}

impl SqliteCatalogue {
    fn owner_keys(&self, uuids: &[Uuid]) -> Vec<String> {
        uuids.iter().map(|u| self.uuids.text(u)).collect()
    }

    /// The owner of each product, in order; `None`: nobody.
    pub(crate) fn read_owners(&self, uuids: &[Uuid]) -> Result<Vec<Option<String>>> {
        self.begin()?;
        let keys = self.owner_keys(uuids);
        let mut found: HashMap<String, String> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT uuid, synchronizer FROM {} WHERE uuid IN ({})",
                self.tables.owners,
                placeholders(1, chunk.len())
            );
            let mut statement = self.conn.prepare_cached(&sql)?;
            let mut rows = statement.query(params_from_iter(chunk.iter()))?;
            while let Some(row) = rows.next()? {
                found.insert(row.get(0)?, row.get(1)?);
            }
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    /// Records `synchronizer` as the owner of these products.
    pub(crate) fn write_owner(&mut self, uuids: &[Uuid], synchronizer: &str) -> Result<()> {
        self.begin_write()?;
        let sql = format!(
            "INSERT INTO {} (uuid, synchronizer) VALUES (?1, ?2) \
             ON CONFLICT (uuid) DO UPDATE SET synchronizer = excluded.synchronizer",
            self.tables.owners
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        // In key order: neighbouring rows share pages of the table and of
        // core's uuid index, which the foreign key looks up.
        let mut keys = self.owner_keys(uuids);
        keys.sort_unstable();
        for key in keys {
            statement.execute([key.as_str(), synchronizer])?;
        }
        Ok(())
    }

    /// How many products of these types nobody owns.
    pub(crate) fn count_unowned(&self, product_types: &[String]) -> Result<u64> {
        if product_types.is_empty() {
            return Ok(0);
        }
        self.begin()?;
        let sql = format!(
            "SELECT count(*) FROM {} c WHERE {}",
            self.tables.core,
            unowned_of_types(&self.tables, product_types, 1)
        );
        let count: i64 =
            self.conn
                .query_row(&sql, params_from_iter(product_types.iter()), |r| r.get(0))?;
        Ok(count as u64)
    }

    /// Makes `synchronizer` the owner of the products of these types that
    /// nobody owns; how many.
    pub(crate) fn adopt_unowned_products(
        &mut self,
        synchronizer: &str,
        product_types: &[String],
    ) -> Result<u64> {
        if product_types.is_empty() {
            return Ok(0);
        }
        self.begin_write()?;
        let sql = format!(
            "INSERT INTO {owners} (uuid, synchronizer) SELECT c.uuid, ?1 FROM {core} c WHERE {}",
            unowned_of_types(&self.tables, product_types, 2),
            owners = self.tables.owners,
            core = self.tables.core,
        );
        let params = std::iter::once(synchronizer.to_string()).chain(product_types.iter().cloned());
        Ok(self.conn.execute(&sql, params_from_iter(params))? as u64)
    }

    /// Every product type with its counts and `validity_start` range.
    pub(crate) fn summarise_product_types(
        &self,
        synchronizer: &str,
    ) -> Result<Vec<ProductTypeSummary>> {
        self.begin()?;
        let mut owned: HashMap<String, u64> = HashMap::new();
        {
            let sql = format!(
                "SELECT c.product_type, count(*) FROM {owners} o JOIN {core} c ON c.uuid = o.uuid \
                 WHERE o.synchronizer = ?1 GROUP BY c.product_type",
                owners = self.tables.owners,
                core = self.tables.core
            );
            let mut statement = self.conn.prepare_cached(&sql)?;
            let mut rows = statement.query([synchronizer])?;
            while let Some(row) = rows.next()? {
                owned.insert(row.get(0)?, row.get::<_, i64>(1)? as u64);
            }
        }
        let sql = format!(
            "SELECT product_type, count(*), min(validity_start), max(validity_start) FROM {} \
             GROUP BY product_type ORDER BY product_type",
            self.tables.core
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let mut rows = statement.query([])?;
        let mut summaries = Vec::new();
        let time = |raw: Option<String>| -> Result<Option<Timestamp>> {
            raw.map(|text| {
                parse_timestamp(&text).map_err(|e| {
                    crate::CatalogueError::Storage(anyhow::anyhow!(
                        "{}.validity_start holds {text:?}: {e}",
                        self.tables.core
                    ))
                })
            })
            .transpose()
        };
        while let Some(row) = rows.next()? {
            let product_type: String = row.get(0)?;
            summaries.push(ProductTypeSummary {
                owned: owned.get(&product_type).copied().unwrap_or(0),
                count: row.get::<_, i64>(1)? as u64,
                validity_start_min: time(row.get(2)?)?,
                validity_start_max: time(row.get(3)?)?,
                product_type,
            });
        }
        Ok(summaries)
    }

    /// Remembers a deletion; a later one of the same product wins.
    pub(crate) fn write_deletion(&mut self, synchronizer: &str, deletion: &Deletion) -> Result<()> {
        self.begin_write()?;
        let sql = format!(
            "INSERT INTO {} (synchronizer, product_type, product_name, uuid, deleted) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (synchronizer, product_type, product_name) \
             DO UPDATE SET uuid = coalesce(excluded.uuid, uuid), deleted = max(deleted, excluded.deleted)",
            self.tables.deletions
        );
        let uuid = deletion
            .uuid
            .map(|u| SqlValue::Text(u.simple().to_string()));
        self.conn.prepare_cached(&sql)?.execute(rusqlite::params![
            synchronizer,
            deletion.product_type,
            deletion.product_name,
            uuid,
            format_timestamp(&deletion.time),
        ])?;
        Ok(())
    }

    /// When `synchronizer` recorded the deletion of each named product.
    pub(crate) fn read_deletions(
        &self,
        synchronizer: &str,
        product_type: &str,
        product_names: &[&str],
    ) -> Result<Vec<Option<Timestamp>>> {
        self.begin()?;
        // Most synchronizers never record one: one cheap look first.
        let any: Option<i64> = self
            .conn
            .prepare_cached(&format!(
                "SELECT 1 FROM {} WHERE synchronizer = ?1 AND product_type = ?2 LIMIT 1",
                self.tables.deletions
            ))?
            .query_row([synchronizer, product_type], |r| r.get(0))
            .optional()?;
        if any.is_none() {
            return Ok(vec![None; product_names.len()]);
        }
        let mut found: HashMap<String, Timestamp> = HashMap::new();
        for chunk in product_names.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT product_name, deleted FROM {} WHERE synchronizer = ?1 AND product_type = ?2 \
                 AND product_name IN ({})",
                self.tables.deletions,
                placeholders(3, chunk.len())
            );
            let params = [synchronizer, product_type]
                .into_iter()
                .chain(chunk.iter().copied());
            let mut statement = self.conn.prepare_cached(&sql)?;
            let mut rows = statement.query(params_from_iter(params))?;
            while let Some(row) = rows.next()? {
                let name: String = row.get(0)?;
                let text: String = row.get(1)?;
                let time = parse_timestamp(&text).map_err(|e| {
                    crate::CatalogueError::Storage(anyhow::anyhow!(
                        "{} of {product_type}/{name} holds {text:?}: {e}",
                        self.tables.deletions
                    ))
                })?;
                found.insert(name, time);
            }
        }
        Ok(product_names
            .iter()
            .map(|n| found.get(*n).copied())
            .collect())
    }
}

/// Whether muninn-sync's owner records exist in this database.
pub(crate) fn owner_tables_exist(conn: &Connection, tables: &Tables) -> anyhow::Result<bool> {
    Ok(super::schema::table_exists(conn, &tables.owners)?
        && super::schema::table_exists(conn, &tables.deletions)?)
}
