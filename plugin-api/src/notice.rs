//! What a plugin tells or asks the host besides catalogue changes, as one
//! type that both sides encode and decode: the ABI carries it as
//! `notify(kind, payload)` strings so that new kinds need no new ABI shape,
//! and this module is the only place those strings are written or read.

use muninn_sync_model::{
    format_timestamp, parse_timestamp, Deletion, ProductTypeSummary, PropertyType, Timestamp,
    ValueType,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt;

/// One notification from a plugin to the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A product was skipped because of `message`. The run goes on and ends
    /// with an error. When its `product_type` is known, only that type's
    /// watermark is held back; otherwise every type's is.
    ProductFailed {
        product: String,
        message: String,
        product_type: Option<String>,
    },
    /// `count` remote products were found identical to the catalogue's.
    Unchanged { count: u64 },
    /// Every remote change of `product_type` up to `time` was handed over.
    Watermark {
        product_type: String,
        time: Timestamp,
    },
    /// The plugin is about to wait (on the network): the host commits.
    Idle,
    /// Asks which product types the catalogue holds; the answer is a JSON
    /// list of [`ProductTypeSummary`].
    ProductTypes,
    /// The remote deleted a product: the host remembers it (a tombstone),
    /// so that an older record does not bring it back. It does not remove
    /// the product; `remove` does.
    Deletion(Deletion),
    /// Asks when the remote deleted these products of one type, as far as
    /// this synchronizer recorded it; the answer is a JSON list with one
    /// time (or `null`) per name, in order.
    Deletions {
        product_type: String,
        product_names: Vec<String>,
    },
    /// Asks the types of the properties (columns) these namespaces have in
    /// the catalogue; the answer is [`encode_property_types`]'s JSON. The
    /// SDK asks when the catalogue refused a product, to leave out the
    /// properties whose values do not fit their columns.
    PropertyTypes { namespaces: Vec<String> },
    /// About `count` remote products of `product_type` lie in this sync
    /// call's window: what the host's progress counts against. Only an
    /// estimate for progress, never a check; a later one for the same
    /// type replaces it.
    Expected { product_type: String, count: u64 },
}

/// Why a notification cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeError {
    /// A kind this side does not know (a newer plugin, an older host).
    Unknown(String),
    /// A known kind whose payload is not what that kind carries.
    Malformed { kind: String, reason: String },
}

impl fmt::Display for NoticeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Plugins match this wording to tell an older host apart.
            NoticeError::Unknown(kind) => write!(
                f,
                "this muninn-sync does not know the notification \"{}\"",
                kind.escape_debug()
            ),
            NoticeError::Malformed { kind, reason } => write!(
                f,
                "malformed notification \"{}\": {reason}",
                kind.escape_debug()
            ),
        }
    }
}

impl std::error::Error for NoticeError {}

#[derive(Serialize, Deserialize)]
struct FailedPayload {
    product: String,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    product_type: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct UnchangedPayload {
    count: u64,
}

#[derive(Serialize, Deserialize)]
struct WatermarkPayload {
    product_type: String,
    time: String,
}

#[derive(Serialize, Deserialize)]
struct ExpectedPayload {
    product_type: String,
    count: u64,
}

#[derive(Serialize, Deserialize)]
struct DeletionsPayload {
    product_type: String,
    product_names: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct PropertyTypesPayload {
    namespaces: Vec<String>,
}

/// Namespace -> property (as the column is spelt) -> its column.
pub type PropertyTypes = BTreeMap<String, BTreeMap<String, PropertyType>>;

#[derive(Serialize, Deserialize)]
struct PropertyTypeWire {
    #[serde(rename = "type")]
    value_type: String,
    fixed: bool,
}

/// The host's answer to [`Notice::PropertyTypes`].
pub fn encode_property_types(types: &PropertyTypes) -> String {
    let wire: BTreeMap<&String, BTreeMap<&String, PropertyTypeWire>> = types
        .iter()
        .map(|(namespace, columns)| {
            let columns = columns
                .iter()
                .map(|(name, column)| {
                    let wire = PropertyTypeWire {
                        value_type: column.value_type.name().to_string(),
                        fixed: column.fixed,
                    };
                    (name, wire)
                })
                .collect();
            (namespace, columns)
        })
        .collect();
    serde_json::to_string(&wire).expect("plain data")
}

/// Reads the host's answer to [`Notice::PropertyTypes`].
pub fn decode_property_types(answer: &str) -> Result<PropertyTypes, String> {
    let wire: BTreeMap<String, BTreeMap<String, PropertyTypeWire>> =
        serde_json::from_str(answer).map_err(|e| format!("unreadable property types: {e}"))?;
    wire.into_iter()
        .map(|(namespace, columns)| {
            let columns = columns
                .into_iter()
                .map(|(name, column)| {
                    let value_type = ValueType::from_name(&column.value_type)
                        .ok_or_else(|| format!("unknown property type {:?}", column.value_type))?;
                    Ok((
                        name,
                        PropertyType {
                            value_type,
                            fixed: column.fixed,
                        },
                    ))
                })
                .collect::<Result<_, String>>()?;
            Ok((namespace, columns))
        })
        .collect()
}

impl Notice {
    /// The kind, as `notify` carries it.
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::ProductFailed { .. } => "product_failed",
            Notice::Unchanged { .. } => "unchanged",
            Notice::Watermark { .. } => "watermark",
            Notice::Idle => "idle",
            Notice::ProductTypes => "product_types",
            Notice::Deletion(_) => "deletion",
            Notice::Deletions { .. } => "deletions",
            Notice::PropertyTypes { .. } => "property_types",
            Notice::Expected { .. } => "expected",
        }
    }

