//! The command line: Python muninn 7.5's `muninn-sync` contract.

use crate::duration::parse_duration;
use crate::lock::Wait;
use clap::{ArgAction, Parser, ValueEnum};
use muninn_sync_model::{parse_timestamp, Timestamp};
use std::path::PathBuf;
use std::time::Duration;

const EXIT_CODES: &str = "\
The window is half-open, [start, end): a product is synced when
start <= its time < end, so back-to-back windows (--start A --end B, then
--start B --end C) neither overlap nor leave a gap.

With --incremental (or incremental = true in the synchronizer's section) and
no --start, the window starts at the synchronizer's watermark minus the
lookback; the first run, and a run with --full, syncs everything.

Exit codes:
  0    success
  1    an error during the run (configuration, plugin, remote, catalogue, or
       products that could not be synced); it is printed as 'ERROR: <message>'
  2    usage error (bad arguments)
  75   another run of this synchronizer on this archive is still going
       (EX_TEMPFAIL: try again later, or use --wait)
  124  the plugin did nothing for longer than --timeout
  130  interrupted by SIGINT (143: by SIGTERM) after committing its last batch";

/// Synchronizes a muninn archive's catalogue with a remote catalogue through
/// the synchronizer plugin its configuration names.
#[derive(Debug, Parser)]
// Repeating an option keeps the last value, as argparse does for muninn.
#[command(name = "muninn-sync", version, about, after_help = EXIT_CODES, args_override_self = true)]
pub struct Args {
    /// Archive identifier (<id>.toml, then <id>.cfg, is looked up in
    /// MUNINN_CONFIG_PATH) or the path of an archive configuration file
    #[arg(
        value_name = "ARCHIVE",
        required_unless_present_any = ["check_plugin", "completions", "man"]
    )]
    pub archive: Option<String>,

    /// Name of the synchronizer: a ["synchronizer:<name>"] section of the
    /// archive configuration (with --history: show only its runs)
    #[arg(
        value_name = "SYNCHRONIZER",
        required_unless_present_any = ["list", "history", "check_plugin", "completions", "man"]
    )]
    pub synchronizer: Option<String>,

    /// List the archive's synchronizers: plugin file, name, version and ABI
    /// version, and per product type the watermark and the last run
    #[arg(long, help_heading = "Operator commands (no sync)", group = "operator")]
    pub list: bool,

    /// Show the archive's last N runs (default 20) as a table; with
    /// --report json as JSON
    #[arg(
        long,
        value_name = "N",
        num_args = 0..=1,
        default_missing_value = "20",
        help_heading = "Operator commands (no sync)",
        group = "operator"
    )]
    pub history: Option<usize>,

    /// Load a plugin file (or a plugin name, searched as `module` is) and
    /// report its name, version and ABI version, or why it cannot be loaded
    #[arg(
        long,
        value_name = "PATH",
        help_heading = "Operator commands (no sync)",
        group = "operator"
    )]
    pub check_plugin: Option<String>,

    /// Make SYNCHRONIZER the owner of the products of its product types
    /// that nobody owns (made by muninn, another tool, or before muninn-sync
    /// recorded owners), so that its removals and prunes may touch them.
    /// The types are -p's, else the section's product_types (or the keys of
    /// its collections). With --dry-run, only count them
    #[arg(long, help_heading = "Operator commands (no sync)", group = "operator")]
    pub adopt: bool,

    /// Print a shell completion script for SHELL (bash, zsh, fish, elvish,
    /// powershell) on stdout
    #[arg(
        long,
        value_name = "SHELL",
        help_heading = "Operator commands (no sync)",
        group = "operator"
    )]
    pub completions: Option<clap_complete::Shell>,

    /// Print the manual page (roff) on stdout: muninn-sync --man > muninn-sync.1
    #[arg(long, help_heading = "Operator commands (no sync)", group = "operator")]
    pub man: bool,

    /// Product types to synchronize (default: every type the synchronizer
    /// knows; given without values: none)
    #[arg(
        short = 'p',
        long = "product-types",
        visible_alias = "product-type",
        value_name = "T",
        num_args = 0..,
        action = ArgAction::Append
    )]
    pub product_types: Option<Vec<String>>,

    /// Start of the window (inclusive): YYYY-MM-DD[THH:MM:SS[.ffffff]] (UTC)
    /// or RFC 3339 with Z or an offset
    #[arg(short = 's', long, value_name = "S", value_parser = parse_time)]
    pub start: Option<Timestamp>,

    /// End of the window (exclusive), in the same forms as --start
    #[arg(short = 'e', long, value_name = "E", value_parser = parse_time)]
    pub end: Option<Timestamp>,

    /// Update every product in the window that the catalogue already has,
    /// changed or not
    #[arg(short = 'f', long)]
    pub force: bool,

    /// Start the window at the watermark of the last committed changes
    /// (minus the lookback) when no --start is given
    #[arg(long, conflicts_with = "full")]
    pub incremental: bool,

    /// Ignore the watermark for this run: sync the whole window even when
    /// the section says incremental = true
    #[arg(long)]
    pub full: bool,

    /// How far before the watermark an incremental run starts, for changes
    /// the remote records late (default: the section's lookback, else 10m)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lookback: Option<Duration>,

    /// When another run of this synchronizer holds the archive, wait for it
    /// (up to SECONDS, or without limit) instead of exiting with code 75
    #[arg(
        long,
        value_name = "SECONDS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "forever",
        value_parser = parse_wait
    )]
    pub wait: Option<Wait>,

    /// Stop at the first product that cannot be synced (default: skip it,
    /// go on, and exit 1 at the end)
    #[arg(long)]
    pub fail_fast: bool,

    /// End the run when the plugin has neither changed nor looked up
    /// anything, nor returned, for this long (e.g. 300, 10m; 0: no limit,
    /// whatever the section's inactivity_timeout says)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Run the plugin against the catalogue but write nothing: list what
    /// would be created, updated and removed
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// The end-of-run summary: one line on stderr (text), or also a JSON
    /// document on stdout (json)
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = ReportFormat::Text)]
    pub report: ReportFormat,

    /// Write Prometheus metrics of this archive's synchronizers to PATH
    /// (node_exporter textfile collector: written to a temporary file, then
    /// renamed)
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    /// Show debug messages
    #[arg(short = 'v', long, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Show only warnings and errors
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// The form of the end-of-run summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

