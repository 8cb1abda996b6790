//! The archive handle the host passes to a plugin's `sync`: it turns the
//! plugin's calls into catalogue changes, commits them in batches, and keeps
//! the run's counts and skipped products.

use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use muninn_sync_catalogue::{Catalogue, CatalogueError, Namespaces, ScanQuery, WalkQuery};
use muninn_sync_model::{from_micros, to_micros, Uuid};
use muninn_sync_plugin_api::convert::{
    product_from_ffi, product_to_ffi, update_from_ffi, value_to_ffi,
};
use muninn_sync_plugin_api::ffi::{
    FfiArchive, FfiProduct, FfiScan, FfiScanRow, FfiUpdate, FfiUuid, FfiValue, FfiWalk,
};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
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

/// What a run did to the catalogue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
    pub failed: u64,
}

/// A product that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub product: String,
    pub message: String,
}

/// How many skipped products a run keeps the messages of.
const KEPT_FAILURES: usize = 10;

/// The archive handle of one run. The ABI's look-ups take `&self`, yet a
/// look-up may start or end a transaction, so the state sits in a cell; the
/// plugin never calls back in while a call is running, so borrows never meet.
pub struct ArchiveHandle<'c> {
    state: RefCell<State<'c>>,
}

struct State<'c> {
    catalogue: &'c mut dyn Catalogue,
    policy: BatchPolicy,
    /// Changes in the open transaction.
    pending: usize,
    /// When the open transaction began; `None` when there is none.
    batch_started: Option<Instant>,
    counts: Counts,
    failures: Vec<Failure>,
    /// Set when the catalogue itself failed: the run is over, and every
    /// further call says so.
    fatal: Option<String>,
}

impl<'c> ArchiveHandle<'c> {
    pub fn new(catalogue: &'c mut dyn Catalogue, policy: BatchPolicy) -> ArchiveHandle<'c> {
        ArchiveHandle {
            state: RefCell::new(State {
                catalogue,
                policy,
                pending: 0,
                batch_started: None,
                counts: Counts::default(),
                failures: Vec::new(),
                fatal: None,
            }),
        }
    }

    /// What the run did so far.
    pub fn counts(&self) -> Counts {
        self.state.borrow().counts
    }

    /// The first skipped products, with their reasons.
    pub fn failures(&self) -> Vec<Failure> {
        self.state.borrow().failures.clone()
    }

    /// Commits what is pending; called at the end of every run, whatever the
    /// plugin returned, as every change in the batch is a complete product.
    pub fn finish(&mut self) -> Result<(), String> {
        let state = self.state.get_mut();
        if let Some(fatal) = state.fatal.clone() {
            let _ = state.catalogue.rollback();
            return Err(fatal);
        }
        state
            .catalogue
            .commit()
            .map_err(|e| format!("cannot commit to the catalogue: {e}"))?;
        state.pending = 0;
        state.batch_started = None;
        Ok(())
    }
}

impl State<'_> {
    fn record_failure(&mut self, product: String, message: String) {
        self.counts.failed += 1;
        tracing::warn!(product = %product, "skipped: {message}");
        if self.failures.len() < KEPT_FAILURES {
            self.failures.push(Failure { product, message });
        }
    }

    /// The answer to every call once the run has stopped.
    fn stopped<T>(&self) -> Option<RResult<T, RString>> {
        self.fatal
            .as_ref()
            .map(|fatal| RResult::RErr(format!("the run has stopped: {fatal}").into()))
    }

    /// Runs one call: refuses it once the run has stopped, catches a panic
    /// in the host, ends the transaction when it is full or old, and turns
    /// the outcome into what the plugin sees. A storage error or a panic
    /// ends the run.
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
        self.fatal = Some(fatal.clone());
        RResult::RErr(fatal.into())
    }

    /// Commits when the batch holds enough changes or has been open long
    /// enough; a run that only reads still ends its transaction now and
    /// then, so other synchronizers of the archive get their turn.
    fn end_batch_when_due(&mut self) -> Result<(), CatalogueError> {
        let age = self.batch_started.map_or(Duration::ZERO, |t| t.elapsed());
        if self.pending >= self.policy.max_changes || age >= self.policy.max_age {
            self.catalogue.commit()?;
            tracing::debug!(changes = self.pending, "committed a batch");
            self.pending = 0;
            self.batch_started = None;
        }
        Ok(())
    }
}

