//! Masking of credentials in every text the client lets out: error
//! messages and logs end up in terminals, CI output and bug reports, and a
//! catalogue's token is worth more than the catalogue.

/// What a masked value is replaced with.
pub(crate) const MASK: &str = "***";

/// Masks, in this order: the secrets a plugin registered (also as they look
/// percent-encoded in a URL or a form), the password of URL userinfo
/// (`https://user:***@host/`), the values of sensitive query or form
/// parameters (`?token=***`) and JSON members (`"password": "***"`), and the
/// values of credential header lines (`Authorization: ***`, `X-Api-Key:
/// ***`; only header-shaped names, so that prose such as "invalid token:
/// expired" keeps its explanation).
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// Longest first, so that a secret containing another is masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// Registers a secret; an empty one is ignored, as masking "" would
    /// mask everywhere.
    pub(crate) fn add_secret(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        for form in [
            secret.to_string(),
            percent_encode(secret, false),
            percent_encode(secret, true),
        ] {
            if !self.secrets.contains(&form) {
                self.secrets.push(form);
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        let text = mask_userinfo(&text);
        let text = mask_parameters(&text);
        let text = mask_json_members(&text);
        mask_header_lines(&text)
    }
}

/// Whether a query, form or JSON member name holds a credential. Names are
/// compared lowercased and without `-` and `_`, so `access_token`,
/// `X-Amz-Signature` and `client-secret` all count.
pub(crate) fn is_sensitive_name(name: &str) -> bool {
    let name = normalise(name);
    ["key", "sig", "pwd"].contains(&name.as_str())
        || [
            "token",
            "password",
            "passwd",
            "secret",
            "apikey",
            "signature",
            "authorization",
        ]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

/// Whether a header's value is a credential: the sensitive names above,
/// `Cookie`, and names ending in `key` (`X-Api-Key`, `Subscription-Key`).
pub(crate) fn is_sensitive_header(name: &str) -> bool {
    let normalised = normalise(name);
    is_sensitive_name(name)
        || normalised.ends_with("key")
        || normalised == "cookie"
        || normalised == "setcookie"
}

fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Percent-encodes all but RFC 3986's unreserved characters, as URL and form
/// encoders do; `plus_for_space` gives the form flavour.
fn percent_encode(text: &str, plus_for_space: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            b' ' if plus_for_space => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Characters that end a URL, a parameter value or a name in running text.
fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`')
}

/// `scheme://user:password@host` becomes `scheme://user:***@host`.
fn mask_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, after) = rest.split_at(at + 3);
        out.push_str(head);
        let end = after
            .find(|c: char| ends_token(c) || matches!(c, '/' | '?' | '#'))
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@').and_then(|at_sign| {
            let colon = authority[..at_sign].find(':')?;
            Some((colon, at_sign))
        }) {
            Some((colon, at_sign)) => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at_sign..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Where the run of name characters that ends at byte `end` starts.
fn name_start(text: &str, end: usize) -> usize {
    let head = &text[..end];
    head.char_indices()
        .rev()
        .find(|&(_, c)| !is_name_char(c))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// Whether a sensitive name ends right before byte `end` of `text`, starting
/// at a boundary: the start, whitespace, or one of `boundaries`.
fn sensitive_name_before(text: &str, end: usize, boundaries: &[char]) -> bool {
    let start = name_start(text, end);
    let name = &text[start..end];
    !name.is_empty()
        && is_sensitive_name(name)
        && text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || boundaries.contains(&c))
}

/// `?token=abc&x=1` becomes `?token=***&x=1`; form bodies alike.
fn mask_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest_start = 0;
    let mut search_from = 0;
    while let Some(offset) = text[search_from..].find('=') {
        let equals = search_from + offset;
        search_from = equals + 1;
        if !sensitive_name_before(
            text,
            equals,
            &['?', '&', ';', '(', '[', '{', ',', '"', '\''],
        ) {
            continue;
        }
        let value_start = equals + 1;
        let value_end = text[value_start..]
            .find(|c: char| ends_token(c) || matches!(c, '&' | '#' | ';' | ')' | ']' | '}' | ','))
            .map_or(text.len(), |i| value_start + i);
        let value = &text[value_start..value_end];
        if value.is_empty() || value == MASK {
            continue;
        }
        out.push_str(&text[rest_start..value_start]);
        out.push_str(MASK);
        rest_start = value_end;
        search_from = value_end;
    }
    out.push_str(&text[rest_start..]);
    out
}

/// `"access_token": "abc"` becomes `"access_token": "***"`: token endpoints
/// and error pages answer in JSON.
fn mask_json_members(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest_start = 0;
    let mut search_from = 0;
    while let Some(offset) = text[search_from..].find("\":") {
        let quote = search_from + offset;
        search_from = quote + 2;
        // Only a quoted name: `"token":`.
        if !sensitive_name_before(text, quote, &['"'])
            || !text[..name_start(text, quote)].ends_with('"')
        {
            continue;
        }
        let after = &text[quote + 2..];
        let value_offset = after.len() - after.trim_start().len();
        let value_start = quote + 2 + value_offset;
        if !text[value_start..].starts_with('"') {
            continue;
        }
        let content_start = value_start + 1;
        let mut escaped = false;
        let mut content_end = text.len();
        for (i, c) in text[content_start..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    content_end = content_start + i;
                    break;
                }
                _ => {}
            }
        }
        if &text[content_start..content_end] == MASK {
            continue;
        }
        out.push_str(&text[rest_start..content_start]);
        out.push_str(MASK);
        rest_start = content_end;
        search_from = content_end;
    }
    out.push_str(&text[rest_start..]);
    out
}

