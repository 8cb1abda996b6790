//! The PostgreSQL catalogue as muninn's tools and users' SQL see it, on a
//! private server the tests start (see muninn-sync-test-postgres).

use muninn_sync_catalogue::{
    Catalogue, ChangeKind, Namespaces, PostgresCatalogue, PostgresOptions, RunCounts, RunLog,
    RunStart, ScanQuery, WalkQuery, Watermarks,
};
use muninn_sync_model::{parse_timestamp, CoreField, Geometry, Product, Update, Uuid, Value};
use muninn_sync_test_postgres::{cluster, TestDatabase};
use std::collections::BTreeMap;

fn options(database: &TestDatabase) -> PostgresOptions {
    PostgresOptions {
        connection_string: database.connection_string(),
        table_prefix: String::new(),
    }
}

fn product(name: &str) -> Product {
    let mut p = Product::new("S2MSI1C", name);
    p.physical_name = format!("{name}.SAFE");
    p.size = Some(812345678);
    p.hash = Some("md5:9e107d9d372bb6826bd81d3542a419d6".into());
    p.validity_start = Some(parse_timestamp("2024-01-02T10:00:00Z").unwrap());
    p.validity_stop = Some(parse_timestamp("2024-01-02T10:00:10.5Z").unwrap());
    p.remote_url = Some(format!("https://example.org/p/{name}"));
    // Digits a 15-digit WKT would lose.
    p.footprint = Some(
        Geometry::from_wkt(
            "POLYGON((-11.974999865007275 52.000000000000002, 6 52, 6 53, 5 53, -11.974999865007275 52.000000000000002))",
        )
        .unwrap(),
    );
    p.namespaces.insert(
        "eo".into(),
        [
            ("cloud_cover".to_string(), Value::Real(12.5)),
            ("platform".to_string(), Value::from("sentinel-2a")),
            ("orbit".to_string(), Value::Integer(3)),
            (
                "extra".to_string(),
                Value::Json(serde_json::json!({"a": [1, 2.5, null]})),
            ),
        ]
        .into(),
    );
    p
}

fn stored(catalogue: &PostgresCatalogue, name: &str) -> Option<Product> {
    catalogue
        .products_by_name("S2MSI1C", &[name], &Namespaces::All)
        .unwrap()
        .pop()
        .unwrap()
}

