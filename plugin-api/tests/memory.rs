//! The in-memory archive (`memory` feature) against the rules of
//! muninn-sync's catalogue, through the same `Archive` a plugin gets.

use abi_stable::std_types::RStr;
use anyhow::{anyhow, Result};
use muninn_sync_plugin_api::convert::product_to_ffi;
use muninn_sync_plugin_api::ffi::FfiArchive;
use muninn_sync_plugin_api::memory::{configure, Failure, MemoryArchive, Notice};
use muninn_sync_plugin_api::model::{from_micros, to_micros};
use muninn_sync_plugin_api::{
    parse_timestamp, Archive, Context, CoreField, Geometry, Product, SyncRequest, Synchronizer,
    Timestamp, Update, Uuid, Value, ValueType,
};
use std::collections::BTreeMap;

fn t(text: &str) -> Timestamp {
    parse_timestamp(text).unwrap()
}

fn with_ns(product_type: &str, name: &str, namespace: &str, values: &[(&str, Value)]) -> Product {
    let mut product = Product::new(product_type, name);
    product.namespaces.insert(
        namespace.into(),
        values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    );
    product
}

#[test]
fn create_refuses_duplicates_and_invalid_products_with_the_hosts_messages() {
    let mut memory = MemoryArchive::new();
    let mut archive = memory.archive();
    archive.create_properties(&Product::new("T", "a")).unwrap();
    let again = archive
        .create_properties(&Product::new("T", "a"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        again,
        "create: product T/a: a product with this product_type and product_name already exists"
    );
    let mut same_uuid = Product::new("T", "b");
    same_uuid.uuid = Product::new("T", "a").uuid;
    let refused = archive
        .create_properties(&same_uuid)
        .unwrap_err()
        .to_string();
    assert!(
        refused.ends_with("a product with this uuid already exists"),
        "{refused}"
    );
    let mut stored = Product::new("T", "c");
    stored.archive_path = Some("x".into());
    stored.physical_name = "file".into();
    archive.create_properties(&stored).unwrap();
    let mut clash = Product::new("T", "d");
    clash.archive_path = Some("x".into());
    clash.physical_name = "file".into();
    let refused = archive.create_properties(&clash).unwrap_err().to_string();
    assert!(
        refused.contains("archive_path and physical_name"),
        "{refused}"
    );
    let mut bad = Product::new("T", "e");
    bad.physical_name = "dir/file".into();
    let refused = archive.create_properties(&bad).unwrap_err().to_string();
    assert!(
        refused.starts_with("create: product T/e: physical_name"),
        "{refused}"
    );
    let refused = archive
        .create_properties(&with_ns("T", "f", "Bad", &[]))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("invalid namespace name \"Bad\""),
        "{refused}"
    );
    drop(archive);
    assert_eq!(memory.names("T"), ["a", "c"]);
    let report = memory.take_report();
    assert_eq!(report.created, 2);
    assert!(memory.product("T", "a").unwrap().metadata_date.is_some());
}

