//! The operator's commands, which sync nothing: `--list`, `--history`,
//! `--check-plugin`, `--completions` and `--man`. They read the archive's
//! configuration and its catalogue's run history read-only, so they can be
//! run beside a sync at any time.

use crate::backend::{self, History};
use crate::cli::{Args, Mode, ReportFormat};
use crate::config::{self, ArchiveConfig, CONFIG_PATH_VARIABLE};
use crate::loader::{self, Plugin};
use anyhow::{anyhow, bail, Result};
use muninn_sync_catalogue::{RunOutcome, RunRecord, Watermarks};
use muninn_sync_model::{format_timestamp, Timestamp};
use muninn_sync_plugin_api::ffi::ABI_VERSION;
use serde_json::{json, Value as Json};
use std::io::Write;
use std::path::Path;

/// Runs the operator command `args` names.
pub fn run(args: &Args) -> Result<()> {
    match args.mode() {
        Mode::List { archive } => list(archive, args.report),
        Mode::History {
            archive,
            synchronizer,
            runs,
        } => history(archive, synchronizer, runs, args.report),
        Mode::CheckPlugin { plugin } => check_plugin(plugin, args.report),
        Mode::Adopt { .. } => crate::adopt::run(args),
        Mode::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Args::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "muninn-sync", &mut script);
            emit(&String::from_utf8_lossy(&script))
        }
        Mode::Man => {
            let mut page = Vec::new();
            print_man_page(&mut page)?;
            emit(&String::from_utf8_lossy(&page))
        }
        Mode::Sync { .. } => Err(anyhow!(
            "muninn-sync internal error: a sync reached the operator commands"
        )),
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Writes the manual page, generated from the command line's definition.
pub fn print_man_page(out: &mut dyn Write) -> Result<()> {
    use clap::CommandFactory;
    let mut buffer = Vec::new();
    clap_mangen::Man::new(Args::command()).render(&mut buffer)?;
    out.write_all(&buffer)?;
    Ok(())
}

/// The archive's configuration and run history.
struct Opened {
    config: ArchiveConfig,
    history: Option<History>,
}

fn open(archive: &str) -> Result<Opened> {
    let search_path = std::env::var(CONFIG_PATH_VARIABLE).ok();
    let path = config::locate(archive, search_path.as_deref())?;
    let config = ArchiveConfig::read(&path)?;
    let history = History::open(&config)?;
    Ok(Opened { config, history })
}

/// The catalogue as `--list` names it: the database file's absolute
/// path, or the PostgreSQL server and database (never a password).
fn catalogue_json(config: &ArchiveConfig) -> Json {
    match &config.database {
        crate::config::Database::Sqlite => {
            json!(std::path::absolute(&config.sqlite.path)
                .unwrap_or_else(|_| config.sqlite.path.clone()))
        }
        crate::config::Database::Postgresql(options) => {
            json!(format!(
                "postgresql {}",
                muninn_sync_catalogue::describe_postgres(options)
            ))
        }
    }
}

/// What the run history says of one synchronizer.
struct Known {
    watermarks: Watermarks,
    /// Newest first.
    runs: Vec<RunRecord>,
}

/// Runs looked at to find each product type's last run.
const RUNS_FOR_LIST: usize = 500;

fn known(history: Option<&History>, synchronizer: &str) -> Result<Known> {
    let Some(history) = history else {
        return Ok(Known {
            watermarks: Watermarks::new(),
            runs: Vec::new(),
        });
    };
    Ok(Known {
        watermarks: history
            .all_watermarks()?
            .remove(synchronizer)
            .unwrap_or_default(),
        runs: history.runs(Some(synchronizer), RUNS_FOR_LIST)?,
    })
}

impl Known {
    /// The product types the history knows: those with a watermark and
    /// those a run named.
    fn product_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.watermarks.keys().cloned().collect();
        for run in &self.runs {
            for product_type in run.start.product_types.iter().flatten() {
                if !types.contains(product_type) {
                    types.push(product_type.clone());
                }
            }
        }
        types.sort();
        types
    }

    /// The newest run that synced `product_type` (named it, or synced every
    /// type).
    fn last_run_of(&self, product_type: &str) -> Option<&RunRecord> {
        self.runs.iter().find(|run| {
            run.start
                .product_types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t == product_type))
        })
    }
}

