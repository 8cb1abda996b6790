//! Reading a feed: its files, and an index of the lines a sync wants in the
//! order it wants them, without holding the feed in memory.

use anyhow::{bail, Context, Result};
use flate2::read::MultiGzDecoder;
use muninn_sync_plugin_api::{model::to_micros, parse_timestamp, Timestamp};
use serde::de::IgnoredAny;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One file of a feed.
#[derive(Debug, Clone)]
pub struct FeedFile {
    pub path: PathBuf,
    gzip: bool,
}

impl FeedFile {
    fn reader(&self) -> Result<Box<dyn BufRead>> {
        let file = File::open(&self.path)
            .with_context(|| format!("cannot read feed file \"{}\"", self.path.display()))?;
        Ok(if self.gzip {
            Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(file)))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, file))
        })
    }

    /// Calls `visit(line_number, text)` for every non-blank line of the
    /// file; a line longer than `max_line` bytes is an error naming it.
    pub fn for_each_line_of(
        &self,
        max_line: u64,
        mut visit: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut reader = self.reader()?;
        for_each_line(reader.as_mut(), max_line, |line, _, text| match text {
            Line::Text(text) => visit(line, text),
            Line::TooLong(bytes) => bail!("{}: {}", self.location(line), too_long(bytes, max_line)),
        })
    }

    /// `file.jsonl line 12`, for messages.
    pub fn location(&self, line: u64) -> String {
        format!("{} line {line}", self.path.display())
    }
}

/// The files of a feed: one `.jsonl` or `.jsonl.gz` file, or every such file
/// in a directory, in name order.
pub fn files(path: &Path) -> Result<Vec<FeedFile>> {
    let is_feed = |name: &str| name.ends_with(".jsonl") || name.ends_with(".jsonl.gz");
    let file = |path: PathBuf| FeedFile {
        gzip: path.to_string_lossy().ends_with(".gz"),
        path,
    };
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("feed \"{}\" not found", path.display()))?;
    if metadata.is_file() {
        return Ok(vec![file(path.to_path_buf())]);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path)
        .with_context(|| format!("cannot list feed directory \"{}\"", path.display()))?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        // `Path::is_file` follows symbolic links, as a user expects.
        if is_feed(&name) && entry.path().is_file() {
            found.push(file(entry.path()));
        }
    }
    if found.is_empty() {
        bail!(
            "feed directory \"{}\" holds no .jsonl or .jsonl.gz file",
            path.display()
        );
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Where a wanted line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub modified: i64,
    pub file: u32,
    pub offset: u64,
    pub line: u32,
    /// The product's key ([`crate::line::product_key`]): lines with the same
    /// key are states of one product, and only the newest needs applying.
    /// Two halves rather than a u128, whose 16-byte alignment would pad an
    /// entry from 40 to 48 bytes (8 MB per million lines).
    pub key: [u64; 2],
}

/// The wanted lines of a feed, in chronological order of `modified` (the
/// feed's own order among equal times), and what the scan found besides.
#[derive(Debug, Default)]
pub struct Index {
    pub entries: Vec<Entry>,
    /// Whether the feed already lists the wanted lines chronologically, so
    /// that they can be read in one pass.
    pub in_file_order: bool,
    /// Every namespace the feed uses: the ones this synchronizer manages.
    pub namespaces: BTreeSet<String>,
    /// Lines that cannot be read: location, reason, and the product type
    /// the line names when that much can be read (its failure then holds
    /// only that type's watermark).
    pub malformed: Vec<Malformed>,
    pub lines: u64,
    /// Wanted lines left out because a newer line describes the same product.
    pub superseded: usize,
    /// The wanted lines of each product type, superseded ones left out:
    /// about what the sync hands over of each, for the host's progress.
    pub per_type: BTreeMap<String, u64>,
    /// The product types of wanted lines past the first 65,535 types of
    /// the feed: their lines are not counted.
    pub uncounted: BTreeSet<String>,
}