#[test]
fn update_changes_only_what_it_names_and_refuses_a_missing_product() {
    let mut memory = MemoryArchive::new();
    let mut product = with_ns(
        "T",
        "a",
        "eo",
        &[
            ("cloud", Value::Real(1.5)),
            ("platform", Value::from("s2a")),
        ],
    );
    product.size = Some(10);
    memory.insert(product.clone()).unwrap();
    memory
        .insert(with_ns("T", "b", "stac", &[("gsd", Value::Integer(10))]))
        .unwrap();
    let before = memory.product("T", "a").unwrap().metadata_date;
    let mut archive = memory.archive();

    let mut update = Update::new(product.uuid);
    update.core.insert(CoreField::Size, None);
    update
        .core
        .insert(CoreField::RemoteUrl, Some(Value::from("https://x")));
    update
        .namespaces
        .insert("eo".into(), Some([("cloud".to_string(), None)].into()));
    update
        .namespaces
        .insert("extra".into(), Some(BTreeMap::new()));
    archive.update_properties(&update).unwrap();
    let stored = archive
        .product_by_uuid(product.uuid, &["*"])
        .unwrap()
        .unwrap();
    assert_eq!(stored.size, None);
    assert_eq!(stored.remote_url.as_deref(), Some("https://x"));
    assert_eq!(
        stored.namespaces["eo"],
        [("platform".to_string(), Value::from("s2a"))].into()
    );
    assert!(
        stored.namespaces["extra"].is_empty(),
        "created without properties"
    );
    assert!(stored.metadata_date >= before);

    let mut removal = Update::new(product.uuid);
    removal.namespaces.insert("eo".into(), None);
    archive.update_properties(&removal).unwrap();
    let stored = archive
        .product_by_uuid(product.uuid, &["*"])
        .unwrap()
        .unwrap();
    assert!(!stored.namespaces.contains_key("eo"));

    let missing = Update::new(Product::new("T", "zz").uuid);
    let refused = archive.update_properties(&missing).unwrap_err().to_string();
    assert!(
        refused.starts_with("update: product uuid/") && refused.contains(": no product with uuid "),
        "{refused}"
    );
    let mut rename = Update::new(product.uuid);
    rename
        .core
        .insert(CoreField::ProductName, Some(Value::from("b")));
    let refused = archive.update_properties(&rename).unwrap_err().to_string();
    assert!(
        refused.contains("product_type and product_name already exists"),
        "{refused}"
    );
    let mut uuid = Update::new(product.uuid);
    uuid.core
        .insert(CoreField::Uuid, Some(Value::Uuid(Uuid::nil())));
    assert!(archive
        .update_properties(&uuid)
        .unwrap_err()
        .to_string()
        .contains("core property uuid cannot be updated"));
    let mut null = Update::new(product.uuid);
    null.core.insert(CoreField::ProductName, None);
    assert!(archive
        .update_properties(&null)
        .unwrap_err()
        .to_string()
        .contains("cannot be null"));

    let mut rename = Update::new(product.uuid);
    rename
        .core
        .insert(CoreField::ProductName, Some(Value::from("c")));
    archive.update_properties(&rename).unwrap();
    drop(archive);
    assert_eq!(memory.names("T"), ["b", "c"]);
    assert_eq!(memory.take_report().updated, 3);
}

#[test]
fn remove_says_whether_there_was_a_product() {
    let mut memory = MemoryArchive::new();
    // A product of the synchronizer's own (MemoryArchive::new runs "test").
    memory.insert_owned(Product::new("T", "a"), "test").unwrap();
    let uuid = Product::new("T", "a").uuid;
    let mut archive = memory.archive();
    assert!(archive.remove(uuid).unwrap());
    assert!(!archive.remove(uuid).unwrap());
    drop(archive);
    assert!(memory.is_empty());
    assert_eq!(memory.take_report().removed, 1);
    // The name is free again.
    memory.insert(Product::new("T", "a")).unwrap();
}

