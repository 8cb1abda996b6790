//! A Python muninn user's own `<id>.cfg` files, run as they are: found by
//! archive id, read as configparser reads them, and mapped to Rust plugins.
//! The sync of a `.cfg` archive runs on SQLite and on PostgreSQL (muninn's
//! `[postgresql]` section) from one body; the reading and mapping of the
//! file is the same for both, and tested on SQLite.

use muninn_sync::config::ini::Ini;
use muninn_sync_e2e::{muninn_sync, on_both_backends, product, Archive, Backend, BASE_CONFIG};
use std::path::Path;
use std::process::Command;

/// muninn's own form, as a muninn 7.5 user has it: a `[DEFAULT]` value used
/// through interpolation, muninn's whitespace-separated list, a second
/// synchronizer that only Python muninn runs, and another tool's section.
const S2_CFG: &str = "\
# /etc/muninn/s2.cfg
[DEFAULT]
name = catalogue
feeds = .

[archive]
database = sqlite
storage = none
synchronizers = feed other

[sqlite]
connection_string = %(name)s.sqlite

[synchronizer:feed]
module = jsonl
path = %(feeds)s/feed.jsonl
product_types = [\"S2MSI1C\",
    \"S2MSI2A\"]

[synchronizer:other]
module = muninn_other.sync
url = https://example.org/100%%/

[fs]
root = /srv/muninn
";

/// An archive directory holding `s2.cfg` (and no `archive.toml`).
fn cfg_archive(config: &str) -> Archive {
    cfg_archive_on(Backend::Sqlite, config)
}

/// An archive directory on `backend` holding `s2.cfg`, its SQLite
/// catalogue section (`database = sqlite`, `[sqlite] connection_string =
/// ...`) turned into muninn's PostgreSQL one on PostgreSQL.
fn cfg_archive_on(backend: Backend, config: &str) -> Archive {
    let archive = Archive::on(backend, "");
    std::fs::remove_file(archive.path("archive.toml")).unwrap();
    let config = match backend {
        Backend::Sqlite => config.to_string(),
        Backend::Postgresql => {
            let (start, end) = (
                config.find("[sqlite]\n").expect("a [sqlite] section"),
                config
                    .find("\n[synchronizer:")
                    .expect("a synchronizer section"),
            );
            format!(
                "{}[postgresql]\nconnection_string = {}\n{}",
                &config[..start],
                archive.database().connection_string(),
                &config[end..]
            )
            .replace("database = sqlite", "database = postgresql")
        }
    };
    std::fs::write(archive.path("s2.cfg"), config).unwrap();
    archive
}

fn by_id(archive: &Archive, args: &[&str]) -> muninn_sync_e2e::Run {
    let search = archive.dir.path().display().to_string();
    muninn_sync(
        archive.dir.path(),
        args,
        &[("MUNINN_CONFIG_PATH", search.as_str())],
    )
}

fn names(archive: &Archive) -> Vec<String> {
    archive.strings("SELECT product_name FROM core ORDER BY product_name")
}

on_both_backends!(a_muninn_cfg_found_by_archive_id_syncs_products);
fn a_muninn_cfg_found_by_archive_id_syncs_products(backend: Backend) {
    // [DEFAULT]'s `name` and `feeds` serve interpolation only: jsonl, which
    // refuses keys it does not know, never sees them.
    let archive = cfg_archive_on(backend, S2_CFG);
    archive.write_feed(
        "feed.jsonl",
        &[
            product("S2MSI1C", "A", "2024-01-01T10:00:00Z"),
            product("S2MSI2A", "B", "2024-01-02T10:00:00Z"),
            product("S2MSI2B", "C", "2024-01-03T10:00:00Z"),
        ],
    );
    let run = by_id(&archive, &["s2", "feed"]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("2 created, 0 updated, 0 removed, 0 failed"),
        "{}",
        run.stderr
    );
    // product_types, an array written over two lines, reached the plugin
    // as an array: the third type was left out.
    assert_eq!(names(&archive), ["A", "B"]);
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE remote_url LIKE 'https://example.org/p/%'"),
        2
    );
    // The path form works as well, and the second run changes nothing.
    let again = muninn_sync(archive.dir.path(), &["s2.cfg", "feed"], &[]);
    again.assert_ok();
    assert!(
        again.stderr.contains("0 created, 0 updated"),
        "{}",
        again.stderr
    );
    // Registered but Python's: running it says how to map it.
    by_id(&archive, &["s2", "other"]).assert_error(
        1,
        &[
            "section [synchronizer:other]",
            "module \"muninn_other.sync\" is a Python module",
            "add plugin = <name> (one of the built-ins jsonl, stac, odata) or plugin = /path/to/libyours.so",
        ],
    );
    by_id(&archive, &["s2", "nosuch"]).assert_error(
        1,
        &["unregistered synchronizer: \"nosuch\"; registered synchronizers: \"feed\", \"other\""],
    );
}

