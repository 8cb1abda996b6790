//! The catalogue as muninn's tools and users' SQL see it.

use muninn_sync_catalogue::{
    Catalogue, CatalogueError, FootprintFormat, Namespaces, SqliteCatalogue, SqliteOptions,
    WalkQuery,
};
use muninn_sync_model::{parse_timestamp, CoreField, Geometry, Product, Update, Value};
use rusqlite::Connection;
use std::path::Path;

fn options(path: &Path) -> SqliteOptions {
    SqliteOptions::new(path)
}

fn without_spatialite(path: &Path) -> SqliteOptions {
    let mut options = SqliteOptions::new(path);
    options.mod_spatialite_path = "/nonexistent/mod_spatialite.so".into();
    options
}

fn product(name: &str) -> Product {
    let mut p = Product::new("S2MSI1C", name);
    p.physical_name = format!("{name}.SAFE");
    p.size = Some(812345678);
    p.hash = Some("md5:9e107d9d372bb6826bd81d3542a419d6".into());
    p.validity_start = Some(parse_timestamp("2024-01-02T10:00:00Z").unwrap());
    p.validity_stop = Some(parse_timestamp("2024-01-02T10:00:10.5Z").unwrap());
    p.remote_url = Some(format!("https://example.org/p/{name}"));
    p.footprint = Some(Geometry::from_wkt("POLYGON((5 52, 6 52, 6 53, 5 53, 5 52))").unwrap());
    p.namespaces.insert(
        "eo".into(),
        [
            ("cloud_cover".to_string(), Value::Real(12.5)),
            ("platform".to_string(), Value::from("sentinel-2a")),
        ]
        .into(),
    );
    p
}

fn all() -> Namespaces {
    Namespaces::All
}

#[test]
fn created_products_use_muninns_layout_and_spatialite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cat.sqlite");
    let mut catalogue = SqliteCatalogue::open(&options(&db)).unwrap();
    assert_eq!(catalogue.footprint_format(), FootprintFormat::Spatialite);
    let p = product("A");
    catalogue.create(&p).unwrap();
    catalogue.commit().unwrap();
    drop(catalogue);

    let conn = Connection::open(&db).unwrap();
    let (uuid, active, start, stop, metadata_date, kind): (String, i64, String, String, String, String) = conn
        .query_row(
            "SELECT uuid, active, validity_start, validity_stop, metadata_date, typeof(footprint) FROM core",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!(uuid, p.uuid.simple().to_string());
    assert_eq!(uuid.len(), 32);
    assert_eq!(active, 1);
    assert_eq!(start, "2024-01-02 10:00:00");
    assert_eq!(stop, "2024-01-02 10:00:10.500000");
    assert!(parse_timestamp(&metadata_date).is_ok(), "{metadata_date}");
    assert_eq!(kind, "blob");
    let registered: i64 = conn
        .query_row(
            "SELECT count(*) FROM geometry_columns WHERE f_table_name = 'core' AND f_geometry_column = 'footprint' AND srid = 4326",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(registered, 1);
    let cloud: f64 = conn
        .query_row("SELECT cloud_cover FROM eo", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cloud, 12.5);
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_core_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 11);

    let catalogue = SqliteCatalogue::open(&options(&db)).unwrap();
    let found = catalogue
        .products_by_name("S2MSI1C", &["A", "B"], &all())
        .unwrap();
    let mut expected = p.clone();
    expected.metadata_date = found[0].as_ref().unwrap().metadata_date;
    assert_eq!(found, vec![Some(expected), None]);
}

#[test]
fn spatial_index_answers_queries_with_spatialite_functions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cat.sqlite");
    let mut catalogue = SqliteCatalogue::open(&options(&db)).unwrap();
    catalogue.create(&product("A")).unwrap();
    catalogue.commit().unwrap();
    let text: String = catalogue
        .connection()
        .query_row("SELECT AsText(footprint) FROM core", [], |r| r.get(0))
        .unwrap();
    assert_eq!(text, "POLYGON((5 52, 6 52, 6 53, 5 53, 5 52))");
    let hits: i64 = catalogue
        .connection()
        .query_row(
            "SELECT count(*) FROM core WHERE rowid IN (SELECT pkid FROM idx_core_footprint WHERE xmin <= 5.5 AND xmax >= 5.5 AND ymin <= 52.5 AND ymax >= 52.5)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hits, 1);
}

