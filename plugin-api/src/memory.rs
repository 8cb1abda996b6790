//! An archive held in memory, for unit tests of a synchronizer: its `sync`
//! runs against the same [`Archive`] muninn-sync hands it, with the
//! catalogue's rules, and no database.
//!
//! Turn the `memory` feature on for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! muninn-sync-plugin-api = { version = "1", features = ["memory"] }
//! ```
//!
//! A complete test: a synchronizer that keeps the products named in its
//! configuration, configured from its section as the archive's
//! configuration file would write it, synced twice.
//!
//! ```
//! use muninn_sync_plugin_api::memory::MemoryArchive;
//! use muninn_sync_plugin_api::{Archive, Context, Product, SyncRequest, Synchronizer};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     product_type: String,
//!     names: Vec<String>,
//! }
//!
//! struct Named(Config);
//!
//! impl Synchronizer for Named {
//!     type Config = Config;
//!
//!     fn new(config: Config, _context: &Context) -> anyhow::Result<Self> {
//!         Ok(Named(config))
//!     }
//!
//!     fn sync(&mut self, archive: &mut Archive<'_>, request: &SyncRequest) -> anyhow::Result<()> {
//!         for name in &self.0.names {
//!             let mut product = Product::new(&self.0.product_type, name);
//!             product.remote_url = Some(format!("https://example.org/{name}"));
//!             archive.apply(&product, request.force, &[])?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! let section = r#"
//!     module = "named"                # muninn-sync's own keys are taken out
//!     product_type = "T"
//!     names = ["a", "b"]
//! "#;
//! let mut archive = MemoryArchive::new();
//! let first = archive.run::<Named>(section, &SyncRequest::default())?;
//! assert_eq!((first.created, first.unchanged), (2, 0), "{first}");
//! assert_eq!(archive.names("T"), ["a", "b"]);
//! let stored = archive.product("T", "a").expect("a is held");
//! assert_eq!(stored.remote_url.as_deref(), Some("https://example.org/a"));
//! assert!(stored.metadata_date.is_some(), "set by the catalogue");
//!
//! // Nothing changed remotely: nothing is written.
//! let again = archive.run::<Named>(section, &SyncRequest::default())?;
//! assert_eq!(again.changes(), 0);
//! assert_eq!(again.unchanged, 2);
//!
//! // A misspelt key is the error muninn-sync would report.
//! let error = archive.run::<Named>("product_typ = \"T\"", &SyncRequest::default()).unwrap_err();
//! assert!(error.to_string().contains("unknown field `product_typ`"), "{error}");
//! # Ok(())
//! # }
//! ```
//!
//! The pieces:
//!
//! - [`MemoryArchive::run`] configures a synchronizer from its section
//!   ([`configure`]) and syncs it; [`MemoryArchive::sync`] syncs one you
//!   made yourself. Both return a [`SyncReport`]: the counts muninn-sync's
//!   summary shows, the skipped products with their messages, the
//!   watermarks the run raised, the products the plugin expected per
//!   product type ([`Archive::expect_products`]), and every notification.
//! - [`MemoryArchive::archive`] is the [`Archive`] itself, for testing a
//!   helper of your own that takes one; [`MemoryArchive::take_report`] then
//!   says what it did.
//! - [`MemoryArchive::insert`] and [`MemoryArchive::set_watermark`] set up
//!   what earlier runs left: `insert` a product nobody owns (as muninn, or
//!   a muninn-sync older than owner records, left it),
//!   [`MemoryArchive::insert_owned`] one that a named synchronizer made;
//!   [`MemoryArchive::product`], [`MemoryArchive::names`],
//!   [`MemoryArchive::products`], [`MemoryArchive::watermarks`],
//!   [`MemoryArchive::owner`] and [`MemoryArchive::deletion`] show what the
//!   archive holds now.
//! - The archive runs as the synchronizer `test` unless
//!   [`MemoryArchive::set_synchronizer`] names another;
//!   [`MemoryArchive::set_adoption`] lets it take over products nobody owns
//!   (`adopt = true`) or other synchronizers' (`adopt_from`).
//!   [`MemoryArchive::run`] sets both from the section.
//!
//! What the archive does as the catalogue does:
//!
//! - `create` refuses an invalid product (the checks of
//!   [`Product::validate`]), a duplicate (`product_type`, `product_name`),
//!   (`archive_path`, `physical_name`) or uuid, and sets `metadata_date`.
//! - `update` changes only what the [`Update`] names, refuses a product that
//!   is not there, the uuid and `metadata_date`, and a change that makes a
//!   duplicate; it sets `metadata_date`.
//! - Ownership follows muninn-sync's rule ([`muninn_sync_model::Ownership`]):
//!   `create` makes the running synchronizer the owner; an `update` by one
//!   whose section lets it adopt the product takes it over; `remove` removes
//!   only the synchronizer's own products and those it may take over, and
//!   leaves any other where it is, answering `false` and noting it, with
//!   muninn-sync's reason, in [`SyncReport::left_alone`].
//! - `remove` says whether it removed a product.
//! - Namespace properties follow the catalogue's own rule
//!   ([`muninn_sync_model::plan_namespace_write`], which every store
//!   calls): a property's first value fixes its type for every product; a
//!   value of another type is refused, except that a whole number in a real
//!   property is widened, and a real in an integer property widens the
//!   property; a value the catalogue cannot store (text with a NUL, a time
//!   outside the years 1 to 9999, a geometry off the globe) is refused.
//!   Names that differ only in case are one property.
//! - Look-ups read core and the namespaces asked for (`"*"`: all); walks and
//!   scans are ordered by their time and then uuid, over `[start, end)`, in
//!   pages, as the catalogue pages them ([`muninn_sync_model::page`]).
//! - Every change of a product is all or nothing: a refused product leaves
//!   nothing behind.
//! - `notify` knows every kind muninn-sync knows
//!   ([`crate::notice::Notice`]), and refuses other kinds as muninn-sync
//!   does. It answers `product_types` (with the running synchronizer's
//!   `owned` counts), `property_types` and `deletions` as muninn-sync does,
//!   and keeps the tombstones `deletion` records (a later time of the same
//!   product wins). Watermarks follow muninn-sync's rules: never lowered,
//!   held once a product of their type failed (every type's after a
//!   failure reported without a type), and, when the window has a start,
//!   raised only for the product types whose stored watermark lies at or
//!   after it.
//!
//! Errors carry muninn-sync's messages (`create: product T/a: a product with
//! this product_type and product_name already exists`), so a test can match
//! on them. What it leaves out: transactions and batches (every change
//! counts at once), `--dry-run`, `--fail-fast` and signals (calls never
//! answer `the run has stopped:`), tags and links, and SpatiaLite (a
//! footprint is held as the geometry it is).
//!
//! A panic in the synchronizer is not caught: the test fails with it, where
//! muninn-sync would report `panicked: ...`.

