//! Plugins from outside the workspace: one built against plugin-api alone,
//! one built against another ABI version, and plugins that misbehave. Each
//! that syncs runs on SQLite and on PostgreSQL from one body.

use muninn_sync_e2e::{
    build_outside_plugin, copy_tree, muninn_sync, on_both_backends, outside_plugin, product,
    workspace, Archive, Backend, FEED_SECTION,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn outside_section(name: &str, action: &str, names: &[&str]) -> String {
    format!(
        "[\"synchronizer:{name}\"]\nmodule = \"{}\"\naction = \"{action}\"\nproduct_type = \"OUT\"\nnames = {names:?}\n",
        outside_plugin().display()
    )
}

on_both_backends!(a_plugin_built_outside_the_workspace_loads_and_syncs);
fn a_plugin_built_outside_the_workspace_loads_and_syncs(backend: Backend) {
    let archive = Archive::on(
        backend,
        &format!(
            "{FEED_SECTION}\n{}\n{}",
            outside_section("outside", "create", &["x", "y", "z"]),
            outside_section("pruner", "prune", &[])
        ),
    );
    archive.write_feed(
        "feed.jsonl",
        &[product("T", "from-jsonl", "2024-01-01T00:00:00Z")],
    );
    archive.sync(&["feed"]).assert_ok();
    let run = archive.sync(&["outside", "--start", "2024-01-01", "--end", "2024-01-02"]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("INFO: [outside] applied product=x outcome=Created"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.strings("SELECT c.product_name || ':' || o.\"index\" FROM core c JOIN outside o USING (uuid) ORDER BY 1"),
        ["x:0", "y:1", "z:2"]
    );
    let again = archive.sync(&["outside", "--start", "2024-01-01", "--end", "2024-01-02"]);
    again.assert_ok();
    assert!(
        again.stderr.contains("0 created, 0 updated"),
        "{}",
        again.stderr
    );
    // A third party's prune goes through the host's ownership rule too: the
    // pruner may not remove what "outside" made...
    let refused = archive.sync(&["pruner", "--start", "2024-01-01", "--end", "2024-01-02"]);
    refused.assert_ok();
    assert!(
        refused.stderr.contains("0 removed")
            && refused
                .stderr
                .contains("synchronizer \"outside\" owns it, not \"pruner\""),
        "{}",
        refused.stderr
    );
    assert_eq!(archive.count("SELECT count(*) FROM core"), 4);
    // ...until its section lets it take them over. Walking the catalogue:
    // products of type OUT in the window are pruned; others stay.
    let config = std::fs::read_to_string(archive.path("archive.toml")).unwrap();
    archive.write_config(&config.replace(
        "action = \"prune\"\n",
        "action = \"prune\"\nadopt_from = [\"outside\"]\n",
    ));
    archive
        .sync(&["pruner", "--start", "2024-01-01", "--end", "2024-01-02"])
        .assert_ok();
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["from-jsonl"]
    );
    assert_eq!(archive.count("SELECT count(*) FROM outside"), 0);
}

// No catalogue: the loader alone.
#[test]
fn two_plugin_files_load_side_by_side_in_one_process() {
    muninn_sync_e2e::binary(); // builds libjsonl.so
    let jsonl =
        muninn_sync::loader::load(&muninn_sync_e2e::profile_dir().join("libjsonl.so")).unwrap();
    let outside = muninn_sync::loader::load(outside_plugin()).unwrap();
    assert_eq!((jsonl.name(), jsonl.version()), ("jsonl", "0.1.0"));
    assert_eq!((outside.name(), outside.version()), ("outside", "0.3.0"));
    let again = muninn_sync::loader::load(outside_plugin()).unwrap();
    assert_eq!(again.path, outside.path);
}

on_both_backends!(a_panicking_plugin_ends_the_run_with_an_error_naming_it_and_keeps_its_products);
fn a_panicking_plugin_ends_the_run_with_an_error_naming_it_and_keeps_its_products(
    backend: Backend,
) {
    let archive = Archive::on(backend, &outside_section("outside", "panic", &["kept"]));
    let run = archive.sync(&["outside"]);
    run.assert_error(
        1,
        &[
            "synchronizer \"outside\"",
            "plugin outside 0.3.0",
            "panicked: the outside plugin panics on purpose",
            "src/lib.rs",
        ],
    );
    assert!(!run.stderr.contains("Aborting"), "{}", run.stderr);
    assert_eq!(archive.strings("SELECT product_name FROM core"), ["kept"]);
    archive.assert_storage_intact();
}

on_both_backends!(a_failing_plugin_names_itself_in_the_error);
fn a_failing_plugin_names_itself_in_the_error(backend: Backend) {
    let archive = Archive::on(backend, &outside_section("outside", "fail", &["a"]));
    archive.sync(&["outside"]).assert_error(
        1,
        &[
            "synchronizer \"outside\"",
            "plugin outside",
            "fails on purpose",
        ],
    );
    assert_eq!(archive.strings("SELECT product_name FROM core"), ["a"]);
    let bad = Archive::on(backend, &outside_section("outside", "dance", &[]));
    bad.sync(&["outside"]).assert_error(
        1,
        &["[\"synchronizer:outside\"]", "unknown action \"dance\""],
    );
}

/// The outside plugin built against a copy of plugin-api whose ABI version
/// is 2, once per test process: its directory and the plugin file.
fn plugin_of_abi_version_2() -> &'static (tempfile::TempDir, PathBuf) {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let work = tempfile::tempdir().unwrap();
        let plugin = build_against_abi_version_2(work.path());
        (work, plugin)
    })
}

