//! Who owns a product: two synchronizers feeding one product type, removals
//! that touch only their own products, adoption of products nobody owns,
//! and the catalogue made before owners were recorded. Each on SQLite and
//! on PostgreSQL from one body.

use muninn_sync_e2e::{deletion, on_both_backends, product, Archive, Backend, FEED_SECTION};
use serde_json::json;

/// An archive with two jsonl synchronizers that feed one product type:
/// `feed` (feed.jsonl) and `mirror` (mirror.jsonl), with `mirror_extra`
/// added to the mirror's section.
fn two_feeds(backend: Backend, mirror_extra: &str) -> Archive {
    Archive::on(
        backend,
        &format!(
            "{FEED_SECTION}\n[\"synchronizer:mirror\"]\nmodule = \"jsonl\"\npath = \"mirror.jsonl\"\n{mirror_extra}\n"
        ),
    )
}

fn owners(archive: &Archive) -> Vec<String> {
    archive.strings(
        "SELECT c.product_name || ' ' || coalesce(o.synchronizer, '-') FROM core c \
         LEFT JOIN muninn_sync_owners o ON o.uuid = c.uuid ORDER BY 1",
    )
}

on_both_backends!(a_synchronizer_removes_only_the_products_it_made);
fn a_synchronizer_removes_only_the_products_it_made(backend: Backend) {
    let archive = two_feeds(backend, "");
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "B", "2024-01-02T10:00:00Z"),
        ],
    );
    archive.write_feed("mirror.jsonl", &[product("T", "C", "2024-01-03T10:00:00Z")]);
    archive.sync(&["feed"]).assert_ok();
    archive.sync(&["mirror"]).assert_ok();
    assert_eq!(owners(&archive), ["A feed", "B feed", "C mirror"]);

    // The mirror's remote deletes A, which the feed made, and its own C.
    archive.write_feed(
        "mirror.jsonl",
        &[
            product("T", "C", "2024-01-03T10:00:00Z"),
            deletion("T", "A", "2024-01-04T10:00:00Z"),
            deletion("T", "C", "2024-01-05T10:00:00Z"),
        ],
    );
    let run = archive.sync(&["mirror", "--report", "json"]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("WARN: not removed: synchronizer \"feed\" owns it, not \"mirror\"")
            && run.stderr.contains("product=T/A"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("1 product(s) the plugin asked to remove were left alone"),
        "{}",
        run.stderr
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["counts"]["removed"], 1);
    assert_eq!(report["left_alone"], 1);
    assert_eq!(owners(&archive), ["A feed", "B feed"]);

    // adopt_from lets it take the feed's products over.
    archive.write_config(
        &std::fs::read_to_string(archive.path("archive.toml"))
            .unwrap()
            .replace(
                "path = \"mirror.jsonl\"\n",
                "path = \"mirror.jsonl\"\nadopt_from = [\"feed\"]\n",
            ),
    );
    let run = archive.sync(&["mirror", "--full", "--force"]);
    run.assert_ok();
    assert!(
        run.stderr.contains("0 created, 0 updated, 1 removed"),
        "{}",
        run.stderr
    );
    assert_eq!(owners(&archive), ["B feed"]);
}

on_both_backends!(products_nobody_owns_are_left_alone_until_adopted);
fn products_nobody_owns_are_left_alone_until_adopted(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "B", "2024-01-02T10:00:00Z"),
            product("U", "C", "2024-01-03T10:00:00Z"),
        ],
    );
    archive.sync(&["feed"]).assert_ok();
    // As in a catalogue made before owners were recorded (or by muninn).
    archive.execute("DELETE FROM muninn_sync_owners");
    let list = archive.sync(&["--list"]);
    list.assert_ok();
    assert!(
        list.stdout.contains("products nobody owns: 3"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("  owns:      0 products"),
        "{}",
        list.stdout
    );

    let mut lines = vec![
        product("T", "A", "2024-01-01T10:00:00Z"),
        product("T", "B", "2024-01-02T10:00:00Z"),
        product("U", "C", "2024-01-03T10:00:00Z"),
    ];
    lines.push(deletion("T", "A", "2024-01-05T10:00:00Z"));
    archive.write_feed("feed.jsonl", &lines);
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(
        run.stderr.contains("not removed: no synchronizer owns it"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archive.count("SELECT count(*) FROM core WHERE product_name = 'A'"),
        1
    );

    // --adopt: counted with --dry-run, then assigned, for the types named.
    let dry = archive.sync(&["feed", "--adopt", "-p", "T", "--dry-run"]);
    dry.assert_ok();
    assert!(
        dry.stdout
            .contains("synchronizer \"feed\" would adopt 2 product(s) that nobody owned")
            && dry.stdout.contains("  T: 2"),
        "{}",
        dry.stdout
    );
    assert_eq!(archive.count("SELECT count(*) FROM muninn_sync_owners"), 0);
    let adopted = archive.sync(&["feed", "--adopt", "-p", "T"]);
    adopted.assert_ok();
    assert!(
        adopted.stdout.contains("adopted 2 product(s)"),
        "{}",
        adopted.stdout
    );
    assert_eq!(owners(&archive), ["A feed", "B feed", "C -"]);
    let list = archive.sync(&["--list", "--report", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list["unowned_products"], 1);
    assert_eq!(list["synchronizers"][0]["owned_products"], 2);

    // Now the feed's deletion of A goes through.
    let run = archive.sync(&["feed", "--force"]);
    run.assert_ok();
    assert!(run.stderr.contains("1 removed"), "{}", run.stderr);
    assert_eq!(owners(&archive), ["B feed", "C -"]);

    // adopt = true in the section: nobody's products are taken over as the
    // synchronizer meets them.
    archive.configure(&format!("{FEED_SECTION}adopt = true\n"));
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "B", "2024-01-02T10:00:00Z"),
            deletion("U", "C", "2024-01-06T10:00:00Z"),
        ],
    );
    let run = archive.sync(&["feed"]);
    run.assert_ok();
    assert!(run.stderr.contains("1 removed"), "{}", run.stderr);
    assert_eq!(owners(&archive), ["B feed"]);
}