use crate::archive::Archive;
use crate::convert::{
    bound_from_ffi, position_from_ffi, product_from_ffi, product_to_ffi, update_from_ffi,
    value_to_ffi,
};
use crate::ffi::{
    FfiArchive, FfiArchive_TO, FfiProduct, FfiScan, FfiScanRow, FfiUpdate, FfiUuid, FfiValue,
    FfiWalk,
};
use crate::notice::{
    encode_deletions, encode_product_types, encode_property_types, Notice as PluginNotice,
    PropertyTypes,
};
use crate::plugin::{parse_config, Context, SyncRequest, Synchronizer};
use crate::section::HOST_KEYS;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use anyhow::{anyhow, Result};
use muninn_sync_model::{
    find_column, page, page_size, plan_namespace_write, raise_watermark, scan_order, to_micros,
    truncate_to_micros, walk_time, watermark_limit, watermark_verdict, Claim, ColumnChange,
    NamespaceWrite, Ownership, Product, ProductTypeSummary, PropertyType, Timestamp, Update, Uuid,
    Value, ValueType, WalkTime, WatermarkHold, WatermarkTypes, WatermarkVerdict,
    DEFAULT_FUTURE_TOLERANCE, MAX_SCAN_PAGE, MAX_WALK_PAGE,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A catalogue held in memory, with muninn-sync's rules; see the
/// [module documentation](self).
///
/// Products, namespace property types and watermarks persist from one
/// `sync` to the next, as in a catalogue file; each `sync` gets its own
/// [`SyncReport`].
#[derive(Debug, Default)]
pub struct MemoryArchive {
    products: BTreeMap<Uuid, Product>,
    /// (product_type, product_name) -> uuid.
    names: BTreeMap<(String, String), Uuid>,
    /// Every namespace "table" and the types of its properties ("columns").
    /// None is fixed: the archive makes every column itself.
    schema: BTreeMap<String, BTreeMap<String, PropertyType>>,
    watermarks: BTreeMap<String, Timestamp>,
    /// Who owns which product (the synchronizer that created or took it
    /// over); products without an entry are nobody's.
    owners: BTreeMap<Uuid, String>,
    /// The synchronizer that runs, and whose products it may take over.
    ownership: Ownership,
    /// Tombstones: (product_type, product_name) -> when the remote deleted it.
    deletions: BTreeMap<(String, String), Timestamp>,
    run: RunState,
}

/// What the calls since the last report did.
#[derive(Debug, Default)]
struct RunState {
    report: SyncReport,
    /// The product types whose watermarks are held because a product of
    /// theirs failed.
    held: WatermarkHold,
    /// The product types whose watermarks may be raised.
    watermark_types: WatermarkTypes,
}

/// What one `sync` did, as muninn-sync counts it and more.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
    /// Products the plugin found identical (reported with `unchanged`, which
    /// [`Archive::apply`] sends for each).
    pub unchanged: u64,
    /// Products reported as skipped.
    pub failed: u64,
    /// Every skipped product with its message (muninn-sync shows the first
    /// ten).
    pub failures: Vec<Failure>,
    /// The watermarks the run raised, per product type, as muninn-sync would
    /// commit them.
    pub watermarks: BTreeMap<String, Timestamp>,
    /// How many products the plugin said lie in the window, per product
    /// type ([`Archive::expect_products`]; the last count of a type
    /// stands), as muninn-sync's progress and report take them.
    pub expected: BTreeMap<String, u64>,
    /// Every notification the plugin sent, in order, `idle` included.
    pub notices: Vec<Notice>,
    /// Products the run did not remove because another synchronizer (or
    /// nobody, without `adopt`) owns them, with the reason muninn-sync logs.
    pub left_alone: Vec<(Uuid, String)>,
}

