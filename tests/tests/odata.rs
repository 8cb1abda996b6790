//! The `odata` synchronizer against a local server that answers as the
//! Copernicus Data Space Ecosystem's OData catalogue does, with its limits
//! ($top up to 1000, $skip up to 10,000 and next links dropped past it),
//! started on 127.0.0.1 by each test. Each on SQLite and on PostgreSQL
//! from one body (mixed-case columns are quoted in the SQL: PostgreSQL folds
//! unquoted names to lower case).

use muninn_sync_e2e::odata_server::{
    after, antimeridian, deleted, option, product, product_list, products, recorded, serve,
    OdataServer as Server, Products,
};
use muninn_sync_e2e::{muninn_sync, on_both_backends, Archive, Backend, Run};
use serde_json::{json, Value as Json};
use std::sync::{Arc, Mutex};

/// Changes to a section: a key set to `Some(value)` is changed or added, set
/// to `None` left out.
type Changes<'a> = &'a [(&'a str, Option<&'a str>)];

/// The section a user writes (from the issue), with `changes`.
fn section(name: &str, base: &str, changes: Changes) -> String {
    let url = format!("\"{base}/odata/v1\"");
    let mut keys = vec![
        ("module", "\"odata\"".to_string()),
        ("url", url),
        ("collection", "\"SENTINEL-2\"".into()),
        ("product_types", "[\"S2MSI1C\", \"S2MSI2A\"]".into()),
        ("page_size", "1000".into()),
        ("time_field", "\"ModificationDate\"".into()),
        ("deletions", "true".into()),
        ("max_requests_per_minute", "1000".into()),
    ];
    for (key, value) in changes {
        keys.retain(|(k, _)| k != key);
        if let Some(value) = value {
            keys.push((key, value.to_string()));
        }
    }
    let lines: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    format!(
        "\n[\"synchronizer:{name}\"]\n{lines}\n[\"synchronizer:{name}\".http]\ninitial_backoff = 0.01\nmax_retries = 3\n"
    )
}

fn archive(backend: Backend, base: &str, changes: Changes) -> Archive {
    Archive::on(backend, &section("cdse", base, changes))
}

fn server(products: impl Into<Products>) -> Arc<Mutex<Server>> {
    Arc::new(Mutex::new(Server {
        products: products.into(),
        ..Server::default()
    }))
}

/// Asserts the run succeeded with these counts in its summary line
/// (`5 created, 0 updated, 0 removed, 0 failed, 0 unchanged`).
fn assert_done(run: &Run, counts: &str) {
    run.assert_ok();
    assert!(
        run.stderr.contains(&format!("done: {counts} in")),
        "expected {counts}:\n{}",
        run.stderr
    );
}

/// The catalogue's uuid of a product: its `Id` without dashes (what SQL
/// takes on both backends; [`Archive::uuid_text`] gives how each prints it).
fn uuid(product: &Json) -> String {
    product["Id"].as_str().unwrap().replace('-', "")
}

/// A product's uuid as the catalogue prints it.
fn stored_uuid(archive: &Archive, product: &Json) -> String {
    archive.uuid_text(&uuid(product))
}

fn id(product: &Json) -> &str {
    product["Id"].as_str().unwrap()
}

/// Sets the value of a product's attribute.
fn set_attribute(product: &mut Json, name: &str, value: Json) {
    for attribute in product["Attributes"].as_array_mut().unwrap() {
        if attribute["Name"] == name {
            attribute["Value"] = value.clone();
        }
    }
}

/// A CDSE time as the catalogue prints it: `2024-01-01 10:00:00.500000`
/// on SQLite (`.5` on PostgreSQL), without the fraction when it is zero.
fn stored(archive: &Archive, time: &str) -> String {
    let time = time.trim_end_matches('Z').replace('T', " ");
    archive.time_text(&match time.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().any(|b| b != b'0') => {
            format!("{whole}.{fraction:0<6}")
        }
        Some((whole, _)) => whole.to_string(),
        None => time,
    })
}

/// The time a filter compares `field` with (`ge`), if it does.
fn lower_bound(target: &str, field: &str) -> Option<String> {
    let filter = option(target, "$filter")?;
    let (_, rest) = filter.split_once(&format!("{field} ge "))?;
    Some(rest.split([' ', ')']).next().unwrap().to_string())
}

/// The kind of a product's footprint (`POLYGON`, `MULTIPOLYGON`, `NULL`)
/// and its bounding box, exactly as stored.
fn footprint(archive: &Archive, product: &Json) -> (String, Vec<f64>) {
    let condition = format!("uuid = '{}'", uuid(product));
    match archive.footprint(&condition) {
        None => ("NULL".into(), vec![]),
        Some((kind, _)) => (
            kind,
            archive
                .footprint_bounds(&condition)
                .expect("a footprint")
                .to_vec(),
        ),
    }
}