    /// The payload, as `notify` carries it (JSON).
    pub fn payload(&self) -> String {
        let value = match self {
            Notice::ProductFailed {
                product,
                message,
                product_type,
            } => serde_json::to_value(FailedPayload {
                product: product.clone(),
                message: message.clone(),
                product_type: product_type.clone(),
            }),
            Notice::Unchanged { count } => serde_json::to_value(UnchangedPayload { count: *count }),
            Notice::Watermark { product_type, time } => serde_json::to_value(WatermarkPayload {
                product_type: product_type.clone(),
                time: format_timestamp(time),
            }),
            Notice::Idle | Notice::ProductTypes => Ok(json!({})),
            Notice::Deletion(deletion) => serde_json::to_value(deletion),
            Notice::Deletions {
                product_type,
                product_names,
            } => serde_json::to_value(DeletionsPayload {
                product_type: product_type.clone(),
                product_names: product_names.clone(),
            }),
            Notice::PropertyTypes { namespaces } => Ok(json!({ "namespaces": namespaces })),
            Notice::Expected {
                product_type,
                count,
            } => serde_json::to_value(ExpectedPayload {
                product_type: product_type.clone(),
                count: *count,
            }),
        };
        value.expect("a notice is plain data").to_string()
    }

    /// Reads a notification as `notify` received it.
    pub fn decode(kind: &str, payload: &str) -> Result<Notice, NoticeError> {
        let malformed = |reason: String| NoticeError::Malformed {
            kind: kind.to_string(),
            reason,
        };
        fn read<T: for<'de> Deserialize<'de>>(payload: &str) -> Result<T, String> {
            serde_json::from_str(payload).map_err(|e| e.to_string())
        }
        match kind {
            "product_failed" => {
                let p: FailedPayload = read(payload).map_err(malformed)?;
                Ok(Notice::ProductFailed {
                    product: p.product,
                    message: p.message,
                    product_type: p.product_type,
                })
            }
            "unchanged" => {
                let p: UnchangedPayload = read(payload).map_err(malformed)?;
                Ok(Notice::Unchanged { count: p.count })
            }
            "watermark" => {
                let p: WatermarkPayload = read(payload).map_err(malformed)?;
                let time = parse_timestamp(&p.time).map_err(|e| {
                    malformed(format!(
                        "invalid watermark time \"{}\": {e}",
                        p.time.escape_debug()
                    ))
                })?;
                Ok(Notice::Watermark {
                    product_type: p.product_type,
                    time,
                })
            }
            "idle" => Ok(Notice::Idle),
            "product_types" => Ok(Notice::ProductTypes),
            "deletion" => Ok(Notice::Deletion(read(payload).map_err(malformed)?)),
            "deletions" => {
                let p: DeletionsPayload = read(payload).map_err(malformed)?;
                Ok(Notice::Deletions {
                    product_type: p.product_type,
                    product_names: p.product_names,
                })
            }
            "property_types" => {
                let p: PropertyTypesPayload = read(payload).map_err(malformed)?;
                Ok(Notice::PropertyTypes {
                    namespaces: p.namespaces,
                })
            }
            "expected" => {
                let p: ExpectedPayload = read(payload).map_err(malformed)?;
                Ok(Notice::Expected {
                    product_type: p.product_type,
                    count: p.count,
                })
            }
            other => Err(NoticeError::Unknown(other.to_string())),
        }
    }
}

/// The host's answer to [`Notice::ProductTypes`].
pub fn encode_product_types(summaries: &[ProductTypeSummary]) -> String {
    serde_json::to_string(summaries).expect("plain data")
}

/// Reads the host's answer to [`Notice::ProductTypes`].
pub fn decode_product_types(answer: &str) -> Result<Vec<ProductTypeSummary>, String> {
    serde_json::from_str(answer).map_err(|e| format!("unreadable list of product types: {e}"))
}

/// The host's answer to [`Notice::Deletions`].
pub fn encode_deletions(times: &[Option<Timestamp>]) -> String {
    let texts: Vec<Option<String>> = times
        .iter()
        .map(|t| t.as_ref().map(format_timestamp))
        .collect();
    serde_json::to_string(&texts).expect("plain data")
}