impl SyncReport {
    /// How many products were created, updated or removed.
    pub fn changes(&self) -> u64 {
        self.created + self.updated + self.removed
    }

    /// The notifications of one kind (`idle`, `watermark`, ...).
    pub fn notices_of<'r>(&'r self, kind: &'r str) -> impl Iterator<Item = &'r Notice> + 'r {
        self.notices.iter().filter(move |n| n.kind == kind)
    }
}

impl fmt::Display for SyncReport {
    /// The counts as muninn-sync's summary line writes them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} created, {} updated, {} removed, {} failed, {} unchanged",
            self.created, self.updated, self.removed, self.failed, self.unchanged
        )
    }
}

/// A product the plugin skipped, and why (`Archive::report_failure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub product: String,
    pub message: String,
}

/// One notification: its kind and its JSON payload (`null` when the payload
/// was not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub kind: String,
    pub payload: serde_json::Value,
}

/// Makes a synchronizer from its configuration section, as muninn-sync
/// does: `section` is the section's body in TOML (without its header);
/// the keys muninn-sync reads itself (`module`, `plugin`, `incremental`,
/// `lookback`, `inactivity_timeout`, `adopt`, `adopt_from`) are taken out,
/// the rest is converted to JSON (dates and times as text) and read into
/// the plugin's `Config`, and [`Synchronizer::new`] gets it with `context`.
///
/// For a configuration already in JSON, call
/// [`parse_config`] and `S::new` yourself.
pub fn configure<S: Synchronizer>(section: &str, context: &Context) -> Result<S> {
    let mut table: toml::Table = toml::from_str(section).map_err(|e| {
        anyhow!(
            "the section is not valid TOML: {}",
            e.to_string().trim_end()
        )
    })?;
    for key in HOST_KEYS {
        table.remove(key);
    }
    let json = crate::section::to_json(&table);
    let config = parse_config::<S::Config>(&json.to_string())?;
    S::new(config, context)
}

impl MemoryArchive {
    /// An empty archive.
    pub fn new() -> MemoryArchive {
        MemoryArchive {
            ownership: Ownership::new("test"),
            ..MemoryArchive::default()
        }
    }

    /// Runs as the synchronizer named `synchronizer` (default `test`) from
    /// now on: the owner of what it creates.
    pub fn set_synchronizer(&mut self, synchronizer: &str) {
        self.ownership.synchronizer = synchronizer.to_string();
    }

    /// Lets the synchronizer take over products nobody owns (`adopt =
    /// true`) and those of `from` (`adopt_from`), as its section would.
    /// [`MemoryArchive::run`] sets these from the section itself.
    pub fn set_adoption(&mut self, unowned: bool, from: &[&str]) {
        self.ownership.adopt_unowned = unowned;
        self.ownership.adopt_from = from.iter().map(|s| s.to_string()).collect();
    }

    /// Like [`MemoryArchive::insert`], with `owner` as the synchronizer that
    /// made the product.
    pub fn insert_owned(&mut self, product: Product, owner: &str) -> Result<()> {
        let uuid = product.uuid;
        self.insert(product)?;
        self.owners.insert(uuid, owner.to_string());
        Ok(())
    }

    /// The synchronizer that owns the product with this uuid, if any.
    pub fn owner(&self, uuid: Uuid) -> Option<&str> {
        self.owners.get(&uuid).map(String::as_str)
    }

    /// When the remote deleted a product, as a run recorded it.
    pub fn deletion(&self, product_type: &str, product_name: &str) -> Option<Timestamp> {
        self.deletions
            .get(&(product_type.to_string(), product_name.to_string()))
            .copied()
    }

    /// Adds a product as muninn itself (or another tool) left it: with the
    /// checks of `create`, but not counted in any report, and owned by no
    /// synchronizer.
    pub fn insert(&mut self, product: Product) -> Result<()> {
        // As it would cross from a plugin: times to the microsecond.
        let product = product_from_ffi(&product_to_ffi(&product)).map_err(|e| anyhow!("{e}"))?;
        self.create_product(product).map_err(|e| anyhow!("{e}"))
    }

    /// Sets a product type's watermark, as an earlier run left it.
    pub fn set_watermark(&mut self, product_type: &str, time: Timestamp) {
        self.watermarks
            .insert(product_type.to_string(), truncate_to_micros(time));
    }

