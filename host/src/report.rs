//! How a run tells what it did: the summary line every run ends with, the
//! same as JSON for scripts (`--report json`), and Prometheus metrics for
//! monitoring (`--metrics-file`).

use crate::archive::{Failure, WouldChange};
use anyhow::{Context, Result};
use muninn_sync_catalogue::{RunCounts, RunOutcome, RunRecord, Watermarks};
use muninn_sync_model::Timestamp;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

/// Everything a run's reports say.
#[derive(Debug, Clone)]
pub struct Summary {
    pub archive: String,
    pub synchronizer: String,
    pub plugin: String,
    /// `None` in a dry run, which records nothing.
    pub run_id: Option<i64>,
    pub dry_run: bool,
    pub outcome: RunOutcome,
    pub exit_code: u8,
    pub product_types: Option<Vec<String>>,
    pub window_start: Option<Timestamp>,
    pub window_end: Option<Timestamp>,
    /// Whether the window started at the watermark.
    pub incremental: bool,
    pub started: Timestamp,
    pub duration: Duration,
    pub counts: RunCounts,
    pub failures: Vec<Failure>,
    pub would: WouldChange,
    pub error: Option<String>,
    /// The synchronizer's watermarks after the run.
    pub watermarks: Watermarks,
    /// Products the plugin asked to remove and the run left alone, because
    /// another synchronizer owns them (or nobody does, without `adopt`).
    pub left_alone: u64,
    /// How many products the plugin expected in the window, per product
    /// type (`expect_products`; only the types it announced).
    pub expected: BTreeMap<String, u64>,
    /// Their sum; `None` when the plugin announced none.
    pub expected_total: Option<u64>,
}

/// How many products of each kind the summary names in a dry run's log;
/// `--report json` lists them all.
const LISTED: usize = 50;

impl Summary {
    fn handled(&self) -> u64 {
        let c = &self.counts;
        c.created + c.updated + c.unchanged + c.removed + c.failed
    }

    /// The one line every run ends with.
    pub fn line(&self) -> String {
        let what = if self.dry_run { "dry run" } else { "sync" };
        let how = match self.outcome {
            RunOutcome::Succeeded => "done",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::TimedOut => "timed out",
            RunOutcome::Running | RunOutcome::Abandoned => "ended",
        };
        let c = &self.counts;
        let seconds = self.duration.as_secs_f64();
        format!(
            "{what} of \"{}\" {how}: {} created, {} updated, {} removed, {} failed, {} unchanged in {seconds:.2} s ({:.0} products/s){}",
            self.synchronizer,
            c.created,
            c.updated,
            c.removed,
            c.failed,
            c.unchanged,
            self.handled() as f64 / seconds.max(1e-9),
            if self.dry_run { "; nothing was written" } else { "" }
        )
    }

    /// A dry run's "would create: A, B, … and 12 more" lines.
    pub fn would_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (verb, names) in [
            ("create", &self.would.create),
            ("update", &self.would.update),
            ("remove", &self.would.remove),
        ] {
            if names.is_empty() {
                continue;
            }
            let mut line = format!(
                "would {verb} {}: {}",
                names.len(),
                names[..names.len().min(LISTED)].join(", ")
            );
            if names.len() > LISTED {
                let _ = write!(
                    line,
                    " and {} more (--report json lists all)",
                    names.len() - LISTED
                );
            }
            lines.push(line);
        }
        lines
    }

    /// The summary as a JSON document.
    pub fn to_json(&self) -> serde_json::Value {
        let time = |t: &Option<Timestamp>| t.map(|t| rfc3339(&t));
        let c = &self.counts;
        let mut document = json!({
            "archive": self.archive,
            "synchronizer": self.synchronizer,
            "plugin": self.plugin,
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "outcome": self.outcome.name(),
            "exit_code": self.exit_code,
            "product_types": self.product_types,
            "window": {
                "start": time(&self.window_start),
                "end": time(&self.window_end),
                "incremental": self.incremental,
            },
            "started": rfc3339(&self.started),
            "duration_seconds": self.duration.as_secs_f64(),
            "products_per_second": self.handled() as f64 / self.duration.as_secs_f64().max(1e-9),
            "counts": {
                "created": c.created,
                "updated": c.updated,
                "unchanged": c.unchanged,
                "removed": c.removed,
                "failed": c.failed,
            },
            "failures": self.failures.iter().map(|f| json!({"product": f.product, "message": f.message})).collect::<Vec<_>>(),
            "error": self.error,
            "left_alone": self.left_alone,
            "expected": {
                "total": self.expected_total,
                "product_types": self.expected,
            },
            "watermarks": self.watermarks.iter().map(|(t, w)| (t.clone(), json!(rfc3339(w)))).collect::<serde_json::Map<_, _>>(),
        });
        if self.dry_run {
            document["would"] = json!({
                "create": self.would.create,
                "update": self.would.update,
                "remove": self.would.remove,
            });
        }
        document
    }

    /// Prints the JSON document on stdout.
    pub fn print_json(&self) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{:#}", self.to_json());
        let _ = stdout.flush();
    }
}