#[test]
fn namespace_properties_keep_their_first_type() {
    let mut memory = MemoryArchive::new();
    memory
        .insert(with_ns("T", "a", "eo", &[("cloud", Value::Integer(12))]))
        .unwrap();
    // The catalogue refuses a value of another type, and a name that
    // differs from a column's only in case...
    let lots = with_ns("T", "b", "eo", &[("cloud", Value::from("lots"))]);
    let refused = memory
        .create(product_to_ffi(&lots))
        .unwrap_err()
        .to_string();
    assert!(
        refused.ends_with("property eo.cloud is integer in the catalogue, not text"),
        "{refused}"
    );
    let capital = with_ns("T", "c", "eo", &[("Cloud", Value::Integer(1))]);
    let refused = memory
        .create(product_to_ffi(&capital))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("clashes with the existing column eo.cloud"),
        "{refused}"
    );
    assert!(memory.product("T", "b").is_none(), "nothing of it stays");
    // ...and the SDK then creates the product without that property,
    // counting what it left out.
    let mut archive = memory.archive();
    archive.create_properties(&lots).unwrap();
    archive.create_properties(&capital).unwrap();
    let b = archive.product_by_name("T", "b", &["eo"]).unwrap().unwrap();
    assert_eq!(b.namespaces.get("eo").map(|eo| eo.len()), Some(0));
    assert_eq!(archive.skipped().by_field()["eo.cloud"].count, 1);
    assert_eq!(archive.skipped().by_field()["eo.Cloud"].count, 1);
    // A fraction widens the property for every product.
    archive
        .create_properties(&with_ns("T", "d", "eo", &[("cloud", Value::Real(2.5))]))
        .unwrap();
    let a = archive.product_by_name("T", "a", &["eo"]).unwrap().unwrap();
    assert_eq!(a.namespaces["eo"]["cloud"], Value::Real(12.0));
    // A whole number in a real property is stored as a real.
    archive
        .create_properties(&with_ns("T", "e", "eo", &[("cloud", Value::Integer(3))]))
        .unwrap();
    drop(archive);
    assert_eq!(
        memory.product("T", "e").unwrap().namespaces["eo"]["cloud"],
        Value::Real(3.0)
    );
    assert_eq!(memory.property_type("eo", "CLOUD"), Some(ValueType::Real));
}

#[test]
fn look_ups_read_the_namespaces_asked_for() {
    let mut memory = MemoryArchive::new();
    let mut product = with_ns("T", "a", "eo", &[("cloud", Value::Real(1.0))]);
    product
        .namespaces
        .insert("empty".into(), Default::default());
    product.footprint = Some(Geometry::from_wkt("POLYGON((5 52, 6 52, 6 53, 5 52))").unwrap());
    memory.insert(product.clone()).unwrap();
    let archive = memory.archive();
    let core = archive.product_by_name("T", "a", &[]).unwrap().unwrap();
    assert!(core.namespaces.is_empty());
    assert_eq!(core.footprint, product.footprint);
    let eo = archive
        .product_by_name("T", "a", &["eo", "nonesuch"])
        .unwrap()
        .unwrap();
    assert_eq!(eo.namespaces.keys().collect::<Vec<_>>(), ["eo"]);
    let all = archive
        .product_by_uuid(product.uuid, &["*"])
        .unwrap()
        .unwrap();
    assert_eq!(all.namespaces.keys().collect::<Vec<_>>(), ["empty", "eo"]);
    let many = archive
        .products_by_name("T", &["x", "a", "a"], &[])
        .unwrap();
    assert_eq!(
        many.iter().map(Option::is_some).collect::<Vec<_>>(),
        [false, true, true]
    );
    assert_eq!(archive.product_by_name("U", "a", &[]).unwrap(), None);
}

#[test]
fn walks_are_ordered_half_open_and_paged() {
    let mut memory = MemoryArchive::new();
    for i in 0..1200 {
        let mut product = with_ns(
            "T",
            &format!("p{i:04}"),
            "remote",
            &[(
                "changed",
                Value::Timestamp(plus_days(t("2024-01-01"), i % 7)),
            )],
        );
        product.validity_start = Some(plus_days(t("2024-02-01"), i % 5));
        memory.insert(product).unwrap();
    }
    memory.insert(Product::new("T", "timeless")).unwrap();
    memory.insert(Product::new("U", "other")).unwrap();
    let archive = memory.archive();
    let window: Vec<Product> = archive
        .products_in_window(
            "T",
            "validity_start",
            Some(t("2024-02-02")),
            Some(t("2024-02-04")),
            &[],
        )
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(window.len(), 480, "days 1 and 2 of 5");
    let keys: Vec<_> = window
        .iter()
        .map(|p| (p.validity_start.unwrap(), p.uuid))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "ordered by time, then uuid"
    );
    let everything = archive
        .products_in_window("T", "remote.changed", None, None, &[])
        .collect::<Result<Vec<_>>>()
        .unwrap();
    assert_eq!(
        everything.len(),
        1200,
        "all pages, without the timeless product"
    );
    assert!(everything
        .iter()
        .all(|p| p.namespaces.contains_key("remote")));
    assert_eq!(
        archive
            .products_in_window("T", "remote.nonesuch", None, None, &[])
            .count(),
        0
    );
    let wrong = archive
        .products_in_window("T", "product_name", None, None, &[])
        .next()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        wrong.starts_with("walk over the catalogue: cannot walk by \"product_name\""),
        "{wrong}"
    );
}

