//! A CDSE OData product as a muninn product: the mapping documented in
//! docs/odata.md.

use anyhow::{anyhow, Result};
use muninn_sync_plugin_api::model::{parse_timestamp, validate_property_name};
use muninn_sync_plugin_api::{shown, Geometry, Product, Timestamp, Uuid, Value};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// The namespace every product's other fields and attributes are kept in.
pub const NAMESPACE: &str = "cdse";

/// Fields that become core properties (or are not properties at all) and so
/// are not copied into the namespace.
const CORE_FIELDS: [&str; 7] = [
    "Id",
    "Name",
    "ContentDate",
    "Footprint",
    "GeoFootprint",
    "Attributes",
    "Checksum",
];

/// What the mapping needs besides the product itself.
#[derive(Debug, Clone)]
pub struct Mapping<'a> {
    pub product_type: &'a str,
    /// The base of download URLs (`<root>/Products(<Id>)/$value`).
    pub download_root: &'a str,
    /// Endings removed from `Name` to make the product name.
    pub name_suffixes: &'a [String],
}

/// The product's `Id` as a uuid.
pub fn id(product: &Json) -> Result<Uuid> {
    let text = product
        .get("Id")
        .and_then(Json::as_str)
        .ok_or_else(|| anyhow!("a product without an \"Id\""))?;
    Uuid::parse_str(text).map_err(|e| anyhow!("\"Id\" {text:?} is not a uuid: {e}"))
}

/// The product's `Name`, or `?` to describe one without.
pub fn name(product: &Json) -> &str {
    product
        .get("Name")
        .and_then(Json::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("?")
}

/// A timestamp field (`ModificationDate`, `ContentDate/Start`...): `None`
/// when absent or null.
pub fn time(product: &Json, path: &str) -> Result<Option<Timestamp>> {
    let pointer = format!("/{path}");
    match product.pointer(&pointer) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(text)) => parse_timestamp(text)
            .map(Some)
            .map_err(|e| anyhow!("\"{path}\": {e}")),
        Some(other) => Err(anyhow!("\"{path}\" is not a time: {other}")),
    }
}

/// The product name muninn users expect for `name`: the configured endings
/// removed as long as one matches (`X.SAFE.zip` -> `X`), but never down to
/// nothing.
pub fn product_name<'n>(name: &'n str, suffixes: &[String]) -> &'n str {
    let mut stem = name;
    while let Some(shorter) = suffixes
        .iter()
        .find_map(|suffix| stem.strip_suffix(suffix.as_str()))
        .filter(|shorter| !shorter.is_empty())
    {
        stem = shorter;
    }
    stem
}

/// A product mapped from an entry of `Products`, and the fields left out of
/// it.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub product: Product,
    /// The fields that were blank or malformed, in the order met, each once.
    pub left_out: Vec<LeftOut>,
}

/// A field left out of a product: what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// The field as OData names it (`EvictionDate`, `Checksum`), an
    /// attribute as `Attributes/<Name>`.
    pub field: String,
    pub reason: String,
}

/// The fields left out of one product; a field is noted once.
#[derive(Default)]
struct LeftOuts(Vec<LeftOut>);

impl LeftOuts {
    fn note(&mut self, field: &str, reason: impl Into<String>) {
        if !self.0.iter().any(|l| l.field == field) {
            self.0.push(LeftOut {
                field: field.to_string(),
                reason: reason.into(),
            });
        }
    }
}