#[test]
fn without_spatialite_a_new_catalogue_stores_wkt_and_keeps_doing_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cat.sqlite");
    let mut catalogue = SqliteCatalogue::open(&without_spatialite(&db)).unwrap();
    assert_eq!(catalogue.footprint_format(), FootprintFormat::Wkt);
    catalogue.create(&product("A")).unwrap();
    catalogue.commit().unwrap();
    drop(catalogue);
    // Reopened where SpatiaLite loads: the file keeps its format.
    let mut catalogue = SqliteCatalogue::open(&options(&db)).unwrap();
    assert_eq!(catalogue.footprint_format(), FootprintFormat::Wkt);
    catalogue.create(&product("B")).unwrap();
    catalogue.commit().unwrap();
    let footprints: Vec<String> = catalogue
        .connection()
        .prepare("SELECT footprint FROM core ORDER BY product_name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        footprints,
        vec!["POLYGON((5 52, 6 52, 6 53, 5 53, 5 52))"; 2]
    );
    let format: String = catalogue
        .connection()
        .query_row(
            "SELECT value FROM muninn_sync_meta WHERE key = 'footprint_format'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(format, "wkt");
}

#[test]
fn a_spatialite_catalogue_refuses_to_open_without_spatialite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cat.sqlite");
    SqliteCatalogue::open(&options(&db)).unwrap();
    let error = SqliteCatalogue::open(&without_spatialite(&db))
        .err()
        .unwrap();
    let message = format!("{error:#}");
    assert!(message.contains("mod_spatialite"), "{message}");
    assert!(
        message.contains("/nonexistent/mod_spatialite.so"),
        "{message}"
    );
}

#[test]
fn updates_change_only_the_given_properties() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = SqliteCatalogue::open(&options(&dir.path().join("c.sqlite"))).unwrap();
    let p = product("A");
    catalogue.create(&p).unwrap();
    let before = catalogue.products_by_uuid(&[p.uuid], &all()).unwrap()[0]
        .clone()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let mut update = Update::new(p.uuid);
    update.core.insert(CoreField::Size, Some(Value::Integer(1)));
    update.core.insert(CoreField::RemoteUrl, None);
    update.namespaces.insert(
        "eo".into(),
        Some([("cloud_cover".to_string(), Some(Value::Integer(3)))].into()),
    );
    catalogue.update(&update).unwrap();
    let after = catalogue.products_by_uuid(&[p.uuid], &all()).unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(after.size, Some(1));
    assert_eq!(after.remote_url, None);
    assert_eq!(after.hash, before.hash);
    assert_eq!(after.footprint, before.footprint);
    assert_eq!(after.namespaces["eo"]["cloud_cover"], Value::Real(3.0));
    assert_eq!(
        after.namespaces["eo"]["platform"],
        Value::from("sentinel-2a")
    );
    assert!(after.metadata_date > before.metadata_date);

    let mut remove_namespace = Update::new(p.uuid);
    remove_namespace.namespaces.insert("eo".into(), None);
    catalogue.update(&remove_namespace).unwrap();
    let after = catalogue.products_by_uuid(&[p.uuid], &all()).unwrap()[0]
        .clone()
        .unwrap();
    assert!(after.namespaces.is_empty());
}

#[test]
fn a_bad_product_is_refused_whole_and_the_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let mut catalogue = SqliteCatalogue::open(&options(&db)).unwrap();
    catalogue.create(&product("A")).unwrap();

    let mut duplicate_name = product("A");
    duplicate_name.uuid = muninn_sync_model::Uuid::from_u128(7);
    let error = catalogue.create(&duplicate_name).unwrap_err();
    assert!(matches!(error, CatalogueError::Product(_)), "{error}");
    assert!(error.to_string().contains("product_name"), "{error}");

    let mut wrong_type = product("B");
    wrong_type
        .namespaces
        .get_mut("eo")
        .unwrap()
        .insert("cloud_cover".into(), Value::from("cloudy"));
    let error = catalogue.create(&wrong_type).unwrap_err();
    assert!(
        error.to_string().contains("eo.cloud_cover is real"),
        "{error}"
    );

    let mut bad_name = product("C");
    bad_name.physical_name = "a/b".into();
    assert!(catalogue.create(&bad_name).unwrap_err().is_product_error());

    catalogue.create(&product("D")).unwrap();
    catalogue.commit().unwrap();
    let names: Vec<String> = Connection::open(&db)
        .unwrap()
        .prepare("SELECT product_name FROM core ORDER BY product_name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(names, vec!["A", "D"]);
    let eo_rows: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM eo", [], |r| r.get(0))
        .unwrap();
    assert_eq!(eo_rows, 2);
}

