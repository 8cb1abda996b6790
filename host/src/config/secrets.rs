//! Credentials in a configuration file, and keeping them out of messages:
//! an error about a value under `headers`, or under a key that looks like
//! a credential, names the file, section and key but never shows the
//! value. Error lines end up in cron mail, CI logs and bug reports.

/// What a value is shown as instead.
pub const MASK: &str = "***";

/// Whether a key names a credential: compared lowercased and without `-`,
/// `_` and `.`, so `api_key`, `X-Api-Key`, `access_token`, `client-secret`,
/// `Authorization`, `password` and `credentials` all count. Broad on
/// purpose: a value hidden needlessly costs an error its detail, a value
/// shown wrongly costs a credential.
pub fn is_credential_key(key: &str) -> bool {
    let key: String = key
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    [
        "token",
        "passw",
        "passphrase",
        "pwd",
        "secret",
        "key",
        "auth",
        "credential",
        "cookie",
        "signature",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// Whether everything under this key is a credential: a table of HTTP
/// headers (which carries `Authorization` and API keys under any name) or
/// a credential key.
pub fn holds_credentials(key: &str) -> bool {
    key.eq_ignore_ascii_case("headers") || is_credential_key(key)
}

/// Sections whose every value is taken for a credential: muninn's
/// `[postgresql]`, whose `connection_string` may hold a password
/// (`password=...`, or a URL's `user:password@`), and whose other keys
/// are not worth telling apart.
const CREDENTIAL_SECTIONS: [&str; 1] = ["postgresql"];

/// Whether a value of `key` in the INI section `section` is a credential:
/// `[synchronizer:x.headers]` holds nothing else, nor does a table under a
/// credential key, nor `[postgresql]`.
pub fn is_credential_in_section(section: &str, key: &str) -> bool {
    if CREDENTIAL_SECTIONS.contains(&section) {
        return true;
    }
    let tables = section.split_once('.').map_or("", |(_, tables)| tables);
    holds_credentials(key) || tables.split('.').any(holds_credentials)
}

/// Whether a line of a file may show a credential: by the words in it, or
/// a URL with a password (`scheme://user:password@host`).
pub fn may_show_credential(line: &str) -> bool {
    line.split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_')))
        .any(holds_credentials)
        || has_url_password(line)
}

/// Whether a text holds `://user:password@`.
fn has_url_password(text: &str) -> bool {
    text.match_indices("://").any(|(at, _)| {
        let rest = &text[at + 3..];
        let userinfo = rest.rfind('@').map_or("", |end| &rest[..end]);
        userinfo.contains(':')
    })
}

/// The credential values of one synchronizer's section, to mask in any
/// message about it: what a plugin says of its configuration comes back as
/// text the host did not write (serde's `invalid type: string "Bearer …"`).
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Longest first, so that a value containing another is masked whole.
    values: Vec<String>,
}

impl Secrets {
    /// The values under `headers` and under credential keys, at any depth.
    pub fn of_section(section: &toml::Table) -> Secrets {
        let mut secrets = Secrets::default();
        for (key, value) in section {
            secrets.walk(value, holds_credentials(key));
        }
        secrets
            .values
            .sort_by_key(|value| std::cmp::Reverse(value.len()));
        secrets.values.dedup();
        secrets
    }

    fn walk(&mut self, value: &toml::Value, secret: bool) {
        let text = match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    self.walk(value, secret || holds_credentials(key));
                }
                return;
            }
            toml::Value::Array(items) => {
                for item in items {
                    self.walk(item, secret);
                }
                return;
            }
            // `true` is no secret worth hiding every "true" of a message for.
            toml::Value::Boolean(_) => return,
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Float(number) => number.to_string(),
            toml::Value::Datetime(time) => time.to_string(),
        };
        if secret && !text.is_empty() {
            self.values.push(text);
        }
    }

    /// `text` with every credential value masked: quoted as serde and
    /// messages quote values (`"v"` with Rust's escapes or without, `` `v` ``,
    /// `'v'`), and bare when it is long enough not to be a common word's
    /// part.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for value in &self.values {
            for (quoted, masked) in [
                (format!("{value:?}"), format!("\"{MASK}\"")),
                (format!("\"{value}\""), format!("\"{MASK}\"")),
                (format!("`{value}`"), format!("`{MASK}`")),
                (format!("'{value}'"), format!("'{MASK}'")),
            ] {
                if text.contains(&quoted) {
                    text = text.replace(&quoted, &masked);
                }
            }
            if value.chars().count() >= 4 && text.contains(value.as_str()) {
                text = text.replace(value.as_str(), MASK);
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_keys_are_told_by_their_words() {
        for key in [
            "token",
            "access_token",
            "password",
            "Passwd",
            "client-secret",
            "api_key",
            "X-Api-Key",
            "Authorization",
            "auth",
            "credentials",
            "Cookie",
            "headers",
        ] {
            assert!(holds_credentials(key), "{key}");
        }
        for key in ["url", "page_size", "collections", "path", "http", "user"] {
            assert!(!holds_credentials(key), "{key}");
        }
        assert!(is_credential_in_section("synchronizer:s.headers", "accept"));
        assert!(is_credential_in_section("synchronizer:s.http.headers", "x"));
        assert!(is_credential_in_section("synchronizer:s.http", "password"));
        assert!(!is_credential_in_section("synchronizer:s.http", "timeout"));
        // The synchronizer's own name is no table of credentials.
        assert!(!is_credential_in_section("synchronizer:tokens", "url"));
        assert!(may_show_credential("Authorization Bearer x"));
        assert!(!may_show_credential("just some words"));
        // A URL with a password, or any line of [postgresql].
        assert!(may_show_credential(
            "postgresql://muninn:hunter2@db/archive"
        ));
        assert!(may_show_credential("x = https://a:b@example.org"));
        assert!(!may_show_credential("postgresql://muninn@db/archive"));
        assert!(!may_show_credential("https://example.org/a:b"));
        assert!(is_credential_in_section("postgresql", "connection_string"));
        assert!(is_credential_in_section("postgresql", "table_prefix"));
        assert!(!is_credential_in_section("sqlite", "connection_string"));
    }

    #[test]
    fn values_under_credential_keys_are_masked_in_any_quoting() {
        let section: toml::Table = toml::from_str(
            r#"
url = "https://example.org/stac"
headers = "Bearer s3cr3t"
page_size = 100
[http]
timeout = 30
password = "a\"b"
[http.headers]
X-Api-Key = 31415926535
Accept = "json"
[auth]
user = "someone"
"#,
        )
        .unwrap();
        let secrets = Secrets::of_section(&section);
        assert_eq!(
            secrets
                .redact(r#"key "headers": invalid type: string "Bearer s3cr3t", expected a map"#),
            r#"key "headers": invalid type: string "***", expected a map"#
        );
        assert_eq!(
            secrets.redact("key \"http.headers.X-Api-Key\": invalid type: integer `31415926535`, expected a string"),
            "key \"http.headers.X-Api-Key\": invalid type: integer `***`, expected a string"
        );
        assert_eq!(
            secrets.redact(r#"bad "a\"b", bad a"b, user someone, 'json'"#),
            r#"bad "***", bad a"b, user ***, '***'"#
        );
        // What is not a credential is left alone.
        assert_eq!(
            secrets.redact("https://example.org/stac: page_size 100, timeout 30"),
            "https://example.org/stac: page_size 100, timeout 30"
        );
    }
}
