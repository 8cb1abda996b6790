//! How runs go and end, as an operator sees them: the run history and
//! watermarks in the catalogue, incremental runs, the per-synchronizer lock,
//! signals, timeouts, failed products, dry runs, and the JSON report and
//! metrics file that scripts and monitoring read. Each on SQLite and on
//! PostgreSQL from one body (`<test>::sqlite`, `<test>::postgresql`).

use muninn_sync_e2e::{
    deletion, on_both_backends, outside_plugin, product, wait_until, Archive, Backend, FEED_SECTION,
};
use serde_json::json;
use std::time::{Duration, Instant};

/// How long a test waits for a background run to get somewhere before it
/// gives up: far longer than it takes, even on a busy machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A section of the outside plugin creating products of type OUT named
/// `names`; `extra` are more lines of the section.
fn outside_section(name: &str, action: &str, names: &[String], extra: &str) -> String {
    format!(
        "[\"synchronizer:{name}\"]\nmodule = \"{}\"\naction = \"{action}\"\nproduct_type = \"OUT\"\nnames = {names:?}\n{extra}\n",
        outside_plugin().display()
    )
}

/// `p00`, `p01`, …: the names of `count` products.
fn names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("p{i:02}")).collect()
}

/// Waits until the newest run has committed at least `created` products.
fn wait_for_created(archive: &Archive, created: i64) {
    wait_until(
        &format!("the running run has committed {created} product(s)"),
        PATIENCE,
        || {
            archive
                .try_count("SELECT created FROM muninn_sync_runs ORDER BY id DESC LIMIT 1")
                .is_some_and(|n| n >= created)
        },
    );
}

fn feed_lines() -> Vec<serde_json::Value> {
    vec![
        product("T", "A", "2024-01-01T10:00:00Z"),
        product("T", "B", "2024-01-02T10:00:00Z"),
        product("U", "C", "2024-01-03T10:00:00Z"),
    ]
}

/// Appends lines to the feed, as the remote that writes it does.
fn append(archive: &Archive, lines: &[serde_json::Value]) {
    use std::io::Write;
    let mut feed = std::fs::OpenOptions::new()
        .append(true)
        .open(archive.path("feed.jsonl"))
        .unwrap();
    for line in lines {
        writeln!(feed, "{line}").unwrap();
    }
}

on_both_backends!(every_run_is_recorded_with_its_window_counts_and_process);
fn every_run_is_recorded_with_its_window_counts_and_process(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &feed_lines());
    let first = archive.start(&["feed"]);
    let pid = first.pid();
    first.finish().assert_ok();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        archive.row(
            "SELECT id, synchronizer, plugin, product_types, window_start, window_end, incremental, force, \
             pid, hostname, created, updated, unchanged, removed, failed, outcome, error FROM muninn_sync_runs"
        ),
        [
            "1", "feed", "jsonl 0.1.0", "NULL", "NULL", "NULL", archive.boolean(false), archive.boolean(false),
            &pid.to_string(), hostname.trim(), "3", "0", "0", "0", "0", "succeeded", "NULL"
        ]
    );
    // UTC times without a zone, in each backend's own time arithmetic.
    let within_the_hour = backend.pick(
        "julianday('now') - julianday(started) < 1.0 / 24",
        "(now() AT TIME ZONE 'UTC') - started BETWEEN interval '0' AND interval '1 hour'",
    );
    assert_eq!(
        archive.count(&format!(
            "SELECT count(*) FROM muninn_sync_runs WHERE finished >= started AND {within_the_hour}"
        )),
        1,
        "started and finished are now, in order: {:?}",
        archive.strings("SELECT started || ' .. ' || finished FROM muninn_sync_runs")
    );

    // Nothing changed remotely: the next run finds every product unchanged.
    archive.sync(&["feed"]).assert_ok();
    assert_eq!(
        archive
            .row("SELECT created, updated, unchanged, outcome FROM muninn_sync_runs WHERE id = 2"),
        ["0", "0", "3", "succeeded"]
    );

    // A narrower, forced run says so in its record.
    let run = archive.sync(&[
        "feed",
        "-p",
        "T",
        "--start",
        "2024-01-01",
        "--end",
        "2024-02-01",
        "--force",
    ]);
    run.assert_ok();
    assert!(
        run.stderr.contains(
            "INFO: sync of \"feed\" done: 0 created, 2 updated, 0 removed, 0 failed, 0 unchanged in "
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.row(
            "SELECT product_types, window_start, window_end, force, updated, unchanged \
             FROM muninn_sync_runs WHERE id = 3"
        ),
        [
            "[\"T\"]",
            "2024-01-01 00:00:00",
            "2024-02-01 00:00:00",
            archive.boolean(true),
            "2",
            "0"
        ]
    );
}