#[test]
fn remove_takes_namespaces_tags_and_links_along() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let mut catalogue = SqliteCatalogue::open(&options(&db)).unwrap();
    let p = product("A");
    catalogue.create(&p).unwrap();
    catalogue.commit().unwrap();
    let key = p.uuid.simple().to_string();
    catalogue
        .connection()
        .execute("INSERT INTO tag (uuid, tag) VALUES (?1, 'x')", [&key])
        .unwrap();
    catalogue
        .connection()
        .execute(
            "INSERT INTO link (uuid, source_uuid) VALUES (?1, ?1)",
            [&key],
        )
        .unwrap();
    assert!(catalogue.remove(p.uuid).unwrap());
    assert!(!catalogue.remove(p.uuid).unwrap());
    catalogue.commit().unwrap();
    let conn = Connection::open(&db).unwrap();
    for table in ["core", "eo", "tag", "link"] {
        let rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0, "{table}");
    }
}

#[test]
fn uncommitted_changes_are_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let mut catalogue = SqliteCatalogue::open(&options(&db)).unwrap();
    catalogue.create(&product("A")).unwrap();
    catalogue.commit().unwrap();
    let mut p = product("B");
    p.namespaces.insert(
        "new_ns".into(),
        [("x".to_string(), Value::Integer(1))].into(),
    );
    catalogue.create(&p).unwrap();
    catalogue.rollback().unwrap();
    catalogue.create(&p).unwrap();
    catalogue.commit().unwrap();
    drop(catalogue);
    let rows: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM new_ns", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

#[test]
fn walks_visit_a_window_in_time_order_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = SqliteCatalogue::open(&options(&dir.path().join("c.sqlite"))).unwrap();
    for hour in 0..10 {
        let mut p = product(&format!("P{hour}"));
        p.validity_start =
            Some(parse_timestamp(&format!("2024-01-01T{:02}:00:00Z", 9 - hour)).unwrap());
        p.namespaces
            .get_mut("eo")
            .unwrap()
            .insert("sensed".into(), Value::Timestamp(p.validity_start.unwrap()));
        catalogue.create(&p).unwrap();
    }
    for property in ["validity_start", "eo.sensed"] {
        let mut query = WalkQuery {
            product_type: "S2MSI1C".into(),
            property: property.into(),
            start: Some(parse_timestamp("2024-01-01T02:00:00").unwrap()),
            end: Some(parse_timestamp("2024-01-01T08:00:00").unwrap()),
            after: None,
            limit: 4,
        };
        let mut seen = Vec::new();
        loop {
            let page = catalogue.walk(&query, &Namespaces::Only(vec![])).unwrap();
            let Some(last) = page.last() else { break };
            query.after = Some((last.validity_start.unwrap(), last.uuid));
            seen.extend(
                page.iter()
                    .map(|p| p.validity_start.unwrap().format("%H").to_string()),
            );
        }
        assert_eq!(seen, vec!["02", "03", "04", "05", "06", "07"], "{property}");
    }
}

#[test]
fn table_prefix_applies_to_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let mut options = options(&db);
    options.table_prefix = "s2_".into();
    let mut catalogue = SqliteCatalogue::open(&options).unwrap();
    catalogue.create(&product("A")).unwrap();
    catalogue.commit().unwrap();
    let tables: Vec<String> = catalogue
        .connection()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 's2_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for table in [
        "s2_core",
        "s2_eo",
        "s2_link",
        "s2_tag",
        "s2_muninn_sync_meta",
    ] {
        assert!(tables.contains(&table.to_string()), "{table} in {tables:?}");
    }
    options.table_prefix = "Bad-Prefix".into();
    let error = SqliteCatalogue::open(&options).err().unwrap();
    assert!(error.to_string().contains("table_prefix"), "{error}");
}

#[test]
fn property_names_that_differ_only_in_case_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = SqliteCatalogue::open(&options(&dir.path().join("c.sqlite"))).unwrap();
    let mut p = product("A");
    p.namespaces
        .get_mut("eo")
        .unwrap()
        .insert("cloudCover".into(), Value::Real(1.0));
    catalogue.create(&p).unwrap();
    let mut other = product("B");
    other
        .namespaces
        .get_mut("eo")
        .unwrap()
        .insert("cloudcover".into(), Value::Real(1.0));
    let error = catalogue.create(&other).unwrap_err();
    assert!(error.is_product_error(), "{error}");
    assert!(
        error
            .to_string()
            .contains("eo.cloudcover clashes with the existing column eo.cloudCover"),
        "{error}"
    );
    let mut both = product("C");
    both.namespaces.insert(
        "fresh".into(),
        [
            ("aB".to_string(), Value::Integer(1)),
            ("ab".to_string(), Value::Integer(2)),
        ]
        .into(),
    );
    let error = catalogue.create(&both).unwrap_err().to_string();
    assert!(error.contains("differ only in case"), "{error}");
}

