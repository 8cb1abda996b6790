//! The `jsonl` synchronizer: keeps a catalogue in step with a JSON Lines
//! feed (one product per line; `.jsonl`, `.jsonl.gz`, or a directory of
//! them). It is also the reference plugin for authors and the feed behind
//! muninn-sync's benchmarks. The line format is in docs/jsonl.md.

mod feed;
mod line;

use anyhow::{anyhow, Result};
use line::Record;
use muninn_sync_plugin_api::model::{from_micros, to_micros};
use muninn_sync_plugin_api::{
    export_plugin, Archive, Context, Deletion, Product, SyncRequest, Synchronizer, Value,
};
use std::collections::{BTreeMap, HashMap};
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
    /// The longest line read, in bytes (default 16 MiB): a longer one is a
    /// failed product, never read into memory whole.
    pub max_line_bytes: Option<u64>,
}

pub struct Jsonl {
    path: PathBuf,
    product_types: Option<Vec<String>>,
    max_line_bytes: u64,
}

impl Synchronizer for Jsonl {
    type Config = Config;

    fn new(config: Config, context: &Context) -> Result<Self> {
        if config.path.trim().is_empty() {
            return Err(anyhow!(
                "key \"path\": must name a .jsonl file or a directory"
            ));
        }
        let max_line_bytes = config
            .max_line_bytes
            .unwrap_or(feed::DEFAULT_MAX_LINE_BYTES);
        if max_line_bytes == 0 {
            return Err(anyhow!(
                "key \"max_line_bytes\": must be at least 1 (the default is {})",
                feed::DEFAULT_MAX_LINE_BYTES
            ));
        }
        Ok(Jsonl {
            path: context.resolve_path(&config.path),
            product_types: config.product_types,
            max_line_bytes,
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
        // The product types this run syncs, whose watermarks it moves: the
        // feed is read whole up to each reported time, so every wanted type
        // is covered, quiet ones too (else their old watermarks would hold
        // every incremental window back).
        let mut wanted_types = std::collections::BTreeSet::<String>::new();
        for listed in [request.product_types.as_ref(), self.product_types.as_ref()]
            .into_iter()
            .flatten()
        {
            wanted_types.extend(listed.iter().filter(|t| wanted_type(t)).cloned());
        }
        let wanted_types = std::cell::RefCell::new(wanted_types);
        let index = feed::index(&files, self.max_line_bytes, |product_type, modified| {
            if !wanted_type(product_type) {
                return false;
            }
            if !wanted_types.borrow().contains(product_type) {
                wanted_types.borrow_mut().insert(product_type.to_string());
            }
            request.in_window(modified)
        })?;
        let types_seen = wanted_types.into_inner();
        // What the sync hands over of each type, for the host's progress;
        // a type whose lines were not counted goes by time.
        for product_type in &types_seen {
            if let Some(lines) = index.expected(product_type) {
                archive.expect_products(product_type, lines)?;
            }
        }
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
        for malformed in &index.malformed {
            let error = anyhow!("{}", malformed.reason);
            match &malformed.product_type {
                // Only that type's watermark is held back; the others' go on.
                Some(product_type) => {
                    archive.report_failure_of_type(product_type, &malformed.location, &error)?
                }
                None => archive.report_failure(&malformed.location, &error)?,
            }
        }
        let mut managed: Vec<&str> = index.namespaces.iter().map(String::as_str).collect();
        managed.push(line::NAMESPACE);
        let mut chunk = Chunk::default();
        let mut stored = StoredLines::new(archive, request);
        let mut progress = Progress::new(&types_seen);
        feed::visit(&files, &index, self.max_line_bytes, |entry, text| {
            let modified = muninn_sync_plugin_api::model::from_micros(entry.modified)
                .ok_or_else(|| anyhow!("\"modified\" out of range"))?;
            progress.watermark.saw(modified);
            if !request.force
                && stored.holds(
                    archive,
                    &modified,
                    entry.key[0] as i64,
                    line::fingerprint(text),
                )?
            {
                // The same line as last time: nothing to do, not even parse.
                progress.unchanged += 1;
                return Ok(());
            }
            chunk.push(
                entry.file as usize,
                u64::from(entry.line),
                entry.modified,
                text,
            );
            if chunk.len == CHUNK {
                progress.unchanged += apply_chunk(archive, &files, &mut chunk, request, &managed)?;
                progress.report(archive, false)?;
            }
            Ok(())
        })?;
        progress.unchanged += apply_chunk(archive, &files, &mut chunk, request, &managed)?;
        progress.report(archive, true)
    }
}

/// What the run tells the host as it goes: unchanged lines, in bulk, and the
/// watermark. Lines are visited in order of `modified`, so once a later time
/// is reached every line up to the earlier one has been handed over, for
/// every product type in the window.
struct Progress<'t> {
    types: &'t std::collections::BTreeSet<String>,
    watermark: muninn_sync_plugin_api::WatermarkTracker,
    unchanged: u64,
}

impl<'t> Progress<'t> {
    fn new(types: &'t std::collections::BTreeSet<String>) -> Progress<'t> {
        Progress {
            types,
            watermark: Default::default(),
            unchanged: 0,
        }
    }

    /// Reports what is done; call it after the lines visited so far have
    /// been applied. `finished`: every line has been visited.
    fn report(&mut self, archive: &mut Archive<'_>, finished: bool) -> Result<()> {
        archive.count_unchanged(std::mem::take(&mut self.unchanged))?;
        for done in self.watermark.due_times(finished) {
            for product_type in self.types {
                archive.advance_watermark(product_type, done)?;
            }
        }
        Ok(())
    }
}

/// What the catalogue holds of the window, read in the feed's own order:
/// the `jsonl` rows ordered by `modified`, merged with the feed's lines as
/// they pass. A line whose product is stored with the same `modified`, key
/// and fingerprint is unchanged, found without a look-up per product.
struct StoredLines {
    cursor: muninn_sync_plugin_api::ScanCursor,
    /// The first row past the current time, read ahead.
    ahead: Option<muninn_sync_plugin_api::ScanRow>,
    /// The time of `group`, and the (key, fingerprint) of its rows.
    group_time: Option<muninn_sync_plugin_api::Timestamp>,
    group: std::collections::HashSet<(i64, i64)>,
}

impl StoredLines {
    fn new(archive: &Archive<'_>, request: &SyncRequest) -> StoredLines {
        StoredLines {
            cursor: archive.scan_namespace(
                line::NAMESPACE,
                "modified",
                &["key", "fingerprint"],
                request.start,
                request.end,
            ),
            ahead: None,
            group_time: None,
            group: std::collections::HashSet::new(),
        }
    }

