//! The archive handle the host passes to a plugin's `sync`: it turns the
//! plugin's calls into catalogue changes, commits them in batches together
//! with the run's counts and watermarks, and stops the run when asked to
//! (a signal, `--fail-fast`, a storage failure).

use crate::control::RunControl;
use crate::progress::Progress;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use muninn_sync_catalogue::{
    Catalogue, CatalogueError, Namespaces, RunCounts, ScanQuery, WalkQuery, Watermarks,
};
use muninn_sync_model::{
    from_micros, printable, raise_watermark, to_micros, Claim, Ownership, Timestamp, Uuid,
    WatermarkHold,
};
use muninn_sync_plugin_api::convert::{
    product_from_ffi, product_to_ffi, update_from_ffi, value_to_ffi,
};
use muninn_sync_plugin_api::ffi::{
    FfiArchive, FfiProduct, FfiScan, FfiScanRow, FfiUpdate, FfiUuid, FfiValue, FfiWalk,
};
use muninn_sync_plugin_api::notice::{
    encode_deletions, encode_product_types, encode_property_types, Notice,
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

/// Which product types' watermarks a run may raise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WatermarkTypes {
    /// Any: the run's window reaches back to the beginning.
    #[default]
    All,
    /// Only these, whose watermark lies inside the window; a run that
    /// starts after a type's watermark leaves a gap it must not paper over.
    Only(Vec<String>),
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

/// The archive handle of one run, as the plugin holds it.
pub struct ArchiveHandle<'s, 'c> {
    shared: &'s Shared<'c>,
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
                progress,
            }),
            control,
        }
    }

    /// The handle to pass to the plugin.
    pub fn handle(&self) -> ArchiveHandle<'_, 'c> {
        ArchiveHandle { shared: self }
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
    fn call<T>(
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
            progress.tick(&state.counts);
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

    /// Whether the run's end has been recorded.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The catalogue, for recording the run's end.
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
        if let Some(progress) = self.progress.as_mut() {
            progress.clear();
        }
        if let Some(Stop::Storage(fatal)) = &self.stop {
            let fatal = fatal.clone();
            let _ = self.catalogue.rollback();
            return Err(fatal);
        }
        if self.rules.dry_run {
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
    fn commit_batch(&mut self) -> Result<(), CatalogueError> {
        if self.rules.dry_run {
            self.unclaimed.clear();
            self.catalogue.rollback()?;
            self.watermarks.clear();
            self.pending = 0;
            self.batch_started = None;
            return Ok(());
        }
        self.record_owners()?;
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

    fn raise_watermark(&mut self, product_type: &str, time: Timestamp) {
        if self.held.holds(product_type) {
            return;
        }
        if let Some(limit) = self.rules.watermark_limit.filter(|limit| time > *limit) {
            if self.ahead.insert(product_type.to_string()) {
                tracing::warn!(
                    product_type = %printable(product_type),
                    "watermark not raised to {}: later than this run's start plus future_tolerance ({}); \
                     a remote's time that far ahead would hold every later incremental run back",
                    muninn_sync_model::format_timestamp(&time),
                    muninn_sync_model::format_timestamp(&limit)
                );
            }
            return;
        }
        if let WatermarkTypes::Only(types) = &self.rules.watermark_types {
            if !types.iter().any(|t| t == product_type) {
                return;
            }
        }
        raise_watermark(&mut self.watermarks, product_type, time);
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

    /// "TYPE/NAME" of a stored product, for a dry run's list.
    fn describe_stored(&self, uuid: Uuid) -> Result<Option<String>, CatalogueError> {
        let found = self
            .catalogue
            .products_by_uuid(&[uuid], &Namespaces::Only(Vec::new()))?;
        Ok(found
            .into_iter()
            .next()
            .flatten()
            .map(|p| format!("{}/{}", p.product_type, p.product_name)))
    }
}

/// Where a walk or scan stands, from its ABI form.
fn position(
    after: ROption<muninn_sync_plugin_api::ffi::FfiWalkPosition>,
    what: &str,
) -> Result<Option<(Timestamp, Uuid)>, CatalogueError> {
    after
        .into_option()
        .map(|p| {
            let time =
                from_micros(p.time).ok_or_else(|| bad_request(format!("{what} out of range")))?;
            Ok((time, Uuid::from(p.uuid)))
        })
        .transpose()
}

fn namespaces(names: RSlice<'_, RString>) -> Namespaces {
    Namespaces::from_names(names.as_slice())
}

fn bad_request(message: String) -> CatalogueError {
    CatalogueError::Product(message)
}

fn micros(value: ROption<i64>, what: &str) -> Result<Option<Timestamp>, CatalogueError> {
    value
        .into_option()
        .map(|m| {
            from_micros(m).ok_or_else(|| bad_request(format!("{what} {m} µs is out of range")))
        })
        .transpose()
}

impl FfiArchive for ArchiveHandle<'_, '_> {
    fn find_by_name(
        &self,
        product_type: RStr<'_>,
        product_names: RSlice<'_, RString>,
        names: RSlice<'_, RString>,
    ) -> RResult<RVec<ROption<FfiProduct>>, RString> {
        self.shared.call("look-up by name", |state| {
            let product_names: Vec<&str> = product_names.iter().map(RString::as_str).collect();
            let found = state.catalogue.products_by_name(
                product_type.as_str(),
                &product_names,
                &namespaces(names),
            )?;
            Ok(found
                .iter()
                .map(|p| p.as_ref().map(product_to_ffi).into())
                .collect())
        })
    }

    fn find_by_uuid(
        &self,
        uuids: RSlice<'_, FfiUuid>,
        names: RSlice<'_, RString>,
    ) -> RResult<RVec<ROption<FfiProduct>>, RString> {
        self.shared.call("look-up by uuid", |state| {
            let uuids: Vec<Uuid> = uuids.iter().map(|u| Uuid::from(*u)).collect();
            let found = state
                .catalogue
                .products_by_uuid(&uuids, &namespaces(names))?;
            Ok(found
                .iter()
                .map(|p| p.as_ref().map(product_to_ffi).into())
                .collect())
        })
    }

    fn walk(
        &self,
        walk: &FfiWalk,
        names: RSlice<'_, RString>,
    ) -> RResult<RVec<FfiProduct>, RString> {
        self.shared.call("walk over the catalogue", |state| {
            let after = position(walk.after, "walk position")?;
            let query = WalkQuery {
                product_type: walk.product_type.to_string(),
                property: walk.property.to_string(),
                start: micros(walk.start, "walk start")?,
                end: micros(walk.end, "walk end")?,
                after,
                limit: walk.limit.clamp(1, 10_000) as usize,
            };
            let found = state.catalogue.walk(&query, &namespaces(names))?;
            Ok(found.iter().map(product_to_ffi).collect())
        })
    }

    fn scan(&mut self, scan: &FfiScan) -> RResult<RVec<FfiScanRow>, RString> {
        self.shared.call("scan of a namespace", |state| {
            let after = position(scan.after, "scan position")?;
            let query = ScanQuery {
                namespace: scan.namespace.to_string(),
                order_by: scan.order_by.to_string(),
                properties: scan.properties.iter().map(|p| p.to_string()).collect(),
                start: micros(scan.start, "scan start")?,
                end: micros(scan.end, "scan end")?,
                after,
                limit: scan.limit.clamp(1, 100_000) as usize,
            };
            let rows = state.catalogue.scan(&query)?;
            Ok(rows
                .iter()
                .map(|row| FfiScanRow {
                    uuid: row.uuid.into(),
                    time: to_micros(&row.time),
                    values: row
                        .values
                        .iter()
                        .map(|v| v.as_ref().map_or(FfiValue::Null, value_to_ffi))
                        .collect(),
                })
                .collect())
        })
    }

    fn create(&mut self, product: FfiProduct) -> RResult<(), RString> {
        self.shared.call("create", |state| {
            let product = product_from_ffi(&product)
                .map_err(|e| bad_request(format!("invalid product: {e}")))?;
            state
                .catalogue
                .create(&product)
                .map_err(|e| name_product(e, &product.product_type, &product.product_name))?;
            state.unclaimed.push(product.uuid);
            state.counts.created += 1;
            state.pending += 1;
            if state.rules.dry_run {
                let name = format!("{}/{}", product.product_type, product.product_name);
                state.would.create.push(name);
            }
            Ok(())
        })
    }

    fn update(&mut self, update: FfiUpdate) -> RResult<(), RString> {
        self.shared.call("update", |state| {
            let update = update_from_ffi(&update)
                .map_err(|e| bad_request(format!("invalid update: {e}")))?;
            let described = if state.rules.dry_run {
                state.describe_stored(update.uuid)?
            } else {
                None
            };
            state
                .catalogue
                .update(&update)
                .map_err(|e| name_product(e, "uuid", &update.uuid.simple().to_string()))?;
            // An update takes over a product the section lets it adopt; one
            // that another synchronizer owns stays theirs (both feed it).
            if state.rules.ownership.adopts() {
                state.record_owners()?;
                let owner = state.catalogue.owners(&[update.uuid])?.pop().flatten();
                let ownership = &state.rules.ownership;
                if ownership.claim(owner.as_deref()) == Claim::TakeOver {
                    state
                        .catalogue
                        .claim(&[update.uuid], &ownership.synchronizer)?;
                }
            }
            state.counts.updated += 1;
            state.pending += 1;
            if state.rules.dry_run {
                let name = described.unwrap_or_else(|| update.uuid.simple().to_string());
                state.would.update.push(name);
            }
            Ok(())
        })
    }

    fn remove(&mut self, uuid: FfiUuid) -> RResult<bool, RString> {
        self.shared.call("remove", |state| {
            let uuid = Uuid::from(uuid);
            let Some(described) = state.describe_stored(uuid)? else {
                return Ok(false);
            };
            if !state.may_remove(uuid, &described)? {
                return Ok(false);
            }
            let removed = state.catalogue.remove(uuid)?;
            if removed {
                state.counts.removed += 1;
                state.pending += 1;
                if state.rules.dry_run {
                    state.would.remove.push(described);
                }
            }
            Ok(removed)
        })
    }

    fn notify(&mut self, kind: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
        let notice = match Notice::decode(kind.as_str(), payload.as_str()) {
            Ok(notice) => notice,
            Err(error) => return RResult::RErr(error.to_string().into()),
        };
        match notice {
            Notice::ProductFailed {
                product,
                message,
                product_type,
            } => self.shared.call("report of a failed product", |state| {
                state.record_failure(product, message, product_type.as_deref());
                if state.rules.fail_fast {
                    state.stop_after_commit(Stop::FailFast);
                    return Err(CatalogueError::Product(
                        "the run has stopped: a product failed and --fail-fast is set".into(),
                    ));
                }
                Ok(RString::new())
            }),
            Notice::Unchanged { count } => {
                self.shared.call("report of unchanged products", |state| {
                    state.counts.unchanged += count;
                    Ok(RString::new())
                })
            }
            Notice::Watermark { product_type, time } => self.shared.call("watermark", |state| {
                state.raise_watermark(&product_type, time);
                Ok(RString::new())
            }),
            Notice::Idle => self.shared.call("commit before the plugin waits", |state| {
                state.commit_batch()?;
                Ok(RString::new())
            }),
            Notice::ProductTypes => self.shared.call("list of product types", |state| {
                state.record_owners()?;
                let synchronizer = &state.rules.ownership.synchronizer;
                let summaries = state.catalogue.product_types(synchronizer)?;
                Ok(encode_product_types(&summaries).into())
            }),
            Notice::Deletion(deletion) => self.shared.call("record of a deletion", |state| {
                let synchronizer = state.rules.ownership.synchronizer.clone();
                state.catalogue.record_deletion(&synchronizer, &deletion)?;
                state.pending += 1;
                Ok(RString::new())
            }),
            Notice::PropertyTypes { namespaces } => {
                self.shared.call("look-up of property types", |state| {
                    let types = state.catalogue.property_types(&namespaces)?;
                    Ok(encode_property_types(&types).into())
                })
            }
            Notice::Deletions {
                product_type,
                product_names,
            } => self.shared.call("look-up of deletions", |state| {
                let names: Vec<&str> = product_names.iter().map(String::as_str).collect();
                let synchronizer = &state.rules.ownership.synchronizer;
                let times = state
                    .catalogue
                    .deletions(synchronizer, &product_type, &names)?;
                Ok(encode_deletions(&times).into())
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_sync_catalogue::{RunLog, RunStart, SqliteCatalogue, SqliteOptions};
    use muninn_sync_model::Product;

    fn committed(path: &std::path::Path, sql: &str) -> i64 {
        let reader = rusqlite::Connection::open(path).unwrap();
        reader.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn ffi(name: &str) -> FfiProduct {
        product_to_ffi(&Product::new("T", name))
    }

    fn notify(handle: &mut ArchiveHandle<'_, '_>, kind: &str, payload: &str) -> Result<(), String> {
        handle
            .notify(RStr::from_str(kind), RStr::from_str(payload))
            .into_result()
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn begin(catalogue: &mut SqliteCatalogue) -> i64 {
        catalogue
            .begin_run(&RunStart {
                synchronizer: "s".into(),
                plugin: "test".into(),
                product_types: None,
                window_start: None,
                window_end: None,
                incremental: false,
                force: false,
                started: chrono::Utc::now(),
                pid: 1,
                hostname: "h".into(),
            })
            .unwrap()
    }

    #[test]
    fn idle_commits_so_other_connections_see_the_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
        let control = RunControl::new();
        let shared = Shared::new(&mut catalogue, RunRules::default(), &control, None);
        let mut handle = shared.handle();
        assert!(handle.create(ffi("A")).is_ok());
        assert_eq!(
            committed(&path, "SELECT count(*) FROM core"),
            0,
            "the batch is still open"
        );
        notify(&mut handle, "idle", "{}").unwrap();
        assert_eq!(committed(&path, "SELECT count(*) FROM core"), 1);
        assert_eq!(shared.lock().counts().created, 1);
    }

    #[test]
    fn a_full_batch_commits_with_counts_and_watermarks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
        let run = begin(&mut catalogue);
        let rules = RunRules {
            policy: BatchPolicy {
                max_changes: 2,
                max_age: Duration::from_secs(3600),
            },
            run_id: Some(run),
            ..RunRules::default()
        };
        let control = RunControl::new();
        let shared = Shared::new(&mut catalogue, rules, &control, None);
        let mut handle = shared.handle();
        assert!(handle.create(ffi("A")).is_ok());
        notify(
            &mut handle,
            "watermark",
            r#"{"product_type": "T", "time": "2024-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        notify(&mut handle, "unchanged", r#"{"count": 5}"#).unwrap();
        assert!(handle.create(ffi("B")).is_ok());
        assert_eq!(committed(&path, "SELECT count(*) FROM core"), 2);
        assert_eq!(
            committed(
                &path,
                "SELECT created + 10 * unchanged FROM muninn_sync_runs"
            ),
            52
        );
        assert_eq!(
            committed(&path, "SELECT count(*) FROM muninn_sync_watermarks WHERE watermark = '2024-01-01 00:00:00'"),
            1
        );
        let duplicate = handle.create(ffi("A")).unwrap_err().to_string();
        assert!(
            duplicate.contains("product T/A") && duplicate.contains("already exists"),
            "{duplicate}"
        );
        notify(
            &mut handle,
            "product_failed",
            r#"{"product": "feed.jsonl line 4", "message": "bad"}"#,
        )
        .unwrap();
        // A failed product holds the watermark where it was.
        notify(
            &mut handle,
            "watermark",
            r#"{"product_type": "T", "time": "2025-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert!(notify(&mut handle, "bogus", "{}")
            .unwrap_err()
            .contains("\"bogus\""));
        assert!(handle.create(ffi("C")).is_ok());
        shared.lock().finish().unwrap();
        assert_eq!(committed(&path, "SELECT count(*) FROM core"), 3);
        assert_eq!(
            committed(&path, "SELECT count(*) FROM muninn_sync_watermarks WHERE watermark = '2024-01-01 00:00:00'"),
            1
        );
        let state = shared.lock();
        assert_eq!(state.counts().failed, 1);
        assert_eq!(state.failures()[0].product, "feed.jsonl line 4");
    }

    #[test]
    fn a_dry_run_lists_its_changes_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
        let existing = Product::new("T", "old");
        catalogue.create(&existing).unwrap();
        catalogue.commit().unwrap();
        catalogue.claim(&[existing.uuid], "s").unwrap();
        catalogue.commit().unwrap();
        let rules = RunRules {
            policy: BatchPolicy {
                max_changes: 100,
                max_age: Duration::from_secs(3600),
            },
            dry_run: true,
            ownership: muninn_sync_model::Ownership::new("s"),
            ..RunRules::default()
        };
        let control = RunControl::new();
        let shared = Shared::new(&mut catalogue, rules, &control, None);
        let mut handle = shared.handle();
        assert!(handle.create(ffi("new")).is_ok());
        // The plugin sees its own changes within a batch.
        let found = handle
            .find_by_name(
                RStr::from_str("T"),
                RVec::from(vec![RString::from("new")]).as_rslice(),
                RSlice::EMPTY,
            )
            .unwrap();
        assert!(found[0].is_some());
        assert!(handle.remove(existing.uuid.into()).unwrap());
        // Where a run would commit, the dry run lets go of the write lock:
        // another writer of the archive gets its turn at once.
        notify(&mut handle, "idle", "{}").unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.busy_timeout(Duration::ZERO).unwrap();
        other
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .expect("the dry run holds no write lock between batches");
        shared.lock().finish().unwrap();
        let state = shared.lock();
        assert_eq!(state.would().create, vec!["T/new".to_string()]);
        assert_eq!(state.would().remove, vec!["T/old".to_string()]);
        drop(state);
        assert_eq!(
            committed(
                &path,
                "SELECT count(*) FROM core WHERE product_name = 'old'"
            ),
            1
        );
        assert_eq!(committed(&path, "SELECT count(*) FROM core"), 1);
    }

    #[test]
    fn a_plugin_learns_the_product_types_and_what_it_owns_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
        let mut made_by_muninn = Product::new("S1", "old");
        made_by_muninn.validity_start =
            Some(muninn_sync_model::parse_timestamp("2020-05-01").unwrap());
        catalogue.create(&made_by_muninn).unwrap();
        catalogue.commit().unwrap();
        let rules = RunRules {
            ownership: muninn_sync_model::Ownership::new("s"),
            ..RunRules::default()
        };
        let control = RunControl::new();
        let shared = Shared::new(&mut catalogue, rules, &control, None);
        let mut handle = shared.handle();
        let mut new = Product::new("S1", "new");
        new.validity_start = Some(muninn_sync_model::parse_timestamp("2024-01-01").unwrap());
        assert!(handle.create(product_to_ffi(&new)).is_ok());
        assert!(handle.create(ffi("t")).is_ok());
        let answer = handle
            .notify(RStr::from_str("product_types"), RStr::from_str("{}"))
            .unwrap();
        let types = muninn_sync_plugin_api::notice::decode_product_types(answer.as_str()).unwrap();
        let summary: Vec<String> = types
            .iter()
            .map(|t| {
                format!(
                    "{} {} {} {:?} {:?}",
                    t.product_type,
                    t.count,
                    t.owned,
                    t.validity_start_min.map(|m| m.to_rfc3339()),
                    t.validity_start_max.map(|m| m.to_rfc3339())
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                "S1 2 1 Some(\"2020-05-01T00:00:00+00:00\") Some(\"2024-01-01T00:00:00+00:00\")",
                "T 1 1 None None"
            ]
        );
        // A malformed notice is named, not taken for something else.
        let malformed = notify(&mut handle, "product_failed", "{\"message\": 1}").unwrap_err();
        assert!(
            malformed.starts_with("malformed notification \"product_failed\""),
            "{malformed}"
        );
    }

    #[test]
    fn a_run_past_max_products_stops_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
        let rules = RunRules {
            max_products: Some(2),
            ..RunRules::default()
        };
        let control = RunControl::new();
        let shared = Shared::new(&mut catalogue, rules, &control, None);
        let mut handle = shared.handle();
        assert!(handle.create(ffi("A")).is_ok());
        notify(&mut handle, "unchanged", r#"{"count": 1}"#).unwrap();
        assert!(
            handle.create(ffi("B")).is_ok(),
            "the third product is handed over"
        );
        let refused = handle.create(ffi("C")).unwrap_err().to_string();
        assert!(
            refused.contains(
                "the run has stopped: the run handled more than 2 products (max_products"
            ),
            "{refused}"
        );
        assert_eq!(committed(&path, "SELECT count(*) FROM core"), 2);
        assert!(matches!(shared.lock().stop(), Some(Stop::Limit(_))));
    }

    #[test]
    fn a_signal_commits_the_batch_and_stops_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
        let control = RunControl::new();
        let shared = Shared::new(&mut catalogue, RunRules::default(), &control, None);
        let mut handle = shared.handle();
        assert!(handle.create(ffi("A")).is_ok());
        control.request_stop(15);
        let refused = handle.create(ffi("B")).unwrap_err().to_string();
        assert!(refused.contains("interrupted by SIGTERM"), "{refused}");
        assert_eq!(committed(&path, "SELECT count(*) FROM core"), 1);
        assert_eq!(shared.lock().stop(), Some(&Stop::Signal(15)));
    }

    #[test]
    fn fail_fast_stops_at_the_first_failed_product() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
        let control = RunControl::new();
        let rules = RunRules {
            fail_fast: true,
            ..RunRules::default()
        };
        let shared = Shared::new(&mut catalogue, rules, &control, None);
        let mut handle = shared.handle();
        assert!(handle.create(ffi("A")).is_ok());
        let stopped = notify(
            &mut handle,
            "product_failed",
            r#"{"product": "x", "message": "bad"}"#,
        )
        .unwrap_err();
        assert!(stopped.contains("--fail-fast"), "{stopped}");
        assert!(handle.create(ffi("B")).is_err());
        assert_eq!(committed(&path, "SELECT count(*) FROM core"), 1);
    }
}
