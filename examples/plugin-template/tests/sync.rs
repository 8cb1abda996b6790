//! The synchronizer's `sync` against muninn-sync-plugin-api's in-memory
//! archive (its `memory` feature): muninn's rules, no database and no
//! muninn-sync needed.

use listing::CsvListing;
use muninn_sync_plugin_api::memory::{configure, MemoryArchive, SyncReport};
use muninn_sync_plugin_api::{anyhow, parse_timestamp, Context, SyncRequest, Timestamp, Value};
use std::path::{Path, PathBuf};

/// The section as an archive's configuration file has it.
const SECTION: &str = r#"
module = "listing"
path = "listing.csv"
product_type = "LISTED"
"#;

const HEADER: &str = "product_name,modified,size,remote_url";

fn t(text: &str) -> Timestamp {
    parse_timestamp(text).unwrap()
}

/// A remote of one test: a directory with the listing, where the archive's
/// configuration file would be.
struct Remote {
    dir: PathBuf,
}

impl Remote {
    fn new(test: &str) -> Remote {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Remote { dir }
    }

    /// Writes listing.csv: the header and these lines.
    fn list(&self, lines: &[&str]) {
        let mut text = format!("# written by the test\n{HEADER}\n");
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(self.dir.join("listing.csv"), text).unwrap();
    }

    /// The synchronizer as muninn-sync makes it from `section`.
    fn synchronizer(&self, section: &str) -> anyhow::Result<CsvListing> {
        let context = Context {
            synchronizer: "listing".into(),
            config_file: self.dir.join("archive.toml"),
        };
        configure::<CsvListing>(section, &context)
    }

    fn sync(&self, archive: &mut MemoryArchive, request: &SyncRequest) -> SyncReport {
        let mut synchronizer = self.synchronizer(SECTION).unwrap();
        archive.sync(&mut synchronizer, request).unwrap()
    }
}

#[test]
fn a_listing_is_created_then_found_unchanged() {
    let remote = Remote::new("created_then_unchanged");
    remote.list(&[
        "b,2024-01-02T00:00:00Z,2000,https://example.org/b",
        "a,2024-01-01T00:00:00Z,1000,https://example.org/a",
        "c,2024-01-03T00:00:00Z,,",
    ]);
    let mut archive = MemoryArchive::new();
    let first = remote.sync(&mut archive, &SyncRequest::default());
    assert_eq!((first.created, first.failed), (3, 0), "{first}");
    assert_eq!(archive.names("LISTED"), ["a", "b", "c"]);
    let a = archive.product("LISTED", "a").unwrap();
    assert_eq!(a.size, Some(1000));
    assert_eq!(a.remote_url.as_deref(), Some("https://example.org/a"));
    assert_eq!(
        a.namespaces["listing"]["modified"],
        Value::Timestamp(t("2024-01-01"))
    );
    let c = archive.product("LISTED", "c").unwrap();
    assert_eq!((c.size, c.remote_url.as_deref()), (None, None));
    assert_eq!(first.watermarks["LISTED"], t("2024-01-03"));

    let again = remote.sync(&mut archive, &SyncRequest::default());
    assert_eq!((again.changes(), again.unchanged), (0, 3), "{again}");
}

#[test]
fn changes_are_updated_and_unlisted_products_removed() {
    let remote = Remote::new("updated_and_removed");
    remote.list(&[
        "a,2024-01-01T00:00:00Z,1000,",
        "b,2024-01-02T00:00:00Z,2000,",
    ]);
    let mut archive = MemoryArchive::new();
    remote.sync(&mut archive, &SyncRequest::default());
    remote.list(&[
        "a,2024-01-05T00:00:00Z,1500,",
        "d,2024-01-06T00:00:00Z,4000,",
    ]);
    let report = remote.sync(&mut archive, &SyncRequest::default());
    assert_eq!(
        (report.created, report.updated, report.removed),
        (1, 1, 1),
        "{report}"
    );
    assert_eq!(archive.names("LISTED"), ["a", "d"]);
    assert_eq!(archive.product("LISTED", "a").unwrap().size, Some(1500));
    assert_eq!(archive.watermarks()["LISTED"], t("2024-01-06"));

    // --force rewrites what is there, changed or not.
    let forced = SyncRequest {
        force: true,
        ..SyncRequest::default()
    };
    let report = remote.sync(&mut archive, &forced);
    assert_eq!((report.updated, report.unchanged), (2, 0), "{report}");
}