    /// The archive handle over this archive, the very type a plugin's `sync`
    /// receives. What is done through it goes into the report that
    /// [`MemoryArchive::take_report`] returns.
    pub fn archive(&mut self) -> Archive<'_> {
        Archive::new(FfiArchive_TO::from_ptr(self, TD_Opaque))
    }

    /// Runs `synchronizer`'s `sync` with `request` against this archive, as
    /// `muninn-sync ARCHIVE SYNCHRONIZER` does, and reports what it did. An
    /// error from `sync` is returned as it is; what the plugin handed over
    /// before it stays (muninn-sync commits it too), and
    /// [`MemoryArchive::take_report`] gives that run's report.
    pub fn sync<S: Synchronizer>(
        &mut self,
        synchronizer: &mut S,
        request: &SyncRequest,
    ) -> Result<SyncReport> {
        // The request crosses as the host sends it (times in microseconds).
        let request = SyncRequest::from_ffi(request.to_ffi())?;
        self.run = RunState {
            watermark_types: WatermarkTypes::for_window(request.start, &self.watermarks),
            ..RunState::default()
        };
        let synced = synchronizer.sync(&mut self.archive(), &request);
        // The run's rules end with it; its report stays until taken.
        self.run.held = WatermarkHold::default();
        self.run.watermark_types = WatermarkTypes::All;
        synced?;
        Ok(self.take_report())
    }

    /// [`configure`]s a synchronizer from its section (TOML, see there) and
    /// [`sync`](MemoryArchive::sync)s it. Relative paths in the section are
    /// taken from the current directory (a crate's own directory under
    /// `cargo test`); for another, use [`configure`] with a [`Context`]
    /// whose `config_file` lies there.
    pub fn run<S: Synchronizer>(
        &mut self,
        section: &str,
        request: &SyncRequest,
    ) -> Result<SyncReport> {
        let context = Context {
            synchronizer: self.ownership.synchronizer.clone(),
            ..Context::default()
        };
        let mut synchronizer = configure::<S>(section, &context)?;
        let mut table: toml::Table = toml::from_str(section)?;
        self.ownership = crate::section::take_ownership(&mut table, &context.synchronizer)
            .map_err(|(key, e)| anyhow!("key \"{key}\": {e}"))?;
        self.sync(&mut synchronizer, request)
    }

    /// What was done since the last `sync` began or the last report was
    /// taken; what follows starts afresh, as a new run.
    pub fn take_report(&mut self) -> SyncReport {
        std::mem::take(&mut self.run).report
    }

    /// The product of this type and name, with every namespace it has.
    pub fn product(&self, product_type: &str, product_name: &str) -> Option<&Product> {
        let uuid = self
            .names
            .get(&(product_type.to_string(), product_name.to_string()))?;
        self.products.get(uuid)
    }

    /// The product with this uuid, with every namespace it has.
    pub fn product_by_uuid(&self, uuid: Uuid) -> Option<&Product> {
        self.products.get(&uuid)
    }

    /// Every product, by product type and name.
    pub fn products(&self) -> Vec<&Product> {
        self.names
            .values()
            .map(|uuid| &self.products[uuid])
            .collect()
    }

    /// The names of the products of one type, in order.
    pub fn names(&self, product_type: &str) -> Vec<&str> {
        self.names
            .keys()
            .filter(|(t, _)| t == product_type)
            .map(|(_, name)| name.as_str())
            .collect()
    }

    /// How many products there are.
    pub fn len(&self) -> usize {
        self.products.len()
    }

    /// Whether it holds no product.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// The watermarks, per product type, as they stand after the runs so far.
    pub fn watermarks(&self) -> &BTreeMap<String, Timestamp> {
        &self.watermarks
    }

    /// The type a namespace property has taken, if any product set it.
    pub fn property_type(&self, namespace: &str, property: &str) -> Option<ValueType> {
        find_column(self.schema.get(namespace)?, property).map(|(_, t)| t.value_type)
    }
}

/// One namespace's values of a product as the catalogue's rule plans
/// them ([`plan_namespace_write`]), not carried out yet.
struct Prepared {
    namespace: String,
    plan: NamespaceWrite,
}

fn now() -> Timestamp {
    truncate_to_micros(Timestamp::from(std::time::SystemTime::now()))
}

impl MemoryArchive {
    /// The catalogue's checks of one namespace's values, changing nothing
    /// yet.
    fn prepare(
        &self,
        namespace: &str,
        properties: &BTreeMap<String, Option<Value>>,
    ) -> Result<Prepared, String> {
        let plan = plan_namespace_write(namespace, self.schema.get(namespace), properties)?;
        Ok(Prepared {
            namespace: namespace.to_string(),
            plan,
        })
    }