/// Where a walk or scan stands, from its ABI form.
fn position(
    after: ROption<muninn_sync_plugin_api::ffi::FfiWalkPosition>,
    what: &str,
) -> Result<Option<(chrono::DateTime<chrono::Utc>, Uuid)>, CatalogueError> {
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

fn micros(
    value: ROption<i64>,
    what: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, CatalogueError> {
    value
        .into_option()
        .map(|m| {
            from_micros(m).ok_or_else(|| bad_request(format!("{what} {m} µs is out of range")))
        })
        .transpose()
}

impl FfiArchive for ArchiveHandle<'_> {
    fn find_by_name(
        &self,
        product_type: RStr<'_>,
        product_names: RSlice<'_, RString>,
        names: RSlice<'_, RString>,
    ) -> RResult<RVec<ROption<FfiProduct>>, RString> {
        self.state.borrow_mut().call("look-up by name", |state| {
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
        self.state.borrow_mut().call("look-up by uuid", |state| {
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
        self.state
            .borrow_mut()
            .call("walk over the catalogue", |state| {
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
        self.state.get_mut().call("scan of a namespace", |state| {
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
        self.state.get_mut().call("create", |state| {
            let product = product_from_ffi(&product)
                .map_err(|e| bad_request(format!("invalid product: {e}")))?;
            state
                .catalogue
                .create(&product)
                .map_err(|e| name_product(e, &product.product_type, &product.product_name))?;
            state.counts.created += 1;
            state.pending += 1;
            Ok(())
        })
    }

    fn update(&mut self, update: FfiUpdate) -> RResult<(), RString> {
        self.state.get_mut().call("update", |state| {
            let update = update_from_ffi(&update)
                .map_err(|e| bad_request(format!("invalid update: {e}")))?;
            state
                .catalogue
                .update(&update)
                .map_err(|e| name_product(e, "uuid", &update.uuid.simple().to_string()))?;
            state.counts.updated += 1;
            state.pending += 1;
            Ok(())
        })
    }

    fn remove(&mut self, uuid: FfiUuid) -> RResult<bool, RString> {
        self.state.get_mut().call("remove", |state| {
            let removed = state.catalogue.remove(Uuid::from(uuid))?;
            if removed {
                state.counts.removed += 1;
                state.pending += 1;
            }
            Ok(removed)
        })
    }

    fn notify(&mut self, kind: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
        let state = self.state.get_mut();
        if let Some(stopped) = state.stopped() {
            return stopped;
        }
        match kind.as_str() {
            "product_failed" => {
                let payload: serde_json::Value =
                    serde_json::from_str(payload.as_str()).unwrap_or_default();
                let text = |key: &str| {
                    payload
                        .get(key)
                        .and_then(|v| v.as_str())
                        .unwrap_or("?")
                        .to_string()
                };
                state.record_failure(text("product"), text("message"));
                RResult::ROk(RString::new())
            }
            "idle" => state.call("commit before the plugin waits", |state| {
                state.catalogue.commit()?;
                state.pending = 0;
                state.batch_started = None;
                Ok(RString::new())
            }),
            other => RResult::RErr(
                format!("this muninn-sync does not know the notification \"{other}\"").into(),
            ),
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
    use muninn_sync_catalogue::{SqliteCatalogue, SqliteOptions};
    use muninn_sync_model::Product;

    fn committed_products(path: &std::path::Path) -> i64 {
        let reader = rusqlite::Connection::open(path).unwrap();
        reader
            .query_row("SELECT count(*) FROM core", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn idle_commits_so_other_connections_see_the_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
        let mut handle = ArchiveHandle::new(&mut catalogue, BatchPolicy::default());
        let product = muninn_sync_plugin_api::convert::product_to_ffi(&Product::new("T", "A"));
        assert!(handle.create(product).is_ok());
        assert_eq!(committed_products(&path), 0, "the batch is still open");
        assert!(handle
            .notify(RStr::from_str("idle"), RStr::from_str("{}"))
            .is_ok());
        assert_eq!(committed_products(&path), 1);
        assert_eq!(handle.counts().created, 1);
    }

    #[test]
    fn a_full_batch_is_committed_and_failures_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
        let policy = BatchPolicy {
            max_changes: 2,
            max_age: Duration::from_secs(3600),
        };
        let mut handle = ArchiveHandle::new(&mut catalogue, policy);
        for name in ["A", "B", "C"] {
            let product = muninn_sync_plugin_api::convert::product_to_ffi(&Product::new("T", name));
            assert!(handle.create(product).is_ok());
        }
        assert_eq!(committed_products(&path), 2);
        let duplicate = muninn_sync_plugin_api::convert::product_to_ffi(&Product::new("T", "A"));
        let message = handle.create(duplicate).unwrap_err().to_string();
        assert!(
            message.contains("product T/A") && message.contains("already exists"),
            "{message}"
        );
        let payload = r#"{"product": "feed.jsonl line 4", "message": "bad"}"#;
        assert!(handle
            .notify(RStr::from_str("product_failed"), RStr::from_str(payload))
            .is_ok());
        assert!(handle
            .notify(RStr::from_str("bogus"), RStr::from_str("{}"))
            .is_err());
        handle.finish().unwrap();
        assert_eq!(committed_products(&path), 3);
        assert_eq!(handle.counts().failed, 1);
        assert_eq!(handle.failures()[0].product, "feed.jsonl line 4");
    }
}
