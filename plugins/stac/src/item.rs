//! A STAC item as a muninn product: the mapping documented in docs/stac.md.

use anyhow::{anyhow, Result};
use muninn_sync_plugin_api::model::{derived_uuid, parse_timestamp};
use muninn_sync_plugin_api::{shown, Geometry, Product, SkippedFields, Timestamp, Value};
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
    /// `updated`, or `None` when the item has none (or one that cannot be
    /// read, with `time_field = "datetime"`).
    pub updated: Option<Timestamp>,
    /// The item's time that drives the window (`datetime` or `updated`).
    pub time: Option<Timestamp>,
}

/// Maps one item of `collection` to a product of `product_type`.
/// `time_field` is "datetime" or "updated".
///
/// Only what decides the product's identity and its place in time fails
/// the item: `id`, the `properties` object, `datetime`, `start_datetime`,
/// `end_datetime` (the window's time and the validity times), and `updated`
/// when `time_field` is "updated". Any other field that cannot be read is
/// left out of the product and noted in `skipped`; null is no value, not a
/// fault.
pub fn map_item(
    item: &Json,
    product_type: &str,
    collection: &str,
    asset: &AssetChoice,
    time_field: &str,
    skipped: &mut SkippedFields,
) -> Result<MappedItem> {
    let id = item
        .get("id")
        .and_then(Json::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| anyhow!("an item without an \"id\""))?;
    let describe = || format!("item \"{id}\" of collection \"{collection}\"");
    let who = format!("{collection}/{id}");
    let properties = item
        .get("properties")
        .and_then(Json::as_object)
        .ok_or_else(|| anyhow!("{}: no \"properties\" object", describe()))?;
    let decisive = |name: &str| match name {
        "datetime" | "start_datetime" | "end_datetime" => true,
        "updated" => time_field == "updated",
        _ => false,
    };
    // The time properties, read once: a decisive one that cannot be read
    // fails the item, any other is left out.
    let mut times: BTreeMap<&str, Timestamp> = BTreeMap::new();
    for name in TIME_PROPERTIES {
        match read_time(properties.get(name)) {
            Ok(Some(time)) => {
                times.insert(name, time);
            }
            Ok(None) => {}
            Err(why) if decisive(name) => {
                return Err(anyhow!("{}: property \"{name}\": {why}", describe()))
            }
            Err(why) => skipped.skip(&who, name, why),
        }
    }
    let datetime = times.get("datetime").copied();
    let start = times.get("start_datetime").copied();
    let end = times.get("end_datetime").copied();
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
    product.creation_date = times.get("created").copied();
    product.footprint = footprint(item, &who, skipped);
    if let Some((key, fields)) = chosen_asset(item, asset) {
        match fields.get("href") {
            Some(Json::String(href)) if !href.trim().is_empty() => {
                product.remote_url = Some(href.to_string());
            }
            None | Some(Json::Null) => {}
            Some(other) => skipped.skip(
                &who,
                "href",
                format!("asset {key}: {} is not a link", shown(other)),
            ),
        }
        match fields.get("file:size") {
            None | Some(Json::Null) => {}
            Some(size) => match size.as_i64().filter(|s| *s >= 0) {
                Some(size) => product.size = Some(size),
                None => skipped.skip(
                    &who,
                    "file:size",
                    format!("asset {key}: {} is not a number of bytes", shown(size)),
                ),
            },
        }
        match fields.get("file:checksum") {
            None | Some(Json::Null) => {}
            Some(checksum) => match checksum.as_str().and_then(multihash_to_muninn) {
                Some(hash) => product.hash = Some(hash),
                None => skipped.skip(
                    &who,
                    "file:checksum",
                    format!(
                        "asset {key}: {} is not a SHA2-256, MD5 or SHA1 multihash",
                        shown(checksum)
                    ),
                ),
            },
        }
    }
    let mut namespace = BTreeMap::new();
    namespace.insert("collection".to_string(), Value::from(collection));
    // SQLite's column names ignore case: of two properties that differ
    // only in case, one in lower case has the column, else the first.
    let mut taken: BTreeMap<String, &str> = BTreeMap::new();
    taken.insert("collection".into(), "the collection id");
    let mut in_order: Vec<(&String, &Json)> = properties.iter().collect();
    in_order.sort_by_key(|(name, _)| name.chars().any(|c| c.is_ascii_uppercase()));
    for (name, value) in in_order {
        let Some(column) = column_name(name) else {
            if !value.is_null() {
                skipped.skip(&who, name, "no column name can be made of it");
            }
            continue;
        };
        if let Some(first) = taken.get(&column.to_ascii_lowercase()) {
            if !value.is_null() {
                skipped.skip(
                    &who,
                    name,
                    format!("its column {column} already holds {first}"),
                );
            }
            continue;
        }
        let value = if TIME_PROPERTIES.contains(&name.as_str()) {
            times.get(name.as_str()).copied().map(Value::Timestamp)
        } else {
            json_value(value)
        };
        if let Some(value) = value {
            taken.insert(column.to_ascii_lowercase(), name);
            namespace.insert(column, value);
        }
    }
    product.namespaces.insert(NAMESPACE.to_string(), namespace);
    let updated = times.get("updated").copied();
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

/// A time property: `None` when absent or null; why not, when it is blank,
/// not a string or not a time.
fn read_time(value: Option<&Json>) -> std::result::Result<Option<Timestamp>, String> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(text)) if text.trim().is_empty() => Err("blank".into()),
        Some(Json::String(text)) => parse_timestamp(text).map(Some).map_err(|e| e.to_string()),
        Some(other) => Err(format!("{} is not a time", shown(other))),
    }
}

