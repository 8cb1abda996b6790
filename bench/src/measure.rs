//! Running the real binary on generated feeds and measuring it, and the
//! SQLite scenario: the feed against the raw SQLite insert limit.

use crate::feed::Feeds;
use crate::launcher::Launcher;
use crate::raw;
use crate::raw_copy::Rows;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The release binary and plugins the benchmark measures, and the launcher
/// that runs them.
pub struct Binaries {
    dir: PathBuf,
    muninn_sync: PathBuf,
    launcher: Launcher,
}

/// The variable the host searches for plugins before its own directory.
const PLUGIN_PATH_VARIABLE: &str = "MUNINN_SYNC_PLUGIN_PATH";

impl Binaries {
    /// muninn-sync and libjsonl.so are built beside the benchmark by
    /// `cargo build --release`. Starts the launcher, so call it before
    /// the benchmark allocates much.
    pub fn beside_this_executable() -> Result<Binaries> {
        let dir = std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .context("no executable directory")?;
        Binaries::in_dir(&dir)
    }

    /// muninn-sync and the plugins in `dir` (another build's
    /// `target/release`, to measure it beside this one). Starts the
    /// launcher, so call it before the benchmark allocates much.
    pub fn in_dir(dir: &Path) -> Result<Binaries> {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("no binaries directory {}", dir.display()))?;
        let muninn_sync = dir.join("muninn-sync");
        for needed in [&muninn_sync, &dir.join("libjsonl.so")] {
            if !needed.is_file() {
                bail!(
                    "{} is missing: run `cargo build --release` first, or give --binaries \
                     the directory that holds muninn-sync and its plugins",
                    needed.display()
                );
            }
        }
        if !dir.ends_with("release") {
            eprintln!(
                "warning: {} is not a release build; the figures will not mean much",
                dir.display()
            );
        }
        // The host looks for plugins in this variable's directories before
        // its own: a value in the caller's environment would make the runs
        // load other plugins than these. The launcher inherits it.
        std::env::set_var(PLUGIN_PATH_VARIABLE, &dir);
        Ok(Binaries {
            dir,
            muninn_sync,
            launcher: Launcher::start()?,
        })
    }

    /// Fails, naming the file, when `dir` has no plugin `lib<name>.so`.
    pub fn require_plugin(&self, name: &str) -> Result<()> {
        let plugin = self.dir.join(format!("lib{name}.so"));
        if !plugin.is_file() {
            bail!(
                "{} is missing: build it (`cargo build --release -p muninn-sync-{name}`)",
                plugin.display()
            );
        }
        Ok(())
    }

    /// The launcher that runs the measured programs, for programs other
    /// than muninn-sync measured the same way.
    pub fn launcher(&self) -> &Launcher {
        &self.launcher
    }
}

/// One run of the binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sync {
    pub seconds: f64,
    /// The process's own CPU time, user and system.
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
    /// Rows written: products created, updated and removed.
    pub written: u64,
}

/// The figures of one feed size.
#[derive(Debug, Clone, Copy, Default)]
pub struct Row {
    pub products: u64,
    /// The raw insert of every row a first sync writes (`core`, `eo`,
    /// `jsonl`, the owner record): the limit the first sync is held to.
    pub raw_seconds: f64,
    /// The raw insert of the `core` and `eo` rows only, as first measured.
    pub raw_core_and_eo_seconds: f64,
    pub parse_seconds: f64,
    pub first: Sync,
    pub unchanged: Sync,
    pub one_percent: Sync,
    pub forced: Sync,
    pub catalogue_mb: f64,
}

/// The SQLite scenario's configuration, in `archive.toml`.
const CONFIG: &str =
    "[archive]\ndatabase = \"sqlite\"\n\n[sqlite]\nconnection_string = \"catalogue.sqlite\"\n\n\
                      [\"synchronizer:feed\"]\nmodule = \"jsonl\"\npath = \"feed.jsonl\"\n";

/// Runs `muninn-sync archive.toml feed <extra>` in `dir`.
pub fn run(binaries: &Binaries, dir: &Path, extra: &[&str]) -> Result<Sync> {
    run_with(binaries, dir, "archive.toml", extra)
}

/// Runs `muninn-sync <config> feed <extra>` in `dir`; its log goes to
/// `<config>.log` there.
pub fn run_with(binaries: &Binaries, dir: &Path, config: &str, extra: &[&str]) -> Result<Sync> {
    let log_path = dir.join(format!("{config}.log"));
    let args: Vec<&str> = [config, "feed"].iter().chain(extra).copied().collect();
    let finished = binaries
        .launcher
        .run(&binaries.muninn_sync, dir, &args, &log_path)
        .context("cannot run muninn-sync")?;
    let output = std::fs::read_to_string(&log_path)?;
    if finished.status != 0 {
        bail!(
            "muninn-sync {config} {extra:?} failed with status {}:\n{output}",
            finished.status
        );
    }
    Ok(Sync {
        seconds: finished.seconds,
        cpu_seconds: finished.cpu_seconds,
        peak_rss_mb: finished.peak_rss_kb as f64 / 1024.0,
        written: written_rows(&output)?,
    })
}