fn rfc3339(time: &Timestamp) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// What the metrics say about one synchronizer.
#[derive(Debug, Clone)]
pub struct SynchronizerMetrics {
    pub last_run: Option<RunRecord>,
    pub last_success: Option<Timestamp>,
    pub watermarks: Watermarks,
    /// What the last run's plugin expected, per product type.
    pub expected: BTreeMap<String, u64>,
}

/// A metric's name, help text, and samples (labels, value).
type Family = (&'static str, &'static str, Vec<(String, String)>);

/// The Prometheus text exposition of an archive's synchronizers.
pub fn metrics_text(
    archive: &str,
    synchronizers: &BTreeMap<String, SynchronizerMetrics>,
) -> String {
    let mut families: Vec<Family> = vec![
        (
            "muninn_sync_last_run_products",
            "Products the synchronizer's last run handled, by result.",
            Vec::new(),
        ),
        (
            "muninn_sync_last_run_duration_seconds",
            "How long the synchronizer's last run took.",
            Vec::new(),
        ),
        (
            "muninn_sync_last_run_success",
            "1 if the synchronizer's last run succeeded, else 0.",
            Vec::new(),
        ),
        (
            "muninn_sync_last_run_outcome",
            "The outcome of the synchronizer's last run (the label with value 1).",
            Vec::new(),
        ),
        (
            "muninn_sync_last_run_timestamp_seconds",
            "When the synchronizer's last run ended, in seconds since the epoch.",
            Vec::new(),
        ),
        (
            "muninn_sync_last_success_timestamp_seconds",
            "When the synchronizer's last successful run ended, in seconds since the epoch.",
            Vec::new(),
        ),
        (
            "muninn_sync_watermark_timestamp_seconds",
            "The remote modification time up to which every change is committed, by product type.",
            Vec::new(),
        ),
        (
            EXPECTED,
            "Products the synchronizer's last run expected in its window (as its plugin announced them), by product type.",
            Vec::new(),
        ),
    ];
    for (name, metrics) in synchronizers {
        let base = format!(
            "archive=\"{}\",synchronizer=\"{}\"",
            escape(archive),
            escape(name)
        );
        if let Some(run) = &metrics.last_run {
            let c = &run.counts;
            for (result, value) in [
                ("created", c.created),
                ("updated", c.updated),
                ("unchanged", c.unchanged),
                ("removed", c.removed),
                ("failed", c.failed),
            ] {
                families[0]
                    .2
                    .push((format!("{base},result=\"{result}\""), value.to_string()));
            }
            if let Some(finished) = run.finished {
                let seconds = (finished - run.start.started)
                    .num_microseconds()
                    .unwrap_or(0) as f64
                    / 1e6;
                families[1].2.push((base.clone(), format!("{seconds}")));
                families[4].2.push((base.clone(), epoch_seconds(&finished)));
            }
            let success = u8::from(run.outcome == RunOutcome::Succeeded);
            families[2].2.push((base.clone(), success.to_string()));
            families[3].2.push((
                format!("{base},outcome=\"{}\"", run.outcome.name()),
                "1".into(),
            ));
        }
        if let Some(time) = &metrics.last_success {
            families[5].2.push((base.clone(), epoch_seconds(time)));
        }
        for (product_type, time) in &metrics.watermarks {
            families[6].2.push((
                format!("{base},product_type=\"{}\"", escape(product_type)),
                epoch_seconds(time),
            ));
        }
        for (product_type, count) in &metrics.expected {
            families[7].2.push((
                format!("{base},product_type=\"{}\"", escape(product_type)),
                count.to_string(),
            ));
        }
    }
    let mut text = String::new();
    for (name, help, samples) in families {
        if samples.is_empty() {
            continue;
        }
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(text, "{name}{{{labels}}} {value}");
        }
    }
    text
}

/// Writes `text` to `path` as node_exporter's textfile collector expects:
/// into a temporary file beside it, then renamed over it, so that a scrape
/// never reads half a file.
pub fn write_metrics(path: &Path, text: &str) -> Result<()> {
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temporary = tempfile::NamedTempFile::new_in(directory).with_context(|| {
        format!(
            "cannot write the metrics file \"{}\": cannot create a temporary file in \"{}\"",
            path.display(),
            directory.display()
        )
    })?;
    temporary
        .write_all(text.as_bytes())
        .and_then(|()| temporary.as_file().sync_all())
        .with_context(|| format!("cannot write the metrics file \"{}\"", path.display()))?;
    // Readable by the collector, which often runs as another user.
    let _ = std::fs::set_permissions(
        temporary.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    );
    temporary
        .persist(path)
        .with_context(|| format!("cannot rename the metrics into \"{}\"", path.display()))?;
    Ok(())
}