on_both_backends!(a_user_syncs_re_syncs_forces_and_updates_sentinel_2_products);
fn a_user_syncs_re_syncs_forces_and_updates_sentinel_2_products(backend: Backend) {
    let mut all = product_list(0..5, "S2MSI1C", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    });
    all.extend(product_list(0..3, "S2MSI2A", |n| {
        format!("2024-01-0{}T11:00:00.000000Z", n + 1)
    }));
    // Neither the collection nor a product type of the section.
    all.extend(product_list(0..2, "GRD", |_| "2024-01-02T00:00:00Z".into()));
    all.extend(product_list(0..2, "S2MSI2AP", |_| {
        "2024-01-02T00:00:00Z".into()
    }));
    let state = server(all.clone());
    let base = serve(state.clone());
    let archive = archive(backend, &base, &[]);

    let first = archive.sync(&["cdse"]);
    assert_done(
        &first,
        "8 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    assert_eq!(
        archive.strings(
            "SELECT product_type || ' ' || count(*) FROM core GROUP BY product_type ORDER BY 1"
        ),
        ["S2MSI1C 5", "S2MSI2A 3"]
    );
    // One product, as a user finds it.
    let p = &all[1];
    let name = p["Name"].as_str().unwrap();
    assert_eq!(
        archive.row(&format!(
            "SELECT uuid, active, product_type, product_name, physical_name, size, hash, validity_start, \
             validity_stop, creation_date, remote_url, archive_path, archive_date FROM core WHERE uuid = '{}'",
            uuid(p)
        )),
        [
            archive.uuid_text(&uuid(p)),
            archive.boolean(true).into(),
            "S2MSI1C".into(),
            name.trim_end_matches(".SAFE").into(),
            name.into(),
            p["ContentLength"].to_string(),
            format!("md5:{}", p["Checksum"][0]["Value"].as_str().unwrap()),
            stored(&archive, p["ContentDate"]["Start"].as_str().unwrap()),
            stored(&archive, p["ContentDate"]["End"].as_str().unwrap()),
            stored(&archive, p["OriginDate"].as_str().unwrap()),
            // Without a download_url, remote_url starts with url (the
            // catalogue host is only replaced when it is CDSE's).
            format!("{base}/odata/v1/Products({})/$value", id(p)),
            "NULL".into(),
            "NULL".into(),
        ]
    );
    let attribute = |name: &str| {
        p["Attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["Name"] == name)
            .unwrap()["Value"]
            .clone()
    };
    assert_eq!(
        archive.row(&format!(
            "SELECT \"ContentType\", \"ContentLength\", \"ModificationDate\", \"PublicationDate\", \"EvictionDate\", \"Online\", \"S3Path\", \
             \"productType\", \"cloudCover\", \"orbitNumber\", \"processingDate\", \"tileId\" FROM cdse WHERE uuid = '{}'",
            uuid(p)
        )),
        [
            "application/octet-stream".to_string(),
            p["ContentLength"].to_string(),
            "2024-01-02 10:00:00".into(),
            "2024-01-02 09:20:00".into(),
            "9999-12-31 23:59:59.999999".into(),
            archive.boolean(true).into(),
            p["S3Path"].as_str().unwrap().into(),
            "S2MSI1C".into(),
            attribute("cloudCover").as_f64().unwrap().to_string(),
            attribute("orbitNumber").to_string(),
            stored(&archive, attribute("processingDate").as_str().unwrap()),
            attribute("tileId").as_str().unwrap().into(),
        ]
    );
    {
        let server = state.lock().unwrap();
        let requests = server.requests_to("Products");
        assert!(!requests.is_empty());
        // Each type's window is counted once, for progress (see
        // the_service_counts_each_types_window_once_for_progress).
        for target in requests.iter().filter(|t| option(t, "$count").is_none()) {
            let filter = option(target, "$filter").unwrap_or_default();
            assert!(
                filter.contains("Collection/Name eq 'SENTINEL-2'"),
                "{target}"
            );
            assert_eq!(
                option(target, "$expand").as_deref(),
                Some("Attributes"),
                "{target}"
            );
            assert!(
                option(target, "$orderby").is_some_and(|o| o.starts_with("ModificationDate")),
                "{target}"
            );
        }
        assert!(server.max_option("$top") <= 1000);
    }

    let before = archive.metadata_dates();
    let again = archive.sync(&["cdse"]);
    assert_done(
        &again,
        "0 created, 0 updated, 0 removed, 0 failed, 8 unchanged",
    );
    assert_eq!(
        archive.metadata_dates(),
        before,
        "an unchanged product is not written"
    );

    let forced = archive.sync(&["cdse", "--force"]);
    assert_done(
        &forced,
        "0 created, 8 updated, 0 removed, 0 failed, 0 unchanged",
    );

    // Upstream, a product is reprocessed (its ModificationDate moves) and
    // two products arrive, one exactly at the start of the window below and
    // one exactly at its end.
    {
        let mut server = state.lock().unwrap();
        server.products.update(id(p), |reprocessed| {
            reprocessed["ModificationDate"] = json!("2024-01-06T09:00:00.123456Z");
            // What the service no longer gives goes from the catalogue too.
            reprocessed["Checksum"] = json!([]);
            reprocessed["Footprint"] = Json::Null;
            reprocessed["GeoFootprint"] = Json::Null;
            set_attribute(reprocessed, "cloudCover", json!(1.5));
        });
        server.products.extend([
            product(10, "S2MSI2A", "2024-01-02T00:00:00.000000Z"),
            product(11, "S2MSI2A", "2024-01-04T00:00:00.000Z"),
        ]);
    }
    let changed = archive.sync(&["cdse", "-p", "S2MSI1C"]);
    assert_done(
        &changed,
        "0 created, 1 updated, 0 removed, 0 failed, 4 unchanged",
    );
    assert_eq!(
        archive.row(&format!(
            "SELECT \"cloudCover\", \"ModificationDate\" FROM cdse WHERE uuid = '{}'",
            uuid(p)
        )),
        ["1.5", "2024-01-06 09:00:00.123456"]
    );
    assert_eq!(
        archive.row(&format!(
            "SELECT hash, footprint, d.\"Checksum\" FROM core JOIN cdse d USING (uuid) WHERE uuid = '{}'",
            uuid(p)
        )),
        ["NULL", "NULL", "NULL"]
    );

    // A window, [start, end), of one type.
    let seen = state.lock().unwrap().seen.len();
    let window = archive.sync(&[
        "cdse",
        "-p",
        "S2MSI2A",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-04",
    ]);
    assert_done(
        &window,
        "1 created, 0 updated, 0 removed, 0 failed, 2 unchanged",
    );
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE product_type = 'S2MSI2A'"),
        4
    );
    let server = state.lock().unwrap();
    for target in &server.seen[seen..] {
        let filter = option(target, "$filter").unwrap_or_default();
        assert!(filter.contains("'S2MSI2A'"), "{target}");
        assert!(!filter.contains("'S2MSI1C'"), "{target}");
    }
}

on_both_backends!(deletions_remove_what_cdse_deleted_in_the_window_and_say_why);
fn deletions_remove_what_cdse_deleted_in_the_window_and_say_why(backend: Backend) {
    let mut all = product_list(0..4, "S2MSI1C", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    });
    all.extend(product_list(0..2, "S2MSI2A", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    }));
    let state = server(all.clone());
    let base = serve(state.clone());
    let archive = archive(backend, &base, &[]);
    assert_done(
        &archive.sync(&["cdse"]),
        "6 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );

    let never_synced = product(9, "S2MSI1C", "2024-01-01T00:00:00Z");
    {
        let mut server = state.lock().unwrap();
        for gone in [&all[0], &all[1], &all[4]] {
            server.products.remove(id(gone));
        }
        server.deleted = Products::from(vec![
            deleted(&all[0], "2024-02-01T08:00:00.000Z", "Duplicated product"),
            deleted(&all[1], "2024-02-02T08:00:00.123456Z", "Corrupted product"),
            deleted(
                &all[4],
                "2024-02-10T00:00:00.000000Z",
                "Obsolete product or Other",
            ),
            deleted(
                &never_synced,
                "2024-02-01T09:00:00.000Z",
                "Missing checksum",
            ),
        ]);
    }
    let seen = state.lock().unwrap().seen.len();
    let window = archive.sync(&["cdse", "--start", "2024-02-01", "--end", "2024-02-05"]);
    assert_done(
        &window,
        "0 created, 0 updated, 2 removed, 0 failed, 0 unchanged",
    );
    for cause in ["Duplicated product", "Corrupted product"] {
        assert!(window.stderr.contains(cause), "{cause}:\n{}", window.stderr);
    }
    assert!(
        !window.stderr.contains("Obsolete product"),
        "outside the window:\n{}",
        window.stderr
    );
    let mut left: Vec<String> = all[2..6].iter().map(|p| stored_uuid(&archive, p)).collect();
    left.sort();
    assert_eq!(archive.strings("SELECT uuid FROM core ORDER BY uuid"), left);
    assert_eq!(
        archive.count(&format!(
            "SELECT count(*) FROM cdse WHERE uuid IN ('{}', '{}')",
            uuid(&all[0]),
            uuid(&all[1])
        )),
        0,
        "the namespace rows go with the product"
    );
    let deletion_requests: Vec<String> = state.lock().unwrap().seen[seen..]
        .iter()
        .filter(|t| t.starts_with("/odata/v1/DeletedProducts?"))
        .cloned()
        .collect();
    assert!(!deletion_requests.is_empty());
    for target in deletion_requests {
        // The window is on DeletionDate: [start, end).
        let filter = option(&target, "$filter").unwrap();
        assert!(
            lower_bound(&target, "DeletionDate")
                .is_some_and(|t| t.starts_with("2024-02-01T00:00:00"))
                && filter.contains("DeletionDate lt 2024-02-05T00:00:00"),
            "deletions are read by DeletionDate in the window: {target}"
        );
    }

    let full = archive.sync(&["cdse"]);
    assert_done(
        &full,
        "0 created, 0 updated, 1 removed, 0 failed, 3 unchanged",
    );
    assert!(
        full.stderr.contains("Obsolete product or Other"),
        "{}",
        full.stderr
    );
    assert_eq!(archive.count("SELECT count(*) FROM core"), 3);

    // Without deletions = true, DeletedProducts is not read at all.
    let before = state.lock().unwrap().requests_to("DeletedProducts").len();
    let keep = self::archive(backend, &base, &[("deletions", None)]);
    assert_done(
        &keep.sync(&["cdse"]),
        "3 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    assert_eq!(
        state.lock().unwrap().requests_to("DeletedProducts").len(),
        before
    );
}

