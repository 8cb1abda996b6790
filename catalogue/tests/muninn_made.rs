//! Catalogues that Python muninn 7.5 created (`muninn-prepare`), synced in
//! place: muninn's declarations stay, and what muninn-sync writes into them
//! is what muninn reads back. (tests/tests/python_muninn.rs runs muninn's
//! own tools on them.)

use muninn_sync_catalogue::{
    Catalogue, FootprintFormat, Namespaces, SqliteCatalogue, SqliteOptions, WalkQuery,
};
use muninn_sync_model::{parse_timestamp, CoreField, Product, Update, Uuid, Value};
use rusqlite::Connection;
use std::path::Path;

/// What `muninn-prepare --dry-run` prints for muninn 7.5 with the namespaces
/// `eo` (cloud_cover: Real, platform: Text) and `props` (n: Long, t: Text,
/// j: JSON). muninn runs these after `InitSpatialMetadata()`.
const MUNINN_PREPARE: &str = "
CREATE TABLE core (uuid UUID NOT NULL, active BOOLEAN NOT NULL, hash TEXT, size INTEGER, metadata_date TIMESTAMP NOT NULL, archive_date TIMESTAMP, archive_path TEXT, product_type TEXT NOT NULL, product_name TEXT NOT NULL, physical_name TEXT NOT NULL, validity_start TIMESTAMP, validity_stop TIMESTAMP, creation_date TIMESTAMP, remote_url TEXT, PRIMARY KEY (uuid), UNIQUE (archive_path, physical_name), UNIQUE (product_type, product_name));
SELECT AddGeometryColumn('core', 'footprint', 4326, 'GEOMETRY', 2);
CREATE INDEX idx_core_active ON core (active);
CREATE INDEX idx_core_validity_start ON core (validity_start);
SELECT CreateSpatialIndex('core', 'footprint');
CREATE TABLE eo (cloud_cover REAL, platform TEXT, uuid UUID PRIMARY KEY REFERENCES core(uuid) ON DELETE CASCADE);
CREATE TABLE props (n INTEGER, t TEXT, j TEXT, uuid UUID PRIMARY KEY REFERENCES core(uuid) ON DELETE CASCADE);
CREATE TABLE link (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, uuid UUID REFERENCES core(uuid) ON DELETE CASCADE, source_uuid UUID NOT NULL, UNIQUE (uuid, source_uuid));
CREATE TABLE tag (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, uuid UUID REFERENCES core(uuid) ON DELETE CASCADE, tag TEXT NOT NULL, UNIQUE (uuid, tag));
";

/// A catalogue as `muninn-prepare` leaves it, holding one product muninn
/// created ("M", uuid 0...01) with a JSON property as muninn's json.dumps
/// writes it and a text property.
fn muninn_made(db: &Path) {
    let conn = with_spatialite(db);
    conn.query_row("SELECT InitSpatialMetadata(1, 'WGS84')", [], |_| Ok(()))
        .unwrap();
    for statement in MUNINN_PREPARE.split(";\n").filter(|s| !s.trim().is_empty()) {
        let mut prepared = conn.prepare(statement).unwrap();
        let mut rows = prepared.query([]).unwrap();
        while rows.next().unwrap().is_some() {}
    }
    conn.execute_batch(
        "INSERT INTO core (uuid, active, metadata_date, product_type, product_name, physical_name) \
             VALUES ('000000000000000000000000000000a1', 1, '2024-01-01 00:00:00', 'T', 'M', 'M');
         INSERT INTO props (n, t, j, uuid) \
             VALUES (7, 'x', '{\"k\": [1, 2]}', '000000000000000000000000000000a1');",
    )
    .unwrap();
}

/// A connection that can write to core (SpatiaLite's triggers on
/// `footprint` call its functions).
fn with_spatialite(db: &Path) -> Connection {
    let conn = Connection::open(db).unwrap();
    // SAFETY: the system's SpatiaLite, as the catalogue itself loads it.
    unsafe {
        let _guard = rusqlite::LoadExtensionGuard::new(&conn).unwrap();
        conn.load_extension("mod_spatialite", None::<&str>).unwrap();
    }
    conn
}

fn product(name: &str, uuid: &str) -> Product {
    let mut p = Product::with_uuid(Uuid::parse_str(uuid).unwrap(), "T", name);
    p.validity_start = Some(parse_timestamp("2024-01-02T10:00:00Z").unwrap());
    p.namespaces.insert(
        "eo".into(),
        [("cloud_cover".to_string(), Value::Real(12.5))].into(),
    );
    p
}

