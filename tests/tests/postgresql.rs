//! What only a PostgreSQL catalogue has, as a user meets it: the run lock
//! is an advisory lock in the server, so it holds between two hosts that
//! share nothing but the database; a muninn archive under a table_prefix;
//! and the errors of connecting and of the server itself, each naming the
//! server and the database, never a password, and writing nothing.
//!
//! Each test has databases of its own in the test process's private
//! cluster (muninn-sync-test-postgres).

use muninn_sync_e2e::{
    muninn_sync, outside_plugin, product, wait_until, Archive, Backend, Run, FEED_SECTION,
};
use muninn_sync_test_postgres::{cluster, TestDatabase};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// How long a test waits for a background run to get somewhere.
const PATIENCE: Duration = Duration::from_secs(60);

/// The password of the roles the tests make, which no output may show.
const SECRET: &str = "s3cret-Pa55word";

/// A section of the outside plugin creating `count` products slowly.
fn slow_section(count: usize, delay_ms: u64) -> String {
    let names: Vec<String> = (0..count).map(|i| format!("p{i:02}")).collect();
    format!(
        "[\"synchronizer:slow\"]\nmodule = \"{}\"\naction = \"slow\"\nproduct_type = \"OUT\"\nnames = {names:?}\ndelay_ms = {delay_ms}\n",
        outside_plugin().display()
    )
}

/// An archive configuration on `connection_string` with `sections`.
fn config(connection_string: &str, extra: &str, sections: &str) -> String {
    format!(
        "[archive]\ndatabase = \"postgresql\"\n\n[postgresql]\nconnection_string = \"{connection_string}\"\n{extra}\n{sections}"
    )
}

/// A directory of its own with `archive.toml`: another host's view of an
/// archive, sharing nothing with the first but the database.
fn another_host(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("archive.toml"), config).unwrap();
    dir
}

/// Asserts that no password appears in what a run printed.
fn assert_no_password(run: &Run, passwords: &[&str]) {
    for password in passwords {
        assert!(
            !run.stderr.contains(password) && !run.stdout.contains(password),
            "the password {password:?} was shown:\n{}{}",
            run.stdout,
            run.stderr
        );
    }
}

/// The tables of a database's public schema, less PostGIS's.
fn tables(database: &TestDatabase) -> Vec<String> {
    database
        .client()
        .query(
            "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = 'public' \
             AND tablename <> 'spatial_ref_sys' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// "127.0.0.1:PORT/DATABASE": how messages name a test database.
fn server_and_database(database: &TestDatabase) -> String {
    format!("127.0.0.1:{}/{}", cluster().port(), database.name())
}

/// Makes `database` refuse writes, as an operator makes a replica or an
/// archive kept for reference read-only.
fn make_read_only(database: &TestDatabase) {
    database
        .client()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET default_transaction_read_only = on",
            database.name()
        ))
        .unwrap();
}