/// `--list`: every configured synchronizer with its plugin and, per product
/// type, the watermark and the last run. Fails (after printing everything)
/// when a synchronizer's plugin cannot be loaded.
fn list(archive: &str, format: ReportFormat) -> Result<()> {
    let opened = open(archive)?;
    let config = &opened.config;
    let config_dir = config.path.parent().unwrap_or(Path::new("."));
    let mut names = config.known_synchronizers();
    for configured in config.synchronizers.keys() {
        if !names.contains(configured) {
            names.push(configured.clone());
        }
    }
    let (owned, unowned) = match &opened.history {
        Some(history) => history.owned_counts()?,
        None => Default::default(),
    };
    let mut entries = Vec::new();
    let mut broken = Vec::new();
    for name in &names {
        // Runnable: on the list, or muninn-sync's own (a `plugin` key).
        let registered = config.registered.as_ref().is_none_or(|r| r.contains(name))
            || config
                .synchronizers
                .get(name)
                .is_some_and(|section| section.contains_key("plugin"));
        let plugin = config
            .section(name)
            .and_then(|section| {
                let path = loader::resolve(&section.module, config_dir)?;
                loader::load(&path)
            })
            .map_err(|e| format!("{e:#}"));
        // A section the list leaves out cannot be run: its plugin is shown,
        // but does not make --list fail.
        if plugin.is_err() && registered {
            broken.push(name.clone());
        }
        let known = known(opened.history.as_ref(), name)?;
        let mut entry = synchronizer_json(name, registered, &plugin, &known);
        entry["owned_products"] = json!(owned.get(name).copied().unwrap_or(0));
        entries.push(entry);
    }
    let document = json!({
        "archive": archive,
        "config_file": std::path::absolute(&config.path).unwrap_or_else(|_| config.path.clone()),
        "catalogue": catalogue_json(config),
        "catalogue_exists": opened.history.is_some(),
        "unowned_products": unowned,
        "synchronizers": entries,
    });
    match format {
        ReportFormat::Json => emit(&format!("{}\n", serde_json::to_string_pretty(&document)?))?,
        ReportFormat::Text => emit(&list_text(&document))?,
    }
    if !broken.is_empty() {
        bail!(
            "the plugin of {} cannot be loaded (see above)",
            broken
                .iter()
                .map(|n| format!("synchronizer \"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn synchronizer_json(
    name: &str,
    registered: bool,
    plugin: &Result<Plugin, String>,
    known: &Known,
) -> Json {
    let product_types: Vec<Json> = known
        .product_types()
        .iter()
        .map(|product_type| {
            json!({
                "product_type": product_type,
                "watermark": known.watermarks.get(product_type).map(format_timestamp),
                "last_run": known.last_run_of(product_type).map(run_brief),
            })
        })
        .collect();
    json!({
        "name": name,
        "registered": registered,
        "plugin": plugin.as_ref().ok().map(plugin_json),
        "plugin_error": plugin.as_ref().err(),
        "last_run": known.runs.first().map(run_json),
        "product_types": product_types,
    })
}

fn plugin_json(plugin: &Plugin) -> Json {
    json!({
        "file": plugin.path,
        "name": plugin.name(),
        "version": plugin.version(),
        "abi_version": plugin.module.abi_version(),
    })
}

/// A run as `--list` shows it beside a product type.
fn run_brief(run: &RunRecord) -> Json {
    json!({
        "id": run.id,
        "outcome": outcome_text(run),
        "started": format_timestamp(&run.start.started),
        "finished": run.finished.as_ref().map(format_timestamp),
    })
}

/// A run whole, as `--history --report json` and `--list` give it.
fn run_json(run: &RunRecord) -> Json {
    json!({
        "id": run.id,
        "synchronizer": run.start.synchronizer,
        "plugin": run.start.plugin,
        "product_types": run.start.product_types,
        "window_start": run.start.window_start.as_ref().map(format_timestamp),
        "window_end": run.start.window_end.as_ref().map(format_timestamp),
        "incremental": run.start.incremental,
        "force": run.start.force,
        "started": format_timestamp(&run.start.started),
        "finished": run.finished.as_ref().map(format_timestamp),
        "seconds": duration(run),
        "pid": run.start.pid,
        "hostname": run.start.hostname,
        "outcome": outcome_text(run),
        "created": run.counts.created,
        "updated": run.counts.updated,
        "removed": run.counts.removed,
        "failed": run.counts.failed,
        "unchanged": run.counts.unchanged,
        "error": run.error,
    })
}

fn duration(run: &RunRecord) -> Option<f64> {
    run.finished
        .map(|finished| (finished - run.start.started).num_milliseconds() as f64 / 1000.0)
}

/// The outcome, with whether a "running" run's process is still there: a
/// run killed with `kill -9` stays "running" until the next run of its
/// synchronizer marks it abandoned.
fn outcome_text(run: &RunRecord) -> String {
    if run.outcome != RunOutcome::Running {
        return run.outcome.name().to_string();
    }
    if run.start.hostname != crate::run::hostname() {
        return format!("running (pid {} on {})", run.start.pid, run.start.hostname);
    }
    if process_exists(run.start.pid) {
        format!("running (pid {})", run.start.pid)
    } else {
        format!(
            "running, but pid {} is gone: killed (the next run marks it abandoned)",
            run.start.pid
        )
    }
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A time for people: to the second (the JSON forms keep microseconds).
fn seconds(time: &Timestamp) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A time from a JSON form, to the second.
fn seconds_of(value: &Json) -> String {
    match value.as_str().map(muninn_sync_model::parse_timestamp) {
        Some(Ok(time)) => seconds(&time),
        _ => text(value),
    }
}

fn text(value: &Json) -> String {
    match value {
        Json::Null => "-".into(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list_text(document: &Json) -> String {
    let mut out = format!(
        "archive \"{}\": configuration {}\ncatalogue {}{}\n",
        text(&document["archive"]),
        text(&document["config_file"]),
        text(&document["catalogue"]),
        if document["catalogue_exists"] == true {
            ""
        } else {
            " (not created yet: no run so far)"
        }
    );
    let synchronizers = document["synchronizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if document["unowned_products"].as_u64().is_some_and(|n| n > 0) {
        out.push_str(&format!(
            "products nobody owns: {} (made by muninn, another tool, or before muninn-sync recorded owners; \
             no synchronizer removes them until one adopts them: adopt = true, or muninn-sync ARCHIVE SYNCHRONIZER --adopt)\n",
            text(&document["unowned_products"])
        ));
    }
    if synchronizers.is_empty() {
        out.push_str("\nno synchronizers are configured\n");
    }
    for entry in synchronizers {
        out.push_str(&format!("\n{}", text(&entry["name"])));
        if entry["registered"] == false {
            out.push_str("  (not in [archive] synchronizers: cannot be run)");
        }
        out.push('\n');
        match &entry["plugin"] {
            Json::Null => out.push_str(&format!(
                "  plugin:    cannot be loaded: {}\n",
                text(&entry["plugin_error"])
            )),
            plugin => out.push_str(&format!(
                "  plugin:    {} {}, plugin ABI {}, {}\n",
                text(&plugin["name"]),
                text(&plugin["version"]),
                text(&plugin["abi_version"]),
                text(&plugin["file"])
            )),
        }
        out.push_str(&format!(
            "  owns:      {} products\n",
            text(&entry["owned_products"])
        ));
        match &entry["last_run"] {
            Json::Null => out.push_str("  last run:  none\n"),
            run => out.push_str(&format!(
                "  last run:  #{} {}, started {}, {}: {} created, {} updated, {} removed, {} failed, {} unchanged\n",
                text(&run["id"]),
                text(&run["outcome"]),
                seconds_of(&run["started"]),
                match &run["finished"] {
                    Json::Null => "not finished".to_string(),
                    finished => format!("finished {}", seconds_of(finished)),
                },
                text(&run["created"]),
                text(&run["updated"]),
                text(&run["removed"]),
                text(&run["failed"]),
                text(&run["unchanged"]),
            )),
        }
        let types = entry["product_types"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if types.is_empty() {
            continue;
        }
        let rows: Vec<Vec<String>> = types
            .iter()
            .map(|t| {
                let last = &t["last_run"];
                vec![
                    text(&t["product_type"]),
                    text(&t["watermark"]),
                    match last {
                        Json::Null => "-".into(),
                        run => format!(
                            "#{} {} {}",
                            text(&run["id"]),
                            text(&run["outcome"]),
                            seconds_of(&run["started"])
                        ),
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            &["product type", "watermark", "last run"],
            &rows,
            "  ",
        ));
    }
    out
}

/// `--history [N]`: the last N runs, newest first.
fn history(
    archive: &str,
    synchronizer: Option<&str>,
    limit: usize,
    format: ReportFormat,
) -> Result<()> {
    let opened = open(archive)?;
    if let Some(name) = synchronizer {
        if !opened.config.synchronizers.contains_key(name) {
            // Still shown: the history may hold runs of a removed section.
            tracing::warn!(
                "configuration file \"{}\" has no {} section",
                opened.config.path.display(),
                opened.config.section_header(name)
            );
        }
    }
    let runs = match &opened.history {
        Some(history) => history.runs(synchronizer, limit)?,
        None => Vec::new(),
    };
    if format == ReportFormat::Json {
        let runs: Vec<Json> = runs.iter().map(run_json).collect();
        return emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({ "runs": runs }))?
        ));
    }
    if runs.is_empty() {
        return emit(&format!(
            "no runs recorded in the {}\n",
            backend::describe(&opened.config)
        ));
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            vec![
                run.id.to_string(),
                run.start.synchronizer.clone(),
                seconds(&run.start.started),
                duration(run).map_or("-".into(), |s| format!("{s:.1}s")),
                outcome_text(run),
                run.counts.created.to_string(),
                run.counts.updated.to_string(),
                run.counts.removed.to_string(),
                run.counts.failed.to_string(),
                run.counts.unchanged.to_string(),
                window_text(run),
                run.error
                    .as_deref()
                    .map(|e| shorten(e, 100))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    emit(&table(
        &[
            "run",
            "synchronizer",
            "started",
            "took",
            "outcome",
            "created",
            "updated",
            "removed",
            "failed",
            "unchanged",
            "window",
            "error",
        ],
        &rows,
        "",
    ))
}

fn window_text(run: &RunRecord) -> String {
    let side = |t: &Option<Timestamp>| t.as_ref().map_or("..".to_string(), format_timestamp);
    let mut text = match (&run.start.window_start, &run.start.window_end) {
        (None, None) => "all".to_string(),
        (start, end) => format!("[{}, {})", side(start), side(end)),
    };
    if run.start.incremental {
        text.push_str(" incremental");
    }
    if run.start.force {
        text.push_str(" force");
    }
    text
}

fn shorten(text: &str, limit: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= limit {
        return line.to_string();
    }
    let kept: String = line.chars().take(limit).collect();
    format!("{kept}...")
}

/// Columns padded to their widest cell; numbers would read as well
/// left-aligned in these short tables.
fn table(header: &[&str], rows: &[Vec<String>], indent: &str) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = indent.to_string();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `--check-plugin PATH`: loads a plugin file (or finds one by name, as
/// `module` does) and says what it is, or exactly why it cannot be loaded.
fn check_plugin(plugin: &str, format: ReportFormat) -> Result<()> {
    let here = std::env::current_dir()?;
    let found = loader::resolve_check_plugin(plugin, &here).and_then(|path| {
        let loaded = loader::load(&path)?;
        Ok((path, loaded))
    });
    let report = match &found {
        Ok((_, loaded)) => json!({
            "plugin": plugin,
            "loadable": true,
            "file": loaded.path,
            "name": loaded.name(),
            "version": loaded.version(),
            "abi_version": loaded.module.abi_version(),
            "host_abi_version": ABI_VERSION,
        }),
        Err(error) => json!({
            "plugin": plugin,
            "loadable": false,
            "error": format!("{error:#}"),
            "host_abi_version": ABI_VERSION,
        }),
    };
    match (format, &found) {
        (ReportFormat::Json, _) => emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?,
        (ReportFormat::Text, Ok((_, loaded))) => emit(&format!(
            "{}: muninn-sync plugin \"{}\" version {}, plugin ABI version {} (this muninn-sync {} uses ABI version {ABI_VERSION})\n",
            loaded.path.display(),
            loaded.name(),
            loaded.version(),
            loaded.module.abi_version(),
            env!("CARGO_PKG_VERSION"),
        ))?,
        (ReportFormat::Text, Err(_)) => {}
    }
    found
        .map(drop)
        .map_err(|error| error.context(format!("--check-plugin \"{plugin}\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_to_the_widest_cell() {
        let rows = vec![
            vec![
                "S2MSI1C".to_string(),
                "2024-01-05 10:00:00".into(),
                "-".into(),
            ],
            vec!["X".to_string(), "-".into(), "#3 succeeded".into()],
        ];
        assert_eq!(
            table(&["product type", "watermark", "last run"], &rows, "  "),
            "  product type  watermark            last run\n  \
             S2MSI1C       2024-01-05 10:00:00  -\n  \
             X             -                    #3 succeeded\n"
        );
        assert_eq!(shorten("abcdef\nmore", 3), "abc...");
        assert_eq!(shorten("abc", 3), "abc");
    }

    #[test]
    fn the_man_page_comes_from_the_command_line() {
        let mut page = Vec::new();
        print_man_page(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains(".TH muninn-sync 1"), "{page}");
        assert!(page.contains("check\\-plugin"), "{page}");
        // The page in docs/ is this one: regenerate it with
        // `muninn-sync --man > docs/muninn-sync.1` after changing an option.
        let committed = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/muninn-sync.1"),
        )
        .unwrap();
        assert!(
            committed == page,
            "docs/muninn-sync.1 is out of date: run `cargo run -p muninn-sync -- --man > docs/muninn-sync.1`"
        );
    }
}
