//! One synchronization run: configuration, plugin, catalogue, `sync`.

use crate::archive::{ArchiveHandle, BatchPolicy, Counts};
use crate::cli::Args;
use crate::config::{self, ArchiveConfig, CONFIG_PATH_VARIABLE};
use crate::loader;
use crate::logging::HostServices;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RStr, RString};
use anyhow::{anyhow, bail, Context, Result};
use muninn_sync_catalogue::SqliteCatalogue;
use muninn_sync_model::to_micros;
use muninn_sync_plugin_api::ffi::{FfiArchive_TO, FfiHost_TO, FfiSyncRequest};
use std::path::Path;
use std::time::Instant;

/// Runs the synchronizer the command line names against its archive.
pub fn run(args: &Args) -> Result<()> {
    let search_path = std::env::var(CONFIG_PATH_VARIABLE).ok();
    let config_path = config::locate(&args.archive, search_path.as_deref())?;
    let config = ArchiveConfig::read(&config_path)?;
    let section = config.synchronizer(&args.synchronizer)?;
    let where_configured = || {
        format!(
            "synchronizer \"{}\" (configuration file \"{}\")",
            section.name,
            config.path.display()
        )
    };
    let config_dir = config.path.parent().unwrap_or(Path::new("."));
    let plugin_path =
        loader::resolve(&section.module, config_dir).with_context(where_configured)?;
    let plugin = loader::load(&plugin_path).with_context(where_configured)?;
    let who = format!("synchronizer \"{}\" ({})", section.name, plugin.describe());

    let message = serde_json::json!({
        "section": config::options_to_json(&section.options),
        "context": {
            "synchronizer": section.name,
            "config_file": std::path::absolute(&config.path).unwrap_or_else(|_| config.path.clone()),
        },
    })
    .to_string();
    let host = FfiHost_TO::from_value(
        HostServices {
            plugin: plugin.name(),
        },
        TD_Opaque,
    );
    let mut synchronizer = (plugin.module.synchronizer())(RStr::from_str(&message), host)
        .into_result()
        .map_err(|e| {
            anyhow!(
                "configuration file \"{}\", section [\"synchronizer:{}\"]: {e} ({})",
                config.path.display(),
                section.name,
                plugin.describe()
            )
        })?;

    let mut catalogue = SqliteCatalogue::open(&config.sqlite)?;
    let mut handle = ArchiveHandle::new(&mut catalogue, BatchPolicy::default());
    let request = FfiSyncRequest {
        product_types: args
            .product_types
            .as_ref()
            .map(|types| types.iter().map(|t| RString::from(t.as_str())).collect())
            .into(),
        start: args.start.as_ref().map(to_micros).into(),
        end: args.end.as_ref().map(to_micros).into(),
        force: args.force,
    };
    tracing::info!(
        synchronizer = %section.name,
        plugin = plugin.name(),
        product_types = ?args.product_types,
        start = ?args.start.map(|t| t.to_rfc3339()),
        end = ?args.end.map(|t| t.to_rfc3339()),
        force = args.force,
        "starting sync"
    );
    let started = Instant::now();
    let synced = synchronizer
        .sync(FfiArchive_TO::from_ptr(&mut handle, TD_Opaque), request)
        .into_result();
    let finished = handle.finish();
    let counts = handle.counts();
    report(&section.name, &counts, started, finished.is_err());

    if let Err(message) = finished {
        bail!("{who}: {message}; changes committed before the failure are kept");
    }
    if let Err(message) = synced {
        bail!("{who}: {message}");
    }
    if counts.failed > 0 {
        let examples = handle
            .failures()
            .iter()
            .take(3)
            .map(|f| format!("{}: {}", f.product, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        bail!(
            "{who}: {} product(s) could not be synced and were skipped; the first: {examples}",
            counts.failed
        );
    }
    Ok(())
}

/// The one summary line every run ends with.
fn report(synchronizer: &str, counts: &Counts, started: Instant, rolled_back: bool) {
    let seconds = started.elapsed().as_secs_f64();
    let changes = counts.created + counts.updated + counts.removed;
    tracing::info!(
        "sync of \"{synchronizer}\" done: {} created, {} updated, {} removed, {} failed in {seconds:.2} s ({:.0} changes/s)",
        counts.created,
        counts.updated,
        counts.removed,
        counts.failed,
        changes as f64 / seconds.max(1e-9)
    );
    if rolled_back {
        tracing::warn!("the counts include the last batch, which was rolled back: up to 5000 of those changes are not in the catalogue");
    }
}
