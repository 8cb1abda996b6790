//! One synchronization run: configuration, lock, window, plugin, catalogue,
//! and how the run ends, whoever ends it (the plugin returning, a signal, or
//! the watchdog at `--timeout`).

use crate::archive::{RunRules, Shared, State, Stop};
use crate::backend::{self, OpenCatalogue, RunLockGuard};
use crate::cli::{Args, ReportFormat};
use crate::config::{self, ArchiveConfig, SynchronizerConfig, CONFIG_PATH_VARIABLE};
use crate::control::{signal_exit_code, signal_name, RunControl};
use crate::duration::format_duration;
use crate::loader;
use crate::lock::Wait;
use crate::logging::HostServices;
use crate::progress::{self, Progress};
use crate::report::{self, Summary, SynchronizerMetrics};
use crate::watchdog;
use crate::window::{self, Window, WindowRequest};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RStr, RString};
use anyhow::{anyhow, Context, Result};
use muninn_sync_catalogue::{Catalogue, RunOutcome, RunStart};
use muninn_sync_model::{to_micros, Timestamp};
use muninn_sync_plugin_api::ffi::{FfiArchive_TO, FfiHost_TO, FfiSyncRequest};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Exit codes beyond 0, 1 and 2 (documented in `--help` and
/// docs/operations.md).
pub mod exit_code {
    /// Another run of the synchronizer holds the archive (EX_TEMPFAIL).
    pub const BUSY: u8 = 75;
    /// The plugin did nothing for longer than `--timeout` (as timeout(1)).
    pub const TIMED_OUT: u8 = 124;
}

/// An error that ends the process with a particular exit code.
#[derive(Debug)]
pub struct RunFailure {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RunFailure {}

/// The exit code an error from [`run`] stands for.
pub fn exit_code_of(error: &anyhow::Error) -> u8 {
    error
        .downcast_ref::<RunFailure>()
        .map_or(1, |failure| failure.code)
}

/// How a run came to an end.
#[derive(Debug, Clone)]
pub(crate) enum Ending {
    /// `sync` returned.
    Returned(Result<(), String>),
    /// The plugin did nothing for this long.
    TimedOut(Duration),
    /// A stop signal, and the plugin did not come back in time.
    Signalled(i32),
}

/// What the end of a run needs, shared by the main thread and the watchdog.
pub(crate) struct RunContext<'a> {
    args: &'a Args,
    config: &'a ArchiveConfig,
    section: &'a SynchronizerConfig,
    /// "synchronizer \"x\" (plugin …)", for messages.
    who: String,
    plugin: String,
    window: Window,
    run_id: Option<i64>,
    started: Timestamp,
    clock: Instant,
    lock: Mutex<Option<RunLockGuard>>,
}

/// Runs the synchronizer the command line names against its archive and
/// returns its exit code; an `Err` is printed as `ERROR:` and exits with
/// [`exit_code_of`].
pub fn run(args: &Args) -> Result<()> {
    let search_path = std::env::var(CONFIG_PATH_VARIABLE).ok();
    let config_path = config::locate(args.archive(), search_path.as_deref())?;
    let config = ArchiveConfig::read(&config_path)?;
    let section = config.synchronizer(args.synchronizer())?;
    let where_configured = || {
        format!(
            "synchronizer \"{}\" (configuration file \"{}\")",
            section.name,
            config.path.display()
        )
    };
    let config_dir = config.path.parent().unwrap_or(Path::new("."));
    let plugin_path =
        loader::resolve(&section.module, config_dir).with_context(where_configured)?;
    let plugin = loader::load(&plugin_path).with_context(where_configured)?;
    let who = format!("synchronizer \"{}\" ({})", section.name, plugin.describe());

    let message = serde_json::json!({
        "section": config::options_to_json(&section.options),
        "context": {
            "synchronizer": section.name,
            "config_file": std::path::absolute(&config.path).unwrap_or_else(|_| config.path.clone()),
        },
    })
    .to_string();
    let host = FfiHost_TO::from_value(
        HostServices {
            plugin: plugin.name(),
        },
        TD_Opaque,
    );
    let mut synchronizer = (plugin.module.synchronizer())(RStr::from_str(&message), host)
        .into_result()
        .map_err(|e| {
            // The plugin's message may quote a value (serde's "invalid
            // type: string \"Bearer …\""): never a credential's.
            anyhow!(
                "configuration file \"{}\", section {}: {} ({})",
                config.path.display(),
                config.section_header(&section.name),
                section.secrets().redact(&e.to_string()),
                plugin.describe()
            )
        })?;

    let hostname = hostname();
    // A dry run writes nothing, so it needs no lock and may watch a real
    // run's catalogue.
    let run_lock = if args.dry_run {
        None
    } else {
        Some(take_lock(&config, &section, args, &hostname)?)
    };
    // The run starts once it holds the lock: time spent waiting for another
    // run (--wait) is not its own.
    let started = chrono::Utc::now();

    // A dry run changes nothing in the archive, not even by creating it.
    let mut opened = OpenCatalogue::open(&config, args.dry_run)?;
    let catalogue = opened.catalogue();
    let stored = catalogue
        .watermarks(&section.name)
        .with_context(|| format!("cannot read the watermarks of {who}"))?;
    let window = window::plan(
        &WindowRequest {
            start: args.start,
            end: args.end,
            product_types: args.product_types.as_deref(),
            incremental: args.incremental || section.run.incremental,
            full: args.full,
            lookback: args
                .lookback
                .or(section.run.lookback)
                .unwrap_or(window::DEFAULT_LOOKBACK),
        },
        &stored,
    );
    let plugin_label = format!("{} {}", plugin.name(), plugin.version());
    let run_id = if args.dry_run {
        None
    } else {
        Some(
            catalogue
                .begin_run(&RunStart {
                    synchronizer: section.name.clone(),
                    plugin: plugin_label.clone(),
                    product_types: args.product_types.clone(),
                    window_start: window.start,
                    window_end: window.end,
                    incremental: window.from_watermark,
                    force: args.force,
                    started,
                    pid: std::process::id(),
                    hostname,
                })
                .map_err(|e| {
                    anyhow!(
                        "cannot record the run in the {}: {e}",
                        backend::describe(&config)
                    )
                })?,
        )
    };

    let request = FfiSyncRequest {
        product_types: args
            .product_types
            .as_ref()
            .map(|types| types.iter().map(|t| RString::from(t.as_str())).collect())
            .into(),
        start: window.start.as_ref().map(to_micros).into(),
        end: window.end.as_ref().map(to_micros).into(),
        force: args.force,
    };
    tracing::info!(
        synchronizer = %section.name,
        plugin = plugin.name(),
        product_types = ?args.product_types,
        start = ?window.start.map(|t| t.to_rfc3339()),
        end = ?window.end.map(|t| t.to_rfc3339()),
        force = args.force,
        dry_run = args.dry_run,
        run = ?run_id,
        "starting sync: {}",
        window.reason
    );

    let context = RunContext {
        args,
        config: &config,
        section: &section,
        who,
        plugin: plugin_label,
        window: window.clone(),
        run_id,
        started,
        clock: Instant::now(),
        lock: Mutex::new(run_lock),
    };
    let control = RunControl::new();
    control
        .catch_stop_signals()
        .context("cannot install the SIGINT/SIGTERM handlers")?;
    let rules = RunRules {
        run_id,
        dry_run: args.dry_run,
        fail_fast: args.fail_fast,
        watermark_types: window.watermark_types.clone(),
        ownership: section.ownership.clone(),
        watermark_limit: muninn_sync_model::watermark_limit(
            started,
            Some(
                section
                    .run
                    .future_tolerance
                    .unwrap_or(muninn_sync_model::DEFAULT_FUTURE_TOLERANCE),
            ),
        ),
        max_products: section.run.max_products,
        ..RunRules::default()
    };
    let shared = Shared::new(
        catalogue,
        rules,
        &control,
        Progress::for_terminal(
            args.quiet,
            progress::Window {
                start: window.start,
                end: window.end.unwrap_or(started),
            },
        ),
    );
    let timeout = args
        .timeout
        .or(section.run.timeout)
        .filter(|limit| !limit.is_zero());
    let done = AtomicBool::new(false);
    let (code, error) = std::thread::scope(|scope| {
        scope.spawn(|| watchdog::watch(&context, &shared, &control, &done, timeout));
        let mut handle = shared.handle();
        let synced = synchronizer
            .sync(FfiArchive_TO::from_ptr(&mut handle, TD_Opaque), request)
            .into_result()
            .map_err(|e| e.to_string());
        let mut state = shared.lock();
        done.store(true, Ordering::SeqCst);
        if state.is_finished() {
            // The watchdog is ending the run and the process.
            drop(state);
            loop {
                std::thread::park();
            }
        }
        conclude(&context, &mut state, Ending::Returned(synced))
    });
    match error {
        None => Ok(()),
        Some(message) => Err(RunFailure { code, message }.into()),
    }
}

impl RunContext<'_> {
    /// "synchronizer \"x\" (plugin …)", for messages.
    pub(crate) fn who(&self) -> &str {
        &self.who
    }
}

