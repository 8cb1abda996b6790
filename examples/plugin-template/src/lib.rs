//! A muninn-sync synchronizer that keeps the catalogue in step with a CSV
//! listing of products: what the listing has is created or updated, what it
//! no longer has is removed. It is a template: README.md says which parts to
//! change for another remote.
//!
//! The `["synchronizer:<name>"]` section of an archive's configuration:
//!
//! ```toml
//! ["synchronizer:listing"]
//! module = "/path/to/liblisting.so"
//! path = "listing.csv"        # relative to the configuration file
//! product_type = "LISTED"
//! # prune = false             # keep the products the listing drops
//! ```

mod listing;

pub use listing::{parse_listing, read_listing, Listed, Listing};

// anyhow, serde and tracing come from muninn-sync-plugin-api: the plugin's
// only dependency.
use muninn_sync_plugin_api::anyhow::{self, Result};
use muninn_sync_plugin_api::{
    export_plugin, serde, tracing, Archive, Context, Product, SyncRequest, Synchronizer, Timestamp,
};
use std::collections::HashSet;
use std::path::PathBuf;

/// The namespace this synchronizer writes: the remote's modification time of
/// each product, `listing.modified`, by which it finds the products of a
/// window again.
pub const NAMESPACE: &str = "listing";

/// The keys of the synchronizer's section (without `module`).
#[derive(Debug, serde::Deserialize)]
// The derive's code names serde by this path, as the plugin has no serde
// dependency of its own.
#[serde(crate = "muninn_sync_plugin_api::serde", deny_unknown_fields)]
pub struct Config {
    /// The listing, relative to the archive's configuration file.
    pub path: String,
    /// The product type of every listed product.
    pub product_type: String,
    /// Remove the products of the window that the listing no longer has.
    #[serde(default = "yes")]
    pub prune: bool,
}

fn yes() -> bool {
    true
}

/// The synchronizer, as `export_plugin!` exports it.
pub struct CsvListing {
    path: PathBuf,
    product_type: String,
    prune: bool,
}

impl Synchronizer for CsvListing {
    type Config = Config;

    /// Checks the configuration; muninn-sync calls this before it opens the
    /// catalogue, so no remote is contacted here.
    fn new(config: Config, context: &Context) -> Result<Self> {
        if config.product_type.trim().is_empty() {
            anyhow::bail!("key \"product_type\": must not be empty");
        }
        Ok(CsvListing {
            path: context.resolve_path(&config.path),
            product_type: config.product_type,
            prune: config.prune,
        })
    }

    fn sync(&mut self, archive: &mut Archive<'_>, request: &SyncRequest) -> Result<()> {
        let product_type = &self.product_type;
        if !request.wants_product_type(product_type) {
            return Ok(());
        }
        // A listing that cannot be read at all stops the run; a line that
        // cannot be read skips that product only.
        let listing = read_listing(&self.path, product_type)?;
        for (location, error) in &listing.unreadable {
            archive.report_failure(location, error)?;
        }

        // The changes of the window, oldest first, as muninn's sync goes.
        let mut changes: Vec<&Listed> = listing
            .products
            .iter()
            .filter(|listed| request.in_window(&listed.modified))
            .collect();
        changes.sort_by_key(|listed| listed.modified);
        let mut newest: Option<Timestamp> = None;
        for listed in &changes {
            // The product's own namespace (listing) is managed without being
            // listed here.
            match archive.apply(&listed.product, request.force, &[]) {
                Ok(outcome) => {
                    tracing::debug!(product = %listed.product.product_name, ?outcome, "applied")
                }
                Err(error) => archive.report_failure(&listed.location, &error)?,
            }
            newest = Some(listed.modified);
        }

        let removed = if self.prune && listing.unreadable.is_empty() {
            self.remove_unlisted(archive, request, &listing)?
        } else {
            // An unreadable line may name a product that is still there.
            0
        };

        // Every change up to the newest one seen has been handed over.
        if let Some(newest) = newest {
            archive.advance_watermark(product_type, newest)?;
        }
        tracing::info!(
            listing = %self.path.display(),
            listed = listing.products.len(),
            in_window = changes.len(),
            unreadable = listing.unreadable.len(),
            removed,
            "synced the listing"
        );
        Ok(())
    }
}

impl CsvListing {
    /// Removes the products of the window that the listing no longer names;
    /// returns how many were removed.
    fn remove_unlisted(
        &self,
        archive: &mut Archive<'_>,
        request: &SyncRequest,
        listing: &Listing,
    ) -> Result<usize> {
        let listed: HashSet<&str> = listing
            .products
            .iter()
            .map(|listed| listed.product.product_name.as_str())
            .collect();
        // The walk borrows the archive: collect before removing.
        let gone: Vec<Product> = archive
            .products_in_window(
                &self.product_type,
                &format!("{NAMESPACE}.modified"),
                request.start,
                request.end,
                &[],
            )
            .filter(|stored| {
                stored
                    .as_ref()
                    .map_or(true, |p| !listed.contains(p.product_name.as_str()))
            })
            .collect::<Result<_>>()?;
        let mut removed = 0;
        for product in &gone {
            // The host removes only this synchronizer's own products (or
            // those its section lets it adopt): another's is left alone,
            // with a warning from the host, and `remove` says false.
            match archive.remove(product.uuid) {
                Ok(true) => {
                    removed += 1;
                    tracing::debug!(product = %product.product_name, "removed: no longer listed");
                }
                Ok(false) => {}
                // One product that cannot be removed does not end the run:
                // it is reported, and the run ends with an error naming it.
                Err(error) => archive.report_failure_of_type(
                    &self.product_type,
                    &product.product_name,
                    &error.context("removing a product the listing no longer names"),
                )?,
            }
        }
        Ok(removed)
    }
}

export_plugin!("listing", CsvListing);
