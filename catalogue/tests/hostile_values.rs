//! Values the catalogue cannot store and read back, names SQLite keeps for
//! itself, and a catalogue that already holds a time it cannot read.

use muninn_sync_catalogue::{Catalogue, Namespaces, ScanQuery, SqliteCatalogue, SqliteOptions};
use muninn_sync_model::{parse_timestamp, CoreField, Product, Update, Value};
use std::path::Path;

fn product(name: &str) -> Product {
    let mut p = Product::new("S2MSI1C", name);
    p.validity_start = Some(parse_timestamp("2024-01-02T10:00:00Z").unwrap());
    p.namespaces.insert(
        "eo".into(),
        [
            ("orbit".to_string(), Value::Integer(1)),
            (
                "sensed".to_string(),
                Value::Timestamp(parse_timestamp("2024-01-02T10:00:00Z").unwrap()),
            ),
        ]
        .into(),
    );
    p
}

fn open(path: &Path) -> SqliteCatalogue {
    SqliteCatalogue::open(&SqliteOptions::new(path)).unwrap()
}

#[test]
fn a_time_past_9999_is_refused_on_create_and_on_update() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = open(&dir.path().join("c.sqlite"));
    let late = parse_timestamp("9999-12-31T23:59:59-01:00").unwrap();
    let mut p = product("A");
    p.validity_stop = Some(late);
    let error = catalogue.create(&p).unwrap_err();
    assert!(error.is_product_error(), "{error}");
    assert!(error.to_string().contains("validity_stop"), "{error}");
    catalogue.create(&product("A")).unwrap();
    let uuid = product("A").uuid;
    let mut update = Update::new(uuid);
    update
        .core
        .insert(CoreField::CreationDate, Some(Value::Timestamp(late)));
    let error = catalogue.update(&update).unwrap_err();
    assert!(error.is_product_error(), "{error}");
    assert!(error.to_string().contains("creation_date"), "{error}");
    let mut update = Update::new(uuid);
    update.namespaces.insert(
        "eo".into(),
        Some([("sensed".to_string(), Some(Value::Timestamp(late)))].into()),
    );
    let error = catalogue.update(&update).unwrap_err();
    assert!(error.to_string().contains("eo.sensed"), "{error}");
    let mut update = Update::new(uuid);
    update.namespaces.insert(
        "eo".into(),
        Some([("platform".to_string(), Some(Value::from("s2\0a")))].into()),
    );
    let error = catalogue.update(&update).unwrap_err();
    assert!(error.to_string().contains("eo.platform"), "{error}");
    catalogue.commit().unwrap();
    let conn = catalogue.connection();
    let stored: (Option<String>, String) = conn
        .query_row(
            "SELECT creation_date, sensed FROM core JOIN eo USING (uuid)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(stored, (None, "2024-01-02 10:00:00".to_string()));
    let platform: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('eo') WHERE name = 'platform'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(platform, 0, "a refused value makes no column");
}

#[test]
fn a_stored_time_the_catalogue_cannot_read_is_taken_as_absent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let mut catalogue = open(&db);
    for name in ["A", "B"] {
        catalogue.create(&product(name)).unwrap();
    }
    catalogue.commit().unwrap();
    // What muninn-sync wrote for 9999-12-31T23:59:59-01:00 before times
    // were checked.
    catalogue
        .connection()
        .execute_batch(
            "UPDATE core SET validity_start = '10000-01-01 00:59:59' WHERE product_name = 'A';
             UPDATE eo SET sensed = '10000-01-01 00:59:59';",
        )
        .unwrap();
    let found = catalogue
        .products_by_name("S2MSI1C", &["A", "B"], &Namespaces::All)
        .unwrap();
    let a = found[0].as_ref().unwrap();
    let b = found[1].as_ref().unwrap();
    assert_eq!(a.validity_start, None);
    assert_eq!(a.namespaces["eo"].get("sensed"), None);
    assert_eq!(a.namespaces["eo"]["orbit"], Value::Integer(1));
    assert!(b.validity_start.is_some());
    assert_eq!(b.namespaces["eo"].get("sensed"), None);
    let by_uuid = catalogue
        .products_by_uuid(&[a.uuid], &Namespaces::All)
        .unwrap();
    assert_eq!(by_uuid[0].as_ref().unwrap().product_name, "A");
    // A scan ordered by the unreadable time leaves those rows out.
    let scan = ScanQuery {
        namespace: "eo".into(),
        order_by: "sensed".into(),
        properties: vec!["orbit".into()],
        start: None,
        end: None,
        after: None,
        limit: 10,
    };
    assert!(catalogue.scan(&scan).unwrap().is_empty());
    // Writing the property again repairs it.
    let mut update = Update::new(a.uuid);
    update.core.insert(
        CoreField::ValidityStart,
        Some(Value::Timestamp(
            parse_timestamp("2024-01-03T00:00:00Z").unwrap(),
        )),
    );
    catalogue.update(&update).unwrap();
    let again = catalogue
        .products_by_name("S2MSI1C", &["A"], &Namespaces::All)
        .unwrap();
    assert_eq!(
        again[0].as_ref().unwrap().validity_start,
        Some(parse_timestamp("2024-01-03T00:00:00Z").unwrap())
    );
}