#[test]
fn products_are_stored_in_muninns_postgresql_layout_and_read_back_as_written() {
    let database = cluster().create_database("layout");
    let mut catalogue = PostgresCatalogue::open(&options(&database)).unwrap();
    let p = product("A");
    catalogue.create(&p).unwrap();
    assert!(catalogue.flush().unwrap().is_empty());
    catalogue.commit().unwrap();

    let mut client = database.client();
    let types: BTreeMap<String, String> = client
        .query(
            "SELECT column_name, udt_name FROM information_schema.columns WHERE table_name = 'core'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(types["uuid"], "uuid");
    assert_eq!(types["active"], "bool");
    assert_eq!(types["size"], "int8");
    assert_eq!(types["validity_start"], "timestamp");
    assert_eq!(types["footprint"], "geography");
    let constraints: Vec<String> = client
        .query(
            "SELECT conname::text FROM pg_constraint WHERE conrelid = 'core'::regclass ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        constraints,
        [
            "core_archive_path_uniq",
            "core_pkey",
            "core_product_name_uniq"
        ]
    );
    let gist: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'core' AND indexdef LIKE '%USING gist (footprint)%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(gist, 1);
    let row = client
        .query_one(
            "SELECT uuid::text, validity_stop::text, ST_AsText(footprint, 17), \
             (SELECT cloud_cover FROM eo), (SELECT extra::text FROM eo) FROM core",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), p.uuid.hyphenated().to_string());
    assert_eq!(row.get::<_, String>(1), "2024-01-02 10:00:10.5");
    assert!(
        row.get::<_, String>(2).contains("-11.974999865007275 52"),
        "{}",
        row.get::<_, String>(2)
    );
    assert_eq!(row.get::<_, f64>(3), 12.5);
    assert_eq!(row.get::<_, String>(4), r#"{"a": [1, 2.5, null]}"#);
    // The namespace table is muninn's: uuid its primary key, referencing core.
    let cascades: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'eo'::regclass AND contype = 'f' AND confdeltype = 'c'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(cascades, 1);

    let found = stored(&catalogue, "A").unwrap();
    let mut expected = p.clone();
    expected.metadata_date = found.metadata_date;
    assert!(found.metadata_date.is_some());
    assert_eq!(found, expected);
}

/// A product named `name` that another tool's session committed, under
/// another uuid than [`product`] gives that name.
fn made_by_another_tool(database: &TestDatabase, name: &str) -> Product {
    let mut other = product(name);
    other.uuid = Uuid::from_u128(7);
    let mut second = PostgresCatalogue::open(&options(database)).unwrap();
    second.create(&other).unwrap();
    second.commit().unwrap();
    other
}

#[test]
fn a_duplicate_refused_at_the_write_is_reported_and_the_rest_of_the_batch_kept() {
    let database = cluster().create_database("refused");
    let mut catalogue = PostgresCatalogue::open(&options(&database)).unwrap();
    let a = product("A");
    catalogue.create(&a).unwrap();
    catalogue.commit().unwrap();

    // Another tool made "B" meanwhile, under another uuid.
    let other = made_by_another_tool(&database, "B");

    let b = product("B");
    let c = product("C");
    catalogue.create(&b).unwrap();
    catalogue.create(&c).unwrap();
    catalogue.claim(&[b.uuid, c.uuid], "s").unwrap();
    let mut update = Update::new(Uuid::from_u128(99));
    update.core.insert(CoreField::Size, Some(Value::Integer(1)));
    catalogue.update(&update).unwrap();
    let refused = catalogue.flush().unwrap();
    catalogue.commit().unwrap();
    assert_eq!(refused.len(), 2, "{refused:?}");
    let create = refused.iter().find(|r| r.change == ChangeKind::Create);
    let create = create.expect("the create of B is refused");
    assert_eq!(create.product, "S2MSI1C/B");
    assert!(
        create.message.contains("core_product_name_uniq"),
        "{}",
        create.message
    );
    let update = refused.iter().find(|r| r.change == ChangeKind::Update);
    let update = update.expect("the update of a missing product is refused");
    assert_eq!(update.uuid, Uuid::from_u128(99));
    assert!(update.message.contains("no product with uuid"));
    assert!(stored(&catalogue, "C").is_some());
    assert_eq!(stored(&catalogue, "B").unwrap().uuid, other.uuid);
    assert_eq!(
        catalogue.owners(&[b.uuid, c.uuid]).unwrap(),
        [None, Some("s".to_string())]
    );
}

#[test]
fn an_owner_record_of_a_product_refused_earlier_in_the_batch_is_left_out() {
    // The host records owners at the batch's end, after a write in the
    // middle of the batch may have refused a product: its owner record
    // must not fail the batch (the product is not there to own).
    let database = cluster().create_database("late_claim");
    let other = made_by_another_tool(&database, "B");

    let mut catalogue = PostgresCatalogue::open(&options(&database)).unwrap();
    let b = product("B");
    let c = product("C");
    catalogue.create(&b).unwrap();
    catalogue.create(&c).unwrap();
    let refused = catalogue.flush().unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    catalogue.claim(&[b.uuid, c.uuid], "s").unwrap();
    assert_eq!(catalogue.flush().unwrap(), []);
    catalogue.commit().unwrap();
    assert_eq!(
        catalogue.owners(&[b.uuid, c.uuid, other.uuid]).unwrap(),
        [None, Some("s".to_string()), None]
    );
}

#[test]
fn a_new_product_takes_the_name_a_held_back_rename_gave_up() {
    let database = cluster().create_database("rename_then_create");
    let mut catalogue = PostgresCatalogue::open(&options(&database)).unwrap();
    let a = product("X");
    catalogue.create(&a).unwrap();
    catalogue.commit().unwrap();
    // Renamed and replaced in one batch, without a look-up between.
    rename_and_replace(&mut catalogue, a.uuid, "X", 42);

    // Created, renamed and its name taken by another, all in one batch.
    let mut y = product("Y");
    y.uuid = Uuid::from_u128(43);
    catalogue.create(&y).unwrap();
    rename_and_replace(&mut catalogue, y.uuid, "Y", 44);
}

/// In the open batch: renames product `uuid` from `name` to `name-old`,
/// creates a product `name` with uuid `replacement`, commits, and checks
/// that both are stored under their names and nothing was refused.
fn rename_and_replace(
    catalogue: &mut PostgresCatalogue,
    uuid: Uuid,
    name: &str,
    replacement: u128,
) {
    let old_name = format!("{name}-old");
    let mut rename = Update::new(uuid);
    rename
        .core
        .insert(CoreField::ProductName, Some(Value::Text(old_name.clone())));
    catalogue.update(&rename).unwrap();
    let mut new = product(name);
    new.uuid = Uuid::from_u128(replacement);
    catalogue.create(&new).unwrap();
    assert_eq!(catalogue.flush().unwrap(), []);
    catalogue.commit().unwrap();
    assert_eq!(stored(catalogue, name).unwrap().uuid, new.uuid);
    assert_eq!(stored(catalogue, &old_name).unwrap().uuid, uuid);
}

#[test]
fn a_value_out_of_a_muninn_columns_range_refuses_that_product_only() {
    let database = cluster().create_database("range");
    let mut catalogue = PostgresCatalogue::open(&options(&database)).unwrap();
    catalogue.commit().unwrap();
    // A namespace muninn-prepare made, with muninn's 32-bit Integer.
    database
        .client()
        .batch_execute(
            "CREATE TABLE s2 (uuid UUID PRIMARY KEY REFERENCES core (uuid) ON DELETE CASCADE, orbit INTEGER)",
        )
        .unwrap();
    let mut catalogue = PostgresCatalogue::open(&options(&database)).unwrap();
    let mut big = Product::new("S2MSI1C", "BIG");
    big.namespaces.insert(
        "s2".into(),
        [("orbit".to_string(), Value::Integer(1 << 40))].into(),
    );
    let mut small = Product::new("S2MSI1C", "SMALL");
    small.namespaces.insert(
        "s2".into(),
        [("orbit".to_string(), Value::Integer(7))].into(),
    );
    catalogue.create(&big).unwrap();
    catalogue.create(&small).unwrap();
    let refused = catalogue.flush().unwrap();
    catalogue.commit().unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].product, "S2MSI1C/BIG");
    assert!(
        refused[0].message.contains("out of range"),
        "{}",
        refused[0].message
    );
    assert!(stored(&catalogue, "BIG").is_none(), "nothing of it is left");
    assert_eq!(
        stored(&catalogue, "SMALL").unwrap().namespaces["s2"]["orbit"],
        Value::Integer(7)
    );
}

