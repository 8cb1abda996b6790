//! The `stac` synchronizer: keeps a catalogue in step with a STAC API's
//! Item Search. The mapping and the configuration are in docs/stac.md.

pub mod config;
pub mod conformance;
mod harvest;
pub mod item;
pub mod search;

use anyhow::{anyhow, Result};
use config::{Config, TimeField};
use conformance::Capabilities;
use item::{AssetChoice, MappedItem};
use muninn_sync_plugin_api::http::HttpClient;
use muninn_sync_plugin_api::{
    export_plugin, Archive, Context, SyncRequest, Synchronizer, Timestamp, Uuid,
};
use std::collections::HashSet;

pub struct Stac {
    config: Config,
    client: HttpClient,
}

impl Synchronizer for Stac {
    type Config = Config;

    fn new(config: Config, _context: &Context) -> Result<Self> {
        config.check()?;
        let headers = config.expanded_headers(|name| std::env::var(name).ok())?;
        let mut builder = HttpClient::builder().config(config.http.clone());
        for (name, value) in headers {
            builder = builder.secret_header(name, value);
        }
        let client = builder.build()?;
        Ok(Stac { config, client })
    }

    fn sync(&mut self, archive: &mut Archive<'_>, request: &SyncRequest) -> Result<()> {
        let product_types: Vec<String> = match (&request.product_types, &self.config.collections) {
            (Some(types), _) => types.clone(),
            (None, Some(collections)) => collections.keys().cloned().collect(),
            (None, None) => {
                return Err(anyhow!(
                    "no product types: name them with -p, or map them to collections with the key \"collections\""
                ))
            }
        };
        let landing = self
            .client
            .get_json::<serde_json::Value>(&self.config.url)?;
        let capabilities =
            Capabilities::from_landing(&self.client.redact(&self.config.url), &landing)?;
        tracing::info!(
            search = %self.client.redact(&capabilities.search),
            sort = capabilities.sort,
            cql2_text = capabilities.cql2_text,
            "read the STAC API's landing page"
        );
        for product_type in &product_types {
            self.sync_type(archive, request, &capabilities, product_type)?;
        }
        Ok(())
    }
}

impl Stac {
    /// Syncs one product type's window: reads it whole (applying as it goes
    /// when the server sorts), then prunes if asked and the read was complete.
    fn sync_type(
        &self,
        archive: &mut Archive<'_>,
        request: &SyncRequest,
        capabilities: &Capabilities,
        product_type: &str,
    ) -> Result<()> {
        let collection = self.config.collection(product_type);
        let time_field = self.config.time_field;
        let asset = self
            .config
            .asset
            .clone()
            .map_or(AssetChoice::Default, AssetChoice::Key);
        let first = search::first_request(
            &capabilities.search,
            &search::Window {
                collection,
                start: request.start,
                end: request.end,
                limit: self.config.page_size,
                time_field: time_field.name(),
                sort: capabilities.sort,
                cql2_text: capabilities.cql2_text,
            },
        )?;
        if !capabilities.sort {
            tracing::warn!(
                collection,
                "the server cannot sort: the window is read whole, then applied in order of {}",
                time_field.name()
            );
        }
        let mut seen: HashSet<Uuid> = HashSet::new();
        let mut failed = false;
        let mut held: Vec<MappedItem> = Vec::new();
        let mut progress = Progress::default();
        // Nothing is held open while the server answers.
        archive.idle()?;
        let pages = harvest::pages(&self.client, first, |features| {
            let mut page = Vec::with_capacity(features.len());
            for feature in features {
                match item::map_item(feature, product_type, collection, &asset, time_field.name()) {
                    Ok(mapped) => {
                        // The server's window is closed at the end, and
                        // without a filter on `updated` it is no window.
                        if mapped.time.is_some_and(|t| request.in_window(&t)) {
                            seen.insert(mapped.product.uuid);
                            page.push(mapped);
                        } else if mapped.time.is_none() {
                            failed = true;
                            let id = feature.get("id").and_then(|i| i.as_str()).unwrap_or("?");
                            archive.report_failure(
                                &format!("{collection}/{id}"),
                                &anyhow!("no {} time", time_field.name()),
                            )?;
                        }
                    }
                    Err(error) => {
                        failed = true;
                        let id = feature.get("id").and_then(|i| i.as_str()).unwrap_or("?");
                        archive.report_failure(&format!("{collection}/{id}"), &error)?;
                    }
                }
            }
            if capabilities.sort {
                for mapped in &page {
                    apply(archive, mapped, request.force)?;
                    progress.saw(mapped.time);
                }
                progress.report(archive, product_type, false)?;
            } else {
                held.extend(page);
            }
            archive.idle()
        })?;
        held.sort_by_key(|m| m.time);
        for mapped in &held {
            apply(archive, mapped, request.force)?;
            progress.saw(mapped.time);
        }
        progress.report(archive, product_type, true)?;
        tracing::info!(
            collection,
            product_type,
            pages,
            items = seen.len(),
            "read the window"
        );
        if self.config.prune {
            if failed {
                tracing::warn!(
                    product_type,
                    "not pruning: some items of the window could not be read"
                );
            } else {
                self.prune(archive, request, product_type, &seen)?;
            }
        }
        Ok(())
    }

    /// Removes the products of a completely read window that the server no
    /// longer returned.
    fn prune(
        &self,
        archive: &mut Archive<'_>,
        request: &SyncRequest,
        product_type: &str,
        seen: &HashSet<Uuid>,
    ) -> Result<()> {
        let property = match self.config.time_field {
            TimeField::Datetime => "validity_start",
            TimeField::Updated => "stac.updated",
        };
        let gone: Vec<Uuid> = archive
            .products_in_window(product_type, property, request.start, request.end, &[])
            .filter_map(|p| {
                p.map(|p| (!seen.contains(&p.uuid)).then_some(p.uuid))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        for uuid in &gone {
            archive.remove(*uuid)?;
        }
        tracing::info!(
            product_type,
            removed = gone.len(),
            "pruned products the server no longer has"
        );
        Ok(())
    }
}

fn apply(archive: &mut Archive<'_>, mapped: &MappedItem, force: bool) -> Result<()> {
    archive.apply(&mapped.product, force, &[item::NAMESPACE])?;
    Ok(())
}

/// The watermark as items pass in order of time: every item up to the time
/// before the latest one has been handed over (more with the latest time
/// may follow on the next page).
#[derive(Default)]
struct Progress {
    complete: Option<Timestamp>,
    current: Option<Timestamp>,
    reported: Option<Timestamp>,
}

impl Progress {
    fn saw(&mut self, time: Option<Timestamp>) {
        if time.is_some() && time != self.current {
            self.complete = self.current;
            self.current = time;
        }
    }

    fn report(
        &mut self,
        archive: &mut Archive<'_>,
        product_type: &str,
        finished: bool,
    ) -> Result<()> {
        let done = if finished {
            self.current
        } else {
            self.complete
        };
        if let Some(done) = done.filter(|d| Some(*d) != self.reported) {
            archive.advance_watermark(product_type, done)?;
            self.reported = Some(done);
        }
        Ok(())
    }
}

export_plugin!("stac", Stac);
