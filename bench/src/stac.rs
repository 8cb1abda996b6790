//! The STAC harvest benchmark: items per second that the real binary and
//! `stac` plugin take from a local STAC server holding N items, read as one
//! slice and as concurrent time slices.

use crate::measure::{run, Binaries, Sync};
use crate::server_process::ServerProcess;
use anyhow::Result;
use muninn_sync_e2e::stac_server::{serve, StacServer};
use serde_json::json;
use std::path::Path;
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
        std::fs::create_dir_all(&run_dir)?;
        std::fs::write(
            run_dir.join("archive.toml"),
            format!(
                "[archive]\ndatabase = \"sqlite\"\n\n[sqlite]\nconnection_string = \"catalogue.sqlite\"\n\n\
                 [\"synchronizer:feed\"]\nmodule = \"stac\"\nurl = \"{base}/\"\ncollections = {{ S2MSI2A = \"s2\" }}\n\
                 page_size = 1000\nslice = \"{}\"\nconcurrency = {}\n",
                way.slice, way.concurrency
            ),
        )?;
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
    Ok(())
}