    /// Makes the namespace and property type changes `prepared` needs.
    fn apply_schema(&mut self, prepared: &Prepared) {
        let table = self.schema.entry(prepared.namespace.clone()).or_default();
        let mut widened = Vec::new();
        for planned in &prepared.plan.values {
            let value_type = match planned.change {
                None => continue,
                Some(ColumnChange::Add(value_type)) => value_type,
                Some(ColumnChange::Widen(value_type)) => {
                    widened.push(&planned.column);
                    value_type
                }
                // Only a column muninn declared is taken as JSON, and this
                // archive declares none; were one, it is JSON from now on.
                Some(ColumnChange::TakeAsJson) => ValueType::Json,
            };
            let kind = PropertyType {
                value_type,
                fixed: false,
            };
            table.insert(planned.column.clone(), kind);
        }
        // The values stored so far read back in the wider type, as the
        // catalogue's do.
        for column in widened {
            for product in self.products.values_mut() {
                let value = product
                    .namespaces
                    .get_mut(&prepared.namespace)
                    .and_then(|values| values.get_mut(column));
                if let Some(value) = value {
                    if let Value::Integer(i) = *value {
                        *value = Value::Real(i as f64);
                    }
                }
            }
        }
    }

    /// The product other than `uuid` that a product with these core values
    /// would duplicate, as the catalogue's unique constraints see it.
    fn duplicate(&self, product: &Product, except: Option<Uuid>) -> Option<&'static str> {
        let others = || self.products.values().filter(|p| Some(p.uuid) != except);
        let by_name = self
            .names
            .get(&(product.product_type.clone(), product.product_name.clone()));
        if by_name.is_some_and(|uuid| Some(*uuid) != except) {
            return Some("a product with this product_type and product_name already exists");
        }
        if product.archive_path.is_some()
            && others().any(|p| {
                p.archive_path == product.archive_path && p.physical_name == product.physical_name
            })
        {
            return Some("a product with this archive_path and physical_name already exists");
        }
        if except.is_none() && self.products.contains_key(&product.uuid) {
            return Some("a product with this uuid already exists");
        }
        None
    }

    /// The catalogue's `create`.
    fn create_product(&mut self, mut product: Product) -> Result<(), String> {
        let named = |message: String| {
            format!(
                "product {}/{}: {message}",
                product.product_type, product.product_name
            )
        };
        product.validate().map_err(named)?;
        let mut prepared = Vec::with_capacity(product.namespaces.len());
        for (namespace, properties) in &product.namespaces {
            let properties = properties
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            prepared.push(self.prepare(namespace, &properties).map_err(named)?);
        }
        if let Some(duplicate) = self.duplicate(&product, None) {
            return Err(named(duplicate.to_string()));
        }
        product.namespaces.clear();
        for namespace in &prepared {
            self.apply_schema(namespace);
            product.namespaces.insert(
                namespace.namespace.clone(),
                namespace
                    .plan
                    .values
                    .iter()
                    .filter_map(|v| Some((v.column.clone(), v.value.clone()?)))
                    .collect(),
            );
        }
        product.metadata_date = Some(now());
        self.names.insert(
            (product.product_type.clone(), product.product_name.clone()),
            product.uuid,
        );
        self.products.insert(product.uuid, product);
        Ok(())
    }

    /// The catalogue's `update`.
    fn update_product(&mut self, update: &Update) -> Result<(), String> {
        let key = update.uuid.simple().to_string();
        let named = |message: String| format!("product uuid/{key}: {message}");
        update.check_core().map_err(named)?;
        let mut prepared = Vec::new();
        for (namespace, change) in &update.namespaces {
            if let Some(properties) = change {
                prepared.push(self.prepare(namespace, properties).map_err(named)?);
            }
        }
        let Some(existing) = self.products.get(&update.uuid) else {
            return Err(named(format!("no product with uuid {key}")));
        };
        let mut changed = existing.clone();
        for (field, value) in &update.core {
            changed
                .set_core_value(*field, value.clone())
                .map_err(named)?;
        }
        if let Some(duplicate) = self.duplicate(&changed, Some(update.uuid)) {
            return Err(named(duplicate.to_string()));
        }
        let old_name = (existing.product_type.clone(), existing.product_name.clone());
        for namespace in &prepared {
            self.apply_schema(namespace);
        }
        // Read again: a widened property changed the stored values.
        let mut product = self.products[&update.uuid].clone();
        for (field, value) in &update.core {
            product
                .set_core_value(*field, value.clone())
                .map_err(named)?;
        }
        for namespace in &prepared {
            let values = product
                .namespaces
                .entry(namespace.namespace.clone())
                .or_default();
            for planned in &namespace.plan.values {
                match &planned.value {
                    Some(value) => values.insert(planned.column.clone(), value.clone()),
                    None => values.remove(&planned.column),
                };
            }
        }
        for (namespace, change) in &update.namespaces {
            if change.is_none() {
                product.namespaces.remove(namespace);
            }
        }
        product.metadata_date = Some(now());
        self.names.remove(&old_name);
        self.names.insert(
            (product.product_type.clone(), product.product_name.clone()),
            product.uuid,
        );
        self.products.insert(product.uuid, product);
        Ok(())
    }

    /// The namespaces a look-up reads: `*` anywhere means all.
    fn selected(&self, names: &[RString]) -> Option<BTreeSet<String>> {
        if names.iter().any(|n| n.as_str() == "*") {
            None
        } else {
            Some(names.iter().map(|n| n.to_string()).collect())
        }
    }

    /// A product as a look-up returns it: core and the selected namespaces.
    fn read(&self, product: &Product, selected: &Option<BTreeSet<String>>) -> FfiProduct {
        let mut read = product.clone();
        if let Some(selected) = selected {
            read.namespaces.retain(|name, _| selected.contains(name));
        }
        product_to_ffi(&read)
    }

    fn walk_page(&self, walk: &FfiWalk, names: &[RString]) -> Result<RVec<FfiProduct>, String> {
        let after = position_from_ffi(walk.after, "walk position")?;
        let start = bound_from_ffi(walk.start, "walk start")?;
        let end = bound_from_ffi(walk.end, "walk end")?;
        let Some(walked) = walk_time(walk.property.as_str(), |namespace| {
            self.schema.get(namespace)
        })?
        else {
            return Ok(RVec::new()); // no product has that namespace property yet
        };
        let time_of = |product: &Product| -> Option<Timestamp> {
            let value = match walked {
                WalkTime::Core(field) => product.core_value(field),
                WalkTime::Column { namespace, column } => {
                    product.namespaces.get(namespace)?.get(column).cloned()
                }
            };
            match value {
                Some(Value::Timestamp(time)) => Some(time),
                _ => None,
            }
        };
        let found = page(
            self.products
                .values()
                .filter(|p| p.product_type == walk.product_type.as_str())
                .filter_map(|p| Some((time_of(p)?, p.uuid))),
            start.as_ref(),
            end.as_ref(),
            after.as_ref(),
            page_size(walk.limit, MAX_WALK_PAGE),
        );
        let mut selected = self.selected(names);
        if let (Some(selected), WalkTime::Column { namespace, .. }) = (selected.as_mut(), walked) {
            selected.insert(namespace.to_string());
        }
        Ok(found
            .iter()
            .map(|(_, uuid)| self.read(&self.products[uuid], &selected))
            .collect())
    }

    fn scan_page(&self, scan: &FfiScan) -> Result<RVec<FfiScanRow>, String> {
        let after = position_from_ffi(scan.after, "scan position")?;
        let start = bound_from_ffi(scan.start, "scan start")?;
        let end = bound_from_ffi(scan.end, "scan end")?;
        let namespace = scan.namespace.as_str();
        let table = self.schema.get(namespace);
        let Some(order_by) = scan_order(namespace, scan.order_by.as_str(), table)? else {
            return Ok(RVec::new()); // nothing has that namespace property yet
        };
        let columns: Vec<Option<&String>> = scan
            .properties
            .iter()
            .map(|p| find_column(table?, p.as_str()).map(|(c, _)| c))
            .collect();
        let found = page(
            self.products.values().filter_map(|p| {
                match p.namespaces.get(namespace)?.get(order_by) {
                    Some(Value::Timestamp(time)) => Some((*time, p.uuid)),
                    _ => None,
                }
            }),
            start.as_ref(),
            end.as_ref(),
            after.as_ref(),
            page_size(scan.limit, MAX_SCAN_PAGE),
        );
        Ok(found
            .iter()
            .map(|(time, uuid)| {
                let values = &self.products[uuid].namespaces[namespace];
                FfiScanRow {
                    uuid: (*uuid).into(),
                    time: to_micros(time),
                    values: columns
                        .iter()
                        .map(|c| {
                            c.and_then(|c| values.get(c))
                                .map_or(FfiValue::Null, value_to_ffi)
                        })
                        .collect(),
                }
            })
            .collect())
    }

    /// Raises a watermark the plugin reported, by the catalogue's rule
    /// ([`watermark_verdict`]): in the run's report and in the archive.
    fn raise_watermark(&mut self, product_type: &str, time: Timestamp) {
        let run = &mut self.run;
        // As muninn-sync: no watermark past the run's start plus the
        // default future_tolerance.
        let limit = watermark_limit(now(), Some(DEFAULT_FUTURE_TOLERANCE));
        let verdict = watermark_verdict(product_type, time, &run.held, limit, &run.watermark_types);
        if verdict != WatermarkVerdict::Raise {
            return;
        }
        for watermarks in [&mut run.report.watermarks, &mut self.watermarks] {
            raise_watermark(watermarks, product_type, time);
        }
    }

    /// What the catalogue holds per product type, as the host answers
    /// [`Notice::ProductTypes`](crate::notice::Notice::ProductTypes).
    fn product_type_summaries(&self) -> Vec<ProductTypeSummary> {
        let mut summaries: BTreeMap<&str, ProductTypeSummary> = BTreeMap::new();
        for product in self.products.values() {
            let summary =
                summaries
                    .entry(&product.product_type)
                    .or_insert_with(|| ProductTypeSummary {
                        product_type: product.product_type.clone(),
                        count: 0,
                        owned: 0,
                        validity_start_min: None,
                        validity_start_max: None,
                    });
            summary.count += 1;
            if self.owners.get(&product.uuid) == Some(&self.ownership.synchronizer) {
                summary.owned += 1;
            }
            if let Some(start) = product.validity_start {
                summary.validity_start_min =
                    Some(summary.validity_start_min.map_or(start, |m| m.min(start)));
                summary.validity_start_max =
                    Some(summary.validity_start_max.map_or(start, |m| m.max(start)));
            }
        }
        summaries.into_values().collect()
    }

    /// Answers a notification as muninn-sync does.
    fn answer_notice(&mut self, notice: &PluginNotice) -> Result<String, String> {
        match notice {
            PluginNotice::ProductFailed {
                product,
                message,
                product_type,
            } => {
                let report = &mut self.run.report;
                report.failed += 1;
                report.failures.push(Failure {
                    product: product.clone(),
                    message: message.clone(),
                });
                self.run.held.hold(product_type.as_deref());
            }
            PluginNotice::Unchanged { count } => self.run.report.unchanged += count,
            PluginNotice::Watermark { product_type, time } => {
                self.raise_watermark(product_type, *time)
            }
            PluginNotice::Idle => {}
            PluginNotice::Expected {
                product_type,
                count,
            } => {
                self.run
                    .report
                    .expected
                    .insert(product_type.clone(), *count);
            }
            PluginNotice::ProductTypes => {
                return Ok(encode_product_types(&self.product_type_summaries()))
            }
            PluginNotice::Deletion(deletion) => {
                let key = (deletion.product_type.clone(), deletion.product_name.clone());
                let time = truncate_to_micros(deletion.time);
                let kept = self.deletions.entry(key).or_insert(time);
                if *kept < time {
                    *kept = time;
                }
            }
            PluginNotice::Deletions {
                product_type,
                product_names,
            } => {
                let times: Vec<Option<Timestamp>> = product_names
                    .iter()
                    .map(|name| self.deletion(product_type, name))
                    .collect();
                return Ok(encode_deletions(&times));
            }
            PluginNotice::PropertyTypes { namespaces } => {
                let types: PropertyTypes = namespaces
                    .iter()
                    .filter_map(|namespace| {
                        let columns = self.schema.get(namespace)?;
                        Some((namespace.clone(), columns.clone()))
                    })
                    .collect();
                return Ok(encode_property_types(&types));
            }
        }
        Ok(String::new())
    }
}