/// The metric of what a run expected.
const EXPECTED: &str = "muninn_sync_last_run_expected_products";

/// The expected products of `archive`'s synchronizers as a metrics file
/// holds them (synchronizer -> product type -> count). The run history
/// does not keep them, so a run that rewrites the file keeps the other
/// synchronizers' from there. Lines that cannot be read are passed over.
pub fn expected_in_metrics(text: &str, archive: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut found: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line
            .strip_prefix(EXPECTED)
            .and_then(|r| r.strip_prefix('{'))
        else {
            continue;
        };
        let Some((labels, value)) = read_labels(rest) else {
            continue;
        };
        let Ok(count) = value.trim().parse::<u64>() else {
            continue;
        };
        let label = |name: &str| labels.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        if let (Some(a), Some(synchronizer), Some(product_type)) = (
            label("archive"),
            label("synchronizer"),
            label("product_type"),
        ) {
            if a == archive {
                found
                    .entry(synchronizer.clone())
                    .or_default()
                    .insert(product_type.clone(), count);
            }
        }
    }
    found
}

/// Reads `name="value",...}` (the exposition format's quoting) and what
/// follows the closing brace.
fn read_labels(text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = text;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (at, '"') => break at,
                (_, c) => value.push(c),
            }
        };
        labels.push((name.trim_start_matches(',').to_string(), value));
        rest = &after[end + 1..];
    }
}

fn epoch_seconds(time: &Timestamp) -> String {
    format!("{}", time.timestamp_micros() as f64 / 1e6)
}

/// A label value as the exposition format quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_sync_catalogue::RunStart;
    use muninn_sync_model::parse_timestamp;

    fn time(text: &str) -> Timestamp {
        parse_timestamp(text).unwrap()
    }

    #[test]
    fn metrics_follow_the_exposition_format() {
        let run = RunRecord {
            id: 7,
            start: RunStart {
                synchronizer: "feed".into(),
                plugin: "jsonl 1.0.0".into(),
                product_types: None,
                window_start: None,
                window_end: None,
                incremental: false,
                force: false,
                started: time("2024-05-01T10:00:00Z"),
                pid: 1,
                hostname: "h".into(),
            },
            finished: Some(time("2024-05-01T10:00:02.5Z")),
            counts: RunCounts {
                created: 3,
                ..RunCounts::default()
            },
            outcome: RunOutcome::Succeeded,
            error: None,
        };
        let synchronizers = [(
            "feed".to_string(),
            SynchronizerMetrics {
                last_run: Some(run),
                last_success: Some(time("2024-05-01T10:00:02.5Z")),
                watermarks: [("S2\"X".to_string(), time("2024-04-30T00:00:00Z"))].into(),
                expected: [("S2\"X".to_string(), 200_000)].into(),
            },
        )]
        .into();
        let text = metrics_text("demo", &synchronizers);
        for line in [
            "# TYPE muninn_sync_last_run_products gauge",
            "muninn_sync_last_run_products{archive=\"demo\",synchronizer=\"feed\",result=\"created\"} 3",
            "muninn_sync_last_run_duration_seconds{archive=\"demo\",synchronizer=\"feed\"} 2.5",
            "muninn_sync_last_run_success{archive=\"demo\",synchronizer=\"feed\"} 1",
            "muninn_sync_last_run_outcome{archive=\"demo\",synchronizer=\"feed\",outcome=\"succeeded\"} 1",
            "muninn_sync_last_success_timestamp_seconds{archive=\"demo\",synchronizer=\"feed\"} 1714557602.5",
            "muninn_sync_watermark_timestamp_seconds{archive=\"demo\",synchronizer=\"feed\",product_type=\"S2\\\"X\"} 1714435200",
            "# TYPE muninn_sync_last_run_expected_products gauge",
            "muninn_sync_last_run_expected_products{archive=\"demo\",synchronizer=\"feed\",product_type=\"S2\\\"X\"} 200000",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        // Another run of the archive keeps it, read back from the file.
        assert_eq!(
            expected_in_metrics(&text, "demo"),
            BTreeMap::from([(
                "feed".to_string(),
                BTreeMap::from([("S2\"X".to_string(), 200_000)])
            )])
        );
        assert!(expected_in_metrics(&text, "other").is_empty());
    }

    #[test]
    fn the_metrics_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("muninn.prom");
        write_metrics(&path, "a 1\n").unwrap();
        write_metrics(&path, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
