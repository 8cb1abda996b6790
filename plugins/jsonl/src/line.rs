//! One feed line: a product as the remote describes it, or its deletion.

use anyhow::{anyhow, bail, Context, Result};
use muninn_sync_plugin_api::model::parse_rfc3339;
use muninn_sync_plugin_api::{
    parse_timestamp, Geometry, Namespace, Product, Timestamp, Uuid, Value,
};
use std::collections::BTreeMap;

/// A line as written in the feed.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    modified: String,
    product_type: String,
    product_name: String,
    #[serde(default)]
    deleted: bool,
    uuid: Option<String>,
    physical_name: Option<String>,
    size: Option<i64>,
    hash: Option<String>,
    validity_start: Option<String>,
    validity_stop: Option<String>,
    creation_date: Option<String>,
    remote_url: Option<String>,
    footprint: Option<String>,
    #[serde(default)]
    namespaces: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

/// What a line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// The product as it is now.
    Product(Box<Product>),
    /// The product is gone from the remote.
    Deleted {
        product_type: String,
        product_name: String,
        uuid: Option<Uuid>,
    },
}

impl Record {
    /// The product type the line names.
    pub fn product_type(&self) -> &str {
        match self {
            Record::Product(p) => &p.product_type,
            Record::Deleted { product_type, .. } => product_type,
        }
    }

    /// `S2MSI1C/S2A_...`, for messages.
    pub fn label(&self) -> String {
        match self {
            Record::Product(p) => format!("{}/{}", p.product_type, p.product_name),
            Record::Deleted {
                product_type,
                product_name,
                ..
            } => format!("{product_type}/{product_name}"),
        }
    }
}

fn time(field: &str, text: &Option<String>) -> Result<Option<Timestamp>> {
    text.as_deref()
        .map(|t| parse_timestamp(t).with_context(|| format!("\"{field}\"")))
        .transpose()
}

/// A namespace value from JSON: strings in strict RFC 3339 become
/// timestamps, so that times stay times in the catalogue.
fn namespace_value(value: serde_json::Value) -> Option<Value> {
    match value {
        serde_json::Value::String(text) => Some(match parse_rfc3339(&text) {
            Some(t) => Value::Timestamp(t),
            None => Value::Text(text),
        }),
        other => Value::from_json(other),
    }
}

/// The namespace in which a product keeps where it came from: its line's
/// `modified` time and fingerprint.
pub const NAMESPACE: &str = "jsonl";

/// A line's fingerprint: a 64-bit hash of its bytes (without surrounding
/// white space), the same on every machine and run. A product whose stored
/// fingerprint equals its line's is unchanged and is not even parsed.
///
/// It reads eight bytes at a time (multiply, rotate, xor, with a final
/// avalanche), several times faster than byte-wise FNV on a long line; any
/// change of the line changes it with odds of 1 - 2^-64.
pub fn fingerprint(text: &[u8]) -> i64 {
    hash(0, text.trim_ascii()) as i64
}

/// A stable 128-bit key for a product (two independently seeded hashes of
/// type and name): lines with the same key are states of one product. The
/// chance that two products of a feed of a billion share one is about
/// 10^-21. Its first half is kept in the `jsonl` namespace as `key`.
pub fn product_key(product_type: &str, product_name: &str) -> [u64; 2] {
    let mut bytes = Vec::with_capacity(product_type.len() + product_name.len() + 1);
    bytes.extend_from_slice(product_type.as_bytes());
    bytes.push(0x1F); // a unit separator, which neither contains
    bytes.extend_from_slice(product_name.as_bytes());
    [hash(1, &bytes), hash(2, &bytes)]
}

/// The hash behind [`fingerprint`] and [`product_key`], with a seed.
fn hash(seed: u64, text: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut hash: u64 =
        (text.len() as u64 ^ seed.wrapping_mul(0xD6E8_FEB8_6659_FD93)).wrapping_mul(K);
    let mut words = text.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        hash = (hash ^ word.wrapping_mul(K))
            .rotate_left(29)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    hash = (hash ^ u64::from_le_bytes(tail).wrapping_mul(K))
        .rotate_left(29)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    hash ^= hash >> 31;
    hash = hash.wrapping_mul(0x94D0_49BB_1331_11EB);
    hash ^ (hash >> 29)
}

