//! The batch state of one run: the changes the plugin made since the last
//! commit, the run's counts, watermarks, owners and limits, and when a
//! batch is committed (with the counts and watermarks, in one transaction)
//! or the run stopped.

use crate::control::RunControl;
use crate::progress::{Progress, Tally};
use abi_stable::std_types::{RResult, RString};
use muninn_sync_catalogue::{
    Catalogue, CatalogueError, ChangeKind, Namespaces, RunCounts, Watermarks,
};
use muninn_sync_model::{
    printable, raise_watermark, watermark_verdict, Claim, Deletion, Ownership, Product,
    ProductTypeSummary, Timestamp, Update, Uuid, WatermarkHold, WatermarkTypes, WatermarkVerdict,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How much work goes into one transaction: a crash loses at most this
/// much, and commits stay rare enough not to dominate the run.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub max_changes: usize,
    pub max_age: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy {
            max_changes: 5000,
            max_age: Duration::from_secs(5),
        }
    }
}

/// A product that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub product: String,
    pub message: String,
}

/// How many skipped products a run keeps the messages of.
const KEPT_FAILURES: usize = 10;

/// Why a run stopped before its plugin returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The catalogue failed; the open batch was rolled back.
    Storage(String),
    /// SIGINT or SIGTERM (the signal's number); the batch was committed.
    Signal(i32),
    /// `--fail-fast` and a product failed; the batch was committed.
    FailFast,
    /// The run handled more products than the section's `max_products`;
    /// the batch was committed. The text says so.
    Limit(String),
}

/// How a run treats the catalogue.
#[derive(Debug, Clone, Default)]
pub struct RunRules {
    pub policy: BatchPolicy,
    /// The run's record, whose counts and watermarks each commit updates;
    /// `None` in a dry run.
    pub run_id: Option<i64>,
    /// Write nothing: each batch is rolled back where a real run would
    /// commit it.
    pub dry_run: bool,
    pub fail_fast: bool,
    /// The product types whose watermark this run may raise (see
    /// [`crate::window`]).
    pub watermark_types: WatermarkTypes,
    /// The synchronizer that runs: it owns what it creates, and may remove
    /// only what it owns or its section lets it take over.
    pub ownership: Ownership,
    /// No watermark is raised past this time (the run's start plus the
    /// section's `future_tolerance`); `None`: no limit.
    pub watermark_limit: Option<Timestamp>,
    /// The most products one run may hand over (created, updated,
    /// unchanged, removed or failed): past it the run stops, committed,
    /// so that a remote that never stops listing products cannot keep a
    /// run going for ever. `None`: no limit.
    pub max_products: Option<u64>,
}

/// What a dry run would have done, product by product ("TYPE/NAME").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WouldChange {
    pub create: Vec<String>,
    pub update: Vec<String>,
    pub remove: Vec<String>,
}

/// The state of one run that the plugin's calls and the watchdog share.
pub struct Shared<'c> {
    state: Mutex<State<'c>>,
    control: &'c RunControl,
}

pub struct State<'c> {
    catalogue: &'c mut (dyn Catalogue + Send),
    rules: RunRules,
    /// Changes in the open transaction.
    pending: usize,
    /// When the open transaction began; `None` when there is none.
    batch_started: Option<Instant>,
    counts: RunCounts,
    /// The counts as of the last commit: what a rolled-back batch leaves.
    committed_counts: RunCounts,
    /// Watermarks the plugin reported since the last commit.
    watermarks: Watermarks,
    /// The product types whose watermarks are held since a product of
    /// theirs failed: its change is not committed, so no later watermark
    /// may claim it is.
    held: WatermarkHold,
    /// Products the plugin asked to remove that another synchronizer (or
    /// nobody, without `adopt`) owns, and were left alone.
    left_alone: u64,
    /// The product types whose watermark a time past
    /// [`RunRules::watermark_limit`] did not raise, each reported once.
    ahead: std::collections::BTreeSet<String>,
    /// Products created in the open batch whose owner is not recorded
    /// yet: recorded together, in key order, before anything reads owners
    /// and before the commit (see [`State::record_owners`]).
    unclaimed: Vec<Uuid>,
    failures: Vec<Failure>,
    would: WouldChange,
    stop: Option<Stop>,
    /// Set once the run's end is recorded, by the main thread or the
    /// watchdog: the other one then leaves the catalogue alone.
    finished: bool,
    /// What the run did per product type and expected of each, for the
    /// progress bars, the report and the metrics.
    tally: Tally,
    progress: Option<Progress>,
}