on_both_backends!(a_window_of_25000_products_is_synced_whole_past_the_skip_cap);
fn a_window_of_25000_products_is_synced_whole_past_the_skip_cap(backend: Backend) {
    // Four products share each time, two written with 3 fractional digits
    // and two with 6; 25,000 in about three hours of one day.
    let mut all = products(0..25_000, "S2MSI1C", |n| {
        after(
            "2024-03-01T00:00:00Z",
            (n / 4) as i64 * 1_700_000,
            if n % 2 == 0 { 3 } else { 6 },
        )
    });
    // Outside the window, or another type.
    all.push(product(30_000, "S2MSI1C", "2024-02-29T23:59:59.999999Z"));
    all.push(product(30_001, "S2MSI1C", "2024-03-02T00:00:00.000Z"));
    all.extend(product_list(0..5, "S2MSI2A", |_| {
        "2024-03-01T01:00:00.000Z".into()
    }));
    let state = server(all);
    let base = serve(state.clone());
    let archive = archive(backend, &base, &[]);
    let run = archive.sync(&[
        "cdse",
        "-p",
        "S2MSI1C",
        "--start",
        "2024-03-01",
        "--end",
        "2024-03-02",
    ]);
    assert_done(
        &run,
        "25000 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    assert_eq!(archive.count("SELECT count(*) FROM core"), 25_000);
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE product_type = 'S2MSI1C' AND validity_start < '2024-03-01'"),
        25_000
    );
    // Real data's gaps survive the mapping at scale.
    let every = |modulus: u64| (0..25_000).filter(|n| n % modulus == modulus - 1).count() as i64;
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE hash IS NULL"),
        every(97)
    );
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE footprint IS NULL"),
        every(89)
    );
    let server = state.lock().unwrap();
    assert!(
        server.max_option("$skip") <= 10_000,
        "a request had $skip {}",
        server.max_option("$skip")
    );
    assert!(server.max_option("$top") <= 1000);
    // The pages were full ones: no more requests than needed, give or take.
    let requests = server.requests_to("Products").len();
    assert!((25..=60).contains(&requests), "{requests} requests");
}

on_both_backends!(thousands_of_products_sharing_one_time_are_all_read_in_small_pages);
fn thousands_of_products_sharing_one_time_are_all_read_in_small_pages(backend: Backend) {
    let mut all = product_list(0..10, "S2MSI1C", |n| {
        format!("2024-01-0{}T00:00:00.000Z", n % 4 + 1)
    });
    // 2,500 with one ModificationDate (and one PublicationDate), written
    // both ways CDSE writes it.
    all.extend(product_list(10..2510, "S2MSI1C", |n| {
        if n % 2 == 0 {
            "2024-01-05T12:00:00.000Z".into()
        } else {
            "2024-01-05T12:00:00.000000Z".into()
        }
    }));
    all.extend(product_list(2510..2520, "S2MSI1C", |n| {
        format!("2024-01-0{}T00:00:00.000Z", n % 3 + 6)
    }));
    let state = server(all.clone());
    let base = serve(state.clone());
    for time_field in ["ModificationDate", "PublicationDate"] {
        let seen = state.lock().unwrap().seen.len();
        let archive = archive(
            backend,
            &base,
            &[
                ("page_size", Some("100")),
                ("time_field", Some(&format!("\"{time_field}\""))),
            ],
        );
        let run = archive.sync(&["cdse"]);
        assert_done(
            &run,
            "2520 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
        );
        let mut expected: Vec<String> = all.iter().map(|p| stored_uuid(&archive, p)).collect();
        expected.sort();
        assert_eq!(
            archive.strings("SELECT uuid FROM core ORDER BY uuid"),
            expected
        );
        let server = state.lock().unwrap();
        for target in server.seen[seen..]
            .iter()
            // The window's count asks for no order.
            .filter(|t| t.starts_with("/odata/v1/Products?") && option(t, "$count").is_none())
        {
            assert!(
                option(target, "$top").is_some_and(|t| t.parse::<u64>().unwrap() <= 100),
                "page_size is the largest $top: {target}"
            );
            assert!(
                option(target, "$orderby").is_some_and(|o| o.starts_with(time_field)),
                "{target}"
            );
        }
        assert!(server.max_option("$skip") <= 10_000);
    }
}

on_both_backends!(busy_answers_are_retried_and_running_out_of_retries_fails_loudly);
fn busy_answers_are_retried_and_running_out_of_retries_fails_loudly(backend: Backend) {
    let all = product_list(0..6, "S2MSI1C", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    });
    let state = server(all.clone());
    state.lock().unwrap().failures =
        vec![(429, "Retry-After: 1\r\n"), (503, ""), (503, ""), (503, "")];
    let base = serve(state.clone());
    let archive = Archive::on(
        backend,
        &section("cdse", &base, &[("page_size", Some("2"))])
            .replace("max_retries = 3", "max_retries = 4"),
    );
    let began = std::time::Instant::now();
    let run = archive.sync(&["cdse", "-p", "S2MSI1C"]);
    assert_done(
        &run,
        "6 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    assert!(
        began.elapsed() >= std::time::Duration::from_secs(1),
        "the 429's Retry-After: 1 was not waited for"
    );
    assert!(
        run.stderr.contains("429") && run.stderr.contains("503"),
        "the retries are logged:\n{}",
        run.stderr
    );

    // The service goes down after two answers: the run fails naming the
    // request and the status, and keeps what it read before.
    let archive = self::archive(
        backend,
        &base,
        &[("page_size", Some("2")), ("deletions", Some("false"))],
    );
    {
        let mut server = state.lock().unwrap();
        let down_from = server.seen.len() + 2;
        server.outage = Some((down_from, 503));
    }
    let failed = archive.sync(&["cdse", "-p", "S2MSI1C"]);
    failed.assert_error(1, &["503", "/odata/v1/Products"]);
    // The first page, at least, was read and written before the outage.
    let kept = archive.count("SELECT count(*) FROM core");
    assert!(
        (2..6).contains(&kept),
        "what was read before the outage is kept: {kept}\n{}",
        failed.stderr
    );
    {
        let mut server = state.lock().unwrap();
        let (down_from, _) = server.outage.unwrap();
        // The window's count, asked for beside the pages, may meet the
        // outage too; it is retried as a page is, and does not end the run.
        let pages = server.seen[down_from..]
            .iter()
            .filter(|t| option(t, "$count").is_none())
            .count();
        assert_eq!(
            pages,
            4,
            "max_retries = 3: four attempts, then the run gives up: {:?}",
            &server.seen[down_from..]
        );
        server.outage = None;
    }
    let resumed = archive.sync(&["cdse", "-p", "S2MSI1C"]);
    assert_done(
        &resumed,
        &format!(
            "{} created, 0 updated, 0 removed, 0 failed, {kept} unchanged",
            6 - kept
        ),
    );
}

