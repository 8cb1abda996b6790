//! The STAC harvest benchmark: items per second that the real binary and
//! `stac` plugin take from a local STAC server holding N items, read as one
//! slice and as concurrent time slices; then the same first sync against
//! stac-fastapi-geoparquet beside pystac-client merely paging the same
//! search on that server (issue 17: no slower than paging).

use crate::measure::{run, Binaries, Sync};
use crate::server_process::ServerProcess;
use anyhow::{anyhow, bail, Result};
use muninn_sync_e2e::stac_server::{serve, StacServer};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// The items' times: one every 86.4 s from here, so 1,000 a day.
const FIRST_DAY: &str = "2024-01-01";

fn items(n: u64) -> Vec<serde_json::Value> {
    let start = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").expect("a time");
    (0..n)
        .map(|i| {
            let at = (start + chrono::Duration::milliseconds(i as i64 * 86_400))
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let x = (i % 170) as f64;
            json!({
                "type": "Feature", "stac_version": "1.0.0", "id": format!("ITEM_{i:08}"), "collection": "s2",
                "geometry": {"type": "Polygon", "coordinates": [[[x, 10], [x + 0.5, 10], [x + 0.5, 11], [x, 11], [x, 10]]]},
                "properties": {"datetime": at, "updated": at, "eo:cloud_cover": (i % 1000) as f64 / 10.0,
                               "platform": "sentinel-2a", "s2:mgrs_tile": format!("31U{:03}", i % 900)},
                "assets": {"product": {"href": format!("https://example.org/{i}.zip"), "file:size": 800_000_000 + i,
                                       "file:checksum": "d50110d41d8cd98f00b204e9800998ecf8427e"}}
            })
        })
        .collect()
}

/// One way of reading the server.
struct Way {
    label: &'static str,
    slice: &'static str,
    concurrency: usize,
}

/// Serves `n` items until killed, printing the server's address first.
/// It runs as a process of its own, so that its memory does not count
/// in the measured process's peak (a forked child starts with its
/// parent's pages).
pub fn serve_items(n: u64) -> Result<()> {
    let state = Arc::new(Mutex::new(StacServer {
        items: items(n),
        sort: true,
        ..StacServer::default()
    }));
    println!("{}", serve(state));
    loop {
        std::thread::park();
    }
}

/// Harvests `n` items each way and prints a table.
pub fn harvest(binaries: &Binaries, dir: &Path, n: u64) -> Result<()> {
    let server = ServerProcess::start("--serve-stac", n)?;
    let base = &server.base;
    let days = n.div_ceil(1000) + 1;
    let end = (chrono::NaiveDate::parse_from_str(FIRST_DAY, "%Y-%m-%d")? + chrono::Days::new(days))
        .to_string();
    let window = ["--start", FIRST_DAY, "--end", end.as_str()];
    println!(
        "| items | how | first sync s | items/s | peak RSS MB | unchanged re-sync s | items/s |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for way in [
        Way {
            label: "one slice",
            slice: "100000d",
            concurrency: 1,
        },
        Way {
            label: "slices where the items are, 2 at a time",
            slice: "",
            concurrency: 2,
        },
        Way {
            label: "1-day slices, 2 at a time",
            slice: "1d",
            concurrency: 2,
        },
        Way {
            label: "1-day slices, 4 at a time",
            slice: "1d",
            concurrency: 4,
        },
    ] {
        let run_dir = dir.join(way.label.replace([' ', ','], "_"));
        write_config(&run_dir, base, way.slice, way.concurrency)?;
        eprintln!("harvesting {n} STAC items: {}", way.label);
        let first: Sync = run(binaries, &run_dir, &window)?;
        let again: Sync = run(binaries, &run_dir, &window)?;
        println!(
            "| {n} | {} | {:.2} | {:.0} | {:.0} | {:.2} | {:.0} |",
            way.label,
            first.seconds,
            n as f64 / first.seconds,
            first.peak_rss_mb,
            again.seconds,
            n as f64 / again.seconds
        );
    }
    drop(server);
    against_pystac_client(binaries, dir, n, &window)
}

/// The `slice` line of a section; none for "".
/// Writes `run_dir/archive.toml`: a SQLite catalogue and a `stac`
/// synchronizer `feed` reading `base`, 1,000 items a page, `concurrency`
/// slices at a time, `slice` as the cap when not empty.
fn write_config(run_dir: &Path, base: &str, slice: &str, concurrency: usize) -> Result<()> {
    std::fs::create_dir_all(run_dir)?;
    let slice_key = match slice {
        "" => String::new(),
        slice => format!("slice = \"{slice}\"\n"),
    };
    std::fs::write(
        run_dir.join("archive.toml"),
        format!(
            "[archive]\ndatabase = \"sqlite\"\n\n[sqlite]\nconnection_string = \"catalogue.sqlite\"\n\n\
             [\"synchronizer:feed\"]\nmodule = \"stac\"\nurl = \"{base}/\"\ncollections = {{ S2MSI2A = \"s2\" }}\n\
             page_size = 1000\n{slice_key}concurrency = {concurrency}\n"
        ),
    )?;
    Ok(())
}

