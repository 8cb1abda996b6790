//! The window a run syncs, and which watermarks it may raise.
//!
//! A watermark says "every remote change of this product type up to this
//! time is committed". An incremental run starts a lookback before the
//! oldest watermark of the types it syncs; a run may only raise the
//! watermark of a type whose window reaches back to it, or it would claim
//! changes it never saw.

use crate::duration::format_duration;
use muninn_sync_catalogue::Watermarks;
use muninn_sync_model::{format_timestamp, Timestamp, WatermarkTypes};
use std::time::Duration;

/// How far before the watermark an incremental run starts by default: a
/// remote's modification times can lag its visibility by a few minutes.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(600);

/// What the command line and the section ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRequest<'a> {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub product_types: Option<&'a [String]>,
    pub incremental: bool,
    pub full: bool,
    pub lookback: Duration,
}

/// The window of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// Whether `start` came from the watermarks.
    pub from_watermark: bool,
    pub watermark_types: WatermarkTypes,
    /// Why the run is what it is, for the log.
    pub reason: String,
}

/// Plans the window from the request and the synchronizer's watermarks.
pub fn plan(request: &WindowRequest<'_>, stored: &Watermarks) -> Window {
    let (start, from_watermark, reason) =
        match (request.start, request.incremental && !request.full) {
            (Some(start), _) => (Some(start), false, "from the --start given".to_string()),
            (None, false) if request.full => (
                None,
                false,
                "--full: every change, whatever the watermark".into(),
            ),
            (None, false) => (None, false, "no --start: every change".to_string()),
            (None, true) => match oldest_watermark(request.product_types, stored) {
                Ok((product_type, watermark)) => {
                    let start = watermark
                        .checked_sub_signed(
                            chrono::Duration::from_std(request.lookback).unwrap_or_default(),
                        )
                        .unwrap_or(watermark);
                    let reason = format!(
                    "incremental: from the watermark of {product_type} ({}) minus a lookback of {}",
                    format_timestamp(&watermark),
                    format_duration(request.lookback)
                );
                    (Some(start), true, reason)
                }
                Err(why) => (None, false, format!("incremental, but {why}: a full sync")),
            },
        };
    Window {
        start,
        end: request.end,
        from_watermark,
        watermark_types: WatermarkTypes::for_window(start, stored),
        reason,
    }
}

/// The oldest watermark among the types the run syncs, or why there is none.
fn oldest_watermark(
    product_types: Option<&[String]>,
    stored: &Watermarks,
) -> Result<(String, Timestamp), String> {
    let candidates: Vec<(String, Timestamp)> = match product_types {
        Some(types) => {
            let mut found = Vec::new();
            for product_type in types {
                match stored.get(product_type) {
                    Some(time) => found.push((product_type.clone(), *time)),
                    None => {
                        return Err(format!("product type {product_type} has no watermark yet"))
                    }
                }
            }
            found
        }
        None => stored.iter().map(|(t, w)| (t.clone(), *w)).collect(),
    };
    candidates
        .into_iter()
        .min_by_key(|(_, time)| *time)
        .ok_or_else(|| "this synchronizer has no watermark yet".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_sync_model::parse_timestamp;

    fn time(text: &str) -> Timestamp {
        parse_timestamp(text).unwrap()
    }

    fn request(incremental: bool) -> WindowRequest<'static> {
        WindowRequest {
            start: None,
            end: None,
            product_types: None,
            incremental,
            full: false,
            lookback: Duration::from_secs(600),
        }
    }

    fn stored() -> Watermarks {
        [
            ("A".to_string(), time("2024-05-01T12:00:00Z")),
            ("B".to_string(), time("2024-05-02T00:00:00Z")),
        ]
        .into()
    }

    #[test]
    fn incremental_runs_start_a_lookback_before_the_oldest_watermark() {
        let window = plan(&request(true), &stored());
        assert_eq!(window.start, Some(time("2024-05-01T11:50:00Z")));
        assert!(window.from_watermark);
        assert_eq!(
            window.watermark_types,
            WatermarkTypes::Only(vec!["A".into(), "B".into()])
        );
        assert!(
            window.reason.contains("watermark of A"),
            "{}",
            window.reason
        );

        let only_b = vec!["B".to_string()];
        let window = plan(
            &WindowRequest {
                product_types: Some(&only_b),
                ..request(true)
            },
            &stored(),
        );
        assert_eq!(window.start, Some(time("2024-05-01T23:50:00Z")));
        assert_eq!(
            window.watermark_types,
            WatermarkTypes::Only(vec!["B".into()])
        );
    }

    #[test]
    fn without_a_watermark_or_with_full_the_run_is_full() {
        let window = plan(&request(true), &Watermarks::new());
        assert_eq!(
            (window.start, window.watermark_types),
            (None, WatermarkTypes::All)
        );
        let new_type = vec!["A".to_string(), "C".to_string()];
        let window = plan(
            &WindowRequest {
                product_types: Some(&new_type),
                ..request(true)
            },
            &stored(),
        );
        assert_eq!(window.start, None);
        assert!(
            window.reason.contains("C has no watermark"),
            "{}",
            window.reason
        );
        let window = plan(
            &WindowRequest {
                full: true,
                ..request(true)
            },
            &stored(),
        );
        assert_eq!(window.start, None);
        // Not incremental: muninn's behaviour, whatever the watermarks.
        assert_eq!(plan(&request(false), &stored()).start, None);
    }

    #[test]
    fn a_window_that_starts_after_a_watermark_cannot_raise_it() {
        let window = plan(
            &WindowRequest {
                start: Some(time("2024-05-01T18:00:00Z")),
                ..request(true)
            },
            &stored(),
        );
        assert_eq!(window.start, Some(time("2024-05-01T18:00:00Z")));
        assert!(!window.from_watermark);
        assert_eq!(
            window.watermark_types,
            WatermarkTypes::Only(vec!["B".into()])
        );
    }
}
