//! How property values are stored in SQLite, as muninn's backend stores them:
//! timestamps as `YYYY-MM-DD HH:MM:SS[.ffffff]` text, uuids as 32 hex digits,
//! booleans as 0/1, JSON as text, footprints as SpatiaLite BLOBs or WKT.

use super::FootprintFormat;
use muninn_sync_model::{format_timestamp, parse_timestamp, Geometry, Uuid, Value, ValueType};
use rusqlite::types::{Value as SqlValue, ValueRef};

/// The SQLite form of a value.
fn to_sql(value: &Value, format: FootprintFormat) -> SqlValue {
    match value {
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Integer(i) => SqlValue::Integer(*i),
        Value::Real(r) => SqlValue::Real(*r),
        Value::Boolean(b) => SqlValue::Integer(i64::from(*b)),
        Value::Timestamp(t) => SqlValue::Text(format_timestamp(t)),
        Value::Uuid(u) => SqlValue::Text(uuid_text(u)),
        Value::Geometry(g) => match format {
            FootprintFormat::Spatialite => SqlValue::Blob(g.to_spatialite_blob()),
            FootprintFormat::Wkt => SqlValue::Text(g.to_wkt()),
        },
        Value::Json(j) => SqlValue::Text(j.to_string()),
    }
}

/// The SQLite form of an optional value (`None` is NULL).
pub(crate) fn option_to_sql(value: Option<&Value>, format: FootprintFormat) -> SqlValue {
    value.map_or(SqlValue::Null, |v| to_sql(v, format))
}

/// muninn's uuid text: 32 lowercase hex digits, no dashes.
pub(crate) fn uuid_text(uuid: &Uuid) -> String {
    uuid.simple().to_string()
}

/// Reads a stored value as `wanted`; `None` for NULL. The error says what was
/// found instead.
pub(crate) fn from_sql(raw: ValueRef<'_>, wanted: ValueType) -> Result<Option<Value>, String> {
    let text = |raw: ValueRef<'_>| -> Result<String, String> {
        match raw {
            ValueRef::Text(bytes) => {
                String::from_utf8(bytes.to_vec()).map_err(|_| "text that is not UTF-8".to_string())
            }
            other => Err(format!("a stored {:?} value", other.data_type())),
        }
    };
    if matches!(raw, ValueRef::Null) {
        return Ok(None);
    }
    let value = match wanted {
        ValueType::Text => Value::Text(match raw {
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(r) => r.to_string(),
            other => text(other)?,
        }),
        ValueType::Integer => match raw {
            ValueRef::Integer(i) => Value::Integer(i),
            other => {
                return Err(format!(
                    "a stored {:?} value, not an integer",
                    other.data_type()
                ))
            }
        },
        ValueType::Real => match raw {
            ValueRef::Real(r) => Value::Real(r),
            ValueRef::Integer(i) => Value::Real(i as f64),
            other => {
                return Err(format!(
                    "a stored {:?} value, not a real",
                    other.data_type()
                ))
            }
        },
        ValueType::Boolean => match raw {
            ValueRef::Integer(i) => Value::Boolean(i != 0),
            other => {
                return Err(format!(
                    "a stored {:?} value, not a boolean",
                    other.data_type()
                ))
            }
        },
        ValueType::Timestamp => {
            let text = text(raw)?;
            Value::Timestamp(parse_timestamp(&text).map_err(|e| e.to_string())?)
        }
        ValueType::Uuid => {
            let text = text(raw)?;
            Value::Uuid(Uuid::parse_str(&text).map_err(|e| format!("invalid uuid {text:?}: {e}"))?)
        }
        ValueType::Geometry => Value::Geometry(match raw {
            ValueRef::Blob(blob) => {
                Geometry::from_spatialite_blob(blob).map_err(|e| e.to_string())?
            }
            other => Geometry::from_wkt(&text(other)?).map_err(|e| e.to_string())?,
        }),
        ValueType::Json => {
            let text = text(raw)?;
            Value::Json(serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?)
        }
    };
    Ok(Some(value))
}

/// The column type a namespace property of this type is declared with
/// (muninn's type map; JSON is TEXT, so our own record keeps it apart).
pub(crate) fn declared_type(value_type: ValueType, format: FootprintFormat) -> &'static str {
    match value_type {
        ValueType::Text | ValueType::Json => "TEXT",
        ValueType::Integer => "INTEGER",
        ValueType::Real => "REAL",
        ValueType::Boolean => "BOOLEAN",
        ValueType::Timestamp => "TIMESTAMP",
        // "UUID" first, as muninn declares it, so that Python's sqlite3
        // still picks muninn's converter (it reads the first word); "TEXT"
        // gives the column TEXT affinity. muninn's bare "UUID" has NUMERIC
        // affinity, under which a hex uuid that reads as a number (about
        // one in a million, e.g. 4e51...: all digits but one 'e') is stored
        // as a number, and two of those can collide as infinity.
        ValueType::Uuid => "UUID TEXT",
        ValueType::Geometry => match format {
            FootprintFormat::Spatialite => "GEOMETRY",
            FootprintFormat::Wkt => "TEXT",
        },
    }
}

/// The type of a column that a tool other than muninn-sync created (muninn
/// itself), from its declared type.
pub(crate) fn type_from_declaration(declared: &str) -> ValueType {
    match declared.to_ascii_uppercase().as_str() {
        "INTEGER" | "LONG" | "BIGINT" | "INT" => ValueType::Integer,
        "REAL" | "DOUBLE" | "FLOAT" => ValueType::Real,
        "BOOLEAN" => ValueType::Boolean,
        "TIMESTAMP" => ValueType::Timestamp,
        "UUID" | "UUID TEXT" => ValueType::Uuid,
        "GEOMETRY" | "POLYGON" | "MULTIPOLYGON" | "POINT" | "LINESTRING" => ValueType::Geometry,
        _ => ValueType::Text,
    }
}