fn parse_wait(text: &str) -> Result<Wait, String> {
    if text == "forever" {
        return Ok(Wait::Forever);
    }
    parse_duration(text).map(Wait::UpTo)
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    parse_timestamp(text).map_err(|e| e.to_string())
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode<'a> {
    /// Sync `synchronizer` of `archive` (muninn's contract).
    Sync {
        archive: &'a str,
        synchronizer: &'a str,
    },
    List {
        archive: &'a str,
    },
    History {
        archive: &'a str,
        synchronizer: Option<&'a str>,
        runs: usize,
    },
    CheckPlugin {
        plugin: &'a str,
    },
    /// Make `synchronizer` the owner of unowned products of its types.
    Adopt {
        archive: &'a str,
        synchronizer: &'a str,
    },
    Completions {
        shell: clap_complete::Shell,
    },
    Man,
}

impl Args {
    /// What to do; clap has checked that what it needs is there.
    pub fn mode(&self) -> Mode<'_> {
        let archive = self.archive.as_deref().unwrap_or_default();
        if let Some(plugin) = &self.check_plugin {
            Mode::CheckPlugin { plugin }
        } else if let Some(shell) = self.completions {
            Mode::Completions { shell }
        } else if self.man {
            Mode::Man
        } else if self.list {
            Mode::List { archive }
        } else if self.adopt {
            Mode::Adopt {
                archive,
                synchronizer: self.synchronizer.as_deref().unwrap_or_default(),
            }
        } else if let Some(runs) = self.history {
            Mode::History {
                archive,
                synchronizer: self.synchronizer.as_deref(),
                runs,
            }
        } else {
            Mode::Sync {
                archive,
                synchronizer: self.synchronizer.as_deref().unwrap_or_default(),
            }
        }
    }

    /// The archive argument of a sync (clap requires it).
    pub fn archive(&self) -> &str {
        self.archive.as_deref().unwrap_or_default()
    }

    /// The synchronizer argument of a sync (clap requires it).
    pub fn synchronizer(&self) -> &str {
        self.synchronizer.as_deref().unwrap_or_default()
    }

    /// Parses the command line; exits with code 2 on a usage error, as
    /// argparse does for muninn.
    pub fn parse_or_exit() -> Args {
        let args = Args::parse();
        if let (Some(start), Some(end)) = (&args.start, &args.end) {
            if start >= end {
                use clap::CommandFactory;
                Args::command()
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "--start ({}) must be before --end ({}): the window [start, end) would be empty",
                            muninn_sync_model::format_timestamp(start),
                            muninn_sync_model::format_timestamp(end)
                        ),
                    )
                    .exit();
            }
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("muninn-sync").chain(line.iter().copied()))
    }

    #[test]
    fn product_types_follow_muninn() {
        assert_eq!(parse(&["a", "s"]).unwrap().product_types, None);
        assert_eq!(
            parse(&["a", "s", "-p"]).unwrap().product_types,
            Some(vec![])
        );
        assert_eq!(
            parse(&["a", "s", "-p", "X", "Y", "--product-type", "Z"])
                .unwrap()
                .product_types,
            Some(vec!["X".into(), "Y".into(), "Z".into()])
        );
        assert_eq!(
            parse(&["a", "s", "-p", "X", "-p", "Y"])
                .unwrap()
                .product_types,
            Some(vec!["X".into(), "Y".into()])
        );
    }

    #[test]
    fn times_accept_muninn_and_rfc3339_forms() {
        let args = parse(&[
            "a",
            "s",
            "--start",
            "2024-01-01",
            "-e",
            "2024-02-01T12:00:00+01:00",
        ])
        .unwrap();
        assert_eq!(
            args.start.unwrap().to_rfc3339(),
            "2024-01-01T00:00:00+00:00"
        );
        assert_eq!(args.end.unwrap().to_rfc3339(), "2024-02-01T11:00:00+00:00");
        let error = parse(&["a", "s", "--start", "tomorrow"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(
            error.to_string().contains("invalid datetime: tomorrow"),
            "{error}"
        );
    }

    #[test]
    fn run_control_options_parse() {
        let args = parse(&["a", "s"]).unwrap();
        assert_eq!(args.wait, None);
        assert_eq!(args.report, ReportFormat::Text);
        assert_eq!(
            parse(&["a", "s", "--wait"]).unwrap().wait,
            Some(Wait::Forever)
        );
        assert_eq!(
            parse(&["a", "s", "--wait=90"]).unwrap().wait,
            Some(Wait::UpTo(Duration::from_secs(90)))
        );
        let args = parse(&[
            "a",
            "s",
            "--timeout",
            "10m",
            "--lookback",
            "1h",
            "--report",
            "json",
            "-n",
        ])
        .unwrap();
        assert_eq!(args.timeout, Some(Duration::from_secs(600)));
        assert_eq!(args.lookback, Some(Duration::from_secs(3600)));
        assert_eq!(args.report, ReportFormat::Json);
        assert!(args.dry_run);
        assert_eq!(
            parse(&["a", "s", "--incremental", "--full"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(
            parse(&["a", "s", "--timeout", "soon"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn operator_commands_need_no_synchronizer() {
        assert_eq!(
            parse(&["a", "--list"]).unwrap().mode(),
            Mode::List { archive: "a" }
        );
        assert_eq!(
            parse(&["a", "--history"]).unwrap().mode(),
            Mode::History {
                archive: "a",
                synchronizer: None,
                runs: 20
            }
        );
        assert_eq!(
            parse(&["a", "feed", "--history", "5"]).unwrap().mode(),
            Mode::History {
                archive: "a",
                synchronizer: Some("feed"),
                runs: 5
            }
        );
        assert_eq!(
            parse(&["--check-plugin", "x.so"]).unwrap().mode(),
            Mode::CheckPlugin { plugin: "x.so" }
        );
        assert!(matches!(
            parse(&["--completions", "bash"]).unwrap().mode(),
            Mode::Completions { .. }
        ));
        assert_eq!(
            parse(&["a", "s"]).unwrap().mode(),
            Mode::Sync {
                archive: "a",
                synchronizer: "s"
            }
        );
        // A sync still needs both, and one operator command at a time.
        assert_eq!(parse(&["a"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&[]).unwrap_err().exit_code(), 2);
        assert_eq!(
            parse(&["a", "--list", "--history"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(parse(&["--list"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn verbose_and_quiet_exclude_each_other() {
        assert_eq!(parse(&["a", "s", "-v", "-q"]).unwrap_err().exit_code(), 2);
    }
}
