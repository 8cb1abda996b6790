//! Which requests carry the configured credentials: only those to the
//! origin the user configured (scheme, host and port). A catalogue's pages
//! link to other hosts (a CDN, a mirror, a hostile server that wants the
//! token), and a header is a credential whatever it is called, so every
//! configured header and the configured URL's user and password stay home.

use super::config::OtherOrigins;
use super::redact::is_sensitive_header;
use reqwest::blocking::Request;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::Url;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

/// The configured origin and what goes only there.
pub(crate) struct Credentials {
    /// Set when the client is built with an origin, else by the first
    /// request it sends.
    home: OnceLock<Home>,
    /// The configured headers, values marked sensitive.
    headers: HeaderMap,
    policy: OtherOrigins,
    /// Origins already logged as reached without credentials.
    noted: Mutex<HashSet<String>>,
}

struct Home {
    /// `scheme://host[:port]`.
    origin: String,
    /// `Authorization: Basic ...` from the configured URL's user and password.
    basic: Option<HeaderValue>,
}

/// Where a request may go, and with what.
pub(crate) enum Destination {
    /// The configured origin: with the credentials.
    Home,
    /// Another origin: without them.
    Elsewhere,
}

impl Credentials {
    /// `origin`: the URL the user configured (its path is ignored), or
    /// `None` to take the first request's.
    pub(crate) fn new(
        headers: HeaderMap,
        policy: OtherOrigins,
        origin: Option<&str>,
    ) -> anyhow::Result<Credentials> {
        let home = OnceLock::new();
        if let Some(origin) = origin {
            let mut url = Url::parse(origin).map_err(|error| {
                anyhow::anyhow!("the origin the credentials belong to is not a URL: {error}")
            })?;
            let basic = take_userinfo(&mut url);
            let _ = home.set(Home {
                origin: origin_of(&url),
                basic,
            });
        }
        Ok(Credentials {
            home,
            headers,
            policy,
            noted: Mutex::new(HashSet::new()),
        })
    }

    /// The configured origin, set by `url` (its user and password
    /// included, which the caller took out as `own`) if none is yet.
    fn home(&self, url: &Url, own: Option<&HeaderValue>) -> &Home {
        self.home.get_or_init(|| Home {
            origin: origin_of(url),
            basic: own.cloned(),
        })
    }

    /// Whether `url` (without user and password) is the configured origin;
    /// when it is not and the policy says refuse, the refusal, naming both
    /// origins. `redirected_from` is the URL that redirected here, if any.
    pub(crate) fn destination(
        &self,
        url: &Url,
        own: Option<&HeaderValue>,
        redirected_from: Option<&str>,
    ) -> Result<Destination, String> {
        let home = self.home(url, own);
        let origin = origin_of(url);
        if origin == home.origin && origin != "null" {
            return Ok(Destination::Home);
        }
        if self.policy == OtherOrigins::Refuse {
            let how = match redirected_from {
                Some(from) => format!("a redirect from {from} leads to"),
                None => "the request goes to".to_string(),
            };
            return Err(format!(
                "refused: {how} the origin {origin}, not the configured origin {}, and http.other_origins is \"refuse\" (set it to \"without_credentials\" to follow such links without the configured headers and URL credentials)",
                home.origin
            ));
        }
        let first_time = self
            .noted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(origin.clone());
        if first_time {
            tracing::info!(
                origin = %origin,
                configured = %home.origin,
                "requests to another origin than the configured one are sent without the configured headers and URL credentials"
            );
        }
        Ok(Destination::Elsewhere)
    }

    /// Adds the configured headers (where the request has none of that
    /// name) and `Authorization` from the URL's user and password: `own`,
    /// the request URL's, else the configured URL's.
    pub(crate) fn add(&self, request: &mut Request, own: Option<&HeaderValue>) {
        let basic = own.or_else(|| self.home.get().and_then(|home| home.basic.as_ref()));
        let headers = request.headers_mut();
        for (name, value) in &self.headers {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        if let Some(basic) = basic {
            if !headers.contains_key(AUTHORIZATION) {
                headers.insert(AUTHORIZATION, basic.clone());
            }
        }
    }

    /// Takes out of a request that leaves its origin every configured
    /// header and every header that looks like a credential (whoever set
    /// it): what goes to the next origin is added afresh.
    pub(crate) fn remove(&self, headers: &mut HeaderMap) {
        for name in self.headers.keys() {
            headers.remove(name);
        }
        let sensitive: Vec<_> = headers
            .keys()
            .filter(|name| is_sensitive_header(name.as_str()))
            .cloned()
            .collect();
        for name in sensitive {
            headers.remove(name);
        }
    }
}

/// `scheme://host[:port]` of a URL (the port left out when it is the
/// scheme's default), `null` for a URL that has no origin.
pub(crate) fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Takes the user and password out of `url`, as `Authorization: Basic`.
pub(crate) fn take_userinfo(url: &mut Url) -> Option<HeaderValue> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |text: &str| {
        // The URL crate keeps them percent-encoded.
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = (bytes[i] == b'%')
                .then(|| bytes.get(i + 1..i + 3))
                .flatten()
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        out
    };
    let mut pair = decode(url.username());
    pair.push(b':');
    pair.extend(decode(url.password().unwrap_or("")));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let mut value = HeaderValue::from_str(&format!("Basic {}", base64(&pair))).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Standard base64 with padding, for `Authorization: Basic`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_rfc_4648_says() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pa ss", "dXNlcjpwYSBzcw=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let origin = |url: &str| origin_of(&Url::parse(url).unwrap());
        assert_eq!(origin("https://a.org/x?y"), origin("https://a.org:443/z"));
        assert_ne!(origin("https://a.org/"), origin("http://a.org/"));
        assert_ne!(origin("http://a.org/"), origin("http://a.org:8080/"));
        assert_ne!(origin("http://a.org/"), origin("http://b.a.org/"));
        let mut url = Url::parse("http://us%40er:p%3Ass@a.org/").unwrap();
        let basic = take_userinfo(&mut url).unwrap();
        assert_eq!(url.as_str(), "http://a.org/");
        assert_eq!(
            basic.to_str().unwrap(),
            format!("Basic {}", base64(b"us@er:p:ss"))
        );
    }
}