/// An answer across the ABI, a refusal prefixed with the operation as
/// muninn-sync's are.
fn answer<T>(what: &str, result: Result<T, String>) -> RResult<T, RString> {
    match result {
        Ok(value) => RResult::ROk(value),
        Err(message) => RResult::RErr(format!("{what}: {message}").into()),
    }
}

impl FfiArchive for MemoryArchive {
    fn find_by_name(
        &self,
        product_type: RStr<'_>,
        product_names: RSlice<'_, RString>,
        namespaces: RSlice<'_, RString>,
    ) -> RResult<RVec<ROption<FfiProduct>>, RString> {
        let selected = self.selected(namespaces.as_slice());
        RResult::ROk(
            product_names
                .iter()
                .map(|name| {
                    self.product(product_type.as_str(), name.as_str())
                        .map(|p| self.read(p, &selected))
                        .into()
                })
                .collect(),
        )
    }

    fn find_by_uuid(
        &self,
        uuids: RSlice<'_, FfiUuid>,
        namespaces: RSlice<'_, RString>,
    ) -> RResult<RVec<ROption<FfiProduct>>, RString> {
        let selected = self.selected(namespaces.as_slice());
        RResult::ROk(
            uuids
                .iter()
                .map(|uuid| {
                    self.products
                        .get(&Uuid::from(*uuid))
                        .map(|p| self.read(p, &selected))
                        .into()
                })
                .collect(),
        )
    }