on_both_backends!(incremental_runs_start_at_the_watermark_minus_the_lookback);
fn incremental_runs_start_at_the_watermark_minus_the_lookback(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &feed_lines());
    // The first run has no watermark to start from: it syncs everything.
    archive.sync(&["feed", "--incremental"]).assert_ok();
    assert_eq!(
        archive.row("SELECT window_start, incremental, created FROM muninn_sync_runs WHERE id = 1"),
        ["NULL", archive.boolean(false), "3"]
    );
    assert_eq!(
        archive.strings(
            "SELECT product_type || ' ' || watermark || ' run ' || run_id FROM muninn_sync_watermarks \
             WHERE synchronizer = 'feed' ORDER BY 1"
        ),
        ["T 2024-01-03 10:00:00 run 1", "U 2024-01-03 10:00:00 run 1"]
    );

    append(
        &archive,
        &[
            product("T", "D", "2024-01-04T10:00:00Z"),
            product("U", "E", "2024-01-05T10:00:00Z"),
        ],
    );
    let run = archive.sync(&["feed", "--incremental"]);
    run.assert_ok();
    // C (modified within the lookback) is looked at again; A and B are not.
    assert!(
        run.stderr
            .contains("2 created, 0 updated, 0 removed, 0 failed, 1 unchanged"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.row(
            "SELECT window_start, window_end, incremental, created, unchanged, outcome \
             FROM muninn_sync_runs WHERE id = 2"
        ),
        [
            "2024-01-03 09:50:00",
            "NULL",
            archive.boolean(true),
            "2",
            "1",
            "succeeded"
        ]
    );
    assert_eq!(
        archive.strings("SELECT watermark FROM muninn_sync_watermarks ORDER BY product_type"),
        ["2024-01-05 10:00:00", "2024-01-05 10:00:00"]
    );

    // A change the remote records late, with an old modification time, is
    // older than the lookback: incremental runs do not see it, --full does.
    append(&archive, &[product("T", "LATE", "2024-01-01T12:00:00Z")]);
    archive.sync(&["feed", "--incremental"]).assert_ok();
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE product_name = 'LATE'"),
        0
    );
    let run = archive.sync(&["feed", "--incremental", "--lookback", "5d"]);
    run.assert_ok();
    assert_eq!(
        archive.row("SELECT window_start, created FROM muninn_sync_runs WHERE id = 4"),
        ["2023-12-31 10:00:00", "1"]
    );
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE product_name = 'LATE'"),
        1
    );
    append(&archive, &[product("T", "LATER", "2024-01-01T13:00:00Z")]);
    archive.sync(&["feed", "--incremental"]).assert_ok();
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE product_name = 'LATER'"),
        0
    );
    archive.sync(&["feed", "--full"]).assert_ok();
    assert_eq!(
        archive.row("SELECT window_start, incremental, created, unchanged FROM muninn_sync_runs WHERE id = 6"),
        ["NULL", archive.boolean(false), "1", "6"]
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["A", "B", "C", "D", "E", "LATE", "LATER"]
    );
}

on_both_backends!(incremental_in_the_section_makes_every_run_incremental_unless_full);
fn incremental_in_the_section_makes_every_run_incremental_unless_full(backend: Backend) {
    let archive = Archive::on(
        backend,
        &format!("{FEED_SECTION}incremental = true\nlookback = \"1h\"\n"),
    );
    archive.write_feed("feed.jsonl", &feed_lines());
    archive.sync(&["feed"]).assert_ok();
    append(&archive, &[product("T", "D", "2024-01-04T10:00:00Z")]);
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("1 created, 0 updated, 0 removed, 0 failed, 1 unchanged"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.row("SELECT window_start, incremental FROM muninn_sync_runs WHERE id = 2"),
        ["2024-01-03 09:00:00", archive.boolean(true)]
    );
    // --lookback on the command line wins over the section's.
    archive.sync(&["feed", "--lookback", "2d"]).assert_ok();
    assert_eq!(
        archive.row("SELECT window_start, unchanged FROM muninn_sync_runs WHERE id = 3"),
        ["2024-01-02 10:00:00", "3"]
    );
    archive.sync(&["feed", "--full"]).assert_ok();
    assert_eq!(
        archive
            .row("SELECT window_start, incremental, unchanged FROM muninn_sync_runs WHERE id = 4"),
        ["NULL", archive.boolean(false), "4"]
    );
}

