//! The run history and watermarks, as the host and operators' SQL see them.

use muninn_sync_catalogue::{
    Catalogue, RunCounts, RunLog, RunOutcome, RunStart, SqliteCatalogue, SqliteOptions, Watermarks,
};
use muninn_sync_model::{parse_timestamp, Product, Timestamp};
use rusqlite::Connection;

fn time(text: &str) -> Timestamp {
    parse_timestamp(text).unwrap()
}

fn start(synchronizer: &str) -> RunStart {
    RunStart {
        synchronizer: synchronizer.into(),
        plugin: "jsonl 1.0.0".into(),
        product_types: Some(vec!["S2MSI1C".into()]),
        window_start: Some(time("2024-01-01")),
        window_end: None,
        incremental: true,
        force: false,
        started: time("2024-05-01T10:00:00Z"),
        pid: 4242,
        hostname: "archive-host".into(),
    }
}

fn watermark(product_type: &str, at: &str) -> Watermarks {
    [(product_type.to_string(), time(at))].into()
}

#[test]
fn watermarks_commit_with_their_batch_and_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cat.sqlite");
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&db)).unwrap();
    let run = catalogue.begin_run(&start("feed")).unwrap();
    let counts = RunCounts {
        created: 1,
        ..RunCounts::default()
    };

    catalogue.create(&Product::new("S2MSI1C", "A")).unwrap();
    catalogue
        .record_progress(run, &counts, &watermark("S2MSI1C", "2024-03-01T00:00:00Z"))
        .unwrap();
    catalogue.commit().unwrap();
    assert_eq!(
        catalogue.watermarks("feed").unwrap(),
        watermark("S2MSI1C", "2024-03-01T00:00:00Z")
    );

    // A batch that is rolled back takes its watermark with it.
    catalogue.create(&Product::new("S2MSI1C", "B")).unwrap();
    catalogue
        .record_progress(run, &counts, &watermark("S2MSI1C", "2024-04-01T00:00:00Z"))
        .unwrap();
    catalogue.rollback().unwrap();
    assert_eq!(
        catalogue.watermarks("feed").unwrap(),
        watermark("S2MSI1C", "2024-03-01T00:00:00Z")
    );

    // An older time never lowers it; sub-second times compare as times.
    catalogue
        .record_progress(run, &counts, &watermark("S2MSI1C", "2024-02-01T00:00:00Z"))
        .unwrap();
    catalogue.commit().unwrap();
    catalogue
        .record_progress(
            run,
            &counts,
            &watermark("S2MSI1C", "2024-03-01T00:00:00.25Z"),
        )
        .unwrap();
    catalogue.commit().unwrap();
    assert_eq!(
        catalogue.watermarks("feed").unwrap(),
        watermark("S2MSI1C", "2024-03-01T00:00:00.25Z")
    );
    assert!(catalogue.watermarks("other").unwrap().is_empty());
}

#[test]
fn runs_are_recorded_and_dead_ones_marked_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cat.sqlite");
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&db)).unwrap();
    let killed = catalogue.begin_run(&start("feed")).unwrap();
    let other = catalogue.begin_run(&start("other")).unwrap();
    let run = catalogue.begin_run(&start("feed")).unwrap();
    let counts = RunCounts {
        created: 3,
        updated: 2,
        unchanged: 7,
        removed: 1,
        failed: 1,
    };
    catalogue
        .end_run(
            run,
            time("2024-05-01T10:01:00Z"),
            &counts,
            RunOutcome::Failed,
            Some("1 product skipped"),
        )
        .unwrap();

    let history = catalogue.runs(Some("feed"), 10).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].id, run);
    assert_eq!(history[0].counts, counts);
    assert_eq!(history[0].outcome, RunOutcome::Failed);
    assert_eq!(history[0].error.as_deref(), Some("1 product skipped"));
    assert_eq!(history[0].start, start("feed"));
    assert_eq!(history[1].id, killed);
    assert_eq!(history[1].outcome, RunOutcome::Abandoned);
    // Another synchronizer's run is not ours to judge.
    let others = catalogue.runs(Some("other"), 10).unwrap();
    assert_eq!(
        (others[0].id, others[0].outcome),
        (other, RunOutcome::Running)
    );
    assert_eq!(catalogue.runs(None, 10).unwrap().len(), 3);

    catalogue
        .end_run(
            other,
            time("2024-05-01T11:00:00Z"),
            &RunCounts::default(),
            RunOutcome::Succeeded,
            None,
        )
        .unwrap();
    assert_eq!(
        catalogue.last_successes().unwrap(),
        [("other".to_string(), time("2024-05-01T11:00:00Z"))].into()
    );

    // Operators read the history with plain SQL.
    let conn = Connection::open(&db).unwrap();
    let (outcome, product_types, window_start): (String, String, String) = conn
        .query_row(
            "SELECT outcome, product_types, window_start FROM muninn_sync_runs WHERE id = ?1",
            [run],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(outcome, "failed");
    assert_eq!(product_types, r#"["S2MSI1C"]"#);
    assert_eq!(window_start, "2024-01-01 00:00:00");
}

#[test]
fn a_catalogue_without_run_tables_has_no_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cat.sqlite");
    let catalogue = SqliteCatalogue::open(&SqliteOptions::new(&db)).unwrap();
    Connection::open(&db)
        .unwrap()
        .execute_batch("DROP TABLE muninn_sync_runs; DROP TABLE muninn_sync_watermarks;")
        .unwrap();
    assert!(catalogue.runs(None, 10).unwrap().is_empty());
    assert!(catalogue.all_watermarks().unwrap().is_empty());
}

#[test]
fn a_writer_waits_its_turn_behind_another_synchronizers_long_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cat.sqlite");
    let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&db)).unwrap();
    // Another synchronizer holds the write lock for longer than SpatiaLite's
    // own 5 s busy timeout, which loading it installs.
    let other = Connection::open(&db).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(6000));
        other.execute_batch("COMMIT").unwrap();
    });
    catalogue.create(&Product::new("S2MSI1C", "A")).unwrap();
    catalogue.commit().unwrap();
    holder.join().unwrap();
    assert_eq!(
        Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM core", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        1
    );
}

#[test]
fn two_catalogues_opened_at_once_create_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cat.sqlite");
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&db)).unwrap();
                catalogue
                    .create(&Product::new(
                        "S2MSI1C",
                        format!("{:?}", std::thread::current().id()),
                    ))
                    .unwrap();
                catalogue.commit().unwrap();
            })
        })
        .collect();
    for opener in openers {
        opener.join().unwrap();
    }
    let conn = Connection::open(&db).unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM core", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 4);
}
