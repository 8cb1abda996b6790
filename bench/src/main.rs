//! `muninn-sync-bench`: measures muninn-sync's catalogue write path against
//! the physical limit (raw SQLite inserts of the same rows) and prints a
//! table. Run it with `cargo build --release && ./target/release/muninn-sync-bench`.

mod feed;
mod measure;
mod odata;
mod raw;
mod server_process;
mod stac;

use anyhow::{bail, Result};
use clap::Parser;
use std::path::PathBuf;

/// Benchmarks a first sync, re-syncs and forced syncs of generated feeds
/// through the real muninn-sync binary and jsonl plugin.
#[derive(Debug, Parser)]
#[command(name = "muninn-sync-bench", about)]
struct Args {
    /// Products in the largest feed; 10,000 and 100,000 are measured too
    /// when smaller, so that the growth with N shows.
    #[arg(long, default_value_t = 1_000_000)]
    products: u64,
    /// Where to write feeds and catalogues (default: a temporary directory,
    /// removed afterwards). Needs about 2 KB of disk per product.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Instead: harvest this many items from a local STAC server with the
    /// `stac` plugin, as one slice and as concurrent time slices.
    #[arg(long, value_name = "ITEMS")]
    stac: Option<u64>,
    /// (The STAC benchmark's server process.)
    #[arg(long, value_name = "ITEMS", hide = true)]
    serve_stac: Option<u64>,
    /// Instead: harvest this many products of one type in one window from a
    /// local server that answers as CDSE's OData catalogue, with the
    /// `odata` plugin.
    #[arg(long, value_name = "PRODUCTS")]
    odata: Option<u64>,
    /// (The OData benchmark's server process.)
    #[arg(long, value_name = "PRODUCTS", hide = true)]
    serve_odata: Option<u64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.products == 0 {
        bail!("--products must be at least 1");
    }
    if let Some(items) = args.serve_stac {
        return stac::serve_items(items);
    }
    if let Some(n) = args.serve_odata {
        return odata::serve_products(n);
    }
    let binaries = measure::Binaries::beside_this_executable()?;
    let temporary = tempfile::tempdir()?;
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    if let Some(items) = args.stac {
        return stac::harvest(&binaries, &work, items);
    }
    if let Some(n) = args.odata {
        return odata::harvest(&binaries, &work, n);
    }
    let mut sizes: Vec<u64> = [10_000, 100_000, args.products]
        .into_iter()
        .filter(|n| *n <= args.products)
        .collect();
    sizes.dedup();
    let mut rows = Vec::new();
    for n in sizes {
        eprintln!("benchmarking {n} products in {}", work.display());
        rows.push(measure::scenario(
            &binaries,
            &work.join(format!("n{n}")),
            n,
        )?);
    }
    measure::print_table(&rows);
    Ok(())
}