#[test]
fn namespace_columns_widen_and_refuse_case_clashes_as_on_sqlite() {
    let database = cluster().create_database("widen");
    let mut catalogue = PostgresCatalogue::open(&options(&database)).unwrap();
    let a = product("A");
    catalogue.create(&a).unwrap();
    catalogue.commit().unwrap();
    let mut update = Update::new(a.uuid);
    update.namespaces.insert(
        "eo".into(),
        Some([("orbit".to_string(), Some(Value::Real(3.5)))].into()),
    );
    catalogue.update(&update).unwrap();
    assert!(catalogue.flush().unwrap().is_empty());
    catalogue.commit().unwrap();
    assert_eq!(
        stored(&catalogue, "A").unwrap().namespaces["eo"]["orbit"],
        Value::Real(3.5)
    );
    let mut clash = product("B");
    clash
        .namespaces
        .get_mut("eo")
        .unwrap()
        .insert("Orbit".into(), Value::Integer(1));
    let error = catalogue.create(&clash).unwrap_err();
    assert!(error.is_product_error());
    assert!(error.to_string().contains("ignore case"), "{error}");
}

#[test]
fn walks_and_scans_page_by_time_and_uuid() {
    let database = cluster().create_database("walk");
    let mut catalogue = PostgresCatalogue::open(&options(&database)).unwrap();
    for (name, time) in [
        ("A", "2024-01-01T00:00:00Z"),
        ("B", "2024-01-01T00:00:00Z"),
        ("C", "2024-01-03T00:00:00Z"),
    ] {
        let mut p = product(name);
        p.validity_start = Some(parse_timestamp(time).unwrap());
        p.namespaces.get_mut("eo").unwrap().insert(
            "seen".into(),
            Value::Timestamp(parse_timestamp(time).unwrap()),
        );
        catalogue.create(&p).unwrap();
    }
    let query = |after| WalkQuery {
        product_type: "S2MSI1C".into(),
        property: "validity_start".into(),
        start: Some(parse_timestamp("2024-01-01T00:00:00Z").unwrap()),
        end: Some(parse_timestamp("2024-01-04T00:00:00Z").unwrap()),
        after,
        limit: 2,
    };
    let first = catalogue.walk(&query(None), &Namespaces::All).unwrap();
    assert_eq!(first.len(), 2);
    let last = first.last().unwrap();
    let rest = catalogue
        .walk(
            &query(Some((last.validity_start.unwrap(), last.uuid))),
            &Namespaces::All,
        )
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].product_name, "C");
    let rows = catalogue
        .scan(&ScanQuery {
            namespace: "eo".into(),
            order_by: "seen".into(),
            properties: vec!["platform".into(), "nothing".into()],
            start: None,
            end: Some(parse_timestamp("2024-01-02T00:00:00Z").unwrap()),
            after: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].values, [Some(Value::from("sentinel-2a")), None]);
    assert!(rows[0].uuid < rows[1].uuid);
}