/// The rows of a one-column query as text.
fn strings(db: &Path, sql: &str) -> Vec<String> {
    use rusqlite::types::Value as Sql;
    Connection::open(db)
        .unwrap()
        .prepare(sql)
        .unwrap()
        .query_map([], |r| r.get::<_, Sql>(0))
        .unwrap()
        .map(|v| match v.unwrap() {
            Sql::Text(t) => t,
            Sql::Integer(i) => i.to_string(),
            Sql::Real(r) => r.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Uuids whose 32 hex digits SQLite reads as numbers: all digits, and
/// digits around one `e` (under NUMERIC affinity: 1.2345678901234568e+31,
/// and +inf for both of the others alike).
const NUMERIC_LOOKING: [&str; 3] = [
    "12345678901234567890123456789012",
    "4e512345678901234567890123456789",
    "5e512345678901234567890123456789",
];

#[test]
fn a_muninn_made_catalogue_is_synced_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("muninn.sqlite");
    muninn_made(&db);
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&db)).unwrap();
    assert_eq!(catalogue.footprint_format(), FootprintFormat::Spatialite);
    catalogue
        .create(&product("A", "0d5b8f1e4c7a4a61a8a6f3a7b0c2d9e1"))
        .unwrap();
    catalogue.commit().unwrap();
    drop(catalogue);
    // muninn's own declarations are left as they are.
    assert_eq!(
        strings(
            &db,
            "SELECT type FROM pragma_table_info('core') WHERE name = 'uuid'"
        ),
        ["UUID"]
    );
    assert_eq!(
        strings(&db, "SELECT uuid FROM core ORDER BY product_name"),
        [
            "0d5b8f1e4c7a4a61a8a6f3a7b0c2d9e1",
            "000000000000000000000000000000a1"
        ]
    );
}

#[test]
fn uuids_that_read_as_numbers_are_kept_whole_where_muninn_declared_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("muninn.sqlite");
    muninn_made(&db);
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&db)).unwrap();
    let uuids: Vec<Uuid> = NUMERIC_LOOKING
        .iter()
        .map(|u| Uuid::parse_str(u).unwrap())
        .collect();
    for (i, uuid) in NUMERIC_LOOKING.iter().enumerate() {
        let mut p = product(&format!("P{i}"), uuid);
        p.validity_start = Some(parse_timestamp("2024-01-02T10:00:00Z").unwrap());
        catalogue.create(&p).unwrap();
    }
    catalogue
        .create(&product("Q", "0d5b8f1e4c7a4a61a8a6f3a7b0c2d9e1"))
        .unwrap();
    catalogue.commit().unwrap();

    // Stored as text: the dashed form, which Python's uuid.UUID reads as
    // well, where muninn's 32 digits would turn into a number; the others
    // as muninn writes them. Namespace rows carry the same text.
    let stored = strings(
        &db,
        "SELECT typeof(c.uuid) || ' ' || c.uuid || ' ' || e.cloud_cover \
         FROM core c JOIN eo e ON e.uuid = c.uuid ORDER BY c.product_name",
    );
    assert_eq!(
        stored,
        [
            "text 12345678-9012-3456-7890-123456789012 12.5",
            "text 4e512345-6789-0123-4567-890123456789 12.5",
            "text 5e512345-6789-0123-4567-890123456789 12.5",
            "text 0d5b8f1e4c7a4a61a8a6f3a7b0c2d9e1 12.5",
        ]
    );

    // Looked up, walked, updated and removed by uuid like any other.
    let found = catalogue
        .products_by_uuid(&uuids, &Namespaces::All)
        .unwrap();
    for (i, product) in found.iter().enumerate() {
        let product = product.as_ref().expect("found by uuid");
        assert_eq!(product.uuid, uuids[i]);
        assert_eq!(product.product_name, format!("P{i}"));
        assert_eq!(product.namespaces["eo"]["cloud_cover"], Value::Real(12.5));
    }
    let mut walked = Vec::new();
    let mut query = WalkQuery {
        product_type: "T".into(),
        property: "validity_start".into(),
        start: None,
        end: None,
        after: None,
        limit: 1,
    };
    loop {
        let page = catalogue.walk(&query, &Namespaces::All).unwrap();
        let Some(last) = page.last() else { break };
        query.after = Some((last.validity_start.unwrap(), last.uuid));
        walked.push(last.product_name.clone());
    }
    walked.sort();
    assert_eq!(walked, ["P0", "P1", "P2", "Q"], "each product once");
    let mut update = Update::new(uuids[1]);
    update.core.insert(CoreField::Size, Some(Value::Integer(5)));
    catalogue.update(&update).unwrap();
    assert!(catalogue.remove(uuids[2]).unwrap());
    catalogue.commit().unwrap();
    assert_eq!(
        strings(&db, "SELECT product_name || ' ' || quote(size) FROM core WHERE product_type = 'T' ORDER BY 1"),
        ["M NULL", "P0 NULL", "P1 5", "Q NULL"]
    );
    assert_eq!(strings(&db, "SELECT count(*) FROM eo"), ["3"]);
}