/// The footprint: the geometry, with every longitude in [-180, 180]; the
/// `bbox` as a polygon when there is no geometry (a server asked to leave
/// geometries out, with the fields extension, sends only bboxes); none when
/// neither can be read, which leaves the fields out.
fn footprint(item: &Json, who: &str, skipped: &mut SkippedFields) -> Option<Geometry> {
    match item.get("geometry") {
        None | Some(Json::Null) => {}
        Some(geometry) => match Geometry::from_geojson(geometry) {
            Ok(geometry) => {
                let geometry = geometry.within_longitudes();
                // Off the globe even after the cut at the antimeridian: the
                // catalogue would refuse the product for it.
                match geometry.check_wgs84() {
                    Ok(()) => return Some(geometry),
                    Err(error) => skipped.skip(who, "geometry", error),
                }
            }
            Err(error) => skipped.skip(who, "geometry", error),
        },
    }
    match item.get("bbox") {
        None | Some(Json::Null) => None,
        Some(bbox) => match bbox_polygon(bbox) {
            Ok(polygon) => Some(polygon),
            Err(why) => {
                skipped.skip(who, "bbox", why);
                None
            }
        },
    }
}

/// A STAC bbox (`[west, south, east, north]`, or with heights
/// `[west, south, low, east, north, high]`) as the polygon it covers; one
/// that crosses the antimeridian (west > east) as two.
fn bbox_polygon(bbox: &Json) -> std::result::Result<Geometry, String> {
    let numbers: Option<Vec<f64>> = bbox
        .as_array()
        .and_then(|values| values.iter().map(Json::as_f64).collect());
    let (west, south, east, north) = match numbers.as_deref() {
        Some(&[w, s, e, n]) | Some(&[w, s, _, e, n, _]) => (w, s, e, n),
        _ => return Err(format!("{} is not 4 or 6 numbers", shown(bbox))),
    };
    let in_range =
        |lon: f64, lat: f64| (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat);
    if !(in_range(west, south) && in_range(east, north)) || south >= north || west == east {
        return Err(format!("{} is not a box on the globe", shown(bbox)));
    }
    let square = |w: f64, e: f64| {
        let p = |x, y| muninn_sync_plugin_api::model::Point { x, y };
        vec![vec![
            p(w, south),
            p(e, south),
            p(e, north),
            p(w, north),
            p(w, south),
        ]]
    };
    Ok(if west < east {
        Geometry::Polygon(square(west, east))
    } else {
        Geometry::MultiPolygon(vec![square(west, 180.0), square(-180.0, east)])
    })
}

