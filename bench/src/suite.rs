//! The jsonl suite: feeds of growing size through each catalogue backend,
//! in one run, on the same feeds, and the tables.

use crate::measure::{self, Binaries};
use crate::{feed, postgresql};
use anyhow::Result;
use clap::ValueEnum;
use std::path::Path;

/// A catalogue backend to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Sqlite,
    /// A private server started by the benchmark, on 127.0.0.1 and through
    /// a relay adding 1 ms per round trip.
    Postgresql,
}

/// The jsonl feeds of every size through each backend, and the tables.
pub fn jsonl(
    binaries: &Binaries,
    work: &Path,
    products: u64,
    backends: &[Backend],
    log_statements: bool,
) -> Result<()> {
    let mut sizes: Vec<u64> = [10_000, 100_000, products]
        .into_iter()
        .filter(|n| *n <= products)
        .collect();
    sizes.dedup();
    let server = match backends.contains(&Backend::Postgresql) {
        true => Some(postgresql::Server::start(log_statements)?),
        false => None,
    };
    let (mut sqlite, mut postgres) = (Vec::new(), Vec::new());
    for n in sizes {
        let dir = work.join(format!("n{n}"));
        if dir.exists() {
            // Left by an interrupted run: start from nothing.
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        eprintln!("benchmarking {n} products in {}", dir.display());
        let feeds = feed::Feeds::write(&dir, n)?;
        let parse_seconds = measure::read_and_parse(&feeds, n)?;
        if backends.contains(&Backend::Sqlite) {
            eprintln!("  SQLite");
            sqlite.push(measure::scenario(binaries, &dir, &feeds, n, parse_seconds)?);
        }
        if let Some(server) = &server {
            postgres.push(postgresql::scenario(
                server,
                binaries,
                &dir,
                &feeds,
                n,
                parse_seconds,
            )?);
        }
        std::fs::remove_dir_all(&dir)?;
    }
    if !sqlite.is_empty() {
        measure::print_table(&sqlite);
        println!();
    }
    if let Some(server) = &server {
        postgresql::print_tables(server, &postgres, &sqlite);
        server.keep_log(&work.join("postgresql.log"))?;
    }
    Ok(())
}
