//! The PostgreSQL + PostGIS catalogue, in muninn 7.5's postgresql layout.
//!
//! The server is usually on another host, so a round trip per statement
//! would make a sync as slow as the network: creates, updates and owner
//! records are held back and written together ([`writes`]) when the batch
//! commits, when enough is held back, or when a read touches them, a few
//! statements per table for thousands of products. A change the server
//! then refuses (a duplicate another process made meanwhile, a value out
//! of a muninn column's range) is found by replaying the held-back changes
//! one by one, and reported through [`Catalogue::flush`] so that the host
//! counts it failed.

mod connect;
mod lock;
mod owners;
mod reads;
mod runs;
mod schema;
mod values;
mod writes;

pub use connect::{connect, describe, PostgresOptions};
pub use lock::PostgresRunLock;

use crate::{CatalogueError, Namespaces, Refused, Result, ScanQuery, ScanRow, WalkQuery};
use anyhow::{anyhow, Context};
use muninn_sync_model::{
    CoreField, Deletion, Product, ProductTypeSummary, PropertyType, Timestamp, Update, Uuid,
};
use postgres::{Client, Statement};
use schema::{NamespaceTable, Tables};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A muninn PostgreSQL catalogue, open for a run.
///
/// The catalogue interface reads through `&self`, but every read here
/// uses the connection (and may first write what is held back), so the
/// connection and its state sit in a cell.
pub struct PostgresCatalogue {
    store: std::cell::RefCell<Store>,
}

/// Why the server takes no writes (a standby, or read-only transactions by
/// default), or `None` when it takes them.
fn accepts_no_writes(client: &mut Client) -> anyhow::Result<Option<&'static str>> {
    let in_recovery: bool = client.query_one("SELECT pg_is_in_recovery()", &[])?.get(0);
    if in_recovery {
        return Ok(Some("it is a standby in recovery"));
    }
    let read_only: String = client.query_one("SHOW transaction_read_only", &[])?.get(0);
    Ok((read_only == "on").then_some("default_transaction_read_only is on"))
}

/// The most prepared statements a connection keeps.
const MAX_STATEMENTS: usize = 256;

/// What a catalogue is opened for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A sync: batches commit.
    Write,
    /// A dry run: one transaction, never committed (see
    /// [`PostgresCatalogue::open_for_dry_run`]).
    DryRun,
    /// `--list` and `--history`: as a dry run, and a read-only server will
    /// do.
    Read,
}

/// The connection and what this run knows and holds back.
struct Store {
    client: Client,
    tables: Tables,
    /// "host:port/database as user": what errors name, never a password.
    target: String,
    namespaces: BTreeMap<String, NamespaceTable>,
    /// Whether the batch's transaction is open.
    in_transaction: bool,
    /// A dry run: one transaction for the whole run, never committed; a
    /// batch is a savepoint in it, which the host's commit and rollback
    /// both roll back.
    dry_run: bool,
    /// Statements prepared on this connection, by their text: preparing
    /// costs a round trip.
    statements: HashMap<String, Statement>,
    /// Changes held back until the next flush.
    pending: writes::Pending,
    /// The scan indexes made or found in this run, which a batch rolled
    /// back may have undone.
    indexes_made: HashSet<String>,
    /// Whether each synchronizer asked about has tombstones (see
    /// `has_tombstones`).
    tombstones: HashMap<String, bool>,
    /// Changes the server refused at a flush, until the host asks.
    refused: Vec<Refused>,
    core_select: String,
}

/// Whether a server error is the product's fault (a value or a constraint:
/// SQLSTATE classes 22 and 23) rather than the storage's.
fn is_product_error(error: &postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|code| matches!(&code.code()[..2], "22" | "23"))
}

impl PostgresCatalogue {
    /// Opens the catalogue, creating muninn's tables on first use (an
    /// archive `muninn-prepare` made is used as it is, and gets
    /// muninn-sync's own tables beside muninn's).
    pub fn open(options: &PostgresOptions) -> anyhow::Result<PostgresCatalogue> {
        let client = connect(options)?;
        Ok(PostgresCatalogue {
            store: std::cell::RefCell::new(Store::open(client, options, Mode::Write)?),
        })
    }

