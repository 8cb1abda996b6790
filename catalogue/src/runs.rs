//! The host's own bookkeeping, kept in the catalogue database beside
//! muninn's tables: one record per run, and per (synchronizer, product type)
//! a watermark. Both live in the same database as the products so that a
//! run's progress and watermark commit in the same transaction as the
//! products they describe, and can never run ahead of them.

use crate::Result;
use muninn_sync_model::Timestamp;
use std::collections::BTreeMap;

/// How a run ended, as the run history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Still going, or killed before it could say otherwise (a later run of
    /// the same synchronizer turns it into [`RunOutcome::Abandoned`]).
    Running,
    /// Everything in the window was synced.
    Succeeded,
    /// The plugin or the catalogue failed, or products were skipped.
    Failed,
    /// Stopped by SIGINT or SIGTERM after committing its last batch.
    Interrupted,
    /// The plugin did nothing for longer than `--timeout`.
    TimedOut,
    /// The process died without recording an end (`kill -9`, power loss).
    Abandoned,
}

impl RunOutcome {
    pub fn name(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::TimedOut => "timed_out",
            RunOutcome::Abandoned => "abandoned",
        }
    }

    pub fn from_name(name: &str) -> Option<RunOutcome> {
        [
            RunOutcome::Running,
            RunOutcome::Succeeded,
            RunOutcome::Failed,
            RunOutcome::Interrupted,
            RunOutcome::TimedOut,
            RunOutcome::Abandoned,
        ]
        .into_iter()
        .find(|o| o.name() == name)
    }
}

/// What a run did to the catalogue, product by product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub created: u64,
    pub updated: u64,
    /// Products the plugin found identical to the remote (as it reports them).
    pub unchanged: u64,
    pub removed: u64,
    /// Products skipped because they could not be synced.
    pub failed: u64,
}

/// What is known about a run when it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStart {
    pub synchronizer: String,
    /// The plugin's name and version.
    pub plugin: String,
    /// `None`: every type the synchronizer knows.
    pub product_types: Option<Vec<String>>,
    pub window_start: Option<Timestamp>,
    pub window_end: Option<Timestamp>,
    pub incremental: bool,
    pub force: bool,
    pub started: Timestamp,
    pub pid: u32,
    pub hostname: String,
}

/// One run as the history holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    pub start: RunStart,
    pub finished: Option<Timestamp>,
    pub counts: RunCounts,
    pub outcome: RunOutcome,
    pub error: Option<String>,
}

/// A synchronizer's watermarks: product type -> the newest remote
/// modification time up to which every change is committed.
pub type Watermarks = BTreeMap<String, Timestamp>;

/// The run history and watermarks.
pub trait RunLog {
    /// Records a run as started, in a transaction of its own. Runs of the
    /// same synchronizer still recorded as running are marked abandoned:
    /// the caller holds the synchronizer's lock, so they are dead.
    fn begin_run(&mut self, run: &RunStart) -> Result<i64>;

    /// Writes the run's counts and raises the watermarks given (never lowers
    /// one) inside the open batch, so they commit with its products.
    fn record_progress(
        &mut self,
        run: i64,
        counts: &RunCounts,
        watermarks: &Watermarks,
    ) -> Result<()>;

    /// Records how the run ended, in a transaction of its own: call it after
    /// the last batch is committed or rolled back.
    fn end_run(
        &mut self,
        run: i64,
        finished: Timestamp,
        counts: &RunCounts,
        outcome: RunOutcome,
        error: Option<&str>,
    ) -> Result<()>;

    /// The committed watermarks of a synchronizer (none before its first run).
    fn watermarks(&self, synchronizer: &str) -> Result<Watermarks>;

    /// Every synchronizer's watermarks, by synchronizer.
    fn all_watermarks(&self) -> Result<BTreeMap<String, Watermarks>>;

    /// The newest runs first, of one synchronizer or of all; at most `limit`.
    fn runs(&self, synchronizer: Option<&str>, limit: usize) -> Result<Vec<RunRecord>>;

    /// The end time of each synchronizer's newest succeeded run.
    fn last_successes(&self) -> Result<BTreeMap<String, Timestamp>>;
}