/// Maps one entry of `Products` (with its `Attributes` expanded). Only what
/// decides the product's identity and place fails it: `Id`, `Name`,
/// `ContentDate/Start`, `ContentDate/End` (the time field the window is
/// read by is checked before, by the reader). Any other field that is
/// blank or malformed is left out, and listed in [`Mapped::left_out`];
/// null is no value, absent without a note.
pub fn map_product(json: &Json, mapping: &Mapping<'_>) -> Result<Mapped> {
    let uuid = id(json)?;
    let name = json
        .get("Name")
        .and_then(Json::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| anyhow!("product {uuid} has no \"Name\""))?;
    let fields = json
        .as_object()
        .ok_or_else(|| anyhow!("a product is not a JSON object"))?;

    let mut product = Product::with_uuid(
        uuid,
        mapping.product_type,
        product_name(name, mapping.name_suffixes),
    );
    product.physical_name = name.to_string();
    product.validity_start = time(json, "ContentDate/Start")?;
    product.validity_stop = time(json, "ContentDate/End")?;
    product.remote_url = Some(format!(
        "{}/Products({})/$value",
        mapping.download_root,
        uuid.hyphenated()
    ));
    let mut left_out = LeftOuts::default();
    product.footprint = footprint(json, &mut left_out);

    let mut namespace = BTreeMap::new();
    for (field, value) in fields {
        if field.starts_with('@') || CORE_FIELDS.contains(&field.as_str()) {
            continue;
        }
        let Some(column) = column_name(field) else {
            left_out.note(field, "a name that cannot be a column name");
            continue;
        };
        match field_value(field, value) {
            Ok(Some(value)) => {
                namespace.insert(column, value);
            }
            Ok(None) => {}
            Err(reason) => left_out.note(field, reason),
        }
    }
    product.size = match namespace.get("ContentLength") {
        Some(Value::Integer(size)) => Some(*size),
        _ => None,
    };
    product.creation_date = match namespace.get("OriginDate") {
        Some(Value::Timestamp(time)) => Some(*time),
        _ => None,
    };
    let (hash, checksums) = checksums(fields.get("Checksum"), &mut left_out);
    product.hash = hash;
    if let Some(checksums) = checksums {
        namespace.insert("Checksum".into(), Value::Json(checksums));
    }
    match fields.get("Attributes") {
        None | Some(Json::Null) => {}
        Some(Json::Array(attributes)) => {
            for (place, attribute) in attributes.iter().enumerate() {
                add_attribute(place, attribute, &mut namespace, &mut left_out);
            }
        }
        Some(other) => left_out.note("Attributes", format!("not a list: {}", shown(other))),
    }
    product.namespaces.insert(NAMESPACE.to_string(), namespace);
    Ok(Mapped {
        product,
        left_out: left_out.0,
    })
}

/// Whether a value is a string of nothing but white space.
fn blank(value: &Json) -> bool {
    value.as_str().is_some_and(|s| s.trim().is_empty())
}

/// A field of the product (not a core one) as its namespace value: CDSE's
/// own fields by the type CDSE gives them (a name ending in `Date` a
/// time), others by their JSON type; `None` for null; why not when it is
/// blank or not of its type.
fn field_value(field: &str, value: &Json) -> Result<Option<Value>, String> {
    if value.is_null() {
        return Ok(None);
    }
    if blank(value) {
        return Err("blank".into());
    }
    let wrong = |kind: &str| format!("not {kind}: {}", shown(value));
    Ok(Some(match field {
        "ContentLength" => match value.as_i64() {
            Some(size) if size >= 0 => Value::Integer(size),
            Some(_) => return Err(format!("negative: {}", shown(value))),
            None => return Err(wrong("a size in bytes")),
        },
        "Online" => Value::Boolean(value.as_bool().ok_or_else(|| wrong("true or false"))?),
        "ContentType" | "S3Path" => Value::from(value.as_str().ok_or_else(|| wrong("text"))?),
        _ if field.ends_with("Date") => Value::Timestamp(
            value
                .as_str()
                .and_then(|text| parse_timestamp(text).ok())
                .ok_or_else(|| wrong("a time"))?,
        ),
        _ => match untyped(value) {
            Some(value) => value,
            None => return Ok(None),
        },
    }))
}

/// The hash (`md5:<hex>` from the entry with `Algorithm` MD5) and the
/// namespace's `Checksum` (the entries that have an `Algorithm` and a
/// `Value`, as they came) from the `Checksum` list. An empty list is no
/// checksum; entries without `Algorithm` or `Value` (`[{}]`) and an MD5
/// that is not 32 hexadecimal digits are left out.
fn checksums(list: Option<&Json>, left_out: &mut LeftOuts) -> (Option<String>, Option<Json>) {
    let entries = match list {
        None | Some(Json::Null) => return (None, None),
        Some(Json::Array(entries)) => entries,
        Some(other) => {
            left_out.note("Checksum", format!("not a list: {}", shown(other)));
            return (None, None);
        }
    };
    let text = |entry: &Json, key: &str| {
        entry
            .get(key)
            .and_then(Json::as_str)
            .filter(|t| !t.trim().is_empty())
            .map(str::to_string)
    };
    let mut kept = Vec::new();
    let mut hash = None;
    for entry in entries {
        let (Some(algorithm), Some(value)) = (text(entry, "Algorithm"), text(entry, "Value"))
        else {
            left_out.note(
                "Checksum",
                format!("an entry without Algorithm or Value: {}", shown(entry)),
            );
            continue;
        };
        if algorithm.eq_ignore_ascii_case("MD5") && hash.is_none() {
            if value.len() == 32 && value.chars().all(|c| c.is_ascii_hexdigit()) {
                hash = Some(format!("md5:{}", value.to_ascii_lowercase()));
            } else {
                left_out.note(
                    "Checksum",
                    format!("an MD5 that is not 32 hexadecimal digits: {value}"),
                );
            }
        }
        kept.push(entry.clone());
    }
    let kept = (!kept.is_empty()).then(|| Json::from(kept));
    (hash, kept)
}

