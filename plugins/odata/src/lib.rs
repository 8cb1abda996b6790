//! The `odata` synchronizer: keeps a catalogue in step with the Copernicus
//! Data Space Ecosystem's OData catalogue (and services that answer as it
//! does). The mapping and the configuration are in docs/odata.md.

pub mod config;
pub mod product;
pub mod query;

use anyhow::{anyhow, Context as _, Result};
use config::Config;
use muninn_sync_plugin_api::http::HttpClient;
use muninn_sync_plugin_api::{
    export_plugin, Archive, Context, Product, SkippedFields, SyncRequest, Synchronizer, Timestamp,
    Update, Uuid, WatermarkTracker,
};
use product::{Mapped, Mapping, NAMESPACE};
use query::{Entry, Pager, Query};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, TryRecvError};

pub struct Odata {
    config: Config,
    client: HttpClient,
    download_root: String,
}

impl Synchronizer for Odata {
    type Config = Config;

    fn new(config: Config, _context: &Context) -> Result<Self> {
        config.check()?;
        // Credentials go to the service the section names, nowhere else.
        let client = HttpClient::builder()
            .config(config.http_config())
            .origin(config.url.clone())
            .user_agent(concat!("muninn-sync-odata/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let download_root = config.download_root();
        Ok(Odata {
            config,
            client,
            download_root,
        })
    }

    fn sync(&mut self, archive: &mut Archive<'_>, request: &SyncRequest) -> Result<()> {
        // `-p` without values asks for no type at all, as in muninn.
        let product_types = match &request.product_types {
            Some(types) => types.clone(),
            None if self.config.product_types.is_empty() => {
                return Err(anyhow!(
                "no product types: name them with -p, or list them with the key \"product_types\""
            ))
            }
            None => self.config.product_types.clone(),
        };
        // With deletions, an open window ends now, for both reads: the
        // products' watermark then never passes a deletion made while they
        // were read, which the next run would no longer ask for.
        let mut request = request.clone();
        if self.config.deletions && request.end.is_none() {
            request.end = Some(muninn_sync_plugin_api::model::truncate_to_micros(
                chrono::Utc::now(),
            ));
        }
        // Fields left out of products are summed up however the run ends.
        let mut skipped = SkippedFields::default();
        let outcome = product_types.iter().try_for_each(|product_type| {
            if self.config.deletions {
                self.remove_deleted(archive, &request, product_type)?;
            }
            self.sync_products(archive, &request, product_type, &mut skipped)
        });
        skipped.log_summary();
        outcome
    }
}

/// A product as read from a page: its time, and the product (with the
/// fields left out of it) or why it cannot be one.
struct Read {
    time: Timestamp,
    name: String,
    product: Result<Mapped>,
}

impl Odata {
    /// The clauses every query of `product_type` starts with.
    fn clauses(&self, product_type: &str) -> Vec<String> {
        vec![
            query::collection_clause(&self.config.collection),
            query::product_type_clause(product_type),
        ]
    }

    /// Reads the products of `product_type` modified (or published) in the
    /// window, oldest first, and creates, updates or counts each as
    /// unchanged; reports the watermark as it goes, and the fields left out
    /// to `skipped`.
    fn sync_products(
        &self,
        archive: &mut Archive<'_>,
        request: &SyncRequest,
        product_type: &str,
        skipped: &mut SkippedFields,
    ) -> Result<()> {
        let time_field = self.config.time_field.name();
        let mut clauses = self.clauses(product_type);
        if let Some(filter) = &self.config.filter {
            clauses.push(format!("({filter})"));
        }
        let query = Query {
            entity_set: format!("{}/Products", self.config.root()),
            clauses,
            time_field: time_field.to_string(),
            start: request.start,
            end: request.end,
            page_size: self.config.page_size,
            attributes: true,
        };
        let mapping = Mapping {
            product_type,
            download_root: &self.download_root,
            name_suffixes: &self.config.name_suffixes,
        };
        let collection = &self.config.collection;
        let mut watermark = WatermarkTracker::default();
        let mut products = 0usize;
        let requests = read_ahead(
            archive,
            &self.client,
            query,
            Counted::Yes,
            |entries| {
                entries
                    .into_iter()
                    .map(|entry| Read {
                        time: entry.time,
                        name: product::name(&entry.json).to_string(),
                        product: product::map_product(&entry.json, &mapping)
                            .with_context(|| format!("product {}", entry.id)),
                    })
                    .collect::<Vec<_>>()
            },
            |archive, page| {
                products += page.len();
                self.apply_page(
                    archive,
                    page,
                    product_type,
                    request.force,
                    &mut watermark,
                    skipped,
                )
                .map(|()| tracing::debug!(collection, product_type, products, "applied a page"))
            },
            |archive, count| archive.expect_products(product_type, count),
        )?;
        for done in watermark.due_times(true) {
            archive.advance_watermark(product_type, done)?;
        }
        tracing::info!(
            collection,
            product_type,
            requests,
            products,
            "read the window of {time_field}"
        );
        Ok(())
    }

    /// Applies a page with one catalogue look-up; a product that cannot be
    /// mapped or that the catalogue refuses is reported and skipped, the
    /// fields left out of the others go to `skipped`.
    #[allow(clippy::too_many_arguments)]
    fn apply_page(
        &self,
        archive: &mut Archive<'_>,
        page: Vec<Read>,
        product_type: &str,
        force: bool,
        watermark: &mut WatermarkTracker,
        skipped: &mut SkippedFields,
    ) -> Result<()> {
        let names: Vec<&str> = page
            .iter()
            .filter_map(|read| read.product.as_ref().ok())
            .map(|mapped| mapped.product.product_name.as_str())
            .collect();
        let mut stored = archive
            .products_by_name(product_type, &names, &[NAMESPACE])?
            .into_iter();
        for read in &page {
            let what = format!("{}/{}", self.config.collection, read.name);
            let outcome = match &read.product {
                Ok(mapped) => {
                    for left_out in &mapped.left_out {
                        skipped.skip(&what, &left_out.field, &left_out.reason);
                    }
                    apply_one(archive, &mapped.product, stored.next().flatten(), force)
                }
                Err(error) => Err(anyhow!("{error:#}")),
            };
            if let Err(error) = outcome {
                archive.report_failure(&what, &error)?;
            }
            watermark.saw(read.time);
        }
        if let Some(done) = watermark.due(false) {
            archive.advance_watermark(product_type, done)?;
        }
        Ok(())
    }

    /// Removes the products of `product_type` that the service lists as
    /// deleted in the window (by `DeletionDate`), logging why they went.
    fn remove_deleted(
        &self,
        archive: &mut Archive<'_>,
        request: &SyncRequest,
        product_type: &str,
    ) -> Result<()> {
        let query = Query {
            entity_set: format!("{}/DeletedProducts", self.config.root()),
            clauses: self.clauses(product_type),
            time_field: "DeletionDate".into(),
            start: request.start,
            end: request.end,
            page_size: self.config.page_size,
            attributes: false,
        };
        let mut listed = 0usize;
        let mut removed = 0usize;
        let requests = read_ahead(
            archive,
            &self.client,
            query,
            Counted::No,
            |entries: Vec<Entry>| entries,
            |archive, entries| {
                listed += entries.len();
                for entry in entries {
                    let name = product::name(&entry.json);
                    let Ok(uuid) = Uuid::parse_str(&entry.id) else {
                        tracing::warn!(
                            id = entry.id,
                            name,
                            "a deleted product whose Id is not a uuid: ignored"
                        );
                        continue;
                    };
                    // The host removes only this synchronizer's own
                    // products (it warns about the others); one removal
                    // that fails is reported and the others go on.
                    let existed = match archive.remove(uuid) {
                        Ok(existed) => existed,
                        Err(error) => {
                            let what = format!("{product_type}/{name}");
                            let error = error.context(format!(
                                "removing {name} ({}), deleted from the service",
                                entry.id
                            ));
                            archive.report_failure_of_type(product_type, &what, &error)?;
                            continue;
                        }
                    };
                    if existed {
                        removed += 1;
                        let cause = entry
                            .json
                            .get("DeletionCause")
                            .and_then(|c| c.as_str())
                            .unwrap_or("no cause given");
                        tracing::info!(
                            product_type,
                            "removed {name} ({}): deleted from the service on {} ({cause})",
                            entry.id,
                            entry.time.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
                        );
                    }
                }
                Ok(())
            },
            |_, _| Ok(()),
        )?;
        tracing::info!(
            collection = self.config.collection,
            product_type,
            requests,
            listed,
            removed,
            "read the deleted products of the window"
        );
        Ok(())
    }
}

/// Creates `product`, or updates `existing` (the catalogue's product of the
/// same type and name) when it differs or with `force`.
fn apply_one(
    archive: &mut Archive<'_>,
    product: &Product,
    existing: Option<Product>,
    force: bool,
) -> Result<()> {
    let existing = match existing {
        // muninn's product of that name, not one synced from the service
        // (ingested, or another synchronizer's): left as it is, since
        // rewriting its size, hash or physical name would describe a file
        // the archive does not hold.
        Some(existing)
            if existing.uuid != product.uuid && !existing.namespaces.contains_key(NAMESPACE) =>
        {
            tracing::warn!(
                product = %product.product_name,
                id = %product.uuid.hyphenated(),
                "left alone: the catalogue has a product of that type and name that was not synced from the service (uuid {})",
                existing.uuid.hyphenated()
            );
            return Ok(());
        }
        Some(existing) => existing,
        None => match archive.create_properties(product) {
            Ok(()) => return Ok(()),
            Err(refused) => {
                // Created since the look-up (the same name twice in one
                // page), or the same Id under another name: the product
                // was renamed, or `name_suffixes` changed.
                let named = archive.product_by_name(
                    &product.product_type,
                    &product.product_name,
                    &[NAMESPACE],
                )?;
                match named {
                    Some(named) => named,
                    None => match archive.product_by_uuid(product.uuid, &[NAMESPACE])? {
                        Some(renamed) if renamed.product_type == product.product_type => renamed,
                        _ => return Err(refused),
                    },
                }
            }
        },
    };
    if existing.uuid != product.uuid {
        return Err(anyhow!(
            "the catalogue's product of that name has another Id ({}): the service lists both, and this one ({}) waits until the other is deleted",
            existing.uuid.hyphenated(),
            product.uuid.hyphenated()
        ));
    }
    // With `force` the product is written even when nothing differs, but
    // only what differs is rewritten (see `Archive::apply_found`).
    let update = Update::between(&existing, product, false);
    archive.apply_update(&update, force).map(drop)
}

/// Whether [`read_ahead`] counts the window's products too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Yes,
    No,
}

/// What the reading threads hand over: a page, or how many products the
/// window holds.
enum Delivery<T> {
    Page(T),
    Count(u64),
}

/// Reads a query's pages on a thread of their own while `consume` applies
/// the ones read before: the next request is on its way while the catalogue
/// writes. `convert` runs on the reading thread. With [`Counted::Yes`] a
/// second thread asks, once, how many products the window holds, while the
/// pages are read (CDSE counts slowly: no page waits for it), and `expect`
/// gets the answer when it comes; a count the service does not give is
/// left out. Both go through `client`, so its request-rate cap holds for
/// them together. Returns the number of requests sent. The threads end
/// before this returns, so no connection outlives the call (a count still
/// on its way when the last page is applied is waited for).
#[allow(clippy::too_many_arguments)]
fn read_ahead<T: Send>(
    archive: &mut Archive<'_>,
    client: &HttpClient,
    query: Query,
    counted: Counted,
    convert: impl Fn(Vec<Entry>) -> T + Send,
    mut consume: impl FnMut(&mut Archive<'_>, T) -> Result<()>,
    mut expect: impl FnMut(&mut Archive<'_>, u64) -> Result<()>,
) -> Result<usize> {
    let stopped = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // One page waiting, one being read: bounded memory.
        let (sender, receiver) = sync_channel::<Result<Delivery<T>>>(1);
        let stopped = &stopped;
        let counter = (counted == Counted::Yes).then(|| {
            let sender = sender.clone();
            let query = query.clone();
            scope.spawn(move || {
                if let Some(count) = query::count(client, &query) {
                    // The consumer may have stopped: the count then goes
                    // nowhere.
                    let _ = sender.send(Ok(Delivery::Count(count)));
                }
                1
            })
        });
        let reader = scope.spawn(move || {
            let mut pager = Pager::new(client, query);
            while !stopped.load(Ordering::Relaxed) {
                let page = match pager.next_page() {
                    Ok(Some(entries)) => Ok(Delivery::Page(convert(entries))),
                    Ok(None) => break,
                    Err(error) => Err(error),
                };
                let failed = page.is_err();
                if sender.send(page).is_err() || failed {
                    break;
                }
            }
            pager.requests
        });
        let mut outcome = Ok(());
        loop {
            let delivery = match receiver.try_recv() {
                Ok(delivery) => delivery,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    // Waiting for the network: nothing is held open meanwhile.
                    if let Err(error) = archive.idle() {
                        outcome = Err(error);
                        break;
                    }
                    match receiver.recv() {
                        Ok(delivery) => delivery,
                        Err(_) => break,
                    }
                }
            };
            let handled = delivery.and_then(|delivery| match delivery {
                Delivery::Page(page) => consume(archive, page),
                Delivery::Count(count) => expect(archive, count),
            });
            if let Err(error) = handled {
                outcome = Err(error);
                break;
            }
        }
        stopped.store(true, Ordering::Relaxed);
        drop(receiver);
        let counts = counter.map_or(Ok(0), joined)?;
        let requests = joined(reader)?;
        outcome.map(|()| requests + counts)
    })
}

/// What a thread of [`read_ahead`]'s returned, or the panic it ended with.
fn joined<R>(thread: std::thread::ScopedJoinHandle<'_, R>) -> Result<R> {
    thread.join().map_err(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        anyhow!("the thread reading the service panicked: {why}")
    })
}

export_plugin!("odata", Odata);