    fn walk(
        &self,
        walk: &FfiWalk,
        namespaces: RSlice<'_, RString>,
    ) -> RResult<RVec<FfiProduct>, RString> {
        answer(
            "walk over the catalogue",
            self.walk_page(walk, namespaces.as_slice()),
        )
    }

    fn scan(&mut self, scan: &FfiScan) -> RResult<RVec<FfiScanRow>, RString> {
        answer("scan of a namespace", self.scan_page(scan))
    }

    fn create(&mut self, product: FfiProduct) -> RResult<(), RString> {
        let created = product_from_ffi(&product)
            .map_err(|e| format!("invalid product: {e}"))
            .and_then(|product| {
                let uuid = product.uuid;
                self.create_product(product).map(|()| uuid)
            });
        if let Ok(uuid) = created {
            self.run.report.created += 1;
            self.owners
                .insert(uuid, self.ownership.synchronizer.clone());
        }
        let created = created.map(drop);
        answer("create", created)
    }

    fn update(&mut self, update: FfiUpdate) -> RResult<(), RString> {
        let updated = update_from_ffi(&update)
            .map_err(|e| format!("invalid update: {e}"))
            .and_then(|update| self.update_product(&update).map(|()| update.uuid));
        if let Ok(uuid) = updated {
            self.run.report.updated += 1;
            // An update takes over a product the section lets it adopt.
            if self.ownership.claim(self.owner(uuid)) == Claim::TakeOver {
                self.owners
                    .insert(uuid, self.ownership.synchronizer.clone());
            }
        }
        let updated = updated.map(drop);
        answer("update", updated)
    }

