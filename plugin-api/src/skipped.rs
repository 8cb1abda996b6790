//! Fields of remote records that a synchronizer left out, counted per run.
//!
//! Real catalogues send blank, null and oddly formatted fields (`""` where
//! a date belongs, `[{}]` for a checksum list). Only what decides a
//! product's identity and time may fail a product; any other field that
//! cannot be read is left out of the product instead. A run that logged
//! every such field would drown the log, one that logged none would hide a
//! remote that changed its format: [`SkippedFields`] warns once per field
//! per run, naming the first product, counts the rest, and sums them up at
//! the end.

use muninn_sync_model::printable;
use std::collections::BTreeMap;
use std::fmt::Display;

/// What was left out of one field during a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSkips {
    /// How many products had the field left out.
    pub count: u64,
    /// The first of them, and why.
    pub first_product: String,
    pub first_reason: String,
}

/// The fields left out of remote records during one run; see the module
/// documentation. Keep one per `sync` and call [`SkippedFields::log_summary`]
/// before `sync` returns.
#[derive(Debug, Clone, Default)]
pub struct SkippedFields {
    by_field: BTreeMap<String, FieldSkips>,
}

impl SkippedFields {
    /// Notes that `field` of `product` was left out for `reason` (blank,
    /// null, malformed). The first time a field is left out in the run it
    /// is logged as a warning naming the product; later ones are counted.
    pub fn skip(&mut self, product: &str, field: &str, reason: impl Display) {
        if let Some(seen) = self.by_field.get_mut(field) {
            seen.count += 1;
            return;
        }
        let reason = reason.to_string();
        tracing::warn!(
            product = %printable(product),
            field = %printable(field),
            "left out a field the product could do without: {} (other products with this field left out are counted, not logged)",
            printable(&reason)
        );
        self.by_field.insert(
            field.to_string(),
            FieldSkips {
                count: 1,
                first_product: product.to_string(),
                first_reason: reason,
            },
        );
    }

    /// How many fields were left out in all.
    pub fn total(&self) -> u64 {
        self.by_field.values().map(|s| s.count).sum()
    }

    /// What was left out, per field.
    pub fn by_field(&self) -> &BTreeMap<String, FieldSkips> {
        &self.by_field
    }

    /// Logs one line with the count per field, when anything was left out.
    pub fn log_summary(&self) {
        if self.by_field.is_empty() {
            return;
        }
        let counts: Vec<String> = self
            .by_field
            .iter()
            .map(|(field, skips)| format!("{} x{}", printable(field), skips.count))
            .collect();
        tracing::warn!(
            total = self.total(),
            "left out blank, null or malformed fields of remote records (the products were kept without them): {}",
            counts.join(", ")
        );
    }
}

/// A remote's value as a warning about it shows it: a string without its
/// quotes, anything else as JSON, cut short after 80 characters so that
/// one huge value does not flood the log.
pub fn shown(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::SkippedFields;

    #[test]
    fn each_field_is_counted_and_only_its_first_product_named() {
        let mut skipped = SkippedFields::default();
        skipped.skip("A", "EvictionDate", "blank");
        skipped.skip("B", "EvictionDate", "blank");
        skipped.skip("B", "Checksum", "an empty object");
        assert_eq!(skipped.total(), 3);
        let eviction = &skipped.by_field()["EvictionDate"];
        assert_eq!(eviction.count, 2);
        assert_eq!(eviction.first_product, "A");
        assert_eq!(
            skipped.by_field()["Checksum"].first_reason,
            "an empty object"
        );
    }
}
