//! Python muninn 7.5, the tool muninn-sync replaces, beside us on the same
//! feed: its own `muninn-sync` with a synchronizer that does what our jsonl
//! plugin does (bench/python/muninn_sync_bench_jsonl.py), and ours, each
//! into a SQLite catalogue of its own, for a first sync, an unchanged
//! re-sync and `--force`. Both are started and timed by the same launcher.
//!
//! Python muninn needs `muninn-prepare` to make its catalogue before its
//! first sync; that is timed on its own, and the syncs are compared sync
//! to sync (our first sync creates its catalogue, which counts against
//! us). Afterwards both catalogues must hold the same products with the
//! same core and `eo` properties, so that the times are of the same work.

use crate::feed;
use crate::measure::{run_with, Binaries, Sync};
use anyhow::{anyhow, bail, Context, Result};
use rusqlite::types::Value as Sql;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The muninn release compared (scripts/install-python-muninn.sh pins it).
const MUNINN_VERSION: &str = "7.5.0";

/// The target: Python muninn's time over ours, for the first sync
/// and `--force`.
const TARGET_RATIO: f64 = 100.0;

/// Our configuration: the feed one directory up.
const OURS: &str =
    "[archive]\ndatabase = \"sqlite\"\n\n[sqlite]\nconnection_string = \"catalogue.sqlite\"\n\n\
                    [\"synchronizer:feed\"]\nmodule = \"jsonl\"\npath = \"../feed.jsonl\"\n";

/// Where Python muninn and our bench modules are.
struct Python {
    venv: PathBuf,
    modules: PathBuf,
    /// Python's compiled modules, out of the source tree.
    pycache: PathBuf,
}

/// The times of one feed size, each tool's runs in the order made.
struct Row {
    products: u64,
    prepare: Sync,
    /// First sync, unchanged re-sync, --force.
    python: [Sync; 3],
    ours: [Sync; 3],
    /// Products in each catalogue afterwards: Python's, ours.
    in_catalogue: (u64, u64),
    alike: Alike,
}

/// The scenarios, in the order they run, with our extra arguments.
const SCENARIOS: [(&str, &[&str]); 3] = [
    ("first sync", &[]),
    ("unchanged re-sync", &[]),
    ("--force", &["--force"]),
];

/// Runs the comparison at each size and prints its tables; when Python
/// muninn cannot be installed, says why and returns without them.
pub fn compare(binaries: &Binaries, work: &Path, sizes: &[u64]) -> Result<()> {
    if sizes.is_empty() {
        return Ok(());
    }
    let python = match Python::installed(work) {
        Ok(python) => python,
        Err(why) => {
            println!("Python muninn {MUNINN_VERSION}: skipped: {why:#}");
            return Ok(());
        }
    };
    let load_before = load_average();
    let mut rows = Vec::new();
    for &n in sizes {
        let dir = work.join(format!("python-muninn-n{n}"));
        if dir.exists() {
            // Left by an interrupted run: start from nothing.
            std::fs::remove_dir_all(&dir)?;
        }
        eprintln!(
            "Python muninn and muninn-sync, {n} products, in {}",
            dir.display()
        );
        rows.push(scenario(binaries, &python, &dir, n)?);
        std::fs::remove_dir_all(&dir)?;
    }
    print_tables(&rows);
    println!(
        "Machine load (1-minute average) before and after: {} / {}. Python muninn's wall time is mostly its commit (an fsync) per product, so it moves with the disk's other traffic.",
        load_before,
        load_average()
    );
    Ok(())
}

/// The 1-minute load average, as /proc/loadavg has it ("?" elsewhere).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

