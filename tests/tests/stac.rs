//! The `stac` synchronizer against a local server that answers as STAC APIs
//! do (a landing page with conformance classes, Item Search with token
//! paging), started on 127.0.0.1 by the test. Each on SQLite and on
//! PostgreSQL from one body.

use muninn_sync_e2e::stac_server::{serve, StacServer as Server};
use muninn_sync_e2e::{on_both_backends, Archive, Backend};
use serde_json::{json, Value as Json};
use std::sync::{Arc, Mutex};

fn item(id: &str, datetime: &str, cloud: f64) -> Json {
    json!({
        "type": "Feature", "stac_version": "1.0.0", "id": id, "collection": "s2",
        "geometry": {"type": "Polygon", "coordinates": [[[5, 52], [6, 52], [6, 53], [5, 52]]]},
        "properties": {"datetime": datetime, "updated": datetime, "eo:cloud_cover": cloud, "platform": "sentinel-2a"},
        "assets": {"product": {"href": format!("https://example.org/{id}.zip"), "file:size": 1000,
                   "file:checksum": "d50110d41d8cd98f00b204e9800998ecf8427e"}}
    })
}

fn archive(backend: Backend, base: &str, extra: &str) -> Archive {
    Archive::on(backend, &format!(
        "[\"synchronizer:stac\"]\nmodule = \"stac\"\nurl = \"{base}/\"\ncollections = {{ S2MSI2A = \"s2\" }}\npage_size = 2\n{extra}\n[\"synchronizer:stac\".http]\ninitial_backoff = 0.01\n"
    ))
}

fn five_items() -> Vec<Json> {
    (1..=5)
        .map(|i| {
            item(
                &format!("S2_{i}"),
                &format!("2024-01-0{i}T10:00:00Z"),
                f64::from(i),
            )
        })
        .collect()
}