/// The key and fields of the asset `choice` picks.
fn chosen_asset<'a>(
    item: &'a Json,
    choice: &AssetChoice,
) -> Option<(&'a str, &'a serde_json::Map<String, Json>)> {
    let assets = item.get("assets")?.as_object()?;
    let (key, picked) = match choice {
        AssetChoice::Key(key) => assets.get_key_value(key),
        AssetChoice::Default => assets.get_key_value("product").or_else(|| {
            assets.iter().find(|(_, asset)| {
                asset
                    .get("roles")
                    .and_then(Json::as_array)
                    .is_some_and(|roles| roles.iter().any(|r| r == "data"))
            })
        }),
    }?;
    Some((key.as_str(), picked.as_object()?))
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
            &mut SkippedFields::default(),
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
        let mapped = map_item(
            &bare,
            "S2MSI2A",
            "c",
            &AssetChoice::Default,
            "updated",
            &mut SkippedFields::default(),
        )
        .unwrap();
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
            &mut SkippedFields::default(),
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
        let mapped = map_item(
            &range,
            "T",
            "c",
            &AssetChoice::Default,
            "datetime",
            &mut SkippedFields::default(),
        )
        .unwrap();
        assert_eq!(
            mapped.product.validity_stop,
            Some(parse_timestamp("2024-01-01T00:01:00Z").unwrap())
        );
        assert_eq!(mapped.time, mapped.product.validity_start);
        let mut timeless = item();
        timeless["properties"]["datetime"] = Json::Null;
        let error = map_item(
            &timeless,
            "T",
            "c",
            &AssetChoice::Default,
            "datetime",
            &mut SkippedFields::default(),
        )
        .unwrap_err();
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
            "datetime",
            &mut SkippedFields::default(),
        )
        .is_err());
    }

    /// The items of a recorded response in tests/fixtures/real/stac
    /// (README.md there says where each comes from).
    fn real_items(file: &str) -> Vec<Json> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/real/stac")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let page: Json = serde_json::from_str(&text).unwrap();
        page["features"].as_array().unwrap().clone()
    }

    fn map(item: &Json, skipped: &mut SkippedFields) -> Result<MappedItem> {
        map_item(item, "T", "c", &AssetChoice::Default, "datetime", skipped)
    }

    #[test]
    fn real_items_map_without_failing_and_without_leaving_out_good_fields() {
        for file in [
            "earth-search-cop-dem-glo-30.json",
            "earth-search-fields-bbox-only.json",
            "earth-search-sentinel-1-2.json",
            "cdse-sentinel-3-syn.json",
            "planetary-computer-naip.json",
        ] {
            let mut skipped = SkippedFields::default();
            for item in real_items(file) {
                let mapped = map(&item, &mut skipped).unwrap();
                mapped.product.validate().unwrap();
                assert!(mapped.time.is_some(), "{file}");
                let footprint = mapped.product.footprint.expect(file);
                let (min, max) = footprint.bounds();
                assert!(min.x >= -180.0 && max.x <= 180.0, "{file}: {footprint}");
            }
            assert_eq!(skipped.total(), 0, "{file}: {:?}", skipped.by_field());
        }
    }

    #[test]
    fn a_dem_tile_past_minus_180_is_cut_at_the_antimeridian() {
        let items = real_items("earth-search-cop-dem-glo-30.json");
        let mut skipped = SkippedFields::default();
        let edge = map(&items[0], &mut skipped).unwrap().product;
        let Some(Geometry::MultiPolygon(parts)) = &edge.footprint else {
            panic!("{:?}", edge.footprint)
        };
        // The tile, and the sliver west of -180 moved to just below 180.
        assert_eq!(parts.len(), 2);
        assert!(parts[1][0].iter().all(|p| p.x > 179.99 && p.x <= 180.0));
        let inner = map(&items[1], &mut skipped).unwrap().product;
        assert!(matches!(inner.footprint, Some(Geometry::Polygon(_))));
        // Nested objects and arrays as JSON text; namespace columns from
        // extension names with colons.
        let stac = &edge.namespaces[NAMESPACE];
        assert_eq!(stac["proj_epsg"], Value::Integer(4326));
        assert_eq!(stac["grid_code"], Value::from("CDEM-S90W180"));
        assert_eq!(stac["storage_requester_pays"], Value::Boolean(false));
        let centroid: Json = match &stac["proj_centroid"] {
            Value::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(centroid, items[0]["properties"]["proj:centroid"]);
    }

    #[test]
    fn a_geometry_off_the_globe_is_left_out_and_the_bbox_used() {
        let items = real_items("earth-search-fields-bbox-only.json");
        let mut off = items[0].clone();
        off["geometry"] =
            json!({"type": "Polygon", "coordinates": [[[5, 89], [6, 89], [6, 95], [5, 89]]]});
        let mut skipped = SkippedFields::default();
        let mapped = map(&off, &mut skipped).unwrap();
        assert!(mapped
            .product
            .footprint
            .unwrap()
            .to_wkt()
            .starts_with("POLYGON((-106.180233"));
        assert!(skipped.by_field()["geometry"]
            .first_reason
            .contains("latitude 95"));
    }

    #[test]
    fn an_item_with_a_bbox_and_no_geometry_gets_the_bbox_as_footprint() {
        let items = real_items("earth-search-fields-bbox-only.json");
        let mapped = map(&items[0], &mut SkippedFields::default()).unwrap();
        assert_eq!(
            mapped.product.footprint.unwrap().to_wkt(),
            "POLYGON((-106.180233 39.655762, -104.885314 39.655762, -104.885314 40.478304, -106.180233 40.478304, -106.180233 39.655762))"
        );
        // Across the antimeridian (west > east), with heights: two boxes.
        let mut wide = items[0].clone();
        wide["bbox"] = json!([179.5, -1, 0, -179.5, 1, 100]);
        let footprint = map(&wide, &mut SkippedFields::default())
            .unwrap()
            .product
            .footprint
            .unwrap();
        assert_eq!(
            footprint.to_wkt(),
            "MULTIPOLYGON(((179.5 -1, 180 -1, 180 1, 179.5 1, 179.5 -1)), ((-180 -1, -179.5 -1, -179.5 1, -180 1, -180 -1)))"
        );
    }

    #[test]
    fn sentinel_1_and_2_items_of_earth_search() {
        let items = real_items("earth-search-sentinel-1-2.json");
        let mut skipped = SkippedFields::default();
        let s1 = map(&items[0], &mut skipped).unwrap().product;
        assert_eq!(
            s1.validity_start,
            Some(parse_timestamp("2025-07-31T13:57:02.256207Z").unwrap())
        );
        assert_eq!(
            s1.validity_stop,
            Some(parse_timestamp("2025-07-31T13:57:22.145414Z").unwrap())
        );
        assert_eq!(
            s1.namespaces[NAMESPACE]["sar_polarizations"],
            Value::from("[\"HH\"]")
        );
        assert_eq!(
            s1.namespaces[NAMESPACE]["s1_instrument_configuration_ID"],
            Value::from("7")
        );
        // A cloud cover of 0 is written as the integer 0, others as reals.
        let clear = map(&items[2], &mut skipped).unwrap().product;
        assert_eq!(
            clear.namespaces[NAMESPACE]["eo_cloud_cover"],
            Value::Integer(0)
        );
        let cloudy = map(&items[1], &mut skipped).unwrap().product;
        assert_eq!(
            cloudy.namespaces[NAMESPACE]["eo_cloud_cover"],
            Value::Real(26.02542)
        );
        // The first asset with the role "data", by key: "aot".
        assert_eq!(
            cloudy.remote_url.as_deref(),
            items[1]["assets"]["aot"]["href"].as_str()
        );
        assert_eq!(
            cloudy.hash.as_deref(),
            Some("sha256:794626613689dfab86f2fa14fcb77f6f05d816ae7c2054d5347dbaefa9a809af")
        );
        assert_eq!(skipped.total(), 0, "{:?}", skipped.by_field());
    }

    #[test]
    fn cdse_items_keep_what_can_be_read_and_leave_out_the_rest() {
        // CDSE's Sentinel-2 assets carry SHA3-256 checksums (multihash
        // 0x16), which muninn has no name for: left out, counted once.
        let mut skipped = SkippedFields::default();
        for item in real_items("cdse-sentinel-2-l2a.json") {
            let p = map(&item, &mut skipped).unwrap().product;
            assert_eq!(p.hash, None);
            assert!(p.size.is_some() && p.remote_url.is_some());
            assert!(matches!(
                &p.namespaces[NAMESPACE]["statistics"],
                Value::Text(t) if t.starts_with('{')
            ));
        }
        assert_eq!(skipped.by_field()["file:checksum"].count, 2);
        assert_eq!(skipped.by_field().len(), 1);
        // Sentinel-3: "proj:code": null is no value; the product asset has
        // an MD5.
        let s3 = map(&real_items("cdse-sentinel-3-syn.json")[0], &mut skipped)
            .unwrap()
            .product;
        assert!(!s3.namespaces[NAMESPACE].contains_key("proj_code"));
        assert!(s3.hash.unwrap().starts_with("md5:"));
    }

    #[test]
    fn blank_null_or_malformed_fields_are_left_out_and_counted() {
        let mut odd = item();
        odd["properties"]["created"] = json!("");
        odd["properties"]["updated"] = json!("yesterday");
        odd["properties"]["uuid"] = json!("x");
        odd["properties"]["Platform"] = json!("clashes with platform");
        odd["geometry"] = json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]});
        odd["bbox"] = json!([5, 52, 6]);
        odd["assets"]["visual"]["file:size"] = json!("12 kB");
        let mut skipped = SkippedFields::default();
        let p = map(&odd, &mut skipped).unwrap();
        assert_eq!(
            (p.product.creation_date, p.updated, &p.product.footprint),
            (None, None, &None)
        );
        assert_eq!(p.product.size, None);
        let stac = &p.product.namespaces[NAMESPACE];
        assert!(!stac.contains_key("created") && !stac.contains_key("updated"));
        assert_eq!(stac["platform"], Value::from("sentinel-2b"));
        assert_eq!(
            skipped.by_field().keys().collect::<Vec<_>>(),
            [
                "Platform",
                "bbox",
                "created",
                "file:size",
                "geometry",
                "updated",
                "uuid"
            ]
        );
        assert_eq!(skipped.by_field()["created"].first_reason, "blank");
        assert_eq!(
            skipped.by_field()["created"].first_product,
            "c/S2B_31UFU_20240101_0_L2A"
        );
        // What decides the window's time still fails the item.
        let error = map_item(
            &odd,
            "T",
            "c",
            &AssetChoice::Default,
            "updated",
            &mut skipped,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("property \"updated\""),
            "{error}"
        );
        let mut bad_start = item();
        bad_start["properties"]["start_datetime"] = json!("");
        assert!(map(&bad_start, &mut skipped).is_err());
    }

    #[test]
    fn three_d_coordinates_lose_their_height_and_numbers_keep_their_value() {
        let text = r#"{"id": "x", "properties": {"datetime": null,
            "start_datetime": "2024-01-01T00:00:00Z", "end_datetime": "2024-01-02T00:00:00Z",
            "precise": -11.974999865007275},
            "geometry": {"type": "Polygon", "coordinates": [[[-11.974999865007275, 8.1, 10], [-11, 8.1, 10], [-11, 9, 11], [-11.974999865007275, 8.1, 10]]]}}"#;
        let item: Json = serde_json::from_str(text).unwrap();
        let p = map(&item, &mut SkippedFields::default()).unwrap().product;
        assert_eq!(
            p.footprint.unwrap().to_wkt(),
            "POLYGON((-11.974999865007275 8.1, -11 8.1, -11 9, -11.974999865007275 8.1))"
        );
        assert_eq!(
            p.namespaces[NAMESPACE]["precise"],
            Value::Real(-11.974999865007275)
        );
        assert_eq!(
            p.validity_stop,
            Some(parse_timestamp("2024-01-02T00:00:00Z").unwrap())
        );
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
