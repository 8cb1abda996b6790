//! The cluster as the workspace's tests use it: databases of their own with
//! PostGIS, roles with passwords, connection strings that libpq and the
//! postgres crate both read.

use std::str::FromStr;
use std::time::Instant;

use muninn_sync_test_postgres::cluster;
use postgres::error::SqlState;

#[test]
fn starts_on_127_0_0_1_with_quick_settings_and_reports_its_timings() {
    let began = Instant::now();
    let cluster = cluster();
    let first_call = began.elapsed();
    let began = Instant::now();
    let database = cluster.create_database("timings");
    let one_database = began.elapsed();
    println!(
        "cluster started in {:?} (this call waited {first_call:?}); a PostGIS database in {one_database:?}",
        cluster.started_in()
    );

    assert_eq!(cluster.host(), "127.0.0.1");
    assert!(cluster.log_file().starts_with(cluster.run_dir()));
    let mut client = database.client();
    let setting = |client: &mut postgres::Client, name: &str| -> String {
        client
            .query_one(&format!("SHOW {name}"), &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(setting(&mut client, "listen_addresses"), "127.0.0.1");
    assert_eq!(setting(&mut client, "port"), cluster.port().to_string());
    assert_eq!(setting(&mut client, "fsync"), "off");
    assert_eq!(setting(&mut client, "server_encoding"), "UTF8");
    assert_eq!(setting(&mut client, "TimeZone"), "UTC");
    let version: i32 = setting(&mut client, "server_version_num").parse().unwrap();
    assert!(version >= 150000, "server version {version}");
}

#[test]
fn the_server_does_not_run_as_root() {
    let data = cluster().run_dir().join("data");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&data).unwrap());
    assert_ne!(owner, 0, "{} belongs to root", data.display());
    let mut client = cluster().client();
    let row = client
        .query_one(
            "SELECT setting FROM pg_settings WHERE name = 'data_directory'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), data.display().to_string());
}

#[test]
fn two_databases_are_independent() {
    let first = cluster().create_database("first");
    let second = cluster().create_database("first");
    assert_ne!(first.name(), second.name());

    first
        .client()
        .batch_execute("CREATE TABLE product (name text); INSERT INTO product VALUES ('a')")
        .unwrap();
    let error = second
        .client()
        .query("SELECT * FROM product", &[])
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::UNDEFINED_TABLE), "{error}");
    second
        .client()
        .batch_execute("CREATE TABLE product (name text)")
        .unwrap();
    let count: i64 = second
        .client()
        .query_one("SELECT count(*) FROM product", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}

#[test]
fn postgis_is_ready_in_every_database() {
    let database = cluster().create_database("postgis");
    let mut client = database.client();
    let text: String = client
        .query_one("SELECT ST_AsText(ST_GeogFromText('POINT(1 2)'))", &[])
        .unwrap()
        .get(0);
    assert_eq!(text, "POINT(1 2)");
    // muninn's core table: a geography column with a GIST index.
    client
        .batch_execute(
            "CREATE TABLE core (footprint geography);
             CREATE INDEX ON core USING GIST (footprint);
             INSERT INTO core VALUES ('SRID=4326;POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))')",
        )
        .unwrap();
    let hits: i64 = client
        .query_one(
            "SELECT count(*) FROM core WHERE ST_Intersects(footprint, 'POINT(0.5 0.5)'::geography)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(hits, 1);
}

#[test]
fn a_database_without_postgis_has_no_postgis() {
    let database = cluster().create_database_without_postgis("plain");
    let error = database
        .client()
        .query("SELECT 'POINT(1 2)'::geography", &[])
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::UNDEFINED_OBJECT), "{error}");
}

#[test]
fn a_password_role_is_refused_without_its_password() {
    let database = cluster().create_database("passwords");
    let role = cluster().create_role("it's a reader", "s3cret 'quoted'");
    assert!(role.name().starts_with("it_s_a_reader_"), "{}", role.name());

    let mut client = database.connect_as(role.name(), role.password()).unwrap();
    let user: String = client.query_one("SELECT current_user", &[]).unwrap().get(0);
    assert_eq!(user, role.name());

    let Err(wrong) = database.connect_as(role.name(), "wrong") else {
        panic!("a wrong password was accepted");
    };
    assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD), "{wrong}");
    let Err(none) =
        postgres::Client::connect(&database.connection_string_as(&role), postgres::NoTls)
    else {
        panic!("no password was accepted");
    };
    assert!(format!("{none:?}").contains("password missing"), "{none:?}");
}

#[test]
fn a_role_given_the_database_can_create_tables_in_it() {
    let database = cluster().create_database("owned");
    let role = cluster().create_role("writer", "pw");
    let mut client = database.connect_as(role.name(), role.password()).unwrap();
    let refused = client
        .batch_execute("CREATE TABLE t (g geography)")
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{refused}"
    );

    database.set_owner(&role);
    let mut client = database.connect_as(role.name(), role.password()).unwrap();
    client
        .batch_execute("CREATE TABLE t (g geography); INSERT INTO t VALUES ('POINT(1 2)')")
        .unwrap();
}

#[test]
fn connection_string_and_url_reach_the_same_database() {
    let database = cluster().create_database("forms");
    assert_eq!(
        database.connection_string(),
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={}",
            cluster().port(),
            database.name()
        )
    );
    assert_eq!(
        database.url(),
        format!(
            "postgresql://postgres@127.0.0.1:{}/{}",
            cluster().port(),
            database.name()
        )
    );
    for form in [database.connection_string(), database.url()] {
        let config = postgres::Config::from_str(&form).unwrap();
        let mut client = config.connect(postgres::NoTls).unwrap();
        let name: String = client
            .query_one("SELECT current_database()", &[])
            .unwrap()
            .get(0);
        assert_eq!(name, database.name(), "{form}");
    }
}

#[test]
fn a_test_can_make_its_database_refuse_writes() {
    let database = cluster().create_database("read_only");
    database
        .client()
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            database.name()
        ))
        .unwrap();
    let error = database
        .client()
        .batch_execute("CREATE TABLE t (x int)")
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
        "{error}"
    );
}

#[test]
fn a_dropped_database_is_gone() {
    let database = cluster().create_database("dropped");
    let name = database.name().to_owned();
    let _session = database.client();
    drop(database);
    let left: i64 = cluster()
        .client()
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[test]
fn tests_on_many_threads_get_their_databases_at_once() {
    let names: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let database = cluster().create_database("parallel");
                    let mut client = database.client();
                    client
                        .batch_execute("CREATE TABLE t (g geography)")
                        .unwrap();
                    database.name().to_owned()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .collect()
    });
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
}