/// Takes the synchronizer's lock, waiting as `--wait` says.
pub(crate) fn take_lock(
    config: &ArchiveConfig,
    section: &SynchronizerConfig,
    args: &Args,
    hostname: &str,
) -> Result<RunLockGuard> {
    let wait = args.wait.unwrap_or(Wait::No);
    match backend::take_lock(config, &section.name, wait, hostname)? {
        Ok((lock, abandoned)) => {
            if let Some(abandoned) = abandoned {
                tracing::warn!(
                    lock = %abandoned.lock,
                    "the previous run of \"{}\" ({}) ended without releasing its lock (killed?): taking it over",
                    section.name,
                    abandoned.holder
                );
            }
            Ok(lock)
        }
        Err(busy) => {
            let advice = match wait {
                Wait::No => "; wait for it with --wait[=SECONDS]".to_string(),
                Wait::UpTo(limit) => format!(" after waiting {}", format_duration(limit)),
                Wait::Forever => String::new(),
            };
            Err(RunFailure {
                code: exit_code::BUSY,
                message: format!(
                    "synchronizer \"{}\" is already running on archive \"{}\": {} ({}){advice}",
                    section.name,
                    config.path.display(),
                    busy.holder,
                    busy.lock
                ),
            }
            .into())
        }
    }
}

