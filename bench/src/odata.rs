//! The OData harvest benchmark: products per second that the real binary
//! and `odata` plugin take from a local server that answers as CDSE's
//! OData catalogue does (with its `$skip` cap), holding N products of one
//! type in one window.

use crate::measure::{run, Binaries, Sync};
use crate::server_process::ServerProcess;
use anyhow::Result;
use muninn_sync_e2e::odata_server::{products, serve, OdataServer};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The products' `ModificationDate`s: one every 86.4 ms from here, so
/// 1,000,000 a day, with 6 fractional digits as CDSE writes them.
const START: &str = "2025-01-01T00:00:00Z";

fn modified(n: u64) -> String {
    let start = chrono::DateTime::parse_from_rfc3339(START).expect("a time");
    (start + chrono::Duration::microseconds(n as i64 * 86_400))
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Serves `n` products until killed, printing the server's address first
/// (a process of its own, so that its memory does not count in the
/// measured process's peak).
pub fn serve_products(n: u64) -> Result<()> {
    let state = Arc::new(Mutex::new(OdataServer {
        products: products(0..n, "S2MSI2A", modified),
        requests_per_minute: None,
        ..OdataServer::default()
    }));
    println!("{}", serve(state));
    loop {
        std::thread::park();
    }
}

/// Harvests `n` products (first sync, unchanged re-sync, forced re-sync)
/// and prints a table.
pub fn harvest(binaries: &Binaries, dir: &Path, n: u64) -> Result<()> {
    let server = ServerProcess::start("--serve-odata", n)?;
    let window = ["--start", "2025-01-01", "--end", "2025-02-01"];
    println!("| products | run | s | products/s | peak RSS MB | requests |");
    println!("|---:|---|---:|---:|---:|---:|");
    for (label, cap) in [("default rate cap (1000/min)", 1000), ("no rate cap", 0)] {
        let run_dir = dir.join(format!("odata-cap{cap}"));
        std::fs::create_dir_all(&run_dir)?;
        std::fs::write(
            run_dir.join("archive.toml"),
            format!(
                "[archive]\ndatabase = \"sqlite\"\n\n[sqlite]\nconnection_string = \"catalogue.sqlite\"\n\n\
                 [\"synchronizer:feed\"]\nmodule = \"odata\"\nurl = \"{}/odata/v1\"\ncollection = \"SENTINEL-2\"\n\
                 product_types = [\"S2MSI2A\"]\npage_size = 1000\nmax_requests_per_minute = {cap}\n",
                server.base
            ),
        )?;
        for (what, extra) in [
            ("first sync", &[][..]),
            ("unchanged re-sync", &[][..]),
            ("--force", &["--force"][..]),
        ] {
            eprintln!("harvesting {n} OData products, {label}: {what}");
            let mut args = window.to_vec();
            args.extend_from_slice(extra);
            let sync: Sync = run(binaries, &run_dir, &args)?;
            let log = std::fs::read_to_string(run_dir.join("sync.log"))?;
            println!(
                "| {n} | {what}, {label} | {:.2} | {:.0} | {:.0} | {} |",
                sync.seconds,
                n as f64 / sync.seconds,
                sync.peak_rss_mb,
                requests(&log)
            );
        }
    }
    Ok(())
}

/// The requests the plugin says it sent, from its `requests=N` log fields.
fn requests(log: &str) -> u64 {
    log.split_whitespace()
        .filter_map(|field| field.strip_prefix("requests="))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}
