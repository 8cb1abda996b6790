//! How property values travel to and from PostgreSQL, as muninn's
//! postgresql backend stores them: timestamps as `timestamp` (UTC, no zone),
//! uuids as `uuid`, JSON as `jsonb`, footprints as PostGIS `geography`.
//!
//! Values go to the server in their text input form, the same form for
//! `COPY` and for statement parameters (cast in the statement), so that one
//! function decides how each type is written. They come back typed, except
//! geometries, which come back as WKT (`ST_AsText`) in full precision.

use muninn_sync_model::{Geometry, Timestamp, Value, ValueType};
use postgres::types::Type;
use postgres::Row;

/// The text PostgreSQL reads a value from (`None` is NULL).
pub(crate) fn to_text(value: &Value) -> String {
    match value {
        Value::Text(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        // Rust prints the shortest text that reads back as the same double,
        // and PostgreSQL's float8 input reads it exactly.
        Value::Real(r) => r.to_string(),
        Value::Boolean(b) => if *b { "t" } else { "f" }.to_string(),
        Value::Timestamp(t) => timestamp_text(t),
        Value::Uuid(u) => u.hyphenated().to_string(),
        Value::Geometry(g) => format!("SRID=4326;{}", g.to_wkt()),
        Value::Json(j) => j.to_string(),
    }
}

/// A UTC time as a `timestamp` (without time zone) literal, to the
/// microsecond PostgreSQL keeps.
pub(crate) fn timestamp_text(t: &Timestamp) -> String {
    t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// The column type muninn 7.5's postgresql backend declares for a property
/// type (its `_type_map`); integers as BIGINT, muninn's `Long`, since a
/// remote's integer may not fit muninn's 32-bit `Integer`.
pub(crate) fn declared_type(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::Text => "TEXT COLLATE \"C\"",
        ValueType::Integer => "BIGINT",
        ValueType::Real => "DOUBLE PRECISION",
        ValueType::Boolean => "BOOLEAN",
        ValueType::Timestamp => "TIMESTAMP",
        ValueType::Uuid => "UUID",
        ValueType::Geometry => "GEOGRAPHY",
        ValueType::Json => "JSONB",
    }
}

/// The SQL type name a text parameter is cast to for a property type.
pub(crate) fn cast_type(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::Text => "text",
        ValueType::Integer => "bigint",
        ValueType::Real => "double precision",
        ValueType::Boolean => "boolean",
        ValueType::Timestamp => "timestamp",
        ValueType::Uuid => "uuid",
        ValueType::Geometry => "geography",
        ValueType::Json => "jsonb",
    }
}

/// The property type of a column, from the type PostgreSQL reports for it
/// (`udt_name`): how muninn-sync reads a column muninn or a user made.
pub(crate) fn type_from_declaration(udt_name: &str) -> ValueType {
    match udt_name {
        "int2" | "int4" | "int8" => ValueType::Integer,
        "float4" | "float8" | "numeric" => ValueType::Real,
        "bool" => ValueType::Boolean,
        "timestamp" | "timestamptz" => ValueType::Timestamp,
        "uuid" => ValueType::Uuid,
        "json" | "jsonb" => ValueType::Json,
        "geography" | "geometry" => ValueType::Geometry,
        _ => ValueType::Text,
    }
}

/// The select-list expression that reads a column of this type: geometries
/// as WKT with every digit PostGIS has (it prints the shortest text that
/// reads back as the same double, up to the precision asked for), and
/// numeric as double precision; others as they are.
pub(crate) fn select_expression(column_sql: &str, value_type: ValueType) -> String {
    match value_type {
        ValueType::Geometry => format!("ST_AsText({column_sql}, 17)"),
        _ => column_sql.to_string(),
    }
}

/// Reads column `index` of `row` as a value of `value_type`; `Err` names
/// what the column holds instead.
pub(crate) fn read_value(
    row: &Row,
    index: usize,
    value_type: ValueType,
) -> Result<Option<Value>, String> {
    let column_type = row.columns()[index].type_().clone();
    let fail = |e: postgres::Error| format!("a value muninn-sync cannot read: {e}");
    let value = match column_type {
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map_err(fail)?
            .map(|v| Value::Integer(v.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map_err(fail)?
            .map(|v| Value::Integer(v.into())),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map_err(fail)?
            .map(Value::Integer),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)
            .map_err(fail)?
            .map(|v| Value::Real(v.into())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(index)
            .map_err(fail)?
            .map(Value::Real),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)
            .map_err(fail)?
            .map(Value::Boolean),
        Type::TIMESTAMP => row
            .try_get::<_, Option<chrono::NaiveDateTime>>(index)
            .map_err(fail)?
            .map(|t| Value::Timestamp(t.and_utc())),
        Type::TIMESTAMPTZ => row
            .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(index)
            .map_err(fail)?
            .map(Value::Timestamp),
        Type::UUID => row
            .try_get::<_, Option<uuid::Uuid>>(index)
            .map_err(fail)?
            .map(Value::Uuid),
        Type::JSON | Type::JSONB => row
            .try_get::<_, Option<serde_json::Value>>(index)
            .map_err(fail)?
            .map(Value::Json),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            let Some(text) = row.try_get::<_, Option<String>>(index).map_err(fail)? else {
                return Ok(None);
            };
            if value_type == ValueType::Geometry {
                let geometry = Geometry::from_wkt(&text)
                    .map_err(|e| format!("a footprint muninn-sync cannot read ({e})"))?;
                return Ok(Some(Value::Geometry(geometry)));
            }
            if value_type == ValueType::Json {
                // JSON muninn-sync put into a text column muninn made.
                let json = serde_json::from_str(&text)
                    .map_err(|e| format!("text that is not JSON ({e})"))?;
                return Ok(Some(Value::Json(json)));
            }
            Some(Value::Text(text))
        }
        other => {
            return Err(format!(
                "a value of type {other}, which muninn-sync does not read"
            ))
        }
    };
    let Some(value) = value else {
        return Ok(None);
    };
    let found = value.value_type();
    match value.coerce_to(value_type) {
        Some(value) => Ok(Some(value)),
        None => Err(format!("{found} where {value_type} belongs")),
    }
}

/// `text` with the escapes of `COPY ... FROM STDIN` in text format: a
/// backslash, tab, newline or carriage return in a value would otherwise
/// end the field or the row.
pub(crate) fn push_copy_field(line: &mut String, value: Option<&str>) {
    let Some(text) = value else {
        line.push_str("\\N");
        return;
    };
    for c in text.chars() {
        match c {
            '\\' => line.push_str("\\\\"),
            '\t' => line.push_str("\\t"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_fields_escape_what_would_end_a_field_or_row() {
        let mut line = String::new();
        push_copy_field(&mut line, Some("a\tb\nc\\d\re"));
        line.push('\t');
        push_copy_field(&mut line, None);
        assert_eq!(line, "a\\tb\\nc\\\\d\\re\t\\N");
    }

    #[test]
    fn values_are_written_in_postgresql_input_form() {
        let t = muninn_sync_model::parse_timestamp("2024-02-03T04:05:06.123456Z").unwrap();
        assert_eq!(to_text(&Value::Timestamp(t)), "2024-02-03 04:05:06.123456");
        assert_eq!(
            to_text(&Value::Real(-11.974999865007275)),
            "-11.974999865007275"
        );
        assert_eq!(to_text(&Value::Boolean(true)), "t");
        let point = Geometry::from_wkt("POINT (1 2)").unwrap();
        assert!(to_text(&Value::Geometry(point)).starts_with("SRID=4326;POINT"));
    }
}
