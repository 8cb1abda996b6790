//! The `jsonl` synchronizer: keeps a catalogue in step with a JSON Lines
//! feed (one product per line; `.jsonl`, `.jsonl.gz`, or a directory of
//! them). It is also the reference plugin for authors and the feed behind
//! muninn-sync's benchmarks. The line format is in docs/jsonl.md.

mod feed;
mod line;

use anyhow::{anyhow, Result};
use line::Record;
use muninn_sync_plugin_api::{export_plugin, Archive, Context, SyncRequest, Synchronizer};
use std::path::PathBuf;

/// The `["synchronizer:<name>"]` section of a `jsonl` synchronizer.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A `.jsonl` or `.jsonl.gz` file, or a directory of them; relative to
    /// the configuration file's directory.
    pub path: String,
    /// Only these product types are synced (default: all in the feed).
    pub product_types: Option<Vec<String>>,
}

pub struct Jsonl {
    path: PathBuf,
    product_types: Option<Vec<String>>,
}

impl Synchronizer for Jsonl {
    type Config = Config;

    fn new(config: Config, context: &Context) -> Result<Self> {
        if config.path.trim().is_empty() {
            return Err(anyhow!(
                "key \"path\": must name a .jsonl file or a directory"
            ));
        }
        Ok(Jsonl {
            path: context.resolve_path(&config.path),
            product_types: config.product_types,
        })
    }

    fn sync(&mut self, archive: &mut Archive<'_>, request: &SyncRequest) -> Result<()> {
        let files = feed::files(&self.path)?;
        let wanted_type = |product_type: &str| {
            request.wants_product_type(product_type)
                && self
                    .product_types
                    .as_ref()
                    .is_none_or(|types| types.iter().any(|t| t == product_type))
        };
        let index = feed::index(&files, |product_type, modified| {
            wanted_type(product_type) && request.in_window(modified)
        })?;
        tracing::info!(
            feed = %self.path.display(),
            files = files.len(),
            lines = index.lines,
            in_window = index.entries.len() + index.superseded,
            superseded = index.superseded,
            "read the feed"
        );
        if !index.in_file_order {
            tracing::debug!("the feed is not in chronological order: reading it by index");
        }
        for (location, message) in &index.malformed {
            archive.report_failure(location, &anyhow!("{message}"))?;
        }
        let managed: Vec<&str> = index.namespaces.iter().map(String::as_str).collect();
        feed::visit(&files, &index, |file, line, text| {
            let location = file.location(line);
            let record = match line::parse(text) {
                Ok(record) => record,
                Err(error) => return archive.report_failure(&location, &error),
            };
            let outcome = match &record {
                Record::Product(product) => {
                    archive.apply(product, request.force, &managed).map(drop)
                }
                Record::Deleted {
                    product_type,
                    product_name,
                    uuid,
                } => remove(archive, product_type, product_name, *uuid),
            };
            match outcome {
                Ok(()) => Ok(()),
                Err(error) => {
                    archive.report_failure(&format!("{location} ({})", record.label()), &error)
                }
            }
        })
    }
}

/// Removes the product a deletion line names, by uuid when the line has one.
fn remove(
    archive: &mut Archive<'_>,
    product_type: &str,
    product_name: &str,
    uuid: Option<muninn_sync_plugin_api::Uuid>,
) -> Result<()> {
    let found = match uuid {
        Some(uuid) => archive.product_by_uuid(uuid, &[])?,
        None => archive.product_by_name(product_type, product_name, &[])?,
    };
    if let Some(product) = found {
        archive.remove(product.uuid)?;
        tracing::debug!(product = %format!("{product_type}/{product_name}"), "removed");
    }
    Ok(())
}

export_plugin!("jsonl", Jsonl);

/// Reads every line of a feed and parses it into a product, as a sync does,
/// without touching a catalogue; returns how many products it read. This is
/// the least a sync of the feed can cost, and the benchmark's yardstick.
pub fn read_and_parse(path: &std::path::Path) -> Result<usize> {
    let files = feed::files(path)?;
    let mut products = 0;
    for file in &files {
        file.for_each_line_of(|_, text| {
            line::parse(text)?;
            products += 1;
            Ok(())
        })?;
    }
    Ok(products)
}