    /// Whether the catalogue holds a product with this key, written from a
    /// line with this `modified` time and fingerprint. Calls must come in
    /// order of `modified`, as the feed's index gives them.
    fn holds(
        &mut self,
        archive: &mut Archive<'_>,
        modified: &muninn_sync_plugin_api::Timestamp,
        key: i64,
        fingerprint: i64,
    ) -> Result<bool> {
        if self.group_time.as_ref() != Some(modified) {
            self.group.clear();
            loop {
                let row = match self.ahead.take() {
                    Some(row) => row,
                    None => match self.cursor.next_row(archive)? {
                        Some(row) => row,
                        None => break,
                    },
                };
                if row.time < *modified {
                    continue;
                }
                if row.time > *modified {
                    self.ahead = Some(row);
                    break;
                }
                if let [Some(Value::Integer(key)), Some(Value::Integer(fingerprint))] =
                    row.values.as_slice()
                {
                    self.group.insert((*key, *fingerprint));
                }
            }
            self.group_time = Some(*modified);
        }
        Ok(self.group.contains(&(key, fingerprint)))
    }
}

/// How many lines are looked up in the catalogue together.
const CHUNK: usize = 256;

/// From how many lines to apply in a chunk they are parsed on a thread of
/// their own (below, starting the thread costs more than it saves).
const PARSE_ON_A_THREAD_FROM: usize = 16;

/// How many parsed lines may wait for the catalogue.
const PARSED_AHEAD: usize = 64;

/// How many parsed lines are handed over together.
const PARSED_TOGETHER: usize = 8;

/// Lines waiting for their look-up. The buffers are kept from chunk to
/// chunk, so reading a feed allocates nothing per line.
#[derive(Default)]
struct Chunk {
    /// File number, line number, `modified` (µs) and text of each line.
    lines: Vec<(usize, u64, i64, Vec<u8>)>,
    len: usize,
}

impl Chunk {
    fn push(&mut self, file: usize, line: u64, modified: i64, text: &[u8]) {
        if self.len == self.lines.len() {
            self.lines
                .push((file, line, modified, Vec::with_capacity(text.len())));
        }
        let slot = &mut self.lines[self.len];
        slot.0 = file;
        slot.1 = line;
        slot.2 = modified;
        slot.3.clear();
        slot.3.extend_from_slice(text);
        self.len += 1;
    }