#[test]
fn a_second_run_of_a_synchronizer_from_another_host_exits_75_naming_the_holder_or_waits() {
    let archive = Archive::on(
        Backend::Postgresql,
        &format!("{FEED_SECTION}\n{}", slow_section(20, 200)),
    );
    archive.write_feed("feed.jsonl", &[product("T", "A", "2024-01-01T10:00:00Z")]);
    // The second host has its own directory and configuration: no lock
    // file could be shared, only the server's lock.
    let host_b = another_host(&std::fs::read_to_string(archive.path("archive.toml")).unwrap());
    std::fs::copy(archive.path("feed.jsonl"), host_b.path().join("feed.jsonl")).unwrap();

    let slow = archive.start(&["slow"]);
    wait_until("the slow run holds its lock", PATIENCE, || {
        archive.lock_holder("slow").is_some()
    });
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let busy = muninn_sync(host_b.path(), &["archive.toml", "slow"], &[]);
    busy.assert_error(
        75,
        &[
            "synchronizer \"slow\" is already running",
            &format!(
                "\"muninn-sync slow pid {} on {}\"",
                slow.pid(),
                hostname.trim()
            ),
            // A plain address, not the inet's "127.0.0.1/32".
            "from 127.0.0.1, connected 20",
            &format!(
                "advisory lock in PostgreSQL catalogue {}",
                server_and_database(archive.database())
            ),
            "wait for it with --wait",
        ],
    );
    for dir in [archive.dir.path(), host_b.path()] {
        let files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            files.iter().all(|f| !f.contains("lock")),
            "a lock file: {files:?}"
        );
    }
    // Another synchronizer of the archive runs alongside, from either host.
    muninn_sync(host_b.path(), &["archive.toml", "feed"], &[]).assert_ok();
    // The same synchronizer of another archive in the same database (its
    // own table_prefix) is not held up: the lock is the archive's.
    let other = another_host(&config(
        &archive.database().connection_string(),
        "table_prefix = \"other_\"\n",
        &slow_section(2, 0),
    ));
    muninn_sync(other.path(), &["archive.toml", "slow"], &[]).assert_ok();

    // --wait waits for the first run to end, then runs.
    muninn_sync(host_b.path(), &["archive.toml", "slow", "--wait=0.5"], &[])
        .assert_error(75, &["is already running", "after waiting 0.5s"]);
    let waited = muninn_sync(host_b.path(), &["archive.toml", "slow", "--wait=120"], &[]);
    waited.assert_ok();
    slow.finish().assert_ok();
    assert_eq!(
        archive.rows(
            "SELECT outcome, created, unchanged FROM muninn_sync_runs WHERE synchronizer = 'slow' ORDER BY id"
        ),
        [["succeeded", "20", "0"], ["succeeded", "0", "20"]],
        "refused runs record nothing; the waiting one ran after the first had finished"
    );
    assert_eq!(
        archive.count(
            "SELECT count(*) FROM muninn_sync_runs a, muninn_sync_runs b \
             WHERE a.synchronizer = 'slow' AND b.synchronizer = 'slow' AND a.id < b.id AND b.started >= a.finished"
        ),
        1
    );
    assert_eq!(archive.lock_holder("slow"), None);
}

/// muninn 7.5's postgresql backend's tables under `prefix`, as
/// `muninn-prepare` makes them, with an `eo` namespace of muninn's and a
/// product muninn ingested.
const MUNINN_PREPARED: &str = "
CREATE TABLE s2_core (
    uuid UUID PRIMARY KEY, active BOOLEAN NOT NULL, hash TEXT, size BIGINT,
    metadata_date TIMESTAMP NOT NULL, archive_date TIMESTAMP, archive_path TEXT,
    product_type TEXT NOT NULL, product_name TEXT NOT NULL, physical_name TEXT NOT NULL,
    validity_start TIMESTAMP, validity_stop TIMESTAMP, creation_date TIMESTAMP,
    footprint GEOGRAPHY, remote_url TEXT,
    CONSTRAINT s2_core_archive_path_uniq UNIQUE (archive_path, physical_name),
    CONSTRAINT s2_core_product_name_uniq UNIQUE (product_type, product_name));
CREATE INDEX idx_s2_core_footprint ON s2_core USING GIST (footprint);
CREATE TABLE s2_link (id SERIAL PRIMARY KEY, uuid UUID NOT NULL REFERENCES s2_core (uuid) ON DELETE CASCADE,
    source_uuid UUID NOT NULL);
CREATE TABLE s2_tag (id SERIAL PRIMARY KEY, uuid UUID NOT NULL REFERENCES s2_core (uuid) ON DELETE CASCADE,
    tag TEXT NOT NULL);
CREATE TABLE s2_eo (uuid UUID PRIMARY KEY REFERENCES s2_core (uuid) ON DELETE CASCADE,
    cloud_cover DOUBLE PRECISION, platform TEXT);
INSERT INTO s2_core (uuid, active, metadata_date, archive_date, archive_path, product_type, product_name,
    physical_name, size)
    VALUES ('00000000-0000-0000-0000-000000000001', true, '2023-12-01 00:00:00', '2023-12-01 00:00:00',
    'S2/2023', 'S2MSI1C', 'INGESTED', 'INGESTED.SAFE', 42);
INSERT INTO s2_eo (uuid, cloud_cover, platform) VALUES ('00000000-0000-0000-0000-000000000001', 3.5, 'sentinel-2b');
";