impl<'c> Shared<'c> {
    pub fn new(
        catalogue: &'c mut (dyn Catalogue + Send),
        rules: RunRules,
        control: &'c RunControl,
        progress: Option<Progress>,
    ) -> Shared<'c> {
        Shared {
            state: Mutex::new(State {
                catalogue,
                rules,
                pending: 0,
                batch_started: None,
                counts: RunCounts::default(),
                committed_counts: RunCounts::default(),
                watermarks: Watermarks::new(),
                held: WatermarkHold::default(),
                left_alone: 0,
                ahead: Default::default(),
                unclaimed: Vec::new(),
                failures: Vec::new(),
                would: WouldChange::default(),
                stop: None,
                finished: false,
                tally: Tally::default(),
                progress,
            }),
            control,
        }
    }

    /// The run's state, for the end of the run. A plugin thread that panicked
    /// while holding it cannot have left it half-changed (every change is
    /// made under `catch_unwind`), so a poisoned lock is taken as it is.
    pub fn lock(&self) -> MutexGuard<'_, State<'c>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Like [`Shared::lock`], giving up after `patience`: for the watchdog,
    /// which must not wait forever on a plugin stuck inside a call.
    pub fn try_lock_for(&self, patience: Duration) -> Option<MutexGuard<'_, State<'c>>> {
        let until = Instant::now() + patience;
        loop {
            match self.state.try_lock() {
                Ok(guard) => return Some(guard),
                Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(std::sync::TryLockError::WouldBlock) => return None,
            }
        }
    }

    /// Runs one call of the plugin's: notes the activity for `--timeout`,
    /// and stops the run at a signal, after committing the batch.
    pub(super) fn call<T>(
        &self,
        what: &str,
        work: impl FnOnce(&mut State<'c>) -> Result<T, CatalogueError>,
    ) -> RResult<T, RString> {
        self.control.touch();
        let mut state = self.lock();
        if state.stop.is_none() && !state.finished {
            if let Some(signal) = self.control.signal() {
                state.stop_after_commit(Stop::Signal(signal));
            }
        }
        let result = state.call(what, work);
        let state = &mut *state;
        state.stop_at_the_limit();
        if let Some(progress) = state.progress.as_mut() {
            progress.tick(&state.counts, &state.tally);
        }
        result
    }
}

