//! Running the real binary on generated feeds and measuring it.

use crate::{feed, raw};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The release binary and plugin the benchmark measures.
pub struct Binaries {
    muninn_sync: PathBuf,
}

impl Binaries {
    /// muninn-sync and libjsonl.so are built beside the benchmark by
    /// `cargo build --release`.
    pub fn beside_this_executable() -> Result<Binaries> {
        let dir = std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .context("no executable directory")?;
        let muninn_sync = dir.join("muninn-sync");
        for needed in [&muninn_sync, &dir.join("libjsonl.so")] {
            if !needed.is_file() {
                bail!(
                    "{} is missing: run `cargo build --release` first",
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
        Ok(Binaries { muninn_sync })
    }
}

/// One run of the binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sync {
    pub seconds: f64,
    pub peak_rss_mb: f64,
    /// Rows written: products created, updated and removed.
    pub written: u64,
}

/// The figures of one feed size.
#[derive(Debug, Clone, Copy, Default)]
pub struct Row {
    pub products: u64,
    pub raw_seconds: f64,
    pub parse_seconds: f64,
    pub first: Sync,
    pub unchanged: Sync,
    pub one_percent: Sync,
    pub forced: Sync,
    pub catalogue_mb: f64,
}

const CONFIG: &str =
    "[archive]\ndatabase = \"sqlite\"\n\n[sqlite]\nconnection_string = \"catalogue.sqlite\"\n\n\
                      [\"synchronizer:feed\"]\nmodule = \"jsonl\"\npath = \"feed.jsonl\"\n";

pub fn run(binaries: &Binaries, dir: &Path, extra: &[&str]) -> Result<Sync> {
    let log_path = dir.join("sync.log");
    let log = std::fs::File::create(&log_path)?;
    let started = Instant::now();
    let child = Command::new(&binaries.muninn_sync)
        .current_dir(dir)
        .arg("archive.toml")
        .arg("feed")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start muninn-sync")?;
    let (status, peak_rss_kb) = wait_with_peak_rss(child.id() as libc::pid_t)?;
    let seconds = started.elapsed().as_secs_f64();
    let output = std::fs::read_to_string(&log_path)?;
    if status != 0 {
        bail!("muninn-sync {extra:?} failed with status {status}:\n{output}");
    }
    Ok(Sync {
        seconds,
        peak_rss_mb: peak_rss_kb as f64 / 1024.0,
        written: written_rows(&output)?,
    })
}

/// Waits for a child and returns its exit status and its peak resident set
/// size in KiB, from the kernel's own accounting.
fn wait_with_peak_rss(pid: libc::pid_t) -> Result<(i32, i64)> {
    let mut status = 0;
    // SAFETY: plain system calls on a child of this process; both out
    // parameters are valid for writing.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(anyhow!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, usage.ru_maxrss))
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

/// Every measurement of one feed size.
pub fn scenario(binaries: &Binaries, dir: &Path, n: u64) -> Result<Row> {
    if dir.exists() {
        // Left by an interrupted run: start from nothing.
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let feed_path = dir.join("feed.jsonl");
    feed::write(&feed_path, n, |_| false)?;
    std::fs::write(dir.join("archive.toml"), CONFIG)?;
    let mut row = Row {
        products: n,
        ..Row::default()
    };

    let raw_path = dir.join("raw.sqlite");
    row.raw_seconds = raw::insert(&raw_path, n)?.as_secs_f64();
    std::fs::remove_file(&raw_path)?;

    let started = Instant::now();
    let parsed = jsonl::read_and_parse(&feed_path)?;
    row.parse_seconds = started.elapsed().as_secs_f64();
    if parsed as u64 != n {
        bail!("parsed {parsed} of {n} products");
    }

    row.first = run(binaries, dir, &[])?;
    row.catalogue_mb = std::fs::metadata(dir.join("catalogue.sqlite"))?.len() as f64 / 1e6;
    row.unchanged = run(binaries, dir, &[])?;
    feed::write(&feed_path, n, |i| i % 100 == 37)?;
    row.one_percent = run(binaries, dir, &[])?;
    row.forced = run(binaries, dir, &["--force"])?;
    std::fs::remove_dir_all(dir)?;
    Ok(row)
}

fn per_second(count: u64, seconds: f64) -> String {
    format!("{:.0}", count as f64 / seconds.max(1e-9))
}

/// The report: one table, one row per feed size, and the targets checked.
pub fn print_table(rows: &[Row]) {
    println!("| products | raw insert rows/s | first sync products/s | vs raw | µs/product | peak RSS MB | catalogue MB | read+parse s | unchanged re-sync s | vs parse | rows written | 1% changed s | rows written | --force s | rows written |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let raw_rate = r.products as f64 / r.raw_seconds;
        let first_rate = r.products as f64 / r.first.seconds;
        println!(
            "| {} | {} | {} | {:.0}% | {:.1} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2}x | {} | {:.2} | {} | {:.2} | {} |",
            r.products,
            per_second(r.products, r.raw_seconds),
            per_second(r.products, r.first.seconds),
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
            r.forced.written,
        );
    }
    println!();
    println!("Targets: first sync >= 50% of raw insert; unchanged re-sync writes 0 rows in <= 1.5x read+parse;");
    println!("1% changed writes about 1% of the rows; peak RSS < 100 MB at 1,000,000; µs/product flat as N grows.");
}