#[test]
fn a_muninn_archive_under_a_table_prefix_is_synced_in_place() {
    let database = cluster().create_database("prefixed");
    database.client().batch_execute(MUNINN_PREPARED).unwrap();
    let dir = another_host(&config(
        &database.connection_string(),
        "table_prefix = \"s2_\"\n",
        FEED_SECTION,
    ));
    let feed: String = [
        product("S2MSI1C", "A", "2024-01-01T10:00:00Z"),
        product("S2MSI1C", "B", "2024-01-02T10:00:00Z"),
    ]
    .iter()
    .map(|line| format!("{line}\n"))
    .collect();
    std::fs::write(dir.path().join("feed.jsonl"), feed).unwrap();
    let run = muninn_sync(dir.path(), &["archive.toml", "feed"], &[]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("2 created, 0 updated, 0 removed, 0 failed"),
        "{}",
        run.stderr
    );
    let mut client = database.client();
    let rows: Vec<(String, Option<f64>, Option<String>)> = client
        .query(
            "SELECT c.product_name, e.cloud_cover, e.platform FROM s2_core c LEFT JOIN s2_eo e USING (uuid) ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            ("A".into(), Some(12.5), Some("sentinel-2a".into())),
            ("B".into(), Some(12.5), Some("sentinel-2a".into())),
            ("INGESTED".into(), Some(3.5), Some("sentinel-2b".into())),
        ]
    );
    // Our own tables beside muninn's, under the same prefix; nothing
    // outside it.
    assert_eq!(
        tables(&database),
        [
            "s2_core",
            "s2_eo",
            "s2_jsonl",
            "s2_link",
            "s2_muninn_sync_columns",
            "s2_muninn_sync_deletions",
            "s2_muninn_sync_meta",
            "s2_muninn_sync_owners",
            "s2_muninn_sync_runs",
            "s2_muninn_sync_watermarks",
            "s2_tag",
        ]
    );
    // muninn's product is nobody's, and stays as muninn made it.
    let list = muninn_sync(dir.path(), &["archive.toml", "--list"], &[]);
    list.assert_ok();
    assert!(
        list.stdout.contains("products nobody owns: 1"),
        "{}",
        list.stdout
    );
    let again = muninn_sync(dir.path(), &["archive.toml", "feed"], &[]);
    again.assert_ok();
    assert!(
        again
            .stderr
            .contains("0 created, 0 updated, 0 removed, 0 failed, 2 unchanged"),
        "{}",
        again.stderr
    );
    let ingested = client
        .query_one(
            "SELECT archive_path, size FROM s2_core WHERE product_name = 'INGESTED'",
            &[],
        )
        .unwrap();
    assert_eq!(
        (ingested.get::<_, String>(0), ingested.get::<_, i64>(1)),
        ("S2/2023".to_string(), 42)
    );
}

/// Runs `muninn-sync archive.toml feed` on `connection_string` in a fresh
/// directory, with `env`.
fn sync_on(connection_string: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, Run) {
    let dir = another_host(&config(connection_string, "", FEED_SECTION));
    std::fs::write(
        dir.path().join("feed.jsonl"),
        format!("{}\n", product("T", "A", "2024-01-01T10:00:00Z")),
    )
    .unwrap();
    let run = muninn_sync(dir.path(), &["archive.toml", "feed"], env);
    (dir, run)
}

#[test]
fn a_server_that_does_not_answer_is_named_with_its_database() {
    // A port nobody listens on: taken from the system, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_dir, run) = sync_on(
        &format!("host=127.0.0.1 port={port} user=muninn password={SECRET} dbname=archive"),
        &[],
    );
    run.assert_error(1, &[&format!("127.0.0.1:{port}"), "archive"]);
    assert_no_password(&run, &[SECRET]);
}

#[test]
fn a_wrong_password_is_refused_naming_the_user_and_where_it_came_from() {
    let database = cluster().create_database("passwords");
    let role = cluster().create_role("reader", SECRET);
    database.set_owner(&role);
    let plain = database.connection_string_as(&role);
    let wrong = "not-the-Pa55word";

    // In the connection string.
    let (_dir, run) = sync_on(&format!("{plain} password={wrong}"), &[]);
    run.assert_error(
        1,
        &[
            &server_and_database(&database),
            role.name(),
            "password authentication failed",
            "(the password came from the connection string)",
        ],
    );
    assert_no_password(&run, &[wrong, SECRET]);
    // In PGPASSWORD, as a URL's user without one.
    let (_dir, run) = sync_on(&database.url_as(&role), &[("PGPASSWORD", wrong)]);
    run.assert_error(
        1,
        &[
            &server_and_database(&database),
            role.name(),
            "(the password came from PGPASSWORD)",
        ],
    );
    assert_no_password(&run, &[wrong, SECRET]);
    // None at all.
    let (_dir, run) = sync_on(&plain, &[("PGPASSFILE", "/nonexistent/pgpass")]);
    run.assert_error(
        1,
        &[
            &server_and_database(&database),
            role.name(),
            "none was given",
        ],
    );
    assert_no_password(&run, &[SECRET]);
    assert_eq!(tables(&database), Vec::<String>::new(), "nothing written");

    // The right one, from PGPASSWORD: the sync goes ahead.
    let (_dir, run) = sync_on(&plain, &[("PGPASSWORD", SECRET)]);
    run.assert_ok();
    assert_no_password(&run, &[SECRET]);
}