impl State<'_> {
    /// What the run did so far; once the catalogue failed, what it
    /// committed (the open batch was rolled back).
    pub fn counts(&self) -> RunCounts {
        match self.stop {
            Some(Stop::Storage(_)) => self.committed_counts,
            _ => self.counts,
        }
    }

    /// The first skipped products, with their reasons.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// What a dry run would have changed.
    pub fn would(&self) -> &WouldChange {
        &self.would
    }

    /// Why the run stopped early, if it did.
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// What the run did per product type and expected of each.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Whether the run's end has been recorded.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The catalogue, for the plugin's look-ups and for recording the
    /// run's end.
    pub fn catalogue(&mut self) -> &mut (dyn Catalogue + Send) {
        self.catalogue
    }

    /// Ends the run's last transaction: commits it (a dry run rolls it back)
    /// unless the catalogue failed, and marks the run finished so that
    /// nothing else is written for it. Every change in a batch is a complete
    /// product, so what the plugin handed over before it failed, hung or was
    /// interrupted is kept.
    pub fn finish(&mut self) -> Result<(), String> {
        self.finished = true;
        // Calls that come after the end (a plugin's thread still running,
        // the watchdog's) find no bars to draw.
        if let Some(mut progress) = self.progress.take() {
            progress.finish();
        }
        if let Some(Stop::Storage(fatal)) = &self.stop {
            let fatal = fatal.clone();
            let _ = self.catalogue.rollback();
            return Err(fatal);
        }
        if self.rules.dry_run {
            // What the server would refuse of the last batch counts as
            // failed, as in a real run.
            self.count_refused()
                .map_err(|e| format!("cannot end the dry run's batch: {e}"))?;
            return self
                .catalogue
                .rollback()
                .map_err(|e| format!("cannot end the dry run's transaction: {e}"));
        }
        self.commit_batch().map_err(|e| {
            let _ = self.catalogue.rollback();
            let fatal = format!("cannot commit to the catalogue: {e}");
            self.stop = Some(Stop::Storage(fatal.clone()));
            fatal
        })
    }

    /// How many products the run left alone rather than remove another
    /// synchronizer's (or nobody's) product.
    pub fn left_alone(&self) -> u64 {
        self.left_alone
    }

    fn record_failure(&mut self, product: String, message: String, product_type: Option<&str>) {
        self.counts.failed += 1;
        self.held.hold(product_type);
        tracing::warn!(product = %printable(&product), "skipped: {}", printable(&message));
        if self.failures.len() < KEPT_FAILURES {
            self.failures.push(Failure { product, message });
        }
    }

    /// The answer to every call once the run has stopped.
    fn stopped<T>(&self) -> Option<RResult<T, RString>> {
        let reason = match (&self.stop, self.finished) {
            (Some(Stop::Storage(fatal)), _) => fatal.clone(),
            (Some(Stop::Signal(signal)), _) => {
                format!("interrupted by {}", crate::control::signal_name(*signal))
            }
            (Some(Stop::FailFast), _) => "a product failed and --fail-fast is set".into(),
            (Some(Stop::Limit(why)), _) => why.clone(),
            (None, true) => "the run has ended".into(),
            (None, false) => return None,
        };
        Some(RResult::RErr(
            format!("the run has stopped: {reason}").into(),
        ))
    }

    /// Stops the run for `stop` after committing the batch, unless it has
    /// stopped already.
    pub fn stop_after_commit_if_running(&mut self, stop: Stop) {
        if self.stop.is_none() && !self.finished {
            self.stop_after_commit(stop);
        }
    }

    /// Commits the batch and stops the run; a commit that fails stops it
    /// for that reason instead.
    fn stop_after_commit(&mut self, stop: Stop) {
        if self.rules.dry_run {
            self.stop = Some(stop);
            return;
        }
        match self.commit_batch() {
            Ok(()) => self.stop = Some(stop),
            Err(error) => {
                let _ = self.catalogue.rollback();
                self.stop = Some(Stop::Storage(format!(
                    "catalogue error while committing the last batch: {error}"
                )));
            }
        }
    }

    /// Runs one call: refuses it once the run has stopped, catches a panic
    /// in the host, ends the transaction when it is full or old, and turns
    /// the outcome into what the plugin sees. A storage error or a panic
    /// ends the run, with the open batch rolled back.
    fn call<T>(
        &mut self,
        what: &str,
        work: impl FnOnce(&mut Self) -> Result<T, CatalogueError>,
    ) -> RResult<T, RString> {
        if let Some(stopped) = self.stopped() {
            return stopped;
        }
        self.batch_started.get_or_insert_with(Instant::now);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let value = work(self)?;
            self.end_batch_when_due()?;
            Ok(value)
        }));
        let fatal = match outcome {
            Ok(Ok(value)) => return RResult::ROk(value),
            Ok(Err(CatalogueError::Product(message))) => {
                return RResult::RErr(format!("{what}: {message}").into())
            }
            Ok(Err(CatalogueError::Storage(error))) => {
                format!("catalogue error during {what}: {error:#}")
            }
            Err(_) => format!("muninn-sync internal error (panic) during {what}"),
        };
        let _ = self.catalogue.rollback();
        self.stop = Some(Stop::Storage(fatal.clone()));
        RResult::RErr(fatal.into())
    }

    /// Commits the open batch with the run's counts and the watermarks
    /// reported since the last commit, in one transaction. A dry run rolls
    /// its batch back instead, where a real run would commit: it holds the
    /// write lock no longer than a real batch, so other synchronizers of
    /// the archive are not kept waiting; its plugin sees its own changes
    /// within a batch only.
    pub(super) fn commit_batch(&mut self) -> Result<(), CatalogueError> {
        if !self.rules.dry_run {
            // Before the catalogue's last write of the batch, so that the
            // owner records go with the products they own (a store that
            // holds changes back writes both together); a refused
            // product's record is left out with it.
            self.record_owners()?;
        }
        self.count_refused()?;
        if self.rules.dry_run {
            self.unclaimed.clear();
            self.catalogue.rollback()?;
            self.watermarks.clear();
            self.pending = 0;
            self.batch_started = None;
            return Ok(());
        }
        if let Some(run) = self.rules.run_id {
            self.catalogue
                .record_progress(run, &self.counts, &self.watermarks)?;
        }
        self.catalogue.commit()?;
        self.committed_counts = self.counts;
        tracing::debug!(changes = self.pending, watermarks = ?self.watermarks, "committed a batch");
        self.watermarks.clear();
        self.pending = 0;
        self.batch_started = None;
        Ok(())
    }

    /// Has the catalogue write what it held back, and counts the changes
    /// it refused then (a store on another host writes many changes
    /// together: a duplicate another process made meanwhile shows only
    /// there) as failed rather than created or updated. Their product
    /// types' watermarks are held, and the batch's raised ones dropped:
    /// the next incremental run must see those products again.
    fn count_refused(&mut self) -> Result<(), CatalogueError> {
        let refused = self.catalogue.flush()?;
        if refused.is_empty() {
            return Ok(());
        }
        for change in refused {
            match change.change {
                ChangeKind::Create => {
                    self.counts.created = self.counts.created.saturating_sub(1);
                    self.unclaimed.retain(|uuid| *uuid != change.uuid);
                    self.would.create.retain(|name| *name != change.product);
                }
                ChangeKind::Update => self.counts.updated = self.counts.updated.saturating_sub(1),
            }
            self.record_failure(
                change.product,
                change.message,
                change.product_type.as_deref(),
            );
        }
        let held = &self.held;
        self.watermarks
            .retain(|product_type, _| !held.holds(product_type));
        if self.rules.fail_fast && self.stop.is_none() {
            // The batch still commits (what was written stays); the run
            // stops after it.
            self.stop = Some(Stop::FailFast);
        }
        Ok(())
    }

    /// Commits when the batch holds enough changes or has been open long
    /// enough; a run that only reads still ends its transaction now and
    /// then, so other synchronizers of the archive get their turn.
    fn end_batch_when_due(&mut self) -> Result<(), CatalogueError> {
        let age = self.batch_started.map_or(Duration::ZERO, |t| t.elapsed());
        if self.pending >= self.rules.policy.max_changes || age >= self.rules.policy.max_age {
            self.commit_batch()?;
        }
        Ok(())
    }

    /// Raises a watermark the plugin reported, by the catalogue's rule
    /// ([`watermark_verdict`]), to be committed with the batch; a time past
    /// the run's limit is warned of once per product type.
    pub(super) fn raise_watermark(&mut self, product_type: &str, time: Timestamp) {
        self.tally.saw_time(product_type, time);
        let verdict = watermark_verdict(
            product_type,
            time,
            &self.held,
            self.rules.watermark_limit,
            &self.rules.watermark_types,
        );
        match verdict {
            WatermarkVerdict::Raise => raise_watermark(&mut self.watermarks, product_type, time),
            WatermarkVerdict::PastLimit(limit) => {
                if self.ahead.insert(product_type.to_string()) {
                    tracing::warn!(
                        product_type = %printable(product_type),
                        "watermark not raised to {}: later than this run's start plus future_tolerance ({}); \
                         a remote's time that far ahead would hold every later incremental run back",
                        muninn_sync_model::format_timestamp(&time),
                        muninn_sync_model::format_timestamp(&limit)
                    );
                }
            }
            WatermarkVerdict::Held | WatermarkVerdict::OutsideWindow => {}
        }
    }

    /// Records this synchronizer as the owner of the products the batch
    /// created. One row per product in key order, rather than one as each
    /// is created: rows in uuid order land on neighbouring pages of the
    /// owner table and of core's uuid index (which the foreign key looks
    /// up), where rows in creation order hit a random page each, which
    /// cost a first sync a tenth of its speed.
    fn record_owners(&mut self) -> Result<(), CatalogueError> {
        if self.unclaimed.is_empty() {
            return Ok(());
        }
        self.catalogue
            .claim(&self.unclaimed, &self.rules.ownership.synchronizer)?;
        self.unclaimed.clear();
        Ok(())
    }

    /// Stops the run, committed, once it handled more products than
    /// `max_products` allows.
    fn stop_at_the_limit(&mut self) {
        let Some(max) = self.rules.max_products else {
            return;
        };
        let c = &self.counts;
        let handled = c.created + c.updated + c.unchanged + c.removed + c.failed;
        if handled > max {
            self.stop_after_commit_if_running(Stop::Limit(format!(
                "the run handled more than {max} products (max_products in the synchronizer's section): \
                 a remote that lists that many in one run is taken for one that never stops"
            )));
        }
    }

    /// Whether the plugin may remove the stored product `uuid`: its own, or
    /// one its section lets it take over. Another's is left alone with a
    /// warning naming both (the first few; the end of the run counts all).
    fn may_remove(&mut self, uuid: Uuid, product: &str) -> Result<bool, CatalogueError> {
        self.record_owners()?;
        let owner = self.catalogue.owners(&[uuid])?.pop().flatten();
        let Claim::LeaveAlone(why) = self.rules.ownership.claim(owner.as_deref()) else {
            return Ok(true);
        };
        self.left_alone += 1;
        if self.left_alone <= KEPT_FAILURES as u64 {
            tracing::warn!(
                product = %printable(product),
                "not removed: {why}"
            );
        }
        Ok(false)
    }

    /// "TYPE/NAME" of a stored product, for a dry run's list, and its type.
    fn describe_stored(&self, uuid: Uuid) -> Result<Option<(String, String)>, CatalogueError> {
        let found = self
            .catalogue
            .products_by_uuid(&[uuid], &Namespaces::Only(Vec::new()))?;
        Ok(found.into_iter().next().flatten().map(|p| {
            let described = format!("{}/{}", p.product_type, p.product_name);
            (described, p.product_type)
        }))
    }

    /// Stores a new product, to be claimed for this synchronizer at the
    /// next owner record.
    pub(super) fn create(&mut self, product: &Product) -> Result<(), CatalogueError> {
        self.catalogue
            .create(product)
            .map_err(|e| name_product(e, &product.product_type, &product.product_name))?;
        self.unclaimed.push(product.uuid);
        self.counts.created += 1;
        self.tally.handled(Some(&product.product_type), 1);
        self.pending += 1;
        if self.rules.dry_run {
            let name = format!("{}/{}", product.product_type, product.product_name);
            self.would.create.push(name);
        }
        Ok(())
    }

    /// Changes a stored product, taking it over when the section adopts it.
    pub(super) fn update(&mut self, update: &Update) -> Result<(), CatalogueError> {
        let described = if self.rules.dry_run {
            self.describe_stored(update.uuid)?
                .map(|(described, _)| described)
        } else {
            None
        };
        self.catalogue
            .update(update)
            .map_err(|e| name_product(e, "uuid", &update.uuid.simple().to_string()))?;
        // An update takes over a product the section lets it adopt; one
        // that another synchronizer owns stays theirs (both feed it).
        if self.rules.ownership.adopts() {
            self.record_owners()?;
            let owner = self.catalogue.owners(&[update.uuid])?.pop().flatten();
            let ownership = &self.rules.ownership;
            if ownership.claim(owner.as_deref()) == Claim::TakeOver {
                self.catalogue
                    .claim(&[update.uuid], &ownership.synchronizer)?;
            }
        }
        self.counts.updated += 1;
        self.tally.handled(None, 1);
        self.pending += 1;
        if self.rules.dry_run {
            let name = described.unwrap_or_else(|| update.uuid.simple().to_string());
            self.would.update.push(name);
        }
        Ok(())
    }

    /// Removes a stored product this synchronizer may remove; whether it
    /// did.
    pub(super) fn remove(&mut self, uuid: Uuid) -> Result<bool, CatalogueError> {
        let Some((described, product_type)) = self.describe_stored(uuid)? else {
            return Ok(false);
        };
        if !self.may_remove(uuid, &described)? {
            return Ok(false);
        }
        let removed = self.catalogue.remove(uuid)?;
        if removed {
            self.counts.removed += 1;
            self.tally.handled(Some(&product_type), 1);
            self.pending += 1;
            if self.rules.dry_run {
                self.would.remove.push(described);
            }
        }
        Ok(removed)
    }

    /// Counts a product the plugin could not hand over, and stops the run
    /// with `--fail-fast`.
    pub(super) fn product_failed(
        &mut self,
        product: String,
        message: String,
        product_type: Option<&str>,
    ) -> Result<(), CatalogueError> {
        self.tally.handled(product_type, 1);
        self.record_failure(product, message, product_type);
        if self.rules.fail_fast {
            self.stop_after_commit(Stop::FailFast);
            return Err(CatalogueError::Product(
                "the run has stopped: a product failed and --fail-fast is set".into(),
            ));
        }
        Ok(())
    }

    /// Counts products the plugin found unchanged.
    pub(super) fn unchanged(&mut self, count: u64) {
        self.counts.unchanged += count;
        self.tally.handled(None, count);
    }

    /// Notes that the plugin expects about `count` products of
    /// `product_type` in the window.
    pub(super) fn expect(&mut self, product_type: &str, count: u64) {
        self.tally.expect(product_type, count);
    }

    /// The catalogue's product types, with what this synchronizer owns of
    /// each (the batch's new products included).
    pub(super) fn product_types(&mut self) -> Result<Vec<ProductTypeSummary>, CatalogueError> {
        self.record_owners()?;
        let synchronizer = &self.rules.ownership.synchronizer;
        self.catalogue.product_types(synchronizer)
    }

    /// Records that the remote deleted a product, for this synchronizer.
    pub(super) fn record_deletion(&mut self, deletion: &Deletion) -> Result<(), CatalogueError> {
        let synchronizer = self.rules.ownership.synchronizer.clone();
        self.catalogue.record_deletion(&synchronizer, deletion)?;
        self.pending += 1;
        Ok(())
    }

    /// When this synchronizer recorded these products deleted, if it did.
    pub(super) fn deletions(
        &self,
        product_type: &str,
        product_names: &[&str],
    ) -> Result<Vec<Option<Timestamp>>, CatalogueError> {
        let synchronizer = &self.rules.ownership.synchronizer;
        self.catalogue
            .deletions(synchronizer, product_type, product_names)
    }
}

/// Puts the product's identity in front of a product error.
fn name_product(error: CatalogueError, first: &str, second: &str) -> CatalogueError {
    match error {
        CatalogueError::Product(message) => {
            CatalogueError::Product(format!("product {first}/{second}: {message}"))
        }
        storage => storage,
    }
}