fn build_against_abi_version_2(work: &Path) -> PathBuf {
    // A copy of plugin-api (and the model it needs) whose ABI version is 2.
    let api = work.join("api");
    copy_tree(&workspace().join("plugin-api"), &api.join("plugin-api"));
    copy_tree(&workspace().join("model"), &api.join("model"));
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let members_start = manifest.find("members = [").unwrap();
    let members_end = members_start + manifest[members_start..].find(']').unwrap() + 1;
    let manifest = format!(
        "{}members = [\"model\", \"plugin-api\"]{}",
        &manifest[..members_start],
        &manifest[members_end..]
    )
    .lines()
    .filter(|line| !line.starts_with("muninn-sync-catalogue"))
    .collect::<Vec<_>>()
    .join("\n");
    std::fs::write(api.join("Cargo.toml"), manifest).unwrap();
    let ffi = api.join("plugin-api/src/ffi.rs");
    let source = std::fs::read_to_string(&ffi).unwrap();
    assert!(source.contains("pub const ABI_VERSION: u32 = 1;"));
    std::fs::write(
        &ffi,
        source.replace(
            "pub const ABI_VERSION: u32 = 1;",
            "pub const ABI_VERSION: u32 = 2;",
        ),
    )
    .unwrap();

    build_outside_plugin(work, &api.join("plugin-api"))
}

on_both_backends!(a_plugin_built_against_another_abi_version_is_refused_naming_both);
fn a_plugin_built_against_another_abi_version_is_refused_naming_both(backend: Backend) {
    let (work, plugin) = plugin_of_abi_version_2();
    let archive = Archive::on(
        backend,
        &format!(
        "[\"synchronizer:future\"]\nmodule = \"{}\"\naction = \"create\"\nproduct_type = \"OUT\"\n",
        plugin.display()
    ),
    );
    archive.sync(&["future"]).assert_error(
        1,
        &[
            "liboutside_plugin.so",
            "plugin ABI version 2",
            "supports ABI version 1",
            "synchronizer \"future\"",
        ],
    );
    assert!(!archive.catalogue_exists());
    // An operator checks the file before configuring it.
    muninn_sync(
        work.path(),
        &["--check-plugin", plugin.to_str().unwrap()],
        &[],
    )
    .assert_error(
        1,
        &[
            "--check-plugin",
            "liboutside_plugin.so",
            "plugin ABI version 2",
            "supports ABI version 1",
        ],
    );
}
