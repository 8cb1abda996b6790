//! One HTTP client for every plugin that talks to a remote catalogue (STAC,
//! OData, a vendor's API), so that each gets timeouts, retries with backoff,
//! `Retry-After`, a request-rate cap and secret redaction without writing
//! them again. Enabled by the crate's `http` feature; docs/http-client.md
//! has the whole story.
//!
//! The client is blocking, as plugins are synchronous code: do not call it
//! from inside an async runtime.
//!
//! ```no_run
//! use muninn_sync_plugin_api::http::{HttpClient, HttpConfig};
//!
//! #[derive(serde::Deserialize)]
//! struct Page {
//!     features: Vec<serde_json::Value>,
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! let token = "s3cr3t"; // from the plugin's configuration
//! let client = HttpClient::builder()
//!     .config(HttpConfig::default()) // or the plugin's `http` table
//!     .user_agent("muninn-sync-stac/0.1")
//!     .bearer_token(token)
//!     .build()?;
//! let page: Page = client.get_json("https://example.org/stac/search?limit=100")?;
//! tracing::info!(items = page.features.len(), "fetched a page");
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod origin;
mod redact;
mod response;
mod retry;

pub use config::{
    HttpConfig, OtherOrigins, DEFAULT_MAX_REQUESTS, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_USER_AGENT,
};
pub use error::HttpError;
pub use response::HttpResponse;

/// The reqwest this client is built on, for the request builder that
/// [`HttpClient::send`] hands out and for header names and values; using it
/// saves a plugin a second, possibly different, reqwest.
pub use reqwest;
pub use reqwest::blocking::RequestBuilder;
pub use reqwest::{header, Method, StatusCode, Url};

use anyhow::{anyhow, Context as _, Result};
use origin::{origin_of, take_userinfo, Credentials, Destination};
use redact::{is_sensitive_header, Redactor};
use reqwest::blocking::Request;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use retry::RateLimiter;
use serde::de::DeserializeOwned;
use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Characters of the server's answer that an error message quotes.
const BODY_IN_ERRORS: usize = 500;

/// Redirects followed for one request, as browsers and reqwest do.
const MAX_REDIRECTS: usize = 10;

/// The most a body's buffer reserves before the bytes are there: a
/// `Content-Length` is the server's word, not yet its data.
const INITIAL_BODY_CAPACITY: u64 = 16 * 1024 * 1024;

/// A blocking HTTP client with the retry, rate and redaction policy of
/// [`HttpConfig`]. Build one per synchronizer and keep it: it holds the
/// connection pool. It is `Send + Sync`, so threads may share it (the rate
/// cap then holds for all of them together).
pub struct HttpClient {
    inner: reqwest::blocking::Client,
    config: HttpConfig,
    redactor: Arc<Redactor>,
    rate: Option<RateLimiter>,
    credentials: Credentials,
    /// Requests sent so far, for `max_requests`.
    sent: AtomicU64,
}

/// Settings and secrets for an [`HttpClient`]; from [`HttpClient::builder`].
#[derive(Default)]
pub struct HttpClientBuilder {
    config: HttpConfig,
    secrets: Vec<String>,
    origin: Option<String>,
}

impl HttpClientBuilder {
    /// Takes every setting from `config`, such as the plugin's `http`
    /// table; call it before the other setters, which change single
    /// settings.
    pub fn config(mut self, config: HttpConfig) -> Self {
        self.config = config;
        self
    }

    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.config.user_agent = user_agent.into();
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Longest one attempt may take, body included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    pub fn max_retries(mut self, retries: u32) -> Self {
        self.config.max_retries = retries;
        self
    }

    pub fn initial_backoff(mut self, wait: Duration) -> Self {
        self.config.initial_backoff = wait;
        self
    }

    pub fn max_backoff(mut self, wait: Duration) -> Self {
        self.config.max_backoff = wait;
        self
    }

    pub fn max_retry_after(mut self, wait: Duration) -> Self {
        self.config.max_retry_after = wait;
        self
    }

    pub fn max_requests_per_second(mut self, rate: f64) -> Self {
        self.config.max_requests_per_second = Some(rate);
        self
    }

