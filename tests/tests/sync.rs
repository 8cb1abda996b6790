//! A user's sessions with the jsonl synchronizer, checked with SQL, on
//! SQLite and on PostgreSQL from one body each (`<test>::sqlite`,
//! `<test>::postgresql`); the few that are about SQLite alone say so.

use muninn_sync_e2e::{
    deletion, on_both_backends, product, Archive, Backend, BASE_CONFIG, FEED_SECTION,
};
use serde_json::json;

fn three_products() -> Vec<serde_json::Value> {
    vec![
        product("S2MSI1C", "A", "2024-01-01T10:00:00Z"),
        product("S2MSI1C", "B", "2024-01-02T10:00:00Z"),
        product("S2MSI2A", "C", "2024-01-03T10:00:00Z"),
    ]
}

on_both_backends!(first_sync_creates_every_product_with_muninns_columns);
fn first_sync_creates_every_product_with_muninns_columns(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &three_products());
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("3 created, 0 updated, 0 removed, 0 failed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY product_name"),
        ["A", "B", "C"]
    );
    let row = archive.row(
        "SELECT uuid, active, product_type, physical_name, size, hash, validity_start, remote_url, archive_path \
         FROM core WHERE product_name = 'A'",
    );
    // muninn's uuid forms: 32 lower-case hex digits in SQLite's text
    // column, PostgreSQL's uuid type (printed dashed).
    let uuid = row[0].clone();
    assert_eq!(archive.uuid_text(&uuid), uuid);
    assert!(uuid
        .chars()
        .all(|c| (c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) || c == '-'));
    assert_eq!(
        row[1..],
        [
            archive.boolean(true),
            "S2MSI1C",
            "A.SAFE",
            "1000",
            "md5:9e107d9d372bb6826bd81d3542a419d6",
            "2024-01-01 10:00:00",
            "https://example.org/p/A",
            "NULL"
        ]
    );
    // The footprint is a geometry (SpatiaLite's, PostGIS's geography), not text.
    assert_eq!(
        archive.footprint("product_name = 'A'"),
        Some((
            "POLYGON".to_string(),
            "POLYGON((5 52,6 52,6 53,5 53,5 52))".to_string()
        ))
    );
    assert_eq!(
        archive
            .strings("SELECT cloud_cover || ' ' || platform FROM eo ORDER BY uuid")
            .len(),
        3
    );
    assert_eq!(
        archive
            .count("SELECT count(*) FROM eo WHERE cloud_cover = 12.5 AND platform = 'sentinel-2a'"),
        3
    );
}

on_both_backends!(an_unchanged_resync_writes_nothing);
fn an_unchanged_resync_writes_nothing(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &three_products());
    archive.sync(&["feed"]).assert_ok();
    let before = archive.metadata_dates();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("0 created, 0 updated, 0 removed, 0 failed"),
        "{}",
        run.stderr
    );
    assert_eq!(archive.metadata_dates(), before);
}

on_both_backends!(force_rewrites_every_product_in_the_window_and_only_those);
fn force_rewrites_every_product_in_the_window_and_only_those(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &three_products());
    archive.sync(&["feed"]).assert_ok();
    let before = archive.metadata_dates();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let run = archive.sync(&[
        "feed",
        "--force",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-04",
    ]);
    run.assert_ok();
    assert!(
        run.stderr.contains("0 created, 2 updated"),
        "{}",
        run.stderr
    );
    let after = archive.metadata_dates();
    assert_eq!(after["A"], before["A"]);
    assert!(after["B"] > before["B"]);
    assert!(after["C"] > before["C"]);
    // Forced updates leave the values as they were.
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE size = 1000"),
        3
    );
}

