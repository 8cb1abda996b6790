//! A test's archive: a temporary directory with `archive.toml` and feeds,
//! and a catalogue on the backend the test chose, looked at with SQL.

use crate::catalogue::Catalogue;
use crate::{binary, muninn_sync, Backend, Background, Run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An archive in a temporary directory: `archive.toml`, feeds beside it,
/// and its catalogue, `catalogue.sqlite` there or a PostgreSQL database of
/// its own.
pub struct Archive {
    pub dir: tempfile::TempDir,
    catalogue: Catalogue,
}

/// The `[archive]` and `[sqlite]` sections every SQLite test archive
/// starts with.
pub const BASE_CONFIG: &str = r#"
[archive]
database = "sqlite"

[sqlite]
connection_string = "catalogue.sqlite"
"#;

/// The `feed` synchronizer: jsonl reading `feed.jsonl`.
pub const FEED_SECTION: &str =
    "[\"synchronizer:feed\"]\nmodule = \"jsonl\"\npath = \"feed.jsonl\"\n";

impl Archive {
    /// A SQLite archive with one `jsonl` synchronizer named `feed` reading
    /// `feed.jsonl`.
    pub fn with_feed() -> Archive {
        Archive::with_feed_on(Backend::Sqlite)
    }

    /// A SQLite archive with this whole configuration.
    pub fn new(config: &str) -> Archive {
        let archive = Archive::empty(Backend::Sqlite, tempfile::tempdir());
        archive.write_config(config);
        archive
    }

    /// An archive on `backend` with one `jsonl` synchronizer named `feed`
    /// reading `feed.jsonl`.
    pub fn with_feed_on(backend: Backend) -> Archive {
        Archive::on(backend, FEED_SECTION)
    }

    /// An archive on `backend` whose configuration is the backend's
    /// `[archive]` and catalogue sections followed by `sections`.
    pub fn on(backend: Backend, sections: &str) -> Archive {
        let archive = Archive::empty(backend, tempfile::tempdir());
        archive.configure(sections);
        archive
    }

    /// As [`Archive::on`], with the directory inside `parent` (beside a
    /// feed that several archives share).
    pub fn on_in(backend: Backend, parent: &Path, sections: &str) -> Archive {
        let archive = Archive::empty(backend, tempfile::tempdir_in(parent));
        archive.configure(sections);
        archive
    }

    fn empty(backend: Backend, dir: std::io::Result<tempfile::TempDir>) -> Archive {
        let dir = dir.expect("temporary directory");
        let catalogue = match backend {
            Backend::Sqlite => Catalogue::sqlite(dir.path().join("catalogue.sqlite")),
            Backend::Postgresql => Catalogue::postgresql(
                muninn_sync_test_postgres::cluster().create_database("archive"),
            ),
        };
        Archive { dir, catalogue }
    }

    pub fn backend(&self) -> Backend {
        self.catalogue.backend()
    }

    /// The archive's PostgreSQL database (panics on SQLite).
    pub fn database(&self) -> &muninn_sync_test_postgres::TestDatabase {
        self.catalogue
            .database()
            .expect("a PostgreSQL archive has a database")
    }

    /// The `[archive]` section with `archive_keys` added to it, and the
    /// section that points at the catalogue: what every configuration of
    /// this archive starts with.
    pub fn base_config_with(&self, archive_keys: &str) -> String {
        let connection_string = match self.backend() {
            Backend::Sqlite => "catalogue.sqlite".to_string(),
            Backend::Postgresql => self.database().connection_string(),
        };
        let backend = self.backend().name();
        format!(
            "\n[archive]\ndatabase = \"{backend}\"\n{archive_keys}\n[{backend}]\nconnection_string = \"{connection_string}\"\n"
        )
    }

    /// [`base_config_with`](Self::base_config_with) no more keys.
    pub fn base_config(&self) -> String {
        self.base_config_with("")
    }

    /// Writes `archive.toml`: the base configuration and `sections`.
    pub fn configure(&self, sections: &str) {
        self.configure_with("", sections);
    }

    /// Writes `archive.toml`: the base configuration with `archive_keys` in
    /// `[archive]`, and `sections`.
    pub fn configure_with(&self, archive_keys: &str, sections: &str) {
        self.write_config(&format!(
            "{}\n{sections}",
            self.base_config_with(archive_keys)
        ));
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write_config(&self, config: &str) {
        std::fs::write(self.path("archive.toml"), config).expect("write archive.toml");
    }

    /// Writes a feed file, one JSON value per line.
    pub fn write_feed(&self, name: &str, lines: &[serde_json::Value]) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(self.path(name), text).expect("write feed");
    }

    /// Runs `muninn-sync archive.toml <args>`.
    pub fn sync(&self, args: &[&str]) -> Run {
        let mut all = vec!["archive.toml"];
        all.extend_from_slice(args);
        muninn_sync(self.dir.path(), &all, &[])
    }

    /// Starts `muninn-sync archive.toml <args>` in the background.
    pub fn start(&self, args: &[&str]) -> Background {
        let child = Command::new(binary())
            .current_dir(self.dir.path())
            .arg("archive.toml")
            .args(args)
            .env_remove("MUNINN_CONFIG_PATH")
            .env_remove("MUNINN_SYNC_PLUGIN_PATH")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start muninn-sync");
        Background::new(child)
    }

    /// A read-only connection to the SQLite catalogue (SpatiaLite not
    /// loaded: what a plain SQL user sees). SQLite only.
    pub fn db(&self) -> rusqlite::Connection {
        assert_eq!(self.backend(), Backend::Sqlite, "db() is SQLite's");
        rusqlite::Connection::open_with_flags(
            self.path("catalogue.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the catalogue")
    }

    /// Every row of a query, each column as text (`NULL` for null).
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        self.catalogue
            .try_rows(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The rows of a one-column query as text (`NULL` for null).
    pub fn strings(&self, sql: &str) -> Vec<String> {
        self.rows(sql)
            .into_iter()
            .map(|row| row.into_iter().next().expect("a column"))
            .collect()
    }

    /// The one row a query returns, each column as text (`NULL` for null).
    pub fn row(&self, sql: &str) -> Vec<String> {
        let mut rows = self.rows(sql);
        assert_eq!(rows.len(), 1, "{sql}: one row expected, got {rows:?}");
        rows.remove(0)
    }

    /// A query's single integer.
    pub fn count(&self, sql: &str) -> i64 {
        let value = &self.row(sql)[0];
        value
            .parse()
            .unwrap_or_else(|_| panic!("{sql}: {value:?} is not an integer"))
    }

    /// A query's single integer, or `None` while the query fails (no
    /// catalogue or no such table yet: a run in the background is only
    /// starting).
    pub fn try_count(&self, sql: &str) -> Option<i64> {
        let rows = self.catalogue.try_rows(sql).ok()?;
        rows.first()?.first()?.parse().ok()
    }

    /// Runs statements in the catalogue as another program (muninn, an
    /// operator's SQL) would.
    pub fn execute(&self, sql: &str) {
        self.catalogue.execute(sql);
    }

    /// product_name -> metadata_date of every product.
    pub fn metadata_dates(&self) -> std::collections::BTreeMap<String, String> {
        self.rows("SELECT product_name, metadata_date FROM core")
            .into_iter()
            .map(|row| (row[0].clone(), row[1].clone()))
            .collect()
    }
}

/// What differs between the backends' SQL and their text for one value, so
/// that one test body holds for both.
impl Archive {
    /// A uuid as the catalogue prints it, from either form: 32 hex digits
    /// on SQLite, PostgreSQL's `uuid` type dashed.
    pub fn uuid_text(&self, uuid: &str) -> String {
        let hex: String = uuid.chars().filter(|c| *c != '-').collect();
        assert_eq!(hex.len(), 32, "not a uuid: {uuid}");
        match self.backend() {
            Backend::Sqlite => hex,
            Backend::Postgresql => format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ),
        }
    }

    /// A boolean as the catalogue prints it: 1/0 on SQLite, t/f on
    /// PostgreSQL.
    pub fn boolean(&self, value: bool) -> &'static str {
        match (self.backend(), value) {
            (Backend::Sqlite, true) => "1",
            (Backend::Sqlite, false) => "0",
            (Backend::Postgresql, true) => "t",
            (Backend::Postgresql, false) => "f",
        }
    }

    /// A time as the catalogue prints it, from SQLite's form
    /// (`2024-01-03 10:00:00.250000`): PostgreSQL's `timestamp` leaves the
    /// fraction's trailing zeros out (`2024-01-03 10:00:00.25`).
    pub fn time_text(&self, stored: &str) -> String {
        match (self.backend(), stored.split_once('.')) {
            (Backend::Postgresql, Some((whole, fraction))) => {
                match fraction.trim_end_matches('0') {
                    "" => whole.to_string(),
                    kept => format!("{whole}.{kept}"),
                }
            }
            _ => stored.to_string(),
        }
    }

    /// The SQL expression for the kind of value a column holds, in SQLite's
    /// words (`integer`, `real`, `text`, `null`): `typeof(x)` on SQLite,
    /// PostgreSQL's column type mapped to those words (`boolean` stays
    /// `boolean`, since SQLite has none).
    pub fn kind_of(&self, column: &str) -> String {
        match self.backend() {
            Backend::Sqlite => format!("typeof({column})"),
            Backend::Postgresql => format!(
                "CASE WHEN {column} IS NULL THEN 'null' ELSE CASE pg_typeof({column})::text \
                 WHEN 'bigint' THEN 'integer' WHEN 'integer' THEN 'integer' \
                 WHEN 'double precision' THEN 'real' ELSE pg_typeof({column})::text END END"
            ),
        }
    }

    /// The footprint of the products `condition` selects (a WHERE clause on
    /// core), as its geometry type and WKT with `,` between points, or
    /// `None` where there is none: read with SpatiaLite on SQLite (which
    /// the test loads), PostGIS on PostgreSQL.
    pub fn footprints(&self, condition: &str) -> Vec<Option<(String, String)>> {
        let rows = match self.backend() {
            Backend::Sqlite => {
                let db = self.spatialite();
                let mut statement = db
                    .prepare(&format!(
                        "SELECT GeometryType(footprint), AsText(footprint) FROM core WHERE {condition}"
                    ))
                    .expect("prepare");
                statement
                    .query_map([], |row| {
                        Ok((row.get::<_, Option<String>>(0)?, row.get::<_, Option<String>>(1)?))
                    })
                    .expect("query")
                    .map(|r| r.expect("row"))
                    .collect::<Vec<_>>()
            }
            Backend::Postgresql => self
                .rows(&format!(
                    "SELECT GeometryType(footprint::geometry), ST_AsText(footprint, 17) FROM core WHERE {condition}"
                ))
                .into_iter()
                .map(|row| {
                    let value = |v: &String| (v != "NULL").then(|| v.clone());
                    (value(&row[0]), value(&row[1]))
                })
                .collect(),
        };
        rows.into_iter()
            .map(|(kind, wkt)| Some((kind?, wkt?.replace(", ", ","))))
            .collect()
    }

    /// The footprint of the one product `condition` selects, as
    /// [`footprints`](Self::footprints) gives it.
    pub fn footprint(&self, condition: &str) -> Option<(String, String)> {
        let mut all = self.footprints(condition);
        assert_eq!(all.len(), 1, "one product expected where {condition}");
        all.remove(0)
    }

    /// The bounding box (min x, min y, max x, max y) of the footprint of the
    /// one product `condition` selects, exactly as stored, or `None` where
    /// there is none: SpatiaLite's MBR, or the extremes of PostGIS's WKT in
    /// full precision.
    pub fn footprint_bounds(&self, condition: &str) -> Option<[f64; 4]> {
        match self.backend() {
            Backend::Sqlite => self
                .spatialite()
                .query_row(
                    &format!(
                        "SELECT MbrMinX(footprint), MbrMinY(footprint), MbrMaxX(footprint), MbrMaxY(footprint) \
                         FROM core WHERE {condition}"
                    ),
                    [],
                    |row| {
                        Ok(match row.get::<_, Option<f64>>(0)? {
                            Some(min_x) => Some([min_x, row.get(1)?, row.get(2)?, row.get(3)?]),
                            None => None,
                        })
                    },
                )
                .expect("one product"),
            Backend::Postgresql => {
                let (_, wkt) = self.footprint(condition)?;
                let numbers: Vec<f64> = wkt
                    .split(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | '+')))
                    .filter_map(|n| n.parse().ok())
                    .collect();
                let xs = numbers.iter().step_by(2);
                let ys = numbers.iter().skip(1).step_by(2);
                Some([
                    xs.clone().copied().fold(f64::MAX, f64::min),
                    ys.clone().copied().fold(f64::MAX, f64::min),
                    xs.copied().fold(f64::MIN, f64::max),
                    ys.copied().fold(f64::MIN, f64::max),
                ])
            }
        }
    }

    /// A read-only connection to the SQLite catalogue with SpatiaLite
    /// loaded, as a user queries footprints. SQLite only.
    pub fn spatialite(&self) -> rusqlite::Connection {
        let db = self.db();
        // SAFETY: loads the system's mod_spatialite, as the catalogue does.
        unsafe {
            db.load_extension_enable().expect("extensions");
            db.load_extension("mod_spatialite", None::<&str>)
                .expect("load mod_spatialite");
        }
        db
    }

    /// Checks the catalogue's storage as its own tool does: SQLite's
    /// `PRAGMA integrity_check`. PostgreSQL keeps its storage whole itself
    /// (a killed client's transaction is rolled back by the server), so
    /// there is nothing of the kind for a client to check.
    pub fn assert_storage_intact(&self) {
        if self.backend() == Backend::Sqlite {
            assert_eq!(
                self.strings("PRAGMA integrity_check"),
                ["ok"],
                "integrity_check"
            );
        }
    }

    /// The tables in the catalogue (PostgreSQL: its `public` schema, less
    /// PostGIS's own), sorted.
    pub fn tables(&self) -> Vec<String> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                if !self.path("catalogue.sqlite").exists() {
                    return Vec::new();
                }
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1"
            }
            Backend::Postgresql => {
                "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public' \
                 AND tablename <> 'spatial_ref_sys' ORDER BY 1"
            }
        };
        self.strings(sql)
    }

    /// Whether there is a catalogue: the SQLite file, or muninn's core table
    /// in the database.
    pub fn catalogue_exists(&self) -> bool {
        match self.backend() {
            Backend::Sqlite => self.path("catalogue.sqlite").exists(),
            Backend::Postgresql => self.tables().iter().any(|t| t == "core"),
        }
    }

    /// Everything in the catalogue, to compare before and after a run that
    /// must write nothing: the SQLite file's bytes (so not even a page
    /// changes), or every row of every table of the database.
    pub fn snapshot(&self) -> Vec<String> {
        match self.backend() {
            Backend::Sqlite => match std::fs::read(self.path("catalogue.sqlite")) {
                Ok(bytes) => {
                    use std::hash::{Hash, Hasher};
                    let mut hasher = std::collections::hash_map::DefaultHasher::new();
                    bytes.hash(&mut hasher);
                    vec![format!(
                        "catalogue.sqlite: {} bytes, hash {:016x}",
                        bytes.len(),
                        hasher.finish()
                    )]
                }
                Err(_) => vec!["no catalogue.sqlite".to_string()],
            },
            Backend::Postgresql => {
                let mut all = Vec::new();
                for table in self.tables() {
                    let rows =
                        self.strings(&format!("SELECT t::text FROM \"{table}\" t ORDER BY 1"));
                    all.extend(rows.into_iter().map(|row| format!("{table}: {row}")));
                    all.push(format!("{table} ends"));
                }
                all
            }
        }
    }

    /// How messages name this archive's catalogue: the SQLite file's name,
    /// or `127.0.0.1:PORT/DATABASE`.
    pub fn catalogue_name(&self) -> String {
        match self.backend() {
            Backend::Sqlite => "catalogue.sqlite".to_string(),
            Backend::Postgresql => format!(
                "127.0.0.1:{}/{}",
                muninn_sync_test_postgres::cluster().port(),
                self.database().name()
            ),
        }
    }

    /// How a busy run's message names the lock of `synchronizer`: the lock
    /// file beside the SQLite catalogue, or the advisory lock in the
    /// server.
    pub fn lock_name(&self, synchronizer: &str) -> String {
        match self.backend() {
            Backend::Sqlite => format!("catalogue.sqlite.{synchronizer}.sync-lock"),
            Backend::Postgresql => format!(
                "advisory lock in PostgreSQL catalogue {}",
                self.catalogue_name()
            ),
        }
    }

    /// Who holds the run lock of `synchronizer`, if anyone: the lock file's
    /// text (which a killed run leaves behind), or the application name of
    /// the session holding the advisory lock (`muninn-sync NAME pid N on
    /// HOST`; the server drops it with a killed run's session).
    pub fn lock_holder(&self, synchronizer: &str) -> Option<String> {
        match self.backend() {
            Backend::Sqlite => std::fs::read_to_string(
                self.path(&format!("catalogue.sqlite.{synchronizer}.sync-lock")),
            )
            .ok()
            .filter(|text| !text.trim().is_empty()),
            Backend::Postgresql => self
                .strings(&format!(
                    "SELECT a.application_name FROM pg_catalog.pg_locks l \
                     JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() \
                     AND a.application_name LIKE 'muninn-sync {synchronizer} pid %'"
                ))
                .into_iter()
                .next(),
        }
    }
}