    /// Opens the catalogue for a dry run, which leaves the archive as it
    /// is: the whole run is one transaction that is rolled back, so even a
    /// catalogue it has to create (an empty database, or a muninn archive
    /// without muninn-sync's tables) exists only inside it.
    pub fn open_for_dry_run(options: &PostgresOptions) -> anyhow::Result<PostgresCatalogue> {
        let client = connect(options)?;
        Ok(PostgresCatalogue {
            store: std::cell::RefCell::new(Store::open(client, options, Mode::DryRun)?),
        })
    }

    /// Opens the catalogue to read its runs, watermarks and owners
    /// (`--list`, `--history`), or `None` when the database holds none yet:
    /// reading never creates it. As in a dry run nothing is committed, and
    /// a standby or read-only server will do once muninn-sync's tables
    /// exist.
    pub fn open_to_read(options: &PostgresOptions) -> anyhow::Result<Option<PostgresCatalogue>> {
        schema::validate_table_prefix(&options.table_prefix)?;
        let mut client = connect(options)?;
        let tables = Tables::new(&options.table_prefix);
        let describe = || format!("PostgreSQL catalogue {}", connect::describe(options));
        if !schema::table_exists(&mut client, &tables, &tables.core).with_context(describe)? {
            return Ok(None);
        }
        // muninn's archive without muninn-sync's tables on a server that
        // takes no writes: no run so far, and none to read.
        if !schema::own_tables_exist(&mut client, &tables).with_context(describe)?
            && accepts_no_writes(&mut client)
                .with_context(describe)?
                .is_some()
        {
            return Ok(None);
        }
        Ok(Some(PostgresCatalogue {
            store: std::cell::RefCell::new(Store::open(client, options, Mode::Read)?),
        }))
    }

    /// "host:port/database as user", as errors and `--list` name it.
    pub fn target(&self) -> String {
        self.store.borrow().target.clone()
    }
}

impl Store {
    /// Opens the catalogue, creating muninn's tables on first use (an
    /// archive `muninn-prepare` made is used as it is, and gets
    /// muninn-sync's own tables beside muninn's).
    fn open(client: Client, options: &PostgresOptions, mode: Mode) -> anyhow::Result<Store> {
        schema::validate_table_prefix(&options.table_prefix)?;
        let target = connect::describe(options);
        let dry_run = mode != Mode::Write;
        let mut store = Self::set_up(client, options, target, mode)?;
        if dry_run {
            store.client.batch_execute("SAVEPOINT batch")?;
        }
        Ok(store)
    }