/// The footprint from `GeoFootprint` (GeoJSON), else from `Footprint`
/// (`geography'SRID=4326;POLYGON ((...))'`); `None` when both are null or
/// neither is a geometry (then each one that is not is left out).
fn footprint(json: &Json, left_out: &mut LeftOuts) -> Option<Geometry> {
    match json.get("GeoFootprint") {
        None | Some(Json::Null) => {}
        Some(geojson) => {
            match Geometry::from_geojson(geojson).and_then(|g| g.check_wgs84().map(|()| g)) {
                Ok(geometry) => return Some(geometry),
                Err(e) => left_out.note("GeoFootprint", format!("not a geometry: {e}")),
            }
        }
    }
    let text = match json.get("Footprint") {
        None | Some(Json::Null) => return None,
        Some(Json::String(text)) if !text.trim().is_empty() => text,
        Some(other) => {
            left_out.note("Footprint", format!("not a geometry: {}", shown(other)));
            return None;
        }
    };
    let wkt = text
        .trim()
        .strip_prefix("geography'")
        .and_then(|t| t.strip_suffix('\''))
        .unwrap_or(text);
    let wkt = match wkt.split_once(';') {
        Some((srid, rest)) if srid.trim().to_ascii_uppercase().starts_with("SRID=") => rest,
        _ => wkt,
    };
    match Geometry::from_wkt(wkt.trim()).and_then(|g| g.check_wgs84().map(|()| g)) {
        Ok(geometry) => Some(geometry),
        Err(e) => {
            left_out.note(
                "Footprint",
                format!("not a geometry: {e}: {}", shown(&Json::from(text.as_str()))),
            );
            None
        }
    }
}

/// Adds one entry of `Attributes` (the `place`-th) to the namespace, or
/// notes why it is left out.
fn add_attribute(
    place: usize,
    attribute: &Json,
    namespace: &mut BTreeMap<String, Value>,
    left_out: &mut LeftOuts,
) {
    let Some(attribute_name) = attribute
        .get("Name")
        .and_then(Json::as_str)
        .filter(|n| !n.trim().is_empty())
    else {
        left_out.note(
            "Attributes",
            format!("entry {place} has no Name: {}", shown(attribute)),
        );
        return;
    };
    let field = format!("Attributes/{attribute_name}");
    let Some(column) = column_name(attribute_name) else {
        left_out.note(&field, "a name that cannot be a column name");
        return;
    };
    // A field of the same name (case does not matter to SQLite) wins.
    if namespace.keys().any(|c| c.eq_ignore_ascii_case(&column)) {
        tracing::debug!(attribute = attribute_name, "attribute shadowed by a field");
        return;
    }
    match attribute_value(attribute) {
        Ok(Some(value)) => {
            namespace.insert(column, value);
        }
        Ok(None) => {}
        Err(reason) => left_out.note(&field, reason),
    }
}

/// An attribute's value, typed by its `ValueType`: integers stay integers,
/// doubles reals (`12` too), `DateTimeOffset` timestamps; numbers and
/// booleans written as text are read; null is absent. Why not when there
/// is no `Value`, or it is blank or not of its type.
fn attribute_value(attribute: &Json) -> Result<Option<Value>, String> {
    let value = match attribute.get("Value") {
        None => return Err("no Value".into()),
        Some(Json::Null) => return Ok(None),
        Some(value) if blank(value) => return Err("blank".into()),
        Some(value) => value,
    };
    let value_type = attribute
        .get("ValueType")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let text = value.as_str().map(str::trim);
    let wrong = || format!("not of the type {value_type}: {}", shown(value));
    Ok(Some(match value_type {
        "Integer" | "Int64" | "Int32" => Value::Integer(
            value
                .as_i64()
                .or_else(|| text.and_then(|t| t.parse().ok()))
                .ok_or_else(wrong)?,
        ),
        "Double" | "Decimal" | "Single" => Value::Real(
            value
                .as_f64()
                .or_else(|| text.and_then(|t| t.parse().ok()))
                .filter(|number: &f64| number.is_finite())
                .ok_or_else(wrong)?,
        ),
        "DateTimeOffset" | "DateTime" | "Date" => Value::Timestamp(
            text.and_then(|t| parse_timestamp(t).ok())
                .ok_or_else(wrong)?,
        ),
        "Boolean" => Value::Boolean(
            value
                .as_bool()
                .or_else(|| text.and_then(|t| t.parse().ok()))
                .ok_or_else(wrong)?,
        ),
        "String" => Value::from(
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string)
                .as_str(),
        ),
        _ => match untyped(value) {
            Some(value) => value,
            None => return Ok(None),
        },
    }))
}

