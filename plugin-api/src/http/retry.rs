//! When to try a request again and how long to wait first.

use reqwest::StatusCode;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Statuses that say "not now" rather than "not this request": a request
/// timeout, throttling, and the server or a gateway in front of it failing
/// (every 5xx, and the 52x of CDN proxies, but the three that are about the
/// request itself: 501 Not Implemented, 505 HTTP Version Not Supported and
/// 511 Network Authentication Required).
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    let code = status.as_u16();
    code == 408 || code == 429 || ((500..600).contains(&code) && !matches!(code, 501 | 505 | 511))
}

/// Statuses whose `Retry-After` the client honours.
pub(crate) fn honours_retry_after(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 503)
}

/// Transport failures worth another attempt: no connection, a connection
/// lost before or while the answer came, a timeout. Not: a malformed
/// request, a redirect loop, a body the client could not decode.
pub(crate) fn is_retryable_error(error: &reqwest::Error) -> bool {
    error.is_connect() || error.is_timeout() || error.is_request() || error.is_body()
}

/// The wait before retry number `retry` (1 for the first): `initial`
/// doubled `retry - 1` times, capped at `max`, of which a random half is
/// kept ("equal jitter": never less than half the step, so a server gets
/// its breather, and spread out, so clients that failed together do not
/// come back together).
pub(crate) fn backoff(initial: Duration, max: Duration, retry: u32) -> Duration {
    let doublings = retry.saturating_sub(1).min(31);
    let step = initial.checked_mul(1 << doublings).unwrap_or(max).min(max);
    let half = step / 2;
    half + half.mul_f64(fastrand::f64())
}

/// The wait a `Retry-After` value asks for: delta-seconds (`120`) or an
/// HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`, a past one meaning no
/// wait). `None` for anything else, and the caller falls back to backoff.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to hold is "very long": the caller caps it anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let date = SystemTime::from(date);
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Keeps request starts at least `spacing` apart, across all threads that
/// share the client.
pub(crate) struct RateLimiter {
    spacing: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(spacing: Duration) -> RateLimiter {
        RateLimiter {
            spacing,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Sleeps until this caller's turn and returns how long that was. The
    /// turn is taken under the lock and slept outside it, so that waiting
    /// threads line up instead of all waking at once.
    pub(crate) fn acquire(&self) -> Duration {
        let wait = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + self.spacing;
            start - now
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_equal_jitter_and_is_capped() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        for _ in 0..100 {
            let first = backoff(initial, max, 1);
            assert!(
                first >= Duration::from_millis(50) && first <= initial,
                "{first:?}"
            );
            let third = backoff(initial, max, 3);
            assert!(
                third >= Duration::from_millis(200) && third <= Duration::from_millis(400),
                "{third:?}"
            );
            let late = backoff(initial, max, 40);
            assert!(
                late >= Duration::from_millis(500) && late <= max,
                "{late:?}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_000); // 2015-10-21T07:20:00Z
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(480))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn retryable_statuses() {
        for code in [408, 429, 500, 502, 503, 504, 507, 520, 522, 524] {
            assert!(
                is_retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [200, 301, 400, 401, 403, 404, 409, 422, 501, 505, 511] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
    }

    #[test]
    fn rate_limiter_spaces_turns() {
        let limiter = RateLimiter::new(Duration::from_millis(20));
        let started = Instant::now();
        for _ in 0..4 {
            limiter.acquire();
        }
        assert!(started.elapsed() >= Duration::from_millis(60));
    }
}