on_both_backends!(changed_products_are_updated_and_nothing_else);
fn changed_products_are_updated_and_nothing_else(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &three_products());
    archive.sync(&["feed"]).assert_ok();
    let before = archive.metadata_dates();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut lines = three_products();
    let mut changed = product("S2MSI1C", "B", "2024-01-05T10:00:00Z");
    changed["size"] = json!(2000);
    changed["remote_url"] = serde_json::Value::Null;
    changed["namespaces"] = json!({"eo": {"cloud_cover": 80.0}});
    lines.push(changed);
    archive.write_feed("feed.jsonl", &lines);
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(
        run.stderr.contains("0 created, 1 updated"),
        "{}",
        run.stderr
    );
    let after = archive.metadata_dates();
    assert_eq!(after["A"], before["A"]);
    assert_eq!(after["C"], before["C"]);
    assert!(after["B"] > before["B"]);
    assert_eq!(
        archive.row("SELECT size, remote_url, validity_start FROM core WHERE product_name = 'B'"),
        ["2000", "NULL", "2024-01-05 10:00:00"]
    );
    assert_eq!(
        archive.row("SELECT e.cloud_cover, e.platform FROM eo e JOIN core c USING (uuid) WHERE c.product_name = 'B'"),
        ["80", "NULL"]
    );
}

on_both_backends!(deletions_remove_products_with_their_namespaces);
fn deletions_remove_products_with_their_namespaces(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &three_products());
    archive.sync(&["feed"]).assert_ok();
    let mut lines = three_products();
    lines.push(deletion("S2MSI1C", "A", "2024-01-06T00:00:00Z"));
    lines.push(deletion("S2MSI1C", "never-synced", "2024-01-06T00:00:00Z"));
    archive.write_feed("feed.jsonl", &lines);
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(run.stderr.contains("1 removed"), "{}", run.stderr);
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY product_name"),
        ["B", "C"]
    );
    assert_eq!(archive.count("SELECT count(*) FROM eo"), 2);
    // Replaying the feed writes nothing: the deletion is the product's newest state.
    let again = archive.sync(&["feed"]);
    again.assert_ok();
    assert!(
        again.stderr.contains("0 created, 0 updated, 0 removed"),
        "{}",
        again.stderr
    );
}

on_both_backends!(product_type_filters_follow_muninn);
fn product_type_filters_follow_muninn(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &three_products());
    archive.sync(&["feed", "-p"]).assert_ok();
    assert_eq!(
        archive.count("SELECT count(*) FROM core"),
        0,
        "-p without values syncs no type"
    );
    archive
        .sync(&["feed", "-p", "S2MSI2A", "OTHER"])
        .assert_ok();
    assert_eq!(archive.strings("SELECT product_name FROM core"), ["C"]);
    archive
        .sync(&["feed", "--product-type", "S2MSI1C"])
        .assert_ok();
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY product_name"),
        ["A", "B", "C"]
    );

    let restricted = Archive::on(
        backend,
        &format!("{FEED_SECTION}product_types = [\"S2MSI1C\"]\n"),
    );
    restricted.write_feed("feed.jsonl", &three_products());
    restricted.sync(&["feed"]).assert_ok();
    assert_eq!(
        restricted.strings("SELECT product_name FROM core ORDER BY product_name"),
        ["A", "B"]
    );
    restricted.sync(&["feed", "-p", "S2MSI2A"]).assert_ok();
    assert_eq!(
        restricted.count("SELECT count(*) FROM core"),
        2,
        "the configuration restricts -p too"
    );
}

on_both_backends!(the_window_is_half_open);
fn the_window_is_half_open(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "before", "2024-01-31T23:59:59.999999Z"),
            product("T", "at-start", "2024-02-01T00:00:00Z"),
            product("T", "inside", "2024-02-01T11:59:59.999999Z"),
            product("T", "at-end", "2024-02-01T12:00:00Z"),
            product("T", "offset", "2024-02-01T13:30:00+01:30"),
        ],
    );
    archive
        .sync(&[
            "feed",
            "--start",
            "2024-02-01",
            "--end",
            "2024-02-01T12:00:00",
        ])
        .assert_ok();
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY product_name"),
        ["at-start", "inside"]
    );
    // The next cron window picks up exactly the rest.
    archive
        .sync(&[
            "feed",
            "--start",
            "2024-02-01T12:00:00Z",
            "--end",
            "2024-02-02",
        ])
        .assert_ok();
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY product_name"),
        ["at-end", "at-start", "inside", "offset"]
    );
}

