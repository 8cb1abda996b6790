//! The archive handle as a plugin drives it, against a real SQLite
//! catalogue.

use super::*;
use crate::control::RunControl;
use abi_stable::std_types::{RSlice, RStr, RString, RVec};
use muninn_sync_catalogue::{Catalogue, RunLog, RunStart, SqliteCatalogue, SqliteOptions};
use muninn_sync_model::Product;
use muninn_sync_plugin_api::convert::product_to_ffi;
use muninn_sync_plugin_api::ffi::{FfiArchive, FfiProduct};
use std::time::Duration;

fn committed(path: &std::path::Path, sql: &str) -> i64 {
    let reader = rusqlite::Connection::open(path).unwrap();
    reader.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn ffi(name: &str) -> FfiProduct {
    product_to_ffi(&Product::new("T", name))
}

fn notify(handle: &mut ArchiveHandle<'_, '_>, kind: &str, payload: &str) -> Result<(), String> {
    handle
        .notify(RStr::from_str(kind), RStr::from_str(payload))
        .into_result()
        .map(drop)
        .map_err(|e| e.to_string())
}

fn begin(catalogue: &mut SqliteCatalogue) -> i64 {
    catalogue
        .begin_run(&RunStart {
            synchronizer: "s".into(),
            plugin: "test".into(),
            product_types: None,
            window_start: None,
            window_end: None,
            incremental: false,
            force: false,
            started: chrono::Utc::now(),
            pid: 1,
            hostname: "h".into(),
        })
        .unwrap()
}

#[test]
fn idle_commits_so_other_connections_see_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
    let control = RunControl::new();
    let shared = Shared::new(&mut catalogue, RunRules::default(), &control, None);
    let mut handle = shared.handle();
    assert!(handle.create(ffi("A")).is_ok());
    assert_eq!(
        committed(&path, "SELECT count(*) FROM core"),
        0,
        "the batch is still open"
    );
    notify(&mut handle, "idle", "{}").unwrap();
    assert_eq!(committed(&path, "SELECT count(*) FROM core"), 1);
    assert_eq!(shared.lock().counts().created, 1);
}

#[test]
fn a_full_batch_commits_with_counts_and_watermarks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
    let run = begin(&mut catalogue);
    let rules = RunRules {
        policy: BatchPolicy {
            max_changes: 2,
            max_age: Duration::from_secs(3600),
        },
        run_id: Some(run),
        ..RunRules::default()
    };
    let control = RunControl::new();
    let shared = Shared::new(&mut catalogue, rules, &control, None);
    let mut handle = shared.handle();
    assert!(handle.create(ffi("A")).is_ok());
    notify(
        &mut handle,
        "watermark",
        r#"{"product_type": "T", "time": "2024-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    notify(&mut handle, "unchanged", r#"{"count": 5}"#).unwrap();
    assert!(handle.create(ffi("B")).is_ok());
    assert_eq!(committed(&path, "SELECT count(*) FROM core"), 2);
    assert_eq!(
        committed(
            &path,
            "SELECT created + 10 * unchanged FROM muninn_sync_runs"
        ),
        52
    );
    assert_eq!(
        committed(
            &path,
            "SELECT count(*) FROM muninn_sync_watermarks WHERE watermark = '2024-01-01 00:00:00'"
        ),
        1
    );
    let duplicate = handle.create(ffi("A")).unwrap_err().to_string();
    assert!(
        duplicate.contains("product T/A") && duplicate.contains("already exists"),
        "{duplicate}"
    );
    notify(
        &mut handle,
        "product_failed",
        r#"{"product": "feed.jsonl line 4", "message": "bad"}"#,
    )
    .unwrap();
    // A failed product holds the watermark where it was.
    notify(
        &mut handle,
        "watermark",
        r#"{"product_type": "T", "time": "2025-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    assert!(notify(&mut handle, "bogus", "{}")
        .unwrap_err()
        .contains("\"bogus\""));
    assert!(handle.create(ffi("C")).is_ok());
    shared.lock().finish().unwrap();
    assert_eq!(committed(&path, "SELECT count(*) FROM core"), 3);
    assert_eq!(
        committed(
            &path,
            "SELECT count(*) FROM muninn_sync_watermarks WHERE watermark = '2024-01-01 00:00:00'"
        ),
        1
    );
    let state = shared.lock();
    assert_eq!(state.counts().failed, 1);
    assert_eq!(state.failures()[0].product, "feed.jsonl line 4");
}

