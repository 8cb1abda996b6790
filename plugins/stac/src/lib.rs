//! The `stac` synchronizer: keeps a catalogue in step with a STAC API's
//! Item Search. The mapping and the configuration are in docs/stac.md.

pub mod config;
pub mod conformance;
mod harvest;
pub mod item;
pub mod search;
pub mod slices;

use anyhow::{anyhow, Result};
use config::{Config, TimeField};
use conformance::Capabilities;
use item::{AssetChoice, MappedItem};
use muninn_sync_plugin_api::http::HttpClient;
use muninn_sync_plugin_api::{
    export_plugin, Archive, Context, SkippedFields, SyncRequest, Synchronizer, Timestamp, Update,
    Uuid, WatermarkTracker,
};
use slices::Stretch;
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
        // The headers are credentials of the configured API: search and
        // next links to another origin are followed without them (or
        // refused, as `http.other_origins` says).
        let mut builder = HttpClient::builder()
            .config(config.http.clone())
            .origin(config.url.clone());
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
        let capabilities = Capabilities::from_landing(
            &self.config.url,
            &self.client.redact(&self.config.url),
            &landing,
        )?;
        tracing::info!(
            search = %self.client.redact(&capabilities.search),
            sort = capabilities.sort,
            cql2_text = capabilities.cql2_text,
            "read the STAC API's landing page"
        );
        // Fields left out of items are warned about once per field, and
        // summed up at the end, also of a run that fails.
        let mut skipped = SkippedFields::default();
        let result = product_types.iter().try_for_each(|product_type| {
            self.sync_type(archive, request, &capabilities, product_type, &mut skipped)
        });
        skipped.log_summary();
        result
    }
}

impl Stac {
    /// Syncs one product type's window: reads it (in time slices fetched a
    /// few at a time when it is long), applies the items in order of time,
    /// then prunes if asked and the read was complete.
    fn sync_type(
        &self,
        archive: &mut Archive<'_>,
        request: &SyncRequest,
        capabilities: &Capabilities,
        product_type: &str,
        skipped: &mut SkippedFields,
    ) -> Result<()> {
        let collection = self.config.collection(product_type);
        let time_field = self.config.time_field;
        // Without a server-side filter on `updated`, every request returns
        // the whole collection: slicing would only multiply it.
        let cql2_text = self.filter_works(capabilities, collection, request)?;
        let filtered = time_field == TimeField::Datetime || cql2_text;
        let searches = harvest::Searches {
            client: &self.client,
            search: &capabilities.search,
            collection,
            time_field: time_field.name(),
            sort: capabilities.sort,
            cql2_text,
        };
        let window = Stretch {
            start: request.start,
            end: request.end,
        };
        // Nothing is held open while the server answers.
        archive.idle()?;
        // Without a server-side filter on `updated`, every request returns
        // the whole collection: slicing would only multiply it. A window
        // open at either side is one search too.
        let slices = if filtered && window.start.is_some() && window.end.is_some() {
            let rule = slices::Rule {
                most_items: slices::FEW_PAGES * u64::from(self.config.page_size),
                cap: self
                    .config
                    .slice_length()?
                    .map(|cap| chrono::TimeDelta::from_std(cap).unwrap_or(chrono::TimeDelta::MAX)),
                concurrency: self.config.concurrency,
                sorted: capabilities.sort,
            };
            let plan = slices::plan(&searches, &rule, window)?;
            tracing::info!(
                collection,
                slices = plan.slices.len(),
                probes = plan.probes,
                matched = plan.matched,
                "found where the window's items are"
            );
            if let Some(matched) = plan.matched {
                archive.expect_products(product_type, matched)?;
            }
            plan.slices
        } else {
            vec![window]
        };
        if !capabilities.sort {
            tracing::warn!(
                collection,
                "the server cannot sort: each slice is read whole, then applied in order of {}",
                time_field.name()
            );
        }
        if slices.len() > 1 {
            tracing::info!(
                collection,
                slices = slices.len(),
                concurrency = self.config.concurrency,
                "reading the window in time slices"
            );
        }
        let firsts = slices
            .iter()
            .map(|slice| searches.first(*slice, self.config.page_size, false))
            .collect::<Result<Vec<_>>>()?;
        let mut read = Read::default();
        let mut held: Vec<MappedItem> = Vec::new();
        harvest::read_in_order(
            &self.client,
            firsts,
            self.config.concurrency,
            slices::FEW_PAGES as usize,
            |event| match event {
                // Commit what is written before waiting for the server.
                harvest::Event::Wait => archive.idle(),
                harvest::Event::Page { slice, features } => {
                    let slice = slices[slice];
                    let page = self.map_page(
                        archive,
                        &features,
                        product_type,
                        (slice.start, slice.end),
                        &mut read,
                        skipped,
                    )?;
                    if capabilities.sort {
                        read.apply(archive, page, request.force, product_type, false)
                    } else {
                        held.extend(page);
                        Ok(())
                    }
                }
                harvest::Event::End { pages } => {
                    read.pages += pages;
                    let mut slice = std::mem::take(&mut held);
                    slice.sort_by_key(|m| m.time);
                    read.apply(archive, slice, request.force, product_type, false)
                }
            },
        )?;
        read.progress.report(archive, product_type, true)?;
        tracing::info!(
            collection,
            product_type,
            pages = read.pages,
            items = read.seen.len(),
            "read the window"
        );
        if self.config.prune {
            if read.failed {
                tracing::warn!(
                    product_type,
                    "not pruning: some items of the window could not be read"
                );
            } else {
                self.prune(archive, request, product_type, &read.seen)?;
            }
        }
        Ok(())
    }

