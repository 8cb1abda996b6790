//! Every way a user can get a run wrong: the exit code, and one message
//! that names the thing at fault. Nothing in the catalogue is lost. Those
//! with an archive run on SQLite and on PostgreSQL from one body; the
//! command line's own and the SQLite file's stay single.

use muninn_sync_e2e::{muninn_sync, on_both_backends, product, Archive, Backend, FEED_SECTION};

/// The archive's whole configuration with the `feed` section and `extra`
/// lines in it.
fn feed_section(archive: &Archive, extra: &str) -> String {
    format!("{}\n{FEED_SECTION}{extra}", archive.base_config())
}

#[test]
fn version_and_help_work_alone() {
    let dir = tempfile::tempdir().unwrap();
    let version = muninn_sync(dir.path(), &["--version"], &[]);
    assert_eq!(version.code, 0);
    assert_eq!(version.stdout.trim(), format!("muninn-sync {}", "0.1.0"));
    let help = muninn_sync(dir.path(), &["--help"], &[]);
    assert_eq!(help.code, 0);
    for part in [
        "--product-types",
        "--start",
        "--end",
        "--force",
        "Exit codes:",
        "2    usage error",
        "75   another run",
        "--incremental",
        "--dry-run",
        "[start, end)",
    ] {
        assert!(
            help.stdout.contains(part),
            "{part} not in --help:\n{}",
            help.stdout
        );
    }
}

on_both_backends!(usage_errors_exit_2);
fn usage_errors_exit_2(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive
        .sync(&["feed", "--start", "yesterday"])
        .assert_error(2, &["invalid datetime: yesterday", "YYYY-MM-DD"]);
    archive
        .sync(&["feed", "--start", "2024-02-01", "--end", "2024-02-01"])
        .assert_error(2, &["--start", "must be before --end"]);
    archive.sync(&[]).assert_error(2, &["SYNCHRONIZER"]);
    archive
        .sync(&["feed", "--bogus"])
        .assert_error(2, &["--bogus"]);
    assert!(!archive.catalogue_exists(), "a usage error touches nothing");
}

// The search path is the command line's: one backend is enough.
#[test]
fn archive_ids_are_resolved_on_the_search_path() {
    let archive = Archive::with_feed();
    archive.write_feed("feed.jsonl", &[product("T", "A", "2024-01-01T00:00:00Z")]);
    std::fs::rename(archive.path("archive.toml"), archive.path("mine.toml")).unwrap();
    let dir = archive.dir.path();
    let search = format!("/nonexistent:{}", dir.display());
    muninn_sync(dir, &["mine", "feed"], &[("MUNINN_CONFIG_PATH", &search)]).assert_ok();
    muninn_sync(dir, &["other", "feed"], &[("MUNINN_CONFIG_PATH", &search)]).assert_error(
        1,
        &[
            "\"other.toml\" or \"other.cfg\" not found on search path",
            &search,
        ],
    );
    muninn_sync(dir, &["t/x", "feed"], &[("MUNINN_CONFIG_PATH", &search)])
        .assert_error(1, &["invalid archive identifier: \"t/x\""]);
    muninn_sync(dir, &["missing.toml", "feed"], &[]).assert_error(1, &["missing.toml"]);
}

