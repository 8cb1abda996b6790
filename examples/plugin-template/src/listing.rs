//! Reading the remote: here a CSV file that lists the products, one per
//! line. This is the part to replace with your remote's API (README.md).
//!
//! ```text
//! product_name,modified,size,hash,remote_url,validity_start,validity_stop
//! S2A_20240101,2024-01-02T08:00:00Z,1024,md5:00ff,https://example.org/S2A_20240101.zip,2024-01-01,
//! ```
//!
//! The first line (after blank lines and `#` comments) names the columns, in
//! any order: `product_name` and `modified` (when the remote last changed
//! the product) are required. An empty field is no value. Fields are
//! separated by commas, without quoting.

use crate::NAMESPACE;
use muninn_sync_plugin_api::anyhow::{self, anyhow, bail, Context as _, Result};
use muninn_sync_plugin_api::{parse_timestamp, Product, Timestamp, Value};
use std::path::Path;

/// The columns a listing may have.
const COLUMNS: [&str; 7] = [
    "product_name",
    "modified",
    "size",
    "hash",
    "remote_url",
    "validity_start",
    "validity_stop",
];

/// One product as the listing describes it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Where it is described, for messages: `listing.csv line 4`.
    pub location: String,
    /// When the remote last changed it; windows and watermarks follow it.
    pub modified: Timestamp,
    /// The product as the catalogue should hold it.
    pub product: Product,
}

/// What a listing holds.
#[derive(Debug, Default)]
pub struct Listing {
    pub products: Vec<Listed>,
    /// The lines that could not be read (where, and why).
    pub unreadable: Vec<(String, anyhow::Error)>,
}

/// Reads the listing file; its products get `product_type`.
pub fn read_listing(path: &Path, product_type: &str) -> Result<Listing> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the listing \"{}\"", path.display()))?;
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    parse_listing(&text, &file, product_type)
}

/// Reads a listing's text; `file` names it in messages. A header that cannot
/// be used is an error; a line that cannot be read is set aside in
/// [`Listing::unreadable`].
pub fn parse_listing(text: &str, file: &str, product_type: &str) -> Result<Listing> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
    let Some((_, header)) = lines.next() else {
        return Ok(Listing::default()); // the remote lists nothing
    };
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    for column in &columns {
        if !COLUMNS.contains(column) {
            bail!(
                "{file}: unknown column \"{column}\" in the header; the columns are {}",
                COLUMNS.join(", ")
            );
        }
    }
    for required in ["product_name", "modified"] {
        if !columns.contains(&required) {
            bail!("{file}: the header has no {required} column");
        }
    }
    let mut listing = Listing::default();
    for (number, line) in lines {
        let location = format!("{file} line {number}");
        match parse_line(&columns, line, product_type) {
            Ok((modified, product)) => listing.products.push(Listed {
                location,
                modified,
                product,
            }),
            Err(error) => listing.unreadable.push((location, error)),
        }
    }
    Ok(listing)
}

/// One line: the remote's modification time, and the product.
fn parse_line(columns: &[&str], line: &str, product_type: &str) -> Result<(Timestamp, Product)> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() != columns.len() {
        bail!(
            "{} fields where the header names {}",
            fields.len(),
            columns.len()
        );
    }
    let field = |name: &str| {
        columns
            .iter()
            .position(|column| *column == name)
            .map(|index| fields[index])
            .filter(|value| !value.is_empty())
    };
    let time = |name: &str| -> Result<Option<Timestamp>> {
        field(name)
            .map(|text| parse_timestamp(text).map_err(|e| anyhow!("{name}: {e}")))
            .transpose()
    };
    let name = field("product_name").ok_or_else(|| anyhow!("product_name is empty"))?;
    let modified = time("modified")?.ok_or_else(|| anyhow!("modified is empty"))?;

    // The mapping from the remote's description to muninn's properties.
    let mut product = Product::new(product_type, name);
    product.size = field("size")
        .map(|size| {
            size.parse::<i64>()
                .map_err(|e| anyhow!("size \"{size}\": {e}"))
        })
        .transpose()?;
    product.hash = field("hash").map(String::from);
    product.remote_url = field("remote_url").map(String::from);
    product.validity_start = time("validity_start")?;
    product.validity_stop = time("validity_stop")?;
    product.namespaces.insert(
        NAMESPACE.into(),
        [("modified".to_string(), Value::Timestamp(modified))].into(),
    );
    Ok((modified, product))
}