on_both_backends!(a_run_that_starts_after_the_watermark_does_not_raise_it);
fn a_run_that_starts_after_the_watermark_does_not_raise_it(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "B", "2024-01-10T10:00:00Z"),
        ],
    );
    archive.sync(&["feed", "--end", "2024-01-05"]).assert_ok();
    let watermark = || archive.strings("SELECT watermark FROM muninn_sync_watermarks");
    assert_eq!(watermark(), ["2024-01-01 10:00:00"]);
    // B is synced, but what changed between A and the 8th was never looked
    // at: the watermark must stay where it was.
    archive.sync(&["feed", "--start", "2024-01-08"]).assert_ok();
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["A", "B"]
    );
    assert_eq!(watermark(), ["2024-01-01 10:00:00"]);
    // An incremental run starts from there and closes the gap.
    archive.sync(&["feed", "--incremental"]).assert_ok();
    assert_eq!(
        archive.row("SELECT window_start, unchanged FROM muninn_sync_runs WHERE id = 3"),
        ["2024-01-01 09:50:00", "2"]
    );
    assert_eq!(watermark(), ["2024-01-10 10:00:00"]);
}

on_both_backends!(a_second_run_of_a_synchronizer_is_refused_or_waits_while_others_run);
fn a_second_run_of_a_synchronizer_is_refused_or_waits_while_others_run(backend: Backend) {
    let archive = Archive::on(
        backend,
        &format!(
            "{FEED_SECTION}\n{}",
            outside_section("slow", "slow", &names(30), "delay_ms = 200")
        ),
    );
    archive.write_feed("feed.jsonl", &feed_lines());
    let slow = archive.start(&["slow"]);
    wait_until("the slow run holds its lock", PATIENCE, || {
        archive.lock_holder("slow").is_some()
    });

    // Another synchronizer of the archive runs alongside.
    archive.sync(&["feed"]).assert_ok();
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE product_type = 'T'"),
        2
    );

    let busy = archive.sync(&["slow"]);
    busy.assert_error(
        75,
        &[
            "synchronizer \"slow\" is already running",
            &format!("pid {}", slow.pid()),
            // When the holder started: the lock file's record, or the
            // holding session's start in the server.
            backend.pick(", started 20", ", connected 20"),
            &archive.lock_name("slow"),
            "wait for it with --wait",
        ],
    );
    archive
        .sync(&["slow", "--wait=0.5"])
        .assert_error(75, &["is already running", "after waiting 0.5s"]);

    let waited = archive.sync(&["slow", "--wait=120"]);
    waited.assert_ok();
    let first = slow.finish();
    first.assert_ok();
    assert_eq!(
        archive.strings(
            "SELECT outcome || ' ' || created || ' ' || unchanged FROM muninn_sync_runs \
             WHERE synchronizer = 'slow' ORDER BY id"
        ),
        ["succeeded 30 0", "succeeded 0 30"],
        "refused runs record nothing; the waiting one ran after the first had finished"
    );
    assert_eq!(
        archive.lock_holder("slow"),
        None,
        "a finished run clears its lock"
    );
}

on_both_backends!(a_lock_left_by_a_killed_run_is_taken_over_and_the_run_marked_abandoned);
fn a_lock_left_by_a_killed_run_is_taken_over_and_the_run_marked_abandoned(backend: Backend) {
    let archive = Archive::on(
        backend,
        &outside_section("slow", "slow", &names(8), "delay_ms = 300"),
    );
    let killed = archive.start(&["slow"]);
    let pid = killed.pid();
    wait_for_created(&archive, 1);
    killed.kill();
    match backend {
        // The lock file stays, naming the killed run.
        Backend::Sqlite => assert!(
            archive
                .lock_holder("slow")
                .is_some_and(|text| text.contains(&format!("pid={pid}"))),
            "{:?}",
            archive.lock_holder("slow")
        ),
        // The server drops the advisory lock with the killed run's session.
        Backend::Postgresql => wait_until(
            "the server has dropped the killed run's lock",
            PATIENCE,
            || archive.lock_holder("slow").is_none(),
        ),
    }
    assert_eq!(
        archive.strings("SELECT outcome FROM muninn_sync_runs"),
        ["running"]
    );

    let run = archive.sync(&["slow"]);
    run.assert_ok();
    // Only a lock file outlives its run, to be taken over and reported.
    assert_eq!(
        run.stderr.contains(&format!("pid {pid}"))
            && run.stderr.contains("ended without releasing its lock"),
        backend == Backend::Sqlite,
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.strings("SELECT outcome FROM muninn_sync_runs ORDER BY id"),
        ["abandoned", "succeeded"]
    );
    let error = &archive.strings("SELECT error FROM muninn_sync_runs WHERE id = 1")[0];
    assert!(error.contains("committed batches are kept"), "{error}");
    assert_eq!(archive.count("SELECT count(*) FROM core"), 8);
    assert!(archive.count("SELECT unchanged FROM muninn_sync_runs WHERE id = 2") >= 1);
}