    fn set_up(
        mut client: Client,
        options: &PostgresOptions,
        target: String,
        mode: Mode,
    ) -> anyhow::Result<Store> {
        let dry_run = mode != Mode::Write;
        let describe = || format!("PostgreSQL catalogue {target}");
        // Times are UTC everywhere: a timestamptz column a user made reads
        // and compares in UTC, whatever the server's or user's setting.
        client
            .batch_execute("SET TimeZone = 'UTC'")
            .with_context(describe)?;
        let tables = Tables::new(&options.table_prefix);
        let core_exists =
            schema::table_exists(&mut client, &tables, &tables.core).with_context(describe)?;
        let own_exist =
            core_exists && schema::own_tables_exist(&mut client, &tables).with_context(describe)?;
        if let Some(why) = accepts_no_writes(&mut client).with_context(describe)? {
            // Reading needs no writes once the catalogue is all there.
            if !(mode == Mode::Read && own_exist) {
                anyhow::bail!(
                    "{}: the server accepts no writes ({why}); a sync (even a dry run) writes to the \
                     catalogue: point connection_string at the primary server",
                    describe(),
                );
            }
        }
        if !schema::has_postgis(&mut client).with_context(describe)? {
            anyhow::bail!(
                "{}: PostGIS is not installed in this database; muninn's layout stores footprints as PostGIS \
                 geography. Install it on the server (Debian: apt install postgresql-15-postgis-3, for the \
                 server's major version) and, as a superuser, run CREATE EXTENSION postgis; in the database",
                describe()
            );
        }
        if core_exists {
            schema::check_core_layout(&mut client, &tables).with_context(describe)?;
        }
        if dry_run {
            // Everything a dry run does happens inside one transaction
            // that is never committed: setting the catalogue up included.
            client.batch_execute("BEGIN").with_context(describe)?;
        }
        if !own_exist {
            // Two syncs started at once on a new archive must not both
            // create it: a transaction-scoped advisory lock on the
            // prefix, then a second look.
            if !dry_run {
                client.batch_execute("BEGIN").with_context(describe)?;
                client
                    .execute(
                        "SELECT pg_advisory_xact_lock(hashtext('muninn-sync set-up ' || $1))",
                        &[&tables.prefix],
                    )
                    .with_context(describe)?;
            }
            let made = if !schema::table_exists(&mut client, &tables, &tables.core)
                .with_context(describe)?
            {
                if dry_run {
                    tracing::info!(catalogue = %target, "dry run: there is no catalogue yet; the dry run works on one it does not keep");
                } else {
                    tracing::info!(catalogue = %target, "creating the catalogue");
                }
                schema::create_tables(&mut client, &tables)
            } else {
                schema::create_own_tables(&mut client, &tables)
            };
            if let Err(error) = made {
                let _ = client.batch_execute("ROLLBACK");
                return Err(error.context(describe()));
            }
            if !dry_run {
                client.batch_execute("COMMIT").with_context(describe)?;
            }
        }
        let namespaces = schema::load_namespaces(&mut client, &tables).with_context(describe)?;
        let unlinked = schema::unlinked_namespace_tables(&mut client, &tables, &namespaces)
            .with_context(describe)?;
        let stale =
            schema::stale_bookkeeping_tables(&mut client, &tables).with_context(describe)?;
        if !unlinked.is_empty() || !stale.is_empty() {
            let mut found = Vec::new();
            if !unlinked.is_empty() {
                found.push(format!(
                    "the namespace table(s) {} muninn-sync made are no longer linked to {} (no foreign key \
                     from uuid), with their rows",
                    unlinked.join(", "),
                    tables.core
                ));
            }
            if !stale.is_empty() {
                found.push(format!(
                    "muninn-sync's owner records, watermarks and deletions ({}) describe the catalogue that \
                     was dropped (a sync would skip every product older than their watermarks)",
                    stale.join(", ")
                ));
            }
            let drop: Vec<String> = unlinked.into_iter().chain(stale).collect();
            anyhow::bail!(
                "{}: {} was dropped and made again (muninn-destroy, then muninn-prepare), and what muninn \
                 does not know stayed behind: {}. If the archive was destroyed on purpose, drop them \
                 (DROP TABLE {};) and the next sync makes them afresh; the run history stays",
                describe(),
                tables.core,
                found.join("; "),
                drop.join(", ")
            );
        }
        let core_select = format!(
            "SELECT {} FROM {}",
            CoreField::ALL
                .map(|f| values::select_expression(f.name(), f.value_type()))
                .join(", "),
            tables.core
        );
        Ok(Store {
            client,
            tables,
            target,
            namespaces,
            in_transaction: dry_run,
            dry_run,
            statements: HashMap::new(),
            pending: writes::Pending::default(),
            indexes_made: HashSet::new(),
            tombstones: HashMap::new(),
            refused: Vec::new(),
            core_select,
        })
    }

    /// Opens the batch's transaction if none is open, and reads the
    /// namespace tables again: another synchronizer of the archive may have
    /// added tables or columns since the last batch.
    fn begin(&mut self) -> Result<()> {
        if !self.in_transaction && !self.dry_run {
            self.client.batch_execute("BEGIN")?;
            self.in_transaction = true;
            self.reload_namespaces()?;
        }
        Ok(())
    }