/// `time` plus whole days.
fn plus_days(time: Timestamp, days: i64) -> Timestamp {
    from_micros(to_micros(&time) + days * 86_400_000_000).unwrap()
}

#[test]
fn scans_read_one_namespace_in_order() {
    let mut memory = MemoryArchive::new();
    for (name, day) in [
        ("c", "2024-01-03"),
        ("a", "2024-01-01"),
        ("b", "2024-01-02"),
    ] {
        memory
            .insert(with_ns(
                "T",
                name,
                "feed",
                &[
                    ("modified", Value::Timestamp(t(day))),
                    ("version", Value::Integer(1)),
                ],
            ))
            .unwrap();
    }
    memory
        .insert(with_ns("T", "d", "feed", &[("version", Value::Integer(2))]))
        .unwrap();
    let mut archive = memory.archive();
    let mut cursor = archive.scan_namespace(
        "feed",
        "modified",
        &["version", "nonesuch"],
        Some(t("2024-01-02")),
        None,
    );
    let mut rows = Vec::new();
    while let Some(row) = cursor.next_row(&mut archive).unwrap() {
        rows.push(row);
    }
    assert_eq!(
        rows.iter().map(|r| r.time).collect::<Vec<_>>(),
        [t("2024-01-02"), t("2024-01-03")]
    );
    assert_eq!(rows[0].values, [Some(Value::Integer(1)), None]);
    let mut wrong = archive.scan_namespace("feed", "version", &[], None, None);
    let refused = wrong.next_row(&mut archive).unwrap_err().to_string();
    assert!(
        refused.contains("cannot scan feed.version in order: it is integer"),
        "{refused}"
    );
    let mut none = archive.scan_namespace("nonesuch", "modified", &[], None, None);
    assert_eq!(none.next_row(&mut archive).unwrap(), None);
}

