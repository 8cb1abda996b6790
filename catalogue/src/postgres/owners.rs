//! Who owns each product, product types, and deletions a remote reported:
//! muninn-sync's own tables `muninn_sync_owners` and
//! `muninn_sync_deletions`, as on SQLite.

use super::Store;
use crate::Result;
use muninn_sync_model::{Deletion, ProductTypeSummary, Timestamp, Uuid};
use std::collections::{BTreeMap, HashMap};

impl Store {
    pub(super) fn read_owners(&mut self, uuids: &[Uuid]) -> Result<Vec<Option<String>>> {
        if self.pending.touches_owners(uuids) {
            self.flush_held_back()?;
        }
        self.begin()?;
        let sql = format!(
            "SELECT uuid, synchronizer FROM {} WHERE uuid = ANY($1)",
            self.tables.owners
        );
        let statement = self.statement(&sql)?;
        let found: HashMap<Uuid, String> = self
            .client
            .query(&statement, &[&uuids])?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        Ok(uuids.iter().map(|u| found.get(u).cloned()).collect())
    }

    pub(super) fn count_unowned(&mut self, product_types: &[String]) -> Result<u64> {
        if product_types.is_empty() {
            return Ok(0);
        }
        self.flush_held_back()?;
        self.begin()?;
        let sql = format!(
            "SELECT count(*) FROM {core} c WHERE c.product_type = ANY($1) \
             AND NOT EXISTS (SELECT 1 FROM {owners} o WHERE o.uuid = c.uuid)",
            core = self.tables.core,
            owners = self.tables.owners
        );
        let count: i64 = self.client.query_one(&sql, &[&product_types])?.get(0);
        Ok(count as u64)
    }

    pub(super) fn adopt_unowned_products(
        &mut self,
        synchronizer: &str,
        product_types: &[String],
    ) -> Result<u64> {
        if product_types.is_empty() {
            return Ok(0);
        }
        self.flush_held_back()?;
        self.begin()?;
        let sql = format!(
            "INSERT INTO {owners} (uuid, synchronizer) SELECT c.uuid, $1 FROM {core} c \
             WHERE c.product_type = ANY($2) AND NOT EXISTS (SELECT 1 FROM {owners} o WHERE o.uuid = c.uuid) \
             ON CONFLICT (uuid) DO NOTHING",
            core = self.tables.core,
            owners = self.tables.owners
        );
        Ok(self
            .client
            .execute(&sql, &[&synchronizer, &product_types])?)
    }

    pub(super) fn summarise_product_types(
        &mut self,
        synchronizer: &str,
    ) -> Result<Vec<ProductTypeSummary>> {
        self.flush_held_back()?;
        self.begin()?;
        let sql = format!(
            "SELECT c.product_type, count(*), count(o.uuid), min(c.validity_start), max(c.validity_start) \
             FROM {core} c LEFT JOIN {owners} o ON o.uuid = c.uuid AND o.synchronizer = $1 \
             GROUP BY c.product_type ORDER BY c.product_type",
            core = self.tables.core,
            owners = self.tables.owners
        );
        let rows = self.client.query(&sql, &[&synchronizer])?;
        Ok(rows
            .iter()
            .map(|row| ProductTypeSummary {
                product_type: row.get(0),
                count: row.get::<_, i64>(1) as u64,
                owned: row.get::<_, i64>(2) as u64,
                validity_start_min: row
                    .get::<_, Option<chrono::NaiveDateTime>>(3)
                    .map(|t| t.and_utc()),
                validity_start_max: row
                    .get::<_, Option<chrono::NaiveDateTime>>(4)
                    .map(|t| t.and_utc()),
            })
            .collect())
    }

    /// Tombstones are written at once and never held back, and no held-back
    /// change reads or writes them: neither this nor
    /// [`Self::read_deletions`] has to write what is held back first.
    pub(super) fn write_deletion(&mut self, synchronizer: &str, deletion: &Deletion) -> Result<()> {
        self.begin()?;
        self.tombstones.insert(synchronizer.to_string(), true);
        let sql = format!(
            "INSERT INTO {table} (synchronizer, product_type, product_name, uuid, deleted) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (synchronizer, product_type, product_name) \
             DO UPDATE SET uuid = coalesce(EXCLUDED.uuid, {table}.uuid), \
             deleted = greatest({table}.deleted, EXCLUDED.deleted)",
            table = self.tables.deletions
        );
        let statement = self.statement(&sql)?;
        self.client.execute(
            &statement,
            &[
                &synchronizer,
                &deletion.product_type,
                &deletion.product_name,
                &deletion.uuid,
                &deletion.time.naive_utc(),
            ],
        )?;
        Ok(())
    }

    pub(super) fn read_deletions(
        &mut self,
        synchronizer: &str,
        product_type: &str,
        product_names: &[&str],
    ) -> Result<Vec<Option<Timestamp>>> {
        self.begin()?;
        // A dry run takes no run lock, so a real run may write tombstones
        // meanwhile: it asks every time.
        if !self.dry_run && !self.has_tombstones(synchronizer)? {
            return Ok(vec![None; product_names.len()]);
        }
        let sql = format!(
            "SELECT product_name, deleted FROM {} WHERE synchronizer = $1 AND product_type = $2 \
             AND product_name = ANY($3)",
            self.tables.deletions
        );
        let statement = self.statement(&sql)?;
        let found: HashMap<String, Timestamp> = self
            .client
            .query(&statement, &[&synchronizer, &product_type, &product_names])?
            .iter()
            .map(|row| (row.get(0), row.get::<_, chrono::NaiveDateTime>(1).and_utc()))
            .collect();
        Ok(product_names
            .iter()
            .map(|n| found.get(*n).copied())
            .collect())
    }

    /// Whether the synchronizer has any tombstone. Most have none, and a
    /// plugin asks for each page it reads: one question per run instead of
    /// a round trip per page. Only the synchronizer's own run writes its
    /// tombstones (the run lock keeps others out), and it notes each here.
    fn has_tombstones(&mut self, synchronizer: &str) -> Result<bool> {
        if let Some(&known) = self.tombstones.get(synchronizer) {
            return Ok(known);
        }
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE synchronizer = $1)",
            self.tables.deletions
        );
        let statement = self.statement(&sql)?;
        let any: bool = self.client.query_one(&statement, &[&synchronizer])?.get(0);
        self.tombstones.insert(synchronizer.to_string(), any);
        Ok(any)
    }

    /// How many products each synchronizer owns, and how many nobody owns.
    pub(super) fn owned_counts(&mut self) -> Result<(BTreeMap<String, u64>, u64)> {
        let owned = self
            .client
            .query(
                &format!(
                    "SELECT synchronizer, count(*) FROM {} GROUP BY synchronizer",
                    self.tables.owners
                ),
                &[],
            )?
            .iter()
            .map(|row| (row.get(0), row.get::<_, i64>(1) as u64))
            .collect();
        let unowned: i64 = self
            .client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {core} c WHERE NOT EXISTS (SELECT 1 FROM {owners} o WHERE o.uuid = c.uuid)",
                    core = self.tables.core,
                    owners = self.tables.owners
                ),
                &[],
            )?
            .get(0);
        Ok((owned, unowned as u64))
    }
}
