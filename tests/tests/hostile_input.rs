//! Careless input and hostile surroundings, as a user meets them: a second
//! path to the catalogue while a run goes on, a secret in a misspelt
//! configuration, a catalogue that would keep nothing, and a plugin found
//! where anyone may put one.

use muninn_sync_e2e::{
    muninn_sync, outside_plugin, product, profile_dir, wait_until, Archive, BASE_CONFIG,
};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// How long a test waits for a background run to get somewhere.
const PATIENCE: Duration = Duration::from_secs(60);

/// The configuration of an archive with one slow synchronizer (the outside
/// plugin, `count` products, `delay_ms` after each).
fn slow_archive_config(count: usize, delay_ms: u64) -> String {
    let names: Vec<String> = (0..count).map(|i| format!("p{i:02}")).collect();
    format!(
        "{BASE_CONFIG}\n[\"synchronizer:slow\"]\nmodule = \"{}\"\naction = \"slow\"\nproduct_type = \"OUT\"\nnames = {names:?}\ndelay_ms = {delay_ms}\n",
        outside_plugin().display()
    )
}

#[test]
fn a_run_through_a_symlink_to_the_catalogue_meets_the_running_runs_lock() {
    let config = slow_archive_config(30, 200);
    let archive = Archive::new(&config);
    let running = archive.start(&["slow"]);
    let lock = archive.path("catalogue.sqlite.slow.sync-lock");
    wait_until("the slow run holds its lock", PATIENCE, || {
        std::fs::read_to_string(&lock).is_ok_and(|text| !text.trim().is_empty())
    });

    // The same catalogue by another name, from a configuration elsewhere
    // (a second copy of the archive's file, as a colleague's cron job has).
    std::os::unix::fs::symlink("catalogue.sqlite", archive.path("alias.sqlite")).unwrap();
    std::fs::create_dir(archive.path("elsewhere")).unwrap();
    std::fs::write(
        archive.path("elsewhere/archive.toml"),
        config.replace("\"catalogue.sqlite\"", "\"../alias.sqlite\""),
    )
    .unwrap();
    let beside = muninn_sync(archive.dir.path(), &["elsewhere/archive.toml", "slow"], &[]);
    beside.assert_error(
        75,
        &[
            "synchronizer \"slow\" is already running",
            &format!("pid {}", running.pid()),
            "catalogue.sqlite.slow.sync-lock",
        ],
    );
    assert!(
        !archive.path("alias.sqlite.slow.sync-lock").exists(),
        "the lock is the real file's, not the symlink's"
    );

    running.finish().assert_ok();
    assert_eq!(
        archive.strings("SELECT outcome FROM muninn_sync_runs ORDER BY id"),
        ["succeeded"],
        "the refused run recorded nothing and did not mark the live run abandoned"
    );
}

/// A stac section whose `headers` are written `headers`.
fn stac_config(headers: &str) -> String {
    format!("{BASE_CONFIG}\n[\"synchronizer:stac\"]\nmodule = \"stac\"\nurl = \"http://127.0.0.1:9/\"\n{headers}\n")
}

const CFG_BASE: &str = "[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = catalogue.sqlite\n[synchronizer:stac]\nmodule = stac\nurl = http://127.0.0.1:9/\n";

