//! How far a run is: what the plugin expected reaches `--report json` and
//! the metrics, and on a terminal the bars show done / expected without
//! breaking the log's lines; off a terminal (cron) there are none.

use muninn_sync_e2e::{binary, product, Archive, Backend, FEED_SECTION};
use serde_json::{json, Value as Json};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

/// A feed of two types: three lines of A in the window, one of them an
/// older state of a product, one line of B, and one line of A after it.
fn feed(archive: &Archive, name: &str) {
    archive.write_feed(
        name,
        &[
            product("A", "a1", "2024-01-02T00:00:00Z"),
            product("B", "b1", "2024-01-02T12:00:00Z"),
            product("A", "a2", "2024-01-03T00:00:00Z"),
            product("A", "a1", "2024-01-04T00:00:00Z"),
            product("A", "a3", "2024-02-01T00:00:00Z"),
        ],
    );
}

#[test]
fn the_report_and_the_metrics_say_how_many_products_the_plugin_expected() {
    let archive = Archive::on(
        Backend::Sqlite,
        &format!(
            "{FEED_SECTION}\n[\"synchronizer:other\"]\nmodule = \"jsonl\"\npath = \"other.jsonl\"\n"
        ),
    );
    feed(&archive, "feed.jsonl");
    archive.write_feed("other.jsonl", &[product("C", "c1", "2024-01-02T00:00:00Z")]);
    let run = archive.sync(&[
        "feed",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-10",
        "--report",
        "json",
        "--metrics-file",
        "muninn.prom",
    ]);
    run.assert_ok();
    let report: Json = serde_json::from_str(&run.stdout).expect("a JSON report");
    // The older line of a1 is not handed over, nor is a3 (after the window).
    assert_eq!(
        report["expected"],
        json!({"total": 3, "product_types": {"A": 2, "B": 1}})
    );
    assert_eq!(report["counts"]["created"], 3);
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\u{1b}'),
        "no progress off a terminal:\n{:?}",
        run.stderr
    );

    // Another synchronizer's run writes the file again: the expected
    // products of both are in it, each from its own last run.
    archive
        .sync(&["other", "--metrics-file", "muninn.prom"])
        .assert_ok();
    let metrics = std::fs::read_to_string(archive.path("muninn.prom")).unwrap();
    for line in [
        "# TYPE muninn_sync_last_run_expected_products gauge",
        "muninn_sync_last_run_expected_products{archive=\"archive\",synchronizer=\"feed\",product_type=\"A\"} 2",
        "muninn_sync_last_run_expected_products{archive=\"archive\",synchronizer=\"feed\",product_type=\"B\"} 1",
        "muninn_sync_last_run_expected_products{archive=\"archive\",synchronizer=\"other\",product_type=\"C\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line} in\n{metrics}"
        );
    }

    // A run that hands over nothing expected nothing, and says so.
    let again = archive.sync(&["feed", "--start", "2024-03-01", "--report", "json"]);
    again.assert_ok();
    let report: Json = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(
        report["expected"],
        json!({"total": 0, "product_types": {"A": 0, "B": 0}})
    );
}

/// Runs `muninn-sync archive.toml <args>` with stderr on a terminal of 160
/// columns (a pseudo-terminal this test reads), and returns what the
/// terminal received.
fn on_a_terminal(archive: &Archive, args: &[&str]) -> (i32, String) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new file descriptors, which are owned
    // below and nowhere else.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = Command::new(binary())
        .current_dir(archive.path(""))
        .arg("archive.toml")
        .args(args)
        .env_remove("MUNINN_CONFIG_PATH")
        .env_remove("MUNINN_SYNC_PLUGIN_PATH")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("start muninn-sync");
    let mut terminal = std::fs::File::from(master);
    let mut received = Vec::new();
    // Until the last writer is gone: then Linux answers EIO.
    let mut buffer = [0u8; 1 << 16];
    loop {
        match terminal.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    let code = child
        .wait()
        .expect("wait for muninn-sync")
        .code()
        .unwrap_or(-1);
    (code, String::from_utf8_lossy(&received).into_owned())
}

#[test]
fn on_a_terminal_the_bar_shows_done_of_expected_and_log_lines_stay_whole() {
    let archive = Archive::with_feed();
    let lines: Vec<Json> = (0..300)
        .map(|n| {
            let modified = format!("2024-01-01T00:{:02}:{:02}Z", n / 60, n % 60);
            product("S2MSI1C", &format!("P{n:03}"), &modified)
        })
        .collect();
    archive.write_feed("feed.jsonl", &lines);
    let (code, shown) = on_a_terminal(&archive, &["feed"]);
    assert_eq!(code, 0, "{shown}");
    let bar = shown
        .find(" / 300 (")
        .unwrap_or_else(|| panic!("no bar of done / expected in:\n{shown:?}"));
    assert!(
        shown.contains("S2MSI1C"),
        "the bar is named by its product type:\n{shown:?}"
    );
    let summary = shown
        .find("INFO: sync of \"feed\" done: 300 created")
        .unwrap_or_else(|| panic!("no whole summary line in:\n{shown:?}"));
    assert!(bar < summary, "the bars are gone before the summary");
    assert!(
        !shown[summary..].contains(" / 300 ("),
        "no bar after the summary:\n{:?}",
        &shown[summary..]
    );
    // Every log line starts a line of its own, whatever the bars drew.
    for (at, _) in shown.match_indices("INFO: ") {
        let before = &shown[..at];
        assert!(
            before.is_empty()
                || before.ends_with('\n')
                || before.ends_with("\u{1b}[2K")
                || before.ends_with('\r'),
            "a log line written into a bar: {:?}",
            &shown[at.saturating_sub(80)..at + 40]
        );
    }

    // With -q there is no bar, on a terminal too.
    let (code, quiet) = on_a_terminal(&archive, &["feed", "-q", "--force"]);
    assert_eq!(code, 0, "{quiet}");
    assert!(!quiet.contains(" / 300 ("), "{quiet:?}");
}