on_both_backends!(two_synchronizers_share_one_archive);
fn two_synchronizers_share_one_archive(backend: Backend) {
    let archive = Archive::on(backend, "");
    archive.configure_with(
        "synchronizers = \"first second\"\n",
        r#"
["synchronizer:first"]
module = "jsonl"
path = "one.jsonl"

["synchronizer:second"]
module = "jsonl"
path = "feeds"
"#,
    );
    archive.write_feed(
        "one.jsonl",
        &[product("S2MSI1C", "one", "2024-01-01T00:00:00Z")],
    );
    std::fs::create_dir(archive.path("feeds")).unwrap();
    archive.write_feed(
        "feeds/a.jsonl",
        &[product("S1GRD", "two", "2024-01-01T00:00:00Z")],
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(
        &mut gz,
        format!("{}\n", product("S1GRD", "three", "2024-01-02T00:00:00Z")).as_bytes(),
    )
    .unwrap();
    std::fs::write(archive.path("feeds/b.jsonl.gz"), gz.finish().unwrap()).unwrap();
    archive.sync(&["first"]).assert_ok();
    archive.sync(&["second"]).assert_ok();
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY product_name"),
        ["one", "three", "two"]
    );
}

on_both_backends!(a_directory_feed_follows_symbolic_links);
fn a_directory_feed_follows_symbolic_links(backend: Backend) {
    let archive = Archive::on(
        backend,
        "[\"synchronizer:feed\"]\nmodule = \"jsonl\"\npath = \"feeds\"\n",
    );
    archive.write_feed("elsewhere.jsonl", &three_products());
    std::fs::create_dir(archive.path("feeds")).unwrap();
    std::os::unix::fs::symlink(
        archive.path("elsewhere.jsonl"),
        archive.path("feeds/linked.jsonl"),
    )
    .unwrap();
    archive.sync(&["feed"]).assert_ok();
    assert_eq!(archive.count("SELECT count(*) FROM core"), 3);
}

on_both_backends!(an_unsorted_feed_is_applied_in_time_order);
fn an_unsorted_feed_is_applied_in_time_order(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    let mut newest = product("T", "X", "2024-03-01T00:00:00Z");
    newest["size"] = json!(3);
    let mut oldest = product("T", "X", "2024-01-01T00:00:00Z");
    oldest["size"] = json!(1);
    archive.write_feed(
        "feed.jsonl",
        &[newest, oldest, product("T", "Y", "2024-02-01T00:00:00Z")],
    );
    archive.sync(&["feed"]).assert_ok();
    assert_eq!(
        archive.strings("SELECT size FROM core WHERE product_name = 'X'"),
        ["3"]
    );
    // A window that holds only the older state does not take the product
    // back: the catalogue already holds a newer one (a backfill, a retry).
    archive.sync(&["feed", "--end", "2024-02-01"]).assert_ok();
    assert_eq!(
        archive.strings("SELECT size FROM core WHERE product_name = 'X'"),
        ["3"]
    );
}

on_both_backends!(a_malformed_line_is_reported_and_the_rest_is_synced);
fn a_malformed_line_is_reported_and_the_rest_is_synced(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    let text = format!(
        "{}\n{{not json\n{}\n{}\n",
        product("T", "good-1", "2024-01-01T00:00:00Z"),
        json!({"modified": "2024-01-02T00:00:00Z", "product_type": "T", "product_name": "bad-footprint", "footprint": "POLYGON((0 0, 1 1))"}),
        product("T", "good-2", "2024-01-03T00:00:00Z"),
    );
    std::fs::write(archive.path("feed.jsonl"), text).unwrap();
    let run = archive.sync(&["feed"]);
    run.assert_error(
        1,
        &["feed.jsonl line 2", "2 product(s) could not be synced"],
    );
    assert!(run.stderr.contains("feed.jsonl line 3"), "{}", run.stderr);
    assert!(run.stderr.contains("footprint"), "{}", run.stderr);
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY product_name"),
        ["good-1", "good-2"]
    );
}