    /// The URL the user configured (a landing page, a service root): the
    /// configured headers and its user and password go only to its origin
    /// (scheme, host and port). Without it, the first request's origin is
    /// taken. Set it: a plugin whose first request follows a link would
    /// otherwise pin the wrong one.
    pub fn origin(mut self, url: impl Into<String>) -> Self {
        self.origin = Some(url.into());
        self
    }

    /// What a request to another origin does; see [`HttpConfig::other_origins`].
    pub fn other_origins(mut self, policy: OtherOrigins) -> Self {
        self.config.other_origins = policy;
        self
    }

    /// Longest answer body read; see [`HttpConfig::max_response_bytes`].
    pub fn max_response_bytes(mut self, bytes: u64) -> Self {
        self.config.max_response_bytes = bytes;
        self
    }

    /// Most requests the client sends (0: no limit); see
    /// [`HttpConfig::max_requests`].
    pub fn max_requests(mut self, requests: u64) -> Self {
        self.config.max_requests = requests;
        self
    }

    /// A header for every request to the configured origin. A credential
    /// header's value (see [`HttpConfig::headers`]) is kept secret;
    /// [`Self::secret_header`] makes any header's value secret.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.headers.insert(name.into(), value.into());
        self
    }

    /// A header for every request whose value never appears in messages.
    pub fn secret_header(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        self.secret(value.clone()).header(name, value)
    }

    /// `Authorization: Bearer <token>`, the token kept secret.
    pub fn bearer_token(self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.secret(token.clone())
            .header("Authorization", format!("Bearer {token}"))
    }

    /// A text that must never appear in a message (an error, a log): a
    /// password, a token, a key from the plugin's configuration. It is
    /// masked as `***`, also where it appears percent-encoded.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Checks the settings and builds the client; no request is sent.
    pub fn build(self) -> Result<HttpClient> {
        let config = self.config;
        config.validate()?;
        let mut redactor = Redactor::default();
        for secret in &self.secrets {
            redactor.add_secret(secret);
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let sensitive = is_sensitive_header(name);
            if sensitive {
                redactor.add_secret(value);
                // "Bearer <token>": the token alone may be echoed too.
                if let Some((_, credentials)) = value.split_once(' ') {
                    redactor.add_secret(credentials.trim());
                }
            }
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .with_context(|| format!("http header \"{name}\": not a valid header name"))?;
            // The value is not quoted: it may be a credential.
            let mut header_value = HeaderValue::from_str(value).map_err(|_| {
                anyhow!("http header \"{name}\": the value has characters a header cannot carry (control characters or non-ASCII)")
            })?;
            header_value.set_sensitive(sensitive);
            headers.insert(header_name, header_value);
        }
        let credentials = Credentials::new(headers, config.other_origins, self.origin.as_deref())?;
        // The headers are added per request, and redirects followed here,
        // so that credentials go only to the configured origin: reqwest's
        // default headers go everywhere, and its redirects keep every
        // header but `Authorization` and `Cookie` across hosts.
        let inner = reqwest::blocking::Client::builder()
            .user_agent(config.user_agent.as_str())
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                anyhow!(
                    "cannot set up the HTTP client: {}",
                    redactor.redact(&error_chain(&error.without_url()))
                )
            })?;
        let rate = config.request_spacing().map(RateLimiter::new);
        Ok(HttpClient {
            inner,
            config,
            redactor: Arc::new(redactor),
            rate,
            credentials,
            sent: AtomicU64::new(0),
        })
    }
}

impl std::fmt::Debug for HttpClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClientBuilder")
            .field("config", &self.config)
            .field("secrets", &self.secrets.len())
            .field(
                "origin",
                &self
                    .origin
                    .as_deref()
                    .map(|o| Redactor::default().redact(o)),
            )
            .finish()
    }
}

