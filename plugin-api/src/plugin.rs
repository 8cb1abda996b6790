//! The plugin author's side of the entry points: the [`Synchronizer`] trait
//! and the glue that [`export_plugin!`](crate::export_plugin) puts behind it.

use crate::archive::{timestamp_from_micros, Archive};
use crate::ffi::{
    FfiArchiveMut, FfiHostBox, FfiSyncRequest, FfiSynchronizer, FfiSynchronizerBox,
    FfiSynchronizer_TO, PluginModule, PluginModuleRef, ABI_VERSION,
};
use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RResult, RStr, RString},
};
use anyhow::Result;
use muninn_sync_model::Timestamp;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

/// A synchronizer: muninn's `synchronizer(config)` is [`Synchronizer::new`],
/// its `sync(...)` is [`Synchronizer::sync`].
pub trait Synchronizer: Sized + 'static {
    /// The synchronizer's configuration section (without `module`). Derive
    /// `serde::Deserialize`, with `#[serde(deny_unknown_fields)]` so that a
    /// misspelt key is an error naming it.
    type Config: DeserializeOwned;

    /// Validates and keeps the configuration. muninn-sync calls this before
    /// it opens the catalogue, so a configuration error is reported at once;
    /// keep it free of network access.
    fn new(config: Self::Config, context: &Context) -> Result<Self>;

    /// Brings the catalogue in step with the remote for the requested
    /// product types and window; see [`SyncRequest`].
    fn sync(&mut self, archive: &mut Archive<'_>, request: &SyncRequest) -> Result<()>;
}

/// The arguments of muninn's `sync`. The default is what a plain
/// `muninn-sync ARCHIVE SYNCHRONIZER` asks for: every product type, every
/// change, no `--force`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncRequest {
    /// `None`: every product type the synchronizer knows. `Some(vec![])`:
    /// none (muninn-sync `-p` given without values).
    pub product_types: Option<Vec<String>>,
    /// The window is half-open: `start <= t < end`; either end may be open.
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// Update every product in the window that the catalogue already has,
    /// changed or not.
    pub force: bool,
}

impl SyncRequest {
    /// Whether `time` lies in `[start, end)`.
    pub fn in_window(&self, time: &Timestamp) -> bool {
        self.start.is_none_or(|start| *time >= start) && self.end.is_none_or(|end| *time < end)
    }

    /// Whether the product type was asked for.
    pub fn wants_product_type(&self, product_type: &str) -> bool {
        self.product_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == product_type))
    }

    /// The request in its ABI form, as the host sends it.
    #[cfg(feature = "memory")]
    pub(crate) fn to_ffi(&self) -> FfiSyncRequest {
        use muninn_sync_model::to_micros;
        FfiSyncRequest {
            product_types: self
                .product_types
                .as_ref()
                .map(|types| types.iter().map(|t| RString::from(t.as_str())).collect())
                .into(),
            start: self.start.as_ref().map(to_micros).into(),
            end: self.end.as_ref().map(to_micros).into(),
            force: self.force,
        }
    }

    pub(crate) fn from_ffi(request: FfiSyncRequest) -> Result<SyncRequest> {
        Ok(SyncRequest {
            product_types: request
                .product_types
                .into_option()
                .map(|types| types.into_iter().map(String::from).collect()),
            start: request
                .start
                .into_option()
                .map(timestamp_from_micros)
                .transpose()?,
            end: request
                .end
                .into_option()
                .map(timestamp_from_micros)
                .transpose()?,
            force: request.force,
        })
    }
}

/// Where a synchronizer was configured. The host sends it with the
/// configuration message (see `PluginModule::synchronizer` and docs/plugin-abi.md).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
pub struct Context {
    /// The synchronizer's name (its section is `["synchronizer:<name>"]`).
    pub synchronizer: String,
    /// The archive configuration file the section is in.
    pub config_file: std::path::PathBuf,
}

impl Context {
    /// A path from the configuration, relative ones taken from the
    /// configuration file's directory (as the catalogue's own path is).
    pub fn resolve_path(&self, path: &str) -> std::path::PathBuf {
        let path = std::path::Path::new(path);
        if path.is_absolute() {
            return path.to_path_buf();
        }
        match self.config_file.parent() {
            Some(dir) => dir.join(path),
            None => path.to_path_buf(),
        }
    }
}

/// What the host passes to `synchronizer(config)`: the section's keys
/// (without `module`) and where they come from. Unknown keys are ignored:
/// a newer host may send more.
#[derive(serde::Deserialize)]
struct ConfigMessage {
    section: serde_json::Value,
    context: Context,
}

/// Reads the host's configuration message into the plugin's own type and
/// the context.
fn parse_message<T: DeserializeOwned>(json: &str) -> Result<(T, Context)> {
    let message: ConfigMessage = serde_json::from_str(json).map_err(|e| {
        anyhow::anyhow!("the host sent a configuration this plugin cannot read: {e}")
    })?;
    let config = parse_config(&message.section.to_string())?;
    Ok((config, message.context))
}

/// Reads a synchronizer's configuration section (as JSON) into the plugin's
/// own type; an error names the key at fault.
pub fn parse_config<T: DeserializeOwned>(json: &str) -> Result<T> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        // serde_json adds a position in the JSON the host built, which is no
        // place in the user's TOML file: leave it out.
        let inner = error.into_inner().to_string();
        let inner = match inner.rfind(" at line ") {
            Some(at) => inner[..at].to_string(),
            None => inner,
        };
        if path == "." {
            anyhow::anyhow!("{inner}")
        } else {
            anyhow::anyhow!("key \"{path}\": {inner}")
        }
    })
}