on_both_backends!(a_namespace_value_of_the_wrong_type_is_left_out_and_the_product_kept);
fn a_namespace_value_of_the_wrong_type_is_left_out_and_the_product_kept(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    let mut wrong = product("T", "wrong", "2024-01-02T00:00:00Z");
    wrong["namespaces"]["eo"]["cloud_cover"] = json!("cloudy");
    archive.write_feed(
        "feed.jsonl",
        &[product("T", "right", "2024-01-01T00:00:00Z"), wrong],
    );
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(
        run.stderr.contains("left out a field the product could do without: text where the catalogue's column is real")
            && run.stderr.contains("product=T/wrong field=eo.cloud_cover"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("eo.cloud_cover x1"), "{}", run.stderr);
    assert_eq!(
        archive.rows("SELECT c.product_name, e.cloud_cover, e.platform FROM core c JOIN eo e USING (uuid) ORDER BY 1"),
        [
            ["right", "12.5", "sentinel-2a"],
            ["wrong", "NULL", "sentinel-2a"]
        ]
    );
    // The value still does not fit next time: no change, nothing written.
    let before = archive.metadata_dates();
    let again = archive.sync(&["feed", "--force"]);
    again.assert_ok();
    assert!(again.stderr.contains("0 failed"), "{}", again.stderr);
    assert_ne!(archive.metadata_dates(), before, "--force rewrites");
}

// SQLite only: the demo's configuration is a SQLite archive.
#[test]
fn the_bundled_demo_runs_as_the_readme_says() {
    let dir = tempfile::tempdir().unwrap();
    let examples = muninn_sync_e2e::workspace().join("examples");
    for file in ["demo.toml", "demo.jsonl"] {
        std::fs::copy(examples.join(file), dir.path().join(file)).unwrap();
    }
    let search_path = dir.path().to_str().unwrap();
    let run = muninn_sync_e2e::muninn_sync(
        dir.path(),
        &["demo", "jsonl"],
        &[("MUNINN_CONFIG_PATH", search_path)],
    );
    run.assert_ok();
    let db = rusqlite::Connection::open(dir.path().join("demo.sqlite")).unwrap();
    let products: i64 = db
        .query_row("SELECT count(*) FROM core", [], |r| r.get(0))
        .unwrap();
    assert!(products > 10, "{products} products");
}

on_both_backends!(logging_follows_verbose_and_quiet);
fn logging_follows_verbose_and_quiet(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &three_products());
    let normal = archive.sync(&["feed"]);
    normal.assert_ok();
    assert!(
        normal
            .stderr
            .lines()
            .any(|l| l.starts_with("INFO: sync of \"feed\" done")),
        "{}",
        normal.stderr
    );
    assert!(!normal.stderr.contains("DEBUG:"), "{}", normal.stderr);
    let verbose = archive.sync(&["feed", "-v"]);
    assert!(
        verbose.stderr.contains("DEBUG: loaded plugin"),
        "{}",
        verbose.stderr
    );
    let quiet = archive.sync(&["feed", "--quiet"]);
    quiet.assert_ok();
    assert_eq!(quiet.stderr, "", "-q shows only warnings and errors");
    assert_eq!(quiet.stdout, "");
}

// SQLite only: SpatiaLite and the WKT fallback without it are SQLite's.
#[test]
fn without_spatialite_footprints_are_wkt_with_one_warning() {
    let archive = Archive::new(&format!(
        "{}\n[\"synchronizer:feed\"]\nmodule = \"jsonl\"\npath = \"feed.jsonl\"\n",
        BASE_CONFIG.replace(
            "[sqlite]\n",
            "[sqlite]\nmod_spatialite_path = \"/nonexistent/mod_spatialite\"\n"
        )
    ));
    archive.write_feed("feed.jsonl", &three_products());
    let run = archive.sync(&["feed", "-q"]);
    run.assert_ok();
    assert_eq!(run.stderr.matches("WARN:").count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("WKT"), "{}", run.stderr);
    assert_eq!(
        archive.strings("SELECT DISTINCT typeof(footprint) || ' ' || footprint FROM core"),
        ["text POLYGON((5 52, 6 52, 6 53, 5 53, 5 52))"]
    );
    assert_eq!(
        archive.strings("SELECT value FROM muninn_sync_meta WHERE key = 'footprint_format'"),
        ["wkt"]
    );
    // The next run knows the format and does not warn again.
    let again = archive.sync(&["feed", "-q"]);
    assert_eq!(again.stderr, "");
}