on_both_backends!(configuration_errors_name_file_section_and_key);
fn configuration_errors_name_file_section_and_key(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.sync(&["nosuch"]).assert_error(
        1,
        &[
            "unregistered synchronizer: \"nosuch\"",
            "\"feed\"",
            "archive.toml",
        ],
    );

    archive.write_config(&feed_section(&archive, "").replace(
        "[archive]\n",
        "[archive]\nsynchronizers = [\"feed\", \"gone\"]\n",
    ));
    archive.sync(&["gone"]).assert_error(
        1,
        &[
            "missing synchronizer \"gone\" configuration",
            "archive.toml",
        ],
    );

    archive.write_config(&feed_section(&archive, "").replace("module = \"jsonl\"\n", ""));
    archive.sync(&["feed"]).assert_error(
        1,
        &[
            "missing module option for synchronizer \"feed\"",
            "archive.toml",
        ],
    );

    archive.write_config(
        &feed_section(&archive, "").replace("module = \"jsonl\"", "module = \"nosuchplugin\""),
    );
    archive.sync(&["feed"]).assert_error(
        1,
        &[
            "plugin \"nosuchplugin\" not found",
            "libnosuchplugin.so",
            "synchronizer \"feed\"",
        ],
    );

    archive.write_config(
        &feed_section(&archive, "")
            .replace("module = \"jsonl\"", "module = \"./plugins/libjsonl.so\""),
    );
    archive
        .sync(&["feed"])
        .assert_error(1, &["plugin file not found", "plugins/libjsonl.so"]);

    archive.write_config(&format!("{}\n[broken\n", feed_section(&archive, "")));
    archive
        .sync(&["feed"])
        .assert_error(1, &["invalid TOML", "archive.toml", "line 12, column 8"]);

    archive.write_config(
        &feed_section(&archive, "").replace("[archive]", "[archive]\ncolour = \"blue\""),
    );
    archive
        .sync(&["feed"])
        .assert_error(1, &["section [archive]", "unknown key \"colour\""]);

    archive
        .write_config(&feed_section(&archive, "").replace("connection_string", "connection_strin"));
    archive.sync(&["feed"]).assert_error(
        1,
        &[&format!("section [{}]", backend.name()), "connection_strin"],
    );
}

on_both_backends!(plugin_configuration_errors_name_the_section_and_key);
fn plugin_configuration_errors_name_the_section_and_key(backend: Backend) {
    let archive = Archive::on(backend, &format!("{FEED_SECTION}colour = \"blue\"\n"));
    archive.sync(&["feed"]).assert_error(
        1,
        &[
            "[\"synchronizer:feed\"]",
            "unknown field `colour`",
            "archive.toml",
        ],
    );
    archive.write_config(&feed_section(&archive, "").replace("path = \"feed.jsonl\"", "path = 5"));
    archive.sync(&["feed"]).assert_error(
        1,
        &["[\"synchronizer:feed\"]", "key \"path\"", "invalid type"],
    );
    archive.write_config(&feed_section(&archive, "").replace("path = \"feed.jsonl\"\n", ""));
    archive
        .sync(&["feed"])
        .assert_error(1, &["[\"synchronizer:feed\"]", "missing field `path`"]);
    assert!(
        !archive.catalogue_exists(),
        "configuration is checked before the catalogue is touched"
    );
}

on_both_backends!(a_missing_feed_is_an_error_naming_it);
fn a_missing_feed_is_an_error_naming_it(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.sync(&["feed"]).assert_error(
        1,
        &[
            "synchronizer \"feed\"",
            "plugin jsonl",
            "feed.jsonl",
            "not found",
        ],
    );
}

on_both_backends!(a_file_that_is_not_a_plugin_is_refused);
fn a_file_that_is_not_a_plugin_is_refused(backend: Backend) {
    let archive = Archive::on(
        backend,
        &FEED_SECTION.replace("module = \"jsonl\"", "module = \"./libfake.so\""),
    );
    std::fs::write(archive.path("libfake.so"), b"\x7fELF but not really").unwrap();
    archive
        .sync(&["feed"])
        .assert_error(1, &["libfake.so", "cannot be loaded as a plugin"]);
    // A real shared library that is no plugin.
    let libc = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    if let Some(libm) = libc {
        std::fs::copy(libm, archive.path("libm.so")).unwrap();
        archive.write_config(
            &feed_section(&archive, "").replace("module = \"jsonl\"", "module = \"./libm.so\""),
        );
        archive
            .sync(&["feed"])
            .assert_error(1, &["libm.so", "is not a muninn-sync plugin"]);
    }
}

// SQLite only: a file that is not a database.
#[test]
fn an_unreadable_catalogue_is_an_error_and_is_left_alone() {
    let archive = Archive::with_feed();
    archive.write_feed("feed.jsonl", &[product("T", "A", "2024-01-01T00:00:00Z")]);
    std::fs::write(
        archive.path("catalogue.sqlite"),
        b"this is not a database, and must survive",
    )
    .unwrap();
    archive
        .sync(&["feed"])
        .assert_error(1, &["catalogue.sqlite"]);
    assert_eq!(
        std::fs::read(archive.path("catalogue.sqlite")).unwrap(),
        b"this is not a database, and must survive"
    );
}