thread_local! {
    /// The message and place of the last panic on this thread, kept by the
    /// plugin's panic hook so the error can say where the plugin panicked.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            let place = info
                .location()
                .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("{message}{place}")));
        }));
    });
}

/// Runs plugin code so that neither a panic nor an error crosses the ABI as
/// anything but a message.
fn guarded<T>(work: impl FnOnce() -> Result<T>) -> RResult<T, RString> {
    install_panic_hook();
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(error)) => RResult::RErr(format!("{error:#}").into()),
        Err(_) => {
            let what = LAST_PANIC
                .with(|last| last.borrow_mut().take())
                .unwrap_or_else(|| "unknown panic".into());
            RResult::RErr(format!("panicked: {what}").into())
        }
    }
}

struct Adapter<S>(S);

impl<S: Synchronizer> FfiSynchronizer for Adapter<S> {
    fn sync(
        &mut self,
        archive: FfiArchiveMut<'_>,
        request: FfiSyncRequest,
    ) -> RResult<(), RString> {
        guarded(|| {
            let request = SyncRequest::from_ffi(request)?;
            let mut archive = Archive::new(archive);
            let synced = self.0.sync(&mut archive, &request);
            archive.skipped().log_summary();
            synced
        })
    }
}

extern "C" fn create<S: Synchronizer>(
    config: RStr<'_>,
    host: FfiHostBox,
) -> RResult<FfiSynchronizerBox, RString> {
    guarded(|| {
        crate::logging::forward_to(host);
        let (config, context) = parse_message::<S::Config>(config.as_str())?;
        let synchronizer = S::new(config, &context)?;
        Ok(FfiSynchronizer_TO::from_value(
            Adapter(synchronizer),
            TD_Opaque,
        ))
    })
}

/// Builds the root module; called by [`export_plugin!`](crate::export_plugin).
#[doc(hidden)]
pub fn root_module<S: Synchronizer>(name: &'static str, version: &'static str) -> PluginModuleRef {
    let module = PluginModule {
        abi_version: ABI_VERSION,
        name: RStr::from_str(name),
        version: RStr::from_str(version),
        synchronizer: create::<S>,
    };
    // The module lives as long as the process: plugins are never unloaded.
    module.leak_into_prefix()
}

/// Exports a plugin: its root module and its ABI version symbol.
///
/// ```ignore
/// muninn_sync_plugin_api::export_plugin!("jsonl", JsonlSynchronizer);
/// ```
/// The first argument is the plugin's name as logs and errors show it; the
/// plugin's version is its crate version.
#[macro_export]
macro_rules! export_plugin {
    ($name:literal, $synchronizer:ty) => {
        /// The plugin ABI version, read by the host before anything else.
        #[unsafe(no_mangle)]
        #[allow(non_upper_case_globals)]
        pub static muninn_sync_plugin_abi_version: u32 = $crate::ffi::ABI_VERSION;

        /// abi_stable's root module header, as `#[export_root_module]` would
        /// write it; written out here so that plugins need no abi_stable
        /// dependency of their own.
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static MUNINN_SYNC_PLUGIN_ROOT_MODULE: $crate::__private::LibHeader = {
            extern "C" fn erased_root_module() -> $crate::__private::RootModuleResult {
                $crate::__private::call_root_module_loader(|| {
                    $crate::__private::root_module::<$synchronizer>(
                        $name,
                        env!("CARGO_PKG_VERSION"),
                    )
                })
            }
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::ffi::PluginModuleRef>(
                    erased_root_module,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exported_symbol_is_the_one_abi_stable_looks_for() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        path: String,
        #[serde(default)]
        product_types: Vec<String>,
    }

    #[test]
    fn config_errors_name_the_key() {
        let unknown = parse_config::<Config>(r#"{"path": "x", "pat": 1}"#).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `pat`"),
            "{unknown}"
        );
        let wrong = parse_config::<Config>(r#"{"path": 5}"#).unwrap_err();
        assert!(wrong.to_string().contains("key \"path\""), "{wrong}");
        let missing = parse_config::<Config>(r#"{}"#).unwrap_err();
        assert!(
            missing.to_string().contains("missing field `path`"),
            "{missing}"
        );
    }

    #[test]
    fn window_is_half_open() {
        let t = |s| muninn_sync_model::parse_timestamp(s).unwrap();
        let request = SyncRequest {
            product_types: None,
            start: Some(t("2024-01-01")),
            end: Some(t("2024-01-02")),
            force: false,
        };
        assert!(request.in_window(&t("2024-01-01")));
        assert!(request.in_window(&t("2024-01-01T23:59:59.999999")));
        assert!(!request.in_window(&t("2024-01-02")));
        assert!(!request.in_window(&t("2023-12-31T23:59:59.999999")));
    }

    #[test]
    fn panics_become_messages_naming_the_place() {
        let result: RResult<(), RString> = guarded(|| panic!("boom"));
        let message = result.unwrap_err().to_string();
        assert!(message.starts_with("panicked: boom at "), "{message}");
        assert!(message.contains("plugin.rs"), "{message}");
    }
}
