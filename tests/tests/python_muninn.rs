//! Python muninn 7.5, the tool muninn-sync replaces, on the same archives,
//! on both catalogue backends (SQLite with SpatiaLite, and PostgreSQL with
//! PostGIS): an archive `muninn-prepare` made is synced in place, and
//! muninn's own `muninn-search` (spatial queries included), `muninn-info`,
//! `muninn-summary`, `muninn-tag` and API read what muninn-sync wrote, with
//! muninn's types; muninn's own writes (`muninn-remove`, `muninn-update`,
//! the API's `update_properties`) on a catalogue muninn-sync made leave the
//! next syncs converging. One `<id>.cfg` file serves both tools, as it
//! would for a muninn user. Last, a Python synchronizer and its port to a
//! plugin (docs/migrating-from-muninn.md) sync alike, run by muninn's
//! muninn-sync and by ours.
//!
//! Each scenario is one body taking the [`Backend`], run as
//! `<scenario>::sqlite` and `<scenario>::postgresql`; checks that only mean
//! something on SQLite (its type affinity, `sqlite_master`) stay SQLite
//! tests. A PostgreSQL test has a database of its own in the test process's
//! private cluster (muninn-sync-test-postgres).
//!
//! muninn comes from PyPI, with its PostgreSQL driver, in the virtualenv
//! that scripts/install-test-deps.sh makes under target/python-muninn/. Its
//! namespace extension and helper scripts are in tests/python/.

use muninn_sync_e2e::{deletion, muninn_sync, product, workspace, Run};
use muninn_sync_test_postgres::{cluster, TestDatabase};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The muninn release on PyPI these tests run (scripts/install-python-muninn.sh pins it).
const MUNINN_VERSION: &str = "7.5.0";

/// The virtualenv with Python muninn; a clear failure when it is missing.
fn venv() -> &'static Path {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let venv = workspace().join("target/python-muninn/venv");
        let version = Command::new(venv.join("bin/python"))
            .args(["-c", "import muninn; print(muninn.__version__)"])
            .output();
        let version = version
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        assert_eq!(
            version.as_deref(),
            Some(MUNINN_VERSION),
            "Python muninn {MUNINN_VERSION} is not installed in {}: run scripts/install-test-deps.sh, \
             which makes that virtualenv (pip install muninn=={MUNINN_VERSION}); these tests run muninn's \
             own tools on muninn-sync's catalogues",
            venv.display()
        );
        venv
    })
}

/// Where Python finds the tests' muninn extensions and synchronizers.
fn python_path() -> String {
    let python = workspace().join("tests/python");
    format!("{}:{}", python.display(), python.join("listing").display())
}

/// The catalogue backend of a test's archive: `[archive] database`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgresql,
}