on_both_backends!(sigterm_and_sigint_stop_a_run_after_its_last_commit_and_a_rerun_finishes);
fn sigterm_and_sigint_stop_a_run_after_its_last_commit_and_a_rerun_finishes(backend: Backend) {
    let archive = Archive::on(
        backend,
        &outside_section("slow", "slow", &names(12), "delay_ms = 300"),
    );
    let run = archive.start(&["slow"]);
    wait_for_created(&archive, 2);
    run.signal("TERM");
    let terminated = run.finish();
    terminated.assert_error(143, &["interrupted by SIGTERM", "run again to go on"]);
    let (outcome, created) = {
        let row = archive.row("SELECT outcome, created FROM muninn_sync_runs WHERE id = 1");
        (row[0].clone(), row[1].parse::<i64>().unwrap())
    };
    assert_eq!(outcome, "interrupted");
    assert!((2..12).contains(&created), "created {created}");
    assert_eq!(archive.count("SELECT count(*) FROM core"), created);
    assert_eq!(archive.lock_holder("slow"), None);

    let run = archive.start(&["slow"]);
    wait_until("the second run has created a product", PATIENCE, || {
        archive
            .try_count("SELECT created FROM muninn_sync_runs WHERE id = 2")
            .is_some_and(|n| n >= 1)
    });
    run.signal("INT");
    run.finish().assert_error(130, &["interrupted by SIGINT"]);
    assert_eq!(
        archive.strings("SELECT outcome FROM muninn_sync_runs ORDER BY id"),
        ["interrupted", "interrupted"]
    );

    archive.sync(&["slow"]).assert_ok();
    assert_eq!(archive.count("SELECT count(*) FROM core"), 12);
    assert_eq!(
        archive.count("SELECT sum(created) FROM muninn_sync_runs"),
        12
    );
}

on_both_backends!(a_dry_run_lists_what_it_would_change_and_writes_nothing);
fn a_dry_run_lists_what_it_would_change_and_writes_nothing(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "B", "2024-01-02T10:00:00Z"),
            product("T", "C", "2024-01-03T10:00:00Z"),
        ],
    );
    archive.sync(&["feed"]).assert_ok();
    let mut changed_a = product("T", "A", "2024-02-03T10:00:00Z");
    changed_a["size"] = json!(2000);
    append(
        &archive,
        &[
            product("T", "D", "2024-02-01T10:00:00Z"),
            product("T", "E", "2024-02-02T10:00:00Z"),
            changed_a,
            deletion("T", "C", "2024-02-04T10:00:00Z"),
        ],
    );
    let file = || archive.snapshot();
    let core = || {
        archive.strings(
            "SELECT product_name || ' ' || size || ' ' || metadata_date FROM core ORDER BY 1",
        )
    };
    let (file_before, core_before) = (file(), core());

    let run = archive.sync(&["feed", "-n"]);
    run.assert_ok();
    for line in [
        "INFO: dry run of \"feed\" done: 2 created, 1 updated, 1 removed, 0 failed, 1 unchanged in ",
        "; nothing was written",
        "INFO: would create 2: T/D, T/E\n",
        "INFO: would update 1: T/A\n",
        "INFO: would remove 1: T/C\n",
    ] {
        assert!(run.stderr.contains(line), "{line:?} not in:\n{}", run.stderr);
    }
    let report = archive.sync(&["feed", "--dry-run", "--report", "json"]);
    report.assert_ok();
    let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(
        report["would"],
        json!({"create": ["T/D", "T/E"], "update": ["T/A"], "remove": ["T/C"]})
    );
    assert_eq!(
        (&report["dry_run"], &report["run_id"]),
        (&json!(true), &json!(null))
    );

    assert!(
        core() == core_before && file() == file_before,
        "a dry run changed the catalogue"
    );
    assert_eq!(archive.count("SELECT count(*) FROM muninn_sync_runs"), 1);

    // The real run does what the dry run said.
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("2 created, 1 updated, 1 removed, 0 failed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.strings("SELECT product_name || ' ' || size FROM core ORDER BY 1"),
        ["A 2000", "B 1000", "D 1000", "E 1000"]
    );
}

