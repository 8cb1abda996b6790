//! How walks and scans page through a window of the catalogue: which rows
//! a page holds, in which order, how large it may be, and which time a
//! walk or scan is ordered by. SQLite and PostgreSQL say it in SQL (`WHERE
//! time >= start AND time < end AND (time, uuid) > after ORDER BY time,
//! uuid LIMIT n`), the in-memory archive with [`page`]; this is what they
//! all mean.

use crate::namespace_rules::find_column;
use crate::{CoreField, PropertyType, Timestamp, Uuid, ValueType};
use std::collections::BTreeMap;

/// Where a walk or scan stands: the time and uuid of the last row of the
/// page before. Rows are ordered by time, then uuid, so a position names
/// one place in the order even when many rows share a time, and the next
/// page starts strictly after it: no row is returned twice or skipped,
/// whatever else changes between pages.
pub type PagePosition = (Timestamp, Uuid);

/// The most products one page of a walk returns: whatever a plugin asks,
/// a page is 1 to this many.
pub const MAX_WALK_PAGE: usize = 10_000;

/// The most rows one page of a scan returns (a scan row is a few values,
/// a walk's a whole product).
pub const MAX_SCAN_PAGE: usize = 100_000;

/// The page size for a request of `asked` rows: at least one (a page of
/// none would never move on), at most `max`.
pub fn page_size(asked: u32, max: usize) -> usize {
    (asked as usize).clamp(1, max)
}

/// Whether the row at `key` belongs to a page of the window `[start, end)`
/// that goes on after `after`: its time in the window (an open bound where
/// `None`), and (time, uuid) strictly after `after`.
pub fn in_page(
    key: &PagePosition,
    start: Option<&Timestamp>,
    end: Option<&Timestamp>,
    after: Option<&PagePosition>,
) -> bool {
    start.is_none_or(|start| key.0 >= *start)
        && end.is_none_or(|end| key.0 < *end)
        && after.is_none_or(|after| key > after)
}

/// The page of `rows` (each a row's time and uuid, in any order) that
/// [`in_page`] admits, in order, at most `limit` of them. A row without
/// a time has no place in the order and is in no page: the caller leaves
/// it out of `rows`, as SQL's `time IS NOT NULL` does.
pub fn page(
    rows: impl IntoIterator<Item = PagePosition>,
    start: Option<&Timestamp>,
    end: Option<&Timestamp>,
    after: Option<&PagePosition>,
    limit: usize,
) -> Vec<PagePosition> {
    let mut found: Vec<PagePosition> = rows
        .into_iter()
        .filter(|key| in_page(key, start, end, after))
        .collect();
    found.sort_unstable();
    found.truncate(limit);
    found
}

/// The time a walk is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkTime<'a> {
    /// A core timestamp.
    Core(CoreField),
    /// A namespace's timestamp column (spelt as it exists).
    Column { namespace: &'a str, column: &'a str },
}

/// What a walk by `property` (a core timestamp, or `namespace.property`)
/// is ordered by, given the columns of each namespace (`columns_of`;
/// `None` for a namespace without a table). `Ok(None)`: the namespace or
/// its property does not exist yet, so no product has a time there and the
/// walk is empty. Refused: a core property that is not a timestamp, or a
/// namespace column of another type.
pub fn walk_time<'a>(
    property: &'a str,
    columns_of: impl FnOnce(&str) -> Option<&'a BTreeMap<String, PropertyType>>,
) -> Result<Option<WalkTime<'a>>, String> {
    match property.split_once('.') {
        Some((namespace, name)) => {
            match columns_of(namespace).and_then(|columns| find_column(columns, name)) {
                Some((column, kind)) if kind.value_type == ValueType::Timestamp => {
                    Ok(Some(WalkTime::Column { namespace, column }))
                }
                Some((_, kind)) => Err(format!(
                    "cannot walk by {property}: it is {}, not a timestamp",
                    kind.value_type
                )),
                None => Ok(None),
            }
        }
        None => match CoreField::from_name(property) {
            Some(field) if field.value_type() == ValueType::Timestamp => {
                Ok(Some(WalkTime::Core(field)))
            }
            _ => Err(format!(
                "cannot walk by \"{property}\": expected a core timestamp (validity_start, validity_stop, \
                 creation_date, metadata_date, archive_date) or namespace.property"
            )),
        },
    }
}