impl Python {
    /// The virtualenv with muninn 7.5, installed by
    /// scripts/install-python-muninn.sh when missing.
    fn installed(work: &Path) -> Result<Python> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("bench/ is in the workspace")?;
        let python = Python {
            venv: workspace.join("target/python-muninn/venv"),
            modules: workspace.join("bench/python"),
            pycache: work.join("pycache"),
        };
        if python.version().as_deref() != Some(MUNINN_VERSION) {
            let script = workspace.join("scripts/install-python-muninn.sh");
            eprintln!(
                "installing Python muninn {MUNINN_VERSION}: {}",
                script.display()
            );
            let output = Command::new("bash")
                .arg(&script)
                .output()
                .with_context(|| format!("cannot run {}", script.display()))?;
            if !output.status.success() {
                bail!(
                    "{} failed ({}): {}{}",
                    script.display(),
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr).trim_end()
                );
            }
            if python.version().as_deref() != Some(MUNINN_VERSION) {
                bail!(
                    "muninn {MUNINN_VERSION} is still not importable from {} after {}",
                    python.venv.display(),
                    script.display()
                );
            }
        }
        Ok(python)
    }

    fn version(&self) -> Option<String> {
        let output = Command::new(self.venv.join("bin/python"))
            .args(["-c", "import muninn; print(muninn.__version__)"])
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Runs muninn's `tool args` in `dir` through the launcher, as a muninn
    /// user would with our modules on PYTHONPATH; its log is `<log>.log`.
    fn run(
        &self,
        binaries: &Binaries,
        dir: &Path,
        tool: &str,
        args: &[&str],
        log: &str,
    ) -> Result<(Sync, String)> {
        let pythonpath = format!("PYTHONPATH={}", self.modules.display());
        let pycache = format!("PYTHONPYCACHEPREFIX={}", self.pycache.display());
        let program = self.venv.join("bin").join(tool);
        let program = program.to_str().context("a virtualenv path in UTF-8")?;
        let all: Vec<&str> = [pythonpath.as_str(), pycache.as_str(), program]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let log_path = dir.join(format!("{log}.log"));
        let finished = binaries
            .launcher()
            .run(Path::new("env"), dir, &all, &log_path)
            .with_context(|| format!("cannot run Python muninn's {tool}"))?;
        let output = std::fs::read_to_string(&log_path)?;
        if finished.status != 0 {
            bail!(
                "Python muninn's {tool} {args:?} failed with status {}:\n{output}",
                finished.status
            );
        }
        let sync = Sync {
            seconds: finished.seconds,
            cpu_seconds: finished.cpu_seconds,
            peak_rss_mb: finished.peak_rss_kb as f64 / 1024.0,
            written: 0,
        };
        Ok((sync, output))
    }
}

/// Python muninn's archive: its catalogue, our namespace extension and
/// synchronizer, the feed one directory up.
fn python_config(dir: &Path) -> String {
    format!(
        "[archive]\ndatabase = sqlite\nstorage = none\nnamespace_extensions = muninn_sync_bench_ns\n\
         synchronizers = feed\n\n[sqlite]\nconnection_string = {}\n\n\
         [synchronizer:feed]\nmodule = muninn_sync_bench_jsonl\npath = {}\n",
        dir.join("catalogue.sqlite").display(),
        dir.parent().unwrap_or(dir).join("feed.jsonl").display()
    )
}

/// Both tools on a feed of `n` products in `dir`.
fn scenario(binaries: &Binaries, python: &Python, dir: &Path, n: u64) -> Result<Row> {
    let (theirs, ours) = (dir.join("python"), dir.join("ours"));
    std::fs::create_dir_all(&theirs)?;
    std::fs::create_dir_all(&ours)?;
    feed::write(&dir.join("feed.jsonl"), n, |_| false)?;
    std::fs::write(theirs.join("archive.cfg"), python_config(&theirs))?;
    std::fs::write(ours.join("archive.toml"), OURS)?;

    eprintln!("  muninn-prepare");
    let (prepare, _) = python.run(
        binaries,
        &theirs,
        "muninn-prepare",
        &["archive.cfg"],
        "prepare",
    )?;
    let mut python_runs = [Sync::default(); 3];
    let mut our_runs = [Sync::default(); 3];
    for (i, (label, extra)) in SCENARIOS.iter().enumerate() {
        eprintln!("  {label}");
        // Ours first: the feed is then in the page cache for Python.
        our_runs[i] = run_with(binaries, &ours, "archive.toml", extra)?;
        let args: Vec<&str> = ["archive.cfg", "feed"]
            .iter()
            .chain(*extra)
            .copied()
            .collect();
        let (mut sync, log) =
            python.run(binaries, &theirs, "muninn-sync", &args, &format!("sync{i}"))?;
        sync.written = written(&log)?;
        python_runs[i] = sync;
    }
    let (python_db, our_db) = (
        theirs.join("catalogue.sqlite"),
        ours.join("catalogue.sqlite"),
    );
    Ok(Row {
        products: n,
        prepare,
        python: python_runs,
        ours: our_runs,
        in_catalogue: (count(&python_db)?, count(&our_db)?),
        alike: compare_catalogues(&python_db, &our_db)?,
    })
}