/// The repository's root, where scripts/ and bench/python-stac/ are.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// stac-fastapi-geoparquet serving a file, under uvicorn; killed when
/// dropped.
fn start_geoparquet_server(python: &Path, parquet: &Path) -> Result<ServerProcess> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut command = Command::new(python);
    command
        .arg(repository().join("bench/python-stac/serve_geoparquet.py"))
        .arg(parquet)
        .arg(port.to_string());
    ServerProcess::spawn(command, "stac-fastapi-geoparquet")
}

/// The bench's virtualenv's python, made by scripts/install-bench-python.sh
/// (run here when it is missing or out of date; it does nothing otherwise).
fn bench_python() -> Result<PathBuf> {
    let script = repository().join("scripts/install-bench-python.sh");
    let status = Command::new("bash").arg(&script).status()?;
    if !status.success() {
        bail!(
            "{} failed: the comparison with pystac-client needs its virtualenv (run it by hand to see why)",
            script.display()
        );
    }
    Ok(repository().join("target/python-bench/venv/bin/python"))
}

/// Our first sync against stac-fastapi-geoparquet beside pystac-client
/// merely paging the same search, on the same server, the same items.
fn against_pystac_client(binaries: &Binaries, dir: &Path, n: u64, window: &[&str]) -> Result<()> {
    let python = bench_python()?;
    let geoparquet_dir = dir.join("geoparquet");
    std::fs::create_dir_all(&geoparquet_dir)?;
    let ndjson = geoparquet_dir.join("items.ndjson");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&ndjson)?);
        for mut item in items(n) {
            item["links"] = json!([]);
            writeln!(out, "{item}")?;
        }
    }
    let parquet = geoparquet_dir.join("items.parquet");
    let written = Command::new(&python)
        .arg(repository().join("bench/python-stac/write_geoparquet.py"))
        .args([&ndjson, &parquet])
        .status()?;
    if !written.success() {
        bail!("cannot write {} with rustac", parquet.display());
    }
    let server = start_geoparquet_server(&python, &parquet)?;
    let base = &server.base;
    let (start, end) = (window[1], window[3]);
    let page = |round: usize| -> Result<(f64, u64)> {
        let output = Command::new(&python)
            .arg(repository().join("bench/python-stac/page_pystac_client.py"))
            .args([
                &format!("{base}/"),
                "s2",
                &format!("{start}T00:00:00Z"),
                &format!("{end}T00:00:00Z"),
                "1000",
            ])
            .output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let mut words = text.split_whitespace();
        let seconds: f64 = words.next().unwrap_or("").parse().map_err(|_| {
            anyhow!(
                "pystac-client (round {round}) said: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        let items: u64 = words.next().unwrap_or("0").parse()?;
        Ok((seconds, items))
    };
    let ways = [
        (
            "muninn-sync, slices where the items are, 2 at a time (the defaults)",
            "",
            2,
        ),
        ("muninn-sync, one slice", "100000d", 1),
    ];
    // Alternated, best of three each: the machine is shared.
    let mut paged = f64::INFINITY;
    let mut synced = vec![f64::INFINITY; ways.len()];
    for round in 0..3 {
        eprintln!(
            "paging {n} STAC items with pystac-client (round {})",
            round + 1
        );
        let (seconds, items) = page(round)?;
        if items != n {
            bail!("pystac-client paged {items} items, not {n}");
        }
        paged = paged.min(seconds);
        for ((label, slice, concurrency), best) in ways.iter().zip(&mut synced) {
            let run_dir = geoparquet_dir.join(format!("run-{round}-{concurrency}"));
            write_config(&run_dir, base, slice, *concurrency)?;
            eprintln!("first sync of {n} STAC items from stac-fastapi-geoparquet: {label}");
            let first: Sync = run(binaries, &run_dir, window)?;
            if first.written != n {
                bail!("{label} wrote {} products, not {n}", first.written);
            }
            *best = best.min(first.seconds);
        }
    }
    println!();
    println!(
        "Against stac-fastapi-geoparquet 0.0.7 (uvicorn, 127.0.0.1; no numberMatched, offset paging), page_size 1000, best of 3:"
    );
    println!();
    println!("| items | reader | s | items/s | / pystac-client |");
    println!("|---:|---|---:|---:|---:|");
    println!(
        "| {n} | pystac-client 0.9.1, pages_as_dicts() (paging only, writes nothing) | {paged:.2} | {:.0} | 1.00 |",
        n as f64 / paged
    );
    for ((label, ..), seconds) in ways.iter().zip(&synced) {
        println!(
            "| {n} | {label}: first sync into SQLite | {seconds:.2} | {:.0} | {:.2} |",
            n as f64 / seconds,
            seconds / paged
        );
    }
    Ok(())
}