on_both_backends!(adopt_without_product_types_asks_for_them);
fn adopt_without_product_types_asks_for_them(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &[product("T", "A", "2024-01-01T10:00:00Z")]);
    archive.sync(&["feed"]).assert_ok();
    archive.sync(&["feed", "--adopt"]).assert_error(
        1,
        &[
            "--adopt needs the product types",
            "-p",
            "synchronizer \"feed\"",
        ],
    );
    // A bad adopt_from is the configuration's error, naming the key.
    archive.configure(&format!("{FEED_SECTION}adopt_from = 3\n"));
    archive.sync(&["feed"]).assert_error(
        1,
        &[
            "key \"adopt_from\"",
            "expected a list of synchronizer names",
        ],
    );
}

on_both_backends!(removing_a_product_with_sql_as_muninn_does_removes_its_owner_record);
fn removing_a_product_with_sql_as_muninn_does_removes_its_owner_record(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &[product("T", "A", "2024-01-01T10:00:00Z")]);
    archive.sync(&["feed"]).assert_ok();
    // With SQLite's foreign keys on, as muninn connects; PostgreSQL's are
    // always on.
    archive.execute("DELETE FROM core WHERE product_name = 'A'");
    assert_eq!(archive.count("SELECT count(*) FROM muninn_sync_owners"), 0);
}

on_both_backends!(a_catalogue_from_before_owner_records_is_upgraded_and_its_products_are_nobodys);
fn a_catalogue_from_before_owner_records_is_upgraded_and_its_products_are_nobodys(
    backend: Backend,
) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed("feed.jsonl", &[product("T", "A", "2024-01-01T10:00:00Z")]);
    archive.sync(&["feed"]).assert_ok();
    archive.execute("DROP TABLE muninn_sync_owners; DROP TABLE muninn_sync_deletions;");
    let before = archive.snapshot();
    // A dry run needs the tables too: it works on a copy (SQLite), or in a
    // transaction it rolls back (PostgreSQL). The catalogue stays as it was.
    let dry = archive.sync(&["feed", "--dry-run"]);
    dry.assert_ok();
    if backend == Backend::Sqlite {
        assert!(
            dry.stderr.contains("the dry run works on a copy"),
            "{}",
            dry.stderr
        );
    }
    assert!(
        archive.snapshot() == before,
        "a dry run changed the catalogue"
    );
    // A real run adds the tables; the old product is nobody's, a new one the feed's.
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "B", "2024-01-02T10:00:00Z"),
        ],
    );
    archive.sync(&["feed"]).assert_ok();
    assert_eq!(owners(&archive), ["A -", "B feed"]);
}

on_both_backends!(a_dry_run_on_an_archive_without_a_catalogue_creates_nothing);
fn a_dry_run_on_an_archive_without_a_catalogue_creates_nothing(backend: Backend) {
    let archive = Archive::with_feed_on(backend);
    archive.write_feed(
        "feed.jsonl",
        &[
            product("T", "A", "2024-01-01T10:00:00Z"),
            product("T", "B", "2024-01-02T10:00:00Z"),
        ],
    );
    let run = archive.sync(&["feed", "--dry-run", "--report", "json"]);
    run.assert_ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["would"]["create"], json!(["T/A", "T/B"]));
    let mut left: Vec<String> = std::fs::read_dir(archive.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["archive.toml", "feed.jsonl"],
        "a dry run left files behind"
    );
    assert_eq!(
        archive.tables(),
        Vec::<String>::new(),
        "a dry run created tables"
    );
}
