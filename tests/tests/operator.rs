//! The operator's commands, which sync nothing: `--list`, `--history`,
//! `--check-plugin`, `--completions` and `--man`, run as an operator runs
//! them, beside the syncs of a real archive. Those that read a catalogue
//! run on SQLite and on PostgreSQL from one body; the others
//! (`--check-plugin`, `--completions`, `--man`) touch no catalogue.

use muninn_sync_e2e::{
    muninn_sync, on_both_backends, product, profile_dir, Archive, Backend, FEED_SECTION,
};
use serde_json::Value as Json;

/// An archive with two jsonl synchronizers and one whose plugin is missing.
fn archive(backend: Backend) -> Archive {
    let archive = Archive::on(
        backend,
        &format!(
            "{FEED_SECTION}\
         \n[\"synchronizer:other\"]\nmodule = \"jsonl\"\npath = \"other.jsonl\"\n\
         \n[\"synchronizer:broken\"]\nmodule = \"nosuchplugin\"\n"
        ),
    );
    archive.write_feed(
        "feed.jsonl",
        &[
            product("S2MSI1C", "A", "2024-01-01T10:00:00Z"),
            product("S2MSI1C", "B", "2024-01-02T10:00:00Z"),
            product("S1GRD", "C", "2024-01-03T10:00:00.250000Z"),
        ],
    );
    archive.write_feed(
        "other.jsonl",
        &[product("S3OLCI", "D", "2024-02-01T00:00:00Z")],
    );
    archive
}