on_both_backends!(the_json_report_tells_scripts_how_the_run_went);
fn the_json_report_tells_scripts_how_the_run_went(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &feed_lines());
    let run = archive.sync(&["feed", "--report", "json"]);
    run.assert_ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", run.stdout));
    assert_eq!(report["archive"], "archive.toml");
    assert_eq!(report["synchronizer"], "feed");
    assert_eq!(report["plugin"], "jsonl 0.1.0");
    assert_eq!(
        report["run_id"],
        json!(archive.count("SELECT max(id) FROM muninn_sync_runs"))
    );
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["product_types"], json!(null));
    assert_eq!(
        report["window"],
        json!({"start": null, "end": null, "incremental": false})
    );
    assert!(
        report["started"].as_str().unwrap().starts_with("20"),
        "{}",
        report["started"]
    );
    assert!(report["duration_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["products_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(
        report["counts"],
        json!({"created": 3, "updated": 0, "unchanged": 0, "removed": 0, "failed": 0})
    );
    assert_eq!(report["failures"], json!([]));
    assert_eq!(report["error"], json!(null));
    assert_eq!(
        report["watermarks"],
        json!({"T": "2024-01-03T10:00:00Z", "U": "2024-01-03T10:00:00Z"})
    );
    assert!(report.get("would").is_none(), "{report:#}");

    append(&archive, &[json!("not a product")]);
    let run = archive.sync(&[
        "feed",
        "--report",
        "json",
        "-p",
        "T",
        "--start",
        "2024-01-02",
        "--end",
        "2024-02-01",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["product_types"], json!(["T"]));
    assert_eq!(
        report["window"],
        json!({"start": "2024-01-02T00:00:00Z", "end": "2024-02-01T00:00:00Z", "incremental": false})
    );
    assert_eq!(
        report["counts"],
        json!({"created": 0, "updated": 0, "unchanged": 1, "removed": 0, "failed": 1})
    );
    let failure = &report["failures"][0];
    assert!(
        failure["product"]
            .as_str()
            .unwrap()
            .ends_with("feed.jsonl line 4"),
        "{failure}"
    );
    assert!(
        failure["message"].as_str().unwrap().contains("invalid"),
        "{failure}"
    );
    let error = report["error"].as_str().unwrap();
    assert!(
        run.errors() == [format!("ERROR: {error}")]
            && error.contains("1 product(s) could not be synced"),
        "{error}\n{}",
        run.stderr
    );
}

on_both_backends!(the_metrics_file_covers_every_synchronizer_and_is_replaced_whole);
fn the_metrics_file_covers_every_synchronizer_and_is_replaced_whole(backend: Backend) {
    let archive = Archive::on(
        backend,
        &format!(
            "{FEED_SECTION}\n[\"synchronizer:backfill\"]\nmodule = \"jsonl\"\npath = \"backfill.jsonl\"\n"
        ),
    );
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "B", "2024-01-02T10:00:00Z"),
        ],
    );
    archive.write_feed("backfill.jsonl", &[json!({"product_type": "T"})]);
    let metrics_dir = archive.path("metrics");
    std::fs::create_dir(&metrics_dir).unwrap();
    let metrics = metrics_dir.join("muninn.prom");
    let metrics_arg = metrics.to_str().unwrap();

    archive
        .sync(&["feed", "--metrics-file", metrics_arg])
        .assert_ok();
    let text = std::fs::read_to_string(&metrics).unwrap();
    let feed = "archive=\"archive\",synchronizer=\"feed\"";
    for line in [
        "# TYPE muninn_sync_last_run_products gauge".to_string(),
        format!("muninn_sync_last_run_products{{{feed},result=\"created\"}} 2"),
        format!("muninn_sync_last_run_products{{{feed},result=\"unchanged\"}} 0"),
        format!("muninn_sync_last_run_success{{{feed}}} 1"),
        format!("muninn_sync_last_run_outcome{{{feed},outcome=\"succeeded\"}} 1"),
        // 2024-01-02T10:00:00Z
        format!("muninn_sync_watermark_timestamp_seconds{{{feed},product_type=\"T\"}} 1704189600"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    for metric in [
        "muninn_sync_last_run_duration_seconds",
        "muninn_sync_last_run_timestamp_seconds",
        "muninn_sync_last_success_timestamp_seconds",
    ] {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{metric}{{{feed}}} ")))
            .unwrap_or_else(|| panic!("no {metric} in:\n{text}"));
        assert!(value.parse::<f64>().unwrap() >= 0.0, "{metric} {value}");
    }
    assert!(
        !text.contains("backfill"),
        "no run of backfill yet:\n{text}"
    );

    // A scraper that opened the file keeps reading the old one whole while
    // the next run puts a new one in its place.
    let mut scraping = std::fs::File::open(&metrics).unwrap();
    archive
        .sync(&["backfill", "--metrics-file", metrics_arg])
        .assert_error(1, &["could not be synced"]);
    let mut old = String::new();
    std::io::Read::read_to_string(&mut scraping, &mut old).unwrap();
    assert_eq!(old, text);
    let text = std::fs::read_to_string(&metrics).unwrap();
    let backfill = "archive=\"archive\",synchronizer=\"backfill\"";
    for line in [
        format!("muninn_sync_last_run_products{{{feed},result=\"created\"}} 2"),
        format!("muninn_sync_last_run_success{{{feed}}} 1"),
        format!("muninn_sync_last_run_products{{{backfill},result=\"failed\"}} 1"),
        format!("muninn_sync_last_run_success{{{backfill}}} 0"),
        format!("muninn_sync_last_run_outcome{{{backfill},outcome=\"failed\"}} 1"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    assert!(
        !text.contains(&format!(
            "muninn_sync_last_success_timestamp_seconds{{{backfill}}}"
        )),
        "backfill never succeeded:\n{text}"
    );
    let files: Vec<_> = std::fs::read_dir(&metrics_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["muninn.prom"], "temporary files left behind");

    // A dry run leaves the metrics alone.
    archive
        .sync(&["feed", "-n", "--metrics-file", metrics_arg])
        .assert_ok();
    assert_eq!(std::fs::read_to_string(&metrics).unwrap(), text);
}

on_both_backends!(products_that_fail_are_skipped_and_the_run_fails_at_the_end);
fn products_that_fail_are_skipped_and_the_run_fails_at_the_end(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "B", "2024-01-02T10:00:00Z"),
            product("T", "C", "2024-01-03T10:00:00Z"),
        ],
    );
    // A line the remote garbled, between good ones.
    let text = std::fs::read_to_string(archive.path("feed.jsonl")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(1, "{\"modified\": \"2024-01-01T");
    std::fs::write(archive.path("feed.jsonl"), lines.join("\n") + "\n").unwrap();

    let run = archive.sync(&["feed"]);
    run.assert_error(
        1,
        &[
            "synchronizer \"feed\"",
            "1 product(s) could not be synced and were skipped",
            "feed.jsonl line 2: invalid JSON",
        ],
    );
    assert!(
        run.stderr.contains(
            "INFO: sync of \"feed\" failed: 3 created, 0 updated, 0 removed, 1 failed, 0 unchanged"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["A", "B", "C"]
    );
    assert_eq!(
        archive.row("SELECT outcome, created, failed FROM muninn_sync_runs"),
        ["failed", "3", "1"]
    );
    // The garbled line is not synced: no watermark may claim it is.
    assert_eq!(
        archive.count("SELECT count(*) FROM muninn_sync_watermarks"),
        0
    );
}

on_both_backends!(fail_fast_stops_at_the_first_product_that_fails);
fn fail_fast_stops_at_the_first_product_that_fails(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    let mut bad = product("T", "C", "2024-01-03T10:00:00Z");
    bad["size"] = json!("big");
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "B", "2024-01-02T10:00:00Z"),
            bad,
            product("T", "D", "2024-01-04T10:00:00Z"),
            product("T", "E", "2024-01-05T10:00:00Z"),
        ],
    );
    archive.sync(&["feed", "--fail-fast"]).assert_error(
        1,
        &[
            "stopped at the first product that could not be synced (--fail-fast)",
            "feed.jsonl line 3",
        ],
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["A", "B"]
    );
    assert_eq!(
        archive.row("SELECT outcome, created, failed FROM muninn_sync_runs"),
        ["failed", "2", "1"]
    );
    // Without --fail-fast the run goes on past it.
    archive.sync(&["feed"]).assert_error(
        1,
        &["1 product(s) could not be synced", "feed.jsonl line 3"],
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["A", "B", "D", "E"]
    );
}

