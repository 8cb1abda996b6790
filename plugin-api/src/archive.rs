//! The archive handle as a plugin author uses it: safe Rust over [`FfiArchive`].

use crate::convert::{product_from_ffi, product_to_ffi, update_to_ffi, value_from_ffi};
use crate::ffi::{FfiArchiveMut, FfiScan, FfiUuid, FfiWalk, FfiWalkPosition};
use crate::notice::{
    decode_deletions, decode_product_types, decode_property_types, Notice, NoticeError,
    PropertyTypes,
};
use crate::SkippedFields;
use abi_stable::std_types::{RResult, RStr, RString, RVec};
use anyhow::{anyhow, Result};
use muninn_sync_model::{
    from_micros, to_micros, Deletion, Product, ProductTypeSummary, Timestamp, Update, Uuid, Value,
    ValueType,
};

/// What [`Archive::apply`] did with a remote product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// The catalogue as a plugin sees it during one `sync`: look-ups, walks and
/// the three changes muninn's synchronizer API allows.
pub struct Archive<'a> {
    ffi: FfiArchiveMut<'a>,
    /// Properties left out of products because their values did not fit
    /// the catalogue's columns (see [`Archive::create_properties`]).
    skipped: SkippedFields,
}

fn host_result<T>(result: RResult<T, RString>) -> Result<T> {
    result.into_result().map_err(|message| anyhow!("{message}"))
}

fn rstrings(names: &[&str]) -> RVec<RString> {
    names.iter().map(|n| RString::from(*n)).collect()
}

