//! A STAC item as a muninn product: the mapping documented in docs/stac.md.

use anyhow::{anyhow, Context, Result};
use muninn_sync_plugin_api::model::{derived_uuid, parse_timestamp};
use muninn_sync_plugin_api::{Geometry, Product, Timestamp, Value};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// The namespace every item's properties are kept in.
pub const NAMESPACE: &str = "stac";

/// Item properties read as times in the `stac` namespace.
const TIME_PROPERTIES: [&str; 5] = [
    "datetime",
    "start_datetime",
    "end_datetime",
    "created",
    "updated",
];

/// Which asset's href becomes `remote_url` (and gives size and hash).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AssetChoice {
    /// The asset with this key; an item without it has no remote_url.
    Key(String),
    /// `product` if the item has it, else the first asset (by key) with the
    /// role `data`, else none.
    #[default]
    Default,
}

/// A mapped item: the product and the item's `updated` time, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedItem {
    pub product: Product,
    /// `updated`, or `None` when the item has none.
    pub updated: Option<Timestamp>,
    /// The item's time that drives the window (`datetime` or `updated`).
    pub time: Option<Timestamp>,
}

/// Maps one item of `collection` to a product of `product_type`.
/// `time_field` is "datetime" or "updated".
pub fn map_item(
    item: &Json,
    product_type: &str,
    collection: &str,
    asset: &AssetChoice,
    time_field: &str,
) -> Result<MappedItem> {
    let id = item
        .get("id")
        .and_then(Json::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| anyhow!("an item without an \"id\""))?;
    let describe = || format!("item \"{id}\" of collection \"{collection}\"");
    let properties = item
        .get("properties")
        .and_then(Json::as_object)
        .ok_or_else(|| anyhow!("{}: no \"properties\" object", describe()))?;
    let time = |name: &str| -> Result<Option<Timestamp>> {
        match properties.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(text)) => parse_timestamp(text)
                .map(Some)
                .map_err(|e| anyhow!("{}: property \"{name}\": {e}", describe())),
            Some(other) => Err(anyhow!(
                "{}: property \"{name}\" is not a time: {other}",
                describe()
            )),
        }
    };
    let datetime = time("datetime")?;
    let start = time("start_datetime")?;
    let end = time("end_datetime")?;
    if datetime.is_none() && (start.is_none() || end.is_none()) {
        return Err(anyhow!(
            "{}: neither \"datetime\" nor both \"start_datetime\" and \"end_datetime\"",
            describe()
        ));
    }

    let mut product = Product::new(product_type, id);
    product.uuid = derived_uuid(collection, id);
    product.physical_name = id.to_string();
    product.validity_start = start.or(datetime);
    product.validity_stop = end.or(datetime);
    product.creation_date = time("created")?;
    product.footprint = match item.get("geometry") {
        None | Some(Json::Null) => None,
        Some(geometry) => Some(
            Geometry::from_geojson(geometry)
                .with_context(|| format!("{}: geometry", describe()))?,
        ),
    };
    if let Some((href, fields)) = chosen_asset(item, asset) {
        product.remote_url = Some(href.to_string());
        product.size = fields.get("file:size").and_then(Json::as_i64);
        product.hash = fields
            .get("file:checksum")
            .and_then(Json::as_str)
            .and_then(multihash_to_muninn);
    }
    let mut namespace = BTreeMap::new();
    namespace.insert("collection".to_string(), Value::from(collection));
    for (name, value) in properties {
        let Some(column) = column_name(name) else {
            continue;
        };
        let value = if TIME_PROPERTIES.contains(&name.as_str()) {
            time(name)?.map(Value::Timestamp)
        } else {
            json_value(value)
        };
        if let Some(value) = value {
            namespace.insert(column, value);
        }
    }
    product.namespaces.insert(NAMESPACE.to_string(), namespace);
    let updated = time("updated")?;
    let time = match time_field {
        "updated" => updated,
        _ => datetime.or(start),
    };
    Ok(MappedItem {
        product,
        updated,
        time,
    })
}