    /// Reads the namespace tables again. A statement prepared before a
    /// column changed type would fail (the server refuses a cached plan
    /// whose result type changed): they are prepared anew after a change.
    fn reload_namespaces(&mut self) -> Result<()> {
        let namespaces = schema::load_namespaces(&mut self.client, &self.tables)
            .map_err(CatalogueError::Storage)?;
        if namespaces != self.namespaces {
            self.statements.clear();
            self.namespaces = namespaces;
        }
        Ok(())
    }

    /// Ends a dry run's batch: its changes undone, the next batch begun.
    fn undo_batch(&mut self) -> Result<()> {
        self.client.batch_execute("ROLLBACK TO SAVEPOINT batch")?;
        self.indexes_made.clear();
        self.reload_namespaces()
    }

    /// A prepared statement for `sql`, from the connection's cache. Bulk
    /// statements differ with their number of rows, so the cache is
    /// emptied when it grows past [`MAX_STATEMENTS`] (a dropped statement
    /// is closed on the server), not to hold server memory for a long run.
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        if self.statements.len() >= MAX_STATEMENTS {
            self.statements.clear();
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// Runs `work` inside a savepoint: a failure leaves nothing of it behind
    /// and the batch's transaction goes on.
    fn in_savepoint<T>(&mut self, work: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.begin()?;
        self.client.batch_execute("SAVEPOINT step")?;
        match work(self) {
            Ok(value) => {
                self.client.batch_execute("RELEASE SAVEPOINT step")?;
                Ok(value)
            }
            Err(error) => {
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT step; RELEASE SAVEPOINT step")?;
                Err(error)
            }
        }
    }

    /// A storage error that names the server, for errors the host shows.
    fn storage(&self, error: impl std::fmt::Display) -> CatalogueError {
        CatalogueError::Storage(anyhow!("PostgreSQL catalogue {}: {error}", self.target))
    }
}

impl From<postgres::Error> for CatalogueError {
    /// A value or constraint the server refuses is the product's fault;
    /// anything else (the connection, the server, permissions) the
    /// storage's.
    fn from(error: postgres::Error) -> Self {
        if is_product_error(&error) {
            let message = match error.as_db_error() {
                Some(db) => match db.detail() {
                    Some(detail) => format!("{}: {detail}", db.message()),
                    None => db.message().to_string(),
                },
                None => error.to_string(),
            };
            CatalogueError::Product(message)
        } else {
            CatalogueError::Storage(match error.as_db_error() {
                Some(db) => anyhow!(
                    "{} (SQLSTATE {}){}",
                    db.message(),
                    db.code().code(),
                    db.hint().map(|h| format!("; {h}")).unwrap_or_default()
                ),
                None => anyhow::Error::new(error),
            })
        }
    }
}

impl crate::Catalogue for PostgresCatalogue {
    fn products_by_name(
        &self,
        product_type: &str,
        product_names: &[&str],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>> {
        self.store
            .borrow_mut()
            .find_by_name(product_type, product_names, namespaces)
    }

    fn products_by_uuid(
        &self,
        uuids: &[Uuid],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>> {
        self.store.borrow_mut().find_by_uuid(uuids, namespaces)
    }

    fn walk(&self, query: &WalkQuery, namespaces: &Namespaces) -> Result<Vec<Product>> {
        self.store.borrow_mut().walk_page(query, namespaces)
    }

    fn scan(&mut self, query: &ScanQuery) -> Result<Vec<ScanRow>> {
        self.store.get_mut().scan_page(query)
    }

    fn create(&mut self, product: &Product) -> Result<()> {
        self.store.get_mut().hold_create(product)
    }

    fn update(&mut self, update: &Update) -> Result<()> {
        self.store.get_mut().hold_update(update)
    }

    fn remove(&mut self, uuid: Uuid) -> Result<bool> {
        self.store.get_mut().delete(uuid)
    }

    fn owners(&self, uuids: &[Uuid]) -> Result<Vec<Option<String>>> {
        self.store.borrow_mut().read_owners(uuids)
    }

    fn claim(&mut self, uuids: &[Uuid], synchronizer: &str) -> Result<()> {
        self.store.get_mut().hold_claim(uuids, synchronizer)
    }

    fn unowned(&self, product_types: &[String]) -> Result<u64> {
        self.store.borrow_mut().count_unowned(product_types)
    }

    fn adopt_unowned(&mut self, synchronizer: &str, product_types: &[String]) -> Result<u64> {
        self.store
            .get_mut()
            .adopt_unowned_products(synchronizer, product_types)
    }

    fn product_types(&self, synchronizer: &str) -> Result<Vec<ProductTypeSummary>> {
        self.store
            .borrow_mut()
            .summarise_product_types(synchronizer)
    }

    fn record_deletion(&mut self, synchronizer: &str, deletion: &Deletion) -> Result<()> {
        self.store.get_mut().write_deletion(synchronizer, deletion)
    }

    fn deletions(
        &self,
        synchronizer: &str,
        product_type: &str,
        product_names: &[&str],
    ) -> Result<Vec<Option<Timestamp>>> {
        self.store
            .borrow_mut()
            .read_deletions(synchronizer, product_type, product_names)
    }

    fn property_types(
        &self,
        namespaces: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, PropertyType>>> {
        self.store.borrow_mut().column_types(namespaces)
    }

    fn flush(&mut self) -> Result<Vec<Refused>> {
        let store = self.store.get_mut();
        store.flush_held_back()?;
        Ok(std::mem::take(&mut store.refused))
    }

    fn commit(&mut self) -> Result<()> {
        let store = self.store.get_mut();
        store.flush_held_back()?;
        if store.dry_run {
            return store.undo_batch();
        }
        if store.in_transaction {
            store.in_transaction = false;
            store.client.batch_execute("COMMIT")?;
        }
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        let store = self.store.get_mut();
        store.pending = writes::Pending::default();
        store.refused.clear();
        if store.dry_run {
            return store.undo_batch();
        }
        if store.in_transaction {
            store.in_transaction = false;
            store.indexes_made.clear();
            store.client.batch_execute("ROLLBACK")?;
        }
        Ok(())
    }
}

impl crate::RunLog for PostgresCatalogue {
    fn begin_run(&mut self, run: &crate::RunStart) -> Result<i64> {
        self.store.get_mut().begin_run(run)
    }

    fn record_progress(
        &mut self,
        run: i64,
        counts: &crate::RunCounts,
        watermarks: &crate::Watermarks,
    ) -> Result<()> {
        self.store
            .get_mut()
            .record_progress(run, counts, watermarks)
    }

    fn end_run(
        &mut self,
        run: i64,
        finished: Timestamp,
        counts: &crate::RunCounts,
        outcome: crate::RunOutcome,
        error: Option<&str>,
    ) -> Result<()> {
        self.store
            .get_mut()
            .end_run(run, finished, counts, outcome, error)
    }

    fn watermarks(&self, synchronizer: &str) -> Result<crate::Watermarks> {
        Ok(self
            .all_watermarks()?
            .remove(synchronizer)
            .unwrap_or_default())
    }

    fn all_watermarks(&self) -> Result<BTreeMap<String, crate::Watermarks>> {
        self.store.borrow_mut().read_watermarks()
    }

    fn runs(&self, synchronizer: Option<&str>, limit: usize) -> Result<Vec<crate::RunRecord>> {
        self.store.borrow_mut().read_runs(synchronizer, limit)
    }

    fn last_successes(&self) -> Result<BTreeMap<String, Timestamp>> {
        self.store.borrow_mut().read_last_successes()
    }
}

impl PostgresCatalogue {
    /// How many products each synchronizer owns, and how many nobody owns
    /// (for `--list`).
    pub fn owned_counts(&self) -> Result<(BTreeMap<String, u64>, u64)> {
        self.store.borrow_mut().owned_counts()
    }
}