    fn lines(&self) -> &[(usize, u64, i64, Vec<u8>)] {
        &self.lines[..self.len]
    }
}

/// Looks a chunk of lines up in one go, skips the lines whose product the
/// catalogue holds with the same fingerprint (unless forced), and parses and
/// applies the others in order.
fn apply_chunk(
    archive: &mut Archive<'_>,
    files: &[feed::FeedFile],
    chunk: &mut Chunk,
    request: &SyncRequest,
    managed: &[&str],
) -> Result<u64> {
    let mut unchanged = 0;
    let identities: Vec<Option<line::Identity<'_>>> = chunk
        .lines()
        .iter()
        .map(|(_, _, _, text)| line::identity(text))
        .collect();
    // The stored fingerprint of each product the catalogue has (None when
    // it has the product without one).
    let mut stored: HashMap<(&str, &str), Option<i64>> = HashMap::with_capacity(chunk.len);
    // The `modified` time (µs) of the line each stored product came from.
    let mut stored_modified: HashMap<(&str, &str), i64> = HashMap::with_capacity(chunk.len);
    let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for identity in identities.iter().flatten() {
        by_type
            .entry(&identity.product_type)
            .or_default()
            .push(&identity.product_name);
    }
    // When the feed deleted each product the catalogue does not hold, as
    // recorded by earlier runs: an older line must not bring it back.
    let mut deleted: HashMap<(&str, &str), i64> = HashMap::new();
    // The catalogue's state of each stored product, with every namespace
    // this synchronizer manages: read here once for the chunk, so that
    // applying a changed (or forced) line needs no look-up of its own.
    let mut found_products: HashMap<(&str, &str), Product> = HashMap::new();
    for (product_type, names) in &by_type {
        let found = archive.products_by_name(product_type, names, managed)?;
        let absent: Vec<&str> = names
            .iter()
            .zip(&found)
            .filter(|(_, product)| product.is_none())
            .map(|(name, _)| *name)
            .collect();
        for (name, time) in absent.iter().zip(archive.deletions(product_type, &absent)?) {
            if let Some(time) = time {
                deleted.insert((product_type, name), to_micros(&time));
            }
        }
        for (name, product) in names.iter().zip(found) {
            if let Some(product) = product {
                let fingerprint = product
                    .namespaces
                    .get(line::NAMESPACE)
                    .and_then(|ns| ns.get("fingerprint"))
                    .and_then(|v| match v {
                        Value::Integer(i) => Some(*i),
                        _ => None,
                    });
                stored.insert((product_type, name), fingerprint);
                if let Some(Value::Timestamp(t)) = product
                    .namespaces
                    .get(line::NAMESPACE)
                    .and_then(|ns| ns.get("modified"))
                {
                    stored_modified.insert((product_type, name), to_micros(t));
                }
                found_products.insert((product_type, name), product);
            }
        }
    }
    // The lines to apply; the others are unchanged.
    let mut applied = Vec::with_capacity(chunk.len);
    for (index, ((file, line_number, modified, text), identity)) in
        chunk.lines().iter().zip(&identities).enumerate()
    {
        let id = identity
            .as_ref()
            .map(|id| (&*id.product_type, &*id.product_name));
        let known = id.and_then(|id| stored.get(&id));
        if !request.force && known == Some(&Some(line::fingerprint(text))) {
            unchanged += 1; // the same line as last time: nothing to do, not even parse
            continue;
        }
        if id
            .and_then(|id| stored_modified.get(&id))
            .is_some_and(|newer| newer > modified)
        {
            // The catalogue holds a newer state of this product (from a later
            // window synced before): an older line must not take it back.
            tracing::debug!(line = %files[*file].location(*line_number), "older than the catalogue's state: skipped");
            unchanged += 1;
            continue;
        }
        if id
            .and_then(|id| deleted.get(&id))
            .is_some_and(|deletion| deletion >= modified)
        {
            // The feed deleted this product after this line was written (a
            // later window synced before): the line must not bring it back.
            tracing::debug!(line = %files[*file].location(*line_number), "deleted later in the feed: skipped");
            unchanged += 1;
            continue;
        }
        applied.push(index);
    }
    let lines = chunk.lines();
    let mut apply = |index: usize, parsed: Result<Record>| -> Result<()> {
        let (file, line_number, modified, _) = &lines[index];
        let id = identities[index]
            .as_ref()
            .map(|id| (&*id.product_type, &*id.product_name));
        let known = id.and_then(|id| stored.get(&id));
        let location = || files[*file].location(*line_number);
        let record = match parsed {
            Ok(record) => record,
            Err(error) => {
                return match id {
                    Some((product_type, _)) => {
                        archive.report_failure_of_type(product_type, &location(), &error)
                    }
                    None => archive.report_failure(&location(), &error),
                };
            }
        };
        let outcome = match &record {
            Record::Product(product) if known.is_none() => archive.create_properties(product),
            Record::Product(product) => match id.and_then(|id| found_products.remove(&id)) {
                Some(existing)
                    if existing.product_type == product.product_type
                        && existing.product_name == product.product_name =>
                {
                    archive
                        .apply_found(Some(existing), product, request.force, managed)
                        .map(drop)
                }
                // The line's quick identity named another product than the
                // parsed line holds: look that one up on its own.
                _ => archive.apply(product, request.force, managed).map(drop),
            },
            Record::Deleted {
                product_type,
                product_name,
                uuid,
            } => {
                let deletion = Deletion {
                    product_type: product_type.clone(),
                    product_name: product_name.clone(),
                    uuid: *uuid,
                    time: from_micros(*modified)
                        .ok_or_else(|| anyhow!("\"modified\" out of range"))?,
                };
                archive.record_deletion(&deletion).and_then(|()| {
                    if uuid.is_none() && known.is_none() {
                        return Ok(()); // nothing stored under that name
                    }
                    remove(archive, product_type, product_name, *uuid)
                })
            }
        };
        if let Err(error) = outcome {
            let product = format!("{} ({})", location(), record.label());
            archive.report_failure_of_type(record.product_type(), &product, &error)?;
        }
        Ok(())
    };
    if applied.len() < PARSE_ON_A_THREAD_FROM {
        for index in applied {
            apply(index, line::parse(&lines[index].3))?;
        }
    } else {
        // Lines are parsed on a thread of their own while the catalogue
        // writes the ones before: parsing is a tenth of a first sync's
        // work, done meanwhile on another core. The thread ends with the
        // chunk, and stops early when applying fails.
        std::thread::scope(|scope| -> Result<()> {
            // Handed over a few at a time: a hand-over per line woke the
            // other thread 100,000 times per 100,000 lines.
            let (sender, parsed) = std::sync::mpsc::sync_channel(PARSED_AHEAD / PARSED_TOGETHER);
            let to_parse = &applied;
            scope.spawn(move || {
                for group in to_parse.chunks(PARSED_TOGETHER) {
                    let records: Vec<_> = group
                        .iter()
                        .map(|&index| line::parse(&lines[index].3))
                        .collect();
                    if sender.send(records).is_err() {
                        break;
                    }
                }
            });
            for (&index, record) in applied.iter().zip(parsed.into_iter().flatten()) {
                apply(index, record)?;
            }
            Ok(())
        })?;
    }
    chunk.len = 0;
    Ok(unchanged)
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
        // The host leaves another synchronizer's product alone (and says so).
        if archive.remove(product.uuid)? {
            tracing::debug!(product = %format!("{product_type}/{product_name}"), "removed");
        }
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
        file.for_each_line_of(feed::DEFAULT_MAX_LINE_BYTES, |_, text| {
            line::parse(text)?;
            products += 1;
            Ok(())
        })?;
    }
    Ok(products)
}
