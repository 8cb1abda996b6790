//! The SQLite catalogue, in muninn 7.5's layout.

mod owners;
mod runs;
pub use runs::RunHistory;
mod schema;
mod values;

use crate::{Catalogue, CatalogueError, Namespaces, Result, ScanQuery, ScanRow, WalkQuery};
use anyhow::{anyhow, Context};
use chrono::Utc;
use muninn_sync_model::{
    format_timestamp, plan_namespace_write, scan_order, text_is_not_json, truncate_to_micros,
    walk_time, ColumnChange, CoreField, Deletion, NamespaceWrite, Product, ProductTypeSummary,
    PropertyType, Timestamp, Update, Uuid, Value, ValueType, WalkTime,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection};
use schema::{NamespaceTable, Tables};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;
use values::{from_sql, option_to_sql, UuidForm};

/// How many keys one look-up query takes: large enough to amortise a
/// query, small enough to stay in SQLite's limits and statement cache.
const LOOKUP_CHUNK: usize = 100;

/// The products for `keys`, in their order: moved out of `found`, and
/// copied only for a key asked for twice.
fn take_in_order(found: &mut HashMap<String, Product>, keys: &[String]) -> Vec<Option<Product>> {
    let mut answers: Vec<Option<Product>> = Vec::with_capacity(keys.len());
    for (position, key) in keys.iter().enumerate() {
        let answer = match found.remove(key) {
            Some(product) => Some(product),
            None => keys[..position]
                .iter()
                .position(|earlier| earlier == key)
                .and_then(|earlier| answers[earlier].clone()),
        };
        answers.push(answer);
    }
    answers
}

/// A namespace or property name SQLite refuses (a keyword, a name it keeps
/// for itself, a table that exists already): the product's fault, not the
/// storage's, so the run goes on. Other failures stay storage errors.
fn refused_name(error: anyhow::Error, what: &str) -> CatalogueError {
    let refused = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(e, _) | rusqlite::Error::SqlInputError { error: e, .. })
                if e.code == rusqlite::ErrorCode::Unknown
        )
    });
    if refused {
        CatalogueError::Product(format!("the catalogue cannot hold {what}: {error:#}"))
    } else {
        CatalogueError::Storage(error)
    }
}

/// Reports a stored time muninn-sync cannot read, which a look-up then
/// takes as absent: one written before times were checked (a UTC past
/// 9999-12-31 was stored as `10000-01-01 ...`), or by another tool. The
/// run goes on; a sync that sets the property again writes a readable
/// time over it, and SQL can clear it.
fn report_unreadable_time(
    table: &str,
    column: &str,
    product: Option<&Product>,
    uuid: &Uuid,
    why: &str,
) {
    let product = product.map(|p| {
        format!(
            "{}/{}",
            muninn_sync_model::printable(&p.product_type),
            muninn_sync_model::printable(&p.product_name)
        )
    });
    tracing::warn!(
        table,
        column,
        product = product.as_deref().unwrap_or("?"),
        uuid = %uuid.simple(),
        error = %muninn_sync_model::printable(why),
        "the catalogue holds a time muninn-sync cannot read; it is taken as absent \
         (a sync that sets the property writes over it, or clear it with SQL)"
    );
}

/// Adds a parameter; returns its placeholder.
fn bind(params: &mut Vec<SqlValue>, value: SqlValue) -> String {
    params.push(value);
    format!("?{}", params.len())
}

/// The conditions of one page of a window over the timestamp column `time`,
/// paged by (time, `uuid`) as walks and scans are: `time` set, and
/// [`muninn_sync_model::in_page`] in SQL (in `[start, end)`, strictly after
/// `after`). The values go into `params`.
fn window_conditions(
    time: &str,
    uuid: &str,
    start: Option<&Timestamp>,
    end: Option<&Timestamp>,
    after: Option<&(Timestamp, Uuid)>,
    uuids: UuidForm,
    params: &mut Vec<SqlValue>,
) -> Vec<String> {
    let mut conditions = vec![format!("{time} IS NOT NULL")];
    if let Some(start) = start {
        conditions.push(format!(
            "{time} >= {}",
            bind(params, SqlValue::Text(format_timestamp(start)))
        ));
    }
    if let Some(end) = end {
        conditions.push(format!(
            "{time} < {}",
            bind(params, SqlValue::Text(format_timestamp(end)))
        ));
    }
    if let Some((at, last)) = after {
        let t = bind(params, SqlValue::Text(format_timestamp(at)));
        let u = bind(params, SqlValue::Text(uuids.text(last)));
        conditions.push(format!("({time} > {t} OR ({time} = {t} AND {uuid} > {u}))"));
    }
    conditions
}

/// `?first, ?first+1, ...`: `count` numbered SQL parameters.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

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

/// How long a writer waits for the write lock before it gives up: longer
/// than another synchronizer's batch (at most a few seconds) takes.
const LOCK_PATIENCE: Duration = Duration::from_secs(60);