/// `scenario::sqlite` and `scenario::postgresql`: the tests that run the
/// body `fn scenario(backend: Backend)` on each backend.
/// `postgresql: #[ignore = "..."]` leaves a bug of the PostgreSQL backend
/// written down until it is mended.
macro_rules! on_each_backend {
    ($scenario:ident $(, postgresql: #[$postgresql:meta])?) => {
        mod $scenario {
            #[test]
            fn sqlite() {
                super::$scenario(super::Backend::Sqlite)
            }

            #[test]
            $(#[$postgresql])?
            fn postgresql() {
                super::$scenario(super::Backend::Postgresql)
            }
        }
    };
}

/// An archive in a temporary directory with one `s2.cfg` that both Python
/// muninn and muninn-sync read: the catalogue (the SQLite file `s2.sqlite`
/// beside it, or a PostgreSQL database of the test's own), the namespaces
/// of tests/python/muninn_sync_testns.py, and a synchronizer `feed` whose
/// `module` is a Python synchronizer and whose `plugin` is jsonl.
struct Shared {
    dir: tempfile::TempDir,
    prefix: String,
    backend: Backend,
    /// The PostgreSQL catalogue's database; none on SQLite.
    database: Option<TestDatabase>,
}

impl Shared {
    /// `extensions`: muninn namespace extensions beside muninn_sync_testns.
    fn new(backend: Backend, prefix: &str, extensions: &str) -> Shared {
        let shared = Shared::empty(backend, prefix);
        shared.write_config(
            &format!(
                "namespace_extensions = muninn_sync_testns {extensions}\nsynchronizers = feed"
            ),
            "[synchronizer:feed]
module = muninn_sync_testsync
plugin = jsonl
path = feed.jsonl
",
        );
        shared
    }

    /// The directory and, on PostgreSQL, an empty database (PostGIS in
    /// it, no tables); no configuration yet.
    fn empty(backend: Backend, prefix: &str) -> Shared {
        Shared {
            dir: tempfile::tempdir().expect("temporary directory"),
            prefix: prefix.to_string(),
            backend,
            database: match backend {
                Backend::Sqlite => None,
                Backend::Postgresql => Some(cluster().create_database("python_muninn")),
            },
        }
    }

    /// Writes `s2.cfg`: `[archive]` with `archive_keys`, the catalogue's
    /// section, then `sections`.
    fn write_config(&self, archive_keys: &str, sections: &str) {
        // An absolute connection_string on SQLite: muninn takes a relative
        // one from the current directory, muninn-sync from the file's
        // directory.
        let catalogue = match &self.database {
            None => format!(
                "[sqlite]\nconnection_string = {}\ntable_prefix = {}\n",
                self.db_path().display(),
                self.prefix
            ),
            Some(database) => format!(
                "[postgresql]\nconnection_string = {}\ntable_prefix = {}\n",
                database.connection_string(),
                self.prefix
            ),
        };
        let database = match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgresql => "postgresql",
        };
        let config = format!(
            "[archive]\ndatabase = {database}\nstorage = none\n{archive_keys}\n\n{catalogue}\n{sections}"
        );
        std::fs::write(self.dir.path().join("s2.cfg"), config).expect("write s2.cfg");
    }

    fn db_path(&self) -> PathBuf {
        self.dir.path().join("s2.sqlite")
    }

    fn table(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn search_path(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn write_feed(&self, lines: &[Value]) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(self.dir.path().join("feed.jsonl"), text).expect("write the feed");
    }

    /// `muninn-sync s2 feed <args>`, the archive found by id.
    fn sync(&self, args: &[&str]) -> Run {
        let mut all = vec!["s2", "feed"];
        all.extend_from_slice(args);
        self.muninn_sync(&all)
    }

    /// Our `muninn-sync <args>`, with the archive's search path.
    fn muninn_sync(&self, args: &[&str]) -> Run {
        muninn_sync(
            self.dir.path(),
            args,
            &[("MUNINN_CONFIG_PATH", &self.search_path())],
        )
    }

    /// A program of the virtualenv (`muninn-search`, `python`, ...), run
    /// as a muninn user runs it.
    fn muninn(&self, program: &str, args: &[&str]) -> Run {
        let output = Command::new(venv().join("bin").join(program))
            .current_dir(self.dir.path())
            .args(args)
            .env("MUNINN_CONFIG_PATH", self.search_path())
            .env("PYTHONPATH", python_path())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// A muninn tool that must succeed; its standard output.
    fn tool(&self, program: &str, args: &[&str]) -> String {
        let run = self.muninn(program, args);
        assert_eq!(
            run.code, 0,
            "{program} {args:?} failed:\n{}{}",
            run.stdout, run.stderr
        );
        assert!(
            !run.stderr.contains("ERROR"),
            "{program} {args:?}:\n{}",
            run.stderr
        );
        run.stdout
    }

    /// Python code run with the archive's environment, which must succeed.
    fn python(&self, code: &str) -> String {
        self.tool("python", &["-c", code])
    }

    /// Every product (matching `expression`) as muninn's API reads it, by
    /// product_name: "namespace.property" -> {"type", "value"}.
    fn products(&self, expression: &str) -> Vec<Value> {
        let script = workspace().join("tests/python/dump_products.py");
        let out = self.tool("python", &[script.to_str().unwrap(), "s2", expression]);
        serde_json::from_str::<Vec<Value>>(&out).expect("dump_products.py prints JSON")
    }

    /// The names of the products muninn's API finds for `expression`.
    fn names(&self, expression: &str) -> Vec<String> {
        self.products(expression)
            .iter()
            .map(|p| {
                p["core.product_name"]["value"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    /// `muninn-search -c`: how many products muninn finds.
    fn count(&self, expression: &str) -> i64 {
        self.tool("muninn-search", &["-c", "s2", expression])
            .trim()
            .parse()
            .expect("muninn-search -c prints a number")
    }

    /// The uuid muninn-search prints for the product named `name`.
    fn uuid(&self, name: &str) -> String {
        let expression = format!("product_name == \"{name}\"");
        self.tool("muninn-search", &["-u", "s2", &expression])
            .trim()
            .to_string()
    }

    /// The rows of a query, each row's columns as the database shows them
    /// as text, joined with '|' (`NULL` for null). SQL written for both
    /// backends gets a uuid as 32 hex digits from SQLite and dashed from
    /// PostgreSQL, a boolean as 1/0 and t/f (`CAST(active AS INTEGER)`
    /// gives 1/0 on both).
    fn rows(&self, sql: &str) -> Vec<String> {
        match &self.database {
            None => self.sqlite_rows(sql),
            Some(database) => postgresql_rows(database, sql),
        }
    }

    fn sqlite_rows(&self, sql: &str) -> Vec<String> {
        use rusqlite::types::Value as Sql;
        let db = rusqlite::Connection::open_with_flags(
            self.db_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the catalogue");
        let mut statement = db.prepare(sql).expect("prepare");
        let columns = statement.column_count();
        statement
            .query_map([], |row| {
                (0..columns)
                    .map(|i| {
                        Ok(match row.get::<_, Sql>(i)? {
                            Sql::Null => "NULL".to_string(),
                            Sql::Integer(n) => n.to_string(),
                            Sql::Real(f) => f.to_string(),
                            Sql::Text(t) => t,
                            Sql::Blob(b) => format!("{b:?}"),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map(|r| r.join("|"))
            })
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    }

    /// The catalogue's tables, by name (SQLite's and PostGIS's own
    /// included), in byte order.
    fn tables(&self) -> Vec<String> {
        self.rows(match self.backend {
            Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            Backend::Postgresql => {
                "SELECT table_name FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
                 ORDER BY table_name COLLATE \"C\""
            }
        })
    }
}

/// [`Shared::rows`] on PostgreSQL: every column of `sql` cast to text,
/// PostgreSQL's own text form (`2024-01-02 10:00:00.123456`, a dashed uuid,
/// `t`, a geography's hex EWKB).
fn postgresql_rows(database: &TestDatabase, sql: &str) -> Vec<String> {
    let mut client = database.client();
    let statement = client.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let columns: Vec<String> = (1..=statement.columns().len())
        .map(|i| format!("shown.column{i}::text"))
        .collect();
    let aliases: Vec<String> = (1..=statement.columns().len())
        .map(|i| format!("column{i}"))
        .collect();
    // A query's own ORDER BY is kept by the plain projection around it.
    let as_text = format!(
        "SELECT {} FROM ({sql}) AS shown ({})",
        columns.join(", "),
        aliases.join(", ")
    );
    client
        .query(&as_text, &[])
        .unwrap_or_else(|e| panic!("{as_text}: {e}"))
        .iter()
        .map(|row| {
            (0..columns.len())
                .map(|i| {
                    row.get::<_, Option<String>>(i)
                        .unwrap_or_else(|| "NULL".into())
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// What a run's summary line says was done.
fn summary(run: &Run) -> &str {
    run.stderr
        .lines()
        .find(|l| l.contains(" created, "))
        .unwrap_or_else(|| panic!("no summary line:\n{}", run.stderr))
}

/// The type and value muninn's API gives one property of one product.
fn property<'a>(products: &'a [Value], name: &str, property: &str) -> &'a Value {
    let product = products
        .iter()
        .find(|p| p["core.product_name"]["value"] == name)
        .unwrap_or_else(|| panic!("muninn does not list {name}: {products:#?}"));
    &product[property]
}

/// A property muninn must have: its Python type ("uuid.UUID") and value.
fn typed(products: &[Value], name: &str, key: &str) -> (String, Value) {
    let p = property(products, name, key);
    assert!(!p.is_null(), "{name} has no {key} for muninn");
    (p["type"].as_str().unwrap().to_string(), p["value"].clone())
}

/// Two products with every kind of value the jsonl feed carries: core
/// times with microseconds and an offset, a polygon and a multipolygon
/// footprint, a given uuid and a derived one, and namespace values of
/// each type (integer beyond 2^53, real, boolean, text, timestamp, JSON).
fn feed() -> Vec<Value> {
    let mut a = product("S2MSI1C", "A", "2024-01-02T10:00:00.123456Z");
    a["uuid"] = json!("0D5B8F1E-4C7A-4A61-A8A6-F3A7B0C2D9E1");
    a["size"] = json!(812345678);
    a["validity_stop"] = json!("2024-01-02T10:00:10Z");
    a["creation_date"] = json!("2024-01-02T12:00:00.5+02:00");
    a["namespaces"] = json!({
        "eo": {"cloud_cover": 12.5, "platform": "sentinel-2a"},
        "props": {"n": 9007199254740993_i64, "r": 0.25, "b": true, "t": "text",
                  "ts": "2024-05-06T07:08:09.000001Z", "j": {"bands": [2, 3, 4], "gain": 1.5}},
    });
    let mut b = product("S2MSI2A", "B", "2024-01-03T00:00:00Z");
    b["footprint"] = json!("MULTIPOLYGON(((5 52, 6 52, 6 53, 5 52)), ((7 52, 8 52, 8 53, 7 52)))");
    b["namespaces"] = json!({
        "eo": {"cloud_cover": 80.0},
        "props": {"n": -1, "b": false},
    });
    vec![a, b]
}

/// What muninn reads of the products of [`feed`]: types and values, with
/// its API and its tools, by properties, times and footprints.
fn assert_muninn_reads_the_feed(shared: &Shared) {
    let products = shared.products("");
    let names: Vec<&Value> = products
        .iter()
        .map(|p| &p["core.product_name"]["value"])
        .collect();
    assert_eq!(names, [&json!("A"), &json!("B")]);
    let expect = |name: &str, key: &str, kind: &str, value: Value| {
        assert_eq!(
            typed(&products, name, key),
            (kind.to_string(), value),
            "{name} {key}"
        );
    };
    expect(
        "A",
        "core.uuid",
        "uuid.UUID",
        json!("0d5b8f1e-4c7a-4a61-a8a6-f3a7b0c2d9e1"),
    );
    expect("A", "core.active", "builtins.bool", json!(true));
    expect("A", "core.size", "builtins.int", json!(812345678));
    expect(
        "A",
        "core.hash",
        "builtins.str",
        json!("md5:9e107d9d372bb6826bd81d3542a419d6"),
    );
    expect(
        "A",
        "core.validity_start",
        "datetime.datetime",
        json!("2024-01-02T10:00:00.123456"),
    );
    expect(
        "A",
        "core.validity_stop",
        "datetime.datetime",
        json!("2024-01-02T10:00:10"),
    );
    expect(
        "A",
        "core.creation_date",
        "datetime.datetime",
        json!("2024-01-02T10:00:00.500000"),
    );
    expect(
        "A",
        "core.remote_url",
        "builtins.str",
        json!("https://example.org/p/A"),
    );
    expect(
        "A",
        "core.footprint",
        "muninn.geometry.Polygon",
        json!("POLYGON ((5.000000 52.000000, 6.000000 52.000000, 6.000000 53.000000, 5.000000 53.000000, 5.000000 52.000000))"),
    );
    expect("A", "eo.cloud_cover", "builtins.float", json!(12.5));
    expect("A", "eo.platform", "builtins.str", json!("sentinel-2a"));
    expect("A", "props.n", "builtins.int", json!(9007199254740993_i64));
    expect("A", "props.r", "builtins.float", json!(0.25));
    expect("A", "props.b", "builtins.bool", json!(true));
    expect("A", "props.t", "builtins.str", json!("text"));
    expect(
        "A",
        "props.ts",
        "datetime.datetime",
        json!("2024-05-06T07:08:09.000001"),
    );
    expect(
        "A",
        "props.j",
        "builtins.dict",
        json!({"bands": [2, 3, 4], "gain": 1.5}),
    );
    expect(
        "B",
        "core.footprint",
        "muninn.geometry.MultiPolygon",
        json!("MULTIPOLYGON (((5.000000 52.000000, 6.000000 52.000000, 6.000000 53.000000, 5.000000 52.000000)), ((7.000000 52.000000, 8.000000 52.000000, 8.000000 53.000000, 7.000000 52.000000)))"),
    );
    expect("B", "eo.cloud_cover", "builtins.float", json!(80.0));
    expect("B", "props.b", "builtins.bool", json!(false));
    expect("B", "props.n", "builtins.int", json!(-1));
    assert!(property(&products, "B", "props.j").is_null());
    // B's uuid is the one the jsonl synchronizer derives, as muninn-sync stored it.
    let stored = shared.rows(&format!(
        "SELECT uuid FROM {} WHERE product_name = 'B'",
        shared.table("core")
    ));
    let (kind, uuid) = typed(&products, "B", "core.uuid");
    assert_eq!(kind, "uuid.UUID");
    assert_eq!(
        uuid.as_str().unwrap().replace('-', ""),
        stored[0].replace('-', "")
    );
    let (kind, metadata_date) = typed(&products, "B", "core.metadata_date");
    assert_eq!(kind, "datetime.datetime");
    assert!(metadata_date.as_str().unwrap() > "2025", "{metadata_date}");

    // muninn's command line tools: search expressions on namespace
    // properties, times (to the microsecond) and footprints.
    assert_eq!(shared.count(""), 2);
    assert_eq!(shared.count("eo.cloud_cover < 20"), 1);
    assert_eq!(shared.count("props.b == true"), 1);
    assert_eq!(shared.count("props.n > 9007199254740992"), 1);
    assert_eq!(shared.count("props.ts > 2024-05-06T07:08:09"), 1);
    assert_eq!(shared.count("is_defined(props.ts)"), 1);
    assert_eq!(shared.count("product_type == \"S2MSI2A\""), 1);
    assert_eq!(
        shared
            .count("validity_start >= 2024-01-02T10:00:00.123456 and validity_start < 2024-01-03"),
        1
    );
    assert_eq!(
        shared.count("validity_start > 2024-01-02T10:00:00.123456"),
        1
    );

    // Footprints: A's square (5 52)-(6 53) and B's two triangles under the
    // diagonals of (5 52)-(6 53) and (7 52)-(8 53). A hit and a miss of
    // each, with muninn-search and with the API.
    let found = |expression: &str| -> Vec<String> {
        let table = shared.tool(
            "muninn-search",
            &[
                "-f",
                "psv",
                "-o",
                "+product_name",
                "-p",
                "product_name",
                "s2",
                expression,
            ],
        );
        let mut lines = table.lines();
        assert_eq!(lines.next(), Some("| core.product_name |"), "{table}");
        lines
            .map(|l| l.trim_matches(['|', ' ']).to_string())
            .collect()
    };
    let none: Vec<String> = Vec::new();
    assert_eq!(found("intersects(footprint, POINT (5.2 52.8))"), ["A"]);
    assert_eq!(found("intersects(footprint, POINT (7.8 52.2))"), ["B"]);
    assert_eq!(found("covers(footprint, POINT (5.5 52.9))"), ["A"]);
    assert_eq!(
        found("intersects(footprint, POLYGON ((4 51, 9 51, 9 54, 4 54, 4 51)))"),
        ["A", "B"]
    );
    assert_eq!(
        found("intersects(footprint, POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0)))"),
        none
    );
    assert_eq!(found("covers(footprint, POINT (7.2 52.8))"), none);
    assert_eq!(shared.count("not covers(footprint, POINT (5.5 52.9))"), 1);
    assert_eq!(shared.names("covers(footprint, POINT (7.8 52.2))"), ["B"]);
    assert_eq!(shared.names("intersects(footprint, POINT (1 1))"), none);
    assert_eq!(
        shared.names("covers(footprint, POINT (5.5 52.9)) and eo.cloud_cover < 20"),
        ["A"]
    );

    let uuids = shared.tool("muninn-search", &["-u", "s2", "product_name == \"A\""]);
    assert_eq!(uuids.trim(), "0d5b8f1e-4c7a-4a61-a8a6-f3a7b0c2d9e1");
    let table = shared.tool(
        "muninn-search",
        &[
            "-f",
            "psv",
            "-o",
            "+product_name",
            "-p",
            "product_name validity_start footprint eo.* props.*",
            "s2",
            "",
        ],
    );
    let lines: Vec<&str> = table.lines().collect();
    // muninn shows a JSON value as Python's dict; PostgreSQL's JSONB keeps
    // an object's keys shortest first (muninn's own JSON properties come
    // back the same way), SQLite's text as written.
    let j = match shared.backend {
        Backend::Sqlite => "{'bands': [2, 3, 4], 'gain': 1.5}",
        Backend::Postgresql => "{'gain': 1.5, 'bands': [2, 3, 4]}",
    };
    assert_eq!(
        lines[0],
        "| core.product_name | core.validity_start | core.footprint | eo.cloud_cover | eo.platform \
         | props.n | props.r | props.b | props.t | props.ts | props.j |"
    );
    assert_eq!(
        lines[1],
        format!(
            "| A | 2024-01-02 10:00:00.123456 | POLYGON ((5.000000 52.000000, 6.000000 52.000000, \
             6.000000 53.000000, 5.000000 53.000000, 5.000000 52.000000)) | 12.5 | sentinel-2a \
             | 9007199254740993 | 0.25 | True | text | 2024-05-06 07:08:09.000001 | {j} |"
        )
    );
    assert_eq!(lines.len(), 3, "{table}");
    let summary = shared.tool("muninn-summary", &["-f", "psv", "s2", ""]);
    assert!(
        summary.contains("| 2 | 812346678 | 2024-01-02 10:00:00.123456 | 2024-01-02 10:00:10 |"),
        "{summary}"
    );
    let by_type = shared.tool(
        "muninn-summary",
        &[
            "-f",
            "psv",
            "-g",
            "product_type",
            "s2",
            "intersects(footprint, POLYGON ((4 51, 9 51, 9 54, 4 54, 4 51)))",
        ],
    );
    for line in [
        "| S2MSI1C | 1 | 812345678 | 2024-01-02 10:00:00.123456 | 2024-01-02 10:00:10 |",
        "| S2MSI2A | 1 | 1000 | 2024-01-03 00:00:00 | None |",
    ] {
        assert!(by_type.contains(line), "{line:?} not in:\n{by_type}");
    }

    let info = shared.tool("muninn-info", &["s2"]);
    assert!(!info.contains("could not open archive"), "{info}");
    for line in [
        "      props",
        "        j: json (optional)",
        "        ts: timestamp (optional)",
        "    SYNCHRONIZERS\n      feed",
    ] {
        assert!(info.contains(line), "{line:?} not in:\n{info}");
    }
}

/// Python prepares the archive, muninn-sync syncs the feed into it in
/// place, muninn reads it; a second sync writes nothing.
fn python_prepared_then_synced(backend: Backend, prefix: &str, extensions: &str) -> Shared {
    let shared = Shared::new(backend, prefix, extensions);
    shared.tool("muninn-prepare", &["s2"]);
    shared.write_feed(&feed());
    let run = shared.sync(&[]);
    run.assert_ok();
    assert!(
        summary(&run).contains("2 created, 0 updated, 0 removed, 0 failed"),
        "{}",
        run.stderr
    );
    assert_muninn_reads_the_feed(&shared);
    shared
}

on_each_backend!(a_python_prepared_archive_is_synced_in_place_and_muninn_reads_it);
fn a_python_prepared_archive_is_synced_in_place_and_muninn_reads_it(backend: Backend) {
    // The jsonl synchronizer's own namespace declared for muninn too, so
    // muninn-prepare made its table and muninn reads it.
    let shared = python_prepared_then_synced(backend, "", "muninn_sync_jsonl_ns");
    let products = shared.products("product_name == \"A\"");
    assert_eq!(
        typed(&products, "A", "jsonl.modified"),
        (
            "datetime.datetime".to_string(),
            json!("2024-01-02T10:00:00.123456")
        )
    );
    assert_eq!(typed(&products, "A", "jsonl.key").0, "builtins.int");
    let info = shared.tool("muninn-info", &["s2"]);
    assert!(
        info.contains("      jsonl\n        fingerprint: long (optional)\n        key: long (optional)\n        modified: timestamp (optional)\n"),
        "{info}"
    );
    // muninn's declarations are as muninn-prepare left them.
    match backend {
        Backend::Sqlite => assert_eq!(
            shared.rows("SELECT sql FROM sqlite_master WHERE name = 'jsonl'"),
            [
                "CREATE TABLE jsonl (modified TIMESTAMP, fingerprint INTEGER, key INTEGER, \
              uuid UUID PRIMARY KEY REFERENCES core(uuid) ON DELETE CASCADE)"
            ]
        ),
        Backend::Postgresql => {
            assert_eq!(
                shared.rows(
                    "SELECT column_name, data_type FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = 'jsonl' ORDER BY ordinal_position"
                ),
                [
                    "modified|timestamp without time zone",
                    "fingerprint|bigint",
                    "key|bigint",
                    "uuid|uuid"
                ]
            );
            assert_eq!(
                shared.rows(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint \
                     WHERE conrelid = 'jsonl'::regclass ORDER BY conname"
                ),
                [
                    "jsonl_pkey|PRIMARY KEY (uuid)",
                    "jsonl_uuid_fkey|FOREIGN KEY (uuid) REFERENCES core(uuid) ON DELETE CASCADE"
                ]
            );
        }
    }
}

on_each_backend!(a_python_prepared_archive_with_a_table_prefix_is_synced_in_place);
fn a_python_prepared_archive_with_a_table_prefix_is_synced_in_place(backend: Backend) {
    // muninn does not know the jsonl namespace here: muninn-sync makes the
    // table s2_jsonl beside muninn's, and muninn leaves it alone.
    let shared = python_prepared_then_synced(backend, "s2_", "");
    // muninn's tables and ours, with and without the prefix; SpatiaLite's
    // and PostGIS's own tables aside.
    let ours = [
        "core",
        "eo",
        "props",
        "jsonl",
        "link",
        "tag",
        "muninn_sync_meta",
    ];
    let tables: Vec<String> = shared
        .tables()
        .into_iter()
        .filter(|t| ours.contains(&t.strip_prefix("s2_").unwrap_or(t)))
        .collect();
    assert_eq!(
        tables,
        [
            "s2_core",
            "s2_eo",
            "s2_jsonl",
            "s2_link",
            "s2_muninn_sync_meta",
            "s2_props",
            "s2_tag"
        ]
    );
    assert_eq!(shared.rows("SELECT count(*) FROM s2_jsonl"), ["2"]);
}

on_each_backend!(a_second_sync_of_a_python_prepared_archive_writes_nothing);
fn a_second_sync_of_a_python_prepared_archive_writes_nothing(backend: Backend) {
    let shared = python_prepared_then_synced(backend, "p_", "");
    let before = shared.rows("SELECT product_name, metadata_date FROM p_core ORDER BY 1");
    let run = shared.sync(&[]);
    run.assert_ok();
    assert!(
        summary(&run).contains("0 created, 0 updated, 0 removed, 0 failed, 2 unchanged"),
        "{}",
        run.stderr
    );
    assert_eq!(
        shared.rows("SELECT product_name, metadata_date FROM p_core ORDER BY 1"),
        before
    );
}

on_each_backend!(a_catalogue_muninn_sync_created_is_read_by_muninns_tools);
fn a_catalogue_muninn_sync_created_is_read_by_muninns_tools(backend: Backend) {
    // An empty SQLite file or PostgreSQL database: muninn-sync makes
    // muninn's layout, and muninn's tools and API read it.
    let shared = Shared::new(backend, "", "muninn_sync_jsonl_ns");
    shared.write_feed(&feed());
    shared.sync(&[]).assert_ok();
    assert_muninn_reads_the_feed(&shared);

    // muninn writes into it as well: a tag, listed by muninn, and a link
    // (B derived from A), both removed with A when muninn-sync follows a
    // deletion, as muninn's own remove does.
    shared.tool("muninn-tag", &["s2", "product_name == \"A\"", "checked"]);
    let tags = shared.tool("muninn-list-tags", &["s2", ""]);
    assert!(
        tags.contains("A (0d5b8f1e-4c7a-4a61-a8a6-f3a7b0c2d9e1): checked"),
        "{tags}"
    );
    let sources_of_b = r#"
import muninn
with muninn.open("s2") as archive:
    b = archive.search('product_name == "B"', property_names=["uuid"])[0].core.uuid
    print([str(uuid) for uuid in archive.source_products(b)])
"#;
    shared.python(
        r#"
import uuid, muninn
with muninn.open("s2") as archive:
    b = archive.search('product_name == "B"', property_names=["uuid"])[0].core.uuid
    archive.link(b, [uuid.UUID("0d5b8f1e-4c7a-4a61-a8a6-f3a7b0c2d9e1")])
"#,
    );
    assert_eq!(
        shared.python(sources_of_b).trim(),
        "['0d5b8f1e-4c7a-4a61-a8a6-f3a7b0c2d9e1']"
    );
    assert_eq!(shared.count("is_derived_from(product_name == \"A\")"), 1);
    let mut lines = feed();
    lines.push(deletion("S2MSI1C", "A", "2024-01-04T00:00:00Z"));
    shared.write_feed(&lines);
    let run = shared.sync(&[]);
    run.assert_ok();
    assert!(summary(&run).contains("1 removed"), "{}", run.stderr);
    assert_eq!(shared.rows("SELECT count(*) FROM tag"), ["0"]);
    assert_eq!(shared.rows("SELECT count(*) FROM link"), ["0"]);
    assert_eq!(shared.python(sources_of_b).trim(), "[]");
    assert_eq!(shared.count(""), 1);
}

on_each_backend!(an_archive_muninn_destroyed_and_prepared_again_is_synced_afresh);
fn an_archive_muninn_destroyed_and_prepared_again_is_synced_afresh(backend: Backend) {
    // How a muninn user starts an archive again: muninn-destroy, then
    // muninn-prepare. muninn drops the tables it knows (core, tag, link,
    // eo, props); the jsonl namespace, not declared to muninn here, and
    // muninn-sync's own tables stay. The next sync fills the new archive.
    let shared = Shared::new(backend, "", "");
    shared.write_feed(&feed());
    shared.sync(&[]).assert_ok();
    shared.tool("muninn-destroy", &["-y", "s2"]);
    shared.tool("muninn-prepare", &["s2"]);
    assert_eq!(shared.count(""), 0);
    if backend == Backend::Postgresql {
        // On PostgreSQL, muninn's DROP TABLE core CASCADE takes only the
        // foreign keys of the jsonl namespace and of muninn-sync's owner
        // records, which muninn does not know: the tables and their rows
        // stay, and so do the watermarks. The sync says so, names the
        // tables and what to do, and writes nothing.
        let refused = shared.sync(&[]);
        assert_eq!(refused.code, 1, "{}", refused.stderr);
        let drop =
            "DROP TABLE jsonl, muninn_sync_owners, muninn_sync_watermarks, muninn_sync_deletions;";
        assert!(
            refused.stderr.contains("no longer linked to core")
                && refused
                    .stderr
                    .contains("describe the catalogue that was dropped")
                && refused.stderr.contains(drop),
            "{}",
            refused.stderr
        );
        assert_eq!(shared.count(""), 0);
        let database = shared.database.as_ref().expect("a PostgreSQL database");
        database.client().batch_execute(drop).unwrap();
    }
    let run = shared.sync(&[]);
    run.assert_ok();
    assert!(
        summary(&run).contains("2 created, 0 updated, 0 removed, 0 failed"),
        "{}",
        run.stderr
    );
    assert_muninn_reads_the_feed(&shared);
    let again = shared.sync(&[]);
    again.assert_ok();
    assert!(
        summary(&again).contains("0 created, 0 updated, 0 removed, 0 failed, 2 unchanged"),
        "{}",
        again.stderr
    );
}

on_each_backend!(products_muninn_created_and_products_synced_share_the_archive);
fn products_muninn_created_and_products_synced_share_the_archive(backend: Backend) {
    let shared = Shared::new(backend, "", "");
    shared.tool("muninn-prepare", &["s2"]);
    // Two products made with muninn's API: P, which the feed never
    // mentions, and Q, which the feed also has (with another size).
    shared.python(
        r#"
import datetime, uuid, muninn
from muninn.geometry import LinearRing, Point, Polygon
from muninn.struct import Struct

def made(name, uuid_hex, size):
    p = Struct()
    p.core = Struct()
    p.core.uuid = uuid.UUID(uuid_hex)
    p.core.active = True
    p.core.product_type = "S2MSI1C"
    p.core.product_name = name
    p.core.physical_name = name + ".SAFE"
    p.core.size = size
    p.core.hash = "md5:9e107d9d372bb6826bd81d3542a419d6"
    p.core.validity_start = datetime.datetime(2024, 1, 1, 8, 0, 0, 250000)
    p.core.remote_url = "https://example.org/p/" + name
    p.core.footprint = Polygon([LinearRing([Point(5, 52), Point(6, 52), Point(6, 53), Point(5, 53)])])
    p.eo = Struct()
    p.eo.cloud_cover = 12.5
    p.eo.platform = "sentinel-2a"
    p.props = Struct()
    p.props.n = 7
    p.props.b = True
    p.props.ts = datetime.datetime(2024, 5, 6, 7, 8, 9, 1)
    p.props.j = {"bands": [2, 3, 4], "gain": 1.5}
    return p

with muninn.open("s2") as archive:
    archive.create_properties(made("P", "a0000000000000000000000000000001", 1))
    archive.create_properties(made("Q", "b0000000000000000000000000000002", 2))
    archive.tag(uuid.UUID("a0000000000000000000000000000001"), ["mine"])
"#,
    );
    let p_rows = |shared: &Shared| {
        [
            "SELECT * FROM core WHERE product_name = 'P'",
            "SELECT e.* FROM eo e JOIN core c USING (uuid) WHERE c.product_name = 'P'",
            "SELECT x.* FROM props x JOIN core c USING (uuid) WHERE c.product_name = 'P'",
            "SELECT t.uuid, t.tag FROM tag t JOIN core c USING (uuid) WHERE c.product_name = 'P'",
        ]
        .iter()
        .flat_map(|sql| shared.rows(sql))
        .collect::<Vec<_>>()
    };
    let p_before = p_rows(&shared);
    let q_before = shared.rows("SELECT uuid, metadata_date FROM core WHERE product_name = 'Q'");

    let mut q = product("S2MSI1C", "Q", "2024-01-01T08:00:00.25Z");
    q["physical_name"] = json!("Q.SAFE");
    q["size"] = json!(2000);
    q["footprint"] = json!("POLYGON((5 52, 6 52, 6 53, 5 53, 5 52))");
    q["namespaces"] = json!({
        "eo": {"cloud_cover": 12.5, "platform": "sentinel-2a"},
        "props": {"n": 7, "b": true, "ts": "2024-05-06T07:08:09.000001Z",
                  "j": {"bands": [2, 3, 4], "gain": 1.5}},
    });
    let new = product("S2MSI2A", "N", "2024-01-05T00:00:00Z");
    shared.write_feed(&[q, new]);
    let run = shared.sync(&[]);
    run.assert_ok();
    assert!(
        summary(&run).contains("1 created, 1 updated, 0 removed, 0 failed"),
        "{}",
        run.stderr
    );

    // P is untouched, row for row; Q keeps muninn's uuid and takes the
    // feed's size; muninn reads all three with its types.
    assert_eq!(p_rows(&shared), p_before);
    let q_after = shared.rows("SELECT uuid, metadata_date FROM core WHERE product_name = 'Q'");
    assert_eq!(q_after[0].split('|').next(), q_before[0].split('|').next());
    assert_eq!(
        q_after[0].split('|').next().unwrap().replace('-', ""),
        "b0000000000000000000000000000002"
    );
    assert_ne!(q_after, q_before, "Q's metadata_date moves with the update");
    let products = shared.products("");
    assert_eq!(products.len(), 3);
    for name in ["P", "Q"] {
        assert_eq!(
            typed(&products, name, "core.validity_start"),
            (
                "datetime.datetime".to_string(),
                json!("2024-01-01T08:00:00.250000")
            )
        );
        assert_eq!(
            typed(&products, name, "props.j"),
            (
                "builtins.dict".to_string(),
                json!({"bands": [2, 3, 4], "gain": 1.5})
            )
        );
        assert_eq!(typed(&products, name, "props.b").0, "builtins.bool");
        assert_eq!(
            typed(&products, name, "core.footprint").0,
            "muninn.geometry.Polygon"
        );
    }
    assert_eq!(typed(&products, "P", "core.size").1, json!(1));
    assert_eq!(typed(&products, "Q", "core.size").1, json!(2000));
    assert_eq!(
        typed(&products, "Q", "core.uuid").1,
        json!("b0000000-0000-0000-0000-000000000002")
    );
    assert_eq!(typed(&products, "N", "core.uuid").0, "uuid.UUID");
    assert_eq!(shared.count("has_tag(\"mine\")"), 1);

    // A second run finds both feed products as they are.
    let again = shared.sync(&[]);
    again.assert_ok();
    assert!(
        summary(&again).contains("0 created, 0 updated, 0 removed, 0 failed, 2 unchanged"),
        "{}",
        again.stderr
    );
    assert_eq!(p_rows(&shared), p_before);
}

on_each_backend!(muninns_own_writes_leave_the_next_syncs_converging);
fn muninns_own_writes_leave_the_next_syncs_converging(backend: Backend) {
    // A catalogue muninn-sync made, then written by muninn: A removed
    // (muninn-remove), B given another product type (muninn-update
    // retype), C's cloud cover changed (the API's update_properties).
    let shared = Shared::new(backend, "", "muninn_sync_jsonl_ns");
    let mut lines = feed();
    lines.push(product("S2MSI1C", "C", "2024-01-04T00:00:00Z"));
    shared.write_feed(&lines);
    let run = shared.sync(&[]);
    run.assert_ok();
    assert!(
        summary(&run).contains("3 created, 0 updated, 0 removed, 0 failed"),
        "{}",
        run.stderr
    );
    let (a, b, c) = (shared.uuid("A"), shared.uuid("B"), shared.uuid("C"));
    shared.tool("muninn-tag", &["s2", "product_name == \"A\"", "checked"]);
    shared.tool("muninn-remove", &["s2", "product_name == \"A\""]);
    shared.tool(
        "muninn-update",
        &["retype", "s2", "product_name == \"B\"", "S2MSI2X"],
    );
    shared.python(&format!(
        r#"
import uuid, muninn
from muninn.struct import Struct

with muninn.open("s2") as archive:
    archive.update_properties(Struct({{"eo": {{"cloud_cover": 55.0}}}}), uuid.UUID("{c}"))
"#
    ));
    assert_eq!(shared.count(""), 2);
    assert_eq!(shared.count("product_type == \"S2MSI2X\""), 1);
    assert_eq!(shared.count("eo.cloud_cover == 55.0"), 1);
    assert_eq!(
        shared.rows(&format!("SELECT count(*) FROM {}", shared.table("tag"))),
        ["0"]
    );

    // A comes back, with its uuid, namespaces and footprint. B's and C's
    // lines have not changed since they were applied: they are skipped,
    // and muninn's changes stay (docs/jsonl.md, "The jsonl namespace").
    let run = shared.sync(&[]);
    run.assert_ok();
    assert!(
        summary(&run).contains("1 created, 0 updated, 0 removed, 0 failed, 2 unchanged"),
        "{}",
        run.stderr
    );
    let products = shared.products("");
    assert_eq!(shared.names(""), ["A", "B", "C"]);
    assert_eq!(typed(&products, "A", "core.uuid").1, json!(a));
    assert_eq!(
        typed(&products, "A", "props.j").1,
        json!({"bands": [2, 3, 4], "gain": 1.5})
    );
    assert_eq!(
        typed(&products, "A", "core.validity_start").1,
        json!("2024-01-02T10:00:00.123456")
    );
    assert_eq!(typed(&products, "B", "core.uuid").1, json!(b));
    assert_eq!(
        typed(&products, "B", "core.product_type").1,
        json!("S2MSI2X")
    );
    assert_eq!(typed(&products, "C", "eo.cloud_cover").1, json!(55.0));
    assert_eq!(shared.count("has_tag(\"checked\")"), 0);
    assert_eq!(
        shared.names("covers(footprint, POINT (5.5 52.9))"),
        ["A", "C"]
    );

    // C's line changes: C takes the feed's properties again, cloud cover
    // included; the uuid is muninn's all along.
    lines[2]["modified"] = json!("2024-01-05T00:00:00Z");
    lines[2]["size"] = json!(2000);
    shared.write_feed(&lines);
    let run = shared.sync(&[]);
    run.assert_ok();
    assert!(
        summary(&run).contains("0 created, 1 updated, 0 removed, 0 failed, 2 unchanged"),
        "{}",
        run.stderr
    );
    let products = shared.products("product_name == \"C\"");
    assert_eq!(typed(&products, "C", "core.uuid").1, json!(c));
    assert_eq!(typed(&products, "C", "core.size").1, json!(2000));
    assert_eq!(typed(&products, "C", "eo.cloud_cover").1, json!(12.5));

    // Then there is nothing left to do.
    let run = shared.sync(&[]);
    run.assert_ok();
    assert!(
        summary(&run).contains("0 created, 0 updated, 0 removed, 0 failed, 3 unchanged"),
        "{}",
        run.stderr
    );
    assert_eq!(shared.count(""), 3);
}

on_each_backend!(a_forced_sync_names_the_product_muninn_retyped);
fn a_forced_sync_names_the_product_muninn_retyped(backend: Backend) {
    // muninn-update retype keeps B's uuid, the one the jsonl synchronizer
    // derives from B's old type and name. --force applies B's line again:
    // no product of that type and name, and its uuid taken, so B fails,
    // named, and the catalogue keeps what muninn made of it.
    let shared = Shared::new(backend, "", "muninn_sync_jsonl_ns");
    shared.write_feed(&feed());
    shared.sync(&[]).assert_ok();
    let b = shared.uuid("B");
    shared.tool(
        "muninn-update",
        &["retype", "s2", "product_name == \"B\"", "S2MSI2X"],
    );
    let run = shared.sync(&["--force"]);
    // On SQLite the catalogue refuses when the plugin creates B, and the
    // message names the feed's line; PostgreSQL refuses when the held-back
    // batch is written, in the server's words (docs/postgresql.md, "What
    // differs from SQLite").
    let refusal = match backend {
        Backend::Sqlite => "feed.jsonl line 2 (S2MSI2A/B): create: product S2MSI2A/B: a product with this uuid already exists",
        Backend::Postgresql => "S2MSI2A/B: duplicate key value violates unique constraint \"core_pkey\"",
    };
    run.assert_error(1, &[refusal]);
    assert!(
        summary(&run).contains("0 created, 1 updated, 0 removed, 1 failed"),
        "{}",
        run.stderr
    );
    let products = shared.products("");
    assert_eq!(shared.names(""), ["A", "B"]);
    assert_eq!(typed(&products, "B", "core.uuid").1, json!(b));
    assert_eq!(
        typed(&products, "B", "core.product_type").1,
        json!("S2MSI2X")
    );
    assert_eq!(shared.count("product_type == \"S2MSI2A\""), 0);
}

#[test]
fn uuids_that_read_as_numbers_survive_a_python_prepared_archive() {
    // muninn declares uuid columns UUID, which SQLite gives NUMERIC
    // affinity: muninn's 32 hex digits of these uuids would be stored as
    // the numbers 1.23e+31 and inf, lost, and both "e" ones the same.
    // (PostgreSQL's uuid type has no such trap.)
    let shared = Shared::new(Backend::Sqlite, "", "");
    shared.tool("muninn-prepare", &["s2"]);
    let uuids = [
        "12345678901234567890123456789012",
        "4e512345678901234567890123456789",
        "5e512345678901234567890123456789",
    ];
    let lines: Vec<Value> = uuids
        .iter()
        .enumerate()
        .map(|(i, uuid)| {
            let mut line = product("T", &format!("N{i}"), "2024-01-01T00:00:00Z");
            line["uuid"] = json!(uuid);
            line
        })
        .collect();
    shared.write_feed(&lines);
    let run = shared.sync(&[]);
    run.assert_ok();
    assert!(summary(&run).contains("3 created"), "{}", run.stderr);
    assert_eq!(
        shared.rows("SELECT DISTINCT typeof(uuid) FROM core"),
        ["text"]
    );
    let products = shared.products("");
    for (i, uuid) in uuids.iter().enumerate() {
        let (kind, value) = typed(&products, &format!("N{i}"), "core.uuid");
        assert_eq!(kind, "uuid.UUID");
        assert_eq!(value.as_str().unwrap().replace('-', ""), *uuid);
        assert_eq!(
            typed(&products, &format!("N{i}"), "eo.cloud_cover").1,
            json!(12.5)
        );
    }
    let again = shared.sync(&[]);
    again.assert_ok();
    assert!(
        summary(&again).contains("0 created, 0 updated, 0 removed, 0 failed, 3 unchanged"),
        "{}",
        again.stderr
    );
}

/// tests/python/listing/plugin, built outside the workspace as a plugin
/// author builds it, once per test process.
fn listing_plugin() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, plugin) = BUILT.get_or_init(|| {
        let work = tempfile::tempdir().expect("temporary directory");
        let source = workspace().join("tests/python/listing/plugin");
        std::fs::create_dir_all(work.path().join("src")).unwrap();
        let manifest = std::fs::read_to_string(source.join("Cargo.toml"))
            .unwrap()
            .replace(
                "../../../../plugin-api",
                workspace().join("plugin-api").to_str().unwrap(),
            );
        std::fs::write(work.path().join("Cargo.toml"), manifest).unwrap();
        std::fs::copy(source.join("src/lib.rs"), work.path().join("src/lib.rs")).unwrap();
        // The workspace's lock file, for the workspace's versions; not
        // offline, so a machine that never built the project fetches
        // what it lacks.
        std::fs::copy(
            workspace().join("Cargo.lock"),
            work.path().join("Cargo.lock"),
        )
        .unwrap();
        let target = workspace().join("target/outside-plugins");
        let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(work.path())
            .args(["build", "--quiet"])
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("run cargo build for the listing plugin");
        assert!(
            output.status.success(),
            "building the listing plugin failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let kept = work.path().join("liblisting.so");
        std::fs::copy(target.join("debug/liblisting.so"), &kept).unwrap();
        (work, kept)
    });
    plugin
}

/// An archive for the listing synchronizer; its `s2.cfg` names the Python
/// module for muninn and the Rust plugin for muninn-sync.
fn listing_archive(backend: Backend, listing: &Path) -> Shared {
    let shared = Shared::empty(backend, "");
    shared.write_config(
        "synchronizers = listing",
        &format!(
            "[synchronizer:listing]
module = listing_sync
plugin = {plugin}
path = {listing}
product_type = S2MSI1C
",
            plugin = listing_plugin().display(),
            listing = listing.display(),
        ),
    );
    shared.tool("muninn-prepare", &["s2"]);
    shared
}

on_each_backend!(a_python_synchronizer_and_its_rust_port_sync_alike);
fn a_python_synchronizer_and_its_rust_port_sync_alike(backend: Backend) {
    // The side-by-side pair of docs/migrating-from-muninn.md: the same
    // command line, the same configuration file, the same listing, one
    // archive synced by muninn's muninn-sync with the Python module, the
    // other by ours with the plugin.
    let feeds = tempfile::tempdir().unwrap();
    let listing = feeds.path().join("listing.json");
    let python = listing_archive(backend, &listing);
    let rust = listing_archive(backend, &listing);
    let sync_both = |args: &[&str]| {
        let mut all = vec!["s2", "listing"];
        all.extend_from_slice(args);
        let run = python.muninn("muninn-sync", &all);
        assert_eq!(run.code, 0, "muninn's muninn-sync {all:?}:\n{}", run.stderr);
        rust.muninn_sync(&all).assert_ok();
    };
    let catalogue = |shared: &Shared| {
        shared.rows(
            "SELECT product_type, product_name, physical_name, CAST(active AS INTEGER), size, remote_url \
             FROM core ORDER BY product_name",
        )
    };
    let entry = |name: &str, modified: &str, size: i64| {
        json!({"name": name, "modified": modified, "size": size,
               "url": format!("https://example.org/{name}")})
    };

    std::fs::write(
        &listing,
        json!([
            entry("A", "2024-01-01T00:00:00", 1),
            entry("B", "2024-01-02T00:00:00", 2),
            entry("C", "2024-01-03T00:00:00", 3),
        ])
        .to_string(),
    )
    .unwrap();
    sync_both(&["--end", "2024-01-03"]);
    assert_eq!(catalogue(&rust), catalogue(&python));
    assert_eq!(
        catalogue(&rust),
        [
            "S2MSI1C|A|A|1|1|https://example.org/A",
            "S2MSI1C|B|B|1|2|https://example.org/B"
        ]
    );

    std::fs::write(
        &listing,
        json!([
            entry("C", "2024-01-03T00:00:00", 3),
            entry("A", "2024-01-04T00:00:00", 10),
            {"name": "B", "modified": "2024-01-05T00:00:00", "deleted": true},
        ])
        .to_string(),
    )
    .unwrap();
    sync_both(&["--start", "2024-01-03"]);
    assert_eq!(catalogue(&rust), catalogue(&python));
    assert_eq!(
        catalogue(&rust),
        [
            "S2MSI1C|A|A|1|10|https://example.org/A",
            "S2MSI1C|C|C|1|3|https://example.org/C"
        ]
    );
    // Each tool reads the other's catalogue: muninn the one ours wrote.
    assert_eq!(rust.count("size >= 3"), 2);
}