#[test]
fn a_dry_run_lists_its_changes_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
    let existing = Product::new("T", "old");
    catalogue.create(&existing).unwrap();
    catalogue.commit().unwrap();
    catalogue.claim(&[existing.uuid], "s").unwrap();
    catalogue.commit().unwrap();
    let rules = RunRules {
        policy: BatchPolicy {
            max_changes: 100,
            max_age: Duration::from_secs(3600),
        },
        dry_run: true,
        ownership: muninn_sync_model::Ownership::new("s"),
        ..RunRules::default()
    };
    let control = RunControl::new();
    let shared = Shared::new(&mut catalogue, rules, &control, None);
    let mut handle = shared.handle();
    assert!(handle.create(ffi("new")).is_ok());
    // The plugin sees its own changes within a batch.
    let found = handle
        .find_by_name(
            RStr::from_str("T"),
            RVec::from(vec![RString::from("new")]).as_rslice(),
            RSlice::EMPTY,
        )
        .unwrap();
    assert!(found[0].is_some());
    assert!(handle.remove(existing.uuid.into()).unwrap());
    // Where a run would commit, the dry run lets go of the write lock:
    // another writer of the archive gets its turn at once.
    notify(&mut handle, "idle", "{}").unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.busy_timeout(Duration::ZERO).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
        .expect("the dry run holds no write lock between batches");
    shared.lock().finish().unwrap();
    let state = shared.lock();
    assert_eq!(state.would().create, vec!["T/new".to_string()]);
    assert_eq!(state.would().remove, vec!["T/old".to_string()]);
    drop(state);
    assert_eq!(
        committed(
            &path,
            "SELECT count(*) FROM core WHERE product_name = 'old'"
        ),
        1
    );
    assert_eq!(committed(&path, "SELECT count(*) FROM core"), 1);
}

#[test]
fn a_plugin_learns_the_product_types_and_what_it_owns_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
    let mut made_by_muninn = Product::new("S1", "old");
    made_by_muninn.validity_start = Some(muninn_sync_model::parse_timestamp("2020-05-01").unwrap());
    catalogue.create(&made_by_muninn).unwrap();
    catalogue.commit().unwrap();
    let rules = RunRules {
        ownership: muninn_sync_model::Ownership::new("s"),
        ..RunRules::default()
    };
    let control = RunControl::new();
    let shared = Shared::new(&mut catalogue, rules, &control, None);
    let mut handle = shared.handle();
    let mut new = Product::new("S1", "new");
    new.validity_start = Some(muninn_sync_model::parse_timestamp("2024-01-01").unwrap());
    assert!(handle.create(product_to_ffi(&new)).is_ok());
    assert!(handle.create(ffi("t")).is_ok());
    let answer = handle
        .notify(RStr::from_str("product_types"), RStr::from_str("{}"))
        .unwrap();
    let types = muninn_sync_plugin_api::notice::decode_product_types(answer.as_str()).unwrap();
    let summary: Vec<String> = types
        .iter()
        .map(|t| {
            format!(
                "{} {} {} {:?} {:?}",
                t.product_type,
                t.count,
                t.owned,
                t.validity_start_min.map(|m| m.to_rfc3339()),
                t.validity_start_max.map(|m| m.to_rfc3339())
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "S1 2 1 Some(\"2020-05-01T00:00:00+00:00\") Some(\"2024-01-01T00:00:00+00:00\")",
            "T 1 1 None None"
        ]
    );
    // A malformed notice is named, not taken for something else.
    let malformed = notify(&mut handle, "product_failed", "{\"message\": 1}").unwrap_err();
    assert!(
        malformed.starts_with("malformed notification \"product_failed\""),
        "{malformed}"
    );
}

#[test]
fn a_run_past_max_products_stops_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
    let rules = RunRules {
        max_products: Some(2),
        ..RunRules::default()
    };
    let control = RunControl::new();
    let shared = Shared::new(&mut catalogue, rules, &control, None);
    let mut handle = shared.handle();
    assert!(handle.create(ffi("A")).is_ok());
    notify(&mut handle, "unchanged", r#"{"count": 1}"#).unwrap();
    assert!(
        handle.create(ffi("B")).is_ok(),
        "the third product is handed over"
    );
    let refused = handle.create(ffi("C")).unwrap_err().to_string();
    assert!(
        refused.contains("the run has stopped: the run handled more than 2 products (max_products"),
        "{refused}"
    );
    assert_eq!(committed(&path, "SELECT count(*) FROM core"), 2);
    assert!(matches!(shared.lock().stop(), Some(Stop::Limit(_))));
}

#[test]
fn a_signal_commits_the_batch_and_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
    let control = RunControl::new();
    let shared = Shared::new(&mut catalogue, RunRules::default(), &control, None);
    let mut handle = shared.handle();
    assert!(handle.create(ffi("A")).is_ok());
    control.request_stop(15);
    let refused = handle.create(ffi("B")).unwrap_err().to_string();
    assert!(refused.contains("interrupted by SIGTERM"), "{refused}");
    assert_eq!(committed(&path, "SELECT count(*) FROM core"), 1);
    assert_eq!(shared.lock().stop(), Some(&Stop::Signal(15)));
}

#[test]
fn fail_fast_stops_at_the_first_failed_product() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
    let control = RunControl::new();
    let rules = RunRules {
        fail_fast: true,
        ..RunRules::default()
    };
    let shared = Shared::new(&mut catalogue, rules, &control, None);
    let mut handle = shared.handle();
    assert!(handle.create(ffi("A")).is_ok());
    let stopped = notify(
        &mut handle,
        "product_failed",
        r#"{"product": "x", "message": "bad"}"#,
    )
    .unwrap_err();
    assert!(stopped.contains("--fail-fast"), "{stopped}");
    assert!(handle.create(ffi("B")).is_err());
    assert_eq!(committed(&path, "SELECT count(*) FROM core"), 1);
}