impl<'a> Archive<'a> {
    /// Wraps the handle the host passed in.
    pub fn new(ffi: FfiArchiveMut<'a>) -> Archive<'a> {
        Archive {
            ffi,
            skipped: SkippedFields::default(),
        }
    }

    /// The properties this archive left out of products because their
    /// values did not fit the catalogue's columns. The SDK logs their
    /// summary when `sync` returns.
    pub fn skipped(&self) -> &SkippedFields {
        &self.skipped
    }

    /// The product of `product_type` named `product_name`, with the core
    /// properties and the given namespaces (`"*"`: all of them).
    pub fn product_by_name(
        &self,
        product_type: &str,
        product_name: &str,
        namespaces: &[&str],
    ) -> Result<Option<Product>> {
        let found = self.products_by_name(product_type, &[product_name], namespaces)?;
        Ok(found.into_iter().next().flatten())
    }

    /// Like [`Archive::product_by_name`] for many names in one call, which is
    /// cheaper per product; the answers are in the order of `product_names`.
    pub fn products_by_name(
        &self,
        product_type: &str,
        product_names: &[&str],
        namespaces: &[&str],
    ) -> Result<Vec<Option<Product>>> {
        let names = rstrings(product_names);
        let found = host_result(self.ffi.find_by_name(
            RStr::from_str(product_type),
            names.as_rslice(),
            rstrings(namespaces).as_rslice(),
        ))?;
        found
            .into_iter()
            .map(|p| p.into_option().map(|p| read_product(&p)).transpose())
            .collect()
    }

    /// The product with this uuid.
    pub fn product_by_uuid(&self, uuid: Uuid, namespaces: &[&str]) -> Result<Option<Product>> {
        let uuids = [FfiUuid::from(uuid)];
        let found = host_result(
            self.ffi
                .find_by_uuid(uuids.as_slice().into(), rstrings(namespaces).as_rslice()),
        )?;
        found
            .into_iter()
            .next()
            .and_then(|p| p.into_option())
            .map(|p| read_product(&p))
            .transpose()
    }

    /// The catalogue's products of `product_type` whose timestamp `property`
    /// (a core timestamp such as `validity_start`, or `namespace.property`)
    /// lies in `[start, end)`, in the order of that time, fetched a page at a
    /// time so that no more than a page is held. Products without a value
    /// for `property` are not visited.
    pub fn products_in_window<'s>(
        &'s self,
        product_type: &str,
        property: &str,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
        namespaces: &[&str],
    ) -> ProductWalk<'s, 'a> {
        ProductWalk {
            archive: self,
            walk: FfiWalk {
                product_type: product_type.into(),
                property: property.into(),
                start: start.as_ref().map(to_micros).into(),
                end: end.as_ref().map(to_micros).into(),
                after: None.into(),
                limit: 500,
            },
            namespaces: rstrings(namespaces),
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    /// A cursor over the rows of `namespace` whose timestamp property
    /// `order_by` lies in `[start, end)`, in the order of that time (then
    /// uuid), with just the listed `properties`: no core row, no product.
    /// Rows are fetched in pages of up to 10,000 as [`ScanCursor::next_row`]
    /// asks. This is the cheap way to compare a whole window with the
    /// remote: keep a remote version stamp in your namespace and merge,
    /// rather than look each product up. The cursor does not borrow the
    /// archive, so changes can be made between rows.
    pub fn scan_namespace(
        &self,
        namespace: &str,
        order_by: &str,
        properties: &[&str],
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> ScanCursor {
        ScanCursor {
            scan: FfiScan {
                namespace: namespace.into(),
                order_by: order_by.into(),
                properties: rstrings(properties),
                start: start.as_ref().map(to_micros).into(),
                end: end.as_ref().map(to_micros).into(),
                after: None.into(),
                limit: 10_000,
            },
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    /// muninn's `create_properties`: adds a product. The catalogue sets its
    /// `metadata_date`.
    ///
    /// A namespace property takes its type from the first value the
    /// catalogue stored; remotes change a field's type now and then (`"12"`
    /// where `12.5` was, an object where a string was). When the catalogue
    /// refuses the product, the properties whose values cannot be stored in
    /// their columns (or whose names differ from a column's only in case)
    /// are left out, each counted with a warning once per run, and the
    /// product is created without them: a product is not lost for an
    /// informational field.
    pub fn create_properties(&mut self, product: &Product) -> Result<()> {
        let error = match host_result(self.ffi.create(product_to_ffi(product))) {
            Err(error) if !product.namespaces.is_empty() => error,
            done => return done,
        };
        let label = format!("{}/{}", product.product_type, product.product_name);
        let wanted: Vec<String> = product.namespaces.keys().cloned().collect();
        let columns = self.property_types(&wanted)?;
        let mut fitted = product.clone();
        let mut left_out = Vec::new();
        for (namespace, properties) in fitted.namespaces.iter_mut() {
            if let Some(columns) = columns.get(namespace) {
                leave_out_misfits(namespace, properties, columns, |v| Some(v), &mut left_out);
            }
        }
        if left_out.is_empty() {
            return Err(error);
        }
        host_result(self.ffi.create(product_to_ffi(&fitted)))?;
        for (field, why) in left_out {
            self.skipped.skip(&label, &field, why);
        }
        Ok(())
    }

    /// muninn's `update_properties`: changes only the properties named in
    /// `update`; the catalogue sets `metadata_date`. Values that do not fit
    /// their columns are left out as [`Archive::create_properties`] does.
    pub fn update_properties(&mut self, update: &Update) -> Result<()> {
        self.update_fitted(update, true).map(drop)
    }

    /// Writes `update`; after a refusal, again without the values that do
    /// not fit their columns. `false` when leaving those out left nothing
    /// to change and `write_empty` is not set: then nothing was written.
    fn update_fitted(&mut self, update: &Update, write_empty: bool) -> Result<bool> {
        let error = match host_result(self.ffi.update(update_to_ffi(update))) {
            Err(error) if !update.namespaces.is_empty() => error,
            done => return done.map(|()| true),
        };
        let wanted: Vec<String> = update.namespaces.keys().cloned().collect();
        let columns = self.property_types(&wanted)?;
        let mut fitted = update.clone();
        let mut left_out = Vec::new();
        fitted.namespaces.retain(|namespace, change| {
            let (Some(properties), Some(columns)) = (change.as_mut(), columns.get(namespace))
            else {
                return true;
            };
            let had = properties.len();
            leave_out_misfits(
                namespace,
                properties,
                columns,
                Option::as_ref,
                &mut left_out,
            );
            // A namespace whose every change was left out has none left.
            had == 0 || !properties.is_empty()
        });
        if left_out.is_empty() {
            return Err(error);
        }
        let written = !fitted.is_empty() || write_empty;
        if written {
            host_result(self.ffi.update(update_to_ffi(&fitted)))?;
        }
        // Named as the product is known (a misfit is rare: one look-up).
        let label = match self.product_by_uuid(update.uuid, &[]) {
            Ok(Some(product)) => format!("{}/{}", product.product_type, product.product_name),
            _ => format!("uuid {}", update.uuid.simple()),
        };
        for (field, why) in left_out {
            self.skipped.skip(&label, &field, why);
        }
        Ok(written)
    }

    /// The catalogue's columns of these namespaces.
    fn property_types(&mut self, namespaces: &[String]) -> Result<PropertyTypes> {
        let answer = self.send(&Notice::PropertyTypes {
            namespaces: namespaces.to_vec(),
        })?;
        decode_property_types(&answer).map_err(|e| anyhow!("{e}"))
    }

    /// Removes a product and its namespaces, tags and links. `false` when
    /// there was no product with this uuid, or when the host left it alone
    /// because another synchronizer owns it (or nobody does, and this
    /// synchronizer's section does not say `adopt = true`): the host logs a
    /// warning naming both, so a plugin need not check owners itself.
    pub fn remove(&mut self, uuid: Uuid) -> Result<bool> {
        host_result(self.ffi.remove(uuid.into()))
    }

    /// Brings the catalogue in line with a remote product: creates it when
    /// the catalogue has no product of that type and name, updates the
    /// properties that differ otherwise, and writes nothing when nothing
    /// differs; with `force` it writes the product in any case (its
    /// `metadata_date` is set). For a page of products,
    /// [`Archive::apply_all`] looks them up together. `namespaces` are the
    /// namespaces this synchronizer manages besides the product's own: one
    /// the catalogue has and `product` lacks is removed. Namespaces of other
    /// synchronizers or tools that are not listed are left alone.
    pub fn apply(
        &mut self,
        product: &Product,
        force: bool,
        namespaces: &[&str],
    ) -> Result<Outcome> {
        let wanted = crate::apply::managed_and_own(namespaces, std::slice::from_ref(product));
        let existing =
            self.product_by_name(&product.product_type, &product.product_name, &wanted)?;
        self.apply_found(existing, product, force, namespaces)
    }

    /// Writes the changes a plugin computed with [`Update::between`], or,
    /// when there are none, counts the product unchanged ([`Archive::apply`]
    /// does this itself). With `force` the update is written in any case.
    /// A value that does not fit its column is left out (see
    /// [`Archive::create_properties`]); when that leaves no change, the
    /// product is unchanged too, rather than rewritten on every run.
    pub fn apply_update(&mut self, update: &Update, force: bool) -> Result<Outcome> {
        if (update.is_empty() && !force) || !self.update_fitted(update, force)? {
            self.count_unchanged(1)?;
            return Ok(Outcome::Unchanged);
        }
        Ok(Outcome::Updated)
    }

    /// Tells the host that this plugin is about to do slow work (a network
    /// request): the host ends its open transaction, so other writers of the
    /// archive are not kept waiting. Changes made so far are committed.
    pub fn idle(&mut self) -> Result<()> {
        self.send(&Notice::Idle).map(drop)
    }

    /// Tells the host that `count` remote products were found identical to
    /// the catalogue's, for the run's counts ([`Archive::apply`] does this
    /// itself). A plugin that skips unchanged products without a look-up
    /// reports them here, in bulk.
    pub fn count_unchanged(&mut self, count: u64) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        self.optional_notice(&Notice::Unchanged { count })
    }

    /// Tells the host that every remote change to products of
    /// `product_type` modified up to `time` has now been handed to the
    /// archive (created, updated, removed, found unchanged, or reported as
    /// failed). The host commits the highest such time with the batch that
    /// holds those changes, as the synchronizer's watermark, where
    /// incremental runs start. A plugin that visits the remote in order of
    /// modification time calls this as it goes; one that does not calls it
    /// once, at the end, with the newest time it saw.
    pub fn advance_watermark(&mut self, product_type: &str, time: Timestamp) -> Result<()> {
        self.optional_notice(&Notice::Watermark {
            product_type: product_type.to_string(),
            time,
        })
    }

    /// Tells the host that about `count` remote products of `product_type`
    /// lie in this sync call's window (a listing's total, a count the
    /// remote gives), so that its progress shows done / expected, the
    /// percentage and the time left instead of a bare count. It is for
    /// progress (and the run's report) only: nothing is checked against
    /// it. Call it again to correct it; the last count stands. A host
    /// older than this call ignores it.
    ///
    /// ```no_run
    /// # use muninn_sync_plugin_api::{anyhow, Archive};
    /// # fn sync(archive: &mut Archive<'_>, listed: usize) -> anyhow::Result<()> {
    /// archive.expect_products("S2MSI1C", listed as u64)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn expect_products(&mut self, product_type: &str, count: u64) -> Result<()> {
        self.optional_notice(&Notice::Expected {
            product_type: product_type.to_string(),
            count,
        })
    }

    /// The product types the catalogue holds, each with its number of
    /// products, how many of them this synchronizer owns, and the range of
    /// their `validity_start`: what a plugin needs to reconcile the types
    /// that disappeared from its remote (walk each one it owns products of
    /// and the remote no longer lists).
    pub fn product_types(&mut self) -> Result<Vec<ProductTypeSummary>> {
        let answer = self.send(&Notice::ProductTypes)?;
        decode_product_types(&answer).map_err(|e| anyhow!("{e}"))
    }

    /// Remembers that the remote deleted a product (a tombstone with the
    /// time of the deletion), so that a record of it older than that time,
    /// met again when an older window is synced, can be recognised with
    /// [`Archive::deletions`] and not bring the product back. It does not
    /// remove the product: call [`Archive::remove`] for that.
    pub fn record_deletion(&mut self, deletion: &Deletion) -> Result<()> {
        self.send(&Notice::Deletion(deletion.clone())).map(drop)
    }

    /// When this synchronizer recorded the deletion of each of these
    /// products of `product_type` ([`Archive::record_deletion`]), in the
    /// order of `product_names`; `None` for a product never deleted.
    pub fn deletions(
        &mut self,
        product_type: &str,
        product_names: &[&str],
    ) -> Result<Vec<Option<Timestamp>>> {
        if product_names.is_empty() {
            return Ok(Vec::new());
        }
        let answer = self.send(&Notice::Deletions {
            product_type: product_type.to_string(),
            product_names: product_names.iter().map(|n| n.to_string()).collect(),
        })?;
        let times = decode_deletions(&answer).map_err(|e| anyhow!("{e}"))?;
        if times.len() != product_names.len() {
            return Err(anyhow!(
                "the host answered {} deletion times for {} products",
                times.len(),
                product_names.len()
            ));
        }
        Ok(times)
    }

    /// Sends a notice; the host's answer.
    fn send(&mut self, notice: &Notice) -> Result<String> {
        host_result(self.ffi.notify(
            RStr::from_str(notice.kind()),
            RStr::from_str(&notice.payload()),
        ))
        .map(|answer| answer.into_string())
    }

    /// A notification that a host older than the kind may not know: such a
    /// host's refusal is not an error, any other answer is.
    fn optional_notice(&mut self, notice: &Notice) -> Result<()> {
        let unknown = NoticeError::Unknown(notice.kind().to_string()).to_string();
        match self
            .ffi
            .notify(
                RStr::from_str(notice.kind()),
                RStr::from_str(&notice.payload()),
            )
            .into_result()
        {
            Ok(_) => Ok(()),
            Err(message) if message.as_str() == unknown => Ok(()),
            Err(message) => Err(anyhow!("{message}")),
        }
    }

    /// Tells the host that a product was skipped because of `error`. The run
    /// goes on, and the host ends it with an error that names the first
    /// skipped products. Every product type's watermark is held where it
    /// is for the rest of the run: when the product's type is known, use
    /// [`Archive::report_failure_of_type`], which holds only that type's.
    pub fn report_failure(&mut self, product: &str, error: &anyhow::Error) -> Result<()> {
        self.send_failure(None, product, error)
    }

    /// [`Archive::report_failure`] for a product whose type is known: only
    /// the watermark of `product_type` is held back, the other types' go on.
    pub fn report_failure_of_type(
        &mut self,
        product_type: &str,
        product: &str,
        error: &anyhow::Error,
    ) -> Result<()> {
        self.send_failure(Some(product_type), product, error)
    }

    fn send_failure(
        &mut self,
        product_type: Option<&str>,
        product: &str,
        error: &anyhow::Error,
    ) -> Result<()> {
        self.send(&Notice::ProductFailed {
            product: product.to_string(),
            message: format!("{error:#}"),
            product_type: product_type.map(str::to_string),
        })
        .map(drop)
    }
}

/// Follows the times of remote changes handed to the archive in order of
/// time, and says which watermark may be reported: once a later time is
/// reached, every change up to the earlier one has been handed over (more
/// changes with the latest time may still follow).
#[derive(Debug, Clone, Default)]
pub struct WatermarkTracker {
    complete: Option<Timestamp>,
    current: Option<Timestamp>,
    reported: Option<Timestamp>,
}

impl WatermarkTracker {
    /// Notes a change with this time; times must not decrease.
    pub fn saw(&mut self, time: Timestamp) {
        if self.current != Some(time) {
            self.complete = self.current;
            self.current = Some(time);
        }
    }

    /// The watermarks to report now, oldest first: the last time whose
    /// changes are all handed over, and when `finished` the latest one
    /// too. Report each: a host that refuses the latest (a time far in the
    /// future, see `future_tolerance`) still takes the one before.
    pub fn due_times(&mut self, finished: bool) -> Vec<Timestamp> {
        let latest = if finished { self.current } else { None };
        let mut times = Vec::new();
        for time in [self.complete, latest].into_iter().flatten() {
            if self.reported.is_none_or(|reported| time > reported) {
                times.push(time);
                self.reported = Some(time);
            }
        }
        times
    }

    /// The watermark to report now, if it moved since the last one:
    /// `finished` when no more changes follow (then the latest time is
    /// complete too). Call it after the changes seen so far were applied.
    pub fn due(&mut self, finished: bool) -> Option<Timestamp> {
        let done = if finished {
            self.current
        } else {
            self.complete
        };
        let due = done.filter(|d| Some(*d) != self.reported)?;
        self.reported = Some(due);
        Some(due)
    }
}

/// Takes the properties of `namespace` whose values do not fit their
/// `columns` out of `properties` (an update's values are optional: `None`
/// makes a property null and always fits), noting each with the reason.
fn leave_out_misfits<V>(
    namespace: &str,
    properties: &mut std::collections::BTreeMap<String, V>,
    columns: &std::collections::BTreeMap<String, muninn_sync_model::PropertyType>,
    value_of: impl Fn(&V) -> Option<&Value>,
    left_out: &mut Vec<(String, String)>,
) {
    properties.retain(|name, value| {
        let Some(why) = value_of(value).and_then(|value| misfit(columns, name, value)) else {
            return true;
        };
        left_out.push((format!("{namespace}.{name}"), why));
        false
    });
}

/// Why `value` cannot go into the property `name` of a namespace with these
/// columns, as the catalogue's rules say; `None` when it can (or when the
/// column does not exist yet and will take the value's type).
fn misfit(
    columns: &std::collections::BTreeMap<String, muninn_sync_model::PropertyType>,
    name: &str,
    value: &Value,
) -> Option<String> {
    let (column, property) = columns
        .iter()
        .find(|(column, _)| column.eq_ignore_ascii_case(name))?;
    if column != name {
        return Some(format!(
            "spelt differently from the catalogue's column {column} only in case"
        ));
    }
    let stored = property.value_type;
    let fits = value.clone().coerce_to(stored).is_some()
        || (stored == ValueType::Integer
            && value.value_type() == ValueType::Real
            && !property.fixed)
        || (stored == ValueType::Text && value.value_type() == ValueType::Json && property.fixed);
    (!fits).then(|| {
        format!(
            "{} where the catalogue's column is {stored}",
            value.value_type()
        )
    })
}

fn read_product(ffi: &crate::ffi::FfiProduct) -> Result<Product> {
    product_from_ffi(ffi).map_err(|e| anyhow!("the catalogue returned an unreadable product: {e}"))
}

/// An iterator over a window of the catalogue; see [`Archive::products_in_window`].
pub struct ProductWalk<'s, 'a> {
    archive: &'s Archive<'a>,
    walk: FfiWalk,
    namespaces: RVec<RString>,
    page: std::vec::IntoIter<Product>,
    done: bool,
}

impl ProductWalk<'_, '_> {
    fn next_page(&mut self) -> Result<()> {
        let page = host_result(
            self.archive
                .ffi
                .walk(&self.walk, self.namespaces.as_rslice()),
        )?;
        if page.len() < self.walk.limit as usize {
            self.done = true;
        }
        let products = page.iter().map(read_product).collect::<Result<Vec<_>>>()?;
        if let Some(last) = products.last() {
            let time = walk_time(last, self.walk.property.as_str()).ok_or_else(|| {
                anyhow!(
                    "the catalogue returned product {} without a value for {}",
                    last.product_name,
                    self.walk.property
                )
            })?;
            self.walk.after = Some(FfiWalkPosition {
                time: to_micros(&time),
                uuid: last.uuid.into(),
            })
            .into();
        } else {
            self.done = true;
        }
        self.page = products.into_iter();
        Ok(())
    }
}

fn walk_time(product: &Product, property: &str) -> Option<Timestamp> {
    let value = match property.split_once('.') {
        Some((namespace, name)) => product.namespaces.get(namespace)?.get(name)?.clone(),
        None => product.core_value(muninn_sync_model::CoreField::from_name(property)?)?,
    };
    match value {
        Value::Timestamp(t) => Some(t),
        _ => None,
    }
}

impl Iterator for ProductWalk<'_, '_> {
    type Item = Result<Product>;

    fn next(&mut self) -> Option<Result<Product>> {
        loop {
            if let Some(product) = self.page.next() {
                return Some(Ok(product));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.next_page() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

/// One row of [`Archive::scan_namespace`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScanRow {
    pub uuid: Uuid,
    /// The row's `order_by` time.
    pub time: Timestamp,
    /// The requested properties, in order; `None` for null or absent.
    pub values: Vec<Option<Value>>,
}

/// Where a scan of a namespace stands; see [`Archive::scan_namespace`].
pub struct ScanCursor {
    scan: FfiScan,
    page: std::vec::IntoIter<ScanRow>,
    done: bool,
}

impl ScanCursor {
    /// The next row, or `None` at the end of the window.
    pub fn next_row(&mut self, archive: &mut Archive<'_>) -> Result<Option<ScanRow>> {
        loop {
            if let Some(row) = self.page.next() {
                return Ok(Some(row));
            }
            if self.done {
                return Ok(None);
            }
            self.next_page(archive)?;
        }
    }

    fn next_page(&mut self, archive: &mut Archive<'_>) -> Result<()> {
        let page = host_result(archive.ffi.scan(&self.scan))?;
        if page.len() < self.scan.limit as usize {
            self.done = true;
        }
        let mut rows = Vec::with_capacity(page.len());
        for row in page.iter() {
            let values = row
                .values
                .iter()
                .map(value_from_ffi)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| anyhow!("the catalogue returned an unreadable value: {e}"))?;
            rows.push(ScanRow {
                uuid: row.uuid.into(),
                time: timestamp_from_micros(row.time)?,
                values,
            });
        }
        match page.last() {
            Some(last) => {
                self.scan.after = Some(FfiWalkPosition {
                    time: last.time,
                    uuid: last.uuid,
                })
                .into()
            }
            None => self.done = true,
        }
        self.page = rows.into_iter();
        Ok(())
    }
}

/// Converts the ABI's microseconds back, for code that reads raw requests.
pub(crate) fn timestamp_from_micros(micros: i64) -> Result<Timestamp> {
    from_micros(micros).ok_or_else(|| anyhow!("timestamp {micros} µs is out of range"))
}

#[cfg(test)]
mod watermark_tests {
    use super::WatermarkTracker;
    use muninn_sync_model::parse_timestamp;

    #[test]
    fn only_times_whose_changes_are_all_handed_over_are_due() {
        let t = |s: &str| parse_timestamp(s).unwrap();
        let mut tracker = WatermarkTracker::default();
        tracker.saw(t("2024-01-01"));
        assert_eq!(
            tracker.due(false),
            None,
            "more changes at that time may follow"
        );
        tracker.saw(t("2024-01-01"));
        tracker.saw(t("2024-01-02"));
        assert_eq!(tracker.due(false), Some(t("2024-01-01")));
        assert_eq!(tracker.due(false), None, "already reported");
        assert_eq!(tracker.due(true), Some(t("2024-01-02")));
        assert_eq!(tracker.due(true), None);
    }

    #[test]
    fn at_the_end_the_last_complete_time_comes_before_the_latest() {
        let t = |s: &str| parse_timestamp(s).unwrap();
        let mut tracker = WatermarkTracker::default();
        tracker.saw(t("2024-01-01"));
        tracker.saw(t("9999-12-31"));
        assert_eq!(tracker.due_times(true), [t("2024-01-01"), t("9999-12-31")]);
        assert!(tracker.due_times(true).is_empty());
    }
}
