//! The product model that muninn-sync's host, catalogue and plugins share:
//! a product's core and namespaced properties, typed values, UTC timestamps
//! and footprints.
//!
//! It mirrors muninn 7.5's core schema so that what a plugin describes is what
//! muninn's own tools later read back from the catalogue.
//!
//! It also holds the catalogue's rules that do not depend on storage, so
//! that every store (SQLite, PostgreSQL, the in-memory archive) follows
//! the same ones: how namespace properties become columns
//! ([`plan_namespace_write`]), how walks and scans page ([`page`]), when a
//! watermark rises ([`watermark_verdict`], [`raise_watermark`]) and who
//! may remove a product ([`Ownership`]).

mod bookkeeping;
mod geometry;
mod namespace_rules;
mod ownership;
mod paging;
mod printable;
mod product;
mod timestamp;
mod value;
mod watermark;

pub use bookkeeping::{Deletion, ProductTypeSummary, PropertyType};
pub use geometry::{Geometry, GeometryError, Point};
pub use namespace_rules::{
    find_column, plan_namespace_write, text_is_not_json, ColumnChange, NamespaceWrite, PlannedValue,
};
pub use ownership::{Claim, Ownership};
pub use paging::{
    in_page, page, page_size, scan_order, walk_time, PagePosition, WalkTime, MAX_SCAN_PAGE,
    MAX_WALK_PAGE,
};
pub use printable::printable;
pub use product::{derived_uuid, CoreField, Namespace, Product, Update, PRODUCT_UUID_NAMESPACE};
pub use timestamp::{
    check_storable_timestamp, format_timestamp, from_micros, parse_rfc3339, parse_timestamp,
    to_micros, truncate_to_micros, Timestamp, TimestampError, STORABLE_YEARS,
};
pub use uuid::Uuid;
pub use value::{Value, ValueType};
pub use watermark::{
    raise_watermark, watermark_limit, watermark_verdict, WatermarkHold, WatermarkTypes,
    WatermarkVerdict, DEFAULT_FUTURE_TOLERANCE,
};

/// Checks a namespace name as muninn does (`[a-z][_a-z0-9]*`), and keeps the
/// names of muninn's own tables (`core`, `link`, `tag`) for muninn.
pub fn validate_namespace_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'));
    if !well_formed {
        return Err(format!(
            "invalid namespace name \"{name}\": expected a lowercase letter followed by lowercase letters, digits or '_'"
        ));
    }
    if matches!(name, "core" | "link" | "tag") || name.starts_with("muninn_sync") {
        return Err(format!(
            "invalid namespace name \"{name}\": the name is reserved for the catalogue's own tables"
        ));
    }
    if SQL_KEYWORDS_NOT_NAMES.binary_search(&name).is_ok() {
        return Err(format!(
            "invalid namespace name \"{name}\": it is an SQL keyword, and muninn's own SQL does not quote \
             table names, so muninn could never read a namespace table named so; choose another name"
        ));
    }
    Ok(())
}

/// SQLite's keywords that SQLite does not take as an unquoted table name
/// (in `CREATE TABLE x`, `FROM x`, `JOIN x ON x.uuid = ...`, `INSERT INTO
/// x`, ...), in order. muninn writes its SQL with names unquoted, so it
/// cannot use a namespace named like one; the others (`key`, `match`,
/// `plan`, ...) work unquoted and stay allowed. The catalogue's tests check
/// this list against the SQLite it is built with.
pub const SQL_KEYWORDS_NOT_NAMES: [&str; 64] = [
    "add",
    "all",
    "alter",
    "and",
    "as",
    "autoincrement",
    "between",
    "case",
    "cast",
    "check",
    "collate",
    "commit",
    "constraint",
    "create",
    "current_date",
    "current_time",
    "current_timestamp",
    "default",
    "deferrable",
    "delete",
    "distinct",
    "drop",
    "else",
    "escape",
    "except",
    "exists",
    "foreign",
    "from",
    "group",
    "having",
    "if",
    "in",
    "index",
    "insert",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "limit",
    "not",
    "nothing",
    "notnull",
    "null",
    "on",
    "or",
    "order",
    "primary",
    "raise",
    "references",
    "returning",
    "select",
    "set",
    "table",
    "then",
    "to",
    "transaction",
    "union",
    "unique",
    "update",
    "using",
    "values",
    "when",
    "where",
];

/// Checks a namespaced property name: a letter followed by letters, digits or
/// '_'. Upper case is allowed because remote catalogues use camelCase
/// (`cloudCover`); SQLite compares column names without regard to case.
pub fn validate_property_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed || name.eq_ignore_ascii_case("uuid") {
        return Err(format!(
            "invalid property name \"{name}\": expected a letter followed by letters, digits or '_' (and not \"uuid\")"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_follow_muninn() {
        assert!(validate_namespace_name("eo").is_ok());
        assert!(validate_namespace_name("s2_l1c").is_ok());
        assert!(validate_namespace_name("Eo").is_err());
        assert!(validate_namespace_name("1eo").is_err());
        assert!(validate_namespace_name("e-o").is_err());
        assert!(validate_namespace_name("core").is_err());
        assert!(validate_namespace_name("tag").is_err());
        assert!(validate_namespace_name("muninn_sync_runs").is_err());
        for keyword in ["order", "select", "group", "where"] {
            let message = validate_namespace_name(keyword).unwrap_err();
            assert!(message.contains("SQL keyword"), "{message}");
        }
        assert!(validate_namespace_name("orders").is_ok());
        assert!(validate_namespace_name("key").is_ok());
    }

    #[test]
    fn the_keyword_list_is_in_order() {
        assert!(SQL_KEYWORDS_NOT_NAMES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn property_names_allow_camel_case_but_not_sql() {
        assert!(validate_property_name("cloudCover").is_ok());
        assert!(validate_property_name("cloud_cover").is_ok());
        assert!(validate_property_name("x; DROP TABLE core").is_err());
        assert!(validate_property_name("_x").is_err());
        assert!(validate_property_name("UUID").is_err());
        assert!(validate_property_name("").is_err());
    }
}
