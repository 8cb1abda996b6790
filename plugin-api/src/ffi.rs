//! Every type that crosses the plugin boundary, in one place so that a change
//! to the ABI is easy to see in review.
//!
//! Compatibility rule: any change to a type in this module is an ABI change.
//! It bumps [`ABI_VERSION`] and the major version of this crate together, and
//! the host refuses plugins built against another ABI version with a message
//! naming both. Options and new kinds of events travel as data (the `notify`
//! kinds, JSON payloads) so that the shapes here can stay frozen.

// abi_stable's sabi_trait expands to impls that this lint flags.
#![allow(non_local_definitions)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::{RMut, VersionStrings},
    std_types::{RBox, RCowStr, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// The plugin ABI version this crate builds. Plugins carry it in their root
/// module and in the [`ABI_VERSION_SYMBOL`] symbol.
pub const ABI_VERSION: u32 = 1;

/// A plain `u32` symbol holding the plugin's ABI version. The host reads it
/// before abi_stable's layout check, so that a plugin built against another
/// ABI version is refused with both version numbers rather than a layout dump.
pub const ABI_VERSION_SYMBOL: &str = "muninn_sync_plugin_abi_version";

/// The root module a plugin exports (with [`export_plugin!`](crate::export_plugin)).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The [`ABI_VERSION`] the plugin was built against.
    pub abi_version: u32,
    /// The plugin's name, e.g. `jsonl`.
    pub name: RStr<'static>,
    /// The plugin's own version (its crate version).
    pub version: RStr<'static>,
    /// muninn's `synchronizer(config)` entry point: validates and keeps the
    /// configuration; no network access here. `config` is a JSON object
    /// `{"section": {<the section's keys without module>}, "context":
    /// {"synchronizer": "<name>", "config_file": "<path>"}}`; a plugin must
    /// ignore keys it does not know at both levels, so that hosts can add
    /// some. `host` is how the plugin logs.
    #[sabi(last_prefix_field)]
    pub synchronizer:
        extern "C" fn(config: RStr<'_>, host: FfiHostBox) -> RResult<FfiSynchronizerBox, RString>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "muninn_sync_plugin";
    const NAME: &'static str = "muninn_sync_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// A 128-bit product uuid.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FfiUuid {
    pub bytes: [u8; 16],
}

/// A property value; `Null` only appears in updates (make the property null).
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub enum FfiValue {
    Null,
    Text(RString),
    Integer(i64),
    Real(f64),
    Boolean(bool),
    /// Microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    Uuid(FfiUuid),
    /// A SpatiaLite BLOB geometry, SRID 4326: binary, so that a footprint
    /// crosses exactly and without formatting or parsing text.
    Geometry(RVec<u8>),
    /// JSON text.
    Json(RString),
}

/// One property: `namespace` is `core` for muninn's core properties. The
/// names are copy-on-write so that fixed names (all of core's) cross
/// without an allocation.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct FfiProperty {
    pub namespace: RCowStr<'static>,
    pub name: RCowStr<'static>,
    pub value: FfiValue,
}

/// A whole product: its non-null properties, and the names of the
/// namespaces other than core it has (a namespace may have no non-null
/// property and still be present).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct FfiProduct {
    pub properties: RVec<FfiProperty>,
    pub namespaces: RVec<RString>,
}

/// A change to one product: only the listed properties change (`Null`
/// makes one null) and the listed namespaces are removed.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct FfiUpdate {
    pub uuid: FfiUuid,
    pub properties: RVec<FfiProperty>,
    pub removed_namespaces: RVec<RString>,
}

/// Where a walk over the catalogue stands: the last product returned.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq)]
pub struct FfiWalkPosition {
    pub time: i64,
    pub uuid: FfiUuid,
}

/// One page of a walk over the catalogue's products of one type whose
/// timestamp `property` (`validity_start`, or `namespace.property`) lies in
/// `[start, end)`, ordered by that time and then uuid, after `after`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct FfiWalk {
    pub product_type: RString,
    pub property: RString,
    pub start: ROption<i64>,
    pub end: ROption<i64>,
    pub after: ROption<FfiWalkPosition>,
    pub limit: u32,
}

/// One page of a scan over a namespace's rows whose timestamp property
/// `order_by` lies in `[start, end)`, ordered by it and uuid, after `after`:
/// only `properties`, no core, no product.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct FfiScan {
    pub namespace: RString,
    pub order_by: RString,
    pub properties: RVec<RString>,
    pub start: ROption<i64>,
    pub end: ROption<i64>,
    pub after: ROption<FfiWalkPosition>,
    pub limit: u32,
}

