//! A muninn-sync synchronizer: keeps one product type in step with a JSON
//! listing. The port of tests/python/listing/listing_sync.py.

use muninn_sync_plugin_api::anyhow::{self, Context as _};
use muninn_sync_plugin_api::serde;
use muninn_sync_plugin_api::{
    export_plugin, parse_timestamp, Archive, Context, Product, SyncRequest, Synchronizer,
};
use std::path::PathBuf;

/// The `[synchronizer:<name>]` section without `module` (and `plugin`).
#[derive(serde::Deserialize)]
// serde's derive is told where serde is: the plugin has no serde of its own.
#[serde(crate = "muninn_sync_plugin_api::serde", deny_unknown_fields)]
struct Config {
    path: String,
    product_type: String,
}

/// One entry of the listing.
#[derive(serde::Deserialize)]
#[serde(crate = "muninn_sync_plugin_api::serde")]
struct Entry {
    name: String,
    modified: String,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    deleted: bool,
}

struct Listing {
    path: PathBuf,
    product_type: String,
}

impl Synchronizer for Listing {
    type Config = Config;

    fn new(config: Config, context: &Context) -> anyhow::Result<Self> {
        Ok(Listing {
            path: context.resolve_path(&config.path),
            product_type: config.product_type,
        })
    }

    fn sync(&mut self, archive: &mut Archive<'_>, request: &SyncRequest) -> anyhow::Result<()> {
        if !request.wants_product_type(&self.product_type) {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("cannot read the listing {}", self.path.display()))?;
        let mut entries: Vec<Entry> = serde_json::from_str(&text)?;
        entries.sort_by(|a, b| a.modified.cmp(&b.modified));
        for entry in entries {
            let modified = parse_timestamp(&entry.modified)?;
            if !request.in_window(&modified) {
                continue; // the window is [start, end)
            }
            if entry.deleted {
                if let Some(found) = archive.product_by_name(&self.product_type, &entry.name, &[])? {
                    archive.remove(found.uuid)?;
                }
            } else {
                let mut product = Product::new(&self.product_type, &entry.name);
                product.size = entry.size;
                product.remote_url = entry.url;
                // Creates, updates what differs (everything with --force), or writes nothing.
                archive.apply(&product, request.force, &[])?;
            }
            // Every change up to here is handed over: where --incremental starts.
            archive.advance_watermark(&self.product_type, modified)?;
        }
        Ok(())
    }
}

export_plugin!("listing", Listing);