#[test]
fn a_uuid_muninn_stored_as_a_number_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("muninn.sqlite");
    muninn_made(&db);
    // What muninn's own create_properties does with such a uuid.
    with_spatialite(&db)
        .execute(
            "INSERT INTO core (uuid, active, metadata_date, product_type, product_name, physical_name) \
             VALUES (?1, 1, '2024-01-01 00:00:00', 'T', 'N', 'N')",
            [NUMERIC_LOOKING[0]],
        )
        .unwrap();
    let catalogue = SqliteCatalogue::open(&SqliteOptions::new(&db)).unwrap();
    let error = catalogue
        .products_by_name("T", &["N"], &Namespaces::All)
        .unwrap_err()
        .to_string();
    assert!(error.contains("core.uuid holds the number 1"), "{error}");
    assert!(error.contains("NUMERIC affinity"), "{error}");
}

#[test]
fn json_goes_into_a_text_column_muninn_made_for_its_json_type() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("muninn.sqlite");
    muninn_made(&db);
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&db)).unwrap();
    // Before a JSON value arrives, muninn's TEXT column reads as text.
    let muninns = Uuid::from_u128(0xa1);
    let before = catalogue
        .products_by_uuid(&[muninns], &Namespaces::All)
        .unwrap();
    assert_eq!(
        before[0].as_ref().unwrap().namespaces["props"]["j"],
        Value::from("{\"k\": [1, 2]}")
    );

    let mut p = product("A", "0d5b8f1e4c7a4a61a8a6f3a7b0c2d9e1");
    p.namespaces.insert(
        "props".into(),
        [(
            "j".to_string(),
            Value::Json(serde_json::json!({"bands": [2, 3]})),
        )]
        .into(),
    );
    catalogue.create(&p).unwrap();
    catalogue.commit().unwrap();
    assert_eq!(
        strings(
            &db,
            "SELECT type FROM muninn_sync_columns WHERE namespace = 'props' AND property = 'j'"
        ),
        ["json"]
    );
    // From then on both products' values read as JSON.
    let read = catalogue
        .products_by_uuid(&[muninns, p.uuid], &Namespaces::All)
        .unwrap();
    assert_eq!(
        read[0].as_ref().unwrap().namespaces["props"]["j"],
        Value::Json(serde_json::json!({"k": [1, 2]}))
    );
    assert_eq!(
        read[1].as_ref().unwrap().namespaces["props"]["j"],
        Value::Json(serde_json::json!({"bands": [2, 3]}))
    );

    // A column muninn made that holds plain text stays text.
    let mut text = product("B", "1d5b8f1e4c7a4a61a8a6f3a7b0c2d9e1");
    text.namespaces.insert(
        "props".into(),
        [("t".to_string(), Value::Json(serde_json::json!([1])))].into(),
    );
    let error = catalogue.create(&text).unwrap_err();
    assert!(error.is_product_error(), "{error}");
    assert!(
        error
            .to_string()
            .contains("props.t is text in the catalogue, not json"),
        "{error}"
    );
}

#[test]
fn an_integer_column_muninn_made_keeps_its_type() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("muninn.sqlite");
    muninn_made(&db);
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&db)).unwrap();
    // muninn's schema says Long or Integer, and muninn checks the type of
    // what it reads: a real would make the product unreadable to muninn.
    let mut p = product("A", "0d5b8f1e4c7a4a61a8a6f3a7b0c2d9e1");
    p.namespaces
        .insert("props".into(), [("n".to_string(), Value::Real(1.5))].into());
    let error = catalogue.create(&p).unwrap_err();
    assert!(error.is_product_error(), "{error}");
    assert!(
        error
            .to_string()
            .contains("props.n is integer in the catalogue, not real"),
        "{error}"
    );
    // An integer into muninn's REAL column is widened, as muninn wants a float.
    let mut widened = product("B", "1d5b8f1e4c7a4a61a8a6f3a7b0c2d9e1");
    widened.namespaces.insert(
        "eo".into(),
        [("cloud_cover".to_string(), Value::Integer(3))].into(),
    );
    catalogue.create(&widened).unwrap();
    catalogue.commit().unwrap();
    assert_eq!(
        strings(
            &db,
            "SELECT typeof(cloud_cover) || ' ' || cloud_cover FROM eo"
        ),
        ["real 3.0"]
    );
}
