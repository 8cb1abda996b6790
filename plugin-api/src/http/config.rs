//! The client's settings, in the form a plugin's configuration section can
//! carry them.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::time::Duration;

/// `User-Agent` unless the plugin or its configuration names another.
pub const DEFAULT_USER_AGENT: &str = concat!("muninn-sync-plugin/", env!("CARGO_PKG_VERSION"));

/// The HTTP client's settings. Every key has a default, so a plugin can
/// embed it in its own configuration as an optional table, and users write
/// only the keys they change (durations are seconds, fractions allowed):
///
/// ```toml
/// ["synchronizer:stac".http]
/// timeout = 120
/// max_requests_per_second = 2
/// headers = { Authorization = "Bearer eyJhbGciOi..." }
/// ```
///
/// ```
/// use muninn_sync_plugin_api::http::HttpConfig;
///
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Config {
///     url: String,
///     #[serde(default)]
///     http: HttpConfig,
/// }
/// ```
///
/// docs/http-client.md explains each key.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Sent as `User-Agent` (default [`DEFAULT_USER_AGENT`]): servers that
    /// rate-limit or block by client like to know who is calling.
    pub user_agent: String,
    /// Longest wait for a TCP and TLS connection (default 10 s).
    #[serde(deserialize_with = "positive_seconds")]
    pub connect_timeout: Duration,
    /// Longest one attempt may take, from sending the request to the last
    /// byte of the body (default 60 s).
    #[serde(deserialize_with = "positive_seconds")]
    pub timeout: Duration,
    /// Retries after the first attempt of a request that failed in a way
    /// worth retrying (default 5, so at most 6 attempts; 0 never retries).
    pub max_retries: u32,
    /// Wait before the first retry; it doubles with each further retry
    /// (default 1 s). Half of each wait is random, so that plugins that
    /// failed together do not retry together.
    #[serde(deserialize_with = "seconds")]
    pub initial_backoff: Duration,
    /// Cap of the doubling wait (default 60 s).
    #[serde(deserialize_with = "seconds")]
    pub max_backoff: Duration,
    /// Cap of a wait that a server asks for in `Retry-After` (default
    /// 300 s): a server in maintenance may ask for hours, which would look
    /// like a hang.
    #[serde(deserialize_with = "seconds")]
    pub max_retry_after: Duration,
    /// At most this many requests (attempts, retries included) start per
    /// second, evenly spaced; `None` (the default) sends as fast as answers
    /// come. For servers that publish a rate limit.
    #[serde(deserialize_with = "optional_rate")]
    pub max_requests_per_second: Option<f64>,
    /// Headers sent with every request. The values of credential headers
    /// (`Authorization`, `Cookie`, names ending in `token`, `key`, `secret`,
    /// `password`, ...) are secrets: they never appear in messages. They
    /// are credentials, whatever they are called: they go only to the
    /// configured origin (see [`Self::other_origins`]).
    pub headers: BTreeMap<String, String>,
    /// What a request to another origin than the configured one (a link or
    /// a redirect to another scheme, host or port) does: go without the
    /// configured headers and URL credentials (the default), or fail.
    pub other_origins: OtherOrigins,
    /// Longest answer body read, in bytes (default 256 MiB): a larger
    /// `Content-Length` is refused before reading, and a body that grows
    /// past it while streaming is cut off, so memory stays bounded.
    #[serde(deserialize_with = "positive_bytes")]
    pub max_response_bytes: u64,
    /// Requests this client sends in its life, which is one run for a
    /// plugin that builds its client in `new` (default 1,000,000; 0: no
    /// limit). Retries and redirects of a request do not count. A server
    /// that never stops paging is stopped by it.
    pub max_requests: u64,
}

/// What a request to another origin than the configured one does: the
/// `other_origins` key, `"without_credentials"` or `"refuse"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtherOrigins {
    /// Sent without the configured headers and URL credentials.
    #[default]
    WithoutCredentials,
    /// Refused with an error that names both origins.
    Refuse,
}

impl OtherOrigins {
    /// The value as the configuration writes it.
    pub fn name(self) -> &'static str {
        match self {
            OtherOrigins::WithoutCredentials => "without_credentials",
            OtherOrigins::Refuse => "refuse",
        }
    }
}

/// 256 MiB: far above any catalogue page, far below what hurts a machine.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// Requests per run unless `max_requests` says otherwise.
pub const DEFAULT_MAX_REQUESTS: u64 = 1_000_000;

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            user_agent: DEFAULT_USER_AGENT.to_string(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            max_retries: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            max_requests_per_second: None,
            headers: BTreeMap::new(),
            other_origins: OtherOrigins::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_requests: DEFAULT_MAX_REQUESTS,
        }
    }
}

/// Shows header values only where they are not credentials, so that a
/// plugin may `{:?}` its configuration into a log.
impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: BTreeMap<&str, &str> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if super::redact::is_sensitive_header(name) {
                    super::redact::MASK
                } else {
                    value.as_str()
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("HttpConfig")
            .field("user_agent", &self.user_agent)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_retry_after", &self.max_retry_after)
            .field("max_requests_per_second", &self.max_requests_per_second)
            .field("headers", &headers)
            .field("other_origins", &self.other_origins)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_requests", &self.max_requests)
            .finish()
    }
}

impl HttpConfig {
    /// Refuses settings that would make every request fail at once or never
    /// start; the message names the configuration key.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.connect_timeout.is_zero() {
            anyhow::bail!("http key \"connect_timeout\": must be more than 0 seconds");
        }
        if self.timeout.is_zero() {
            anyhow::bail!("http key \"timeout\": must be more than 0 seconds");
        }
        if self.max_response_bytes == 0 {
            anyhow::bail!("http key \"max_response_bytes\": must be more than 0 bytes");
        }
        if let Some(rate) = self.max_requests_per_second {
            check_rate(rate)
                .map_err(|e| anyhow::anyhow!("http key \"max_requests_per_second\": {e}"))?;
        }
        Ok(())
    }

    /// The spacing between request starts that the rate cap asks for.
    pub(crate) fn request_spacing(&self) -> Option<Duration> {
        self.max_requests_per_second
            .and_then(|rate| Duration::try_from_secs_f64(1.0 / rate).ok())
    }
}

fn check_rate(rate: f64) -> Result<(), String> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!(
            "must be a number of requests per second above 0, not {rate}"
        ));
    }
    if Duration::try_from_secs_f64(1.0 / rate).is_err() {
        return Err(format!(
            "{rate} requests per second is too few to space out"
        ));
    }
    Ok(())
}

/// A duration written as a number of seconds (`1`, `0.25`).
fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let value = f64::deserialize(deserializer)?;
    Duration::try_from_secs_f64(value).map_err(|_| {
        serde::de::Error::custom(format!(
            "expected a number of seconds of 0 or more, not {value}"
        ))
    })
}

/// As [`seconds`], but 0 is refused: a zero timeout fails every request.
fn positive_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let duration = seconds(deserializer)?;
    if duration.is_zero() {
        return Err(serde::de::Error::custom(
            "expected a number of seconds above 0",
        ));
    }
    Ok(duration)
}

/// A number of bytes above 0: a cap of 0 would refuse every answer.
fn positive_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let bytes = u64::deserialize(deserializer)?;
    if bytes == 0 {
        return Err(serde::de::Error::custom(
            "expected a number of bytes above 0",
        ));
    }
    Ok(bytes)
}

fn optional_rate<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    let rate = f64::deserialize(deserializer)?;
    check_rate(rate).map_err(serde::de::Error::custom)?;
    Ok(Some(rate))
}