impl Index {
    /// About how many products of `product_type` the sync hands over: its
    /// wanted lines (none when it has none); `None` when they were not
    /// counted, so that no count of 0 makes its progress look done.
    pub fn expected(&self, product_type: &str) -> Option<u64> {
        if self.uncounted.contains(product_type) {
            return None;
        }
        Some(self.per_type.get(product_type).copied().unwrap_or(0))
    }
}

/// A line that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub location: String,
    pub reason: String,
    pub product_type: Option<String>,
}

/// The fields the scan reads of each line; the rest is skipped cheaply.
#[derive(serde::Deserialize)]
struct Header {
    modified: Option<String>,
    product_type: Option<String>,
    product_name: Option<String>,
    #[serde(default)]
    namespaces: Option<BTreeMap<String, IgnoredAny>>,
}

/// The longest line a feed may have, by default: a product's line is a few
/// kilobytes; one of 16 MiB is no product, and a longer one would be
/// read, and parsed, whole into memory (`max_line_bytes` in the section).
pub const DEFAULT_MAX_LINE_BYTES: u64 = 16 << 20;

/// Reads one line, its newline included, into `buffer`, keeping at most
/// `max` bytes. Returns how many bytes the line took in the file, and
/// whether it was longer than `max`: then `buffer` holds only its start,
/// and the rest was read past in small pieces, never held whole.
fn read_line(
    reader: &mut dyn BufRead,
    buffer: &mut Vec<u8>,
    max: u64,
) -> std::io::Result<(u64, bool)> {
    // One byte more than the limit: a line of `max` bytes and its newline.
    let read = reader.take(max + 1).read_until(b'\n', buffer)? as u64;
    if read <= max || buffer.last() == Some(&b'\n') {
        return Ok((read, false));
    }
    // Past the limit: skip to the end of the line a piece at a time.
    let mut skipped = 0u64;
    let mut piece = Vec::with_capacity(1 << 16);
    loop {
        piece.clear();
        let n = reader.take(1 << 16).read_until(b'\n', &mut piece)? as u64;
        skipped += n;
        if n == 0 || piece.last() == Some(&b'\n') {
            return Ok((read + skipped, true));
        }
    }
}

/// A line of the feed as the reader met it.
pub enum Line<'t> {
    Text(&'t [u8]),
    /// Longer than the limit: how many bytes it has.
    TooLong(u64),
}

/// Calls `visit(line_number, offset, line)` for every non-blank line;
/// lines longer than `max_line` bytes are not read into memory whole.
fn for_each_line(
    reader: &mut dyn BufRead,
    max_line: u64,
    mut visit: impl FnMut(u64, u64, Line<'_>) -> Result<()>,
) -> Result<()> {
    let mut buffer = Vec::with_capacity(4096);
    let mut offset = 0u64;
    let mut number = 0u64;
    loop {
        buffer.clear();
        let (read, too_long) = read_line(reader, &mut buffer, max_line)?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        if too_long {
            visit(number, offset, Line::TooLong(read))?;
            offset += read;
            continue;
        }
        // A byte order mark some editors put at the start of a UTF-8 file.
        let text = match buffer.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) if number == 1 => rest,
            _ => &buffer[..],
        };
        if !text.iter().all(u8::is_ascii_whitespace) {
            visit(number, offset, Line::Text(text))?;
        }
        offset += read;
    }
}

/// Why a line was not read.
fn too_long(bytes: u64, max_line: u64) -> String {
    format!(
        "the line has {bytes} bytes, more than max_line_bytes ({max_line}): not read (raise max_line_bytes in the section if such a line is real)"
    )
}

