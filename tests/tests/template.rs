//! The plugin template (examples/plugin-template), as a third party uses
//! it: copied out of the repository, built with its own lock file
//! (`--locked`: used as it is, never rewritten), loaded by the real
//! muninn-sync, and its own tests run.
//!
//! The template's sync runs on SQLite and on PostgreSQL from one body.
//!
//! Cargo may download here: on a machine that has never built the template,
//! its lock file names crates (platform-specific ones among them) that no
//! build of the workspace fetched, so an offline build would fail there.

use muninn_sync_e2e::{muninn_sync, on_both_backends, workspace, Archive, Backend};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The template's directory in the repository.
fn template_dir() -> PathBuf {
    workspace().join("examples/plugin-template")
}

/// Runs cargo in `dir` with the target directory that the other plugins
/// built outside the workspace share, so that dependencies compile once.
fn cargo(dir: &Path, args: &[&str]) -> Output {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(dir)
        .args(args)
        .env(
            "CARGO_TARGET_DIR",
            workspace().join("target/outside-plugins"),
        )
        .output()
        .expect("run cargo")
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A copy of the template in `work`, as a user copies it: its sources,
/// manifest and lock file (not its `target/`), with the plugin-api
/// dependency pointing at this repository's.
fn copy_template(work: &Path) -> PathBuf {
    let from = template_dir();
    let to = work.join("plugin-template");
    for dir in ["src", "tests"] {
        muninn_sync_e2e::copy_tree(&from.join(dir), &to.join(dir));
    }
    std::fs::copy(from.join("Cargo.lock"), to.join("Cargo.lock")).expect("copy Cargo.lock");
    let api = workspace().join("plugin-api");
    let manifest = std::fs::read_to_string(from.join("Cargo.toml")).expect("read the manifest");
    assert!(manifest.contains("path = \"../../plugin-api\""));
    let manifest = manifest.replace(
        "\"../../plugin-api\"",
        &format!("{:?}", api.to_str().expect("UTF-8 path")),
    );
    std::fs::write(to.join("Cargo.toml"), manifest).expect("write the manifest");
    to
}

/// The template's plugin file, built once per test process as its README
/// says, with `--locked` so that the versions are the lock file's.
fn template_plugin() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, plugin) = BUILT.get_or_init(|| {
        let work = tempfile::tempdir().expect("temporary directory");
        let crate_dir = copy_template(work.path());
        assert_success(
            &cargo(&crate_dir, &["build", "--quiet", "--locked"]),
            "cargo build --locked of the template",
        );
        // Other builds in the shared target directory may overwrite it.
        let kept = work.path().join("liblisting.so");
        std::fs::copy(
            workspace().join("target/outside-plugins/debug/liblisting.so"),
            &kept,
        )
        .expect("copy the plugin file");
        (work, kept)
    });
    plugin
}

fn listing_archive(backend: Backend) -> Archive {
    Archive::on(backend, &format!(
        "[\"synchronizer:listing\"]\nmodule = \"{}\"\npath = \"listing.csv\"\nproduct_type = \"LISTED\"\n",
        template_plugin().display()
    ))
}