/// The href and fields of the asset `choice` picks.
fn chosen_asset<'a>(
    item: &'a Json,
    choice: &AssetChoice,
) -> Option<(&'a str, &'a serde_json::Map<String, Json>)> {
    let assets = item.get("assets")?.as_object()?;
    let picked = match choice {
        AssetChoice::Key(key) => assets.get(key),
        AssetChoice::Default => assets.get("product").or_else(|| {
            assets.values().find(|asset| {
                asset
                    .get("roles")
                    .and_then(Json::as_array)
                    .is_some_and(|roles| roles.iter().any(|r| r == "data"))
            })
        }),
    }?
    .as_object()?;
    Some((picked.get("href")?.as_str()?, picked))
}

/// muninn's `algorithm:hex` from a `file:checksum` multihash: `1220…`
/// (SHA2-256), `d50110…` (MD5), `1114…` (SHA1); others are dropped.
pub fn multihash_to_muninn(multihash: &str) -> Option<String> {
    let hex = multihash.to_ascii_lowercase();
    let (algorithm, digest) = if let Some(digest) = hex.strip_prefix("1220") {
        ("sha256", digest)
    } else if let Some(digest) = hex.strip_prefix("d50110") {
        ("md5", digest)
    } else if let Some(digest) = hex.strip_prefix("1114") {
        ("sha1", digest)
    } else {
        return None;
    };
    let length = match algorithm {
        "sha256" => 64,
        "md5" => 32,
        _ => 40,
    };
    (digest.len() == length && digest.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| format!("{algorithm}:{digest}"))
}

/// A property name as a column name: `eo:cloud_cover` -> `eo_cloud_cover`;
/// `None` when nothing usable is left.
pub fn column_name(property: &str) -> Option<String> {
    let mut column: String = property
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !column.starts_with(|c: char| c.is_ascii_alphabetic()) {
        column.insert(0, 'p');
    }
    (muninn_sync_plugin_api::model::validate_property_name(&column).is_ok()
        && column != "collection")
        .then_some(column)
}

