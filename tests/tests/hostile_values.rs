//! Values a careless or hostile remote sends (issue 15, points 2 and 9),
//! sent end to end through a jsonl feed: each fails its own product, named,
//! and the rest of the run goes on; a catalogue that already holds a value
//! muninn-sync cannot read is reported, not fatal.

use muninn_sync_e2e::{product, Archive};
use serde_json::json;

/// A product line with `change` applied to its fields.
fn product_with(name: &str, change: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let mut line = product("S2MSI1C", name, "2024-01-01T10:00:00Z");
    change(&mut line);
    line
}

fn names(archive: &Archive) -> Vec<String> {
    archive.strings("SELECT product_name FROM core ORDER BY product_name")
}

/// One run of a feed holding `bad` and a good product `Good`: the bad one
/// fails, named (the jsonl plugin checks each line as it reads it, and
/// names the product by its line) with `why`, and never reaches the
/// catalogue.
fn assert_refused(bad: serde_json::Value, why: &[&str]) {
    let archive = Archive::with_feed();
    let good = product("S2MSI1C", "Good", "2024-01-01T10:00:00Z");
    archive.write_feed("feed.jsonl", &[bad, good]);
    let run = archive.sync(&["feed"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("1 created, 0 updated, 0 removed, 1 failed"),
        "{}",
        run.stderr
    );
    for part in why {
        assert!(
            run.stderr.contains(part),
            "{part:?} not in:\n{}",
            run.stderr
        );
    }
    assert_eq!(names(&archive), ["Good"]);
}

#[test]
fn a_time_whose_utc_lies_past_9999_fails_its_product_and_later_runs_go_on() {
    // 9999-12-31T23:59:59-01:00 is 10000-01-01 00:59:59 UTC.
    let archive = Archive::with_feed();
    let bad = product_with("Late", |p| {
        p["validity_stop"] = json!("9999-12-31T23:59:59-01:00");
    });
    let good = product("S2MSI1C", "Good", "2024-01-01T10:00:00Z");
    archive.write_feed("feed.jsonl", &[bad.clone(), good.clone()]);
    let run = archive.sync(&["feed"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for part in ["feed.jsonl line 1", "validity_stop", "9999"] {
        assert!(
            run.stderr.contains(part),
            "{part:?} not in:\n{}",
            run.stderr
        );
    }
    assert_eq!(names(&archive), ["Good"]);
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE validity_stop LIKE '1____-%'"),
        0
    );
    // The next run (the feed changed) looks both up again and goes on.
    let changed = product("S2MSI1C", "Good", "2024-01-02T10:00:00Z");
    archive.write_feed("feed.jsonl", &[bad, changed]);
    let run = archive.sync(&["feed", "--force"]);
    assert!(
        run.stderr
            .contains("0 created, 1 updated, 0 removed, 1 failed"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_namespace_time_past_9999_and_year_zero_fail_their_products() {
    assert_refused(
        product_with("BadLate", |p| {
            p["namespaces"]["x"] = json!({"sensed": "9999-12-31T23:59:59-01:00"});
        }),
        &["x.sensed", "9999"],
    );
    // 0001-01-01T00:30:00+01:00 is 0000-12-31 23:30:00 UTC: year 0.
    assert_refused(
        product_with("BadEarly", |p| {
            p["validity_start"] = json!("0001-01-01T00:30:00+01:00");
        }),
        &["validity_start", "0000-12-31 23:30:00", "years 1 to 9999"],
    );
    assert_refused(
        product_with("BadZero", |p| {
            p["creation_date"] = json!("0000-06-01T00:00:00Z");
        }),
        &["creation_date", "0000-06-01", "years 1 to 9999"],
    );
}

#[test]
fn a_catalogue_that_holds_an_unreadable_time_is_reported_and_the_run_goes_on() {
    let archive = Archive::with_feed();
    archive.write_feed(
        "feed.jsonl",
        &[
            product("S2MSI1C", "A", "2024-01-01T10:00:00Z"),
            product("S2MSI1C", "B", "2024-01-01T10:00:00Z"),
        ],
    );
    archive.sync(&["feed"]).assert_ok();
    // What an older muninn-sync wrote for 9999-12-31T23:59:59-01:00.
    let db = rusqlite::Connection::open(archive.path("catalogue.sqlite")).unwrap();
    db.execute(
        "UPDATE core SET validity_stop = '10000-01-01 00:59:59' WHERE product_name = 'A'",
        [],
    )
    .unwrap();
    drop(db);
    // A changed A (with a validity_stop again) and B are looked up: the run
    // reports the value it cannot read, treats it as absent, and repairs it.
    let mut a = product("S2MSI1C", "A", "2024-01-02T10:00:00Z");
    a["validity_stop"] = json!("2024-01-02T10:00:10Z");
    let b = product("S2MSI1C", "B", "2024-01-02T10:00:00Z");
    archive.write_feed("feed.jsonl", &[a, b]);
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("0 created, 2 updated, 0 removed, 0 failed"),
        "{}",
        run.stderr
    );
    let warning = run
        .stderr
        .lines()
        .find(|l| l.starts_with("WARN") && l.contains("10000-01-01"))
        .unwrap_or_else(|| panic!("no warning about the stored value:\n{}", run.stderr));
    for part in ["core", "validity_stop", "A"] {
        assert!(warning.contains(part), "{part:?} not in {warning:?}");
    }
    assert_eq!(
        archive.strings("SELECT validity_stop FROM core WHERE product_name = 'A'"),
        ["2024-01-02 10:00:10"]
    );
}

#[test]
fn nul_characters_in_names_and_text_fail_their_product() {
    assert_refused(
        product_with("BadName\u{0}x", |_| {}),
        &["product_name", "NUL"],
    );
    assert_refused(
        product_with("BadType", |p| p["product_type"] = json!("S2\u{0}MSI1C")),
        &["product_type", "NUL"],
    );
    assert_refused(
        product_with("BadPhysical", |p| {
            p["physical_name"] = json!("BadPhysical\u{0}.SAFE")
        }),
        &["physical_name", "NUL"],
    );
    assert_refused(
        product_with("BadText", |p| {
            p["namespaces"]["eo"]["platform"] = json!("sentinel\u{0}2a")
        }),
        &["eo.platform", "NUL"],
    );
}

#[test]
fn coordinates_outside_wgs84_fail_their_product() {
    assert_refused(
        product_with("BadLatitude", |p| {
            p["footprint"] = json!("POLYGON((5 89, 6 89, 6 95, 5 89))")
        }),
        &["footprint", "latitude 95"],
    );
    assert_refused(
        product_with("BadLongitude", |p| p["footprint"] = json!("POINT(200 10)")),
        &["footprint", "longitude 200"],
    );
    // The edges themselves are fine.
    let archive = Archive::with_feed();
    archive.write_feed(
        "feed.jsonl",
        &[product_with("Edge", |p| {
            p["footprint"] = json!("POLYGON((-180 -90, 180 -90, 180 90, -180 -90))")
        })],
    );
    archive.sync(&["feed"]).assert_ok();
    assert_eq!(names(&archive), ["Edge"]);
}

#[test]
fn namespaces_named_like_sql_keywords_are_refused_clearly() {
    for keyword in ["order", "select"] {
        let name = format!("Bad_{keyword}");
        assert_refused(
            product_with(&name, |p| {
                p["namespaces"][keyword] = json!({"n": 1});
            }),
            &[&format!("\"{keyword}\""), "SQL keyword", "muninn"],
        );
    }
    // A property may be named like one: muninn-sync quotes column names.
    let archive = Archive::with_feed();
    archive.write_feed(
        "feed.jsonl",
        &[product_with("Ordered", |p| {
            p["namespaces"]["x"] = json!({"order": 3, "select": "all"})
        })],
    );
    archive.sync(&["feed"]).assert_ok();
    archive.sync(&["feed", "--force"]).assert_ok();
    assert_eq!(
        archive.strings("SELECT \"order\" || \"select\" FROM x"),
        ["3all"]
    );
}
