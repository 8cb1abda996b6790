//! The error a request ends with when retrying did not help.

use reqwest::StatusCode;

/// Why a request failed for good. Its message names the method, the URL,
/// what went wrong, how many attempts were made and, for an HTTP status, the
/// start of the server's answer — all redacted. It reaches a plugin inside an
/// `anyhow::Error`; `error.downcast_ref::<HttpError>()` gives the status, for
/// a plugin that treats, say, 404 as "gone" rather than as a failure (this
/// works through any `.context(...)` the plugin adds).
#[derive(Debug)]
pub struct HttpError {
    message: String,
    status: Option<StatusCode>,
    attempts: u32,
    timed_out: bool,
}

impl HttpError {
    pub(crate) fn new(
        message: String,
        status: Option<StatusCode>,
        attempts: u32,
        timed_out: bool,
    ) -> HttpError {
        HttpError {
            message,
            status,
            attempts,
            timed_out,
        }
    }

    /// The final answer's status; `None` when no answer came (no
    /// connection, a timeout, an invalid URL).
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// How many times the request was sent (0 when it could not be built).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether the last attempt ran out of time (`connect_timeout` or
    /// `timeout`).
    pub fn is_timeout(&self) -> bool {
        self.timed_out
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// No `source()`: the causes are already in the message, redacted, whereas
/// reqwest's own error would print the URL unredacted.
impl std::error::Error for HttpError {}