/// The product a line names, read cheaply (borrowed from the line where
/// it has no escapes): enough to look it up.
#[derive(serde::Deserialize)]
pub struct Identity<'a> {
    #[serde(borrow)]
    pub product_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub product_name: std::borrow::Cow<'a, str>,
}

/// Reads just the identity of a line; `None` when the line is malformed
/// (a full parse then says why).
pub fn identity(text: &[u8]) -> Option<Identity<'_>> {
    serde_json::from_slice(text).ok()
}

/// Reads one line.
pub fn parse(text: &[u8]) -> Result<Record> {
    let line: Line =
        serde_json::from_slice(text).map_err(|e| anyhow!("invalid product line: {e}"))?;
    let modified = parse_timestamp(&line.modified).context("\"modified\"")?;
    let uuid = line
        .uuid
        .as_deref()
        .map(|u| Uuid::parse_str(u).map_err(|e| anyhow!("\"uuid\": invalid uuid \"{u}\": {e}")))
        .transpose()?;
    if line.product_type.is_empty() || line.product_name.is_empty() {
        bail!("\"product_type\" and \"product_name\" must not be empty");
    }
    if line.deleted {
        return Ok(Record::Deleted {
            product_type: line.product_type,
            product_name: line.product_name,
            uuid,
        });
    }
    let mut product = Product::new(line.product_type, line.product_name);
    if let Some(uuid) = uuid {
        product.uuid = uuid;
    }
    if let Some(physical_name) = line.physical_name {
        product.physical_name = physical_name;
    }
    product.size = line.size;
    product.hash = line.hash;
    product.validity_start = time("validity_start", &line.validity_start)?;
    product.validity_stop = time("validity_stop", &line.validity_stop)?;
    product.creation_date = time("creation_date", &line.creation_date)?;
    product.remote_url = line.remote_url;
    product.footprint = line
        .footprint
        .as_deref()
        .map(|wkt| Geometry::from_wkt(wkt).context("\"footprint\""))
        .transpose()?;
    for (namespace, values) in line.namespaces {
        let properties: Namespace = values
            .into_iter()
            .filter_map(|(name, value)| namespace_value(value).map(|v| (name, v)))
            .collect();
        if namespace == NAMESPACE {
            bail!("namespace \"{NAMESPACE}\" is the jsonl synchronizer's own; use another name");
        }
        product.namespaces.insert(namespace, properties);
    }
    let key = product_key(&product.product_type, &product.product_name)[0] as i64;
    product.namespaces.insert(
        NAMESPACE.to_string(),
        [
            ("modified".to_string(), Value::Timestamp(modified)),
            ("fingerprint".to_string(), Value::Integer(fingerprint(text))),
            ("key".to_string(), Value::Integer(key)),
        ]
        .into(),
    );
    product.validate().map_err(|e| anyhow!(e))?;
    Ok(Record::Product(Box::new(product)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_sync_plugin_api::derived_uuid;

    #[test]
    fn reads_the_documented_example() {
        let text = br#"{"modified": "2024-01-03T10:00:00Z", "product_type": "S2MSI1C", "product_name": "S2A_X", "physical_name": "S2A_X.SAFE", "uuid": "0d5b8f1e4c7a4a61a8a6f3a7b0c2d9e1", "size": 812345678, "hash": "md5:9e107d9d372bb6826bd81d3542a419d6", "validity_start": "2024-01-02T10:00:00Z", "validity_stop": "2024-01-02T10:00:10Z", "creation_date": "2024-01-02T12:00:00Z", "remote_url": "https://example.org/p/S2A_X", "footprint": "POLYGON((5 52, 6 52, 6 53, 5 53, 5 52))", "namespaces": {"eo": {"cloud_cover": 12.5, "platform": "sentinel-2a", "sensed": "2024-01-02T10:00:00Z", "orbit": 12, "gone": null}}}"#;
        let Record::Product(p) = parse(text).unwrap() else {
            panic!("not a product")
        };
        assert_eq!(
            p.uuid.simple().to_string(),
            "0d5b8f1e4c7a4a61a8a6f3a7b0c2d9e1"
        );
        assert_eq!(p.physical_name, "S2A_X.SAFE");
        assert_eq!(p.size, Some(812345678));
        let eo = &p.namespaces["eo"];
        assert_eq!(eo["cloud_cover"], Value::Real(12.5));
        assert_eq!(eo["orbit"], Value::Integer(12));
        assert_eq!(eo["platform"], Value::from("sentinel-2a"));
        assert!(matches!(eo["sensed"], Value::Timestamp(_)));
        assert!(!eo.contains_key("gone"));
        assert_eq!(
            p.namespaces[NAMESPACE]["fingerprint"],
            Value::Integer(fingerprint(text))
        );
        assert!(matches!(
            p.namespaces[NAMESPACE]["modified"],
            Value::Timestamp(_)
        ));
    }

    #[test]
    fn fingerprints_are_stable_and_ignore_surrounding_space() {
        assert_eq!(fingerprint(b"abc"), fingerprint(b"  abc\r\n"));
        assert_ne!(fingerprint(b"abc"), fingerprint(b"abd"));
        // Fixed forever: catalogues hold fingerprints from earlier runs.
        let line =
            br#"{"modified": "2024-01-01T00:00:00Z", "product_type": "T", "product_name": "N"}"#;
        assert_eq!(fingerprint(line) as u64, 0xf4e5efdf343c6377);
        assert_eq!(fingerprint(b""), fingerprint(b" "));
        assert_ne!(fingerprint(b"a"), fingerprint(b"a\0"));
        assert_ne!(fingerprint(b"abcdefgh"), fingerprint(b"abcdefgh\0"));
    }

    #[test]
    fn fills_in_uuid_and_physical_name() {
        let Record::Product(p) = parse(
            br#"{"modified": "2024-01-03T10:00:00Z", "product_type": "T", "product_name": "N"}"#,
        )
        .unwrap() else {
            panic!("not a product")
        };
        assert_eq!(p.uuid, derived_uuid("T", "N"));
        assert_eq!(p.physical_name, "N");
    }

    #[test]
    fn deletions_and_errors() {
        let deleted = parse(br#"{"modified": "2024-01-04T00:00:00Z", "product_type": "T", "product_name": "N", "deleted": true}"#).unwrap();
        assert_eq!(deleted.label(), "T/N");
        assert!(matches!(deleted, Record::Deleted { uuid: None, .. }));
        for (text, why) in [
            (&br#"{"modified": "2024-01-01", "product_type": "T", "product_name": "N", "sise": 1}"#[..], "unknown field `sise`"),
            (br#"{"modified": "then", "product_type": "T", "product_name": "N"}"#, "modified"),
            (br#"{"modified": "2024-01-01", "product_type": "T", "product_name": "N", "namespaces": {"jsonl": {}}}"#, "own"),
            (br#"{"modified": "2024-01-01", "product_type": "T", "product_name": "N", "size": "big"}"#, "invalid type"),
            (br#"{"modified": "2024-01-01", "product_type": "T", "product_name": "N", "footprint": "POLYGON((0 0))"}"#, "footprint"),
            (br#"{"modified": "2024-01-01", "product_type": "T", "product_name": "N", "validity_start": "soon"}"#, "validity_start"),
            (br#"{"modified": "2024-01-01", "product_type": "T", "product_name": "a/b", "physical_name": "a/b"}"#, "physical_name"),
            (br#"{"modified": "2024-01-01", "product_type": "T", "product_name": "N", "uuid": "nope"}"#, "uuid"),
        ] {
            let message = format!("{:#}", parse(text).unwrap_err());
            assert!(message.contains(why), "{why}: {message}");
        }
    }
}