    /// Whether to filter on `updated` with the server's CQL2: only when it
    /// says it can and is seen to. Servers that claim the filter have been
    /// seen to answer a filter on `updated` with no items and no error, or
    /// to ignore it; a filter that does not work would lose changes.
    fn filter_works(
        &self,
        capabilities: &Capabilities,
        collection: &str,
        request: &SyncRequest,
    ) -> Result<bool> {
        if self.config.time_field != TimeField::Updated
            || !capabilities.cql2_text
            || (request.start.is_none() && request.end.is_none())
        {
            return Ok(capabilities.cql2_text);
        }
        let probe = filter_probe(capabilities, collection, request.start, request.end, 10)?;
        let doubt = match harvest::fetch(&self.client, &probe) {
            Err(error) => Some(format!("the filtered request failed: {error:#}")),
            Ok(page) => {
                let items = page
                    .get("features")
                    .and_then(|f| f.as_array())
                    .cloned()
                    .unwrap_or_default();
                let updated = |item: &serde_json::Value| {
                    item.pointer("/properties/updated")
                        .and_then(|u| u.as_str())
                        .and_then(|u| muninn_sync_plugin_api::parse_timestamp(u).ok())
                };
                let outside = items.iter().any(|item| {
                    updated(item).is_none_or(|t| {
                        request.start.is_some_and(|s| t < s) || request.end.is_some_and(|e| t > e)
                    })
                });
                if outside {
                    Some("it returned items outside the window".to_string())
                } else if items.is_empty() {
                    self.newest_in_window(capabilities, collection, request)?
                } else {
                    None
                }
            }
        };
        match doubt {
            None => Ok(true),
            Some(why) => {
                tracing::warn!(
                    collection,
                    "the server's CQL2 filter on \"updated\" cannot be trusted ({why}): reading the collection whole and filtering here"
                );
                Ok(false)
            }
        }
    }