on_both_backends!(a_user_syncs_re_syncs_forces_and_prunes_a_stac_api);
fn a_user_syncs_re_syncs_forces_and_prunes_a_stac_api(backend: Backend) {
    let state = Arc::new(Mutex::new(Server {
        items: five_items(),
        sort: true,
        failures: vec![(500, ""), (429, "Retry-After: 1\r\n")],
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(backend, &base, "prune = true\ntime_field = \"datetime\"");

    let first = archive.sync(&["stac", "--incremental"]);
    first.assert_ok();
    assert!(
        first
            .stderr
            .contains("5 created, 0 updated, 0 removed, 0 failed"),
        "{}",
        first.stderr
    );
    assert_eq!(
        archive.rows("SELECT product_name, remote_url, hash, s.eo_cloud_cover FROM core JOIN stac s USING (uuid) ORDER BY 1")[0],
        ["S2_1", "https://example.org/S2_1.zip", "md5:d41d8cd98f00b204e9800998ecf8427e", "1"]
    );
    assert_eq!(
        archive.strings("SELECT product_type || ' ' || watermark FROM muninn_sync_watermarks"),
        ["S2MSI2A 2024-01-05 10:00:00"]
    );
    // The 500 and the 429 were retried.
    assert!(
        first.stderr.contains("500") && first.stderr.contains("429"),
        "{}",
        first.stderr
    );

    let again = archive.sync(&["stac"]);
    again.assert_ok();
    assert!(
        again
            .stderr
            .contains("0 created, 0 updated, 0 removed, 0 failed, 5 unchanged"),
        "{}",
        again.stderr
    );
    let forced = archive.sync(&["stac", "--force"]);
    assert!(
        forced.stderr.contains("0 created, 5 updated"),
        "{}",
        forced.stderr
    );

    // The server drops one item and changes another.
    {
        let mut server = state.lock().unwrap();
        server.items.remove(2);
        server.items[0]["properties"]["eo:cloud_cover"] = json!(99.5);
    }
    let pruned = archive.sync(&["stac", "--start", "2024-01-01", "--end", "2024-01-06"]);
    pruned.assert_ok();
    assert!(
        pruned.stderr.contains("0 created, 1 updated, 1 removed"),
        "{}",
        pruned.stderr
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["S2_1", "S2_2", "S2_4", "S2_5"]
    );
}

on_both_backends!(a_server_that_cannot_sort_still_gives_a_complete_ordered_sync);
fn a_server_that_cannot_sort_still_gives_a_complete_ordered_sync(backend: Backend) {
    let state = Arc::new(Mutex::new(Server {
        items: five_items(),
        sort: false,
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(backend, &base, "");
    let run = archive.sync(&["stac"]);
    run.assert_ok();
    assert!(
        run.stderr.contains("the server cannot sort"),
        "{}",
        run.stderr
    );
    assert_eq!(archive.count("SELECT count(*) FROM core"), 5);
    assert!(state
        .lock()
        .unwrap()
        .seen
        .iter()
        .all(|l| !l.contains("sortby")));
}

on_both_backends!(secrets_stay_out_of_messages_and_bad_pages_write_nothing);
fn secrets_stay_out_of_messages_and_bad_pages_write_nothing(backend: Backend) {
    let state = Arc::new(Mutex::new(Server {
        items: five_items(),
        sort: true,
        failures: vec![
            (500, ""),
            (500, ""),
            (500, ""),
            (500, ""),
            (500, ""),
            (500, ""),
        ],
        ..Server::default()
    }));
    let base = serve(state);
    let archive = archive(
        backend,
        &base,
        "headers = { Authorization = \"Bearer ${STAC_TEST_TOKEN}\" }",
    );
    let run = muninn_sync_e2e::muninn_sync(
        archive.dir.path(),
        &["archive.toml", "stac"],
        &[("STAC_TEST_TOKEN", "very-secret-token")],
    );
    run.assert_error(1, &["synchronizer \"stac\"", "500"]);
    assert!(!run.stderr.contains("very-secret-token"), "{}", run.stderr);
    let unset = archive.sync(&["stac"]);
    unset.assert_error(1, &["STAC_TEST_TOKEN is not set"]);
}

on_both_backends!(post_paging_odd_geometries_and_items_without_file_fields);
fn post_paging_odd_geometries_and_items_without_file_fields(backend: Backend) {
    let mut items = five_items();
    items[1]["geometry"] = json!({"type": "MultiPolygon", "coordinates": [
        [[[179, 0], [180, 0], [180, 1], [179, 0]]], [[[-180, 0], [-179, 0], [-180, 1], [-180, 0]]]]});
    items[2]["geometry"] = Json::Null;
    items[3]["assets"] =
        json!({"data": {"href": "https://example.org/data.tif", "roles": ["data"]}});
    let state = Arc::new(Mutex::new(Server {
        items,
        sort: true,
        post: true,
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(backend, &base, "");
    archive.sync(&["stac"]).assert_ok();
    assert_eq!(
        archive.rows("SELECT product_name, size, remote_url FROM core ORDER BY 1"),
        [
            ["S2_1", "1000", "https://example.org/S2_1.zip"],
            ["S2_2", "1000", "https://example.org/S2_2.zip"],
            ["S2_3", "1000", "https://example.org/S2_3.zip"],
            ["S2_4", "NULL", "https://example.org/data.tif"],
            ["S2_5", "1000", "https://example.org/S2_5.zip"],
        ]
    );
    let kinds: Vec<Option<String>> = archive
        .footprints("true ORDER BY product_name")
        .into_iter()
        .map(|f| f.map(|(kind, _)| kind))
        .collect();
    let kind = |k: &str| Some(k.to_string());
    assert_eq!(
        kinds,
        [
            kind("POLYGON"),
            kind("MULTIPOLYGON"),
            None,
            kind("POLYGON"),
            kind("POLYGON")
        ]
    );
    assert!(state
        .lock()
        .unwrap()
        .seen
        .iter()
        .any(|l| l.starts_with("POST /search")));
}

on_both_backends!(a_garbage_page_or_a_repeated_page_fails_clearly_keeping_what_was_applied);
fn a_garbage_page_or_a_repeated_page_fails_clearly_keeping_what_was_applied(backend: Backend) {
    let state = Arc::new(Mutex::new(Server {
        items: five_items(),
        sort: true,
        garbage_at: Some(2),
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(backend, &base, "");
    let garbage = archive.sync(&["stac"]);
    garbage.assert_error(
        1,
        &[
            "synchronizer \"stac\"",
            "/search",
            "the answer is not JSON",
            "<html>502",
        ],
    );
    // The first page was applied whole and committed; nothing of the bad one.
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["S2_1", "S2_2"]
    );
    archive.assert_storage_intact();

    {
        let mut server = state.lock().unwrap();
        server.garbage_at = None;
        server.repeat = true;
    }
    let repeated = archive.sync(&["stac"]);
    repeated.assert_error(1, &["the same page of 2 items twice", "instead of looping"]);
}

on_both_backends!(a_long_window_is_read_in_concurrent_slices_and_applied_in_order);
fn a_long_window_is_read_in_concurrent_slices_and_applied_in_order(backend: Backend) {
    let state = Arc::new(Mutex::new(Server {
        items: five_items(),
        sort: false,
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(backend, &base, "slice = \"1d\"\nconcurrency = 3");
    let run = archive.sync(&["stac", "--start", "2024-01-01", "--end", "2024-01-06"]);
    run.assert_ok();
    assert!(run.stderr.contains("5 created"), "{}", run.stderr);
    assert!(
        run.stderr.contains("reading the window in time slices"),
        "{}",
        run.stderr
    );
    // One probe (limit=1); then, without counts, the window cut for 3
    // readers (6 slices, each within the 1-day cap), read without probing:
    // an empty slice costs one request either way.
    let searches: Vec<String> = state
        .lock()
        .unwrap()
        .searches()
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(searches.len(), 7, "{searches:?}");
    for search in searches.iter().filter(|l| l.contains("limit=2")) {
        assert!(interval_hours(search) <= 24.0, "{search}");
    }
    // Applied in order of time, whatever order the slices came back in
    // (and the server lists newest first): the order the rows were
    // written in, SQLite's rowid or, in a table only ever inserted into,
    // the rows' place in PostgreSQL's heap.
    let written = backend.pick("rowid", "ctid");
    assert_eq!(
        archive.strings(&format!("SELECT product_name FROM core ORDER BY {written}")),
        ["S2_1", "S2_2", "S2_3", "S2_4", "S2_5"]
    );
    let again = archive.sync(&["stac", "--start", "2024-01-01", "--end", "2024-01-06"]);
    assert!(
        again
            .stderr
            .contains("0 created, 0 updated, 0 removed, 0 failed, 5 unchanged"),
        "{}",
        again.stderr
    );
}

on_both_backends!(a_cql2_filter_on_updated_is_used_when_it_works_and_doubted_when_it_does_not);
fn a_cql2_filter_on_updated_is_used_when_it_works_and_doubted_when_it_does_not(backend: Backend) {
    for works in [true, false] {
        let state = Arc::new(Mutex::new(Server {
            items: five_items(),
            sort: true,
            cql2: Some(works),
            ..Server::default()
        }));
        let base = serve(state.clone());
        let archive = archive(backend, &base, "time_field = \"updated\"");
        let run = archive.sync(&["stac", "--start", "2024-01-03"]);
        run.assert_ok();
        assert!(
            run.stderr.contains("3 created, 0 updated"),
            "{}",
            run.stderr
        );
        assert_eq!(
            archive.strings("SELECT product_name FROM core ORDER BY 1"),
            ["S2_3", "S2_4", "S2_5"]
        );
        assert_eq!(
            run.stderr.contains("cannot be trusted"),
            !works,
            "{}",
            run.stderr
        );
        let filtered_searches = state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|l| l.contains("filter="))
            .count();
        // The probe, then the window's two pages when the filter works; the
        // probe and the open-ended check when it does not.
        assert_eq!(filtered_searches, if works { 3 } else { 2 });
    }
}

on_both_backends!(a_value_that_does_not_fit_its_column_is_left_out_and_a_bad_time_fails_the_item);
fn a_value_that_does_not_fit_its_column_is_left_out_and_a_bad_time_fails_the_item(
    backend: Backend,
) {
    let mut items = five_items();
    items[2]["properties"]["eo:cloud_cover"] = json!("cloudy"); // text in a real column
    items[3]["properties"]["datetime"] = json!("not a time");
    let state = Arc::new(Mutex::new(Server {
        items,
        sort: true,
        ..Server::default()
    }));
    let base = serve(state);
    let archive = archive(backend, &base, "prune = true");
    let run = archive.sync(&["stac"]);
    run.assert_error(1, &["1 product(s) could not be synced", "s2/S2_4"]);
    assert!(run.stderr.contains("not pruning"), "{}", run.stderr);
    // The item whose cloud cover is text is kept without it.
    assert!(
        run.stderr.contains("left out a field the product could do without: text where the catalogue's column is real")
            && run.stderr.contains("product=S2MSI2A/S2_3"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["S2_1", "S2_2", "S2_3", "S2_5"]
    );
    let again = archive.sync(&["stac"]);
    assert!(
        again.stderr.contains("0 created, 0 updated"),
        "a product kept without a field is unchanged on the next run:\n{}",
        again.stderr
    );
}

on_both_backends!(pruning_never_removes_an_item_the_server_still_has);
fn pruning_never_removes_an_item_the_server_still_has(backend: Backend) {
    // An item whose datetime is a day after its start_datetime, and one
    // with only a range.
    let mut items = five_items();
    items[1]["properties"]["start_datetime"] = json!("2024-01-01T23:00:00Z");
    items[1]["properties"]["end_datetime"] = json!("2024-01-02T11:00:00Z");
    items[3]["properties"]["datetime"] = Json::Null;
    items[3]["properties"]["start_datetime"] = json!("2024-01-04T10:00:00Z");
    items[3]["properties"]["end_datetime"] = json!("2024-01-04T11:00:00Z");
    let state = Arc::new(Mutex::new(Server {
        items,
        sort: true,
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(backend, &base, "prune = true");
    archive.sync(&["stac"]).assert_ok();
    // S2_2's start_datetime is in [Jan 1, Jan 2), its datetime is not: the
    // window does not hold it, so it is not pruned from it.
    let run = archive.sync(&["stac", "--start", "2024-01-01", "--end", "2024-01-02"]);
    run.assert_ok();
    assert!(run.stderr.contains("0 removed"), "{}", run.stderr);
    // S2_4 (a range) is pruned only when it is gone.
    let run = archive.sync(&["stac", "--start", "2024-01-04", "--end", "2024-01-05"]);
    assert!(run.stderr.contains("0 removed"), "{}", run.stderr);
    state.lock().unwrap().items.remove(3);
    let run = archive.sync(&["stac", "--start", "2024-01-04", "--end", "2024-01-05"]);
    assert!(run.stderr.contains("1 removed"), "{}", run.stderr);
    assert_eq!(archive.count("SELECT count(*) FROM core"), 4);

    // With time_field = "updated", an item changed after the window's end
    // has left the window, not the server: a window with an end is not pruned.
    let updated = self::archive(backend, &base, "prune = true\ntime_field = \"updated\"");
    updated.sync(&["stac"]).assert_ok();
    state.lock().unwrap().items[0]["properties"]["updated"] = json!("2024-02-01T00:00:00Z");
    let run = updated.sync(&["stac", "--start", "2024-01-01", "--end", "2024-01-03"]);
    run.assert_ok();
    assert!(run.stderr.contains("not pruning"), "{}", run.stderr);
    assert_eq!(
        updated.count("SELECT count(*) FROM core WHERE product_name = 'S2_1'"),
        1
    );
}

/// The items of a recorded response of a real STAC API
/// (tests/fixtures/real/stac/README.md says where each comes from).
fn real_items(file: &str) -> Vec<Json> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/real/stac")
        .join(file);
    let page: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    page["features"].as_array().unwrap().clone()
}

/// The one value of a query written for each backend: SQLite's with
/// SpatiaLite loaded, as a user queries footprints, or PostgreSQL's with
/// PostGIS.
fn one(archive: &Archive, sqlite: &str, postgresql: &str) -> String {
    use rusqlite::types::Value;
    match archive.backend() {
        Backend::Sqlite => match archive
            .spatialite()
            .query_row(sqlite, [], |row| row.get::<_, Value>(0))
            .unwrap()
        {
            Value::Null => "NULL".into(),
            Value::Integer(i) => i.to_string(),
            Value::Real(r) => r.to_string(),
            Value::Text(t) => t,
            Value::Blob(b) => format!("<{} bytes>", b.len()),
        },
        Backend::Postgresql => archive.row(postgresql).remove(0),
    }
}

on_both_backends!(items_as_real_catalogues_serve_them_sync_whole_and_re_sync_unchanged);
fn items_as_real_catalogues_serve_them_sync_whole_and_re_sync_unchanged(backend: Backend) {
    let mut items = Vec::new();
    for file in [
        "earth-search-cop-dem-glo-30.json",
        "earth-search-fields-bbox-only.json",
        "earth-search-sentinel-1-2.json",
        "cdse-sentinel-2-l2a.json",
        "cdse-sentinel-3-syn.json",
        "planetary-computer-naip.json",
    ] {
        items.extend(real_items(file));
    }
    let total = items.len();
    let state = Arc::new(Mutex::new(Server {
        items,
        sort: true,
        ..Server::default()
    }));
    let base = serve(state);
    let archive = archive(backend, &base, "");
    let first = archive.sync(&["stac"]);
    first.assert_ok();
    assert!(
        first
            .stderr
            .contains(&format!("{total} created, 0 updated, 0 removed, 0 failed")),
        "{}",
        first.stderr
    );
    // CDSE's SHA3-256 checksums are left out: one warning naming the first
    // product, and the count in the summary.
    assert_eq!(
        first
            .stderr
            .matches("left out a field the product could do without")
            .count(),
        1,
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("field=file:checksum")
            && first
                .stderr
                .contains("(the products were kept without them): file:checksum x2"),
        "{}",
        first.stderr
    );

    let product = |name: &str, sqlite: &str, postgresql: &str| {
        let sql = |what: &str| {
            format!("SELECT {what} FROM core c JOIN stac s USING (uuid) WHERE c.product_name = '{name}'")
        };
        one(&archive, &sql(sqlite), &sql(postgresql))
    };
    // Every footprint is valid, in [-180, 180], with SRID 4326.
    assert_eq!(
        one(
            &archive,
            "SELECT count(*) FROM core WHERE footprint IS NULL OR NOT IsValid(footprint) OR SRID(footprint) <> 4326 \
             OR MbrMinX(footprint) < -180 OR MbrMaxX(footprint) > 180",
            "SELECT count(*) FROM core WHERE footprint IS NULL OR NOT ST_IsValid(footprint::geometry) \
             OR ST_SRID(footprint) <> 4326 OR ST_XMin(footprint::geometry) < -180 OR ST_XMax(footprint::geometry) > 180",
        ),
        "0"
    );
    // The DEM tile past -180 is cut at the antimeridian; a query at 179.999
    // finds it.
    let tile = "Copernicus_DSM_COG_10_S90_00_W180_00_DEM";
    assert_eq!(
        archive
            .footprint(&format!("product_name = '{tile}'"))
            .unwrap()
            .0,
        "MULTIPOLYGON"
    );
    assert_eq!(
        product(
            tile,
            "Intersects(c.footprint, MakePoint(179.9995, -89.5, 4326))",
            "ST_Intersects(c.footprint, ST_SetSRID(ST_MakePoint(179.9995, -89.5), 4326)::geography)"
        ),
        archive.boolean(true)
    );
    // An item without geometry has its bbox as footprint.
    assert_eq!(
        archive.footprint("product_name = 'S2C_T13TDE_20250729T180310_L2A'"),
        Some((
            "POLYGON".to_string(),
            "POLYGON((-106.180233 39.655762,-104.885314 39.655762,-104.885314 40.478304,-106.180233 40.478304,-106.180233 39.655762))".to_string()
        ))
    );
    // A cloud cover of 0 (a JSON integer) in the real column.
    assert_eq!(
        archive.row(&format!(
            "SELECT {}, s.eo_cloud_cover FROM core c JOIN stac s USING (uuid) WHERE c.product_name = 'S2B_20EPT_20250731_0_L1C'",
            archive.kind_of("s.eo_cloud_cover")
        )),
        ["real", "0"]
    );
    // Nested objects as JSON text, a range item's validity, hashes.
    assert_eq!(
        product(
            tile,
            "json_extract(s.proj_centroid, '$.lat')",
            "s.proj_centroid::jsonb->>'lat'"
        ),
        "-89.5"
    );
    assert_eq!(
        archive.row(
            "SELECT c.validity_start, c.validity_stop, s.sar_polarizations FROM core c JOIN stac s USING (uuid) \
             WHERE c.product_name = 'S1A_IW_GRDH_1SSH_20250731T135702_20250731T135722_060328_077F7E'"
        ),
        [
            "2025-07-31 13:57:02.256207",
            "2025-07-31 13:57:22.145414",
            "[\"HH\"]"
        ]
    );
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE product_name LIKE 'S2%MSIL2A%' AND hash IS NULL AND size > 0"),
        2
    );

    let again = archive.sync(&["stac"]);
    again.assert_ok();
    assert!(
        again.stderr.contains(&format!(
            "0 created, 0 updated, 0 removed, 0 failed, {total} unchanged"
        )),
        "{}",
        again.stderr
    );
}

on_both_backends!(a_zero_cloud_cover_beside_real_ones_and_exact_numbers_re_sync_unchanged);
fn a_zero_cloud_cover_beside_real_ones_and_exact_numbers_re_sync_unchanged(backend: Backend) {
    let mut items = five_items();
    items[0]["properties"]["eo:cloud_cover"] = json!(12.5);
    items[1]["properties"]["eo:cloud_cover"] = json!(0);
    // The exact number, as JSON text, as a coordinate and a property.
    let precise: Json = serde_json::from_str(
        r#"{"type": "Polygon", "coordinates": [[[-11.974999865007275, 8.1], [-11, 8.1], [-11, 9], [-11.974999865007275, 8.1]]]}"#,
    )
    .unwrap();
    items[2]["geometry"] = precise;
    items[2]["properties"]["precise"] = serde_json::from_str("-11.974999865007275").unwrap();
    let state = Arc::new(Mutex::new(Server {
        items,
        sort: true,
        ..Server::default()
    }));
    let base = serve(state);
    let archive = archive(backend, &base, "");
    archive.sync(&["stac"]).assert_ok();
    assert_eq!(
        one(
            &archive,
            "SELECT X(PointN(ExteriorRing(footprint), 1)) FROM core WHERE product_name = 'S2_3'",
            "SELECT ST_X(ST_PointN(ST_ExteriorRing(footprint::geometry), 1)) FROM core WHERE product_name = 'S2_3'"
        ),
        "-11.974999865007275"
    );
    assert_eq!(
        archive.strings(
            "SELECT s.precise FROM core JOIN stac s USING (uuid) WHERE product_name = 'S2_3'"
        ),
        ["-11.974999865007275"]
    );
    assert_eq!(
        archive.rows(&format!(
            "SELECT {}, eo_cloud_cover FROM stac ORDER BY eo_cloud_cover LIMIT 1",
            archive.kind_of("eo_cloud_cover")
        )),
        [["real", "0"]]
    );
    let before = archive.metadata_dates();
    let again = archive.sync(&["stac"]);
    assert!(
        again
            .stderr
            .contains("0 created, 0 updated, 0 removed, 0 failed, 5 unchanged"),
        "{}",
        again.stderr
    );
    assert_eq!(archive.metadata_dates(), before);
}

/// The length of a search's `datetime` interval, in hours.
fn interval_hours(request_line: &str) -> f64 {
    let query = request_line.split_whitespace().nth(1).unwrap();
    let interval = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("datetime="))
        .unwrap()
        .replace("%3A", ":")
        .replace("%2F", "/");
    let (start, end) = interval.split_once('/').unwrap();
    let time = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
    (time(end) - time(start)).num_seconds() as f64 / 3600.0
}

/// 30 items in three clusters over 30 years: ten a day apart by an hour,
/// in 1998, 2007 and 2021.
fn clustered_items() -> Vec<Json> {
    let mut items = Vec::new();
    for (c, day) in ["1998-03-01", "2007-07-15", "2021-11-30"]
        .iter()
        .enumerate()
    {
        for hour in 0..10 {
            items.push(item(
                &format!("S2_{c}_{hour:02}"),
                &format!("{day}T{hour:02}:30:00Z"),
                f64::from(hour),
            ));
        }
    }
    items
}

on_both_backends!(a_thirty_year_window_costs_about_a_request_per_page);
fn a_thirty_year_window_costs_about_a_request_per_page(backend: Backend) {
    let window = ["stac", "--start", "1995-01-01", "--end", "2025-01-01"];
    // 30 items, 2 a page: 15 pages, and the probes that find them (33,
    // 18, 33, 49, 98 and 81 searches when written). Fixed 7-day slices
    // made 1,566 searches, 1-day ones 10,958.
    for (sort, number_matched, extra, most) in [
        (true, true, "", 36),
        (true, false, "", 20),
        (true, true, "concurrency = 1", 36),
        (true, true, "slice = \"1d\"\nconcurrency = 4", 52),
        // Without sorting, no extents: halving finds the clusters.
        (false, true, "concurrency = 3", 110),
        // Neither sort nor count: each slice is held whole before it is
        // sorted, so none is longer than a week.
        (false, false, "", 90),
    ] {
        let state = Arc::new(Mutex::new(Server {
            items: clustered_items(),
            sort,
            number_matched,
            ..Server::default()
        }));
        let base = serve(state.clone());
        let archive = archive(backend, &base, extra);
        let run = archive.sync(&window);
        run.assert_ok();
        let case = format!("sort={sort} numberMatched={number_matched} {extra:?}");
        assert!(
            run.stderr
                .contains("30 created, 0 updated, 0 removed, 0 failed"),
            "{case}: {}",
            run.stderr
        );
        let searches: Vec<String> = state
            .lock()
            .unwrap()
            .searches()
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert!(
            searches.len() <= most,
            "{case}: {} searches: {searches:#?}",
            searches.len()
        );
        if extra.contains("slice") {
            for search in searches.iter().filter(|l| l.contains("limit=2")) {
                assert!(interval_hours(search) <= 24.0, "{case}: {search}");
            }
        }
        if !sort && !number_matched {
            for search in searches.iter().filter(|l| l.contains("limit=2")) {
                assert!(interval_hours(search) <= 7.0 * 24.0, "{case}: {search}");
            }
        }
        // Applied in order of time, and the watermark at the last item.
        let written = backend.pick("rowid", "ctid");
        let names = archive.strings(&format!("SELECT product_name FROM core ORDER BY {written}"));
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "{case}");
        assert_eq!(
            archive.strings("SELECT watermark FROM muninn_sync_watermarks"),
            Vec::<String>::new(),
            "{case}: a run with --start sets no first watermark"
        );
        let again = archive.sync(&window);
        assert!(
            again
                .stderr
                .contains("0 created, 0 updated, 0 removed, 0 failed, 30 unchanged"),
            "{case}: {}",
            again.stderr
        );
    }
}

on_both_backends!(a_server_that_claims_to_sort_and_ignores_sortby_loses_no_item);
fn a_server_that_claims_to_sort_and_ignores_sortby_loses_no_item(backend: Backend) {
    let state = Arc::new(Mutex::new(Server {
        items: five_items(),
        sort: true,
        sort_ignored: true,
        number_matched: true,
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(backend, &base, "slice = \"1d\"\nprune = true");
    // Both probes of the window answer with its newest item: a slice cut
    // down to it would leave the four others unread.
    let run = archive.sync(&["stac", "--start", "2024-01-01", "--end", "2024-01-06"]);
    run.assert_ok();
    assert!(run.stderr.contains("5 created"), "{}", run.stderr);
    // The newest item lies at the window's end, which the server's closed
    // interval lets in: the window is not empty, and nothing is pruned.
    let before_last = [
        "stac",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-05T10:00:00",
    ];
    let again = archive.sync(&before_last);
    again.assert_ok();
    assert!(
        again
            .stderr
            .contains("0 created, 0 updated, 0 removed, 0 failed, 4 unchanged"),
        "{}",
        again.stderr
    );
    assert_eq!(archive.strings("SELECT count(*) FROM core"), ["5"]);
}
