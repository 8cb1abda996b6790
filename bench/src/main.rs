//! `muninn-sync-bench`: measures muninn-sync's catalogue write path against
//! the physical limit (raw SQLite inserts, PostgreSQL `COPY`, of the same
//! rows) and against Python muninn 7.5 syncing the same feed, and prints
//! tables. Run it with
//! `cargo build --release && ./target/release/muninn-sync-bench`.

mod feed;
mod latency_proxy;
mod launcher;
mod measure;
mod odata;
mod postgresql;
mod python_muninn;
mod raw;
mod raw_copy;
mod server_process;
mod stac;
mod suite;

use anyhow::{bail, Result};
use clap::Parser;
use std::path::PathBuf;
use suite::Backend;

/// Benchmarks a first sync, re-syncs and forced syncs of generated feeds
/// through the real muninn-sync binary and jsonl plugin.
#[derive(Debug, Parser)]
#[command(name = "muninn-sync-bench", about)]
struct Args {
    /// Products in the largest feed; 10,000 and 100,000 are measured too
    /// when smaller, so that the growth with N shows.
    #[arg(long, default_value_t = 1_000_000)]
    products: u64,
    /// The catalogue backends to measure, in the same run on the same feeds.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgresql")]
    backends: Vec<Backend>,
    /// The PostgreSQL server logs every statement of the syncs with its
    /// duration, into <work-dir>/postgresql.log (slows the syncs; to find
    /// where their time goes).
    #[arg(long)]
    pg_log_statements: bool,
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
    /// The directory holding the muninn-sync binary and plugins to measure
    /// (another build's target/release, to compare before and after).
    /// Default: the directory of this benchmark's executable.
    #[arg(long, value_name = "DIR")]
    binaries: Option<PathBuf>,
    /// Feed sizes at which Python muninn 7.5 syncs beside muninn-sync
    /// (first sync, unchanged re-sync, --force). Its virtualenv is made by
    /// scripts/install-python-muninn.sh when missing.
    #[arg(
        long,
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "2000,10000"
    )]
    python_muninn_sizes: Vec<u64>,
    /// Instead: only Python muninn beside muninn-sync.
    #[arg(long, conflicts_with = "no_python_muninn")]
    python_muninn_only: bool,
    /// Leave Python muninn out of the jsonl benchmark.
    #[arg(long)]
    no_python_muninn: bool,
    /// (The process that starts the measured runs: see launcher.rs.)
    #[arg(long = "launcher", hide = true)]
    launcher: bool,
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
    if args.launcher {
        return launcher::serve();
    }
    let binaries = match &args.binaries {
        Some(dir) => measure::Binaries::in_dir(dir)?,
        None => measure::Binaries::beside_this_executable()?,
    };
    let temporary = tempfile::tempdir()?;
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    if let Some(items) = args.stac {
        binaries.require_plugin("stac")?;
        return stac::harvest(&binaries, &work, items);
    }
    if let Some(n) = args.odata {
        binaries.require_plugin("odata")?;
        return odata::harvest(&binaries, &work, n);
    }
    if !args.python_muninn_only {
        suite::jsonl(
            &binaries,
            &work,
            args.products,
            &args.backends,
            args.pg_log_statements,
        )?;
    }
    match args.no_python_muninn {
        true => Ok(()),
        false => python_muninn::compare(&binaries, &work, &args.python_muninn_sizes),
    }
}