#[test]
fn toml_is_preferred_over_cfg_in_the_same_directory_not_across_entries() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let toml = format!(
        "{BASE_CONFIG}\n[\"synchronizer:feed\"]\nmodule = \"jsonl\"\npath = \"toml.jsonl\"\n"
    );
    let cfg = "[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = catalogue.sqlite\n[synchronizer:feed]\nmodule = jsonl\npath = cfg.jsonl\n";
    for dir in [first.path(), second.path()] {
        for (name, product_name) in [("toml.jsonl", "FROM_TOML"), ("cfg.jsonl", "FROM_CFG")] {
            std::fs::write(
                dir.join(name),
                format!("{}\n", product("T", product_name, "2024-01-01T00:00:00Z")),
            )
            .unwrap();
        }
    }
    std::fs::write(first.path().join("s2.cfg"), cfg).unwrap();
    std::fs::write(second.path().join("s2.toml"), &toml).unwrap();
    let search = format!("{}:{}", first.path().display(), second.path().display());
    let run_in = |dir: &Path| {
        muninn_sync(
            dir,
            &["s2", "feed"],
            &[("MUNINN_CONFIG_PATH", search.as_str())],
        )
    };
    let catalogue = |dir: &Path| {
        rusqlite::Connection::open(dir.join("catalogue.sqlite"))
            .unwrap()
            .query_row("SELECT group_concat(product_name) FROM core", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap()
    };
    // The first entry has only the .cfg file: it wins over a later .toml.
    run_in(first.path()).assert_ok();
    assert_eq!(catalogue(first.path()), "FROM_CFG");
    // With both in the first entry, the .toml file is read.
    std::fs::write(first.path().join("s2.toml"), &toml).unwrap();
    std::fs::remove_file(first.path().join("catalogue.sqlite")).unwrap();
    run_in(first.path()).assert_ok();
    assert_eq!(catalogue(first.path()), "FROM_TOML");
    // Neither: both names are in the message.
    muninn_sync(
        first.path(),
        &["other", "feed"],
        &[("MUNINN_CONFIG_PATH", search.as_str())],
    )
    .assert_error(
        1,
        &["configuration file: \"other.toml\" or \"other.cfg\" not found on search path (MUNINN_CONFIG_PATH)"],
    );
}

#[test]
fn a_python_module_is_mapped_to_a_rust_plugin_with_the_plugin_key() {
    let section = "[synchronizer:cdse]\nmodule = muninn_cdse.sync\npath = feed.jsonl\n";
    let base = "[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = catalogue.sqlite\n";
    let archive = cfg_archive(&format!("{base}{section}"));
    archive.write_feed("feed.jsonl", &[product("T", "A", "2024-01-01T00:00:00Z")]);
    let file = archive.path("s2.cfg").display().to_string();
    let run = by_id(&archive, &["s2", "cdse"]);
    run.assert_error(1, &[]);
    assert_eq!(
        run.errors(),
        [format!(
            "ERROR: configuration file \"{file}\", line 6, section [synchronizer:cdse]: module \"muninn_cdse.sync\" is a Python module (Python muninn's synchronizer); muninn-sync loads Rust plugins (cdylib .so files). Map it: add plugin = odata (a built-in: jsonl, stac, odata) or plugin = /path/to/libyours.so to the section; Python muninn does not read that key. See docs/migrating-from-muninn.md, and docs/plugin-abi.md to write a plugin"
        )]
    );
    assert!(!archive.path("catalogue.sqlite").exists());

    // A plain module name with no plugin of that name: the same advice.
    std::fs::write(
        archive.path("s2.cfg"),
        format!(
            "{base}{}",
            section.replace("muninn_cdse.sync", "muninn_cdse")
        ),
    )
    .unwrap();
    by_id(&archive, &["s2", "cdse"]).assert_error(
        1,
        &[
            "synchronizer \"cdse\"",
            "plugin \"muninn_cdse\" not found; looked for",
            "If \"muninn_cdse\" is Python muninn's synchronizer module: muninn-sync loads Rust plugins",
            "add plugin = \"odata\" (a built-in: jsonl, stac, odata)",
        ],
    );

    // Mapped: Python muninn keeps its module, muninn-sync loads jsonl, and
    // the plugin sees neither key (jsonl refuses keys it does not know).
    std::fs::write(
        archive.path("s2.cfg"),
        format!("{base}{section}plugin = jsonl\n"),
    )
    .unwrap();
    let run = by_id(&archive, &["s2", "cdse"]);
    run.assert_ok();
    assert_eq!(names(&archive), ["A"]);
}

