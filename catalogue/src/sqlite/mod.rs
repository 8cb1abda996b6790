//! The SQLite catalogue, in muninn 7.5's layout: opened and locked in
//! [`open`], read in [`reads`], written in [`writes`]; its tables in
//! [`schema`], its values in [`values`], run history and owners beside.

mod open;
mod owners;
mod reads;
mod runs;
pub use runs::RunHistory;
mod schema;
mod values;
mod writes;

pub(crate) use open::open_read_only;

use crate::{Catalogue, Namespaces, Result, ScanQuery, ScanRow, WalkQuery};
use muninn_sync_model::{
    Deletion, Product, ProductTypeSummary, PropertyType, Timestamp, Update, Uuid,
};
use rusqlite::Connection;
use schema::{NamespaceTable, Tables};
use std::collections::BTreeMap;
use std::path::PathBuf;
use values::UuidForm;

/// How footprints are stored. Chosen when the catalogue is created and
/// recorded in it, so one file never mixes both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FootprintFormat {
    /// SpatiaLite geometries (SRID 4326) with a spatial index, as muninn.
    Spatialite,
    /// WKT text, when mod_spatialite could not be loaded at creation.
    Wkt,
}

impl FootprintFormat {
    pub fn name(self) -> &'static str {
        match self {
            FootprintFormat::Spatialite => "spatialite",
            FootprintFormat::Wkt => "wkt",
        }
    }

    pub fn from_name(name: &str) -> Option<FootprintFormat> {
        match name {
            "spatialite" => Some(FootprintFormat::Spatialite),
            "wkt" => Some(FootprintFormat::Wkt),
            _ => None,
        }
    }
}

/// The `[sqlite]` section of an archive's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The database file (muninn's `connection_string`).
    pub path: PathBuf,
    /// What to load for SpatiaLite (muninn's default: `mod_spatialite`).
    pub mod_spatialite_path: String,
    /// Put before every table name (muninn's `table_prefix`).
    pub table_prefix: String,
}

impl SqliteOptions {
    pub fn new(path: impl Into<PathBuf>) -> SqliteOptions {
        SqliteOptions {
            path: path.into(),
            mod_spatialite_path: "mod_spatialite".into(),
            table_prefix: String::new(),
        }
    }
}

/// A muninn SQLite catalogue, open for a run.
pub struct SqliteCatalogue {
    conn: Connection,
    tables: Tables,
    format: FootprintFormat,
    /// How uuids are written: muninn's hex, guarded in a catalogue whose
    /// uuid columns muninn declared (see [`UuidForm`]).
    uuids: UuidForm,
    namespaces: BTreeMap<String, NamespaceTable>,
    /// SQLite's schema version when `namespaces` was read: another
    /// synchronizer of the archive may add namespace tables and columns.
    schema_version: i64,
    /// Whether `namespaces` was checked against the schema in the open
    /// transaction (which holds the write lock, so it stays right).
    schema_checked: std::cell::Cell<bool>,
    core_select: String,
    core_insert: String,
}

impl Catalogue for SqliteCatalogue {
    fn products_by_name(
        &self,
        product_type: &str,
        product_names: &[&str],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>> {
        self.find_by_name(product_type, product_names, namespaces)
    }

    fn products_by_uuid(
        &self,
        uuids: &[Uuid],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>> {
        self.find_by_uuid(uuids, namespaces)
    }

    fn walk(&self, query: &WalkQuery, namespaces: &Namespaces) -> Result<Vec<Product>> {
        self.walk_page(query, namespaces)
    }

    fn scan(&mut self, query: &ScanQuery) -> Result<Vec<ScanRow>> {
        self.scan_page(query)
    }

    fn create(&mut self, product: &Product) -> Result<()> {
        self.create_product(product)
    }

    fn update(&mut self, update: &Update) -> Result<()> {
        self.update_product(update)
    }

    fn remove(&mut self, uuid: Uuid) -> Result<bool> {
        self.remove_product(uuid)
    }

    fn owners(&self, uuids: &[Uuid]) -> Result<Vec<Option<String>>> {
        self.read_owners(uuids)
    }

    fn claim(&mut self, uuids: &[Uuid], synchronizer: &str) -> Result<()> {
        self.write_owner(uuids, synchronizer)
    }

    fn unowned(&self, product_types: &[String]) -> Result<u64> {
        self.count_unowned(product_types)
    }

    fn adopt_unowned(&mut self, synchronizer: &str, product_types: &[String]) -> Result<u64> {
        self.adopt_unowned_products(synchronizer, product_types)
    }

    fn product_types(&self, synchronizer: &str) -> Result<Vec<ProductTypeSummary>> {
        self.summarise_product_types(synchronizer)
    }

    fn record_deletion(&mut self, synchronizer: &str, deletion: &Deletion) -> Result<()> {
        self.write_deletion(synchronizer, deletion)
    }

    fn deletions(
        &self,
        synchronizer: &str,
        product_type: &str,
        product_names: &[&str],
    ) -> Result<Vec<Option<Timestamp>>> {
        self.read_deletions(synchronizer, product_type, product_names)
    }

    fn property_types(
        &self,
        namespaces: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, PropertyType>>> {
        self.read_property_types(namespaces)
    }

    fn commit(&mut self) -> Result<()> {
        self.commit_batch()
    }

    fn rollback(&mut self) -> Result<()> {
        self.rollback_batch()
    }
}