/// A property value as a catalogue value: numbers, text and booleans as
/// they are; arrays and objects as JSON text; null as absent.
fn json_value(value: &Json) -> Option<Value> {
    match value {
        Json::Null => None,
        Json::Bool(b) => Some(Value::Boolean(*b)),
        Json::Number(n) => Some(match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64()?),
        }),
        Json::String(s) => Some(Value::from(s.as_str())),
        other => Some(Value::from(other.to_string().as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item() -> Json {
        json!({
            "type": "Feature", "stac_version": "1.0.0", "id": "S2B_31UFU_20240101_0_L2A",
            "collection": "sentinel-2-l2a",
            "geometry": {"type": "MultiPolygon", "coordinates": [[[[179, 0], [180, 0], [180, 1], [179, 0]]], [[[-180, 0], [-179, 0], [-180, 1], [-180, 0]]]]},
            "properties": {
                "datetime": "2024-01-01T10:00:00.123Z", "created": "2024-01-01T12:00:00+00:00",
                "updated": "2024-01-02T00:00:00Z", "eo:cloud_cover": 12.5, "platform": "sentinel-2b",
                "instruments": ["msi"], "s2:tile_id": 31, "proj:epsg": null
            },
            "assets": {
                "thumbnail": {"href": "https://example.org/t.jpg", "roles": ["thumbnail"]},
                "visual": {"href": "https://example.org/v.tif", "roles": ["data", "visual"], "file:size": 12345,
                           "file:checksum": "1220aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899"}
            }
        })
    }

    #[test]
    fn items_map_to_muninn_products() {
        let mapped = map_item(
            &item(),
            "S2MSI2A",
            "sentinel-2-l2a",
            &AssetChoice::Default,
            "datetime",
        )
        .unwrap();
        let p = &mapped.product;
        assert_eq!(
            (p.product_type.as_str(), p.product_name.as_str()),
            ("S2MSI2A", "S2B_31UFU_20240101_0_L2A")
        );
        assert_eq!(
            p.uuid,
            derived_uuid("sentinel-2-l2a", "S2B_31UFU_20240101_0_L2A")
        );
        assert_eq!(
            p.validity_start,
            Some(parse_timestamp("2024-01-01T10:00:00.123Z").unwrap())
        );
        assert_eq!(p.validity_stop, p.validity_start);
        assert_eq!(
            p.creation_date,
            Some(parse_timestamp("2024-01-01T12:00:00Z").unwrap())
        );
        assert!(matches!(p.footprint, Some(Geometry::MultiPolygon(_))));
        assert_eq!(p.remote_url.as_deref(), Some("https://example.org/v.tif"));
        assert_eq!(p.size, Some(12345));
        assert_eq!(
            p.hash.as_deref(),
            Some("sha256:aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899")
        );
        let stac = &p.namespaces[NAMESPACE];
        assert_eq!(stac["eo_cloud_cover"], Value::Real(12.5));
        assert_eq!(stac["s2_tile_id"], Value::Integer(31));
        assert_eq!(stac["instruments"], Value::from("[\"msi\"]"));
        assert_eq!(stac["collection"], Value::from("sentinel-2-l2a"));
        assert!(!stac.contains_key("proj_epsg"));
        assert_eq!(
            mapped.updated,
            Some(parse_timestamp("2024-01-02T00:00:00Z").unwrap())
        );
        p.validate().unwrap();
    }

    #[test]
    fn items_without_file_fields_or_geometry_still_map() {
        let mut bare = item();
        bare["geometry"] = Json::Null;
        bare["assets"] = json!({"product": {"href": "https://example.org/p.zip"}});
        let mapped = map_item(&bare, "S2MSI2A", "c", &AssetChoice::Default, "updated").unwrap();
        assert_eq!(mapped.product.footprint, None);
        assert_eq!(
            mapped.product.remote_url.as_deref(),
            Some("https://example.org/p.zip")
        );
        assert_eq!(
            (mapped.product.size, mapped.product.hash.clone()),
            (None, None)
        );
        assert_eq!(mapped.time, mapped.updated);
        let chosen = map_item(
            &item(),
            "T",
            "c",
            &AssetChoice::Key("thumbnail".into()),
            "datetime",
        )
        .unwrap();
        assert_eq!(
            chosen.product.remote_url.as_deref(),
            Some("https://example.org/t.jpg")
        );
    }

    #[test]
    fn a_range_item_and_bad_items() {
        let mut range = item();
        range["properties"]["datetime"] = Json::Null;
        range["properties"]["start_datetime"] = json!("2024-01-01T00:00:00Z");
        range["properties"]["end_datetime"] = json!("2024-01-01T00:01:00Z");
        let mapped = map_item(&range, "T", "c", &AssetChoice::Default, "datetime").unwrap();
        assert_eq!(
            mapped.product.validity_stop,
            Some(parse_timestamp("2024-01-01T00:01:00Z").unwrap())
        );
        assert_eq!(mapped.time, mapped.product.validity_start);
        let mut timeless = item();
        timeless["properties"]["datetime"] = Json::Null;
        let error = map_item(&timeless, "T", "c", &AssetChoice::Default, "datetime").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("item \"S2B_31UFU_20240101_0_L2A\""),
            "{error}"
        );
        assert!(map_item(
            &json!({"properties": {}}),
            "T",
            "c",
            &AssetChoice::Default,
            "datetime"
        )
        .is_err());
    }

    #[test]
    fn checksums_and_names() {
        assert_eq!(
            multihash_to_muninn("d50110d41d8cd98f00b204e9800998ecf8427e").as_deref(),
            Some("md5:d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(multihash_to_muninn("1220abc"), None);
        assert_eq!(
            column_name("eo:cloud_cover").as_deref(),
            Some("eo_cloud_cover")
        );
        assert_eq!(column_name("1st").as_deref(), Some("p1st"));
        assert_eq!(column_name("uuid"), None);
    }
}
