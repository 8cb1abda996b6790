//! `muninn-sync`: runs one synchronizer plugin against one muninn archive.

use muninn_sync::cli::Mode;
use muninn_sync::{cli, logging, ops, run};
use std::process::ExitCode;
use tracing_subscriber::filter::LevelFilter;

/// Parses the command line (exit 2 on a usage error), runs the sync (or
/// the operator command asked for), and
/// prints an error once as `ERROR: <message>` with exit code 1.
fn main() -> ExitCode {
    let args = cli::Args::parse_or_exit();
    logging::init(match (args.verbose, args.quiet) {
        (true, _) => LevelFilter::DEBUG,
        (_, true) => LevelFilter::WARN,
        _ => LevelFilter::INFO,
    });
    let outcome = match args.mode() {
        Mode::Sync { .. } => run::run(&args),
        _ => ops::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ERROR: {}", logging::safe_line(&format!("{error:#}")));
            ExitCode::from(run::exit_code_of(&error))
        }
    }
}
