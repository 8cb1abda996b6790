//! muninn-sync's product catalogue: the interface the host writes through,
//! and its SQLite implementation with muninn 7.5's layout so that muninn's own
//! tools and users' SQL keep working on what we write.

mod error;
mod lookup;
mod postgres;
mod runs;
mod sqlite;

pub use error::{CatalogueError, Result};
pub use postgres::{
    describe as describe_postgres, PostgresCatalogue, PostgresOptions, PostgresRunLock,
};
pub use runs::{RunCounts, RunLog, RunOutcome, RunRecord, RunStart, Watermarks};
pub use sqlite::{FootprintFormat, RunHistory, SqliteCatalogue, SqliteOptions};

use muninn_sync_model::{
    Deletion, Product, ProductTypeSummary, PropertyType, Timestamp, Update, Uuid, Value,
};
use std::collections::BTreeMap;

/// Which namespaces besides core a look-up reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// These, where the product has them.
    Only(Vec<String>),
    /// Every namespace the catalogue has.
    All,
}

impl Namespaces {
    /// Reads the ABI's list form: `*` anywhere in the list means all.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Namespaces {
        if names.iter().any(|n| n.as_ref() == "*") {
            Namespaces::All
        } else {
            Namespaces::Only(names.iter().map(|n| n.as_ref().to_string()).collect())
        }
    }
}

/// One page of a walk over the products of one type whose timestamp
/// `property` (a core timestamp, or `namespace.property`) lies in
/// `[start, end)`, ordered by that time and uuid, strictly after `after`.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkQuery {
    pub product_type: String,
    pub property: String,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub after: Option<(Timestamp, Uuid)>,
    pub limit: usize,
}

/// One page of a scan over one namespace's rows whose timestamp property
/// `order_by` lies in `[start, end)`, ordered by it and uuid, strictly
/// after `after`: only the listed properties, no core row, no product. It
/// is how a synchronizer compares a whole window with the remote cheaply.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanQuery {
    pub namespace: String,
    pub order_by: String,
    pub properties: Vec<String>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub after: Option<(Timestamp, Uuid)>,
    pub limit: usize,
}

/// One row of a [`ScanQuery`]: the product's uuid, its `order_by` time, and
/// the requested properties in order (`None` for null or absent).
#[derive(Debug, Clone, PartialEq)]
pub struct ScanRow {
    pub uuid: Uuid,
    pub time: Timestamp,
    pub values: Vec<Option<Value>>,
}

/// Which change a store refused at a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Update,
}

/// A change a store took into its batch and the catalogue refused when the
/// store wrote it (see [`Catalogue::flush`]): nothing of it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub uuid: Uuid,
    /// "TYPE/NAME" where the store knows it, else the uuid.
    pub product: String,
    pub product_type: Option<String>,
    pub change: ChangeKind,
    pub message: String,
}

/// A product catalogue. Changes go into an open batch (a transaction) that
/// [`Catalogue::commit`] makes durable; each product's change is atomic
/// within it. Reads see the batch's uncommitted changes.
///
/// The host writes only through this trait, so that another backend
/// (PostgreSQL) can follow without touching the host or the plugins. The
/// run history lives in the same store ([`RunLog`]) so that it commits with
/// the products.
pub trait Catalogue: RunLog {
    /// Looks products of one type up by name; one answer per name, in order.
    fn products_by_name(
        &self,
        product_type: &str,
        product_names: &[&str],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>>;

    /// Looks products up by uuid; one answer per uuid, in order.
    fn products_by_uuid(
        &self,
        uuids: &[Uuid],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>>;

    /// One page of a walk; see [`WalkQuery`].
    fn walk(&self, query: &WalkQuery, namespaces: &Namespaces) -> Result<Vec<Product>>;

    /// One page of a scan over a namespace; see [`ScanQuery`]. It may index
    /// the `order_by` column on first use, so that later scans are ordered
    /// reads.
    fn scan(&mut self, query: &ScanQuery) -> Result<Vec<ScanRow>>;

    /// Adds a product (muninn's `create_properties`); sets `metadata_date`.
    fn create(&mut self, product: &Product) -> Result<()>;

    /// Changes the properties named in `update` (muninn's
    /// `update_properties`); sets `metadata_date`.
    fn update(&mut self, update: &Update) -> Result<()>;

    /// Removes a product with its namespaces, tags and links; `false` if
    /// there was none.
    fn remove(&mut self, uuid: Uuid) -> Result<bool>;

    /// The synchronizer that owns each product (created it, or took it
    /// over), in order; `None`: nobody (muninn or another tool made it, or
    /// it predates owner records).
    fn owners(&self, uuids: &[Uuid]) -> Result<Vec<Option<String>>>;

    /// Records `synchronizer` as the owner of these products.
    fn claim(&mut self, uuids: &[Uuid], synchronizer: &str) -> Result<()>;

    /// How many products of these types nobody owns.
    fn unowned(&self, product_types: &[String]) -> Result<u64>;

    /// Makes `synchronizer` the owner of every product of these types that
    /// nobody owns; returns how many.
    fn adopt_unowned(&mut self, synchronizer: &str, product_types: &[String]) -> Result<u64>;

    /// The product types the catalogue holds, with their counts (and how
    /// many `synchronizer` owns) and `validity_start` ranges.
    fn product_types(&self, synchronizer: &str) -> Result<Vec<ProductTypeSummary>>;

    /// Remembers that `synchronizer`'s remote deleted a product (a
    /// tombstone); a later deletion of the same product wins.
    fn record_deletion(&mut self, synchronizer: &str, deletion: &Deletion) -> Result<()>;

    /// When `synchronizer` recorded the deletion of each of these products
    /// of `product_type`, in order.
    fn deletions(
        &self,
        synchronizer: &str,
        product_type: &str,
        product_names: &[&str],
    ) -> Result<Vec<Option<Timestamp>>>;

    /// The columns these namespaces have, by namespace and property; a
    /// namespace the catalogue does not have is left out.
    fn property_types(
        &self,
        namespaces: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, PropertyType>>>;

    /// Writes the changes the store holds back (a store on another host
    /// writes many together rather than one round trip each), and returns
    /// those the catalogue refused since the last call: the host counts
    /// them failed instead of created or updated. A store that writes each
    /// change at once (SQLite) holds nothing back and refuses nothing here.
    fn flush(&mut self) -> Result<Vec<Refused>> {
        Ok(Vec::new())
    }

    /// Makes the open batch durable.
    fn commit(&mut self) -> Result<()>;

    /// Drops the open batch's changes.
    fn rollback(&mut self) -> Result<()>;
}