/// Created + updated + removed, from the run's summary line.
fn written_rows(log: &str) -> Result<u64> {
    let line = log
        .lines()
        .find(|l| l.contains("done:"))
        .ok_or_else(|| anyhow!("no summary line in:\n{log}"))?;
    let count = |word: &str| -> Result<u64> {
        let before = line.split(&format!(" {word}")).next().unwrap_or("");
        let number = before
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap_or("");
        number
            .parse()
            .map_err(|_| anyhow!("no '{word}' count in {line}"))
    };
    Ok(count("created")? + count("updated")? + count("removed")?)
}

/// The time to read the feed and parse every line with the jsonl
/// plugin's own parser, in process: what a sync costs at the very least.
pub fn read_and_parse(feeds: &Feeds, n: u64) -> Result<f64> {
    let started = Instant::now();
    let parsed = jsonl::read_and_parse(&feeds.path())?;
    let seconds = started.elapsed().as_secs_f64();
    if parsed as u64 != n {
        bail!("parsed {parsed} of {n} products");
    }
    Ok(seconds)
}

/// Every SQLite measurement of one feed size, in `dir` beside the feeds.
pub fn scenario(
    binaries: &Binaries,
    dir: &Path,
    feeds: &Feeds,
    n: u64,
    parse_seconds: f64,
) -> Result<Row> {
    feeds.use_original()?;
    std::fs::write(dir.join("archive.toml"), CONFIG)?;
    let mut row = Row {
        products: n,
        parse_seconds,
        ..Row::default()
    };

    let raw_path = dir.join("raw.sqlite");
    for (rows, seconds) in [
        (Rows::CoreAndEo, &mut row.raw_core_and_eo_seconds),
        (Rows::Every, &mut row.raw_seconds),
    ] {
        *seconds = raw::insert(&raw_path, n, rows, "feed")?.as_secs_f64();
        std::fs::remove_file(&raw_path)?;
    }

    row.first = run(binaries, dir, &[])?;
    let catalogue = dir.join("catalogue.sqlite");
    row.catalogue_mb = std::fs::metadata(&catalogue)?.len() as f64 / 1e6;
    row.unchanged = run(binaries, dir, &[])?;
    feeds.use_changed()?;
    row.one_percent = run(binaries, dir, &[])?;
    row.forced = run(binaries, dir, &["--force"])?;
    std::fs::remove_file(&catalogue)?;
    Ok(row)
}

fn per_second(count: u64, seconds: f64) -> String {
    format!("{:.0}", count as f64 / seconds.max(1e-9))
}

/// The SQLite report: one table, one row per feed size, and the targets.
pub fn print_table(rows: &[Row]) {
    println!("SQLite:");
    println!();
    println!("(Raw insert rows/s count products, each with its row in every table the insert writes: of every row = core, eo, jsonl and the owner record, as a first sync writes them.)");
    println!();
    println!("| products | raw insert core+eo rows/s | raw insert of every row rows/s | first sync products/s | vs raw core+eo | vs raw of every row | µs/product | peak RSS MB | catalogue MB | read+parse s | unchanged re-sync s | vs parse | rows written | 1% changed s | rows written | --force s | --force / first sync | rows written |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let raw_rate = r.products as f64 / r.raw_seconds;
        let core_and_eo_rate = r.products as f64 / r.raw_core_and_eo_seconds;
        let first_rate = r.products as f64 / r.first.seconds;
        println!(
            "| {} | {} | {} | {} | {:.0}% | {:.0}% | {:.1} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2}x | {} | {:.2} | {} | {:.2} | {:.2}x | {} |",
            r.products,
            per_second(r.products, r.raw_core_and_eo_seconds),
            per_second(r.products, r.raw_seconds),
            per_second(r.products, r.first.seconds),
            100.0 * first_rate / core_and_eo_rate,
            100.0 * first_rate / raw_rate,
            1e6 * r.first.seconds / r.products as f64,
            r.first.peak_rss_mb.max(r.unchanged.peak_rss_mb).max(r.one_percent.peak_rss_mb).max(r.forced.peak_rss_mb),
            r.catalogue_mb,
            r.parse_seconds,
            r.unchanged.seconds,
            r.unchanged.seconds / r.parse_seconds,
            r.unchanged.written,
            r.one_percent.seconds,
            r.one_percent.written,
            r.forced.seconds,
            r.forced.seconds / r.first.seconds,
            r.forced.written,
        );
    }
    println!();
    println!("Targets: first sync >= 70% of the raw insert of every row (issue 17); --force no dearer than the first sync (issue 17);");
    println!("unchanged re-sync writes 0 rows in <= 1.5x read+parse; 1% changed writes about 1% of the rows; peak RSS < 100 MB at 1,000,000.");
    for r in rows {
        let ratio = r.raw_seconds / r.first.seconds;
        let forced = r.forced.seconds / r.first.seconds;
        println!(
            "- {} products: SQLite first sync / raw insert of every row = {:.1}% (>= 70%: {}); --force / first sync = {forced:.2}x (<= 1: {})",
            r.products,
            100.0 * ratio,
            if ratio >= 0.7 { "met" } else { "NOT met" },
            if forced <= 1.0 { "met" } else { "NOT met" },
        );
    }
}
