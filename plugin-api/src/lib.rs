//! Everything a muninn-sync synchronizer plugin needs.
//!
//! A plugin is a `cdylib` that implements [`Synchronizer`] and exports it with
//! [`export_plugin!`]. muninn-sync loads it when an archive's configuration
//! names it in a `["synchronizer:<name>"]` section, passes it that section
//! (without `module`), and calls its `sync` with the archive handle.
//!
//! A complete plugin (its `Cargo.toml` needs `crate-type = ["cdylib"]` and
//! one dependency, `muninn-sync-plugin-api`; docs/plugin-abi.md has it
//! whole). The crates a plugin uses besides this one come from here, at the
//! versions this crate is built with: [`anyhow`] for errors, [`serde`] to
//! read the configuration, [`tracing`] to log. serde's derive then needs to
//! be told where serde is, with `#[serde(crate = "muninn_sync_plugin_api::serde")]`:
//!
//! ```
//! use muninn_sync_plugin_api::{anyhow, serde, tracing};
//! use muninn_sync_plugin_api::{export_plugin, Archive, Context, Product, SyncRequest, Synchronizer};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(crate = "muninn_sync_plugin_api::serde", deny_unknown_fields)]
//! struct Config {
//!     product_type: String,
//! }
//!
//! struct Hello {
//!     product_type: String,
//! }
//!
//! impl Synchronizer for Hello {
//!     type Config = Config;
//!
//!     fn new(config: Config, _context: &Context) -> anyhow::Result<Self> {
//!         if config.product_type.is_empty() {
//!             anyhow::bail!("key \"product_type\": must not be empty");
//!         }
//!         Ok(Hello { product_type: config.product_type })
//!     }
//!
//!     fn sync(&mut self, archive: &mut Archive<'_>, request: &SyncRequest) -> anyhow::Result<()> {
//!         if !request.wants_product_type(&self.product_type) {
//!             return Ok(());
//!         }
//!         let mut product = Product::new(&self.product_type, "hello-world");
//!         product.remote_url = Some("https://example.org/hello-world".into());
//!         let outcome = archive.apply(&product, request.force, &[])?;
//!         tracing::info!(?outcome, product = %product.product_name, "synced");
//!         Ok(())
//!     }
//! }
//!
//! export_plugin!("hello", Hello);
//! ```
//!
//! `examples/plugin-template/` in muninn-sync's repository is a plugin to
//! start from: a crate of its own that reads a CSV listing of products,
//! with unit tests and a README on building, configuring and testing it.
//!
//! To unit-test a plugin's `sync` without a database, turn this crate's
//! `memory` feature on in `[dev-dependencies]` and run it against
//! `memory::MemoryArchive`: an archive in memory with the catalogue's rules,
//! which reports what the run created, updated, removed, skipped and which
//! watermarks it raised. The `memory` module's documentation has a complete
//! test.
//!
//! The ABI itself (what crosses the boundary, its versioning rule) is in
//! [`ffi`] and docs/plugin-abi.md.
//!
//! A plugin that reads a remote catalogue over HTTP turns on this crate's
//! `http` feature and uses `http::HttpClient`: one blocking client with
//! timeouts, retries with exponential backoff and jitter on connection
//! errors, timeouts, 429 and 5xx, `Retry-After`, an optional request-rate
//! cap, and secrets masked in every error and log. Its settings
//! (`http::HttpConfig`) can sit in the plugin's configuration section as a
//! table. The feature is off by default, so a plugin that reads local files
//! builds no TLS stack. docs/http-client.md describes it.

mod apply;
mod archive;
pub mod convert;
pub mod ffi;
#[cfg(feature = "http")]
pub mod http;
mod logging;
#[cfg(feature = "memory")]
pub mod memory;
pub mod notice;
mod plugin;
pub mod section;
mod skipped;

pub use archive::{Archive, Outcome, ProductWalk, ScanCursor, ScanRow, WatermarkTracker};
pub use ffi::ABI_VERSION;
pub use muninn_sync_model as model;
pub use muninn_sync_model::{
    derived_uuid, format_timestamp, parse_timestamp, CoreField, Deletion, Geometry, Namespace,
    Product, ProductTypeSummary, Timestamp, Update, Uuid, Value, ValueType,
};
pub use plugin::{parse_config, Context, SyncRequest, Synchronizer};
pub use skipped::{shown, FieldSkips, SkippedFields};

// The crates a plugin uses with the SDK, so that it needs no dependency of
// its own on them and gets the versions the SDK is built with.
/// Errors: the SDK's calls, `Synchronizer::new` and `sync` return
/// `anyhow::Result`. A plugin uses `anyhow::Result`, `anyhow::bail!` and
/// `anyhow::Context` from here.
pub use anyhow;
/// To derive `Deserialize` for a synchronizer's `Config`. Without a serde
/// dependency of the plugin's own, tell the derive where serde is:
/// `#[serde(crate = "muninn_sync_plugin_api::serde")]`.
pub use serde;
/// Logging: the SDK forwards the plugin's `tracing` events to muninn-sync's
/// log.
pub use tracing;

/// What [`export_plugin!`] expands to; not for direct use.
#[doc(hidden)]
pub mod __private {
    pub use crate::plugin::root_module;
    pub use abi_stable::library::{
        __call_root_module_loader as call_root_module_loader, CheckTypeLayout, LibHeader,
        RootModuleResult,
    };
}