#[test]
fn notifications_are_recorded_and_counted_as_the_host_counts_them() {
    let mut memory = MemoryArchive::new();
    let mut archive = memory.archive();
    archive.idle().unwrap();
    archive.count_unchanged(3).unwrap();
    archive.advance_watermark("T", t("2024-01-02")).unwrap();
    archive.advance_watermark("T", t("2024-01-01")).unwrap();
    archive
        .report_failure("line 4", &anyhow!("bad line"))
        .unwrap();
    archive.advance_watermark("T", t("2024-01-05")).unwrap();
    drop(archive);
    let report = memory.take_report();
    assert_eq!((report.unchanged, report.failed), (3, 1));
    assert_eq!(
        report.failures,
        [Failure {
            product: "line 4".into(),
            message: "bad line".into()
        }]
    );
    assert_eq!(
        report.watermarks["T"],
        t("2024-01-02"),
        "never lowered, held after a failure"
    );
    assert_eq!(memory.watermarks()["T"], t("2024-01-02"));
    assert_eq!(report.notices_of("watermark").count(), 3);
    assert_eq!(
        report.notices[0],
        Notice {
            kind: "idle".into(),
            payload: serde_json::json!({})
        }
    );
    let unknown = memory
        .notify(RStr::from_str("bogus"), RStr::from_str("{}"))
        .unwrap_err();
    assert_eq!(
        unknown.as_str(),
        "this muninn-sync does not know the notification \"bogus\""
    );
    let bad_time = memory
        .notify(
            RStr::from_str("watermark"),
            RStr::from_str(r#"{"product_type": "T", "time": "soon"}"#),
        )
        .unwrap_err();
    assert!(
        bad_time
            .as_str()
            .starts_with("malformed notification \"watermark\": invalid watermark time \"soon\""),
        "{bad_time}"
    );
}

/// Reports a watermark for every product type it is asked about.
struct Marker;

impl Synchronizer for Marker {
    type Config = BTreeMap<String, String>;

    fn new(_config: Self::Config, _context: &Context) -> Result<Self> {
        Ok(Marker)
    }

    fn sync(&mut self, archive: &mut Archive<'_>, request: &SyncRequest) -> Result<()> {
        for product_type in request.product_types.iter().flatten() {
            archive.advance_watermark(product_type, request.end.unwrap())?;
        }
        if request.force {
            anyhow::bail!("forced to fail");
        }
        Ok(())
    }
}

#[test]
fn a_run_raises_only_the_watermarks_its_window_reaches_back_to() {
    let mut memory = MemoryArchive::new();
    memory.set_watermark("A", t("2024-01-10"));
    memory.set_watermark("B", t("2024-01-01"));
    let request = SyncRequest {
        product_types: Some(vec!["A".into(), "B".into(), "C".into()]),
        start: Some(t("2024-01-05")),
        end: Some(t("2024-01-20")),
        force: false,
    };
    let report = memory.run::<Marker>("", &request).unwrap();
    assert_eq!(
        report.watermarks.keys().collect::<Vec<_>>(),
        ["A"],
        "B and C would skip what lies before the start"
    );
    assert_eq!(memory.watermarks()["A"], t("2024-01-20"));
    assert_eq!(memory.watermarks()["B"], t("2024-01-01"));
    let everything = SyncRequest {
        start: None,
        ..request.clone()
    };
    memory.run::<Marker>("", &everything).unwrap();
    assert_eq!(memory.watermarks()["C"], t("2024-01-20"));
    // An error is returned as it is; the run's report stays to be taken.
    let failing = SyncRequest {
        force: true,
        end: Some(t("2024-01-21")),
        ..everything
    };
    let error = memory.run::<Marker>("", &failing).unwrap_err();
    assert_eq!(error.to_string(), "forced to fail");
    assert_eq!(memory.take_report().notices.len(), 3);
}

#[test]
fn sections_are_read_as_the_host_reads_them() {
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Config {
        since: String,
        limits: BTreeMap<String, f64>,
    }
    #[derive(Debug)]
    struct Configured(Config);
    impl Synchronizer for Configured {
        type Config = Config;
        fn new(config: Config, context: &Context) -> Result<Self> {
            assert_eq!(context.synchronizer, "test");
            Ok(Configured(config))
        }
        fn sync(&mut self, _: &mut Archive<'_>, _: &SyncRequest) -> Result<()> {
            Ok(())
        }
    }
    let section = "module = \"x\"\nincremental = true\nlookback = \"1h\"\nsince = 2024-01-01T00:00:00Z\nlimits = { a = 1.5 }\n";
    let configured = configure::<Configured>(
        section,
        &Context {
            synchronizer: "test".into(),
            ..Context::default()
        },
    )
    .unwrap();
    assert_eq!(configured.0.since, "2024-01-01T00:00:00Z");
    assert_eq!(configured.0.limits["a"], 1.5);
    let error = configure::<Configured>("since = 1\nlimits = {}", &Context::default())
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("key \"since\": invalid type"), "{error}");
    let error = configure::<Configured>("since = ", &Context::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("the section is not valid TOML"),
        "{error}"
    );
}