/// How often a waiting writer asks for the write lock again.
const LOCK_POLL: Duration = Duration::from_millis(2);

/// Opens a catalogue database read-only: nothing in it is created or
/// written, and no lock a running sync waits for is taken.
pub(crate) fn open_read_only(path: &std::path::Path) -> anyhow::Result<Connection> {
    Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the catalogue database \"{}\"", path.display()))
}

/// SQLite's busy handler. Its default one sleeps longer and longer between
/// tries (up to 100 ms), so a writer that commits batches back to back
/// could starve another synchronizer of the archive; polling every 2 ms
/// catches the pause each commit makes (see [`TURN_PAUSE`]).
fn wait_for_turn(attempt: i32) -> bool {
    let waited = LOCK_POLL * attempt.max(0) as u32;
    if waited >= LOCK_PATIENCE {
        return false;
    }
    std::thread::sleep(LOCK_POLL);
    true
}

/// How long a commit pauses before the next transaction may begin, so that
/// a writer waiting in [`wait_for_turn`] gets the lock: a few milliseconds
/// per batch of thousands of products.
const TURN_PAUSE: Duration = Duration::from_millis(5);

fn load_spatialite(conn: &Connection, path: &str) -> rusqlite::Result<()> {
    // SAFETY: loading an extension runs its code in this process; the path
    // comes from the archive's own configuration, as in muninn.
    unsafe {
        let _guard = rusqlite::LoadExtensionGuard::new(conn)?;
        conn.load_extension(path, None::<&str>)
    }
}