#[test]
fn a_password_file_is_read_as_libpq_reads_it() {
    let database = cluster().create_database("pgpass");
    let role = cluster().create_role("pgpass", SECRET);
    database.set_owner(&role);
    let home = tempfile::tempdir().unwrap();
    let line = |password: &str| {
        format!(
            "# host:port:database:user:password\n127.0.0.1:{}:{}:{}:{password}\n",
            cluster().port(),
            database.name(),
            role.name()
        )
    };
    let write = |path: &Path, password: &str, mode: u32| {
        std::fs::write(path, line(password)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let plain = database.connection_string_as(&role);
    let home_str = home.path().to_str().unwrap();

    // ~/.pgpass, with a wrong password: refused, the file named.
    let pgpass = home.path().join(".pgpass");
    write(&pgpass, "wrong-one", 0o600);
    let (_dir, run) = sync_on(&plain, &[("HOME", home_str)]);
    run.assert_error(
        1,
        &[
            &server_and_database(&database),
            role.name(),
            &format!(
                "(the password came from the password file \"{}\")",
                pgpass.display()
            ),
        ],
    );
    assert_no_password(&run, &["wrong-one", SECRET]);
    // The right password in ~/.pgpass.
    write(&pgpass, SECRET, 0o600);
    let (_dir, run) = sync_on(&plain, &[("HOME", home_str)]);
    run.assert_ok();
    assert_no_password(&run, &[SECRET]);
    // PGPASSFILE names another file; one that others may read is not used.
    let elsewhere = home.path().join("passwords");
    write(&elsewhere, SECRET, 0o644);
    let passfile = elsewhere.to_str().unwrap();
    let (_dir, run) = sync_on(
        &plain,
        &[("HOME", "/nonexistent"), ("PGPASSFILE", passfile)],
    );
    run.assert_error(
        1,
        &[
            &server_and_database(&database),
            role.name(),
            &format!("password file \"{passfile}\" has group or world access"),
            "so it was not used",
        ],
    );
    assert_no_password(&run, &[SECRET]);
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_dir, run) = sync_on(
        &plain,
        &[("HOME", "/nonexistent"), ("PGPASSFILE", passfile)],
    );
    run.assert_ok();
    assert_no_password(&run, &[SECRET]);
}

#[test]
fn a_database_that_does_not_exist_is_named() {
    let database = cluster().create_database("exists");
    let missing = format!("{}_missing", database.name());
    let connection = database
        .connection_string()
        .replace(database.name(), &missing);
    let (_dir, run) = sync_on(&format!("{connection} password={SECRET}"), &[]);
    run.assert_error(
        1,
        &[
            &format!("127.0.0.1:{}/{missing}", cluster().port()),
            "does not exist",
        ],
    );
    assert_no_password(&run, &[SECRET]);
}

#[test]
fn a_database_without_postgis_says_how_to_install_it_and_writes_nothing() {
    let database = cluster().create_database_without_postgis("no_postgis");
    let (_dir, run) = sync_on(&database.connection_string(), &[]);
    run.assert_error(
        1,
        &[
            &server_and_database(&database),
            "PostGIS is not installed",
            "CREATE EXTENSION postgis",
        ],
    );
    assert_eq!(tables(&database), Vec::<String>::new());
}

#[test]
fn a_core_table_that_is_not_muninns_is_refused_and_left_alone() {
    let database = cluster().create_database("not_muninn");
    database
        .client()
        .batch_execute(
            "CREATE TABLE core (id SERIAL PRIMARY KEY, name TEXT, price NUMERIC);
             INSERT INTO core (name, price) VALUES ('chair', 42.50);",
        )
        .unwrap();
    let (_dir, run) = sync_on(&database.connection_string(), &[]);
    run.assert_error(
        1,
        &[
            &server_and_database(&database),
            "table core is not muninn's core table",
            "table_prefix",
        ],
    );
    assert_eq!(tables(&database), ["core"]);
    let row = database
        .client()
        .query_one("SELECT count(*), min(name) FROM core", &[])
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, String>(1)),
        (1, "chair".to_string())
    );
}