on_both_backends!(a_line_changed_without_a_new_modified_time_is_still_applied);
fn a_line_changed_without_a_new_modified_time_is_still_applied(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &three_products());
    archive.sync(&["feed"]).assert_ok();
    let mut lines = three_products();
    lines[1]["size"] = json!(4242);
    archive.write_feed("feed.jsonl", &lines);
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(
        run.stderr.contains("0 created, 1 updated"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.strings("SELECT size FROM core WHERE product_name = 'B'"),
        ["4242"]
    );
    // What the jsonl synchronizer keeps about each product's line.
    assert_eq!(
        archive.count("SELECT count(*) FROM jsonl WHERE modified IS NOT NULL AND fingerprint IS NOT NULL AND key IS NOT NULL"),
        3
    );
}

on_both_backends!(a_product_changed_in_the_catalogue_is_put_right_by_force);
fn a_product_changed_in_the_catalogue_is_put_right_by_force(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &three_products());
    archive.sync(&["feed"]).assert_ok();
    archive.execute("UPDATE core SET size = 1 WHERE product_name = 'A'");
    // The feed did not change: a plain re-sync trusts the fingerprints.
    archive.sync(&["feed"]).assert_ok();
    assert_eq!(
        archive.strings("SELECT size FROM core WHERE product_name = 'A'"),
        ["1"]
    );
    archive.sync(&["feed", "--force"]).assert_ok();
    assert_eq!(
        archive.strings("SELECT size FROM core WHERE product_name = 'A'"),
        ["1000"]
    );
}

on_both_backends!(names_the_catalogue_refuses_skip_the_product_and_the_run_goes_on);
fn names_the_catalogue_refuses_skip_the_product_and_the_run_goes_on(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    let mut keyword = product("T", "keyword", "2024-01-02T00:00:00Z");
    keyword["namespaces"] = json!({"order": {"x": 1}});
    let mut rowid = product("T", "rowid", "2024-01-03T00:00:00Z");
    rowid["namespaces"]["eo"]["rowid"] = json!(5);
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "before", "2024-01-01T00:00:00Z"),
            keyword,
            rowid,
            product("T", "after", "2024-01-04T00:00:00Z"),
        ],
    );
    let run = archive.sync(&["feed"]);
    // An SQL keyword as a namespace is refused on both (muninn's SQL does
    // not quote table names); `rowid` is SQLite's own column, and only a
    // name like any other to PostgreSQL.
    let (failed, kept) = backend.pick(
        ("2 product(s)", vec!["after", "before"]),
        ("1 product(s)", vec!["after", "before", "rowid"]),
    );
    run.assert_error(
        1,
        &[
            failed,
            "could not be synced",
            "invalid namespace name \"order\"",
        ],
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        kept
    );
}

on_both_backends!(whole_numbers_then_fractions_make_a_real_column);
fn whole_numbers_then_fractions_make_a_real_column(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    let mut whole = product("T", "whole", "2024-01-01T00:00:00Z");
    whole["namespaces"] = json!({"eo": {"cloud_cover": 0}});
    let mut fraction = product("T", "fraction", "2024-01-02T00:00:00Z");
    fraction["namespaces"] = json!({"eo": {"cloud_cover": 12.5}});
    archive.write_feed("feed.jsonl", &[whole, fraction]);
    archive.sync(&["feed"]).assert_ok();
    let again = archive.sync(&["feed"]);
    again.assert_ok();
    assert!(
        again.stderr.contains("0 created, 0 updated"),
        "{}",
        again.stderr
    );
    assert_eq!(
        archive.strings("SELECT cloud_cover FROM eo ORDER BY cloud_cover"),
        ["0", "12.5"]
    );
}

on_both_backends!(a_byte_order_mark_and_repeated_options_are_accepted);
fn a_byte_order_mark_and_repeated_options_are_accepted(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    let text = format!(
        "\u{feff}{}\n{}\n",
        product("T", "A", "2024-02-01T00:00:00Z"),
        product("T", "B", "2024-01-01T00:00:00Z")
    );
    std::fs::write(archive.path("feed.jsonl"), text).unwrap();
    archive
        .sync(&[
            "feed",
            "-f",
            "-f",
            "--start",
            "2023-01-01",
            "--start",
            "2024-01-01",
        ])
        .assert_ok();
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["A", "B"]
    );
}