/// Scans the feed once, keeping the place of every line `wanted` accepts;
/// lines longer than `max_line` bytes are malformed.
pub fn index(
    files: &[FeedFile],
    max_line: u64,
    wanted: impl Fn(&str, &Timestamp) -> bool,
) -> Result<Index> {
    let mut index = Index {
        in_file_order: true,
        ..Index::default()
    };
    // The product type of each entry, as a number into `type_names`, only
    // until the lines per type are counted.
    let mut tags: Vec<u16> = Vec::new();
    let mut type_names: Vec<String> = Vec::new();
    let mut type_tags: HashMap<String, u16> = HashMap::new();
    for (number, file) in files.iter().enumerate() {
        let mut reader = file.reader()?;
        for_each_line(reader.as_mut(), max_line, |line, offset, text| {
            index.lines += 1;
            let text = match text {
                Line::Text(text) => text,
                Line::TooLong(bytes) => {
                    index.malformed.push(Malformed {
                        location: file.location(line),
                        reason: too_long(bytes, max_line),
                        product_type: None,
                    });
                    return Ok(());
                }
            };
            let header: Header = match serde_json::from_slice(text) {
                Ok(header) => header,
                Err(e) => {
                    index.malformed.push(Malformed {
                        location: file.location(line),
                        reason: format!("invalid JSON: {e}"),
                        product_type: None,
                    });
                    return Ok(());
                }
            };
            index
                .namespaces
                .extend(header.namespaces.unwrap_or_default().into_keys());
            let (Some(modified), Some(product_type), Some(product_name)) = (
                header.modified,
                header.product_type.clone(),
                header.product_name,
            ) else {
                index.malformed.push(Malformed {
                    location: file.location(line),
                    reason: "missing \"modified\", \"product_type\" or \"product_name\"".into(),
                    product_type: header.product_type,
                });
                return Ok(());
            };
            let modified = match parse_timestamp(&modified) {
                Ok(t) => t,
                Err(e) => {
                    index.malformed.push(Malformed {
                        location: file.location(line),
                        reason: format!("\"modified\": {e}"),
                        product_type: Some(product_type),
                    });
                    return Ok(());
                }
            };
            if wanted(&product_type, &modified) {
                let entry = Entry {
                    modified: to_micros(&modified),
                    file: number as u32,
                    offset,
                    line: u32::try_from(line).unwrap_or(u32::MAX),
                    key: crate::line::product_key(&product_type, &product_name),
                };
                if index
                    .entries
                    .last()
                    .is_some_and(|last| last.modified > entry.modified)
                {
                    index.in_file_order = false;
                }
                index.entries.push(entry);
                tags.push(match type_tags.get(&product_type) {
                    Some(tag) => *tag,
                    // So many types that the rest go uncounted.
                    None if type_names.len() >= usize::from(UNCOUNTED) => {
                        index.uncounted.insert(product_type);
                        UNCOUNTED
                    }
                    None => {
                        let tag = type_names.len() as u16;
                        type_tags.insert(product_type.clone(), tag);
                        type_names.push(product_type);
                        tag
                    }
                });
            }
            Ok(())
        })
        .with_context(|| format!("cannot read feed file \"{}\"", file.path.display()))?;
    }
    let (superseded, per_type) =
        keep_newest_per_product(&mut index.entries, &tags, type_names.len());
    drop(tags);
    index.superseded = superseded;
    index.per_type = type_names.into_iter().zip(per_type).collect();
    if !index.in_file_order {
        index.entries.sort();
    }
    Ok(index)
}

/// The tag of product types past the first 65,535 of a feed, which are not
/// counted per type.
const UNCOUNTED: u16 = u16::MAX;

/// Keeps only the newest of each product's `entries` (the greatest in the
/// chronological order [`Entry`]'s ordering is, whatever order they are in
/// now): applying earlier states would only be undone by later ones, and
/// would make a re-sync write. `tags` numbers each entry's product type,
/// one of `types`. Returns how many were left out, and how many are kept of
/// each type.
fn keep_newest_per_product(
    entries: &mut Vec<Entry>,
    tags: &[u16],
    types: usize,
) -> (usize, Vec<u64>) {
    let mut order: Vec<u32> = (0..entries.len() as u32).collect();
    order.sort_unstable_by_key(|&i| entries[i as usize].key);
    let mut keep = vec![false; entries.len()];
    let mut kept_per_type = vec![0u64; types];
    for product in order.chunk_by(|&a, &b| entries[a as usize].key == entries[b as usize].key) {
        let newest = *product
            .iter()
            .max_by_key(|&&i| &entries[i as usize])
            .expect("a group has an entry");
        keep[newest as usize] = true;
        if let Some(count) = tags
            .get(newest as usize)
            .and_then(|&tag| kept_per_type.get_mut(usize::from(tag)))
        {
            *count += 1;
        }
    }
    let before = entries.len();
    let mut flags = keep.into_iter();
    entries.retain(|_| flags.next().unwrap_or(false));
    (before - entries.len(), kept_per_type)
}