fn write_listing(archive: &Archive, lines: &[&str]) {
    let mut text = String::from("product_name,modified,size,remote_url\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(archive.path("listing.csv"), text).expect("write listing.csv");
}

on_both_backends!(the_template_syncs_a_listing_into_the_catalogue);
fn the_template_syncs_a_listing_into_the_catalogue(backend: Backend) {
    let archive = listing_archive(backend);
    write_listing(
        &archive,
        &[
            "a,2024-01-01T00:00:00Z,1000,https://example.org/a",
            "b,2024-01-02T00:00:00Z,2000,https://example.org/b",
            "c,2024-01-03T00:00:00Z,,",
        ],
    );
    let first = archive.sync(&["listing"]);
    first.assert_ok();
    assert!(
        first
            .stderr
            .contains("3 created, 0 updated, 0 removed, 0 failed, 0 unchanged"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("INFO: [listing] synced the listing"),
        "{}",
        first.stderr
    );
    assert_eq!(
        archive.strings(
            "SELECT c.product_name || '|' || coalesce(CAST(c.size AS TEXT), '') || '|' || coalesce(c.remote_url, '') || '|' || l.modified \
             FROM core c JOIN listing l USING (uuid) WHERE c.product_type = 'LISTED' ORDER BY 1"
        ),
        [
            "a|1000|https://example.org/a|2024-01-01 00:00:00",
            "b|2000|https://example.org/b|2024-01-02 00:00:00",
            "c|||2024-01-03 00:00:00",
        ]
    );
    assert_eq!(
        archive.strings("SELECT product_type || ' ' || watermark FROM muninn_sync_watermarks"),
        ["LISTED 2024-01-03 00:00:00"]
    );

    // The same listing again: nothing is written.
    let dates = archive.metadata_dates();
    let again = archive.sync(&["listing"]);
    again.assert_ok();
    assert!(
        again
            .stderr
            .contains("0 created, 0 updated, 0 removed, 0 failed, 3 unchanged"),
        "{}",
        again.stderr
    );
    assert_eq!(archive.metadata_dates(), dates);

    // One changed, one dropped, one new.
    write_listing(
        &archive,
        &[
            "a,2024-01-05T00:00:00Z,1500,https://example.org/a",
            "c,2024-01-03T00:00:00Z,,",
            "d,2024-01-06T00:00:00Z,4000,",
        ],
    );
    let changed = archive.sync(&["listing"]);
    changed.assert_ok();
    assert!(
        changed
            .stderr
            .contains("1 created, 1 updated, 1 removed, 0 failed, 1 unchanged"),
        "{}",
        changed.stderr
    );
    assert_eq!(
        archive.strings(
            "SELECT product_name || '|' || coalesce(CAST(size AS TEXT), '') FROM core ORDER BY 1"
        ),
        ["a|1500", "c|", "d|4000"]
    );

    // An unreadable line is skipped and named; the run ends with an error.
    write_listing(
        &archive,
        &[
            "a,2024-01-05T00:00:00Z,1500,https://example.org/a",
            "c,2024-01-03T00:00:00Z,,",
            "d,2024-01-06T00:00:00Z,lots,",
        ],
    );
    archive.sync(&["listing"]).assert_error(
        1,
        &["could not be synced", "listing.csv line 4", "size \"lots\""],
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["a", "c", "d"],
        "nothing is removed on the word of a listing that could not be read whole"
    );
}

#[test]
fn muninn_sync_describes_the_template_plugin() {
    let work = tempfile::tempdir().unwrap();
    let run = muninn_sync(
        work.path(),
        &["--check-plugin", template_plugin().to_str().unwrap()],
        &[],
    );
    run.assert_ok();
    assert!(
        run.stdout
            .contains("muninn-sync plugin \"listing\" version 0.1.0, plugin ABI version 1"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_templates_own_tests_pass() {
    let work = tempfile::tempdir().unwrap();
    let crate_dir = copy_template(work.path());
    assert_success(
        &cargo(&crate_dir, &["test", "--quiet", "--locked"]),
        "cargo test --locked of the template",
    );
}

/// The registry packages of a Cargo.lock, as "name version".
fn locked_packages(lock: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(lock).expect("read Cargo.lock");
    text.split("[[package]]")
        .skip(1)
        .filter(|block| block.contains("\nsource = \"registry+"))
        .map(|block| {
            let field = |key: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("{key} = \"")))
                    .and_then(|rest| rest.strip_suffix('"'))
                    .expect("name and version")
                    .to_string()
            };
            format!("{} {}", field("name"), field("version"))
        })
        .collect()
}

/// `cargo fetch --locked` in a crate: it fails when the lock file needs a
/// change for the manifest, and otherwise downloads every package the lock
/// file names, for every platform (what offline builds would lack).
fn fetch_locked(crate_dir: &Path) -> Output {
    cargo(crate_dir, &["fetch", "--locked"])
}

#[test]
fn the_templates_lock_file_is_current_and_pins_the_workspaces_versions() {
    let workspace_lock = locked_packages(&workspace().join("Cargo.lock"));
    let template_lock = locked_packages(&template_dir().join("Cargo.lock"));
    assert!(
        template_lock.iter().any(|p| p.starts_with("abi_stable ")),
        "{template_lock:?}"
    );
    let stale: Vec<String> = template_lock
        .into_iter()
        .filter(|package| !workspace_lock.contains(package))
        .collect();
    let refresh = "refresh it: cp Cargo.lock examples/plugin-template/ && (cd examples/plugin-template && cargo fetch)";
    assert!(
        stale.is_empty(),
        "examples/plugin-template/Cargo.lock pins versions the workspace does not use, \
         so the template would not be built with muninn-sync's own versions: {stale:?}; {refresh}"
    );
    let work = tempfile::tempdir().unwrap();
    let crate_dir = copy_template(work.path());
    let output = fetch_locked(&crate_dir);
    assert!(
        output.status.success(),
        "examples/plugin-template/Cargo.lock is out of date, or its packages cannot be downloaded; {refresh}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_stale_lock_file_of_the_template_is_refused() {
    // The check above, on a copy whose manifest no longer matches its lock
    // file (the lock file records the package's version).
    let work = tempfile::tempdir().unwrap();
    let crate_dir = copy_template(work.path());
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("\nversion = \"0.1.0\"\n"));
    std::fs::write(
        crate_dir.join("Cargo.toml"),
        manifest.replacen("\nversion = \"0.1.0\"\n", "\nversion = \"0.1.1\"\n", 1),
    )
    .unwrap();
    let output = fetch_locked(&crate_dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("--locked"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(crate_dir.join("Cargo.lock")).unwrap(),
        std::fs::read(template_dir().join("Cargo.lock")).unwrap(),
        "--locked leaves the lock file as it is"
    );
}