/// The column a scan of `namespace` (whose columns are `columns`; `None`
/// without a table) is ordered by, spelt as it exists. `Ok(None)`: the
/// namespace or the property does not exist yet, so the scan is empty.
/// Refused: a column that is not a timestamp.
pub fn scan_order<'c>(
    namespace: &str,
    order_by: &str,
    columns: Option<&'c BTreeMap<String, PropertyType>>,
) -> Result<Option<&'c String>, String> {
    match columns.and_then(|columns| find_column(columns, order_by)) {
        Some((column, kind)) if kind.value_type == ValueType::Timestamp => Ok(Some(column)),
        Some((_, kind)) => Err(format!(
            "cannot scan {namespace}.{order_by} in order: it is {}, not a timestamp",
            kind.value_type
        )),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_timestamp;

    fn at(text: &str) -> Timestamp {
        parse_timestamp(text).unwrap()
    }

    fn uuid(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_page_is_the_window_after_the_position_in_time_then_uuid_order() {
        let rows = [
            (at("2024-01-03"), uuid(1)),
            (at("2024-01-02"), uuid(2)),
            (at("2024-01-02"), uuid(1)),
            (at("2024-01-01"), uuid(9)),
            (at("2024-01-04"), uuid(1)),
        ];
        let (start, end) = (at("2024-01-02"), at("2024-01-04"));
        let first = page(rows, Some(&start), Some(&end), None, 2);
        assert_eq!(
            first,
            [(at("2024-01-02"), uuid(1)), (at("2024-01-02"), uuid(2))]
        );
        // The next page starts strictly after the last row, even within a
        // time many rows share.
        let next = page(rows, Some(&start), Some(&end), first.last(), 2);
        assert_eq!(next, [(at("2024-01-03"), uuid(1))]);
        let after_middle = (at("2024-01-02"), uuid(1));
        assert!(!in_page(&after_middle, None, None, Some(&after_middle)));
        assert!(in_page(
            &(at("2024-01-02"), uuid(2)),
            None,
            None,
            Some(&after_middle)
        ));
        assert!(
            !in_page(&(end, uuid(0)), None, Some(&end), None),
            "the end is outside"
        );
        assert!(
            in_page(&(start, uuid(0)), Some(&start), None, None),
            "the start is inside"
        );
    }

    #[test]
    fn a_page_holds_one_row_at_least_and_a_bounded_number_at_most() {
        assert_eq!(page_size(0, MAX_WALK_PAGE), 1);
        assert_eq!(page_size(500, MAX_WALK_PAGE), 500);
        assert_eq!(page_size(u32::MAX, MAX_WALK_PAGE), 10_000);
        assert_eq!(page_size(u32::MAX, MAX_SCAN_PAGE), 100_000);
    }

    fn namespace(value_type: ValueType) -> BTreeMap<String, PropertyType> {
        let column = PropertyType {
            value_type,
            fixed: false,
        };
        [("sensingTime".to_string(), column)].into()
    }

    #[test]
    fn a_walk_is_ordered_by_a_core_or_namespace_timestamp() {
        let times = namespace(ValueType::Timestamp);
        let none = |_: &str| None;
        assert_eq!(
            walk_time("validity_start", none),
            Ok(Some(WalkTime::Core(CoreField::ValidityStart)))
        );
        assert_eq!(
            walk_time("eo.sensingtime", |_| Some(&times)),
            Ok(Some(WalkTime::Column {
                namespace: "eo",
                column: "sensingTime"
            }))
        );
        assert_eq!(walk_time("eo.sensingTime", none), Ok(None), "no table yet");
        assert_eq!(walk_time("eo.other", |_| Some(&times)), Ok(None));
        let text = namespace(ValueType::Text);
        assert_eq!(
            walk_time("eo.sensingTime", |_| Some(&text)),
            Err("cannot walk by eo.sensingTime: it is text, not a timestamp".to_string())
        );
        let core = walk_time("product_name", none).unwrap_err();
        assert!(core.starts_with("cannot walk by \"product_name\": expected a core timestamp"));
    }

    #[test]
    fn a_scan_is_ordered_by_a_timestamp_column() {
        let times = namespace(ValueType::Timestamp);
        assert_eq!(
            scan_order("eo", "SENSINGTIME", Some(&times)).map(|c| c.cloned()),
            Ok(Some("sensingTime".to_string()))
        );
        assert_eq!(scan_order("eo", "x", Some(&times)), Ok(None));
        assert_eq!(scan_order("eo", "x", None), Ok(None));
        let integers = namespace(ValueType::Integer);
        assert_eq!(
            scan_order("eo", "sensingTime", Some(&integers)),
            Err("cannot scan eo.sensingTime in order: it is integer, not a timestamp".to_string())
        );
    }
}