/// Reads the host's answer to [`Notice::Deletions`].
pub fn decode_deletions(answer: &str) -> Result<Vec<Option<Timestamp>>, String> {
    let texts: Vec<Option<String>> =
        serde_json::from_str(answer).map_err(|e| format!("unreadable deletion times: {e}"))?;
    texts
        .into_iter()
        .map(|t| {
            t.map(|t| parse_timestamp(&t).map_err(|e| format!("unreadable deletion time: {e}")))
                .transpose()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_sync_model::Uuid;

    #[test]
    fn every_notice_reads_back_as_it_was_sent() {
        let time = parse_timestamp("2024-05-06T07:08:09.123456Z").unwrap();
        let notices = [
            Notice::ProductFailed {
                product: "feed.jsonl line 3".into(),
                message: "bad \"modified\"".into(),
                product_type: Some("S2MSI1C".into()),
            },
            Notice::ProductFailed {
                product: "x".into(),
                message: "y".into(),
                product_type: None,
            },
            Notice::Unchanged { count: 7 },
            Notice::Watermark {
                product_type: "T".into(),
                time,
            },
            Notice::Idle,
            Notice::ProductTypes,
            Notice::Deletion(Deletion {
                product_type: "T".into(),
                product_name: "a".into(),
                uuid: Some(Uuid::from_u128(5)),
                time,
            }),
            Notice::Deletions {
                product_type: "T".into(),
                product_names: vec!["a".into(), "b".into()],
            },
            Notice::PropertyTypes {
                namespaces: vec!["eo".into()],
            },
            Notice::Expected {
                product_type: "S2MSI1C".into(),
                count: 200_000,
            },
        ];
        for notice in notices {
            assert_eq!(
                Notice::decode(notice.kind(), &notice.payload()),
                Ok(notice.clone())
            );
        }
    }

    #[test]
    fn the_wire_form_of_every_kind_is_as_documented() {
        // What older hosts and plugins read: none of it may change.
        let time = parse_timestamp("2024-01-03T10:00:00Z").unwrap();
        let wire = [
            (
                Notice::ProductFailed {
                    product: "p".into(),
                    message: "m".into(),
                    product_type: None,
                },
                "product_failed",
                r#"{"message":"m","product":"p"}"#,
            ),
            (
                Notice::Unchanged { count: 3 },
                "unchanged",
                r#"{"count":3}"#,
            ),
            (
                Notice::Watermark {
                    product_type: "T".into(),
                    time,
                },
                "watermark",
                r#"{"product_type":"T","time":"2024-01-03 10:00:00"}"#,
            ),
            (Notice::Idle, "idle", "{}"),
            (
                Notice::Expected {
                    product_type: "T".into(),
                    count: 200_000,
                },
                "expected",
                r#"{"count":200000,"product_type":"T"}"#,
            ),
        ];
        for (notice, kind, payload) in wire {
            assert_eq!((notice.kind(), notice.payload().as_str()), (kind, payload));
        }
        let negative = Notice::decode("expected", r#"{"product_type": "T", "count": -1}"#)
            .unwrap_err()
            .to_string();
        assert!(
            negative.starts_with("malformed notification \"expected\""),
            "{negative}"
        );
    }

    #[test]
    fn unknown_and_malformed_notices_are_named() {
        assert_eq!(
            Notice::decode("bogus", "{}").unwrap_err().to_string(),
            "this muninn-sync does not know the notification \"bogus\""
        );
        let malformed = Notice::decode("product_failed", "{\"message\": \"m\"}")
            .unwrap_err()
            .to_string();
        assert!(
            malformed.starts_with("malformed notification \"product_failed\"")
                && malformed.contains("product"),
            "{malformed}"
        );
        let time = Notice::decode("watermark", r#"{"product_type": "T", "time": "soon"}"#)
            .unwrap_err()
            .to_string();
        assert!(time.contains("invalid watermark time \"soon\""), "{time}");
    }

    #[test]
    fn answers_read_back() {
        let types: PropertyTypes = [(
            "eo".to_string(),
            [(
                "cloud_cover".to_string(),
                PropertyType {
                    value_type: ValueType::Real,
                    fixed: true,
                },
            )]
            .into(),
        )]
        .into();
        assert_eq!(
            decode_property_types(&encode_property_types(&types)).unwrap(),
            types
        );
        let time = parse_timestamp("2024-01-01T00:00:00Z").unwrap();
        assert_eq!(
            decode_deletions(&encode_deletions(&[Some(time), None])).unwrap(),
            vec![Some(time), None]
        );
        let summary = ProductTypeSummary {
            product_type: "T".into(),
            count: 3,
            owned: 2,
            validity_start_min: Some(time),
            validity_start_max: None,
        };
        assert_eq!(
            decode_product_types(&encode_product_types(std::slice::from_ref(&summary))).unwrap(),
            vec![summary]
        );
    }
}
