//! When a run may raise a product type's watermark: the rule every store
//! (the host's catalogue, the in-memory archive) follows.

use crate::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// The product types whose watermarks a run holds where they are, because
/// a product of theirs failed: its change is not in the catalogue, so no
/// later watermark may claim it was handed over. A failure whose product
/// type cannot be told holds every type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatermarkHold {
    all: bool,
    types: BTreeSet<String>,
}

impl WatermarkHold {
    /// Holds `product_type`'s watermark for the rest of the run (`None`:
    /// every type's).
    pub fn hold(&mut self, product_type: Option<&str>) {
        match product_type {
            Some(product_type) => {
                self.types.insert(product_type.to_string());
            }
            None => self.all = true,
        }
    }

    /// Whether `product_type`'s watermark is held.
    pub fn holds(&self, product_type: &str) -> bool {
        self.all || self.types.contains(product_type)
    }
}

/// How far past the start of a run a product's time may lie and still
/// raise a watermark, by default: clocks differ, and a remote may stamp a
/// change a little ahead, but a time a day ahead is a remote's mistake
/// (or malice). Watermarks never go back, so one time of 9999-12-31 would
/// otherwise start every later incremental run after every real change.
pub const DEFAULT_FUTURE_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The latest time a run that started at `started` lets raise a
/// watermark, with `tolerance` (`None`: no limit).
pub fn watermark_limit(
    started: Timestamp,
    tolerance: Option<std::time::Duration>,
) -> Option<Timestamp> {
    let tolerance = chrono::Duration::from_std(tolerance?).ok()?;
    started.checked_add_signed(tolerance)
}

/// Which product types' watermarks a run may raise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WatermarkTypes {
    /// Any: the run's window reaches back to the beginning.
    #[default]
    All,
    /// Only these, whose watermark lies inside the window; a run that
    /// starts after a type's watermark leaves a gap it must not paper over.
    Only(Vec<String>),
}

impl WatermarkTypes {
    /// The types a run whose window starts at `start` may raise, given the
    /// `stored` watermarks: every type without a start; with one, only the
    /// types whose watermark lies at or after it (a type without a
    /// watermark, or with one before the start, would be claimed up to
    /// date over changes the run never saw).
    pub fn for_window(
        start: Option<Timestamp>,
        stored: &BTreeMap<String, Timestamp>,
    ) -> WatermarkTypes {
        match start {
            None => WatermarkTypes::All,
            Some(start) => WatermarkTypes::Only(
                stored
                    .iter()
                    .filter(|(_, watermark)| **watermark >= start)
                    .map(|(product_type, _)| product_type.clone())
                    .collect(),
            ),
        }
    }

    /// Whether `product_type`'s watermark may be raised.
    pub fn includes(&self, product_type: &str) -> bool {
        match self {
            WatermarkTypes::All => true,
            WatermarkTypes::Only(types) => types.iter().any(|t| t == product_type),
        }
    }
}

/// What becomes of a watermark a plugin reports: the checks every store
/// makes, in the order [`watermark_verdict`] makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkVerdict {
    /// Raised, with [`raise_watermark`] (which never lowers it).
    Raise,
    /// Left where it is: a product of its type failed ([`WatermarkHold`]).
    Held,
    /// Left where it is: the time lies past this limit of the run's
    /// ([`watermark_limit`]), which the host warns of.
    PastLimit(Timestamp),
    /// Left where it is: the run's window does not reach back to the type's
    /// watermark ([`WatermarkTypes`]).
    OutsideWindow,
}

/// Whether a run may raise `product_type`'s watermark to `time`, given the
/// types its failures hold, its `limit` (`None`: no limit) and the types
/// its window lets it raise. One function for every store, so the host's
/// catalogue and the in-memory archive cannot come to disagree; a hold
/// wins over the limit, and the limit over the window, so that the host
/// warns of a remote's time far ahead whatever the window.
pub fn watermark_verdict(
    product_type: &str,
    time: Timestamp,
    held: &WatermarkHold,
    limit: Option<Timestamp>,
    types: &WatermarkTypes,
) -> WatermarkVerdict {
    if held.holds(product_type) {
        return WatermarkVerdict::Held;
    }
    if let Some(limit) = limit.filter(|limit| time > *limit) {
        return WatermarkVerdict::PastLimit(limit);
    }
    if !types.includes(product_type) {
        return WatermarkVerdict::OutsideWindow;
    }
    WatermarkVerdict::Raise
}

