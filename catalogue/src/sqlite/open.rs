//! Opening the SQLite catalogue: creating or setting up muninn's tables,
//! the copy a dry run works on, and the batch's transaction (the write
//! lock: when it is taken, how long a writer waits, and the pause after a
//! commit that lets another synchronizer of the archive have its turn).

use super::owners;
use super::schema::{self, Tables};
use super::{FootprintFormat, SqliteCatalogue, SqliteOptions};
use crate::Result;
use anyhow::{anyhow, Context};
use muninn_sync_model::CoreField;
use rusqlite::Connection;
use std::time::Duration;

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
        // Room for every statement a run repeats (rusqlite keeps 16): the
        // look-ups by name have one per length of their IN list, the
        // namespace upserts one per set of columns; an evicted one is
        // parsed and planned again.
        conn.set_prepared_statement_cache_capacity(256);
        // Foreign keys make removing a product remove its namespaces, tags
        // and links, as in muninn. 16 MiB of page cache (the default is
        // 2 MiB) keeps the upper levels of the indexes a sync looks products
        // up by in memory; more buys little once the catalogue outgrows it
        // and counts against the run's memory (docs/performance.md).
        // Statement and savepoint journals stay in memory: in files (the
        // default), every insert whose triggers and indexes touch more than
        // 64 KiB of pages (a product's core row with its R*Tree) spilled its
        // journal to a temporary file, some 45 writes a product. The sorter
        // that builds a scan's index is the exception (see
        // `SqliteCatalogue::scan_page`, in reads.rs).
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;
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
    pub(super) fn begin(&self) -> Result<()> {
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
    pub(super) fn begin_write(&mut self) -> Result<()> {
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
    pub(super) fn atomically<T>(&mut self, work: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
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

    /// Commits the batch's transaction, then pauses for another writer's turn.
    pub(super) fn commit_batch(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("COMMIT")?;
            std::thread::sleep(TURN_PAUSE);
        }
        Ok(())
    }

    /// Rolls the batch's transaction back, with the namespaces it made.
    pub(super) fn rollback_batch(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK")?;
            // Tables or columns made in the batch are gone again.
            self.namespaces = schema::load_namespaces(&self.conn, &self.tables)?;
        }
        Ok(())
    }
}