#[test]
fn a_window_syncs_and_prunes_only_its_own_changes() {
    let remote = Remote::new("window");
    remote.list(&[
        "old,2024-01-01T00:00:00Z,1,",
        "inside,2024-02-01T00:00:00Z,2,",
    ]);
    let mut archive = MemoryArchive::new();
    remote.sync(&mut archive, &SyncRequest::default());
    // Both drop out of the listing; a new one comes, after the window.
    remote.list(&["new,2024-03-01T00:00:00Z,3,"]);
    let february = SyncRequest {
        start: Some(t("2024-02-01")),
        end: Some(t("2024-03-01")),
        ..SyncRequest::default()
    };
    let report = remote.sync(&mut archive, &february);
    assert_eq!(
        (report.created, report.removed),
        (0, 1),
        "only the window's product goes: {report}"
    );
    assert_eq!(archive.names("LISTED"), ["old"]);
}

#[test]
fn an_unreadable_line_is_reported_and_the_rest_synced() {
    let remote = Remote::new("unreadable");
    remote.list(&[
        "a,2024-01-01T00:00:00Z,1000,",
        "b,2024-01-02T00:00:00Z,2000,",
    ]);
    let mut archive = MemoryArchive::new();
    remote.sync(&mut archive, &SyncRequest::default());
    remote.list(&[
        "a,2024-01-01T00:00:00Z,1000,",
        "b,yesterday,2000,",
        "c,2024-01-03T00:00:00Z,lots,",
    ]);
    let report = remote.sync(&mut archive, &SyncRequest::default());
    assert_eq!((report.unchanged, report.failed), (1, 2), "{report}");
    assert_eq!(report.failures[0].product, "listing.csv line 4");
    assert!(
        report.failures[0].message.starts_with("modified: "),
        "{:?}",
        report.failures
    );
    assert_eq!(report.failures[1].product, "listing.csv line 5");
    assert!(report.failures[1].message.contains("size \"lots\""));
    // Nothing is removed on the word of a listing that could not be read
    // whole, and no watermark claims the skipped lines.
    assert_eq!(archive.names("LISTED"), ["a", "b"]);
    assert!(report.watermarks.is_empty());
}

#[test]
fn other_product_types_are_left_alone() {
    let remote = Remote::new("other_types");
    remote.list(&["a,2024-01-01T00:00:00Z,1,"]);
    let mut archive = MemoryArchive::new();
    let others = SyncRequest {
        product_types: Some(vec!["OTHER".into()]),
        ..SyncRequest::default()
    };
    let report = remote.sync(&mut archive, &others);
    assert_eq!(report, SyncReport::default());
    assert!(archive.is_empty());
}

#[test]
fn configuration_and_listing_errors_say_what_to_fix() {
    let remote = Remote::new("errors");
    let unknown = remote
        .synchronizer("path = \"listing.csv\"\nproduct_type = \"T\"\nproduct_types = []")
        .err()
        .unwrap();
    assert!(
        unknown
            .to_string()
            .contains("unknown field `product_types`"),
        "{unknown}"
    );
    let missing = remote.synchronizer("path = \"listing.csv\"").err().unwrap();
    assert!(
        missing.to_string().contains("missing field `product_type`"),
        "{missing}"
    );

    let mut archive = MemoryArchive::new();
    let mut synchronizer = remote.synchronizer(SECTION).unwrap();
    let absent = archive
        .sync(&mut synchronizer, &SyncRequest::default())
        .unwrap_err();
    assert!(
        format!("{absent:#}").contains("cannot read the listing")
            && format!("{absent:#}").contains("listing.csv"),
        "{absent:#}"
    );
    std::fs::write(remote.dir.join("listing.csv"), "name,modified\n").unwrap();
    let header = archive
        .sync(&mut synchronizer, &SyncRequest::default())
        .unwrap_err();
    assert!(
        header
            .to_string()
            .starts_with("listing.csv: unknown column \"name\""),
        "{header}"
    );
}

#[test]
fn another_synchronizers_products_are_left_alone() {
    let remote = Remote::new("another_synchronizers");
    remote.list(&["a,2024-01-01T00:00:00Z,1,"]);
    let mut archive = MemoryArchive::new();
    // A product of the same type that another synchronizer made.
    let mut theirs = muninn_sync_plugin_api::Product::new("LISTED", "theirs");
    theirs.namespaces.insert(
        "listing".into(),
        [("modified".to_string(), Value::Timestamp(t("2024-01-02")))].into(),
    );
    archive.insert_owned(theirs, "mirror").unwrap();
    let report = remote.sync(&mut archive, &SyncRequest::default());
    assert_eq!((report.created, report.removed), (1, 0), "{report}");
    assert_eq!(report.left_alone.len(), 1, "{report:?}");
    assert_eq!(archive.names("LISTED"), ["a", "theirs"]);
}