impl SqliteCatalogue {
    /// Opens the catalogue, creating the database file and muninn's tables on
    /// first use. A new catalogue stores footprints as SpatiaLite geometries
    /// when mod_spatialite loads and as WKT text (with one warning) when it
    /// does not; an existing one keeps the format it was created with.
    pub fn open(options: &SqliteOptions) -> anyhow::Result<SqliteCatalogue> {
        schema::validate_table_prefix(&options.table_prefix)?;
        let path = &options.path;
        let mut conn = Connection::open(path).with_context(|| {
            format!("cannot open the catalogue database \"{}\"", path.display())
        })?;
        conn.busy_handler(Some(wait_for_turn))?;
        // Foreign keys make removing a product remove its namespaces, tags
        // and links, as in muninn. 16 MiB of page cache (the default is
        // 2 MiB) keeps the upper levels of the indexes a sync looks products
        // up by in memory; more buys little once the catalogue outgrows it
        // and counts against the run's memory (docs/performance.md).
        // Temporary data (savepoint journals, the sorter that builds an
        // index) stays in files: in memory, indexing a million-row namespace
        // for its first scan took 100 MB.
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384;
             SELECT count(*) FROM sqlite_master;",
        )
        .with_context(|| format!("\"{}\" is not a usable SQLite database", path.display()))?;
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            anyhow::bail!(
                "the catalogue database \"{}\" is read-only to muninn-sync: a sync (even a dry run) writes to it; \
                 check the permissions of the file and its directory, and that its file system is mounted read-write",
                path.display()
            );
        }
        let tables = Tables::new(&options.table_prefix);
        let describe = || format!("catalogue \"{}\"", path.display());
        // Creating the catalogue, or adding muninn-sync's tables to a muninn
        // archive, happens once, under the write lock taken up front: two
        // synchronizers started at once on a new archive must not both
        // create it, and a write that needs a lock upgrade while another
        // synchronizer commits would fail at once instead of waiting.
        let setting_up = !schema::table_exists(&conn, &tables.core)?
            || !schema::format_is_recorded(&conn, &tables).with_context(describe)?
            || !owners::owner_tables_exist(&conn, &tables).with_context(describe)?;
        if setting_up {
            conn.execute_batch("BEGIN IMMEDIATE")
                .with_context(describe)?;
        }
        let format = Self::set_up(&conn, &tables, options, setting_up).with_context(describe);
        match format {
            Ok(_) if setting_up => conn.execute_batch("COMMIT").with_context(describe)?,
            Err(_) if setting_up => {
                let _ = conn.execute_batch("ROLLBACK");
            }
            _ => {}
        }
        let format = format?;
        // Loading SpatiaLite replaces the busy handler with a 5 s timeout of
        // its own, which a busy archive outlasts: ours again.
        conn.busy_handler(Some(wait_for_turn))?;
        let uuids = schema::uuid_form(&conn, &tables).with_context(describe)?;
        let namespaces = schema::load_namespaces(&conn, &tables).with_context(describe)?;
        let schema_version = schema::schema_version(&conn).with_context(describe)?;
        let core_select = format!(
            "SELECT {} FROM {}",
            CoreField::ALL.map(CoreField::name).join(", "),
            tables.core
        );
        let core_insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            tables.core,
            CoreField::ALL.map(CoreField::name).join(", "),
            (1..=CoreField::ALL.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Look-ups in batches prepare one statement per batch size.
        conn.set_prepared_statement_cache_capacity(256);
        Ok(SqliteCatalogue {
            conn,
            tables,
            format,
            uuids,
            namespaces,
            schema_version,
            schema_checked: std::cell::Cell::new(false),
            core_select,
            core_insert,
        })
    }

    /// Decides the footprint format (the recorded one, or SpatiaLite when it
    /// loads) and, when `setting_up` (inside the caller's write
    /// transaction), creates whatever of the catalogue is missing.
    fn set_up(
        conn: &Connection,
        tables: &Tables,
        options: &SqliteOptions,
        setting_up: bool,
    ) -> anyhow::Result<FootprintFormat> {
        let path = &options.path;
        let recorded = schema::recorded_footprint_format(conn, tables)?;
        let spatialite = || load_spatialite(conn, &options.mod_spatialite_path);
        let format = match recorded {
            Some(FootprintFormat::Spatialite) => {
                spatialite().map_err(|e| {
                    anyhow!(
                        "the catalogue \"{}\" stores footprints as SpatiaLite geometries, but mod_spatialite \
                         could not be loaded from \"{}\": {e}; install SpatiaLite (Debian: libsqlite3-mod-spatialite) \
                         or set mod_spatialite_path in the [sqlite] section",
                        path.display(),
                        options.mod_spatialite_path
                    )
                })?;
                FootprintFormat::Spatialite
            }
            Some(FootprintFormat::Wkt) => FootprintFormat::Wkt,
            None => match spatialite() {
                Ok(()) => FootprintFormat::Spatialite,
                Err(e) => {
                    tracing::warn!(
                        catalogue = %path.display(),
                        mod_spatialite_path = %options.mod_spatialite_path,
                        error = %e,
                        "mod_spatialite could not be loaded: this new catalogue stores footprints as WKT text, \
                         which muninn's own tools cannot read (install libsqlite3-mod-spatialite before creating \
                         a catalogue to get SpatiaLite geometries)"
                    );
                    FootprintFormat::Wkt
                }
            },
        };
        if !setting_up {
            return Ok(format);
        }
        if format == FootprintFormat::Spatialite {
            let initialised: i64 =
                conn.query_row("SELECT CheckSpatialMetaData()", [], |row| row.get(0))?;
            if initialised == 0 {
                // WGS 84 only: all muninn needs, and much faster than every
                // SRID; inside the caller's transaction.
                conn.query_row("SELECT InitSpatialMetadata('WGS84')", [], |_| Ok(()))
                    .context("SpatiaLite could not initialise its metadata")?;
            }
        }
        if !schema::table_exists(conn, &tables.core)? {
            tracing::info!(catalogue = %path.display(), footprints = format.name(), "creating the catalogue");
            schema::create_tables(conn, tables, format)?;
        } else {
            schema::create_own_tables(conn, tables)?;
            schema::record_footprint_format(conn, tables, format)?;
        }
        Ok(format)
    }

    /// Opens the catalogue for a dry run, which must leave the archive as
    /// it is. A catalogue that muninn-sync has set up is opened as it is:
    /// a dry run rolls each batch back (see the host). One that does not
    /// exist yet, or lacks muninn-sync's tables (made by muninn, or by an
    /// older muninn-sync), would have to be written to before the run:
    /// the dry run gets a scratch copy instead, in a temporary directory
    /// that is removed when the returned guard is dropped (keep it as long
    /// as the catalogue).
    pub fn open_for_dry_run(
        options: &SqliteOptions,
    ) -> anyhow::Result<(SqliteCatalogue, Option<tempfile::TempDir>)> {
        schema::validate_table_prefix(&options.table_prefix)?;
        let path = &options.path;
        let ready = path.exists() && Self::is_set_up(options)?;
        if ready {
            return Ok((Self::open(options)?, None));
        }
        let scratch = tempfile::Builder::new()
            .prefix("muninn-sync-dry-run")
            .tempdir()
            .context("cannot make a temporary directory for the dry run's scratch catalogue")?;
        let copy = scratch.path().join("catalogue.sqlite");
        if path.exists() {
            tracing::info!(
                catalogue = %path.display(),
                "dry run: the catalogue lacks muninn-sync's tables, which a run would add; the dry run works on a copy"
            );
            Self::copy_consistently(path, &copy)?;
        } else {
            tracing::info!(
                catalogue = %path.display(),
                "dry run: there is no catalogue yet, which a run would create; the dry run works on an empty one that is not kept"
            );
        }
        let mut scratch_options = options.clone();
        scratch_options.path = copy;
        Ok((Self::open(&scratch_options)?, Some(scratch)))
    }

    /// Whether the catalogue has muninn's tables and all of muninn-sync's,
    /// read without writing anything.
    fn is_set_up(options: &SqliteOptions) -> anyhow::Result<bool> {
        let mut conn = open_read_only(&options.path)?;
        conn.busy_handler(Some(wait_for_turn))?;
        let tables = Tables::new(&options.table_prefix);
        let describe = || format!("catalogue \"{}\"", options.path.display());
        Ok(
            schema::table_exists(&conn, &tables.core).with_context(describe)?
                && schema::format_is_recorded(&conn, &tables).with_context(describe)?
                && owners::owner_tables_exist(&conn, &tables).with_context(describe)?,
        )
    }

    /// Copies a database file while holding a read lock on it, so that no
    /// writer commits half-way through the copy.
    fn copy_consistently(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
        let mut conn = open_read_only(from)?;
        conn.busy_handler(Some(wait_for_turn))?;
        conn.execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")
            .with_context(|| format!("cannot read the catalogue \"{}\"", from.display()))?;
        std::fs::copy(from, to).with_context(|| {
            format!(
                "cannot copy the catalogue \"{}\" to \"{}\" for the dry run",
                from.display(),
                to.display()
            )
        })?;
        conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// The footprint format of this catalogue.
    pub fn footprint_format(&self) -> FootprintFormat {
        self.format
    }

    /// The underlying connection, for the host's own bookkeeping tables.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Opens the batch's transaction if none is open. Reads open it too: in
    /// one transaction SQLite neither re-checks the file nor drops its page
    /// cache between statements, which is most of a look-up's cost. It takes
    /// the write lock at once (IMMEDIATE), so a read never has to upgrade to
    /// a write and deadlock with another writer.
    fn begin(&self) -> Result<()> {
        if self.conn.is_autocommit() {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.schema_checked.set(false);
        }
        Ok(())
    }

    /// Opens the batch's transaction for a write: as [`Self::begin`], and
    /// re-reads the namespace tables if another connection changed the
    /// schema since they were read, so that a namespace another
    /// synchronizer created meanwhile is not created twice.
    fn begin_write(&mut self) -> Result<()> {
        self.begin()?;
        if !self.schema_checked.get() {
            let version = schema::schema_version(&self.conn)?;
            if version != self.schema_version {
                self.namespaces = schema::load_namespaces(&self.conn, &self.tables)?;
                self.schema_version = version;
            }
            self.schema_checked.set(true);
        }
        Ok(())
    }

    /// Runs one product's change inside a savepoint, so that a failure leaves
    /// nothing of it behind and the batch goes on.
    fn atomically<T>(&mut self, work: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.begin_write()?;
        // Cached statements: parsing these anew for every product costs more
        // than the savepoint itself.
        self.conn.prepare_cached("SAVEPOINT product")?.execute([])?;
        match work(self) {
            Ok(value) => {
                self.conn.prepare_cached("RELEASE product")?.execute([])?;
                Ok(value)
            }
            Err(error) => {
                self.conn
                    .prepare_cached("ROLLBACK TO product")?
                    .execute([])?;
                self.conn.prepare_cached("RELEASE product")?.execute([])?;
                Err(error)
            }
        }
    }

    fn read_core(&self, row: &rusqlite::Row<'_>) -> Result<Product> {
        let mut product = Product::with_uuid(Uuid::nil(), "", "");
        let mut unreadable = Vec::new();
        for (index, field) in CoreField::ALL.into_iter().enumerate() {
            let raw = row.get_ref(index)?;
            let value = match from_sql(raw, field.value_type()) {
                Ok(value) => value,
                Err(why) if field.value_type() == ValueType::Timestamp => {
                    unreadable.push((field.name(), why));
                    continue; // absent (metadata_date too, which the next write sets)
                }
                Err(why) => {
                    return Err(CatalogueError::Storage(anyhow!(
                        "core.{} holds {why}",
                        field.name()
                    )))
                }
            };
            product
                .set_core_value(field, value)
                .map_err(|e| CatalogueError::Storage(anyhow!(e)))?;
        }
        for (column, why) in unreadable {
            report_unreadable_time(
                &self.tables.core,
                column,
                Some(&product),
                &product.uuid,
                &why,
            );
        }
        Ok(product)
    }

    fn selected_namespaces(&self, namespaces: &Namespaces) -> Vec<String> {
        match namespaces {
            Namespaces::All => self.namespaces.keys().cloned().collect(),
            Namespaces::Only(names) => names
                .iter()
                .filter(|n| self.namespaces.contains_key(n.as_str()))
                .cloned()
                .collect(),
        }
    }

    /// Adds the given namespaces to products read from core, a few
    /// hundred products per query.
    fn read_namespaces(&self, products: &mut [Product], namespaces: &[String]) -> Result<()> {
        if products.is_empty() {
            return Ok(());
        }
        let positions: HashMap<String, usize> = products
            .iter()
            .enumerate()
            .map(|(position, p)| (self.uuids.text(&p.uuid), position))
            .collect();
        let keys: Vec<&String> = positions.keys().collect();
        for namespace in namespaces {
            let table = &self.namespaces[namespace];
            let columns: Vec<(&String, ValueType)> = table
                .columns
                .iter()
                .map(|(c, t)| (c, t.value_type))
                .collect();
            let mut select = String::from("uuid");
            for (column, _) in &columns {
                select.push_str(&format!(", \"{column}\""));
            }
            for chunk in keys.chunks(LOOKUP_CHUNK) {
                let sql = format!(
                    "SELECT {select} FROM {} WHERE uuid IN ({})",
                    self.tables.namespace_sql(namespace),
                    placeholders(1, chunk.len())
                );
                let mut statement = self.conn.prepare_cached(&sql)?;
                let mut rows = statement.query(params_from_iter(chunk.iter()))?;
                while let Some(row) = rows.next()? {
                    let key: String = row.get(0)?;
                    let Some(&position) = positions.get(&key) else {
                        continue;
                    };
                    let mut properties = BTreeMap::new();
                    for (index, (column, value_type)) in columns.iter().enumerate() {
                        let value = match from_sql(row.get_ref(index + 1)?, *value_type) {
                            Ok(value) => value,
                            Err(why) if *value_type == ValueType::Timestamp => {
                                let table = self.tables.namespace(namespace);
                                let product = &products[position];
                                report_unreadable_time(
                                    &table,
                                    column,
                                    Some(product),
                                    &product.uuid,
                                    &why,
                                );
                                None
                            }
                            Err(why) => {
                                return Err(CatalogueError::Storage(anyhow!(
                                    "{namespace}.{column} of product {key} holds {why}"
                                )))
                            }
                        };
                        if let Some(value) = value {
                            properties.insert((*column).clone(), value);
                        }
                    }
                    products[position]
                        .namespaces
                        .insert(namespace.clone(), properties);
                }
            }
        }
        Ok(())
    }

    /// The products whose core `column` is one of `keys` (and, with a type,
    /// of that product type), read a few hundred per query, with the given
    /// namespaces; by the value of `column` (`product_name` or `uuid`).
    fn products_in(
        &self,
        product_type: Option<&str>,
        column: CoreField,
        keys: &[String],
        namespaces: &[String],
    ) -> Result<HashMap<String, Product>> {
        self.begin()?;
        let mut products = Vec::with_capacity(keys.len());
        let first = if product_type.is_some() { 2 } else { 1 };
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let type_condition = if product_type.is_some() {
                "product_type = ?1 AND "
            } else {
                ""
            };
            let sql = format!(
                "{} WHERE {type_condition}{} IN ({})",
                self.core_select,
                column.name(),
                placeholders(first, chunk.len())
            );
            let mut statement = self.conn.prepare_cached(&sql)?;
            let params = product_type
                .into_iter()
                .map(String::from)
                .chain(chunk.iter().cloned());
            let mut rows = statement.query(params_from_iter(params))?;
            while let Some(row) = rows.next()? {
                products.push(self.read_core(row)?);
            }
        }
        self.read_namespaces(&mut products, namespaces)?;
        Ok(products
            .into_iter()
            .map(|p| {
                let key = match column {
                    CoreField::Uuid => self.uuids.text(&p.uuid),
                    _ => p.product_name.clone(),
                };
                (key, p)
            })
            .collect())
    }

    /// What writing `properties` into `namespace` takes, by the
    /// catalogue's rule ([`plan_namespace_write`]), against the namespace's
    /// columns as they are now; nothing is changed yet.
    fn plan_namespace(
        &mut self,
        namespace: &str,
        properties: &BTreeMap<String, Option<Value>>,
    ) -> Result<NamespaceWrite> {
        // The write transaction first: it re-reads the namespaces another
        // synchronizer may have changed.
        self.begin_write()?;
        let existing = self.namespaces.get(namespace).map(|t| &t.columns);
        plan_namespace_write(namespace, existing, properties).map_err(CatalogueError::Product)
    }

    /// Carries out a namespace's plan: creates the table and columns,
    /// records changed column types; returns the values as they will be
    /// stored, by column.
    fn apply_namespace_plan(
        &mut self,
        namespace: &str,
        plan: NamespaceWrite,
    ) -> Result<Vec<(String, Option<Value>)>> {
        if plan.create_table {
            schema::create_namespace_table(&self.conn, &self.tables, namespace)
                .map_err(|e| refused_name(e, namespace))?;
            self.namespaces
                .insert(namespace.to_string(), NamespaceTable::default());
        }
        let mut values = Vec::with_capacity(plan.values.len());
        for planned in plan.values {
            let column = planned.column;
            let changed = match planned.change {
                None => None,
                Some(ColumnChange::Add(value_type)) => {
                    schema::add_namespace_column(
                        &self.conn,
                        &self.tables,
                        namespace,
                        &column,
                        value_type,
                        self.format,
                    )
                    .map_err(|e| refused_name(e, &format!("{namespace}.{column}")))?;
                    Some(value_type)
                }
                Some(ColumnChange::Widen(value_type)) => {
                    schema::record_column_type(
                        &self.conn,
                        &self.tables,
                        namespace,
                        &column,
                        value_type,
                    )?;
                    Some(value_type)
                }
                Some(ColumnChange::TakeAsJson) => {
                    if !schema::holds_only_json(&self.conn, &self.tables, namespace, &column)? {
                        return Err(CatalogueError::product(text_is_not_json(
                            namespace, &column,
                        )));
                    }
                    schema::record_column_type(
                        &self.conn,
                        &self.tables,
                        namespace,
                        &column,
                        ValueType::Json,
                    )?;
                    Some(ValueType::Json)
                }
            };
            if let Some(value_type) = changed {
                // Recorded by muninn-sync now, so no longer muninn's.
                let kind = PropertyType {
                    value_type,
                    fixed: false,
                };
                self.namespaces
                    .get_mut(namespace)
                    .expect("the namespace's table exists")
                    .columns
                    .insert(column.clone(), kind);
            }
            values.push((column, planned.value));
        }
        Ok(values)
    }

    /// Inserts or updates a product's row in a namespace table.
    fn write_namespace(
        &self,
        uuid: &str,
        namespace: &str,
        values: &[(String, Option<Value>)],
    ) -> Result<()> {
        let table = self.tables.namespace_sql(namespace);
        let columns: Vec<String> = values.iter().map(|(c, _)| format!("\"{c}\"")).collect();
        let placeholders: Vec<String> = (2..values.len() + 2).map(|i| format!("?{i}")).collect();
        let sql = if values.is_empty() {
            format!("INSERT INTO {table} (uuid) VALUES (?1) ON CONFLICT (uuid) DO NOTHING")
        } else {
            let assignments: Vec<String> = columns
                .iter()
                .map(|c| format!("{c} = excluded.{c}"))
                .collect();
            format!(
                "INSERT INTO {table} (uuid, {}) VALUES (?1, {}) ON CONFLICT (uuid) DO UPDATE SET {}",
                columns.join(", "),
                placeholders.join(", "),
                assignments.join(", ")
            )
        };
        let mut params = Vec::with_capacity(values.len() + 1);
        params.push(SqlValue::Text(uuid.to_string()));
        params.extend(
            values
                .iter()
                .map(|(_, v)| option_to_sql(v.as_ref(), self.format, self.uuids)),
        );
        self.conn
            .prepare_cached(&sql)?
            .execute(params_from_iter(params))?;
        Ok(())
    }

    fn now() -> SqlValue {
        SqlValue::Text(format_timestamp(&truncate_to_micros(Utc::now())))
    }

    /// The SQL expression and join for a walk's time property
    /// ([`walk_time`]), and the namespace it belongs to; `None` when no
    /// product has that namespace property yet.
    fn walk_column(&self, property: &str) -> Result<Option<(String, String, Option<String>)>> {
        let time = walk_time(property, |namespace| {
            self.namespaces.get(namespace).map(|t| &t.columns)
        })
        .map_err(CatalogueError::Product)?;
        Ok(time.map(|time| match time {
            WalkTime::Core(field) => (format!("c.{}", field.name()), String::new(), None),
            WalkTime::Column { namespace, column } => (
                format!("n.\"{column}\""),
                format!(
                    " JOIN {} n ON n.uuid = c.uuid",
                    self.tables.namespace_sql(namespace)
                ),
                Some(namespace.to_string()),
            ),
        }))
    }
}