#[test]
fn watermarks_commit_with_the_batch_and_never_go_back() {
    let database = cluster().create_database("watermarks");
    let mut catalogue = PostgresCatalogue::open(&options(&database)).unwrap();
    let run = catalogue
        .begin_run(&RunStart {
            synchronizer: "s".into(),
            plugin: "p 1".into(),
            product_types: Some(vec!["S2MSI1C".into()]),
            window_start: None,
            window_end: None,
            incremental: false,
            force: false,
            started: chrono::Utc::now(),
            pid: 42,
            hostname: "h".into(),
        })
        .unwrap();
    let at =
        |t: &str| -> Watermarks { [("S2MSI1C".to_string(), parse_timestamp(t).unwrap())].into() };
    catalogue.create(&product("A")).unwrap();
    catalogue
        .record_progress(
            run,
            &RunCounts {
                created: 1,
                ..Default::default()
            },
            &at("2024-02-01T00:00:00Z"),
        )
        .unwrap();
    catalogue.rollback().unwrap();
    assert!(
        catalogue.watermarks("s").unwrap().is_empty(),
        "rolled back with the batch"
    );
    catalogue
        .record_progress(run, &RunCounts::default(), &at("2024-02-01T00:00:00Z"))
        .unwrap();
    catalogue.commit().unwrap();
    catalogue
        .record_progress(run, &RunCounts::default(), &at("2024-01-01T00:00:00Z"))
        .unwrap();
    catalogue.commit().unwrap();
    assert_eq!(
        catalogue.watermarks("s").unwrap(),
        at("2024-02-01T00:00:00Z")
    );
    let runs = catalogue.runs(Some("s"), 5).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].start.pid, 42);
    assert_eq!(
        runs[0].start.product_types,
        Some(vec!["S2MSI1C".to_string()])
    );
}

#[test]
fn a_dry_run_leaves_an_empty_database_empty() {
    let database = cluster().create_database("dry");
    let mut catalogue = PostgresCatalogue::open_for_dry_run(&options(&database)).unwrap();
    catalogue.create(&product("A")).unwrap();
    assert!(
        stored(&catalogue, "A").is_some(),
        "the dry run sees its own batch"
    );
    catalogue.commit().unwrap();
    assert!(stored(&catalogue, "A").is_none(), "and nothing after it");
    drop(catalogue);
    let tables: i64 = database
        .client()
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'spatial_ref_sys'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
}

