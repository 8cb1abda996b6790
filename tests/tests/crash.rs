//! Fault injection: `kill -9` the real binary at random moments of a
//! 100,000-product sync, and check after every kill what an operator relies
//! on: the storage is whole (SQLite's `PRAGMA integrity_check`; PostgreSQL
//! rolls a killed client's transaction back itself), no product is half
//! written, the watermark never claims a change that is not committed; and
//! re-running the same command ends in exactly the state of an uninterrupted
//! run. On SQLite and on PostgreSQL, from one body.
//!
//! `MUNINN_SYNC_CRASH_POINTS` sets how many kills on each backend (default
//! 20, the CI run: an uninterrupted sync takes about as long on both, some
//! 12 s in a test build, and each backend's test about a minute and a half;
//! a soak runs hundreds: `MUNINN_SYNC_CRASH_POINTS=300 cargo test --release
//! -p muninn-sync-e2e --test crash`), `MUNINN_SYNC_CRASH_SEED` replays the
//! moments of a failed run.

use muninn_sync_e2e::{binary, on_both_backends, Archive, Backend};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PRODUCTS: u64 = 100_000;
/// Products whose line is superseded by a later one (an update).
const UPDATED_EVERY: u64 = 50;
/// Products deleted by a later line.
const DELETED_EVERY: u64 = 97;
const TYPES: [&str; 3] = ["S1GRD", "S2MSI1C", "S3OLCI"];

/// The feed's final state: (type, name) -> newest line's `modified` (µs
/// since 2024-01-01) and whether that line deletes the product.
type Truth = BTreeMap<(String, String), (u64, bool)>;

