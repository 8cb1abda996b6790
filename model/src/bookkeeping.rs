//! What the catalogue tells a synchronizer about itself beyond products:
//! the product types it holds, and the deletions it remembers.

use crate::{Timestamp, Uuid, ValueType};
use serde::{Deserialize, Serialize};

/// The catalogue's products of one type: how many, how many the asking
/// synchronizer owns, and the range of their `validity_start`. A plugin
/// uses it to reconcile types that disappeared from its remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductTypeSummary {
    pub product_type: String,
    /// Products of the type in the catalogue.
    pub count: u64,
    /// Of those, the ones the asking synchronizer owns.
    pub owned: u64,
    /// The earliest and latest `validity_start` (products without one do
    /// not count); `None` when no product of the type has one.
    #[serde(with = "optional_time")]
    pub validity_start_min: Option<Timestamp>,
    #[serde(with = "optional_time")]
    pub validity_start_max: Option<Timestamp>,
}

/// A namespace property's column in the catalogue: the type its first
/// value gave it (or muninn's namespace schema declared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertyType {
    pub value_type: ValueType,
    /// Declared by muninn's own namespace schema: its type is fixed (an
    /// integer column is not widened to real).
    pub fixed: bool,
}

impl PropertyType {
    /// A namespace column's type as a store finds it: the type muninn-sync
    /// recorded when it made the column (which it may widen later), else
    /// the one muninn's declaration of the column reads as, fixed.
    pub fn of_column(
        recorded: Option<ValueType>,
        declared: impl FnOnce() -> ValueType,
    ) -> PropertyType {
        match recorded {
            Some(value_type) => PropertyType {
                value_type,
                fixed: false,
            },
            None => PropertyType {
                value_type: declared(),
                fixed: true,
            },
        }
    }
}

/// A product that a synchronizer's remote deleted, remembered (a
/// tombstone) so that an older record of it, met again when an older window
/// is synced, does not bring it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub product_type: String,
    pub product_name: String,
    /// The product's uuid, when the remote names it.
    pub uuid: Option<Uuid>,
    /// When the remote deleted it (its record's time).
    #[serde(with = "time")]
    pub time: Timestamp,
}

/// Times as [`format_timestamp`](crate::format_timestamp) writes them and
/// [`parse_timestamp`](crate::parse_timestamp) reads them back.
mod time {
    use crate::{format_timestamp, parse_timestamp, Timestamp};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &Timestamp, to: S) -> Result<S::Ok, S::Error> {
        to.serialize_str(&format_timestamp(time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(from)?;
        parse_timestamp(&text).map_err(serde::de::Error::custom)
    }
}

/// [`time`] for an optional time (`null` for none).
mod optional_time {
    use crate::{format_timestamp, parse_timestamp, Timestamp};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &Option<Timestamp>, to: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => to.serialize_str(&format_timestamp(time)),
            None => to.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Option<Timestamp>, D::Error> {
        Option::<String>::deserialize(from)?
            .map(|text| parse_timestamp(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}