on_both_backends!(a_plugin_that_panics_or_fails_ends_its_run_failed_and_frees_the_lock);
fn a_plugin_that_panics_or_fails_ends_its_run_failed_and_frees_the_lock(backend: Backend) {
    for (action, says) in [
        ("panic", "panicked: the outside plugin panics on purpose"),
        ("fail", "the outside plugin fails on purpose"),
    ] {
        let archive = Archive::on(backend, &outside_section("outside", action, &names(2), ""));
        archive.sync(&["outside"]).assert_error(
            1,
            &["synchronizer \"outside\"", "plugin outside 0.3.0", says],
        );
        assert_eq!(
            archive.row("SELECT outcome, created FROM muninn_sync_runs"),
            ["failed", "2"]
        );
        let error = &archive.strings("SELECT error FROM muninn_sync_runs")[0];
        assert!(error.contains(says), "{error}");
        assert_eq!(archive.count("SELECT count(*) FROM core"), 2);
        assert_eq!(archive.lock_holder("outside"), None);
        // Fixed, the next run goes ahead at once.
        archive.configure(&outside_section("outside", "create", &names(2), ""));
        archive.sync(&["outside"]).assert_ok();
        assert_eq!(
            archive.strings("SELECT outcome FROM muninn_sync_runs ORDER BY id"),
            ["failed", "succeeded"]
        );
    }
}