on_both_backends!(products_map_to_core_and_the_cdse_namespace_as_they_come);
fn products_map_to_core_and_the_cdse_namespace_as_they_come(backend: Backend) {
    let modified = |n: u64| format!("2024-01-{:02}T00:00:00.000Z", n + 1);
    let mut all = product_list(0..12, "S2MSI1C", modified);
    // Times with 3 and with 6 fractional digits.
    all[0]["ContentDate"] =
        json!({"Start": "2024-01-01T10:10:31.024Z", "End": "2024-01-01T10:10:31.024Z"});
    all[0]["OriginDate"] = json!("2024-01-01T11:30:00.500Z");
    all[1]["ContentDate"] =
        json!({"Start": "2024-01-01T10:11:08.024123Z", "End": "2024-01-01T10:11:09.000000Z"});
    all[1]["OriginDate"] = json!("2024-01-01T11:30:00.000001Z");
    // Footprints: none, a MultiPolygon, WKT only.
    all[2]["Footprint"] = Json::Null;
    all[2]["GeoFootprint"] = Json::Null;
    antimeridian(&mut all[3]);
    all[4]["GeoFootprint"] = Json::Null;
    all[4]["Footprint"] = json!("geography'SRID=4326;POLYGON ((5 52, 6 52, 6 53, 5 53, 5 52))'");
    // Checksums: none, no MD5.
    all[5]["Checksum"] = json!([]);
    all[6]["Checksum"] = json!([all[6]["Checksum"][1].clone()]);
    // Names.
    let stem = "S2A_MSIL1C_20240101T101031_N0510_R022_T32UQD_20240101T121104";
    all[7]["Name"] = json!(format!("{stem}.SAFE.zip"));
    all[8]["Name"] = json!("S2A_OPER_MSI_L1C_DS_2APS_20240101T121104_S20240101T101031_N05.10");
    all[9]["Name"] = json!("S2A_MSIL1C_20240101T101031_N0510_R022_T32UQE_20240101T121104.tar");
    // Size unknown, offline.
    all[10]["ContentLength"] = json!(0);
    all[10]["Online"] = json!(false);
    // Typed attributes: the first cloudCover an integer in JSON, a Double
    // all the same; a Boolean.
    set_attribute(&mut all[0], "cloudCover", json!(12));
    all[11]["Attributes"].as_array_mut().unwrap().push(json!({
        "@odata.type": "#OData.CSC.BooleanAttribute", "Name": "qualityCheckPassed", "Value": true, "ValueType": "Boolean"
    }));
    // Other missions, in their own sections.
    let s5p = product(0, "L2__NO2___", "2024-01-03T00:00:00.000000Z");
    let aux = product(0, "AUX_POEORB", "2024-01-03T00:00:00.000000Z");
    let mut served = all.clone();
    served.extend([s5p.clone(), aux.clone()]);
    let state = server(served);
    let base = serve(state.clone());
    let download = "https://download.example.org/odata/v1";
    let archive = Archive::on(
        backend,
        &format!(
            "{}{}{}",
            section(
                "cdse",
                &base,
                &[("download_url", Some(&format!("\"{download}\"")))]
            ),
            section(
                "s5p",
                &base,
                &[
                    ("collection", Some("\"SENTINEL-5P\"")),
                    ("product_types", Some("[\"L2__NO2___\"]"))
                ]
            ),
            section(
                "aux",
                &base,
                &[
                    ("collection", Some("\"SENTINEL-1\"")),
                    ("product_types", Some("[\"AUX_POEORB\"]"))
                ]
            ),
        ),
    );
    assert_done(
        &archive.sync(&["cdse"]),
        "12 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    assert_done(
        &archive.sync(&["s5p"]),
        "1 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    assert_done(
        &archive.sync(&["aux"]),
        "1 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    // Read back, every one of them is what the service says: nothing to write.
    assert_done(
        &archive.sync(&["cdse"]),
        "0 created, 0 updated, 0 removed, 0 failed, 12 unchanged",
    );
    let core = |p: &Json, columns: &str| {
        archive.row(&format!(
            "SELECT {columns} FROM core WHERE uuid = '{}'",
            uuid(p)
        ))
    };
    let times = "validity_start, validity_stop, creation_date";
    let at =
        |times: &[&str]| -> Vec<String> { times.iter().map(|t| archive.time_text(t)).collect() };
    assert_eq!(
        core(&all[0], times),
        at(&[
            "2024-01-01 10:10:31.024000",
            "2024-01-01 10:10:31.024000",
            "2024-01-01 11:30:00.500000"
        ])
    );
    assert_eq!(
        core(&all[1], times),
        at(&[
            "2024-01-01 10:11:08.024123",
            "2024-01-01 10:11:09",
            "2024-01-01 11:30:00.000001"
        ])
    );

    assert_eq!(footprint(&archive, &all[2]).0, "NULL");
    let (kind, bounds) = footprint(&archive, &all[3]);
    assert_eq!(kind, "MULTIPOLYGON");
    assert_eq!(bounds, [-180.0, 10.0, 180.0, 11.0]);
    assert_eq!(
        footprint(&archive, &all[4]),
        ("POLYGON".to_string(), vec![5.0, 52.0, 6.0, 53.0])
    );
    let square = &all[0]["GeoFootprint"]["coordinates"][0];
    assert_eq!(
        footprint(&archive, &all[0]),
        (
            "POLYGON".to_string(),
            vec![
                square[0][0].as_f64().unwrap(),
                square[0][1].as_f64().unwrap(),
                square[2][0].as_f64().unwrap(),
                square[2][1].as_f64().unwrap()
            ]
        )
    );

    assert_eq!(core(&all[5], "hash"), ["NULL"]);
    assert_eq!(core(&all[6], "hash"), ["NULL"]);
    assert_eq!(
        core(&all[0], "hash"),
        [format!(
            "md5:{}",
            all[0]["Checksum"][0]["Value"].as_str().unwrap()
        )]
    );
    let checksum: Json = serde_json::from_str(
        &archive.row(&format!(
            "SELECT \"Checksum\" FROM cdse WHERE uuid = '{}'",
            uuid(&all[0])
        ))[0],
    )
    .expect("Checksum is JSON text");
    assert_eq!(checksum, all[0]["Checksum"]);

    let names = "product_name, physical_name";
    assert_eq!(
        core(&all[7], names),
        [stem.to_string(), format!("{stem}.SAFE.zip")]
    );
    for kept in [&all[8], &all[9]] {
        let name = kept["Name"].as_str().unwrap();
        assert_eq!(core(kept, names), [name, name]);
    }
    let s5p_name = s5p["Name"].as_str().unwrap();
    assert_eq!(
        core(&s5p, &format!("{names}, product_type")),
        [s5p_name.trim_end_matches(".nc"), s5p_name, "L2__NO2___"]
    );
    let aux_name = aux["Name"].as_str().unwrap();
    assert_eq!(
        core(&aux, names),
        [aux_name.trim_end_matches(".EOF"), aux_name]
    );

    assert_eq!(
        core(&all[10], "size, remote_url"),
        [
            "0".to_string(),
            format!("{download}/Products({})/$value", id(&all[10]))
        ]
    );
    assert_eq!(
        archive.row(&format!(
            "SELECT \"Online\", \"ContentLength\" FROM cdse WHERE uuid = '{}'",
            uuid(&all[10])
        )),
        [archive.boolean(false), "0"]
    );

    assert_eq!(
        archive.row(&format!(
            "SELECT {}, \"cloudCover\", {}, \"processingDate\", \"productType\", {} \
             FROM cdse WHERE uuid = '{}'",
            archive.kind_of("\"cloudCover\""),
            archive.kind_of("\"orbitNumber\""),
            archive.kind_of("\"Online\""),
            uuid(&all[0])
        )),
        [
            "real",
            "12",
            "integer",
            stored(
                &archive,
                all[0]["Attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["Name"] == "processingDate")
                    .unwrap()["Value"]
                    .as_str()
                    .unwrap()
            )
            .as_str(),
            "S2MSI1C",
            // SQLite has no boolean type: muninn's booleans are integers there.
            backend.pick("integer", "boolean")
        ]
    );
    // With name_suffixes = [".zip"], only that ending goes.
    let zip_only = Archive::on(
        backend,
        &section("cdse", &base, &[("name_suffixes", Some("[\".zip\"]"))]),
    );
    assert_done(
        &zip_only.sync(&["cdse"]),
        "12 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    for (p, name) in [
        (&all[7], format!("{stem}.SAFE")),
        (&all[0], all[0]["Name"].as_str().unwrap().to_string()),
    ] {
        assert_eq!(
            zip_only.strings(&format!(
                "SELECT product_name FROM core WHERE uuid = '{}'",
                uuid(p)
            )),
            [name]
        );
    }

    assert_eq!(
        archive.row(&format!(
            "SELECT \"qualityCheckPassed\" FROM cdse WHERE uuid = '{}'",
            uuid(&all[11])
        )),
        [archive.boolean(true)]
    );
    assert_eq!(
        archive.strings(
            "SELECT property || ' ' || type FROM muninn_sync_columns WHERE namespace = 'cdse' AND property IN \
             ('ContentType', 'ContentLength', 'OriginDate', 'PublicationDate', 'ModificationDate', 'EvictionDate', \
              'Online', 'S3Path', 'Checksum', 'cloudCover', 'orbitNumber', 'processingDate', 'productType', \
              'qualityCheckPassed') ORDER BY property"
        ),
        [
            "Checksum json",
            "ContentLength integer",
            "ContentType text",
            "EvictionDate timestamp",
            "ModificationDate timestamp",
            "Online boolean",
            "OriginDate timestamp",
            "PublicationDate timestamp",
            "S3Path text",
            "cloudCover real",
            "orbitNumber integer",
            "processingDate timestamp",
            "productType text",
            "qualityCheckPassed boolean",
        ]
    );
}

/// The text of a recorded CDSE answer in tests/fixtures/real/odata.
fn fixture(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/real/odata")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

on_both_backends!(records_as_cdse_returned_them_are_synced_without_their_unreadable_fields);
fn records_as_cdse_returned_them_are_synced_without_their_unreadable_fields(backend: Backend) {
    // Sentinel-1: a product with "EvictionDate": "", "Checksum": [{}] and
    // integers in Double attributes, and auxiliary products without
    // footprints, named .SAFE, .EOF and nothing.
    let cog = recorded(
        &fixture("constructed-hls-test-notification-sentinel-1-cog.json"),
        "SENTINEL-1",
    );
    let aux = recorded(&fixture("cdsetool-sentinel-1-aux-page.json"), "SENTINEL-1");
    // Sentinel-2: footprints, long doubles, an attribute time with +00:00.
    let mut s2 = recorded(
        &fixture("eodag-cop-dataspace-sentinel-2-l1c.json"),
        "SENTINEL-2",
    );
    s2.extend(recorded(
        &fixture("hls-notification-sentinel-2-l1c.json"),
        "SENTINEL-2",
    ));
    let mut served = s2.clone();
    served.extend(cog.iter().chain(&aux).cloned());
    let state = server(served);
    let base = serve(state.clone());
    let archive = Archive::on(
        backend,
        &format!(
            "{}{}",
            section("cdse", &base, &[("product_types", Some("[\"S2MSI1C\"]"))]),
            section(
                "s1",
                &base,
                &[
                    ("collection", Some("\"SENTINEL-1\"")),
                    (
                        "product_types",
                        Some("[\"S3_GRDH_1S-COG\", \"AUX_INS\", \"AUX_POEORB\", \"AUX_PROQUA\"]")
                    )
                ]
            ),
        ),
    );

    let run = archive.sync(&["s1"]);
    assert_done(
        &run,
        "4 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    let cog_name = "S1A_S3_GRDH_1SDV_20230801T152912_20230801T152931_049683_05F970_0441_COG";
    for (field, reason) in [
        ("EvictionDate", "blank"),
        ("Checksum", "an entry without Algorithm or Value: {}"),
    ] {
        let warning = run
            .stderr
            .lines()
            .find(|l| l.contains("left out a field") && l.contains(&format!("field={field}")))
            .unwrap_or_else(|| panic!("no warning for {field}:\n{}", run.stderr));
        assert!(
            warning.starts_with(&format!(
                "WARN: [odata] left out a field the product could do without: {reason} ("
            )) && warning.contains(&format!("product=SENTINEL-1/{cog_name}.SAFE")),
            "{warning}"
        );
    }
    assert!(
        run.stderr.contains(
            "WARN: [odata] left out blank, null or malformed fields of remote records \
             (the products were kept without them): Checksum x1, EvictionDate x1 total=2"
        ),
        "{}",
        run.stderr
    );
    let cog = &cog[0];
    assert_eq!(
        archive.row(&format!(
            "SELECT product_name, size, hash, validity_start, validity_stop, creation_date FROM core WHERE uuid = '{}'",
            uuid(cog)
        )),
        [
            cog_name.to_string(),
            "161991897".into(),
            "NULL".into(),
            archive.time_text("2023-08-01 15:29:12.689000"),
            archive.time_text("2023-08-01 15:29:31.839000"),
            archive.time_text("2023-08-01 16:54:32.762000")
        ]
    );
    assert_eq!(footprint(&archive, cog).0, "POLYGON");
    assert_eq!(
        archive.row(&format!(
            "SELECT \"EvictionDate\", \"Checksum\", {}, \"startTimeFromAscendingNode\", \
             \"processingDate\", \"orbitNumber\" FROM cdse WHERE uuid = '{}'",
            archive.kind_of("\"startTimeFromAscendingNode\""),
            uuid(cog)
        )),
        [
            "NULL",
            "NULL",
            "real",
            "5712238",
            "2023-08-01 16:43:32.478663",
            "49683"
        ]
    );
    for p in &aux {
        assert_eq!(footprint(&archive, p).0, "NULL");
    }
    let mut names = archive.strings(
        "SELECT product_type || ' ' || product_name FROM core WHERE product_type LIKE 'AUX%' ORDER BY 1",
    );
    names.sort();
    assert_eq!(
        names,
        [
            "AUX_INS S1A_AUX_INS_V20140406T133000_G20251015T074233",
            "AUX_POEORB S1A_OPER_AUX_POEORB_OPOD_20210301T130653_V20140406T225944_20140408T005944",
            "AUX_PROQUA S1A_OPER_AUX_PROQUA_POD__20210114T081132_V20140406T235944_20140407T235943",
        ]
    );

    let run = archive.sync(&["cdse"]);
    assert_done(
        &run,
        "3 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    assert!(!run.stderr.contains("left out"), "{}", run.stderr);
    let notified = &s2[2];
    assert_eq!(
        archive.row(&format!(
            "SELECT \"processingDate\", \"EvictionDate\", \"cloudCover\" FROM cdse WHERE uuid = '{}'",
            uuid(notified)
        )),
        [
            "2024-09-12 13:34:20".to_string(),
            archive.time_text("9999-12-31 23:59:59.999000"),
            "97.680833965944".into()
        ]
    );
    assert_eq!(
        archive.row(&format!(
            "SELECT \"cloudCover\" FROM cdse WHERE uuid = '{}'",
            uuid(&s2[0])
        )),
        ["95.136736479015"]
    );
    assert_eq!(
        footprint(&archive, &s2[0]).1,
        [
            142.352793016856,
            13.4725397858819,
            142.943807935726,
            14.2240507608538
        ]
    );

    // Read again, nothing differs: the fields left out stay out.
    let run = archive.sync(&["s1"]);
    assert_done(
        &run,
        "0 created, 0 updated, 0 removed, 0 failed, 4 unchanged",
    );
    assert!(run.stderr.contains("EvictionDate x1"), "{}", run.stderr);
    assert_done(
        &archive.sync(&["cdse"]),
        "0 created, 0 updated, 0 removed, 0 failed, 3 unchanged",
    );
}

on_both_backends!(a_duplicate_waits_for_cdse_to_delete_the_other_and_a_bad_product_is_skipped);
fn a_duplicate_waits_for_cdse_to_delete_the_other_and_a_bad_product_is_skipped(backend: Backend) {
    let mut all = product_list(0..4, "S2MSI1C", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    });
    // CDSE lists two products with one name (and later deletes one as a
    // "Duplicated product"), and one whose sensing start is not a time.
    all[2]["Name"] = all[0]["Name"].clone();
    let start = all[3]["ContentDate"]["Start"].clone();
    all[3]["ContentDate"]["Start"] = json!("yesterday");
    let state = server(all.clone());
    let base = serve(state.clone());
    let archive = archive(backend, &base, &[]);
    let run = archive.sync(&["cdse"]);
    run.assert_error(1, &["2 product(s) could not be synced"]);
    let first_error = run.errors()[0].to_string();
    assert!(
        run.stderr.contains("ContentDate/Start"),
        "the bad field is named:\n{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("2 created, 0 updated, 0 removed, 2 failed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.strings("SELECT uuid FROM core ORDER BY validity_start"),
        [
            stored_uuid(&archive, &all[0]),
            stored_uuid(&archive, &all[1])
        ]
    );

    // CDSE deletes the first of the two and corrects the other product.
    {
        let mut server = state.lock().unwrap();
        server.products.remove(id(&all[0]));
        server.deleted = Products::from(vec![deleted(
            &all[0],
            "2024-01-05T00:00:00.000Z",
            "Duplicated product",
        )]);
        server.products.update(id(&all[3]), |bad| {
            bad["ModificationDate"] = json!("2024-01-05T10:00:00.000Z");
            bad["ContentDate"]["Start"] = start;
        });
    }
    let run = archive.sync(&["cdse"]);
    assert_done(
        &run,
        "2 created, 0 updated, 1 removed, 0 failed, 1 unchanged",
    );
    assert_eq!(
        archive.strings("SELECT uuid FROM core ORDER BY validity_start"),
        [
            stored_uuid(&archive, &all[1]),
            stored_uuid(&archive, &all[2]),
            stored_uuid(&archive, &all[3])
        ]
    );
    // Both products have one name: only the Id says which one waits (the
    // two came in one page here).
    assert!(
        first_error.contains(id(&all[2])),
        "the skipped duplicate's Id is not named: {first_error}"
    );
}

on_both_backends!(remote_urls_point_at_cdses_download_host_by_default);
fn remote_urls_point_at_cdses_download_host_by_default(backend: Backend) {
    let all = product_list(0..2, "S2MSI1C", |_| "2024-01-01T10:00:00.000Z".into());
    let state = server(all.clone());
    let base = serve(state.clone());
    let archive = Archive::on(
        backend,
        &section("cdse", "http://catalogue.dataspace.copernicus.eu", &[]),
    );
    // CDSE's catalogue host is reached through a proxy: this server.
    let run = muninn_sync(
        archive.dir.path(),
        &["archive.toml", "cdse"],
        &[("http_proxy", &base), ("HTTP_PROXY", &base)],
    );
    assert_done(
        &run,
        "2 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    let mut expected: Vec<String> = all
        .iter()
        .map(|p| {
            format!(
                "http://download.dataspace.copernicus.eu/odata/v1/Products({})/$value",
                id(p)
            )
        })
        .collect();
    expected.sort();
    assert_eq!(
        archive.strings("SELECT remote_url FROM core ORDER BY 1"),
        expected
    );
    assert!(!state.lock().unwrap().requests_to("Products").is_empty());
}

on_both_backends!(the_request_rate_stays_under_max_requests_per_minute);
fn the_request_rate_stays_under_max_requests_per_minute(backend: Backend) {
    let state = server(product_list(0..6, "S2MSI1C", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    }));
    let base = serve(state.clone());
    let archive = archive(
        backend,
        &base,
        &[
            ("page_size", Some("1")),
            ("deletions", None),
            ("max_requests_per_minute", Some("300")),
        ],
    );
    let began = std::time::Instant::now();
    assert_done(
        &archive.sync(&["cdse", "-p", "S2MSI1C"]),
        "6 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    let elapsed = began.elapsed();
    let requests = state.lock().unwrap().seen.len() as u32;
    assert!(requests >= 6, "{requests}");
    // 300 a minute: a request every 0.2 s at most.
    assert!(
        elapsed >= std::time::Duration::from_millis(200) * (requests - 1),
        "{requests} requests in {elapsed:?}"
    );
}

on_both_backends!(configuration_errors_name_the_key_and_ask_nothing_of_the_service);
fn configuration_errors_name_the_key_and_ask_nothing_of_the_service(backend: Backend) {
    let state = server(product_list(0..2, "S2MSI1C", |_| {
        "2024-01-01T00:00:00Z".into()
    }));
    let base = serve(state.clone());
    let cases: [(Changes, &[&str]); 6] = [
        (&[("page_size", Some("5000"))], &["page_size", "5000"]),
        (&[("page_size", Some("0"))], &["page_size"]),
        (&[("time_field", Some("\"Foo\""))], &["time_field", "Foo"]),
        (&[("collection", None)], &["collection"]),
        (&[("url", None)], &["url"]),
        (&[("colour", Some("\"blue\""))], &["colour"]),
    ];
    for (changes, parts) in cases {
        let archive = archive(backend, &base, changes);
        let run = archive.sync(&["cdse"]);
        let mut parts = parts.to_vec();
        parts.push("synchronizer:cdse");
        run.assert_error(1, &parts);
    }
    // No product types at all: neither in the section nor on the command line.
    let archive = archive(backend, &base, &[("product_types", None)]);
    let run = archive.sync(&["cdse"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.errors().len(), 1, "{}", run.stderr);
    assert!(
        run.errors()[0].contains("product_types") || run.errors()[0].contains("-p"),
        "the error should say how to name product types: {}",
        run.stderr
    );
    assert!(
        state.lock().unwrap().seen.is_empty(),
        "{:?}",
        state.lock().unwrap().seen
    );
    // With -p, product_types is not needed.
    assert_done(
        &archive.sync(&["cdse", "-p", "S2MSI1C"]),
        "2 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
}

on_both_backends!(an_incremental_run_starts_at_the_watermark);
fn an_incremental_run_starts_at_the_watermark(backend: Backend) {
    let mut all = product_list(0..3, "S2MSI1C", |n| {
        format!("2024-01-0{}T10:00:00.000000Z", n + 1)
    });
    all.extend(product_list(0..2, "S2MSI2A", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    }));
    let state = server(all.clone());
    let base = serve(state.clone());
    let archive = archive(backend, &base, &[]);
    assert_done(
        &archive.sync(&["cdse", "--incremental"]),
        "5 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    assert_eq!(
        archive.strings(
            "SELECT product_type || ' ' || watermark FROM muninn_sync_watermarks ORDER BY 1"
        ),
        ["S2MSI1C 2024-01-03 10:00:00", "S2MSI2A 2024-01-02 10:00:00"]
    );

    // Upstream: a new product, a changed one, and a deletion.
    {
        let mut server = state.lock().unwrap();
        server
            .products
            .push(product(3, "S2MSI1C", "2024-01-04T10:00:00.000Z"));
        server.products.update(id(&all[3]), |changed| {
            changed["ModificationDate"] = json!("2024-01-05T10:00:00.000Z");
            changed["Online"] = json!(false);
        });
        server.products.remove(id(&all[0]));
        server.deleted = Products::from(vec![deleted(
            &all[0],
            "2024-01-04T12:00:00.000Z",
            "Duplicated product",
        )]);
    }
    let seen = state.lock().unwrap().seen.len();
    let run = archive.sync(&["cdse", "--incremental"]);
    // The window starts at the older watermark (S2MSI2A's) minus the
    // 10-minute lookback: what is since then is read again, and found
    // unchanged.
    assert_done(
        &run,
        "1 created, 1 updated, 1 removed, 0 failed, 3 unchanged",
    );
    let server = state.lock().unwrap();
    let requests = &server.seen[seen..];
    assert!(!requests.is_empty());
    for target in requests {
        let field = if target.contains("DeletedProducts") {
            "DeletionDate"
        } else {
            "ModificationDate"
        };
        let start =
            lower_bound(target, field).unwrap_or_else(|| panic!("no {field} ge in {target}"));
        assert!(
            start.starts_with("2024-01-02T09:50:00"),
            "the window starts at the watermark minus the lookback: {target}"
        );
    }
    assert_eq!(archive.count("SELECT count(*) FROM core"), 5);
    assert_eq!(
        archive.strings(&format!(
            "SELECT \"Online\" FROM cdse WHERE uuid = '{}'",
            uuid(&all[3])
        )),
        [archive.boolean(false)]
    );
}

on_both_backends!(an_extra_filter_is_and_ed_and_one_the_service_refuses_fails_with_its_answer);
fn an_extra_filter_is_and_ed_and_one_the_service_refuses_fails_with_its_answer(backend: Backend) {
    let mut all = product_list(0..4, "S2MSI1C", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    });
    all[1]["Online"] = json!(false);
    let state = server(all.clone());
    let base = serve(state.clone());
    let archive = archive(
        backend,
        &base,
        &[("filter", Some("\"Online eq true\"")), ("deletions", None)],
    );
    assert_done(
        &archive.sync(&["cdse", "-p", "S2MSI1C"]),
        "3 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    assert_eq!(
        archive.count(&format!(
            "SELECT count(*) FROM core WHERE uuid = '{}'",
            uuid(&all[1])
        )),
        0
    );
    for target in state.lock().unwrap().requests_to("Products") {
        assert!(
            option(&target, "$filter").is_some_and(|f| f.contains("Online eq true")),
            "{target}"
        );
    }

    let seen = state.lock().unwrap().seen.len();
    archive.configure(&section(
        "cdse",
        &base,
        &[("filter", Some("\"Nonsense eq 1\"")), ("deletions", None)],
    ));
    let refused = archive.sync(&["cdse", "-p", "S2MSI1C"]);
    refused.assert_error(1, &["400", "/odata/v1/Products", "Nonsense"]);
    // The window's count, asked for beside the pages, is refused too (when
    // it is sent before the run ends).
    let server = state.lock().unwrap();
    let pages: Vec<&String> = server.seen[seen..]
        .iter()
        .filter(|t| option(t, "$count").is_none())
        .collect();
    assert_eq!(pages.len(), 1, "a 400 is not retried: {pages:?}");
    assert!(server.seen.len() - seen <= 2, "{:?}", &server.seen[seen..]);
}

on_both_backends!(more_products_with_one_time_than_skip_can_pass_are_read_by_their_sensing_time);
fn more_products_with_one_time_than_skip_can_pass_are_read_by_their_sensing_time(backend: Backend) {
    // A bulk change stamps every product it touches with one
    // ModificationDate: 12,000 of them here, more than $skip's 10,000.
    let mut all = product_list(0..5, "S2MSI1C", |n| format!("2024-01-01T0{n}:00:00.000Z"));
    all.extend(product_list(5..12_005, "S2MSI1C", |_| {
        "2024-01-05T12:00:00.123456Z".into()
    }));
    all.extend(product_list(12_005..12_010, "S2MSI1C", |n| {
        format!("2024-01-06T0{}:00:00.000Z", n - 12_005)
    }));
    let state = server(all.clone());
    let base = serve(state.clone());
    let archive = archive(backend, &base, &[("deletions", Some("false"))]);

    let first = archive.sync(&["cdse", "-p", "S2MSI1C", "--incremental"]);
    assert_done(
        &first,
        "12010 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    assert!(
        first
            .stderr
            .contains("reading them in order of ContentDate/Start"),
        "{}",
        first.stderr
    );
    assert_eq!(archive.count("SELECT count(*) FROM core"), 12_010);
    {
        let server = state.lock().unwrap();
        assert!(server.max_option("$skip") <= 10_000);
        assert!(server
            .requests_to("Products")
            .iter()
            .any(|t| option(t, "$orderby").is_some_and(|o| o.starts_with("ContentDate/Start"))));
    }
    // The watermark is the last product's, past the crowd.
    assert_eq!(
        archive
            .strings("SELECT watermark FROM muninn_sync_watermarks WHERE product_type = 'S2MSI1C'"),
        ["2024-01-06 04:00:00"]
    );

    let again = archive.sync(&["cdse", "-p", "S2MSI1C", "--start", "2024-01-01"]);
    assert_done(
        &again,
        "0 created, 0 updated, 0 removed, 0 failed, 12010 unchanged",
    );
}

/// A CDSE time `minutes` from now, as CDSE writes it.
fn minutes_from_now(minutes: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(minutes))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

on_both_backends!(products_that_move_away_while_a_crowd_of_one_time_is_read_cost_nothing);
fn products_that_move_away_while_a_crowd_of_one_time_is_read_cost_nothing(backend: Backend) {
    // 3,000 products share one ModificationDate; after the first page, a
    // second bulk change moves the 600 with the lowest Ids to a later time.
    // A $skip counted from what was read would now step over unread ones.
    let crowd = "2024-01-05T12:00:00.000000Z";
    let mut all = product_list(0..3000, "S2MSI1C", |_| crowd.into());
    all.extend(product_list(3000..3005, "S2MSI1C", |n| {
        format!("2024-01-06T0{}:00:00.000Z", n - 3000)
    }));
    let mut lowest: Vec<String> = all[..3000].iter().map(|p| id(p).to_string()).collect();
    lowest.sort();
    lowest.truncate(600);
    let state = server(all);
    let mut pages = 0;
    state.lock().unwrap().before_answer = Some(Box::new(move |_, target, products, _| {
        // Pages, not the window's count asked for beside them.
        if !target.starts_with("/odata/v1/Products") || option(target, "$count").is_some() {
            return;
        }
        pages += 1;
        if pages == 2 {
            for id in &lowest {
                products.update(id, |p| {
                    p["ModificationDate"] = json!("2024-01-05T13:00:00.000000Z")
                });
            }
        }
    }));
    let base = serve(state.clone());
    let archive = archive(backend, &base, &[("deletions", Some("false"))]);
    let run = archive.sync(&["cdse", "-p", "S2MSI1C"]);
    run.assert_ok();
    assert!(
        run.stderr.contains("changed while they were being read"),
        "{}",
        run.stderr
    );
    assert_eq!(archive.count("SELECT count(*) FROM core"), 3005);
    // The moved ones carry their new time.
    assert_eq!(
        archive
            .count("SELECT count(*) FROM cdse WHERE \"ModificationDate\" = '2024-01-05 13:00:00'"),
        600
    );
}

on_both_backends!(a_deletion_made_while_the_products_are_read_is_applied_by_the_next_run);
fn a_deletion_made_while_the_products_are_read_is_applied_by_the_next_run(backend: Backend) {
    let all = product_list(0..5, "S2MSI1C", |n| minutes_from_now(-120 + n as i64));
    let victim = all[0].clone();
    let state = server(all);
    let base = serve(state.clone());
    let archive = archive(backend, &base, &[("incremental", Some("true"))]);
    assert_done(
        &archive.sync(&["cdse", "-p", "S2MSI1C"]),
        "5 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    // During the next run's product read (its deletions were read first),
    // CDSE deletes the victim and changes another product: a long read
    // would see that change, minutes later than the deletion.
    let once = std::sync::atomic::AtomicBool::new(false);
    let later = product(99, "S2MSI1C", &minutes_from_now(20));
    state.lock().unwrap().before_answer =
        Some(Box::new(move |_, target, products, deleted_now| {
            if target.starts_with("/odata/v1/Products")
                && !once.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                products.remove(id(&victim));
                deleted_now.push(deleted(&victim, &minutes_from_now(0), "Corrupted product"));
                products.push(later.clone());
            }
        }));
    archive.sync(&["cdse", "-p", "S2MSI1C"]).assert_ok();
    // The change dated in the future is not read before its time: the
    // window of a run with deletions ends when the run starts.
    assert_eq!(archive.count("SELECT count(*) FROM core"), 5);
    let third = archive.sync(&["cdse", "-p", "S2MSI1C"]);
    assert_done(
        &third,
        "0 created, 0 updated, 1 removed, 0 failed, 4 unchanged",
    );
    assert!(
        third.stderr.contains("Corrupted product"),
        "{}",
        third.stderr
    );
}

on_both_backends!(a_product_muninn_holds_under_the_same_name_is_left_alone);
fn a_product_muninn_holds_under_the_same_name_is_left_alone(backend: Backend) {
    let all = product_list(0..3, "S2MSI1C", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    });
    let first_name = all[0]["Name"].as_str().unwrap().to_string();
    let state = server(all);
    let base = serve(state.clone());
    let archive = archive(backend, &base, &[("deletions", Some("false"))]);
    archive.sync(&["cdse", "-p", "S2MSI1C"]).assert_ok();
    // As if muninn had ingested the first product itself: its own uuid, a
    // local file, no cdse row.
    archive.execute(
            "DELETE FROM cdse WHERE uuid = (SELECT uuid FROM core ORDER BY validity_start LIMIT 1);
             DELETE FROM muninn_sync_owners WHERE uuid = (SELECT uuid FROM core ORDER BY validity_start LIMIT 1);
             UPDATE core SET uuid = '00000000000000000000000000000001', archive_path = 'S2/2024',
                 size = 1, hash = 'md5:00000000000000000000000000000000'
             WHERE uuid = (SELECT uuid FROM core ORDER BY validity_start LIMIT 1);",
    );
    state
        .lock()
        .unwrap()
        .products
        .push(product(7, "S2MSI1C", "2024-01-09T10:00:00.000Z"));
    let run = archive.sync(&["cdse", "-p", "S2MSI1C", "--force"]);
    assert_done(
        &run,
        "1 created, 2 updated, 0 removed, 0 failed, 0 unchanged",
    );
    assert!(
        run.stderr.contains("left alone")
            && run.stderr.contains("00000000-0000-0000-0000-000000000001"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.strings(&format!(
            "SELECT archive_path || ' ' || size FROM core WHERE product_name = '{}'",
            first_name.trim_end_matches(".SAFE")
        )),
        ["S2/2024 1"]
    );
    assert_eq!(
        archive.strings("SELECT watermark FROM muninn_sync_watermarks"),
        ["2024-01-09 10:00:00"]
    );
}

on_both_backends!(the_service_counts_each_types_window_once_for_progress);
fn the_service_counts_each_types_window_once_for_progress(backend: Backend) {
    let mut all = product_list(0..5, "S2MSI1C", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    });
    all.extend(product_list(0..2, "S2MSI2A", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    }));
    let state = server(all);
    let base = serve(state.clone());
    let archive = archive(
        backend,
        &base,
        &[("page_size", Some("2")), ("deletions", Some("false"))],
    );
    let run = archive.sync(&[
        "cdse",
        "--start",
        "2024-01-02",
        "--report",
        "json",
        "--metrics-file",
        "muninn.prom",
    ]);
    assert_done(
        &run,
        "5 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    let report: Json = serde_json::from_str(&run.stdout).expect("a JSON report");
    assert_eq!(
        report["expected"],
        json!({"total": 5, "product_types": {"S2MSI1C": 4, "S2MSI2A": 1}})
    );
    let metrics = std::fs::read_to_string(archive.path("muninn.prom")).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("muninn_sync_last_run_expected_products{")
                && l.ends_with(",synchronizer=\"cdse\",product_type=\"S2MSI1C\"} 4")),
        "{metrics}"
    );
    {
        // One request per type, beside its pages, that lists nothing.
        let server = state.lock().unwrap();
        let counts: Vec<&String> = server
            .seen
            .iter()
            .filter(|t| option(t, "$count").as_deref() == Some("true"))
            .collect();
        assert_eq!(counts.len(), 2, "{:?}", server.seen);
        for target in counts {
            assert_eq!(option(target, "$top").as_deref(), Some("0"), "{target}");
            assert_eq!(option(target, "$expand"), None, "{target}");
            assert_eq!(option(target, "$orderby"), None, "{target}");
            assert_eq!(
                lower_bound(target, "ModificationDate").as_deref(),
                Some("2024-01-02T00:00:00.000000Z"),
                "{target}"
            );
        }
    }

    // A service that gives no count, or one that is no count: the sync
    // goes on without, and the report says none is known.
    for (scripted, created) in [("", 2), ("\"many\"", 0)] {
        state.lock().unwrap().count_answer = Some(scripted);
        let run = archive.sync(&["cdse", "--report", "json"]);
        assert_done(
            &run,
            &format!(
                "{created} created, 0 updated, 0 removed, 0 failed, {} unchanged",
                7 - created
            ),
        );
        let report: Json = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(
            report["expected"],
            json!({"total": null, "product_types": {}}),
            "@odata.count {scripted:?}"
        );
        assert!(
            run.stderr
                .contains("cannot count the products of the window"),
            "{}",
            run.stderr
        );
    }
}

on_both_backends!(the_pages_do_not_wait_for_a_slow_count);
fn the_pages_do_not_wait_for_a_slow_count(backend: Backend) {
    let all = product_list(0..5, "S2MSI1C", |n| {
        format!("2024-01-0{}T10:00:00.000Z", n + 1)
    });
    let state = server(all);
    // CDSE counts slowly: here the count is answered only once three pages
    // have been asked for, which a sync that waited for it never does.
    state.lock().unwrap().hold_count_until_pages = Some(3);
    let base = serve(state.clone());
    let archive = archive(
        backend,
        &base,
        &[
            ("product_types", Some("[\"S2MSI1C\"]")),
            ("page_size", Some("2")),
            ("deletions", Some("false")),
        ],
    );
    let run = archive.sync(&["cdse", "--report", "json"]);
    assert_done(
        &run,
        "5 created, 0 updated, 0 removed, 0 failed, 0 unchanged",
    );
    let report: Json = serde_json::from_str(&run.stdout).expect("a JSON report");
    assert_eq!(
        report["expected"],
        json!({"total": 5, "product_types": {"S2MSI1C": 5}}),
        "the count came, after the pages"
    );
    let server = state.lock().unwrap();
    let count = server
        .seen
        .iter()
        .position(|t| option(t, "$top").as_deref() == Some("0"));
    let third_page = server
        .seen
        .iter()
        .enumerate()
        .filter(|(_, t)| option(t, "$top").as_deref() == Some("2"))
        .nth(2)
        .map(|(at, _)| at);
    assert!(
        matches!((third_page, count), (Some(page), Some(count)) if page < count),
        "{:?}",
        server.seen
    );
}