fn json(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

on_both_backends!(list_before_any_run_shows_the_configuration_and_creates_no_catalogue);
fn list_before_any_run_shows_the_configuration_and_creates_no_catalogue(backend: Backend) {
    let archive = archive(backend);
    let before = archive.sync(&["--list"]);
    before.assert_error(1, &["synchronizer \"broken\"", "cannot be loaded"]);
    assert!(
        before.stdout.contains("not created yet"),
        "{}",
        before.stdout
    );
    assert!(!archive.catalogue_exists());
}

on_both_backends!(list_shows_every_synchronizer_its_plugin_and_where_each_product_type_stands);
fn list_shows_every_synchronizer_its_plugin_and_where_each_product_type_stands(backend: Backend) {
    let archive = archive(backend);
    // Before any run (see above): the configuration only, and no catalogue
    // is created.
    archive
        .sync(&["--list"])
        .assert_error(1, &["synchronizer \"broken\"", "cannot be loaded"]);
    assert!(!archive.catalogue_exists());

    archive.sync(&["feed"]).assert_ok();
    archive
        .sync(&["feed", "-p", "S2MSI1C", "--force"])
        .assert_ok();
    let list = archive.sync(&["--list"]);
    list.assert_error(1, &["synchronizer \"broken\""]);
    let out = &list.stdout;
    let plugin_dir = profile_dir();
    let jsonl = plugin_dir.join("libjsonl.so");
    for expected in [
        "\nfeed\n".to_string(),
        format!(
            "  plugin:    jsonl 0.1.0, plugin ABI 1, {}",
            jsonl.display()
        ),
        "  last run:  #2 succeeded".into(),
        "S1GRD         2024-01-03 10:00:00.250000  #1 succeeded".into(),
        // A type without lines since rises with the feed's newest (jsonl).
        "S2MSI1C       2024-01-03 10:00:00.250000  #2 succeeded".into(),
        "\nother\n".into(),
        "  last run:  none".into(),
        "\nbroken\n".into(),
        "  plugin:    cannot be loaded: plugin \"nosuchplugin\" not found".into(),
    ] {
        assert!(out.contains(&expected), "{expected:?} not in:\n{out}");
    }

    let document = json(&archive.sync(&["--list", "--report", "json"]).stdout);
    let by_name = |name: &str| {
        document["synchronizers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    };
    let feed = by_name("feed");
    assert_eq!(feed["name"], "feed");
    assert_eq!(feed["plugin"]["name"], "jsonl");
    assert_eq!(feed["plugin"]["abi_version"], 1);
    assert_eq!(feed["last_run"]["created"], 0);
    assert_eq!(feed["last_run"]["updated"], 2);
    let types: Vec<(String, String, i64)> = feed["product_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["product_type"].as_str().unwrap().to_string(),
                t["watermark"].as_str().unwrap().to_string(),
                t["last_run"]["id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("S1GRD".into(), "2024-01-03 10:00:00.250000".into(), 1),
            ("S2MSI1C".into(), "2024-01-03 10:00:00.250000".into(), 2),
        ]
    );
    let broken = by_name("broken");
    assert_eq!(broken["plugin"], Json::Null);
    assert!(broken["plugin_error"]
        .as_str()
        .unwrap()
        .contains("nosuchplugin"));
}

on_both_backends!(history_shows_the_last_runs_newest_first);
fn history_shows_the_last_runs_newest_first(backend: Backend) {
    let archive = archive(backend);
    archive.sync(&["feed"]).assert_ok();
    archive
        .sync(&["other", "--start", "2024-01-01", "--end", "2024-03-01"])
        .assert_ok();
    archive.write_feed("feed.jsonl", &[Json::String("not a product".into())]);
    assert_eq!(archive.sync(&["feed"]).code, 1);

    let all = archive.sync(&["--history"]);
    all.assert_ok();
    let lines: Vec<&str> = all.stdout.lines().collect();
    assert!(
        lines[0].starts_with("run  synchronizer  started"),
        "{}",
        all.stdout
    );
    assert_eq!(lines.len(), 4, "{}", all.stdout);
    assert!(
        lines[1].starts_with("3    feed") && lines[1].contains("failed"),
        "{}",
        all.stdout
    );
    assert!(
        lines[2].starts_with("2    other")
            && lines[2].contains("[2024-01-01 00:00:00, 2024-03-01 00:00:00)"),
        "{}",
        all.stdout
    );
    assert!(
        lines[3].starts_with("1    feed") && lines[3].contains("succeeded"),
        "{}",
        all.stdout
    );

    let last = archive.sync(&["--history", "1"]).stdout;
    assert_eq!(last.lines().count(), 2, "{last}");
    let feed_only = json(
        &archive
            .sync(&["feed", "--history", "--report", "json"])
            .stdout,
    );
    let runs = feed_only["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0]["id"].as_i64(), runs[0]["outcome"].as_str()),
        (Some(3), Some("failed"))
    );
    assert!(runs[0]["error"].as_str().unwrap().contains("feed.jsonl"));
    assert_eq!(
        (
            runs[1]["created"].as_i64(),
            runs[1]["synchronizer"].as_str()
        ),
        (Some(3), Some("feed"))
    );

    let fresh = Archive::with_feed_on(backend);
    let none = fresh.sync(&["--history"]);
    none.assert_ok();
    assert!(
        none.stdout.starts_with("no runs recorded"),
        "{}",
        none.stdout
    );
}

#[test]
fn check_plugin_says_what_a_file_is_or_why_it_cannot_be_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = profile_dir().join("libjsonl.so");
    let good = muninn_sync(
        dir.path(),
        &["--check-plugin", jsonl.to_str().unwrap()],
        &[],
    );
    good.assert_ok();
    assert_eq!(
        good.stdout.trim(),
        format!(
            "{}: muninn-sync plugin \"jsonl\" version 0.1.0, plugin ABI version 1 (this muninn-sync 0.1.0 uses ABI version 1)",
            jsonl.display()
        )
    );
    // By name, as `module` finds it.
    let named = muninn_sync(
        dir.path(),
        &["--check-plugin", "odata", "--report", "json"],
        &[],
    );
    named.assert_ok();
    let report = json(&named.stdout);
    assert_eq!(
        (report["loadable"].as_bool(), report["name"].as_str()),
        (Some(true), Some("odata"))
    );

    std::fs::write(dir.path().join("libfake.so"), "not a library").unwrap();
    muninn_sync(dir.path(), &["--check-plugin", "./libfake.so"], &[]).assert_error(
        1,
        &[
            "--check-plugin \"./libfake.so\"",
            "cannot be loaded as a plugin",
            "libfake.so",
        ],
    );
    muninn_sync(dir.path(), &["--check-plugin", "/no/such.so"], &[])
        .assert_error(1, &["plugin file not found", "/no/such.so"]);
    let not_plugin = muninn_sync(
        dir.path(),
        &[
            "--check-plugin",
            "/lib/x86_64-linux-gnu/libm.so.6",
            "--report",
            "json",
        ],
        &[],
    );
    if std::path::Path::new("/lib/x86_64-linux-gnu/libm.so.6").exists() {
        assert_eq!(not_plugin.code, 1, "{}", not_plugin.stderr);
        let report = json(&not_plugin.stdout);
        assert_eq!(report["loadable"], false);
        assert!(report["error"]
            .as_str()
            .unwrap()
            .contains("is not a muninn-sync plugin"));
    }
}

#[test]
fn check_plugin_of_a_name_it_cannot_find_says_where_it_looked_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let beside = profile_dir();
    let beside = beside.display();
    let run = muninn_sync(dir.path(), &["--check-plugin", "mine"], &[]);
    run.assert_error(
        1,
        &[
            "--check-plugin \"mine\": plugin \"mine\" not found",
            &format!("looked in each directory of MUNINN_SYNC_PLUGIN_PATH (not set), then beside the executable ({beside}), for {beside}/libmine.so, {beside}/mine.so."),
            "Give the plugin file's path (--check-plugin ./libmine.so), or set MUNINN_SYNC_PLUGIN_PATH",
        ],
    );
    // --check-plugin has no section to add `plugin = ...` to.
    assert!(!run.stderr.contains("section"), "{}", run.stderr);

    // As the message says: the plugin's directory on the path finds it.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        profile_dir().join("libjsonl.so"),
        plugins.join("libmine.so"),
    )
    .unwrap();
    let path = format!("/nowhere:{}", plugins.display());
    let found = muninn_sync(
        dir.path(),
        &["--check-plugin", "mine"],
        &[("MUNINN_SYNC_PLUGIN_PATH", &path)],
    );
    found.assert_ok();
    assert!(
        found.stdout.starts_with(&format!(
            "{}: muninn-sync plugin \"jsonl\"",
            plugins.join("libmine.so").display()
        )),
        "{}",
        found.stdout
    );
}