#[test]
fn configuration_errors_never_print_a_credential() {
    // A string where the table of headers belongs (TOML).
    let archive = Archive::new(&stac_config("headers = \"Bearer SECRET-TOML\""));
    let run = archive.sync(&["stac"]);
    run.assert_error(
        1,
        &[
            "configuration file \"archive.toml\", section [\"synchronizer:stac\"]",
            "key \"headers\"",
            "expected a map",
        ],
    );
    assert!(!run.stderr.contains("SECRET-TOML"), "{}", run.stderr);

    // muninn's form: the same mistake, and an API key read as a number.
    let cfg = |text: &str| {
        std::fs::write(archive.path("archive.cfg"), text).unwrap();
        muninn_sync(archive.dir.path(), &["archive.cfg", "stac"], &[])
    };
    let run = cfg(&format!("{CFG_BASE}headers = Bearer SECRET-CFG\n"));
    run.assert_error(1, &["section [synchronizer:stac]", "key \"headers\""]);
    assert!(!run.stderr.contains("SECRET-CFG"), "{}", run.stderr);
    let run = cfg(&format!(
        "{CFG_BASE}[synchronizer:stac.headers]\nX-Api-Key = 31415926535\n"
    ));
    run.assert_error(1, &["key \"headers.x-api-key\"", "expected a string"]);
    assert!(!run.stderr.contains("31415926535"), "{}", run.stderr);

    // A password with a '%' that INI interpolation cannot read: the host's
    // own error names the line and key, not the password.
    let run = cfg(&format!(
        "{CFG_BASE}[synchronizer:stac.http]\npassword = hunter%2SECRET\n"
    ));
    run.assert_error(
        1,
        &[
            "line 9, section [synchronizer:stac.http], key \"password\"",
            "'%' must be followed by '%' or '('",
        ],
    );
    assert!(!run.stderr.contains("2SECRET"), "{}", run.stderr);
    // And a line that is no key = value right after a credential's key.
    let run = cfg(&format!("{CFG_BASE}token =\nhunter2-unindented\n"));
    run.assert_error(1, &["line 9, section [synchronizer:stac]", "is neither"]);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

#[test]
fn a_connection_string_that_keeps_nothing_is_refused_naming_file_section_and_key() {
    let archive = Archive::with_feed();
    archive.write_feed("feed.jsonl", &[product("T", "A", "2024-01-01T10:00:00Z")]);
    for connection_string in [
        "file:catalogue.sqlite?mode=memory",
        "file:catalogue.sqlite?cache=shared&mode=memory",
        "file::memory:",
        "FILE::memory:?cache=shared",
        "file:",
        "file:?mode=rwc",
        ":memory:",
        " :memory: ",
        "",
    ] {
        archive.write_config(&format!(
            "[archive]\ndatabase = \"sqlite\"\n[sqlite]\nconnection_string = \"{connection_string}\"\n[\"synchronizer:feed\"]\nmodule = \"jsonl\"\npath = \"feed.jsonl\"\n"
        ));
        let run = archive.sync(&["feed"]);
        run.assert_error(
            1,
            &[
                "configuration file \"archive.toml\", section [sqlite], key \"connection_string\"",
                "would keep nothing",
            ],
        );
        assert!(!run.stderr.contains("created"), "{}", run.stderr);
    }
    // A URI that names a file is refused too: whether SQLite reads it as a
    // URI or as a file name depends on how the configuration was named.
    archive.write_config(
        "[archive]\ndatabase = \"sqlite\"\n[sqlite]\nconnection_string = \"file:catalogue.sqlite\"\n[\"synchronizer:feed\"]\nmodule = \"jsonl\"\npath = \"feed.jsonl\"\n",
    );
    archive.sync(&["feed"]).assert_error(
        1,
        &[
            "key \"connection_string\"",
            "is a SQLite URI",
            "connection_string = \"catalogue.sqlite\"",
        ],
    );
    assert!(!archive.path("catalogue.sqlite").exists());
    // The .cfg form says the same, with the line.
    std::fs::write(
        archive.path("archive.cfg"),
        "[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = file::memory:\n[synchronizer:feed]\nmodule = jsonl\npath = feed.jsonl\n",
    )
    .unwrap();
    muninn_sync(archive.dir.path(), &["archive.cfg", "feed"], &[]).assert_error(
        1,
        &[
            "configuration file \"archive.cfg\", line 4, section [sqlite], key \"connection_string\"",
            "would keep nothing",
        ],
    );
}

/// The real path of the bundled jsonl plugin.
fn bundled_jsonl() -> std::path::PathBuf {
    profile_dir().join("libjsonl.so").canonicalize().unwrap()
}

fn log_lines<'a>(stderr: &'a str, level: &str, part: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|line| line.starts_with(&format!("{level}: ")) && line.contains(part))
        .collect()
}

#[test]
fn plugins_from_relative_or_open_directories_are_warned_about_and_every_plugin_is_named() {
    let archive = Archive::with_feed();
    archive.write_feed("feed.jsonl", &[product("T", "A", "2024-01-01T10:00:00Z")]);
    let _binary = muninn_sync_e2e::binary();

    // The default log level shows which file was loaded.
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    let bundled = bundled_jsonl();
    assert_eq!(
        log_lines(&run.stderr, "INFO", "loaded plugin").len(),
        1,
        "{}",
        run.stderr
    );
    assert!(
        log_lines(&run.stderr, "INFO", "loaded plugin")[0].contains(&bundled.display().to_string()),
        "{}",
        run.stderr
    );
    assert!(
        log_lines(&run.stderr, "WARN", "libjsonl.so").is_empty(),
        "{}",
        run.stderr
    );

    // MUNINN_SYNC_PLUGIN_PATH=. takes a libjsonl.so from the current
    // directory ahead of the bundled one: said, with why it matters.
    std::fs::copy(&bundled, archive.path("libjsonl.so")).unwrap();
    let run = muninn_sync(
        archive.dir.path(),
        &["archive.toml", "feed"],
        &[("MUNINN_SYNC_PLUGIN_PATH", ".")],
    );
    run.assert_ok();
    let here = archive
        .dir
        .path()
        .canonicalize()
        .unwrap()
        .join("libjsonl.so");
    let warnings = log_lines(&run.stderr, "WARN", "./libjsonl.so");
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains("relative entry \".\" of MUNINN_SYNC_PLUGIN_PATH")
            && warnings[0].contains("current directory"),
        "{}",
        warnings[0]
    );
    assert!(
        log_lines(&run.stderr, "INFO", "loaded plugin")[0].contains(&here.display().to_string()),
        "{}",
        run.stderr
    );

    // A directory anyone may write to, named by path.
    let open = archive.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::copy(&bundled, open.join("libjsonl.so")).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let plugin = open.join("libjsonl.so");
    let plugin = plugin.to_str().unwrap();
    let section = format!(
        "{BASE_CONFIG}\n[\"synchronizer:feed\"]\nplugin = \"{plugin}\"\npath = \"feed.jsonl\"\n"
    );
    archive.write_config(&section);
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    let warnings = log_lines(&run.stderr, "WARN", "world-writable");
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains(
            &Path::new(plugin)
                .canonicalize()
                .unwrap()
                .display()
                .to_string()
        ),
        "{}",
        warnings[0]
    );
    // With the sticky bit (as /tmp has), others cannot replace a file
    // that is ours: no warning.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(
        log_lines(&run.stderr, "WARN", "libjsonl.so").is_empty(),
        "{}",
        run.stderr
    );
}
