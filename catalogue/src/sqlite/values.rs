//! How property values are stored in SQLite, as muninn's backend stores them:
//! timestamps as `YYYY-MM-DD HH:MM:SS[.ffffff]` text, uuids as 32 hex digits,
//! booleans as 0/1, JSON as text, footprints as SpatiaLite BLOBs or WKT.

use super::FootprintFormat;
use muninn_sync_model::{format_timestamp, parse_timestamp, Geometry, Uuid, Value, ValueType};
use rusqlite::types::{Value as SqlValue, ValueRef};

/// The SQLite form of a value.
fn to_sql(value: &Value, format: FootprintFormat, uuids: UuidForm) -> SqlValue {
    match value {
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Integer(i) => SqlValue::Integer(*i),
        Value::Real(r) => SqlValue::Real(*r),
        Value::Boolean(b) => SqlValue::Integer(i64::from(*b)),
        Value::Timestamp(t) => SqlValue::Text(format_timestamp(t)),
        Value::Uuid(u) => SqlValue::Text(uuids.text(u)),
        Value::Geometry(g) => match format {
            FootprintFormat::Spatialite => SqlValue::Blob(g.to_spatialite_blob()),
            FootprintFormat::Wkt => SqlValue::Text(g.to_wkt()),
        },
        Value::Json(j) => SqlValue::Text(j.to_string()),
    }
}

/// The SQLite form of an optional value (`None` is NULL).
pub(crate) fn option_to_sql(
    value: Option<&Value>,
    format: FootprintFormat,
    uuids: UuidForm,
) -> SqlValue {
    value.map_or(SqlValue::Null, |v| to_sql(v, format, uuids))
}

/// How a catalogue writes uuids. muninn writes 32 lowercase hex digits, no
/// dashes, into columns it declares `UUID`; SQLite gives those NUMERIC
/// affinity, which stores a text that reads as a number as that number:
/// all digits (`1234...`) or digits around one `e` (`4e51...`), about one
/// uuid in a million. The uuid is then lost (1.23e+31, or inf for every
/// `Ne...` uuid alike), and neither muninn nor muninn-sync can read the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UuidForm {
    /// muninn's 32 hex digits: the uuid columns keep text as text (our own
    /// catalogues declare them `UUID TEXT`).
    Hex,
    /// muninn's 32 hex digits, but the dashed form (which SQLite cannot
    /// read as a number, and which Python's `uuid.UUID` reads as well) for
    /// a uuid whose hex digits read as a number: the uuid columns have
    /// NUMERIC affinity (a catalogue muninn created).
    HexUnlessNumeric,
}

impl UuidForm {
    /// The form for uuid columns declared `declared` (the declaration of
    /// core's `uuid`), after SQLite's rules for a column's affinity.
    pub fn for_declaration(declared: &str) -> UuidForm {
        let declared = declared.to_ascii_uppercase();
        let has = |part: &str| declared.contains(part);
        let keeps_text = !has("INT")
            && (["CHAR", "CLOB", "TEXT", "BLOB"].iter().any(|p| has(p)) || declared.is_empty());
        if keeps_text {
            UuidForm::Hex
        } else {
            UuidForm::HexUnlessNumeric
        }
    }

    /// The text a uuid is stored and looked up as.
    pub fn text(self, uuid: &Uuid) -> String {
        let hex = uuid.simple().to_string();
        if self == UuidForm::HexUnlessNumeric && reads_as_number(&hex) {
            uuid.hyphenated().to_string()
        } else {
            hex
        }
    }
}

/// Whether SQLite reads this text of hex digits as a number: only digits,
/// or digits on both sides of one `e` (an exponent).
fn reads_as_number(hex: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match hex.split_once('e') {
        None => digits(hex),
        Some((mantissa, exponent)) => digits(mantissa) && digits(exponent),
    }
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
        ValueType::Uuid => match raw {
            ValueRef::Integer(_) | ValueRef::Real(_) => {
                let number = match raw {
                    ValueRef::Integer(i) => i.to_string(),
                    ValueRef::Real(r) => r.to_string(),
                    _ => unreachable!(),
                };
                return Err(format!(
                    "the number {number} where a uuid belongs: the uuid's hex digits read as a number, and \
                     SQLite stored that number instead, because muninn declares uuid columns UUID, which has \
                     NUMERIC affinity; the uuid itself is lost, so remove or repair that row"
                ));
            }
            other => {
                let text = text(other)?;
                Value::Uuid(
                    Uuid::parse_str(&text).map_err(|e| format!("invalid uuid {text:?}: {e}"))?,
                )
            }
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_columns_with_numeric_affinity_get_the_guarded_form() {
        // SQLite's affinity rules: "INT" first, then text-like, then blob.
        assert_eq!(
            UuidForm::for_declaration("UUID"),
            UuidForm::HexUnlessNumeric
        );
        assert_eq!(
            UuidForm::for_declaration("uuid"),
            UuidForm::HexUnlessNumeric
        );
        assert_eq!(UuidForm::for_declaration("UUID TEXT"), UuidForm::Hex);
        assert_eq!(UuidForm::for_declaration("TEXT"), UuidForm::Hex);
        assert_eq!(UuidForm::for_declaration("VARCHAR(32)"), UuidForm::Hex);
        assert_eq!(UuidForm::for_declaration(""), UuidForm::Hex);
        assert_eq!(UuidForm::for_declaration("BLOB"), UuidForm::Hex);
        assert_eq!(
            UuidForm::for_declaration("INTEGER TEXT"),
            UuidForm::HexUnlessNumeric
        );
    }

    #[test]
    fn only_uuids_sqlite_reads_as_numbers_are_dashed() {
        let form = UuidForm::HexUnlessNumeric;
        let text = |u: &str| form.text(&Uuid::parse_str(u).unwrap());
        for numeric in [
            "12345678901234567890123456789012",
            "4e512345678901234567890123456789",
            "1234567890123456789012345678901e"
                .replace('e', "0")
                .as_str(),
        ] {
            assert!(text(numeric).contains('-'), "{numeric}");
        }
        for kept in [
            "1234567890123456789012345678901e", // no exponent digits
            "e1234567890123456789012345678901", // no mantissa
            "12e4567890123456789012345678901e", // two e's
            "0d5b8f1e4c7a4a61a8a6f3a7b0c2d9e1",
        ] {
            assert_eq!(text(kept), kept);
        }
        assert_eq!(
            UuidForm::Hex.text(&Uuid::parse_str("12345678901234567890123456789012").unwrap()),
            "12345678901234567890123456789012"
        );
    }
}