#[test]
fn removals_touch_only_the_synchronizers_own_products_unless_its_section_adopts() {
    let mut memory = MemoryArchive::new();
    memory.set_synchronizer("mirror");
    memory.insert(Product::new("T", "muninns")).unwrap();
    memory
        .insert_owned(Product::new("T", "cdses"), "cdse")
        .unwrap();
    {
        let mut archive = memory.archive();
        archive
            .create_properties(&Product::new("T", "own"))
            .unwrap();
        for name in ["muninns", "cdses", "own"] {
            let uuid = Product::new("T", name).uuid;
            let removed = archive.remove(uuid).unwrap();
            assert_eq!(removed, name == "own", "{name}");
        }
    }
    let report = memory.take_report();
    assert_eq!(report.removed, 1);
    assert_eq!(report.left_alone.len(), 2);
    assert!(
        report.left_alone[1]
            .1
            .contains("\"cdse\" owns it, not \"mirror\""),
        "{:?}",
        report.left_alone
    );
    assert_eq!(memory.names("T"), ["cdses", "muninns"]);

    // adopt = true takes nobody's products over; adopt_from names whose else.
    memory.set_adoption(true, &["cdse"]);
    let muninns = Product::new("T", "muninns").uuid;
    {
        let mut archive = memory.archive();
        let mut update = Update::new(muninns);
        update.core.insert(CoreField::Size, Some(Value::Integer(5)));
        archive.update_properties(&update).unwrap();
        assert!(archive.remove(Product::new("T", "cdses").uuid).unwrap());
    }
    assert_eq!(memory.owner(muninns), Some("mirror"));
    assert_eq!(memory.names("T"), ["muninns"]);
}

#[test]
fn a_plugin_asks_which_product_types_the_catalogue_holds() {
    let mut memory = MemoryArchive::new();
    let mut first = Product::new("S1", "a");
    first.validity_start = Some(t("2024-01-02T00:00:00Z"));
    let mut second = Product::new("S1", "b");
    second.validity_start = Some(t("2024-03-04T00:00:00Z"));
    memory.insert(first).unwrap();
    memory.insert_owned(second, "test").unwrap();
    memory.insert(Product::new("S2", "c")).unwrap();
    let types = memory.archive().product_types().unwrap();
    assert_eq!(types.len(), 2);
    assert_eq!(
        (
            types[0].product_type.as_str(),
            types[0].count,
            types[0].owned
        ),
        ("S1", 2, 1)
    );
    assert_eq!(types[0].validity_start_min, Some(t("2024-01-02T00:00:00Z")));
    assert_eq!(types[0].validity_start_max, Some(t("2024-03-04T00:00:00Z")));
    assert_eq!((types[1].count, types[1].validity_start_min), (1, None));
}

#[test]
fn deletions_are_remembered_and_a_failure_of_one_type_holds_only_its_watermark() {
    let mut memory = MemoryArchive::new();
    {
        let mut archive = memory.archive();
        let deletion = muninn_sync_plugin_api::Deletion {
            product_type: "T".into(),
            product_name: "gone".into(),
            uuid: None,
            time: t("2024-05-01T00:00:00Z"),
        };
        archive.record_deletion(&deletion).unwrap();
        assert_eq!(
            archive.deletions("T", &["gone", "here"]).unwrap(),
            [Some(t("2024-05-01T00:00:00Z")), None]
        );
        archive
            .report_failure_of_type("U", "line 3", &anyhow!("bad"))
            .unwrap();
        archive
            .advance_watermark("T", t("2024-06-01T00:00:00Z"))
            .unwrap();
        archive
            .advance_watermark("U", t("2024-06-01T00:00:00Z"))
            .unwrap();
    }
    let report = memory.take_report();
    assert_eq!(
        report.watermarks.keys().collect::<Vec<_>>(),
        ["T"],
        "only U's watermark is held"
    );
    assert_eq!(
        memory.deletion("T", "gone"),
        Some(t("2024-05-01T00:00:00Z"))
    );
}