/// Calls `visit(entry, text)` with each indexed line, in the index's order.
pub fn visit(
    files: &[FeedFile],
    index: &Index,
    max_line: u64,
    mut visit: impl FnMut(&Entry, &[u8]) -> Result<()>,
) -> Result<()> {
    if index.in_file_order {
        let mut next = index.entries.iter().peekable();
        for (number, file) in files.iter().enumerate() {
            if next.peek().is_none() {
                break;
            }
            let mut reader = file.reader()?;
            for_each_line(reader.as_mut(), max_line, |_line, offset, text| {
                if let (Some(entry), Line::Text(text)) = (next.peek(), text) {
                    if entry.file == number as u32 && entry.offset == offset {
                        let entry = next.next().expect("peeked");
                        return visit(entry, text);
                    }
                }
                Ok(())
            })?;
        }
        return Ok(());
    }
    // Out of order: read each line where it is. A compressed file cannot be
    // read at an offset, so it is unpacked to a temporary file first.
    let mut readers: Vec<Option<(BufReader<File>, Option<tempfile::NamedTempFile>)>> =
        (0..files.len()).map(|_| None).collect();
    let mut buffer = Vec::with_capacity(4096);
    for entry in &index.entries {
        let file = &files[entry.file as usize];
        let slot = &mut readers[entry.file as usize];
        if slot.is_none() {
            *slot = Some(open_seekable(file)?);
        }
        let (reader, _) = slot.as_mut().expect("opened above");
        reader.seek(SeekFrom::Start(entry.offset))?;
        buffer.clear();
        if read_line(reader, &mut buffer, max_line)?.1 {
            bail!(
                "{}: {} (the file changed while it was read)",
                file.location(u64::from(entry.line)),
                too_long(buffer.len() as u64, max_line)
            );
        }
        let text = match buffer.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) if entry.offset == 0 => rest,
            _ => &buffer[..],
        };
        visit(entry, text)?;
    }
    Ok(())
}