#[test]
fn a_catalogue_under_a_schema_prefix_is_found_again() {
    let database = cluster().create_database("prefix");
    database
        .client()
        .batch_execute("CREATE SCHEMA archive")
        .unwrap();
    let options = PostgresOptions {
        connection_string: database.connection_string(),
        table_prefix: "archive.s2_".into(),
    };
    let mut catalogue = PostgresCatalogue::open(&options).unwrap();
    catalogue.create(&product("A")).unwrap();
    catalogue.commit().unwrap();
    drop(catalogue);
    let catalogue = PostgresCatalogue::open(&options).unwrap();
    let found = stored(&catalogue, "A").unwrap();
    assert_eq!(
        found.namespaces["eo"]["platform"],
        Value::from("sentinel-2a")
    );
    let count: i64 = database
        .client()
        .query_one("SELECT count(*) FROM archive.s2_eo", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[test]
fn errors_name_what_is_wrong_and_where() {
    let without = cluster().create_database_without_postgis("nopostgis");
    let error = PostgresCatalogue::open(&options(&without))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("PostGIS is not installed"), "{error}");
    assert!(error.contains(without.name()), "{error}");

    let other = cluster().create_database("notmuninn");
    other
        .client()
        .batch_execute("CREATE TABLE core (id serial, name text)")
        .unwrap();
    let error = format!(
        "{:#}",
        PostgresCatalogue::open(&options(&other)).err().unwrap()
    );
    assert!(error.contains("is not muninn's core table"), "{error}");

    let read_only = cluster().create_database("readonly");
    read_only
        .client()
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            read_only.name()
        ))
        .unwrap();
    let error = format!(
        "{:#}",
        PostgresCatalogue::open(&options(&read_only)).err().unwrap()
    );
    assert!(error.contains("accepts no writes"), "{error}");
}

/// One product by uuid, with every namespace.
fn stored_by_uuid(catalogue: &PostgresCatalogue, uuid: Uuid) -> Option<Product> {
    catalogue
        .products_by_uuid(&[uuid], &Namespaces::All)
        .unwrap()
        .pop()
        .unwrap()
}

/// A change of one core field and one `eo` property.
fn update_of(uuid: Uuid, field: CoreField, value: Value, property: &str, to: Value) -> Update {
    let mut update = Update::new(uuid);
    update.core.insert(field, Some(value));
    update
        .namespaces
        .insert("eo".into(), Some([(property.to_string(), Some(to))].into()));
    update
}