on_both_backends!(a_product_deleted_later_in_the_feed_does_not_come_back_with_an_older_window);
fn a_product_deleted_later_in_the_feed_does_not_come_back_with_an_older_window(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "B", "2024-01-02T10:00:00Z"),
            deletion("T", "A", "2024-02-01T10:00:00Z"),
        ],
    );
    // The newer window first: it holds A's deletion (A is not in the
    // catalogue yet), then the older one, which still lists A.
    archive.sync(&["feed", "--start", "2024-01-15"]).assert_ok();
    let run = archive.sync(&["feed", "--end", "2024-01-15"]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("1 created, 0 updated, 0 removed, 0 failed, 1 unchanged"),
        "{}",
        run.stderr
    );
    assert_eq!(archive.strings("SELECT product_name FROM core"), ["B"]);
    assert_eq!(
        archive.strings(
            "SELECT product_type || '/' || product_name || ' ' || deleted FROM muninn_sync_deletions"
        ),
        ["T/A 2024-02-01 10:00:00"]
    );
    // Published again after its deletion: a newer line brings it back.
    let mut lines = vec![
        product("T", "A", "2024-01-01T10:00:00Z"),
        product("T", "B", "2024-01-02T10:00:00Z"),
        deletion("T", "A", "2024-02-01T10:00:00Z"),
    ];
    lines.push(product("T", "A", "2024-03-01T10:00:00Z"));
    archive.write_feed("feed.jsonl", &lines);
    archive.sync(&["feed", "--start", "2024-02-15"]).assert_ok();
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["A", "B"]
    );
}

on_both_backends!(names_from_a_feed_cannot_forge_log_lines_or_reach_the_terminal_raw);
fn names_from_a_feed_cannot_forge_log_lines_or_reach_the_terminal_raw(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    // Refused by the catalogue for their uuid, which the first product has:
    // the failures name the products.
    let uuid = "0c6a0e2d-5a6b-4d3e-9d1a-3f1e2d3c4b5a";
    let mut first = product("T", "A", "2024-01-01T00:00:00Z");
    first["uuid"] = json!(uuid);
    let mut hostile = product("T", "X\nERROR: forged\u{1b}[2J", "2024-01-02T00:00:00Z");
    hostile["uuid"] = json!(uuid);
    let mut huge = product("T", &"Y".repeat(100_000), "2024-01-03T00:00:00Z");
    huge["uuid"] = json!(uuid);
    archive.write_feed("feed.jsonl", &[first, hostile, huge]);
    let run = archive.sync(&["feed"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        !run.stderr.contains('\u{1b}'),
        "an escape byte reached the terminal"
    );
    for line in run.stderr.lines() {
        assert!(!line.starts_with("ERROR: forged"), "a forged line: {line}");
        assert!(
            line.chars().count() < 9000,
            "a line of {} characters",
            line.chars().count()
        );
    }
    assert!(
        run.stderr.contains("X\\nERROR: forged\\u{1b}[2J"),
        "{}",
        run.stderr
    );
}

on_both_backends!(a_line_longer_than_max_line_bytes_fails_alone_and_is_not_read_whole);
fn a_line_longer_than_max_line_bytes_fails_alone_and_is_not_read_whole(backend: Backend) {
    let archive = Archive::on(backend, &format!("{FEED_SECTION}max_line_bytes = 2000\n"));
    let mut long = product("T", "LONG", "2024-01-02T00:00:00Z");
    long["namespaces"]["eo"]["notes"] = json!("z".repeat(5000));
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T00:00:00Z"),
            long,
            product("T", "B", "2024-01-03T00:00:00Z"),
        ],
    );
    let run = archive.sync(&["feed"]);
    run.assert_error(
        1,
        &[
            "feed.jsonl line 2",
            "more than max_line_bytes (2000)",
            "raise max_line_bytes",
        ],
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["A", "B"]
    );
    // The default reads it.
    archive.configure(FEED_SECTION);
    archive.sync(&["feed"]).assert_ok();
    assert_eq!(archive.count("SELECT count(*) FROM core"), 3);
}