impl Catalogue for SqliteCatalogue {
    fn products_by_name(
        &self,
        product_type: &str,
        product_names: &[&str],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>> {
        let namespaces = self.selected_namespaces(namespaces);
        let keys: Vec<String> = product_names.iter().map(|n| n.to_string()).collect();
        let mut found = self.products_in(
            Some(product_type),
            CoreField::ProductName,
            &keys,
            &namespaces,
        )?;
        Ok(take_in_order(&mut found, &keys))
    }

    fn products_by_uuid(
        &self,
        uuids: &[Uuid],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>> {
        let namespaces = self.selected_namespaces(namespaces);
        let keys: Vec<String> = uuids.iter().map(|u| self.uuids.text(u)).collect();
        let mut found = self.products_in(None, CoreField::Uuid, &keys, &namespaces)?;
        Ok(take_in_order(&mut found, &keys))
    }

    fn walk(&self, query: &WalkQuery, namespaces: &Namespaces) -> Result<Vec<Product>> {
        let walked = self.walk_column(&query.property)?;
        self.begin()?;
        let Some((column, join, own_namespace)) = walked else {
            return Ok(Vec::new()); // no product has that namespace property yet
        };
        let mut params: Vec<SqlValue> = vec![SqlValue::Text(query.product_type.clone())];
        let mut conditions = vec!["c.product_type = ?1".to_string()];
        conditions.extend(window_conditions(
            &column,
            "c.uuid",
            query.start.as_ref(),
            query.end.as_ref(),
            query.after.as_ref(),
            self.uuids,
            &mut params,
        ));
        let limit = bind(&mut params, SqlValue::Integer(query.limit as i64));
        let sql = format!(
            "SELECT c.uuid FROM {} c{join} WHERE {} ORDER BY {column}, c.uuid LIMIT {limit}",
            self.tables.core,
            conditions.join(" AND ")
        );
        // Kept as stored (dashed or not) to find the products again; a uuid
        // SQLite stored as a number is named by the error from_sql gives.
        let stored: Vec<rusqlite::types::Value> = self
            .conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(params), |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let uuids: Vec<String> = stored
            .into_iter()
            .map(|value| match value {
                rusqlite::types::Value::Text(text) => Ok(text),
                other => {
                    let why =
                        values::from_sql(rusqlite::types::ValueRef::from(&other), ValueType::Uuid)
                            .err()
                            .unwrap_or_else(|| format!("{other:?} where a uuid belongs"));
                    Err(CatalogueError::Storage(anyhow::anyhow!(
                        "{}.uuid of a product of type \"{}\": {why}",
                        self.tables.core,
                        query.product_type
                    )))
                }
            })
            .collect::<Result<_>>()?;
        let mut namespaces = self.selected_namespaces(namespaces);
        if let Some(own) = own_namespace {
            if !namespaces.contains(&own) {
                namespaces.push(own);
            }
        }
        let mut found = self.products_in(None, CoreField::Uuid, &uuids, &namespaces)?;
        let products: Vec<Product> = uuids.iter().filter_map(|key| found.remove(key)).collect();
        Ok(products)
    }

    fn scan(&mut self, query: &ScanQuery) -> Result<Vec<ScanRow>> {
        self.begin_write()?;
        let Some(table) = self.namespaces.get(&query.namespace) else {
            return Ok(Vec::new()); // nothing has that namespace yet
        };
        let order_by = scan_order(&query.namespace, &query.order_by, Some(&table.columns))
            .map_err(CatalogueError::Product)?;
        let Some(order_by) = order_by.cloned() else {
            return Ok(Vec::new()); // nothing has that property yet
        };
        let columns: Vec<Option<(String, ValueType)>> = query
            .properties
            .iter()
            .map(|p| table.column(p).map(|(c, t)| (c.clone(), t)))
            .collect();
        let name = self.tables.namespace(&query.namespace);
        let table_sql = self.tables.namespace_sql(&query.namespace);
        // Ordered by (time, uuid) straight from an index: a scan of a window
        // reads the index in order instead of sorting the table.
        self.conn.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS \"idx_{name}_{order_by}\" ON {table_sql} (\"{order_by}\", uuid);"
        ))?;
        let mut select = format!("uuid, \"{order_by}\"");
        for column in columns.iter().flatten() {
            select.push_str(&format!(", \"{}\"", column.0));
        }
        let mut params: Vec<SqlValue> = Vec::new();
        let conditions = window_conditions(
            &format!("\"{order_by}\""),
            "uuid",
            query.start.as_ref(),
            query.end.as_ref(),
            query.after.as_ref(),
            self.uuids,
            &mut params,
        );
        let limit = bind(&mut params, SqlValue::Integer(query.limit as i64));
        let sql = format!(
            "SELECT {select} FROM {table_sql} WHERE {} ORDER BY \"{order_by}\", uuid LIMIT {limit}",
            conditions.join(" AND ")
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let mut rows = statement.query(params_from_iter(params))?;
        let mut found = Vec::new();
        let storage = |e: String| CatalogueError::Storage(anyhow!("{name}: {e}"));
        while let Some(row) = rows.next()? {
            let uuid = match from_sql(row.get_ref(0)?, ValueType::Uuid).map_err(storage)? {
                Some(Value::Uuid(u)) => u,
                _ => continue,
            };
            // A row whose time cannot be read has no place in the order:
            // reported and left out, as a look-up takes such a time as absent.
            let time = match from_sql(row.get_ref(1)?, ValueType::Timestamp) {
                Ok(Some(Value::Timestamp(t))) => t,
                Ok(_) => continue,
                Err(why) => {
                    report_unreadable_time(&name, &order_by, None, &uuid, &why);
                    continue;
                }
            };
            let mut values = Vec::with_capacity(columns.len());
            let mut index = 2;
            for column in &columns {
                values.push(match column {
                    Some((column, value_type)) => {
                        index += 1;
                        match from_sql(row.get_ref(index - 1)?, *value_type) {
                            Ok(value) => value,
                            Err(why) if *value_type == ValueType::Timestamp => {
                                report_unreadable_time(&name, column, None, &uuid, &why);
                                None
                            }
                            Err(why) => return Err(storage(why)),
                        }
                    }
                    None => None,
                });
            }
            found.push(ScanRow { uuid, time, values });
        }
        Ok(found)
    }

    fn create(&mut self, product: &Product) -> Result<()> {
        product.validate().map_err(CatalogueError::Product)?;
        // Every namespace planned before any is changed: a refused property
        // leaves no table or column behind.
        let mut plans = Vec::with_capacity(product.namespaces.len());
        for (namespace, properties) in &product.namespaces {
            let properties = properties
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            plans.push((namespace, self.plan_namespace(namespace, &properties)?));
        }
        let mut namespace_values = Vec::with_capacity(plans.len());
        for (namespace, plan) in plans {
            namespace_values.push((namespace, self.apply_namespace_plan(namespace, plan)?));
        }
        // No savepoint: it would copy every page the insert touches (a dozen
        // indexes and the spatial index), which costs more than the insert.
        // The core row goes in with one statement, which is atomic; should a
        // namespace row then be refused, the core row is deleted again (its
        // namespace rows go with it), so the product still leaves nothing.
        self.begin_write()?;
        let mut params: Vec<SqlValue> = Vec::with_capacity(CoreField::ALL.len());
        for field in CoreField::ALL {
            params.push(match field {
                CoreField::MetadataDate => Self::now(),
                field => option_to_sql(product.core_value(field).as_ref(), self.format, self.uuids),
            });
        }
        self.conn
            .prepare_cached(&self.core_insert)?
            .execute(params_from_iter(params))?;
        let key = self.uuids.text(&product.uuid);
        for (namespace, values) in &namespace_values {
            if let Err(error) = self.write_namespace(&key, namespace, values) {
                if error.is_product_error() {
                    let sql = format!("DELETE FROM {} WHERE uuid = ?1", self.tables.core);
                    self.conn.prepare_cached(&sql)?.execute([&key])?;
                }
                return Err(error);
            }
        }
        Ok(())
    }

    fn update(&mut self, update: &Update) -> Result<()> {
        let key = self.uuids.text(&update.uuid);
        update.check_core().map_err(CatalogueError::Product)?;
        let mut plans = Vec::new();
        for (namespace, change) in &update.namespaces {
            let plan = match change {
                Some(properties) => Some(self.plan_namespace(namespace, properties)?),
                None => None,
            };
            plans.push((namespace.clone(), plan));
        }
        let mut namespace_values = Vec::with_capacity(plans.len());
        for (namespace, plan) in plans {
            let values = match plan {
                Some(plan) => Some(self.apply_namespace_plan(&namespace, plan)?),
                None => None,
            };
            namespace_values.push((namespace, values));
        }
        let apply = |this: &mut Self| -> Result<()> {
            let mut assignments = vec!["metadata_date = ?1".to_string()];
            let mut params = vec![Self::now()];
            for (field, value) in &update.core {
                params.push(option_to_sql(value.as_ref(), this.format, this.uuids));
                assignments.push(format!("{} = ?{}", field.name(), params.len()));
            }
            params.push(SqlValue::Text(key.clone()));
            let sql = format!(
                "UPDATE {} SET {} WHERE uuid = ?{}",
                this.tables.core,
                assignments.join(", "),
                params.len()
            );
            let changed = this
                .conn
                .prepare_cached(&sql)?
                .execute(params_from_iter(params))?;
            if changed == 0 {
                return Err(CatalogueError::product(format!(
                    "no product with uuid {key}"
                )));
            }
            for (namespace, values) in &namespace_values {
                match values {
                    Some(values) => this.write_namespace(&key, namespace, values)?,
                    None if this.namespaces.contains_key(namespace) => {
                        let sql = format!(
                            "DELETE FROM {} WHERE uuid = ?1",
                            this.tables.namespace_sql(namespace)
                        );
                        this.conn.prepare_cached(&sql)?.execute([&key])?;
                    }
                    None => {}
                }
            }
            Ok(())
        };
        if namespace_values.is_empty() {
            // One statement, atomic by itself: no savepoint needed.
            self.begin_write()?;
            apply(self)
        } else {
            self.atomically(apply)
        }
    }

    fn remove(&mut self, uuid: Uuid) -> Result<bool> {
        let key = self.uuids.text(&uuid);
        self.begin_write()?;
        // Neither statement can be refused for the product's sake: a failure
        // is the storage's, and ends the run with the batch rolled back.
        let sql = format!("DELETE FROM {} WHERE source_uuid = ?1", self.tables.link);
        self.conn.prepare_cached(&sql)?.execute([&key])?;
        let sql = format!("DELETE FROM {} WHERE uuid = ?1", self.tables.core);
        Ok(self.conn.prepare_cached(&sql)?.execute([&key])? == 1)
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
        self.begin()?;
        Ok(namespaces
            .iter()
            .filter_map(|namespace| {
                let table = self.namespaces.get(namespace)?;
                Some((namespace.clone(), table.columns.clone()))
            })
            .collect())
    }

    fn commit(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("COMMIT")?;
            std::thread::sleep(TURN_PAUSE);
        }
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK")?;
            // Tables or columns made in the batch are gone again.
            self.namespaces = schema::load_namespaces(&self.conn, &self.tables)?;
        }
        Ok(())
    }
}