/// A value without a declared type, by its JSON type: arrays and objects as
/// JSON.
fn untyped(value: &Json) -> Option<Value> {
    match value {
        Json::Null => None,
        Json::Bool(b) => Some(Value::Boolean(*b)),
        Json::Number(n) => Some(match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64()?),
        }),
        Json::String(s) => Some(Value::from(s.as_str())),
        other => Some(Value::Json(other.clone())),
    }
}

/// A field or attribute name as a column name: kept as OData spells it when
/// it is a valid muninn property name, else with `_` for other characters;
/// `None` when nothing usable is left.
fn column_name(name: &str) -> Option<String> {
    if validate_property_name(name).is_ok() {
        return Some(name.to_string());
    }
    let mut column: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !column.starts_with(|c: char| c.is_ascii_alphabetic()) {
        column.insert(0, 'a');
    }
    validate_property_name(&column).is_ok().then_some(column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The product of ../shared/notes/cdse-odata.md, as CDSE sends it.
    fn real() -> Json {
        json!({
            "@odata.mediaContentType": "application/octet-stream",
            "Id": "67360f3a-f36b-11ef-9d3f-0050561a7772",
            "Name": "S1A_AUX_INS_V20140406T010000_G20140409T142540.SAFE",
            "ContentType": "application/octet-stream",
            "ContentLength": 728976,
            "OriginDate": "2024-10-08T18:04:08.818Z",
            "PublicationDate": "2025-07-17T11:55:07.282635Z",
            "ModificationDate": "2025-10-10T17:56:18.034265Z",
            "Online": true,
            "EvictionDate": "9999-12-31T23:59:59.999999Z",
            "S3Path": "/eodata/Sentinel-1/AUX/AUX_INS/2014/04/06/S1A_AUX_INS_V20140406T010000_G20140409T142540.SAFE.zip",
            "Checksum": [
                {"Value": "23383D85C5231487CE13D1C10AEB8E7B", "Algorithm": "MD5", "ChecksumDate": "2025-10-10T17:56:17.610209Z"},
                {"Value": "6a7eacd5", "Algorithm": "BLAKE3", "ChecksumDate": "2025-10-10T17:56:17.631542Z"}
            ],
            "ContentDate": {"Start": "2014-04-06T01:00:00.000000Z", "End": "2014-04-06T01:00:00.000Z"},
            "Footprint": "geography'SRID=4326;POLYGON ((142.35 13.47, 143.36 13.47, 143.36 14.47, 142.35 14.47, 142.35 13.47))'",
            "GeoFootprint": {"type": "Polygon", "coordinates": [[[142.35, 13.47], [143.36, 13.47], [143.36, 14.47], [142.35, 14.47], [142.35, 13.47]]]},
            "Attributes": [
                {"@odata.type": "#OData.CSC.StringAttribute", "Name": "productType", "Value": "AUX_INS", "ValueType": "String"},
                {"@odata.type": "#OData.CSC.DateTimeOffsetAttribute", "Name": "processingDate", "Value": "2014-04-09T14:25:40.000000Z", "ValueType": "DateTimeOffset"},
                {"@odata.type": "#OData.CSC.IntegerAttribute", "Name": "instrumentConfigurationID", "Value": 1, "ValueType": "Integer"},
                {"@odata.type": "#OData.CSC.DoubleAttribute", "Name": "cloudCover", "Value": 12, "ValueType": "Double"}
            ]
        })
    }

    fn mapping(suffixes: &[String]) -> Mapping<'_> {
        Mapping {
            product_type: "AUX_INS",
            download_root: "https://download.dataspace.copernicus.eu/odata/v1",
            name_suffixes: suffixes,
        }
    }

    fn t(text: &str) -> Timestamp {
        parse_timestamp(text).unwrap()
    }

    #[test]
    fn a_real_product_maps_as_documented() {
        let suffixes = crate::config::default_name_suffixes();
        let mapped = map_product(&real(), &mapping(&suffixes)).unwrap();
        assert_eq!(mapped.left_out, []);
        let p = mapped.product;
        assert_eq!(
            p.uuid.hyphenated().to_string(),
            "67360f3a-f36b-11ef-9d3f-0050561a7772"
        );
        assert_eq!(
            p.product_name,
            "S1A_AUX_INS_V20140406T010000_G20140409T142540"
        );
        assert_eq!(
            p.physical_name,
            "S1A_AUX_INS_V20140406T010000_G20140409T142540.SAFE"
        );
        assert_eq!(p.size, Some(728976));
        assert_eq!(
            p.hash.as_deref(),
            Some("md5:23383d85c5231487ce13d1c10aeb8e7b")
        );
        assert_eq!(p.validity_start, Some(t("2014-04-06T01:00:00Z")));
        assert_eq!(p.validity_stop, Some(t("2014-04-06T01:00:00Z")));
        assert_eq!(p.creation_date, Some(t("2024-10-08T18:04:08.818Z")));
        assert!(p.footprint.is_some());
        assert_eq!(
            p.remote_url.as_deref(),
            Some("https://download.dataspace.copernicus.eu/odata/v1/Products(67360f3a-f36b-11ef-9d3f-0050561a7772)/$value")
        );
        let ns = &p.namespaces[NAMESPACE];
        assert_eq!(ns["ContentLength"], Value::Integer(728976));
        assert_eq!(
            ns["ModificationDate"],
            Value::Timestamp(t("2025-10-10T17:56:18.034265Z"))
        );
        assert_eq!(
            ns["EvictionDate"],
            Value::Timestamp(t("9999-12-31T23:59:59.999999Z"))
        );
        assert_eq!(ns["Online"], Value::Boolean(true));
        assert_eq!(ns["productType"], Value::from("AUX_INS"));
        assert_eq!(
            ns["processingDate"],
            Value::Timestamp(t("2014-04-09T14:25:40Z"))
        );
        assert_eq!(ns["instrumentConfigurationID"], Value::Integer(1));
        assert_eq!(
            ns["cloudCover"],
            Value::Real(12.0),
            "typed by ValueType, not by JSON"
        );
        assert!(matches!(&ns["Checksum"], Value::Json(j) if j[1]["Algorithm"] == "BLAKE3"));
        assert!(!ns.contains_key("Footprint") && !ns.contains_key("Id"));
    }

    #[test]
    fn footprints_checksums_and_names_as_they_come() {
        let suffixes = crate::config::default_name_suffixes();
        let mut json = real();
        json["GeoFootprint"] = Json::Null;
        json["Footprint"] = json!("geography'SRID=4326;MULTIPOLYGON (((179 0, 180 0, 180 1, 179 0)), ((-180 0, -179 0, -180 1, -180 0)))'");
        json["Checksum"] = json!([]);
        json["Name"] =
            json!("S2B_MSIL1C_20240101T101010_N0510_R022_T32UQD_20240101T120000.SAFE.zip");
        let p = map_product(&json, &mapping(&suffixes)).unwrap().product;
        assert!(p.footprint.is_some());
        assert_eq!(p.hash, None);
        assert!(!p.namespaces[NAMESPACE].contains_key("Checksum"));
        assert_eq!(
            p.product_name,
            "S2B_MSIL1C_20240101T101010_N0510_R022_T32UQD_20240101T120000"
        );
        // A footprint off the globe is left out; the product is kept.
        json["Footprint"] = json!("geography'SRID=4326;POLYGON ((5 89, 6 89, 6 95, 5 89))'");
        let mapped = map_product(&json, &mapping(&suffixes)).unwrap();
        assert_eq!(mapped.product.footprint, None);
        json["Footprint"] = Json::Null;
        assert_eq!(
            map_product(&json, &mapping(&suffixes))
                .unwrap()
                .product
                .footprint,
            None
        );

        assert_eq!(
            product_name("S5P_OFFL_L2__NO2____20240101T0.nc", &suffixes),
            "S5P_OFFL_L2__NO2____20240101T0"
        );
        assert_eq!(
            product_name("S2A_OPER_MSI_L1C_DS_2BPS_N05.10", &suffixes),
            "S2A_OPER_MSI_L1C_DS_2BPS_N05.10"
        );
        assert_eq!(product_name("X.tar", &suffixes), "X.tar");
        assert_eq!(product_name(".SAFE", &suffixes), ".SAFE");
        assert_eq!(product_name("X.SAFE.zip", &[]), "X.SAFE.zip");
    }

    /// The products of a recorded answer in tests/fixtures/real/odata (see
    /// its README.md): a page's `value` list, or a notification's product.
    fn recorded(file: &str) -> Vec<Json> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/real/odata")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let answer: Json = serde_json::from_str(&text).unwrap();
        match answer.get("value").or_else(|| answer.get("Value")) {
            Some(Json::Array(products)) => products.clone(),
            Some(product) => vec![product.clone()],
            None => panic!("{file}: neither a page nor a notification"),
        }
    }

    fn map(json: &Json, product_type: &str) -> Mapped {
        let suffixes = crate::config::default_name_suffixes();
        let mapping = Mapping {
            product_type,
            ..mapping(&suffixes)
        };
        map_product(json, &mapping).unwrap()
    }

    fn fields(mapped: &Mapped) -> Vec<&str> {
        mapped.left_out.iter().map(|l| l.field.as_str()).collect()
    }

    #[test]
    fn recorded_aux_products_without_footprints_keep_their_names_sizes_and_hashes() {
        let page = recorded("cdsetool-sentinel-1-aux-page.json");
        let mapped: Vec<Mapped> = page.iter().map(|p| map(p, "AUX")).collect();
        for m in &mapped {
            assert_eq!(m.left_out, [], "{}", m.product.physical_name);
            assert_eq!(
                m.product.footprint, None,
                "Footprint and GeoFootprint are null"
            );
        }
        let names: Vec<(&str, &str)> = mapped
            .iter()
            .map(|m| {
                (
                    m.product.product_name.as_str(),
                    m.product.physical_name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                (
                    "S1A_AUX_INS_V20140406T133000_G20251015T074233",
                    "S1A_AUX_INS_V20140406T133000_G20251015T074233.SAFE"
                ),
                (
                    "S1A_OPER_AUX_POEORB_OPOD_20210301T130653_V20140406T225944_20140408T005944",
                    "S1A_OPER_AUX_POEORB_OPOD_20210301T130653_V20140406T225944_20140408T005944.EOF"
                ),
                (
                    "S1A_OPER_AUX_PROQUA_POD__20210114T081132_V20140406T235944_20140407T235943",
                    "S1A_OPER_AUX_PROQUA_POD__20210114T081132_V20140406T235944_20140407T235943"
                ),
            ]
        );
        let orbit = &mapped[1].product;
        assert_eq!(orbit.size, Some(4417447));
        assert_eq!(
            orbit.hash.as_deref(),
            Some(format!("md5:{}", page[1]["Checksum"][0]["Value"].as_str().unwrap()).as_str())
        );
        assert_eq!(
            orbit.validity_start,
            Some(t(page[1]["ContentDate"]["Start"].as_str().unwrap()))
        );
        let ns = &orbit.namespaces[NAMESPACE];
        assert_eq!(
            ns["EvictionDate"],
            Value::Timestamp(t("9999-12-31T23:59:59.999999Z"))
        );
        assert_eq!(
            ns["ModificationDate"],
            Value::Timestamp(t("2025-10-10T17:56:11.517769Z"))
        );
    }

    #[test]
    fn recorded_sentinel_2_products_keep_footprints_and_numbers_as_written() {
        let page = recorded("eodag-cop-dataspace-sentinel-2-l1c.json");
        for (json, cloud_cover) in page.iter().zip([95.136736479015, 95.3695186848618]) {
            let m = map(json, "S2MSI1C");
            assert_eq!(m.left_out, []);
            let p = &m.product;
            assert_eq!(
                p.footprint,
                Some(Geometry::from_geojson(&json["GeoFootprint"]).unwrap())
            );
            let ns = &p.namespaces[NAMESPACE];
            assert_eq!(ns["cloudCover"], Value::Real(cloud_cover));
            assert_eq!(ns["orbitNumber"], Value::Integer(26783));
            // A field CDSE added with Assets expanded, kept as it came.
            assert_eq!(ns["Assets"], Value::Json(json["Assets"].clone()));
            assert_eq!(ns["OriginDate"], Value::Timestamp(p.creation_date.unwrap()));
        }
        let first = map(&page[0], "S2MSI1C").product;
        assert_eq!(first.size, Some(224105657));
        assert_eq!(
            first.hash.as_deref(),
            Some("md5:923ac4992d90b57d41e7ace4d9d90757")
        );
        assert_eq!(first.creation_date, Some(t("2023-08-22T13:50:20.043Z")));
    }

    #[test]
    fn attribute_times_with_an_offset_and_without_a_fraction_are_times() {
        let product = &recorded("hls-notification-sentinel-2-l1c.json")[0];
        let m = map(product, "S2MSI1C");
        assert_eq!(m.left_out, []);
        let ns = &m.product.namespaces[NAMESPACE];
        // "2024-09-12T13:34:20+00:00"
        assert_eq!(
            ns["processingDate"],
            Value::Timestamp(t("2024-09-12T13:34:20Z"))
        );
        // "9999-12-31T23:59:59.999Z": three digits.
        assert_eq!(
            ns["EvictionDate"],
            Value::Timestamp(t("9999-12-31T23:59:59.999000Z"))
        );
        assert_eq!(ns["cloudCover"], Value::Real(97.680833965944));
        assert_eq!(
            m.product.hash.as_deref(),
            Some("md5:700a3f2014ab3670408b94e4310924dd")
        );

        let expected = t("2024-09-12T13:34:20.123Z");
        for text in [
            "2024-09-12T13:34:20.123Z",
            "2024-09-12T13:34:20.123000Z",
            "2024-09-12T13:34:20.123+00:00",
            "2024-09-12T13:34:20.123000+00:00",
            "2024-09-12T15:34:20.123+02:00",
        ] {
            let mut json = product.clone();
            json["Attributes"][6]["Value"] = json!(text);
            json["ModificationDate"] = json!(text);
            let m = map(&json, "S2MSI1C");
            assert_eq!(m.left_out, [], "{text}");
            let ns = &m.product.namespaces[NAMESPACE];
            assert_eq!(ns["processingDate"], Value::Timestamp(expected), "{text}");
            assert_eq!(ns["ModificationDate"], Value::Timestamp(expected), "{text}");
        }
    }

    #[test]
    fn a_blank_date_and_an_empty_checksum_leave_the_product_whole() {
        // CDSE's answer as a client's test notification kept it: "EvictionDate":
        // "", "Checksum": [{}], integers in Double attributes.
        let product = &recorded("constructed-hls-test-notification-sentinel-1-cog.json")[0];
        let m = map(product, "S3_GRDH_1S-COG");
        assert_eq!(fields(&m), ["EvictionDate", "Checksum"]);
        assert_eq!(m.left_out[0].reason, "blank");
        assert_eq!(
            m.left_out[1].reason,
            "an entry without Algorithm or Value: {}"
        );
        let p = &m.product;
        assert_eq!(
            p.uuid.hyphenated().to_string(),
            "0dd083d4-360e-4693-9791-1215da02c3a3"
        );
        assert_eq!(p.hash, None);
        assert_eq!(p.size, Some(161991897));
        assert_eq!(p.validity_start, Some(t("2023-08-01T15:29:12.689Z")));
        assert_eq!(p.validity_stop, Some(t("2023-08-01T15:29:31.839Z")));
        assert_eq!(p.creation_date, Some(t("2023-08-01T16:54:32.762Z")));
        assert!(p.footprint.is_some());
        let ns = &p.namespaces[NAMESPACE];
        assert!(!ns.contains_key("EvictionDate") && !ns.contains_key("Checksum"));
        assert_eq!(ns["startTimeFromAscendingNode"], Value::Real(5712238.0));
        assert_eq!(
            ns["completionTimeFromAscendingNode"],
            Value::Real(5731388.0)
        );
        assert_eq!(
            ns["processingDate"],
            Value::Timestamp(t("2023-08-01T16:43:32.478663Z"))
        );
        assert_eq!(ns["Online"], Value::Boolean(true));
    }

    #[test]
    fn any_other_blank_or_malformed_field_is_left_out_and_named() {
        let good = &recorded("hls-notification-sentinel-2-l1c.json")[0];
        let attribute = |json: &mut Json, name: &str, value: Json| {
            let attributes = json["Attributes"].as_array_mut().unwrap();
            let place = attributes.iter().position(|a| a["Name"] == name).unwrap();
            attributes[place]["Value"] = value;
        };
        let mut json = good.clone();
        json["GeoFootprint"] = json!({"type": "Polygon", "coordinates": "nowhere"});
        json["OriginDate"] = json!("2024-13-45T00:00:00Z");
        json["ContentLength"] = json!(-1);
        json["Online"] = json!("yes");
        json["S3Path"] = json!(" ");
        json["Checksum"][0]["Value"] = json!("not-an-md5");
        attribute(&mut json, "cloudCover", json!("cloudy"));
        attribute(&mut json, "orbitNumber", json!("many"));
        attribute(&mut json, "processingDate", json!("yesterday"));
        attribute(&mut json, "tileId", json!(""));
        let attributes = json["Attributes"].as_array_mut().unwrap();
        attributes.push(json!({"Value": 1, "ValueType": "Integer"}));
        attributes.push(json!({"Name": "noValue", "ValueType": "Double"}));
        attributes.push(json!({"Name": "notANumber", "Value": "NaN", "ValueType": "Double"}));
        attributes.push(json!({"Name": "nothing", "Value": null, "ValueType": "String"}));
        let m = map(&json, "S2MSI1C");
        let mut left_out = fields(&m);
        left_out.sort_unstable();
        assert_eq!(
            left_out,
            [
                "Attributes",
                "Attributes/cloudCover",
                "Attributes/noValue",
                "Attributes/notANumber",
                "Attributes/orbitNumber",
                "Attributes/processingDate",
                "Attributes/tileId",
                "Checksum",
                "ContentLength",
                "GeoFootprint",
                "Online",
                "OriginDate",
                "S3Path",
            ]
        );
        let reason = |field: &str| {
            m.left_out
                .iter()
                .find(|l| l.field == field)
                .unwrap()
                .reason
                .clone()
        };
        assert_eq!(reason("ContentLength"), "negative: -1");
        assert_eq!(
            reason("Attributes/cloudCover"),
            "not of the type Double: cloudy"
        );
        assert_eq!(reason("Attributes/noValue"), "no Value");
        assert!(
            reason("Attributes").starts_with("entry 20 has no Name"),
            "{}",
            reason("Attributes")
        );
        let p = &m.product;
        // The footprint comes from Footprint when GeoFootprint is not one.
        assert_eq!(
            p.footprint,
            Some(Geometry::from_geojson(&good["GeoFootprint"]).unwrap())
        );
        assert_eq!(
            (p.size, p.creation_date, p.hash.as_deref()),
            (None, None, None)
        );
        assert_eq!(p.validity_start, Some(t("2024-09-12T11:25:41.024Z")));
        let ns = &p.namespaces[NAMESPACE];
        for gone in [
            "ContentLength",
            "OriginDate",
            "Online",
            "S3Path",
            "cloudCover",
            "orbitNumber",
            "processingDate",
            "tileId",
            "noValue",
            "notANumber",
            "nothing",
        ] {
            assert!(!ns.contains_key(gone), "{gone}");
        }
        // The entries of the Checksum list are kept; only the hash is not.
        assert_eq!(ns["Checksum"], Value::Json(json["Checksum"].clone()));
        assert_eq!(ns["relativeOrbitNumber"], Value::Integer(137));

        // Neither footprint a geometry, the checksum list not a list, a
        // Double written as text.
        json["Footprint"] = json!("geography'SRID=4326;POLYGON ((1 2, 3 4'");
        json["Checksum"] = json!({});
        attribute(&mut json, "cloudCover", json!(" 12.5 "));
        json["Attributes"][0] = json!("origin");
        let m = map(&json, "S2MSI1C");
        for field in ["GeoFootprint", "Footprint", "Checksum", "Attributes"] {
            assert!(fields(&m).contains(&field), "{field}: {:?}", m.left_out);
        }
        assert_eq!(m.product.footprint, None);
        assert_eq!(
            m.product.namespaces[NAMESPACE]["cloudCover"],
            Value::Real(12.5)
        );
        json["Attributes"] = json!("none");
        assert!(fields(&map(&json, "S2MSI1C")).contains(&"Attributes"));
    }

    #[test]
    fn only_identity_and_place_fail_a_product() {
        let suffixes = Vec::new();
        let good = real();
        let fails = |change: &dyn Fn(&mut Json)| {
            let mut json = good.clone();
            change(&mut json);
            format!("{:#}", map_product(&json, &mapping(&suffixes)).unwrap_err())
        };
        assert!(fails(&|j| j["Id"] = json!("nope")).contains("not a uuid"));
        assert!(fails(&|j| j["Name"] = json!("")).contains("no \"Name\""));
        assert!(fails(&|j| j["ContentDate"]["Start"] = json!("")).contains("ContentDate/Start"));
        assert!(
            fails(&|j| j["ContentDate"]["End"] = json!("yesterday")).contains("ContentDate/End")
        );
        // An attribute that is not of its type does not.
        let mut json = good.clone();
        json["Attributes"][2]["Value"] = json!("many");
        let m = map_product(&json, &mapping(&suffixes)).unwrap();
        assert_eq!(fields(&m), ["Attributes/instrumentConfigurationID"]);
    }
}