/// `Authorization: Bearer abc` becomes `Authorization: ***`, to the end of
/// the line, for credential headers written as a header line.
fn mask_header_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest_start = 0;
    let mut search_from = 0;
    while let Some(offset) = text[search_from..].find(':') {
        let colon = search_from + offset;
        search_from = colon + 1;
        let start = name_start(text, colon);
        let name = &text[start..colon];
        let at_boundary = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || matches!(c, '{' | ','));
        // Header-shaped names only, so that prose such as "invalid token:
        // expired" keeps its explanation.
        let header_shaped =
            name.contains('-') || ["authorization", "cookie"].contains(&normalise(name).as_str());
        if !at_boundary || !header_shaped || !is_sensitive_header(name) {
            continue;
        }
        let after = &text[colon + 1..];
        let value_start = colon + 1 + (after.len() - after.trim_start_matches([' ', '\t']).len());
        let value_end = text[value_start..]
            .find(['\r', '\n'])
            .map_or(text.len(), |i| value_start + i);
        let value = &text[value_start..value_end];
        if value.is_empty() || value == MASK || value.starts_with('/') {
            // `key://...` is a URL scheme, not a header.
            continue;
        }
        out.push_str(&text[rest_start..value_start]);
        out.push_str(MASK);
        rest_start = value_end;
        search_from = value_end;
    }
    out.push_str(&text[rest_start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        let mut redactor = Redactor::default();
        for secret in secrets {
            redactor.add_secret(secret);
        }
        redactor
    }

    #[test]
    fn registered_secrets_are_masked_raw_and_encoded() {
        let r = redactor(&["p@ss word"]);
        assert_eq!(r.redact("login p@ss word failed"), "login *** failed");
        assert_eq!(r.redact("/x?pw=p%40ss%20word"), "/x?pw=***");
        assert_eq!(r.redact("user=me&x=p%40ss+word"), "user=me&x=***");
    }

    #[test]
    fn empty_secret_masks_nothing() {
        assert_eq!(redactor(&[""]).redact("plain"), "plain");
    }

    #[test]
    fn longer_secret_wins_over_the_one_it_contains() {
        let r = redactor(&["abc", "abcdef"]);
        assert_eq!(r.redact("x abcdef y"), "x *** y");
    }

    #[test]
    fn userinfo_password_is_masked() {
        let r = Redactor::default();
        assert_eq!(
            r.redact("GET https://alice:s3cr%40t@example.org/path?q=1 failed"),
            "GET https://alice:***@example.org/path?q=1 failed"
        );
        assert_eq!(
            r.redact("https://alice@example.org/"),
            "https://alice@example.org/"
        );
        assert_eq!(
            r.redact("http://example.org:8080/a"),
            "http://example.org:8080/a"
        );
    }

    #[test]
    fn sensitive_query_parameters_are_masked() {
        let r = Redactor::default();
        assert_eq!(
            r.redact("https://h/p?Token=abc&page=2&API_KEY=k1#frag"),
            "https://h/p?Token=***&page=2&API_KEY=***#frag"
        );
        assert_eq!(
            r.redact("https://h/p?x-amz-signature=f00&sig=x&monkey=banana"),
            "https://h/p?x-amz-signature=***&sig=***&monkey=banana"
        );
        assert_eq!(
            r.redact("grant_type=password&username=me&password=hunter2"),
            "grant_type=password&username=me&password=***"
        );
        assert_eq!(r.redact("(refresh_token=abc)"), "(refresh_token=***)");
    }

    #[test]
    fn sensitive_json_members_are_masked() {
        let r = Redactor::default();
        assert_eq!(
            r.redact(r#"{"access_token": "a\"b", "expires_in": 3600, "name": "x"}"#),
            r#"{"access_token": "***", "expires_in": 3600, "name": "x"}"#
        );
        assert_eq!(
            r.redact(r#"{"authorization":"Bearer abc"}"#),
            r#"{"authorization":"***"}"#
        );
    }

    #[test]
    fn credential_header_lines_are_masked() {
        let r = Redactor::default();
        assert_eq!(
            r.redact("Authorization: Bearer abc\r\nAccept: */*"),
            "Authorization: ***\r\nAccept: */*"
        );
        assert_eq!(
            r.redact("proxy-authorization:Basic Zm9v"),
            "proxy-authorization:***"
        );
        assert_eq!(r.redact("X-Api-Key: k"), "X-Api-Key: ***");
    }

    #[test]
    fn prose_about_credentials_is_left_alone() {
        let r = Redactor::default();
        let text = "401 Unauthorized: invalid token: the token has expired; key: see docs";
        assert_eq!(r.redact(text), text);
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let r = Redactor::default();
        let text = "GET https://example.org/stac/search?limit=10&bbox=1,2,3,4: 404 Not Found: key \"id\" missing";
        assert_eq!(r.redact(text), text);
    }

    #[test]
    fn non_ascii_text_survives() {
        let r = redactor(&["ü"]);
        assert_eq!(r.redact("ä ü ö ?token=é&x=ß"), "ä *** ö ?token=***&x=ß");
    }
}
