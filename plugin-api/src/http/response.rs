//! A successful answer, read whole.

use super::redact::Redactor;
use anyhow::{anyhow, Result};
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A 2xx answer with its body read whole: reading the body is part of the
/// attempt, so a connection lost halfway through is retried like any other.
/// Catalogue answers (search pages, OData feeds) fit in memory.
pub struct HttpResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) url: Url,
    pub(crate) body: Vec<u8>,
    /// `METHOD <redacted URL>` of the request, for messages.
    pub(crate) shown: String,
    pub(crate) redactor: Arc<Redactor>,
}

impl HttpResponse {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The URL that answered, after redirects. It is not redacted: pass it
    /// through [`HttpClient::redact`](super::HttpClient::redact) before
    /// showing it.
    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text; an error names the request.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body)
            .map_err(|e| anyhow!("{}: the answer is not UTF-8 text: {e}", self.shown))
    }

    /// The body read as JSON into `T`; an error names the request, the place
    /// in the JSON (`features[3].properties.datetime`) and how the answer
    /// starts, for when a server sends an HTML error page with status 200.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let mut deserializer = serde_json::Deserializer::from_slice(&self.body);
        let (at, error) = match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(value) => match deserializer.end() {
                Ok(()) => return Ok(value),
                Err(error) => (String::new(), error),
            },
            Err(error) => {
                let path = error.path().to_string();
                let at = if path == "." {
                    String::new()
                } else {
                    format!(" at {path}")
                };
                (at, error.into_inner())
            }
        };
        let message = format!(
            "{}: the answer is not the expected JSON{at}: {error}; it starts with: {}",
            self.shown,
            snippet(&self.body, 200, &self.redactor),
        );
        Err(anyhow!(self.redactor.redact(&message)))
    }
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("request", &self.shown)
            .field("status", &self.status)
            .field("bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The first `max_chars` characters of a body, on one line and redacted,
/// for a message. Redacted before the cut, as a secret cut in half would no
/// longer be recognised; only the first 64 KiB are looked at, which is
/// plenty for 500 characters.
pub(crate) fn snippet(body: &[u8], max_chars: usize, redactor: &Redactor) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let redacted = redactor.redact(&one_line);
    match redacted.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &redacted[..cut]),
        None => redacted,
    }
}