#[test]
fn a_read_only_database_is_refused_clearly_and_nothing_is_written() {
    let archive = Archive::with_feed_on(Backend::Postgresql);
    archive.write_feed("feed.jsonl", &[product("T", "A", "2024-01-01T10:00:00Z")]);
    archive.sync(&["feed"]).assert_ok();
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "B", "2024-01-02T10:00:00Z"),
        ],
    );
    let database = archive.database();
    make_read_only(database);
    let before = archive.snapshot();
    for args in [
        &["feed"][..],
        &["feed", "--dry-run"],
        &["feed", "--adopt", "-p", "T"],
    ] {
        let run = archive.sync(args);
        run.assert_error(
            1,
            &[
                &server_and_database(database),
                "accepts no writes",
                "default_transaction_read_only",
            ],
        );
    }
    assert_eq!(
        archive.snapshot(),
        before,
        "a read-only database was written"
    );

    // A database that does not exist yet as a catalogue: nothing created.
    let empty = cluster().create_database("read_only_empty");
    make_read_only(&empty);
    let (_dir, run) = sync_on(&empty.connection_string(), &[]);
    run.assert_error(1, &[&server_and_database(&empty), "accepts no writes"]);
    assert_eq!(tables(&empty), Vec::<String>::new());
}

#[test]
fn list_and_history_read_a_catalogue_on_a_read_only_server_that_a_sync_cannot_write() {
    let archive = Archive::with_feed_on(Backend::Postgresql);
    archive.write_feed("feed.jsonl", &[product("T", "A", "2024-01-01T10:00:00Z")]);
    archive.sync(&["feed"]).assert_ok();
    let database = archive.database();
    make_read_only(database);

    let list = archive.sync(&["--list"]);
    list.assert_ok();
    for expected in [
        format!(
            "catalogue postgresql {} as postgres\n",
            server_and_database(database)
        ),
        "\nfeed\n".into(),
        "  owns:      1 products".into(),
        "  last run:  #1 succeeded".into(),
        "1 created, 0 updated, 0 removed, 0 failed, 0 unchanged".into(),
    ] {
        assert!(
            list.stdout.contains(&expected),
            "{expected:?} not in:\n{}",
            list.stdout
        );
    }
    assert!(!list.stdout.contains("not created yet"), "{}", list.stdout);
    let history = archive.sync(&["--history"]);
    history.assert_ok();
    let lines: Vec<&str> = history.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", history.stdout);
    assert!(
        lines[1].starts_with("1    feed") && lines[1].contains("succeeded"),
        "{}",
        history.stdout
    );

    // A sync still may not go ahead, and says why and where.
    archive
        .sync(&["feed"])
        .assert_error(1, &[&server_and_database(database), "accepts no writes"]);
    assert_eq!(archive.count("SELECT count(*) FROM muninn_sync_runs"), 1);
}

#[test]
fn list_and_history_on_an_empty_database_say_there_is_no_catalogue_and_create_none() {
    let archive = Archive::with_feed_on(Backend::Postgresql);
    let database = archive.database();
    let no_runs = format!(
        "no runs recorded in the PostgreSQL catalogue {}",
        server_and_database(database)
    );
    // Reading never creates the catalogue, so a read-only server will do
    // as well as one that could take it.
    for read_only in [false, true] {
        if read_only {
            make_read_only(database);
        }
        let list = archive.sync(&["--list"]);
        list.assert_ok();
        assert!(
            list.stdout.contains(&format!(
                "catalogue postgresql {} as postgres (not created yet: no run so far)",
                server_and_database(database)
            )),
            "read-only {read_only}:\n{}",
            list.stdout
        );
        let history = archive.sync(&["--history"]);
        history.assert_ok();
        assert!(
            history.stdout.starts_with(&no_runs),
            "read-only {read_only}:\n{}",
            history.stdout
        );
        assert_eq!(
            tables(database),
            Vec::<String>::new(),
            "read-only {read_only}"
        );
    }
}