impl HttpClient {
    /// A builder with the defaults of [`HttpConfig`].
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::default()
    }

    /// A client with these settings and no further secrets: the same as
    /// `HttpClient::builder().config(config.clone()).build()`.
    pub fn new(config: &HttpConfig) -> Result<HttpClient> {
        HttpClient::builder().config(config.clone()).build()
    }

    /// The settings in force.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// `text` with the registered secrets, URL passwords, sensitive query
    /// parameters and credential headers masked as `***`: what this client
    /// does to every message it makes, for the plugin's own messages that
    /// show a URL or a server's answer.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    /// GET `url`; an error unless the final answer is 2xx.
    pub fn get(&self, url: &str) -> Result<HttpResponse> {
        self.send(Method::GET, url, |request| request)
    }

    /// GET `url` with `Accept: application/json` and read the answer into
    /// `T`; an error names the request and, for a body that does not fit
    /// `T`, the place in the JSON.
    pub fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T> {
        self.send(Method::GET, url, |request| {
            request.header(header::ACCEPT, "application/json")
        })?
        .json()
    }

    /// POST `form` as `application/x-www-form-urlencoded` (an OAuth token
    /// request, an OData or OpenSearch query). Register any password in it
    /// with [`HttpClientBuilder::secret`]. Like every request it is retried
    /// on failure, so use it for requests that may be repeated.
    pub fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<HttpResponse> {
        self.send(Method::POST, url, |request| request.form(form))
    }

    /// Sends a request that `build` completes (headers, a JSON body, a
    /// query), retrying as [`HttpConfig`] says. `build` is called again for
    /// each attempt, as a sent request cannot be reused. An error unless the
    /// final answer is 2xx; it is an [`HttpError`].
    ///
    /// Every method is retried: plugins read catalogues, so a repeated
    /// request does no harm.
    pub fn send(
        &self,
        method: Method,
        url: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<HttpResponse> {
        let shown_url = self.redact(url);
        let shown = format!("{method} {shown_url}");
        let mut parsed = Url::parse(url).map_err(|error| {
            HttpError::new(format!("{shown}: not a valid URL: {error}"), None, 0, false)
        })?;
        let own = take_userinfo(&mut parsed);
        let destination = self
            .credentials
            .destination(&parsed, own.as_ref(), None)
            .map_err(|refusal| {
                HttpError::new(self.redact(&format!("{shown}: {refusal}")), None, 0, false)
            })?;
        let limit = self.config.max_requests;
        let sent = self.sent.fetch_add(1, Ordering::Relaxed);
        if limit > 0 && sent >= limit {
            let message = format!(
                "{shown}: not sent: this run has sent {limit} requests, the limit set by http.max_requests (a server that never stops paging ends here); if the catalogue really needs more, raise http.max_requests (0: no limit)"
            );
            return Err(HttpError::new(message, None, 0, false).into());
        }
        let max_attempts = self.config.max_retries.saturating_add(1);
        let mut attempt = 1;
        loop {
            if let Some(rate) = &self.rate {
                let waited = rate.acquire();
                if !waited.is_zero() {
                    tracing::trace!(%method, url = %shown_url, wait_ms = millis(waited), "HTTP request held back by max_requests_per_second");
                }
            }
            let started = Instant::now();
            let last = attempt >= max_attempts;
            let request = build(self.inner.request(method.clone(), parsed.clone()))
                .build()
                .map_err(Failure::Transport)
                .map(|mut request| {
                    if let Destination::Home = destination {
                        self.credentials.add(&mut request, own.as_ref());
                    }
                    request
                });
            let outcome = match request.and_then(|request| self.attempt(request, &shown)) {
                Ok(response) => {
                    tracing::debug!(%method, url = %shown_url, status = response.status.as_u16(), bytes = response.body.len(), elapsed_ms = millis(started.elapsed()), attempt, "HTTP response");
                    self.judge_answer(response, attempt, last)
                }
                Err(error) => self.judge_failure(error, &shown, attempt, last),
            };
            let (reason, wait, retry_after) = match outcome {
                Outcome::Done(result) => return result.map_err(anyhow::Error::from),
                Outcome::Retry {
                    reason,
                    wait,
                    retry_after,
                } => (reason, wait, retry_after),
            };
            tracing::warn!(
                %method,
                url = %shown_url,
                attempt,
                max_attempts,
                reason = %reason,
                wait_ms = millis(wait),
                retry_after_ms = retry_after.map(millis),
                "HTTP request failed; retrying"
            );
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// What to do with an answer: hand it over when 2xx, retry when its
    /// status says "not now" and attempts are left, fail otherwise.
    fn judge_answer(&self, response: HttpResponse, attempt: u32, last: bool) -> Outcome {
        let status = response.status;
        if status.is_success() {
            return Outcome::Done(Ok(response));
        }
        if last || !retry::is_retryable_status(status) {
            let said = response::snippet(&response.body, BODY_IN_ERRORS, &self.redactor);
            let said = if said.is_empty() {
                String::new()
            } else {
                format!("; the server said: {said}")
            };
            let message = format!(
                "{}{}: HTTP {status}{}{said}",
                response.shown,
                gave_up(attempt),
                status_hint(status),
            );
            let error = HttpError::new(self.redact(&message), Some(status), attempt, false);
            return Outcome::Done(Err(error));
        }
        let asked = retry::honours_retry_after(status)
            .then(|| response.header(header::RETRY_AFTER.as_str()))
            .flatten()
            .and_then(|value| retry::parse_retry_after(value, SystemTime::now()));
        Outcome::Retry {
            reason: format!("HTTP {status}"),
            wait: match asked {
                Some(asked) => asked.min(self.config.max_retry_after),
                None => self.backoff(attempt),
            },
            retry_after: asked,
        }
    }

    /// What to do when no answer came: retry a lost connection or a
    /// timeout while attempts are left, fail otherwise.
    fn judge_failure(&self, failure: Failure, shown: &str, attempt: u32, last: bool) -> Outcome {
        let (retryable, timed_out, cause) = match failure {
            Failure::Final(message) => {
                let error = HttpError::new(self.redact(&message), None, attempt, false);
                return Outcome::Done(Err(error));
            }
            Failure::Transport(error) => (
                retry::is_retryable_error(&error),
                error.is_timeout(),
                self.redact(&error_chain(&error.without_url())),
            ),
            Failure::Body(error) => {
                let timed_out = error.kind() == std::io::ErrorKind::TimedOut;
                let cause = match error.into_inner() {
                    Some(inner) => match inner.downcast::<reqwest::Error>() {
                        Ok(error) => {
                            let timed_out = timed_out || error.is_timeout();
                            let text = error_chain(&error.without_url());
                            (timed_out, text)
                        }
                        Err(other) => (timed_out, error_chain(&*other)),
                    },
                    None => (timed_out, "the connection broke off".to_string()),
                };
                (
                    true,
                    cause.0,
                    self.redact(&format!("reading the answer: {}", cause.1)),
                )
            }
        };
        if last || !retryable {
            let hint = if timed_out {
                format!(
                    "; no answer in time (connect_timeout {} s, timeout {} s)",
                    self.config.connect_timeout.as_secs_f64(),
                    self.config.timeout.as_secs_f64()
                )
            } else if retryable {
                "; check the URL and that the server is reachable".to_string()
            } else {
                String::new()
            };
            let message = format!("{shown}{}: {cause}{hint}", gave_up(attempt));
            let error = HttpError::new(self.redact(&message), None, attempt, timed_out);
            return Outcome::Done(Err(error));
        }
        Outcome::Retry {
            reason: cause,
            wait: self.backoff(attempt),
            retry_after: None,
        }
    }

    /// One attempt: the request and the redirects it leads to, followed
    /// here so that the configured credentials go only to the configured
    /// origin, and the body read whole, within `max_response_bytes`. A
    /// connection lost while reading the body is a failed attempt like any
    /// other.
    fn attempt(&self, mut request: Request, shown: &str) -> Result<HttpResponse, Failure> {
        let mut redirects = 0;
        loop {
            let again = request.try_clone();
            let from = request.url().clone();
            let method = request.method().clone();
            let response = self.inner.execute(request).map_err(Failure::Transport)?;
            let status = response.status();
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            let Some(location) = location.filter(|_| status.is_redirection()) else {
                return self.read(response, shown);
            };
            if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                return self.read(response, shown);
            }
            redirects += 1;
            let shown_from = self.redact(from.as_str());
            if redirects > MAX_REDIRECTS {
                return Err(Failure::Final(format!(
                    "{shown}: more than {MAX_REDIRECTS} redirects (the last from {shown_from}); stopped"
                )));
            }
            let mut to = from.join(&location).map_err(|error| {
                Failure::Final(format!(
                    "{shown}: {shown_from} redirects to \"{location}\", which is not a URL: {error}"
                ))
            })?;
            if !matches!(to.scheme(), "http" | "https") {
                return Err(Failure::Final(format!(
                    "{shown}: {shown_from} redirects to a {} URL; only http and https are followed",
                    to.scheme()
                )));
            }
            let own = take_userinfo(&mut to);
            let mut next = again.ok_or_else(|| {
                Failure::Final(format!(
                    "{shown}: {shown_from} redirects, and the request's body cannot be sent again"
                ))
            })?;
            // 303, and 301 / 302 after a POST, ask for a GET of the new
            // place, as browsers do; 307 and 308 repeat the request.
            let to_get = status == StatusCode::SEE_OTHER
                || (method == Method::POST && matches!(status.as_u16(), 301 | 302));
            if to_get && method != Method::HEAD {
                *next.method_mut() = Method::GET;
                *next.body_mut() = None;
                next.headers_mut().remove(header::CONTENT_TYPE);
                next.headers_mut().remove(header::CONTENT_LENGTH);
            }
            if origin_of(&to) != origin_of(&from) {
                self.credentials.remove(next.headers_mut());
                let destination = self
                    .credentials
                    .destination(&to, own.as_ref(), Some(&shown_from))
                    .map_err(|refusal| Failure::Final(format!("{shown}: {refusal}")))?;
                if let Destination::Home = destination {
                    self.credentials.add(&mut next, own.as_ref());
                }
            }
            tracing::debug!(status = status.as_u16(), from = %shown_from, to = %self.redact(to.as_str()), "HTTP redirect");
            *next.url_mut() = to;
            request = next;
        }
    }

    /// Reads an answer's body, refusing one longer than
    /// `max_response_bytes`: by its `Content-Length` before reading, or as
    /// it streams, so that memory stays bounded whatever the server sends.
    fn read(
        &self,
        response: reqwest::blocking::Response,
        shown: &str,
    ) -> Result<HttpResponse, Failure> {
        let cap = self.config.max_response_bytes;
        let status = response.status();
        let headers = response.headers().clone();
        let url = response.url().clone();
        let announced = response.content_length();
        if let Some(length) = announced.filter(|length| *length > cap) {
            return Err(Failure::Final(format!(
                "{shown}: the answer is {length} bytes long (its Content-Length), more than http.max_response_bytes ({cap} bytes) allows; not read (raise http.max_response_bytes if this catalogue's answers are really that large)"
            )));
        }
        let capacity = announced.unwrap_or(0).min(INITIAL_BODY_CAPACITY);
        let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        response
            .take(cap.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(Failure::Body)?;
        if body.len() as u64 > cap {
            return Err(Failure::Final(format!(
                "{shown}: the answer grew past http.max_response_bytes ({cap} bytes); stopped reading it (raise http.max_response_bytes if this catalogue's answers are really that large)"
            )));
        }
        Ok(HttpResponse {
            status,
            headers,
            url,
            body,
            shown: shown.to_string(),
            redactor: Arc::clone(&self.redactor),
        })
    }

    /// The wait after failed attempt number `attempt`.
    fn backoff(&self, attempt: u32) -> Duration {
        retry::backoff(
            self.config.initial_backoff,
            self.config.max_backoff,
            attempt,
        )
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why an attempt brought no answer.
enum Failure {
    /// No answer: no connection, a timeout, a request reqwest could not build.
    Transport(reqwest::Error),
    /// The answer broke off while its body was read.
    Body(std::io::Error),
    /// A refusal that another attempt would meet again (a body too large, a
    /// redirect that may not be followed); the message names the request.
    Final(String),
}

/// How an attempt ends.
enum Outcome {
    /// For the caller: a 2xx answer, or the error the request ends with.
    Done(Result<HttpResponse, HttpError>),
    /// Try again after `wait`; `retry_after` is what the server asked for.
    Retry {
        reason: String,
        wait: Duration,
        retry_after: Option<Duration>,
    },
}

/// `" (gave up after N attempts)"` when there were several, for messages.
fn gave_up(attempts: u32) -> String {
    match attempts {
        1 => String::new(),
        n => format!(" (gave up after {n} attempts)"),
    }
}

/// What to do about a final status, where there is something to say.
fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 => "; check the credentials the plugin is configured with",
        429 => "; the server is throttling: set or lower http.max_requests_per_second",
        500..=599 => "; the server is failing: try again later",
        _ => "",
    }
}

/// An error and its causes on one line, as `{:#}` would print them.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some layers repeat their cause's text; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