on_both_backends!(a_plugin_that_hangs_is_ended_at_the_timeout_keeping_its_products);
fn a_plugin_that_hangs_is_ended_at_the_timeout_keeping_its_products(backend: Backend) {
    let archive = Archive::on(backend, &outside_section("outside", "hang", &names(3), ""));
    let began = Instant::now();
    let run = archive.sync(&["outside", "--timeout", "2"]);
    let took = began.elapsed();
    run.assert_error(
        124,
        &[
            "synchronizer \"outside\"",
            "the plugin did nothing for 2s (--timeout)",
        ],
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(60),
        "took {took:?}"
    );
    assert_eq!(
        archive.row("SELECT outcome, created FROM muninn_sync_runs"),
        ["timed_out", "3"]
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["p00", "p01", "p02"]
    );
    assert_eq!(archive.lock_holder("outside"), None);

    // The same from the section's timeout key.
    archive.configure(&outside_section(
        "outside",
        "hang",
        &names(4),
        "inactivity_timeout = \"1s\"",
    ));
    archive
        .sync(&["outside"])
        .assert_error(124, &["the plugin did nothing for 1s (--timeout)"]);
    assert_eq!(
        archive.strings("SELECT outcome || ' ' || created || ' ' || unchanged FROM muninn_sync_runs ORDER BY id"),
        ["timed_out 3 0", "timed_out 1 3"]
    );
    assert_eq!(archive.count("SELECT count(*) FROM core"), 4);
}

/// Runs muninn-sync under `script`, which gives it a terminal, and returns
/// what the terminal showed.
fn on_a_terminal(archive: &Archive, args: &str) -> String {
    let command = format!(
        "{} archive.toml {args}",
        muninn_sync_e2e::binary().display()
    );
    let output = std::process::Command::new("script")
        .current_dir(archive.dir.path())
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env_remove("MUNINN_CONFIG_PATH")
        .output()
        .expect("run script (util-linux)");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

on_both_backends!(a_terminal_shows_a_progress_line_and_cron_logs_do_not);
fn a_terminal_shows_a_progress_line_and_cron_logs_do_not(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    let lines: Vec<serde_json::Value> = (0..4000)
        .map(|i| {
            product(
                "T",
                &format!("P{i:05}"),
                &format!(
                    "2024-01-01T{:02}:{:02}:{:02}Z",
                    i / 3600,
                    i / 60 % 60,
                    i % 60
                ),
            )
        })
        .collect();
    archive.write_feed("feed.jsonl", &lines);
    let shown = on_a_terminal(&archive, "feed");
    // The bar: done / expected (the plugin announced 4,000 lines).
    assert!(
        shown.contains(ERASE_LINE) && shown.contains(" / 4,000 ("),
        "no progress bar on the terminal:\n{shown}"
    );
    // The summary line wipes the bar: on the screen, what follows the last
    // "erase line" is the summary alone.
    assert!(
        shown.lines().any(|l| l
            .rsplit(ERASE_LINE)
            .next()
            .unwrap_or("")
            .starts_with("INFO: sync of \"feed\" done")),
        "{shown}"
    );
    // -q on a terminal, and any run without one (cron), show none.
    archive.write_feed("feed.jsonl", &lines[..3000]);
    let quiet = on_a_terminal(&archive, "feed -q --full --force");
    assert!(
        !quiet.contains(ERASE_LINE) && !quiet.contains(" / "),
        "{quiet}"
    );
    let cron = archive.sync(&["feed", "--force"]);
    cron.assert_ok();
    assert!(!cron.stderr.contains(ERASE_LINE), "{}", cron.stderr);
    assert!(!cron.stderr.contains("\x1b["), "{}", cron.stderr);
}

/// The terminal code the progress bars are wiped with.
const ERASE_LINE: &str = "\x1b[2K";

on_both_backends!(a_quiet_product_type_does_not_hold_incremental_windows_back);
fn a_quiet_product_type_does_not_hold_incremental_windows_back(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &feed_lines());
    archive.sync(&["feed", "--incremental"]).assert_ok();
    // Only U keeps changing; T has nothing new.
    append(&archive, &[product("U", "E", "2024-02-01T10:00:00Z")]);
    archive.sync(&["feed", "--incremental"]).assert_ok();
    append(&archive, &[product("U", "F", "2024-03-01T10:00:00Z")]);
    let run = archive.sync(&["feed", "--incremental"]);
    run.assert_ok();
    // The feed was read whole up to E's time, for T as much as for U, so
    // the third run starts from there, not from T's last product.
    assert_eq!(
        archive.row("SELECT window_start, created FROM muninn_sync_runs WHERE id = 3"),
        ["2024-02-01 09:50:00", "1"]
    );
    assert_eq!(
        archive.strings(
            "SELECT product_type || ' ' || watermark FROM muninn_sync_watermarks ORDER BY 1"
        ),
        ["T 2024-03-01 10:00:00", "U 2024-03-01 10:00:00"]
    );
}