/// Created + updated + removed, from the synchronizer's summary line; a
/// failed line is an error.
fn written(log: &str) -> Result<u64> {
    let line = log
        .lines()
        .find(|l| l.contains("sync done:"))
        .ok_or_else(|| anyhow!("no summary line in:\n{log}"))?;
    let count = |word: &str| -> Result<u64> {
        line.split(',')
            .find_map(|part| part.trim().strip_suffix(word))
            .and_then(|number| number.trim().rsplit(' ').next())
            .and_then(|number| number.parse().ok())
            .ok_or_else(|| anyhow!("no '{word}' count in {line}"))
    };
    if count("failed")? != 0 {
        bail!("Python muninn's sync failed lines:\n{log}");
    }
    Ok(count("created")? + count("updated")? + count("removed")?)
}

fn count(catalogue: &Path) -> Result<u64> {
    let conn = rusqlite::Connection::open(catalogue)?;
    let n: i64 = conn.query_row("SELECT count(*) FROM core", [], |row| row.get(0))?;
    Ok(n as u64)
}

/// The properties compared, as `SELECT` columns of `core c LEFT JOIN eo e`;
/// a footprint is compared by its SpatiaLite blob.
const COMPARED: [&str; 16] = [
    "c.uuid",
    "c.active",
    "c.hash",
    "c.size",
    "c.archive_date",
    "c.archive_path",
    "c.physical_name",
    "c.validity_start",
    "c.validity_stop",
    "c.creation_date",
    "c.remote_url",
    "c.footprint",
    "e.cloud_cover",
    "e.platform",
    "e.orbit",
    "e.sensing_time",
];

/// How alike the two catalogues' products are.
#[derive(Debug, Default)]
struct Alike {
    /// Products in both (by type and name).
    both: u64,
    /// Products in one catalogue only.
    one_only: u64,
    /// Per property: the products in both whose values differ.
    differing: BTreeMap<&'static str, u64>,
}

impl Alike {
    fn summary(&self) -> String {
        let mut text = format!("{} in both", self.both);
        if self.one_only > 0 {
            text += &format!(", {} in one only", self.one_only);
        }
        if self.differing.is_empty() {
            text += &format!(", all {} properties alike", COMPARED.len());
        } else {
            let differing: Vec<String> = self
                .differing
                .iter()
                .map(|(property, n)| format!("{property} x{n}"))
                .collect();
            text += &format!(", differing: {}", differing.join(" "));
        }
        text
    }
}