/// The store holds creates, updates and owner records back and writes them
/// when a read touches them: every read below comes before any commit, so
/// each would see the catalogue as it was had its own flush not happened.
#[test]
fn reads_in_a_batch_see_what_it_holds_back_and_a_second_create_is_refused_at_once() {
    let database = cluster().create_database("held_back");
    let mut catalogue = PostgresCatalogue::open(&options(&database)).unwrap();
    let a = product("A");
    let b = product("B");
    catalogue.create(&a).unwrap();
    catalogue.create(&b).unwrap();

    // While A's create is held back, a second create of its uuid or of its
    // name is refused at once, as on SQLite, not at the flush.
    let mut same_uuid = product("A-again");
    same_uuid.uuid = a.uuid;
    let mut same_name = product("A");
    same_name.uuid = Uuid::from_u128(7);
    for duplicate in [&same_uuid, &same_name] {
        let error = catalogue.create(duplicate).unwrap_err();
        assert!(error.is_product_error(), "{error}");
        assert!(
            error
                .to_string()
                .contains("the catalogue already has a product"),
            "{error}"
        );
    }

    // A held-back create, found by its name.
    let found = stored(&catalogue, "A").expect("the held-back create is read");
    let mut expected = a.clone();
    expected.metadata_date = found.metadata_date;
    assert_eq!(found, expected);

    // A held-back update of a product found by its name: the look-up
    // reads it again once the update is written.
    catalogue
        .update(&update_of(
            a.uuid,
            CoreField::Size,
            Value::Integer(1),
            "cloud_cover",
            Value::Real(55.0),
        ))
        .unwrap();
    let found = stored(&catalogue, "A").unwrap();
    assert_eq!(found.size, Some(1));
    assert_eq!(found.namespaces["eo"]["cloud_cover"], Value::Real(55.0));
    assert_eq!(
        found.namespaces["eo"]["platform"],
        Value::from("sentinel-2a")
    );

    // And one looked up by uuid.
    catalogue
        .update(&update_of(
            a.uuid,
            CoreField::RemoteUrl,
            Value::from("https://example.org/moved/A"),
            "platform",
            Value::from("sentinel-2c"),
        ))
        .unwrap();
    let found = stored_by_uuid(&catalogue, a.uuid).unwrap();
    assert_eq!(
        found.remote_url.as_deref(),
        Some("https://example.org/moved/A")
    );
    assert_eq!(
        found.namespaces["eo"]["platform"],
        Value::from("sentinel-2c")
    );
    assert_eq!(found.namespaces["eo"]["cloud_cover"], Value::Real(55.0));

    // A held-back rename: found by the new name (asked alone, so that
    // nothing found by the old name brings the update out), not the old.
    let mut rename = Update::new(b.uuid);
    rename
        .core
        .insert(CoreField::ProductName, Some(Value::from("B-renamed")));
    catalogue.update(&rename).unwrap();
    assert_eq!(
        stored(&catalogue, "B-renamed").map(|p| p.uuid),
        Some(b.uuid)
    );
    assert_eq!(stored(&catalogue, "B"), None);

    // A held-back owner record.
    catalogue.claim(&[a.uuid], "s").unwrap();
    assert_eq!(
        catalogue.owners(&[a.uuid]).unwrap(),
        [Some("s".to_string())]
    );

    assert_eq!(catalogue.flush().unwrap(), [], "nothing was refused");
    catalogue.commit().unwrap();

    // Committed as the batch read it, the refused duplicates nowhere.
    let reader = PostgresCatalogue::open(&options(&database)).unwrap();
    let a_stored = stored(&reader, "A").unwrap();
    assert_eq!(a_stored.uuid, a.uuid);
    assert_eq!(a_stored.size, Some(1));
    assert_eq!(
        a_stored.namespaces["eo"]["platform"],
        Value::from("sentinel-2c")
    );
    assert_eq!(stored(&reader, "A-again"), None);
    assert_eq!(stored_by_uuid(&reader, same_name.uuid), None);
    assert_eq!(stored(&reader, "B-renamed").unwrap().uuid, b.uuid);
    assert_eq!(stored(&reader, "B"), None);
    assert_eq!(
        reader.owners(&[a.uuid, b.uuid]).unwrap(),
        [Some("s".to_string()), None]
    );
}

/// A removal writes what the batch holds back for that product first: its
/// held-back update is not left to fail on a product no longer there, nor
/// its owner record to outlive it.
#[test]
fn a_product_removed_with_changes_held_back_is_removed_and_nothing_refused() {
    let database = cluster().create_database("remove_held");
    let mut catalogue = PostgresCatalogue::open(&options(&database)).unwrap();
    let a = product("A");
    let b = product("B");
    catalogue.create(&a).unwrap();
    catalogue.create(&b).unwrap();
    catalogue.commit().unwrap();

    catalogue.claim(&[b.uuid], "s").unwrap();
    assert!(catalogue.remove(b.uuid).unwrap());
    catalogue
        .update(&update_of(
            a.uuid,
            CoreField::Size,
            Value::Integer(1),
            "cloud_cover",
            Value::Real(55.0),
        ))
        .unwrap();
    assert!(catalogue.remove(a.uuid).unwrap());
    assert_eq!(catalogue.flush().unwrap(), [], "nothing was refused");
    catalogue.commit().unwrap();

    let reader = PostgresCatalogue::open(&options(&database)).unwrap();
    assert_eq!(
        reader
            .products_by_uuid(&[a.uuid, b.uuid], &Namespaces::All)
            .unwrap(),
        [None, None]
    );
    assert_eq!(reader.owners(&[a.uuid, b.uuid]).unwrap(), [None, None]);
    let rows: i64 = database
        .client()
        .query_one(
            "SELECT (SELECT count(*) FROM core) + (SELECT count(*) FROM eo) \
             + (SELECT count(*) FROM muninn_sync_owners)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}
