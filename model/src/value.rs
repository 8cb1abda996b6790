//! Typed property values: the types muninn's schemas know.

use crate::{format_timestamp, Geometry, Timestamp};
use std::fmt;
use uuid::Uuid;

/// A property value. There is no null variant: an absent property is null.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Integer(i64),
    Real(f64),
    Boolean(bool),
    Timestamp(Timestamp),
    Uuid(Uuid),
    Geometry(Geometry),
    Json(serde_json::Value),
}

/// The type of a [`Value`], as recorded for a namespace's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    Text,
    Integer,
    Real,
    Boolean,
    Timestamp,
    Uuid,
    Geometry,
    Json,
}

impl ValueType {
    pub const ALL: [ValueType; 8] = [
        ValueType::Text,
        ValueType::Integer,
        ValueType::Real,
        ValueType::Boolean,
        ValueType::Timestamp,
        ValueType::Uuid,
        ValueType::Geometry,
        ValueType::Json,
    ];

    /// The lowercase name used in messages and in the catalogue's records.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Text => "text",
            ValueType::Integer => "integer",
            ValueType::Real => "real",
            ValueType::Boolean => "boolean",
            ValueType::Timestamp => "timestamp",
            ValueType::Uuid => "uuid",
            ValueType::Geometry => "geometry",
            ValueType::Json => "json",
        }
    }

    pub fn from_name(name: &str) -> Option<ValueType> {
        ValueType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Text(_) => ValueType::Text,
            Value::Integer(_) => ValueType::Integer,
            Value::Real(_) => ValueType::Real,
            Value::Boolean(_) => ValueType::Boolean,
            Value::Timestamp(_) => ValueType::Timestamp,
            Value::Uuid(_) => ValueType::Uuid,
            Value::Geometry(_) => ValueType::Geometry,
            Value::Json(_) => ValueType::Json,
        }
    }

    /// Whether the catalogue can store the value and read it back as it was:
    /// text without NUL characters (SQLite's text functions and Python's
    /// C-string APIs stop at the first), a time in the years 1 to 9999
    /// ([`crate::check_storable_timestamp`]), a geometry on the WGS 84
    /// globe ([`Geometry::check_wgs84`]). The error says what is wrong,
    /// not where: the caller names the property.
    pub fn check_storable(&self) -> Result<(), String> {
        match self {
            Value::Text(text) => check_text(text),
            Value::Timestamp(t) => crate::check_storable_timestamp(t),
            Value::Geometry(g) => g.check_wgs84().map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }

    /// The value converted to `wanted`, where that loses nothing a user
    /// would miss: an integer stored in a real column. Otherwise `None`.
    pub fn coerce_to(self, wanted: ValueType) -> Option<Value> {
        match (self, wanted) {
            (value, wanted) if value.value_type() == wanted => Some(value),
            (Value::Integer(i), ValueType::Real) => Some(Value::Real(i as f64)),
            _ => None,
        }
    }

    /// Reads a JSON value in the type it most naturally has: strings become
    /// text, whole numbers integers, other numbers reals, objects and arrays
    /// JSON. `None` for JSON null (an absent property).
    pub fn from_json(value: serde_json::Value) -> Option<Value> {
        Some(match value {
            serde_json::Value::Null => return None,
            serde_json::Value::Bool(b) => Value::Boolean(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Integer(i),
                None => Value::Real(n.as_f64()?),
            },
            serde_json::Value::String(s) => Value::Text(s),
            other => Value::Json(other),
        })
    }
}

/// Refuses a text with a NUL character (shown as its position: the text
/// itself may be long, and is the remote's).
pub(crate) fn check_text(text: &str) -> Result<(), String> {
    match text.find('\0') {
        Some(at) => Err(format!(
            "the text has a NUL character (at byte {at}), which SQLite's text functions and Python muninn cut the text at"
        )),
        None => Ok(()),
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Real(r) => write!(f, "{r}"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Timestamp(t) => f.write_str(&format_timestamp(t)),
            Value::Uuid(u) => write!(f, "{}", u.simple()),
            Value::Geometry(g) => f.write_str(&g.to_wkt()),
            Value::Json(j) => write!(f, "{j}"),
        }
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<Timestamp> for Value {
    fn from(v: Timestamp) -> Self {
        Value::Timestamp(v)
    }
}
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Value::Uuid(v)
    }
}
impl From<Geometry> for Value {
    fn from(v: Geometry) -> Self {
        Value::Geometry(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_widen_to_real_and_nothing_else_converts() {
        assert_eq!(
            Value::Integer(3).coerce_to(ValueType::Real),
            Some(Value::Real(3.0))
        );
        assert_eq!(Value::Real(3.5).coerce_to(ValueType::Integer), None);
        assert_eq!(Value::from("3").coerce_to(ValueType::Integer), None);
    }

    #[test]
    fn values_the_catalogue_cannot_read_back_are_named() {
        assert!(Value::from("fine").check_storable().is_ok());
        assert!(Value::from("a\0b")
            .check_storable()
            .unwrap_err()
            .contains("NUL"));
        let late = crate::parse_timestamp("9999-12-31T23:59:59-01:00").unwrap();
        assert!(Value::Timestamp(late).check_storable().is_err());
        let pole = Geometry::from_wkt("POINT(0 91)").unwrap();
        assert!(Value::Geometry(pole)
            .check_storable()
            .unwrap_err()
            .contains("latitude 91"));
        assert!(Value::Json(serde_json::json!("a\u{0}b"))
            .check_storable()
            .is_ok());
    }

    #[test]
    fn json_values_keep_their_natural_type() {
        use serde_json::json;
        assert_eq!(Value::from_json(json!(12)), Some(Value::Integer(12)));
        assert_eq!(Value::from_json(json!(12.5)), Some(Value::Real(12.5)));
        assert_eq!(Value::from_json(json!("x")), Some(Value::from("x")));
        assert_eq!(Value::from_json(json!(null)), None);
        assert_eq!(Value::from_json(json!([1])), Some(Value::Json(json!([1]))));
    }
}