    /// Why an empty filtered answer is doubtful. When the newest item
    /// (the server must sort) was updated after the window's start, the
    /// filter `updated >= start` alone must find something: if it does not,
    /// the filter does not work. Without sorting, or when a check fails, the
    /// empty answer is doubted.
    fn newest_in_window(
        &self,
        capabilities: &Capabilities,
        collection: &str,
        request: &SyncRequest,
    ) -> Result<Option<String>> {
        if !capabilities.sort {
            return Ok(Some(
                "it found nothing, and without sorting that cannot be checked".into(),
            ));
        }
        let mut url = muninn_sync_plugin_api::http::Url::parse(&capabilities.search)?;
        url.query_pairs_mut()
            .append_pair("collections", collection)
            .append_pair("limit", "1")
            .append_pair("sortby", "-updated");
        let newest_request = search::SearchRequest {
            method: "GET".into(),
            url: url.to_string(),
            body: None,
            headers: Default::default(),
        };
        let newest = match harvest::fetch(&self.client, &newest_request) {
            Ok(page) => page
                .pointer("/features/0/properties/updated")
                .and_then(|u| u.as_str())
                .and_then(|u| muninn_sync_plugin_api::parse_timestamp(u).ok()),
            Err(error) => {
                return Ok(Some(format!(
                    "the check of its newest item failed: {error:#}"
                )))
            }
        };
        let Some(newest) = newest.filter(|t| request.start.is_none_or(|s| *t >= s)) else {
            return Ok(None); // nothing was updated since the start: nothing to find
        };
        let open = filter_probe(capabilities, collection, request.start, None, 1)?;
        let found = harvest::fetch(&self.client, &open)
            .ok()
            .and_then(|page| {
                page.get("features")
                    .and_then(|f| f.as_array())
                    .map(|f| !f.is_empty())
            })
            .unwrap_or(false);
        Ok((!found).then(|| {
            format!(
                "it found nothing, not even the item updated at {newest}, after the window's start"
            )
        }))
    }

    /// Maps a page's items; reports the ones that cannot be mapped, and
    /// drops the ones outside `[start, end)` (the server's interval is closed
    /// at the end, and without a filter on `updated` it is no window).
    fn map_page(
        &self,
        archive: &mut Archive<'_>,
        features: &[serde_json::Value],
        product_type: &str,
        (start, end): (Option<Timestamp>, Option<Timestamp>),
        read: &mut Read,
        skipped: &mut SkippedFields,
    ) -> Result<Vec<MappedItem>> {
        let collection = self.config.collection(product_type);
        let time_field = self.config.time_field.name();
        let asset = self
            .config
            .asset
            .clone()
            .map_or(AssetChoice::Default, AssetChoice::Key);
        let in_window = |t: &Timestamp| start.is_none_or(|s| *t >= s) && end.is_none_or(|e| *t < e);
        let mut page = Vec::with_capacity(features.len());
        for feature in features {
            let id = feature.get("id").and_then(|i| i.as_str()).unwrap_or("?");
            let mapped = item::map_item(
                feature,
                product_type,
                collection,
                &asset,
                time_field,
                skipped,
            )
            .and_then(|m| match m.time {
                Some(_) => Ok(m),
                None => Err(anyhow!("item \"{id}\" has no {time_field} time")),
            });
            match mapped {
                Ok(mapped) => {
                    if mapped.time.is_some_and(|t| in_window(&t)) {
                        read.seen.insert(mapped.product.uuid);
                        page.push(mapped);
                    }
                }
                Err(error) => {
                    read.failed = true;
                    archive.report_failure(&format!("{collection}/{id}"), &error)?;
                }
            }
        }
        Ok(page)
    }

