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
    fn watermarks_only_rise() {
        let t = |s| parse_timestamp(s).unwrap();
        let mut marks = BTreeMap::new();
        raise_watermark(&mut marks, "A", t("2024-02-01"));
        raise_watermark(&mut marks, "A", t("2024-01-01"));
        assert_eq!(marks["A"], t("2024-02-01"));
    }
}