on_both_backends!(a_malformed_line_holds_only_its_own_product_types_watermark);
fn a_malformed_line_holds_only_its_own_product_types_watermark(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    let mut bad = product("U", "X", "2024-01-02T10:00:00Z");
    bad["modified"] = json!("the second of January");
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            bad,
            product("U", "B", "2024-01-03T10:00:00Z"),
            product("T", "C", "2024-01-04T10:00:00Z"),
        ],
    );
    let run = archive.sync(&["feed"]);
    run.assert_error(1, &["feed.jsonl line 2", "\"modified\""]);
    // The line names product type U: only U's watermark stays where it
    // was (none yet); T's moves on past its products.
    assert_eq!(
        archive.strings(
            "SELECT product_type || ' ' || watermark FROM muninn_sync_watermarks ORDER BY 1"
        ),
        ["T 2024-01-04 10:00:00"]
    );
    // A line whose product type cannot be read holds every type, as before.
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "C", "2024-01-04T10:00:00Z"),
            product("T", "D", "2024-01-05T10:00:00Z"),
        ],
    );
    append(&archive, &[json!("not a product")]);
    archive.sync(&["feed"]).assert_error(1, &["invalid"]);
    assert_eq!(
        archive.strings("SELECT watermark FROM muninn_sync_watermarks WHERE product_type = 'T'"),
        ["2024-01-04 10:00:00"]
    );
}

on_both_backends!(a_time_far_in_the_future_does_not_pin_the_watermark);
fn a_time_far_in_the_future_does_not_pin_the_watermark(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "FUTURE", "9999-12-31T00:00:00Z"),
        ],
    );
    let run = archive.sync(&["feed", "--incremental"]);
    run.assert_ok();
    assert!(
        run.stderr.contains(
            "WARN: watermark not raised to 9999-12-31 00:00:00: later than this run's start plus future_tolerance"
        ),
        "{}",
        run.stderr
    );
    // The product is synced; the watermark stays at the last real time.
    assert_eq!(archive.count("SELECT count(*) FROM core"), 2);
    assert_eq!(
        archive.strings("SELECT watermark FROM muninn_sync_watermarks"),
        ["2024-01-01 10:00:00"]
    );
    // So the next incremental run still sees a later real change.
    append(&archive, &[product("T", "B", "2024-02-01T10:00:00Z")]);
    let next = archive.sync(&["feed", "--incremental"]);
    next.assert_ok();
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE product_name = 'B'"),
        1
    );
}

on_both_backends!(max_products_and_future_tolerance_are_the_sections_to_set);
fn max_products_and_future_tolerance_are_the_sections_to_set(backend: Backend) {
    let archive = Archive::on(backend, &format!("{FEED_SECTION}max_products = 2\n"));
    archive.write_feed("feed.jsonl", &feed_lines());
    let run = archive.sync(&["feed"]);
    run.assert_error(
        1,
        &[
            "stopped: the run handled more than 2 products (max_products in the synchronizer's section)",
            "the changes up to then are committed",
        ],
    );
    assert_eq!(
        archive.row("SELECT outcome FROM muninn_sync_runs"),
        ["failed"]
    );
    // A tolerance of a year lets a time a month ahead raise the watermark.
    let ahead = (chrono::Utc::now() + chrono::Duration::days(30))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    archive.configure(&format!("{FEED_SECTION}future_tolerance = \"365d\"\n"));
    archive.write_feed("feed.jsonl", &[product("T", "SOON", &ahead)]);
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(
        !run.stderr.contains("watermark not raised"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.count("SELECT count(*) FROM muninn_sync_watermarks WHERE product_type = 'T'"),
        1
    );
    archive.configure(&format!("{FEED_SECTION}max_products = \"many\"\n"));
    archive.sync(&["feed"]).assert_error(
        1,
        &["key \"max_products\"", "expected a number of products"],
    );
}