#[test]
fn cfg_errors_name_the_file_and_the_line() {
    let archive = cfg_archive(
        "[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = catalogue.sqlite\n[synchronizer:feed]\nmodule = jsonl\npath = feed.jsonl\nproduct_types [\"T\"]\n",
    );
    let file = archive.path("s2.cfg").display().to_string();
    by_id(&archive, &["s2", "feed"]).assert_error(
        1,
        &[&format!(
            "configuration file \"{file}\", line 8, section [synchronizer:feed]: \"product_types [\\\"T\\\"]\" is neither a [section] header nor a key = value line"
        )],
    );
    std::fs::write(
        archive.path("s2.cfg"),
        "[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = %(dir)s/catalogue.sqlite\n",
    )
    .unwrap();
    by_id(&archive, &["s2", "feed"]).assert_error(
        1,
        &[&format!(
            "configuration file \"{file}\", line 4, section [sqlite], key \"connection_string\": %(dir)s refers to a key \"dir\" that is in neither [sqlite] nor [DEFAULT]"
        )],
    );
    // The plugin's own complaint names the section as the file writes it.
    std::fs::write(
        archive.path("s2.cfg"),
        "[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = catalogue.sqlite\n[synchronizer:feed]\nmodule = jsonl\npat = feed.jsonl\n",
    )
    .unwrap();
    by_id(&archive, &["s2", "feed"]).assert_error(
        1,
        &[&format!(
            "configuration file \"{file}\", section [synchronizer:feed]: key \"pat\": unknown field `pat`"
        )],
    );
}

/// Files whose reading is easy to get wrong, each read by configparser and
/// by muninn-sync's reader.
const TRICKY: &[&str] = &[
    "[s]\nlist = a\n  b\n\n    c\n# comment inside\n  d\n\n\nnext = 1\nempty =\n    x\n  key = not a key\n",
    "[s]\n  a = 1\n  b = 2\n    [t]\n[u] trailing\nk: v = w\n  ; indented comment\nKEY = upper\n",
    "[DEFAULT]\nroot = /srv\nfeeds = %(root)s/feeds\n[s]\npath = %(FEEDS)s/a.jsonl\npct = 100%%\nuse = %(pct)s done\n[t]\nroot = /data\npath = %(feeds)s\n[DEFAULT]\nlate = %(root)s!\n",
    "[s]\r\na = 1\r\n  2\rb = 3\n[default]\nx = # not a comment ; either\n",
    "[s]\nk0 = end\nk1 = %(k0)s\nk2 = %(k1)s\nk3 = %(k2)s\nk4 = %(k3)s\nk5 = %(k4)s\nk6 = %(k5)s\nk7 = %(k6)s\nk8 = %(k7)s\nk9 = %(k8)s\nk10 = %(k9)s\n",
    S2_CFG,
    // From here on (FIRST_ERROR), each is an error to both.
    "[s]\nk0 = end\nk1 = %(k0)s\nk2 = %(k1)s\nk3 = %(k2)s\nk4 = %(k3)s\nk5 = %(k4)s\nk6 = %(k5)s\nk7 = %(k6)s\nk8 = %(k7)s\nk9 = %(k8)s\nk10 = %(k9)s\nk11 = %(k10)s\n",
    "[s]\ndiscount = 50% off\n",
    "[s]\nx = %(name)d\nname = 1\n",
    "[s]\nurl = %(host)s/x\n",
    "key = 1\n[s]\n",
    "[s]\nno delimiter\n",
    "[s]\n = 1\n",
    "[s]\n[t]\n[s]\n",
    "[s]\nName = 1\nname = 2\n",
    "[DEFAULT]\na = 1\n[s]\n[DEFAULT]\na = 2\n",
];

/// The first of [`TRICKY`] that neither can read.
const FIRST_ERROR: usize = 6;

/// What configparser makes of a file, as muninn reads it (`read(path)`):
/// each section's items as JSON, or `error`.
const PYTHON: &str = r#"
import configparser, json, sys
parser = configparser.ConfigParser()
try:
    parser.read(sys.argv[1], encoding="utf-8")
    print(json.dumps([[s, parser.items(s)] for s in parser.sections()]))
except configparser.Error:
    print("error")
"#;

#[test]
fn the_reader_agrees_with_pythons_configparser() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED: python3 is not installed; the INI reader was not compared with configparser"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (index, text) in TRICKY.iter().enumerate() {
        let path = dir.path().join(format!("{index}.cfg"));
        std::fs::write(&path, text).unwrap();
        let output = Command::new("python3")
            .args(["-c", PYTHON])
            .arg(&path)
            .output()
            .expect("run python3");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let python = String::from_utf8(output.stdout).unwrap();
        let python: serde_json::Value = match python.trim() {
            "error" => "error".into(),
            json => serde_json::from_str(json).unwrap(),
        };
        let ours = Ini::parse(text).ok().and_then(|ini| {
            ini.sections()
                .iter()
                .map(|s| Some(serde_json::json!([s.name, ini.items(s).ok()?])))
                .collect::<Option<Vec<_>>>()
        });
        let ours = ours.map_or_else(|| "error".into(), serde_json::Value::from);
        assert_eq!(ours, python, "file {index}:\n{text}");
        assert_eq!(
            python == "error",
            index >= FIRST_ERROR,
            "file {index}:\n{text}"
        );
    }
}