/// Ends a run: the last commit, the run's record, the reports, the lock.
/// Returns the exit code and the error to print, if any.
pub(crate) fn conclude(
    context: &RunContext<'_>,
    state: &mut State<'_>,
    ending: Ending,
) -> (u8, Option<String>) {
    let who = &context.who;
    let finished = state.finish();
    let counts = state.counts();
    let (outcome, code, error) = match (&finished, state.stop().cloned(), ending) {
        (Err(fatal), _, _) => (
            RunOutcome::Failed,
            1,
            Some(format!(
                "{who}: {fatal}; the open batch was rolled back, the {} changes committed before it are kept",
                counts.created + counts.updated + counts.removed
            )),
        ),
        (Ok(()), Some(Stop::Signal(signal)), _) | (Ok(()), _, Ending::Signalled(signal)) => (
            RunOutcome::Interrupted,
            signal_exit_code(signal),
            Some(format!(
                "{who}: interrupted by {}; the changes up to the last batch are committed, run again to go on",
                signal_name(signal)
            )),
        ),
        (Ok(()), _, Ending::TimedOut(idle)) => (
            RunOutcome::TimedOut,
            exit_code::TIMED_OUT,
            Some(format!(
                "{who}: the plugin did nothing for {} (--timeout); the run was ended, the changes up to then are committed",
                format_duration(idle)
            )),
        ),
        (Ok(()), Some(Stop::Limit(why)), _) => (
            RunOutcome::Failed,
            1,
            Some(format!(
                "{who}: stopped: {why}; the changes up to then are committed"
            )),
        ),
        (Ok(()), Some(Stop::FailFast), _) => (
            RunOutcome::Failed,
            1,
            Some(format!(
                "{who}: stopped at the first product that could not be synced (--fail-fast): {}",
                first_failures(state, 1)
            )),
        ),
        (Ok(()), _, Ending::Returned(Err(message))) => {
            (RunOutcome::Failed, 1, Some(format!("{who}: {message}")))
        }
        (Ok(()), _, Ending::Returned(Ok(()))) if counts.failed > 0 => (
            RunOutcome::Failed,
            1,
            Some(format!(
                "{who}: {} product(s) could not be synced and were skipped; the first: {}",
                counts.failed,
                first_failures(state, 3)
            )),
        ),
        (Ok(()), _, Ending::Returned(Ok(()))) => (RunOutcome::Succeeded, 0, None),
    };
    let ended = chrono::Utc::now();
    let catalogue = state.catalogue();
    if let Some(run) = context.run_id {
        if let Err(e) = catalogue.end_run(run, ended, &counts, outcome, error.as_deref()) {
            tracing::error!("cannot record the end of run {run} in the catalogue: {e}");
        }
    }
    let watermarks = catalogue
        .watermarks(&context.section.name)
        .unwrap_or_default();
    let summary = Summary {
        archive: context.args.archive().to_string(),
        synchronizer: context.section.name.clone(),
        plugin: context.plugin.clone(),
        run_id: context.run_id,
        dry_run: context.args.dry_run,
        outcome,
        exit_code: code,
        product_types: context.args.product_types.clone(),
        window_start: context.window.start,
        window_end: context.window.end,
        incremental: context.window.from_watermark,
        started: context.started,
        duration: context.clock.elapsed(),
        counts,
        failures: state.failures().to_vec(),
        would: state.would().clone(),
        error: error.clone(),
        watermarks,
        left_alone: state.left_alone(),
        expected: state.tally().expected(),
        expected_total: state.tally().expected_total(),
    };
    tracing::info!("{}", summary.line());
    if summary.left_alone > 0 {
        tracing::warn!(
            "{} product(s) the plugin asked to remove were left alone: another synchronizer owns them, \
             or nobody does and the section does not say adopt = true (the first are named above; \
             docs/operations.md, \"Who owns a product\")",
            summary.left_alone
        );
    }
    for line in summary.would_lines() {
        tracing::info!("{line}");
    }
    if context.args.report == ReportFormat::Json {
        summary.print_json();
    }
    if let Some(path) = &context.args.metrics_file {
        if context.args.dry_run {
            tracing::info!("dry run: the metrics file is left as it is");
        } else if let Err(e) = write_metrics(context, state.catalogue(), path, &summary.expected) {
            tracing::error!("{e:#}");
        }
    }
    if let Some(lock) = context
        .lock
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        lock.release();
    }
    (code, error)
}