/// Every product's core and `eo` properties in both catalogues, by type
/// and name; times compared as times, whatever their text.
fn compare_catalogues(python: &Path, ours: &Path) -> Result<Alike> {
    let read = |path: &Path| -> Result<HashMap<String, Vec<Sql>>> {
        let conn = rusqlite::Connection::open(path)?;
        let sql = format!(
            "SELECT c.product_type || '/' || c.product_name, {} FROM core c LEFT JOIN eo e USING (uuid)",
            COMPARED.join(", ")
        );
        let mut statement = conn.prepare(&sql)?;
        let rows = statement.query_map([], |row| {
            let values = (1..=COMPARED.len())
                .map(|i| row.get::<_, Sql>(i))
                .collect::<rusqlite::Result<Vec<Sql>>>()?;
            Ok((row.get::<_, String>(0)?, values))
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .with_context(|| format!("cannot read {}", path.display()))
    };
    let (theirs, ours) = (read(python)?, read(ours)?);
    let mut alike = Alike::default();
    for (name, values) in &theirs {
        let Some(our_values) = ours.get(name) else {
            alike.one_only += 1;
            continue;
        };
        alike.both += 1;
        for ((property, a), b) in COMPARED.iter().zip(values).zip(our_values) {
            if !same(a, b) {
                *alike.differing.entry(property).or_default() += 1;
            }
        }
    }
    alike.one_only += ours.keys().filter(|k| !theirs.contains_key(*k)).count() as u64;
    Ok(alike)
}

fn same(a: &Sql, b: &Sql) -> bool {
    match (a, b) {
        (Sql::Text(a), Sql::Text(b)) if a != b => {
            match (
                muninn_sync_model::parse_timestamp(a),
                muninn_sync_model::parse_timestamp(b),
            ) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
        }
        _ => a == b,
    }
}

impl Row {
    /// What makes the two tools' work differ at this size, if anything.
    fn unequal(&self) -> Vec<String> {
        let n = self.products;
        let mut unequal: Vec<String> = SCENARIOS
            .iter()
            .zip(self.python.iter().zip(&self.ours))
            .filter(|(_, (python, ours))| python.written != ours.written)
            .map(|((label, _), (python, ours))| {
                format!(
                    "{label} at {n}: Python wrote {} rows, we wrote {}",
                    python.written, ours.written
                )
            })
            .collect();
        let (theirs, ours) = self.in_catalogue;
        if theirs != n || ours != n {
            unequal.push(format!(
                "at {n}: Python's catalogue holds {theirs} products, ours {ours}"
            ));
        }
        if self.alike.one_only > 0 || !self.alike.differing.is_empty() {
            unequal.push(format!("at {n}: {}", self.alike.summary()));
        }
        unequal
    }
}

fn ratio(python: &Sync, ours: &Sync) -> f64 {
    python.seconds / ours.seconds.max(1e-9)
}

/// The times and ratios, then the rows written and the catalogues.
fn print_tables(rows: &[Row]) {
    println!("Python muninn {MUNINN_VERSION} and muninn-sync on the same feed (SQLite), wall seconds, each started by the launcher:");
    println!();
    println!("| products | muninn-prepare s | first sync: Python s | ours s | Python/ours | unchanged re-sync: Python s | ours s | Python/ours | --force: Python s | ours s | Python/ours |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let mut line = format!("| {} | {:.2} |", r.products, r.prepare.seconds);
        for (python, ours) in r.python.iter().zip(&r.ours) {
            line += &format!(
                " {:.2} | {:.3} | {:.0}x |",
                python.seconds,
                ours.seconds,
                ratio(python, ours)
            );
        }
        println!("{line}");
    }
    println!();
    println!("CPU seconds (user + system), Python / ours and their ratio: steadier than wall time on a shared disk, where Python's wall time beyond its CPU time is mostly waiting for its commit per product:");
    println!();
    println!("| products | muninn-prepare s | first sync s | Python/ours | unchanged re-sync s | Python/ours | --force s | Python/ours |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let mut line = format!("| {} | {:.2} |", r.products, r.prepare.cpu_seconds);
        for (python, ours) in r.python.iter().zip(&r.ours) {
            line += &format!(
                " {:.2} / {:.3} | {:.0}x |",
                python.cpu_seconds,
                ours.cpu_seconds,
                python.cpu_seconds / ours.cpu_seconds.max(1e-9)
            );
        }
        println!("{line}");
    }
    println!();
    println!("Rows written and peak RSS MB (Python / ours), and the catalogues afterwards:");
    println!();
    println!("| products | first sync rows | RSS MB | unchanged rows | RSS MB | --force rows | RSS MB | products in catalogue | properties |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let mut line = format!("| {} |", r.products);
        for (python, ours) in r.python.iter().zip(&r.ours) {
            line += &format!(
                " {} / {} | {:.0} / {:.0} |",
                python.written, ours.written, python.peak_rss_mb, ours.peak_rss_mb
            );
        }
        line += &format!(
            " {} / {} | {} |",
            r.in_catalogue.0,
            r.in_catalogue.1,
            r.alike.summary()
        );
        println!("{line}");
    }
    println!();
    let unequal: Vec<String> = rows.iter().flat_map(Row::unequal).collect();
    match unequal.is_empty() {
        true => println!(
            "Same work: at every size both wrote the same number of rows in each run and hold the same products, alike in every property compared."
        ),
        false => println!("NOT the same work: {}.", unequal.join("; ")),
    }
    let missed: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            [(0, "first sync"), (2, "--force")]
                .into_iter()
                .filter(|(i, _)| ratio(&r.python[*i], &r.ours[*i]) < TARGET_RATIO)
                .map(move |(i, label)| {
                    format!(
                        "{label} at {} ({:.0}x)",
                        r.products,
                        ratio(&r.python[i], &r.ours[i])
                    )
                })
        })
        .collect();
    println!(
        "Target (issue 17): Python/ours >= {TARGET_RATIO:.0}x for the first sync and --force at every size: {}.",
        match missed.is_empty() {
            true => "met".to_string(),
            false => format!("not met: {}", missed.join(", ")),
        }
    );
}