    fn remove(&mut self, uuid: FfiUuid) -> RResult<bool, RString> {
        let uuid = Uuid::from(uuid);
        if !self.products.contains_key(&uuid) {
            return RResult::ROk(false);
        }
        if let Claim::LeaveAlone(why) = self.ownership.claim(self.owner(uuid)) {
            self.run.report.left_alone.push((uuid, why));
            return RResult::ROk(false);
        }
        if let Some(product) = self.products.remove(&uuid) {
            self.names
                .remove(&(product.product_type, product.product_name));
            self.owners.remove(&uuid);
            self.run.report.removed += 1;
        }
        RResult::ROk(true)
    }

    fn notify(&mut self, kind: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
        let answer = match PluginNotice::decode(kind.as_str(), payload.as_str()) {
            Ok(notice) => self.answer_notice(&notice),
            Err(error) => Err(error.to_string()),
        };
        self.run.report.notices.push(Notice {
            kind: kind.to_string(),
            payload: serde_json::from_str(payload.as_str()).unwrap_or_default(),
        });
        match answer {
            Ok(answer) => RResult::ROk(answer.into()),
            Err(error) => RResult::RErr(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_are_kept_per_type_and_the_last_one_stands() {
        let mut memory = MemoryArchive::new();
        let mut archive = memory.archive();
        archive.expect_products("S2MSI1C", 200_000).unwrap();
        archive.expect_products("S2MSI2A", 0).unwrap();
        archive.expect_products("S2MSI1C", 199_998).unwrap();
        drop(archive);
        let report = memory.take_report();
        assert_eq!(
            report.expected,
            BTreeMap::from([("S2MSI1C".to_string(), 199_998), ("S2MSI2A".to_string(), 0)])
        );
        assert_eq!(report.notices_of("expected").count(), 3);
        assert_eq!(
            report.notices[0].payload,
            serde_json::json!({"product_type": "S2MSI1C", "count": 200_000})
        );
        assert!(
            memory.take_report().expected.is_empty(),
            "a new run expects nothing yet"
        );
    }

    /// A muninn-sync older than the `expected` notification: it answers
    /// every kind it does not know as such a host does.
    struct OlderHost(MemoryArchive);

    impl FfiArchive for OlderHost {
        fn find_by_name(
            &self,
            product_type: RStr<'_>,
            product_names: RSlice<'_, RString>,
            namespaces: RSlice<'_, RString>,
        ) -> RResult<RVec<ROption<FfiProduct>>, RString> {
            self.0.find_by_name(product_type, product_names, namespaces)
        }
        fn find_by_uuid(
            &self,
            uuids: RSlice<'_, FfiUuid>,
            namespaces: RSlice<'_, RString>,
        ) -> RResult<RVec<ROption<FfiProduct>>, RString> {
            self.0.find_by_uuid(uuids, namespaces)
        }
        fn walk(
            &self,
            walk: &FfiWalk,
            namespaces: RSlice<'_, RString>,
        ) -> RResult<RVec<FfiProduct>, RString> {
            self.0.walk(walk, namespaces)
        }
        fn scan(&mut self, scan: &FfiScan) -> RResult<RVec<FfiScanRow>, RString> {
            self.0.scan(scan)
        }
        fn create(&mut self, product: FfiProduct) -> RResult<(), RString> {
            self.0.create(product)
        }
        fn update(&mut self, update: FfiUpdate) -> RResult<(), RString> {
            self.0.update(update)
        }
        fn remove(&mut self, uuid: FfiUuid) -> RResult<bool, RString> {
            self.0.remove(uuid)
        }
        fn notify(&mut self, kind: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
            if kind.as_str() == "expected" {
                let unknown = crate::notice::NoticeError::Unknown(kind.to_string());
                return RResult::RErr(unknown.to_string().into());
            }
            self.0.notify(kind, payload)
        }
    }

    #[test]
    fn an_older_host_that_does_not_know_expectations_is_no_error() {
        let mut older = OlderHost(MemoryArchive::new());
        let mut archive = Archive::new(FfiArchive_TO::from_ptr(&mut older, TD_Opaque));
        archive.expect_products("T", 5).unwrap();
        archive.count_unchanged(5).unwrap();
        drop(archive);
        let report = older.0.take_report();
        assert!(report.expected.is_empty());
        assert_eq!(report.unchanged, 5, "the run goes on");
    }

    #[test]
    fn a_malformed_expectation_is_refused_as_the_host_refuses_it() {
        let mut memory = MemoryArchive::new();
        let refused = memory
            .notify(
                RStr::from_str("expected"),
                RStr::from_str(r#"{"product_type": "T"}"#),
            )
            .unwrap_err();
        assert!(
            refused
                .as_str()
                .starts_with("malformed notification \"expected\""),
            "{refused}"
        );
    }
}