/// Every keyword SQLite knows (sqlite.org/lang_keywords.html).
const SQLITE_KEYWORDS: &str = "abort action add after all alter always analyze and as asc attach \
    autoincrement before begin between by cascade case cast check collate column commit conflict \
    constraint create cross current current_date current_time current_timestamp database default \
    deferrable deferred delete desc detach distinct do drop each else end escape except exclude \
    exclusive exists explain fail filter first following for foreign from full generated glob group \
    groups having if ignore immediate in index indexed initially inner insert instead intersect into \
    is isnull join key last left like limit match materialized natural no not nothing notnull null \
    nulls of offset on or order others outer over partition plan pragma preceding primary query raise \
    range recursive references regexp reindex release rename replace restrict returning right \
    rollback row rows savepoint select set table temp temporary then ties to transaction trigger \
    unbounded union unique update using vacuum values view virtual when where window with without";

/// Whether muninn's unquoted SQL works with a namespace table of this name.
fn works_unquoted(name: &str) -> bool {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    [
        "CREATE TABLE core (uuid UUID PRIMARY KEY, product_name TEXT)".to_string(),
        "INSERT INTO core (uuid) VALUES (1)".to_string(),
        format!("CREATE TABLE {name} (n INTEGER, uuid UUID PRIMARY KEY REFERENCES core(uuid) ON DELETE CASCADE)"),
        format!("CREATE INDEX idx_{name}_n ON {name} (n)"),
        format!("INSERT INTO {name} (uuid, n) VALUES (1, 2)"),
        format!("SELECT core.uuid, {name}.n FROM core LEFT JOIN {name} ON {name}.uuid = core.uuid WHERE {name}.n = 2"),
        format!("UPDATE {name} SET n = 3 WHERE uuid = 1"),
        format!("DELETE FROM {name} WHERE uuid = 1"),
    ]
    .iter()
    .all(|sql| {
        conn.prepare(sql)
            .and_then(|mut s| s.raw_query().next().map(|_| ()))
            .is_ok()
    })
}

#[test]
fn the_refused_namespace_names_are_the_keywords_sqlite_cannot_take_unquoted() {
    for keyword in SQLITE_KEYWORDS.split_whitespace() {
        let listed = muninn_sync_model::SQL_KEYWORDS_NOT_NAMES.contains(&keyword);
        assert_eq!(
            listed,
            !works_unquoted(keyword),
            "{keyword}: listed {listed}, but SQLite says otherwise"
        );
    }
}

#[test]
fn namespace_tables_are_quoted_so_a_prefix_may_spell_a_keyword() {
    // The prefix "or" and the namespace "der" make the table "order".
    let dir = tempfile::tempdir().unwrap();
    let mut options = SqliteOptions::new(dir.path().join("c.sqlite"));
    options.table_prefix = "or".into();
    let mut catalogue = SqliteCatalogue::open(&options).unwrap();
    let mut p = product("A");
    p.namespaces.insert(
        "der".into(),
        [("select".to_string(), Value::Integer(7))].into(),
    );
    catalogue.create(&p).unwrap();
    catalogue.commit().unwrap();
    let found = catalogue
        .products_by_name("S2MSI1C", &["A"], &Namespaces::All)
        .unwrap();
    assert_eq!(
        found[0].as_ref().unwrap().namespaces["der"]["select"],
        Value::Integer(7)
    );
    let mut update = Update::new(p.uuid);
    update.namespaces.insert("der".into(), None);
    catalogue.update(&update).unwrap();
    catalogue.commit().unwrap();
    let rows: i64 = catalogue
        .connection()
        .query_row("SELECT count(*) FROM \"order\"", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn a_fraction_widens_an_integer_column_muninn_sync_made_as_the_docs_say() {
    // docs/catalogue.md, "A value must fit its column": JSON writes 12.0 as
    // 12, so a column muninn-sync made from a whole number becomes real when
    // a fraction comes (muninn's own integer columns stay integer: see
    // muninn_made.rs).
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = open(&dir.path().join("c.sqlite"));
    catalogue.create(&product("A")).unwrap();
    let mut b = product("B");
    b.namespaces
        .get_mut("eo")
        .unwrap()
        .insert("orbit".into(), Value::Real(2.5));
    catalogue.create(&b).unwrap();
    catalogue.commit().unwrap();
    let recorded: String = catalogue
        .connection()
        .query_row(
            "SELECT type FROM muninn_sync_columns WHERE namespace = 'eo' AND property = 'orbit'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recorded, "real");
    let found = catalogue
        .products_by_name("S2MSI1C", &["A", "B"], &Namespaces::All)
        .unwrap();
    let orbit = |i: usize| found[i].as_ref().unwrap().namespaces["eo"]["orbit"].clone();
    assert_eq!((orbit(0), orbit(1)), (Value::Real(1.0), Value::Real(2.5)));
}