#[test]
fn a_refused_namespace_row_takes_its_core_row_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    drop(SqliteCatalogue::open(&options(&db)).unwrap());
    // A namespace as muninn creates it for a schema with a mandatory property.
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE strict (platform TEXT NOT NULL, extra TEXT, \
             uuid UUID PRIMARY KEY REFERENCES core(uuid) ON DELETE CASCADE);",
        )
        .unwrap();
    let mut catalogue = SqliteCatalogue::open(&options(&db)).unwrap();
    let mut p = product("A");
    p.namespaces.insert(
        "strict".into(),
        [("extra".to_string(), Value::from("x"))].into(),
    );
    let error = catalogue.create(&p).unwrap_err();
    assert!(error.is_product_error(), "{error}");
    assert!(error.to_string().contains("NOT NULL"), "{error}");
    catalogue.create(&product("B")).unwrap();
    catalogue.commit().unwrap();
    let names: Vec<String> = Connection::open(&db)
        .unwrap()
        .prepare("SELECT product_name FROM core")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(names, vec!["B"]);
    let mut missing = Update::new(muninn_sync_model::Uuid::from_u128(1));
    missing
        .core
        .insert(CoreField::Size, Some(Value::Integer(1)));
    assert!(catalogue
        .update(&missing)
        .unwrap_err()
        .to_string()
        .contains("no product with uuid"));
}

#[test]
fn uuids_that_read_as_numbers_stay_text() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let mut catalogue = SqliteCatalogue::open(&options(&db)).unwrap();
    // Under NUMERIC affinity both would be stored as the real number +inf.
    let uuids = [
        "4e512345678901234567890123456789",
        "5e512345678901234567890123456789",
        "12345678901234567890123456789012",
    ];
    for (i, uuid) in uuids.iter().enumerate() {
        let mut p = product(&format!("P{i}"));
        p.uuid = muninn_sync_model::Uuid::parse_str(uuid).unwrap();
        catalogue.create(&p).unwrap();
    }
    catalogue.commit().unwrap();
    let stored: Vec<String> = Connection::open(&db)
        .unwrap()
        .prepare("SELECT typeof(uuid) || ' ' || uuid FROM core ORDER BY product_name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored, uuids.map(|u| format!("text {u}")));
    let found = catalogue
        .products_by_uuid(
            &[muninn_sync_model::Uuid::parse_str(uuids[0]).unwrap()],
            &all(),
        )
        .unwrap();
    assert_eq!(found[0].as_ref().unwrap().product_name, "P0");
}

#[test]
fn scans_read_a_namespace_window_in_time_order_page_by_page() {
    use muninn_sync_catalogue::ScanQuery;
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = SqliteCatalogue::open(&options(&dir.path().join("c.sqlite"))).unwrap();
    for hour in 0..10 {
        let mut p = product(&format!("P{hour}"));
        let sensed = parse_timestamp(&format!("2024-01-01T{:02}:00:00Z", 9 - hour)).unwrap();
        let eo = p.namespaces.get_mut("eo").unwrap();
        eo.insert("sensed".into(), Value::Timestamp(sensed));
        eo.insert("orbit".into(), Value::Integer(hour));
        catalogue.create(&p).unwrap();
    }
    let mut query = ScanQuery {
        namespace: "eo".into(),
        order_by: "sensed".into(),
        properties: vec!["orbit".into(), "nosuch".into()],
        start: Some(parse_timestamp("2024-01-01T02:00:00").unwrap()),
        end: Some(parse_timestamp("2024-01-01T08:00:00").unwrap()),
        after: None,
        limit: 4,
    };
    let mut orbits = Vec::new();
    loop {
        let page = catalogue.scan(&query).unwrap();
        let Some(last) = page.last() else { break };
        query.after = Some((last.time, last.uuid));
        for row in &page {
            assert_eq!(row.values[1], None, "an unknown property is null");
            orbits.push(row.values[0].clone().unwrap());
        }
    }
    // Hours 2..7 belong to products 7..2.
    assert_eq!(orbits, [7, 6, 5, 4, 3, 2].map(Value::Integer));
    let missing = ScanQuery {
        namespace: "nosuch".into(),
        ..query.clone()
    };
    assert!(catalogue.scan(&missing).unwrap().is_empty());
    let wrong = ScanQuery {
        order_by: "orbit".into(),
        ..query
    };
    assert!(catalogue
        .scan(&wrong)
        .unwrap_err()
        .to_string()
        .contains("not a timestamp"));
}