fn first_failures(state: &State<'_>, how_many: usize) -> String {
    state
        .failures()
        .iter()
        .take(how_many)
        .map(|f| format!("{}: {}", f.product, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes the metrics of every synchronizer of the archive, from the run
/// history, so that one file serves them all. What the plugins expected is
/// not in the history: this run's comes from `expected`, the other
/// synchronizers' from the file as their last runs wrote it.
fn write_metrics(
    context: &RunContext<'_>,
    catalogue: &mut (dyn Catalogue + Send),
    path: &Path,
    expected: &std::collections::BTreeMap<String, u64>,
) -> Result<()> {
    let archive = context.config.path.file_stem().map_or_else(
        || context.args.archive().to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    let mut kept = std::fs::read_to_string(path)
        .map(|text| report::expected_in_metrics(&text, &archive))
        .unwrap_or_default();
    kept.insert(context.section.name.clone(), expected.clone());
    let successes = catalogue.last_successes()?;
    let mut watermarks = catalogue.all_watermarks()?;
    let mut synchronizers = std::collections::BTreeMap::new();
    for name in context.config.known_synchronizers() {
        let last_run = catalogue.runs(Some(&name), 1)?.into_iter().next();
        if last_run.is_none() {
            continue;
        }
        synchronizers.insert(
            name.clone(),
            SynchronizerMetrics {
                last_run,
                last_success: successes.get(&name).copied(),
                watermarks: watermarks.remove(&name).unwrap_or_default(),
                expected: kept.remove(&name).unwrap_or_default(),
            },
        );
    }
    report::write_metrics(path, &report::metrics_text(&archive, &synchronizers))?;
    tracing::debug!(metrics = %path.display(), "wrote the metrics");
    Ok(())
}

/// This machine's name, for the lock file and the run history.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