fn open_seekable(file: &FeedFile) -> Result<(BufReader<File>, Option<tempfile::NamedTempFile>)> {
    if !file.gzip {
        let plain = File::open(&file.path)
            .with_context(|| format!("cannot read feed file \"{}\"", file.path.display()))?;
        return Ok((BufReader::new(plain), None));
    }
    let mut unpacked = tempfile::NamedTempFile::new()
        .context("cannot create a temporary file to unpack the feed")?;
    let mut decoder = MultiGzDecoder::new(File::open(&file.path)?);
    std::io::copy(&mut decoder as &mut dyn Read, unpacked.as_file_mut())
        .with_context(|| format!("cannot unpack feed file \"{}\"", file.path.display()))?;
    let reader = BufReader::new(unpacked.reopen()?);
    Ok((reader, Some(unpacked)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_takes_forty_bytes() {
        // jsonl holds one per wanted line: this is most of its memory.
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }

    #[test]
    fn only_the_newest_line_of_a_product_is_kept_and_counted_for_its_type() {
        let entry = |modified, key| Entry {
            modified,
            file: 0,
            offset: modified as u64,
            line: modified as u32,
            key: [key, 0],
        };
        let mut entries = vec![
            entry(1, 7),
            entry(2, 8),
            entry(3, 7),
            entry(4, 9),
            entry(5, 8),
        ];
        // Products 7 and 8 are of type 0, product 9 of type 1.
        let tags = [0, 0, 0, 1, 0];
        assert_eq!(
            keep_newest_per_product(&mut entries, &tags, 2),
            (2, vec![2, 1])
        );
        assert_eq!(
            entries.iter().map(|e| e.modified).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        // Out of chronological order the newest is kept all the same.
        let mut entries = vec![entry(5, 8), entry(1, 7), entry(2, 8), entry(3, 7)];
        let kept = keep_newest_per_product(&mut entries, &[0, 0, 0, 0], 1);
        assert_eq!(kept, (2, vec![2]));
        assert_eq!(
            entries.iter().map(|e| e.modified).collect::<Vec<_>>(),
            vec![5, 3]
        );
    }

    #[test]
    fn the_index_counts_the_lines_of_the_window_per_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.jsonl");
        let line = |modified: &str, product_type: &str, name: &str| {
            format!(
                "{{\"modified\": \"{modified}\", \"product_type\": \"{product_type}\", \"product_name\": \"{name}\"}}\n"
            )
        };
        let feed = [
            line("2024-01-04", "A", "a1"),
            line("2024-01-01", "A", "a2"),
            line("2024-01-02", "B", "b1"),
            line("2024-01-03", "A", "a1"), // superseded by the first line
            line("2024-01-09", "A", "a3"), // outside the window
            "not json\n".to_string(),
        ]
        .concat();
        std::fs::write(&path, feed).unwrap();
        let end = parse_timestamp("2024-01-05").unwrap();
        let index = super::index(&files(&path).unwrap(), 1 << 20, |_, t| *t < end).unwrap();
        assert_eq!(
            index.per_type,
            BTreeMap::from([("A".to_string(), 2), ("B".to_string(), 1)])
        );
        assert_eq!((index.entries.len(), index.superseded), (3, 1));
        assert!(!index.in_file_order);
        assert_eq!(
            index.entries.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![2, 3, 1],
            "in chronological order"
        );
    }
}

#[cfg(test)]
mod type_limit_tests {
    use super::*;

    #[test]
    fn types_past_the_first_65535_have_no_expected_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.jsonl");
        let types = usize::from(UNCOUNTED) + 2;
        let mut feed = String::with_capacity(types * 80);
        for n in 0..types {
            feed.push_str(&format!(
                "{{\"modified\": \"2024-01-01\", \"product_type\": \"T{n}\", \"product_name\": \"p\"}}\n"
            ));
        }
        feed.push_str(
            "{\"modified\": \"2024-01-09\", \"product_type\": \"LATE\", \"product_name\": \"p\"}\n",
        );
        std::fs::write(&path, feed).unwrap();
        let end = parse_timestamp("2024-01-05").unwrap();
        let files = files(&path).unwrap();
        let index = super::index(&files, 1 << 20, |_, t| *t < end).unwrap();
        assert_eq!(index.entries.len(), types);
        assert_eq!(index.expected("T0"), Some(1));
        assert_eq!(index.expected("T65534"), Some(1), "the last counted");
        assert_eq!(index.expected("T65535"), None, "past the limit");
        assert_eq!(index.expected("T65536"), None);
        assert_eq!(index.uncounted.len(), 2);
        assert_eq!(index.expected("LATE"), Some(0), "no line in the window");
    }
}

#[cfg(test)]
mod line_limit_tests {
    use super::read_line;

    fn lines(text: &[u8], max: u64) -> Vec<(u64, bool, Vec<u8>)> {
        let mut reader: &[u8] = text;
        let mut found = Vec::new();
        loop {
            let mut buffer = Vec::new();
            let (read, too_long) = read_line(&mut reader, &mut buffer, max).unwrap();
            if read == 0 {
                return found;
            }
            found.push((read, too_long, buffer));
        }
    }

    #[test]
    fn a_line_up_to_the_limit_is_read_and_a_longer_one_skipped_in_pieces() {
        let found = lines(b"abcd\nabcde\nab", 4);
        assert_eq!(found[0], (5, false, b"abcd\n".to_vec()));
        assert_eq!((found[1].0, found[1].1), (6, true), "one byte too many");
        assert!(found[1].2.len() <= 5, "only the start is kept");
        assert_eq!(found[2], (2, false, b"ab".to_vec()));
        let long = [vec![b'x'; 300_000], b"\nok\n".to_vec()].concat();
        let found = lines(&long, 10);
        assert_eq!((found[0].0, found[0].1), (300_001, true));
        assert_eq!(found[1], (3, false, b"ok\n".to_vec()));
    }
}