/// Raises `product_type`'s watermark in `watermarks` to `time`; a
/// watermark is never lowered.
pub fn raise_watermark(
    watermarks: &mut BTreeMap<String, Timestamp>,
    product_type: &str,
    time: Timestamp,
) {
    let entry = watermarks.entry(product_type.to_string()).or_insert(time);
    if *entry < time {
        *entry = time;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_timestamp;

    #[test]
    fn a_failure_holds_its_own_type_or_every_type() {
        let mut hold = WatermarkHold::default();
        hold.hold(Some("A"));
        assert!(hold.holds("A") && !hold.holds("B"));
        hold.hold(None);
        assert!(hold.holds("B"));
    }

    #[test]
    fn the_limit_lies_a_tolerance_after_the_start() {
        let started = parse_timestamp("2024-01-01T00:00:00Z").unwrap();
        assert_eq!(
            watermark_limit(started, Some(DEFAULT_FUTURE_TOLERANCE)),
            Some(parse_timestamp("2024-01-02T00:00:00Z").unwrap())
        );
        assert_eq!(watermark_limit(started, None), None);
    }

    #[test]
    fn a_window_with_a_start_raises_only_the_types_whose_watermark_it_reaches() {
        let t = |s| parse_timestamp(s).unwrap();
        let stored: BTreeMap<String, Timestamp> = [
            ("A".to_string(), t("2024-01-01")),
            ("B".to_string(), t("2024-02-01")),
            ("C".to_string(), t("2024-03-01")),
        ]
        .into();
        assert_eq!(
            WatermarkTypes::for_window(None, &stored),
            WatermarkTypes::All
        );
        let types = WatermarkTypes::for_window(Some(t("2024-02-01")), &stored);
        assert_eq!(types, WatermarkTypes::Only(vec!["B".into(), "C".into()]));
        assert!(types.includes("B") && !types.includes("A") && !types.includes("D"));
        assert!(WatermarkTypes::All.includes("D"));
    }

    #[test]
    fn a_hold_wins_over_the_limit_and_the_limit_over_the_window() {
        let t = |s| parse_timestamp(s).unwrap();
        let limit = Some(t("2024-06-01"));
        let window = WatermarkTypes::Only(vec!["A".into()]);
        let mut held = WatermarkHold::default();
        let verdict = |product_type, time, held: &WatermarkHold| {
            watermark_verdict(product_type, time, held, limit, &window)
        };
        assert_eq!(
            verdict("A", t("2024-06-01"), &held),
            WatermarkVerdict::Raise
        );
        assert_eq!(
            verdict("B", t("2024-01-01"), &held),
            WatermarkVerdict::OutsideWindow
        );
        assert_eq!(
            verdict("B", t("2024-06-02"), &held),
            WatermarkVerdict::PastLimit(t("2024-06-01")),
            "warned of outside the window too"
        );
        held.hold(Some("A"));
        assert_eq!(verdict("A", t("2024-06-02"), &held), WatermarkVerdict::Held);
        assert_eq!(
            watermark_verdict("B", t("9999-12-31"), &held, None, &WatermarkTypes::All),
            WatermarkVerdict::Raise,
            "no limit"
        );
    }

    #[test]
    fn watermarks_only_rise() {
        let t = |s| parse_timestamp(s).unwrap();
        let mut marks = BTreeMap::new();
        raise_watermark(&mut marks, "A", t("2024-02-01"));
        raise_watermark(&mut marks, "A", t("2024-01-01"));
        assert_eq!(marks["A"], t("2024-02-01"));
    }
}