/// One row of a scan: the uuid, the `order_by` time, and the requested
/// properties in order (`Null` for null or absent).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct FfiScanRow {
    pub uuid: FfiUuid,
    pub time: i64,
    pub values: RVec<FfiValue>,
}

/// The arguments of muninn's `sync(archive, product_types, start, end, force)`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct FfiSyncRequest {
    /// `RNone`: every product type the plugin knows; `RSome([])`: none.
    pub product_types: ROption<RVec<RString>>,
    /// Microseconds since the epoch; the window is `[start, end)`.
    pub start: ROption<i64>,
    pub end: ROption<i64>,
    pub force: bool,
}

/// The archive handle the host passes to `sync`. Errors are messages.
#[sabi_trait]
pub trait FfiArchive {
    /// Looks products of one type up by name, one answer per name, in order.
    /// `namespaces` lists the namespaces to read besides core (`*`: all).
    fn find_by_name(
        &self,
        product_type: RStr<'_>,
        product_names: RSlice<'_, RString>,
        namespaces: RSlice<'_, RString>,
    ) -> RResult<RVec<ROption<FfiProduct>>, RString>;

    /// Looks products up by uuid, one answer per uuid, in order.
    fn find_by_uuid(
        &self,
        uuids: RSlice<'_, FfiUuid>,
        namespaces: RSlice<'_, RString>,
    ) -> RResult<RVec<ROption<FfiProduct>>, RString>;

    /// One page of a walk; an empty page ends it.
    fn walk(
        &self,
        walk: &FfiWalk,
        namespaces: RSlice<'_, RString>,
    ) -> RResult<RVec<FfiProduct>, RString>;

    /// One page of a scan over a namespace (see [`FfiScan`]); an empty page
    /// ends it. Much cheaper per product than a walk: a synchronizer that
    /// keeps a remote version stamp in its namespace compares a window with
    /// the remote by merging, not by looking each product up.
    fn scan(&mut self, scan: &FfiScan) -> RResult<RVec<FfiScanRow>, RString>;

    /// muninn's `create_properties`.
    fn create(&mut self, product: FfiProduct) -> RResult<(), RString>;

    /// muninn's `update_properties`.
    fn update(&mut self, update: FfiUpdate) -> RResult<(), RString>;

    /// Removes a product; `false` if there was none with that uuid.
    fn remove(&mut self, uuid: FfiUuid) -> RResult<bool, RString>;

    /// Tells the host something that is not a catalogue change: `kind` names
    /// it and `payload` is JSON. ABI 1 knows `product_failed`
    /// (`{"product": "...", "message": "..."}`: a product was skipped; the
    /// run goes on and ends with an error) and `idle` (`{}`: the plugin is
    /// about to wait, e.g. on the network; the host commits and releases its
    /// locks). Unknown kinds are errors.
    #[sabi(last_prefix_field)]
    fn notify(&mut self, kind: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString>;
}

/// The archive handle as a plugin receives it, borrowed for one `sync`.
pub type FfiArchiveMut<'a> = FfiArchive_TO<'a, RMut<'a, ()>>;

/// A configured synchronizer, as `synchronizer(config)` returns it.
#[sabi_trait]
pub trait FfiSynchronizer {
    /// muninn's `sync`: per product type, chronologically by the remote's
    /// modification time, only within the window, changing the catalogue only
    /// through `archive`.
    #[sabi(last_prefix_field)]
    fn sync(&mut self, archive: FfiArchiveMut<'_>, request: FfiSyncRequest)
        -> RResult<(), RString>;
}

pub type FfiSynchronizerBox = FfiSynchronizer_TO<'static, RBox<()>>;

/// Log levels as they cross the boundary.
pub mod level {
    pub const ERROR: u8 = 1;
    pub const WARN: u8 = 2;
    pub const INFO: u8 = 3;
    pub const DEBUG: u8 = 4;
    pub const TRACE: u8 = 5;
}

/// The host's services that outlive one call: logging, from any thread.
#[sabi_trait]
pub trait FfiHost: Send + Sync + 'static {
    /// The most verbose [`level`] the host shows; finer events need not be sent.
    fn max_level(&self) -> u8;

    /// One log event, already formatted (`message key=value ...`).
    #[sabi(last_prefix_field)]
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>);
}

pub type FfiHostBox = FfiHost_TO<RBox<()>>;