    /// The products of the window by `property` that the server did not
    /// return and that `counts` accepts.
    fn unseen(
        &self,
        archive: &mut Archive<'_>,
        request: &SyncRequest,
        product_type: &str,
        property: &str,
        seen: &HashSet<Uuid>,
        counts: impl Fn(&muninn_sync_plugin_api::Product) -> bool,
    ) -> Result<Vec<Uuid>> {
        archive
            .products_in_window(
                product_type,
                property,
                request.start,
                request.end,
                &[item::NAMESPACE],
            )
            .filter_map(|p| {
                p.map(|p| (!seen.contains(&p.uuid) && counts(&p)).then_some(p.uuid))
                    .transpose()
            })
            .collect()
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
        // A product is gone when its time as the window reads it (the item's
        // datetime, or its start_datetime when datetime is null) lies in the
        // window and the server did not return it.
        let gone: Vec<Uuid> = match self.config.time_field {
            TimeField::Updated if request.end.is_some() => {
                // An item changed after the end has left the window without
                // leaving the server: it cannot be told from a removed one.
                tracing::warn!(
                    product_type,
                    "not pruning: with time_field = \"updated\" only a window without --end can be pruned"
                );
                return Ok(());
            }
            TimeField::Updated => {
                self.unseen(archive, request, product_type, "stac.updated", seen, |_| {
                    true
                })?
            }
            TimeField::Datetime => {
                let mut gone = self.unseen(
                    archive,
                    request,
                    product_type,
                    "stac.datetime",
                    seen,
                    |_| true,
                )?;
                gone.extend(self.unseen(
                    archive,
                    request,
                    product_type,
                    "stac.start_datetime",
                    seen,
                    |p| {
                        p.namespaces
                            .get(item::NAMESPACE)
                            .is_none_or(|ns| !ns.contains_key("datetime"))
                    },
                )?);
                gone
            }
        };
        let mut removed = 0usize;
        for uuid in &gone {
            // The host removes only this synchronizer's own products (it
            // warns about the others); one removal that fails is reported
            // and the prune goes on.
            match archive.remove(*uuid) {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(error) => archive.report_failure_of_type(
                    product_type,
                    &format!("{product_type}/uuid {}", uuid.simple()),
                    &error.context("pruning a product the server no longer has"),
                )?,
            }
        }
        tracing::info!(
            product_type,
            removed,
            left = gone.len() - removed,
            "pruned products the server no longer has"
        );
        Ok(())
    }
}

/// An unsorted request of up to `limit` items filtered on `updated` with
/// CQL2 text, to see whether the server's filter works.
fn filter_probe(
    capabilities: &Capabilities,
    collection: &str,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    limit: u32,
) -> Result<search::SearchRequest> {
    search::first_request(
        &capabilities.search,
        &search::Window {
            collection,
            start,
            end,
            limit,
            time_field: "updated",
            sort: false,
            descending: false,
            cql2_text: true,
        },
    )
}

/// What has been read of one product type's window.
#[derive(Default)]
struct Read {
    seen: HashSet<Uuid>,
    failed: bool,
    pages: usize,
    progress: Progress,
}

impl Read {
    /// Applies items in order of time, with one look-up for all of them:
    /// creates the new ones, updates the ones that differ (all with
    /// `force`), counts the rest as unchanged; an item the catalogue refuses
    /// is reported and skipped. Then reports the watermark.
    fn apply(
        &mut self,
        archive: &mut Archive<'_>,
        items: Vec<MappedItem>,
        force: bool,
        product_type: &str,
        finished: bool,
    ) -> Result<()> {
        let names: Vec<&str> = items
            .iter()
            .map(|m| m.product.product_name.as_str())
            .collect();
        let stored = archive.products_by_name(product_type, &names, &[item::NAMESPACE])?;
        for (mapped, existing) in items.iter().zip(stored) {
            let outcome = match existing {
                None => archive.create_properties(&mapped.product),
                Some(existing) => {
                    // With `force` the item is written even when nothing
                    // differs, but only what differs is rewritten.
                    let update = Update::between(&existing, &mapped.product, false);
                    archive.apply_update(&update, force).map(drop)
                }
            };
            if let Err(error) = outcome {
                self.failed = true;
                let what = format!("{product_type}/{}", mapped.product.product_name);
                archive.report_failure(&what, &error)?;
            }
            self.progress.saw(mapped.time);
        }
        self.progress.report(archive, product_type, finished)
    }
}

/// The watermark as items pass in order of time.
#[derive(Default)]
struct Progress(WatermarkTracker);

impl Progress {
    fn saw(&mut self, time: Option<Timestamp>) {
        if let Some(time) = time {
            self.0.saw(time);
        }
    }

    fn report(
        &mut self,
        archive: &mut Archive<'_>,
        product_type: &str,
        finished: bool,
    ) -> Result<()> {
        for done in self.0.due_times(finished) {
            archive.advance_watermark(product_type, done)?;
        }
        Ok(())
    }
}

export_plugin!("stac", Stac);
