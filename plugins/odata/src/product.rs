//! A CDSE OData product as a muninn product: the mapping documented in
//! docs/odata.md.

use anyhow::{anyhow, Context, Result};
use muninn_sync_plugin_api::model::{parse_timestamp, validate_property_name};
use muninn_sync_plugin_api::{Geometry, Product, Timestamp, Uuid, Value};
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

/// Maps one entry of `Products` (with its `Attributes` expanded).
pub fn map_product(json: &Json, mapping: &Mapping<'_>) -> Result<Product> {
    let uuid = id(json)?;
    let name = json
        .get("Name")
        .and_then(Json::as_str)
        .filter(|n| !n.is_empty())
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
    product.size = fields.get("ContentLength").and_then(Json::as_i64);
    product.hash = md5(fields.get("Checksum"));
    product.validity_start = time(json, "ContentDate/Start")?;
    product.validity_stop = time(json, "ContentDate/End")?;
    product.creation_date = time(json, "OriginDate")?;
    product.footprint = footprint(json)?;
    product.remote_url = Some(format!(
        "{}/Products({})/$value",
        mapping.download_root,
        uuid.hyphenated()
    ));

    let mut namespace = BTreeMap::new();
    for (field, value) in fields {
        if field.starts_with('@') || CORE_FIELDS.contains(&field.as_str()) {
            continue;
        }
        let Some(column) = column_name(field) else {
            continue;
        };
        let value = if field.ends_with("Date") {
            time(json, field)?.map(Value::Timestamp)
        } else {
            untyped(value)
        };
        if let Some(value) = value {
            namespace.insert(column, value);
        }
    }
    if let Some(checksums) = fields
        .get("Checksum")
        .and_then(Json::as_array)
        .filter(|c| !c.is_empty())
    {
        namespace.insert(
            "Checksum".into(),
            Value::Json(Json::from(checksums.clone())),
        );
    }
    for attribute in fields
        .get("Attributes")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let Some(attribute_name) = attribute.get("Name").and_then(Json::as_str) else {
            continue;
        };
        let Some(column) = column_name(attribute_name) else {
            continue;
        };
        // A field of the same name (case does not matter to SQLite) wins.
        if namespace.keys().any(|c| c.eq_ignore_ascii_case(&column)) {
            tracing::debug!(attribute = attribute_name, "attribute shadowed by a field");
            continue;
        }
        if let Some(value) =
            attribute_value(attribute).with_context(|| format!("attribute \"{attribute_name}\""))?
        {
            namespace.insert(column, value);
        }
    }
    product.namespaces.insert(NAMESPACE.to_string(), namespace);
    Ok(product)
}

/// `md5:<hex>` from the `Checksum` list's MD5 entry, if it has one.
fn md5(checksums: Option<&Json>) -> Option<String> {
    checksums?.as_array()?.iter().find_map(|checksum| {
        let algorithm = checksum.get("Algorithm")?.as_str()?;
        let value = checksum.get("Value")?.as_str()?;
        (algorithm.eq_ignore_ascii_case("MD5")
            && value.len() == 32
            && value.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| format!("md5:{}", value.to_ascii_lowercase()))
    })
}

/// The footprint from `GeoFootprint` (GeoJSON), else from `Footprint`
/// (`geography'SRID=4326;POLYGON ((...))'`); `None` when both are null.
fn footprint(json: &Json) -> Result<Option<Geometry>> {
    match json.get("GeoFootprint") {
        None | Some(Json::Null) => {}
        Some(geojson) => {
            return Geometry::from_geojson(geojson)
                .map(Some)
                .context("\"GeoFootprint\"")
        }
    }
    let Some(text) = json.get("Footprint").and_then(Json::as_str) else {
        return Ok(None);
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
    Geometry::from_wkt(wkt.trim())
        .map(Some)
        .with_context(|| format!("\"Footprint\" {text:?}"))
}

/// An attribute's value, typed by its `ValueType`: integers stay integers,
/// doubles reals, `DateTimeOffset` timestamps; null is absent.
fn attribute_value(attribute: &Json) -> Result<Option<Value>> {
    let value = match attribute.get("Value") {
        None | Some(Json::Null) => return Ok(None),
        Some(value) => value,
    };
    let value_type = attribute
        .get("ValueType")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let text = value.as_str();
    let wrong = || anyhow!("{value} is not of the type {value_type}");
    Ok(Some(match value_type {
        "Integer" | "Int64" | "Int32" => Value::Integer(
            value
                .as_i64()
                .or_else(|| text.and_then(|t| t.trim().parse().ok()))
                .ok_or_else(wrong)?,
        ),
        "Double" | "Decimal" | "Single" => Value::Real(
            value
                .as_f64()
                .or_else(|| text.and_then(|t| t.trim().parse().ok()))
                .ok_or_else(wrong)?,
        ),
        "DateTimeOffset" | "DateTime" | "Date" => {
            Value::Timestamp(parse_timestamp(text.ok_or_else(wrong)?).map_err(|e| anyhow!("{e}"))?)
        }
        "Boolean" => Value::Boolean(
            value
                .as_bool()
                .or_else(|| text.and_then(|t| t.trim().parse().ok()))
                .ok_or_else(wrong)?,
        ),
        "String" => Value::from(
            text.map_or_else(|| value.to_string(), str::to_string)
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
        let p = map_product(&real(), &mapping(&suffixes)).unwrap();
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
        let p = map_product(&json, &mapping(&suffixes)).unwrap();
        assert!(p.footprint.is_some());
        assert_eq!(p.hash, None);
        assert!(!p.namespaces[NAMESPACE].contains_key("Checksum"));
        assert_eq!(
            p.product_name,
            "S2B_MSIL1C_20240101T101010_N0510_R022_T32UQD_20240101T120000"
        );
        json["Footprint"] = Json::Null;
        assert_eq!(
            map_product(&json, &mapping(&suffixes)).unwrap().footprint,
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

    #[test]
    fn bad_values_name_what_is_wrong() {
        let suffixes = Vec::new();
        let mut json = real();
        json["Attributes"][2]["Value"] = json!("many");
        let error = format!("{:#}", map_product(&json, &mapping(&suffixes)).unwrap_err());
        assert!(error.contains("instrumentConfigurationID"), "{error}");
        let mut json = real();
        json["Id"] = json!("nope");
        assert!(map_product(&json, &mapping(&suffixes))
            .unwrap_err()
            .to_string()
            .contains("not a uuid"));
        let mut json = real();
        json["ContentDate"]["Start"] = json!("yesterday");
        assert!(map_product(&json, &mapping(&suffixes))
            .unwrap_err()
            .to_string()
            .contains("ContentDate/Start"));
    }
}