#[test]
fn completions_and_the_manual_page_come_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = muninn_sync(dir.path(), &["--completions", shell], &[]);
        script.assert_ok();
        assert!(
            script.stdout.contains("check-plugin") && script.stdout.contains("incremental"),
            "{shell}:\n{}",
            script.stdout
        );
    }
    muninn_sync(dir.path(), &["--completions", "tcsh"], &[]).assert_error(2, &["tcsh"]);
    let page = muninn_sync(dir.path(), &["--man"], &[]);
    page.assert_ok();
    let committed =
        std::fs::read_to_string(muninn_sync_e2e::workspace().join("docs/muninn-sync.1")).unwrap();
    assert_eq!(
        page.stdout, committed,
        "docs/muninn-sync.1 is the page --man prints"
    );
    // Without ARCHIVE or SYNCHRONIZER where they are needed: usage errors.
    muninn_sync(dir.path(), &["archive.toml"], &[]).assert_error(2, &["SYNCHRONIZER"]);
    muninn_sync(dir.path(), &["--list"], &[]).assert_error(2, &["ARCHIVE"]);
}

on_both_backends!(list_shows_sections_the_archive_does_not_register_without_failing);
fn list_shows_sections_the_archive_does_not_register_without_failing(backend: Backend) {
    // A .cfg shared with Python muninn keeps muninn-sync-only sections off
    // [archive] synchronizers; --list still shows them, and stays green.
    let archive = Archive::on(backend, "");
    archive.configure_with(
        "synchronizers = [\"feed\"]\n",
        &format!(
            "{FEED_SECTION}\
             \n[\"synchronizer:spare\"]\nmodule = \"jsonl\"\npath = \"other.jsonl\"\n\
             \n[\"synchronizer:mine\"]\nplugin = \"jsonl\"\npath = \"feed.jsonl\"\n"
        ),
    );
    // A section muninn-sync alone runs (`plugin`) may stay off the list.
    archive.write_feed(
        "feed.jsonl",
        &[product("S2MSI1C", "A", "2024-01-01T10:00:00Z")],
    );
    archive.sync(&["mine"]).assert_ok();
    archive
        .sync(&["spare"])
        .assert_error(1, &["unregistered synchronizer: \"spare\""]);
    let list = archive.sync(&["--list"]);
    list.assert_ok();
    assert!(
        list.stdout.contains(
            "\nspare  (not in [archive] synchronizers: cannot be run)\n  plugin:    jsonl 0.1.0"
        ),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("\nmine\n  plugin:    jsonl 0.1.0"),
        "{}",
        list.stdout
    );
}