fn timestamp(seconds: u64) -> String {
    let base = 1_704_067_200u64; // 2024-01-01T00:00:00Z
    let t = base + seconds;
    let (days, rest) = (t / 86400, t % 86400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Writes the feed (chronological, as most remote feeds are) and returns
/// its final state.
fn write_feed(path: &Path) -> Truth {
    let mut lines = Vec::new();
    let mut truth = Truth::new();
    for i in 0..PRODUCTS {
        let product_type = TYPES[(i % 3) as usize];
        let name = format!("P{i:06}");
        lines.push((i * 10, product_line(product_type, &name, i * 10, 1)));
        truth.insert((product_type.into(), name.clone()), (i * 10, false));
        if i % UPDATED_EVERY == 0 {
            let later = i * 10 + 12_345;
            lines.push((later, product_line(product_type, &name, later, 2)));
            truth.insert((product_type.into(), name.clone()), (later, false));
        } else if i % DELETED_EVERY == 0 {
            let later = i * 10 + 54_321;
            let text = format!(
                r#"{{"modified": "{}", "product_type": "{product_type}", "product_name": "{name}", "deleted": true}}"#,
                timestamp(later)
            );
            lines.push((later, text));
            truth.insert((product_type.into(), name), (later, true));
        }
    }
    lines.sort_by_key(|(t, _)| *t);
    let text: String = lines.into_iter().map(|(_, l)| l + "\n").collect();
    std::fs::write(path, text).unwrap();
    truth
}

fn product_line(product_type: &str, name: &str, at: u64, version: u64) -> String {
    let x = (at % 170) as f64;
    format!(
        r#"{{"modified": "{m}", "product_type": "{product_type}", "product_name": "{name}", "physical_name": "{name}.SAFE", "size": {size}, "hash": "md5:{hash:032x}", "validity_start": "{m}", "validity_stop": "{m}", "remote_url": "https://example.org/{name}/v{version}", "footprint": "POLYGON(({x} 10, {x1} 10, {x1} 11, {x} 11, {x} 10))", "namespaces": {{"eo": {{"cloud_cover": {cc}, "orbit": {at}}}}}}}"#,
        m = timestamp(at),
        size = at * 7 + version,
        hash = at * 31 + version,
        x1 = x + 0.5,
        cc = (at % 1000) as f64 / 10.0,
    )
}

/// A small deterministic random number generator (xorshift64*).
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// An archive beside the shared feed, syncing it incrementally.
fn archive_in(backend: Backend, dir: &Path) -> Archive {
    Archive::on_in(
        backend,
        dir,
        "[\"synchronizer:feed\"]\nmodule = \"jsonl\"\npath = \"../feed.jsonl\"\nincremental = true\n",
    )
}

/// The catalogue's content that a sync is responsible for, in a
/// comparable form: core rows (without the times of writing), and the
/// namespace rows.
fn content(archive: &Archive) -> Vec<String> {
    let joined = |sql: &str| -> Vec<String> {
        archive
            .rows(sql)
            .into_iter()
            .map(|row| row.join("|"))
            .collect()
    };
    // The footprint as its bytes: SpatiaLite's blob in hex, PostGIS's
    // geography as the server prints it (hex EWKB).
    let footprint = archive.backend().pick("hex(footprint)", "footprint");
    let mut rows = joined(&format!(
        "SELECT uuid, active, hash, size, product_type, product_name, physical_name, validity_start, \
         validity_stop, remote_url, {footprint} FROM core ORDER BY uuid"
    ));
    rows.extend(joined(
        "SELECT 'eo', uuid, cloud_cover, orbit FROM eo ORDER BY uuid",
    ));
    rows.extend(joined(
        "SELECT 'jsonl', uuid, modified, fingerprint, key FROM jsonl ORDER BY uuid",
    ));
    rows.extend(joined(
        "SELECT 'watermark', synchronizer, product_type, watermark FROM muninn_sync_watermarks ORDER BY 2, 3",
    ));
    rows
}

/// What must hold after any kill.
fn check_consistent(archive: &Archive, truth: &Truth, point: usize) {
    if archive.backend() == Backend::Sqlite {
        if !archive.path("catalogue.sqlite").exists() {
            return; // killed before the catalogue was created
        }
        // A kill in the middle of a commit leaves a hot journal, which the
        // next writer of the database (the next run, or sqlite3) rolls back
        // first; the checks below read with a read-only connection, which
        // cannot.
        rusqlite::Connection::open(archive.path("catalogue.sqlite"))
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .expect("open the catalogue after the kill");
    }
    archive.assert_storage_intact();
    let tables: Vec<String> = archive
        .tables()
        .into_iter()
        .filter(|t| ["core", "eo", "jsonl", "muninn_sync_watermarks"].contains(&t.as_str()))
        .collect();
    if tables.len() < 4 {
        // Killed before the first batch was committed: no product at all.
        if tables.iter().any(|t| t == "core") {
            assert_eq!(
                archive.count("SELECT count(*) FROM core"),
                0,
                "kill {point}: products without namespace tables"
            );
        }
        return;
    }
    // Every product was written whole: its core row with both namespaces.
    let partial = archive.count(
        "SELECT count(*) FROM core LEFT JOIN eo USING (uuid) LEFT JOIN jsonl j USING (uuid) \
         WHERE eo.uuid IS NULL OR j.uuid IS NULL",
    );
    assert_eq!(
        partial, 0,
        "kill {point}: products without their namespaces"
    );
    let orphans = archive.count(
        "SELECT (SELECT count(*) FROM eo WHERE uuid NOT IN (SELECT uuid FROM core)) + \
                (SELECT count(*) FROM jsonl WHERE uuid NOT IN (SELECT uuid FROM core))",
    );
    assert_eq!(orphans, 0, "kill {point}: namespace rows without a product");
    // The watermark never runs ahead of the data: every product whose final
    // line is at or before its type's watermark is in its final state.
    let stored: BTreeMap<String, String> = archive
        .rows("SELECT product_type, watermark FROM muninn_sync_watermarks")
        .into_iter()
        .map(|row| (row[0].clone(), row[1].replace(' ', "T") + "Z"))
        .collect();
    let present: BTreeMap<(String, String), String> = archive
        .rows("SELECT product_type, product_name, j.modified FROM core JOIN jsonl j USING (uuid)")
        .into_iter()
        .map(|row| {
            (
                (row[0].clone(), row[1].clone()),
                row[2].replace(' ', "T") + "Z",
            )
        })
        .collect();
    for ((product_type, name), (at, deleted)) in truth {
        let Some(watermark) = stored.get(product_type) else {
            continue;
        };
        let final_time = timestamp(*at);
        if final_time > *watermark {
            continue;
        }
        let found = present.get(&(product_type.clone(), name.clone()));
        if *deleted {
            assert_eq!(found, None, "kill {point}: {product_type}/{name} deleted at {final_time}, before the watermark {watermark}, is still there");
        } else {
            assert_eq!(found, Some(&final_time), "kill {point}: {product_type}/{name} at {final_time} is not in its final state, yet the watermark is {watermark}");
        }
    }
}

on_both_backends!(kill_9_at_random_moments_never_corrupts_and_the_rerun_converges);
fn kill_9_at_random_moments_never_corrupts_and_the_rerun_converges(backend: Backend) {
    let feed_dir = tempfile::tempdir().unwrap();
    let truth = write_feed(&feed_dir.path().join("feed.jsonl"));
    let reference = archive_in(backend, feed_dir.path());

    // Built before the clock starts: the build is not part of a sync.
    binary();
    let began = Instant::now();
    reference.sync(&["feed", "-q"]).assert_ok();
    let full_sync = began.elapsed();
    let expected = content(&reference);
    assert!(
        expected.len() as u64 > PRODUCTS,
        "the reference run synced the feed"
    );

    let points = env_number("MUNINN_SYNC_CRASH_POINTS").unwrap_or(20) as usize;
    let seed = env_number("MUNINN_SYNC_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1
    });
    let name = backend.name();
    eprintln!("crash test ({name}): {points} kill points, MUNINN_SYNC_CRASH_SEED={seed}, an uninterrupted sync takes {full_sync:?}");
    let mut random = Random(seed);
    // Rounds: each starts from an empty catalogue and kills runs at random
    // moments of up to a third of an uninterrupted sync (reading the feed,
    // writing products, committing) until one finishes by itself; then the
    // round's catalogue must equal the uninterrupted run's. So every kill
    // falls on real work, however many there are.
    let longest = (full_sync.as_millis() as u64 / 3).max(300);
    let mut point = 0;
    let mut rounds = 0;
    while point < points {
        rounds += 1;
        let crashed = archive_in(backend, feed_dir.path());
        let mut kills_this_round = 0;
        loop {
            let mut child = Command::new(binary())
                .current_dir(crashed.dir.path())
                .args(["archive.toml", "feed", "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(random.below(longest)));
            match child.try_wait().unwrap() {
                Some(status) => {
                    assert!(
                        status.success(),
                        "round {rounds}: a run failed by itself: {status}"
                    );
                    break;
                }
                None => {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    point += 1;
                    kills_this_round += 1;
                    check_consistent(&crashed, &truth, point);
                    if point == points {
                        break;
                    }
                }
            }
        }
        let committed = crashed.count("SELECT count(*) FROM core");
        eprintln!(
            "crash test ({name}): round {rounds}: {kills_this_round} kills, {committed} products committed, runs: {:?}",
            crashed.strings("SELECT outcome || ' ' || created FROM muninn_sync_runs ORDER BY id")
        );
        // The same command again ends where an uninterrupted run ends.
        crashed.sync(&["feed"]).assert_ok();
        assert_eq!(
            content(&crashed),
            expected,
            "round {rounds}: the re-run ends in the uninterrupted run's state"
        );
        // Every killed run is on record as abandoned, with what it committed.
        let outcomes = crashed.strings("SELECT outcome FROM muninn_sync_runs ORDER BY id");
        assert_eq!(outcomes.last().map(String::as_str), Some("succeeded"));
        // (A run killed before it recorded itself has no row.)
        let abandoned = outcomes.iter().filter(|o| *o == "abandoned").count();
        assert!(
            abandoned <= kills_this_round
                && outcomes[..outcomes.len() - 1]
                    .iter()
                    .all(|o| o == "abandoned" || o == "succeeded"),
            "{outcomes:?}"
        );
        // And an incremental run after all that has nothing left to do.
        let again = crashed.sync(&["feed"]);
        again.assert_ok();
        assert!(
            again
                .stderr
                .contains("0 created, 0 updated, 0 removed, 0 failed"),
            "{}",
            again.stderr
        );
    }
    eprintln!("crash test ({name}): {points} kills in {rounds} rounds in {:?}, all consistent and converged", began.elapsed());
}
