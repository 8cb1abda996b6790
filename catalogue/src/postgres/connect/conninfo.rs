//! A connection string read as libpq reads one: `keyword=value` pairs
//! (values quoted `'...'` when they hold spaces, `\` escaping the next
//! character) or a `postgresql://` / `postgres://` URL
//! (`postgresql://user:password@host:port,host2:port2/dbname?keyword=value`,
//! percent-encoded). Which keywords are known, and what they mean, is
//! `settings`' business: this only splits the text, and remembers where
//! each value was written so that a password can be masked in place.
//!
//! Errors never quote a value: a stray word may be half of a password.

use std::fmt;
use std::ops::Range;

/// One `keyword=value` of the string, in the order written (a later one
/// wins, as in libpq).
#[derive(Clone, PartialEq, Eq)]
pub struct Param {
    pub keyword: String,
    pub value: String,
    /// Where the value is written in the string (quotes and escapes
    /// included), to mask it.
    pub span: Range<usize>,
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.keyword == "password" {
            "***"
        } else {
            &self.value
        };
        write!(f, "{}={value:?}", self.keyword)
    }
}

/// Why a connection string cannot be read; never quotes a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError(pub String);

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SyntaxError {}

fn error(message: impl Into<String>) -> SyntaxError {
    SyntaxError(message.into())
}

/// The URL schemes libpq takes.
const URL_PREFIXES: [&str; 2] = ["postgresql://", "postgres://"];

/// Whether the string is a URL rather than keywords.
pub fn is_url(text: &str) -> bool {
    URL_PREFIXES.iter().any(|prefix| text.starts_with(prefix))
}

/// Splits a connection string into its keywords and values.
pub fn parse(text: &str) -> Result<Vec<Param>, SyntaxError> {
    if is_url(text) {
        parse_url(text)
    } else {
        parse_keywords(text)
    }
}

/// The string with every password replaced by `***`, for messages and
/// `Debug`; a string that cannot be read is not shown at all.
pub fn masked(text: &str) -> String {
    match parse(text) {
        Ok(params) => {
            let mut spans: Vec<Range<usize>> = params
                .into_iter()
                .filter(|p| p.keyword == "password" && !p.span.is_empty())
                .map(|p| p.span)
                .collect();
            spans.sort_by_key(|span| std::cmp::Reverse(span.start));
            let mut shown = text.to_string();
            for span in spans {
                shown.replace_range(span, "***");
            }
            shown
        }
        Err(_) => "(not shown: the connection string cannot be read)".to_string(),
    }
}

/// libpq's `conninfo_parse`: `keyword = value` pairs separated by white
/// space, white space allowed around `=`.
fn parse_keywords(text: &str) -> Result<Vec<Param>, SyntaxError> {
    let mut params = Vec::new();
    let mut chars = text.char_indices().peekable();
    let skip_space = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while chars.next_if(|(_, c)| c.is_ascii_whitespace()).is_some() {}
    };
    loop {
        skip_space(&mut chars);
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut end = start;
        while let Some((at, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_ascii_whitespace()) {
            end = at + c.len_utf8();
        }
        let keyword = &text[start..end];
        skip_space(&mut chars);
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            // The word may be a piece of a password written with a space
            // and no quotes: it is not repeated.
            return Err(error(format!(
                "a word at character {} is not followed by \"=\" (write keyword=value, and quote a value holding spaces: password='...')",
                start + 1
            )));
        }
        skip_space(&mut chars);
        let value_start = chars.peek().map_or(text.len(), |&(at, _)| at);
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(error(format!(
                    "the quoted value of \"{keyword}\" has no closing quote"
                )));
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_ascii_whitespace()) {
                if c == '\\' {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        let value_end = chars.peek().map_or(text.len(), |&(at, _)| at);
        params.push(Param {
            keyword: keyword.to_string(),
            value,
            span: value_start..value_end.max(value_start),
        });
    }
    Ok(params)
}

/// Percent-decodes a piece of a URL, which must be UTF-8 once decoded.
fn decode(piece: &str, what: &str) -> Result<String, SyntaxError> {
    percent_encoding::percent_decode_str(piece)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| {
            error(format!(
                "the {what} in the URL is not UTF-8 once percent-decoded"
            ))
        })
}

/// libpq's `conninfo_uri_parse_options`.
fn parse_url(text: &str) -> Result<Vec<Param>, SyntaxError> {
    let prefix = URL_PREFIXES
        .iter()
        .find(|prefix| text.starts_with(*prefix))
        .expect("a URL");
    let base = prefix.len();
    let rest = &text[base..];
    let mut params = Vec::new();
    // The last '@' before the query ends the user information, so that a
    // password with an unencoded '@' or '/' is still masked whole (libpq
    // stops at the first '/'; a database name with '@' is written %40).
    let query_start = rest.find('?').unwrap_or(rest.len());
    let userinfo_end = rest[..query_start].rfind('@');
    let authority_end = userinfo_end.map_or(0, |at| at + 1)
        + rest[userinfo_end.map_or(0, |at| at + 1)..]
            .find(['/', '?'])
            .unwrap_or(rest.len() - userinfo_end.map_or(0, |at| at + 1));
    let authority = &rest[..authority_end];
    let hosts_start = match userinfo_end {
        Some(at) => {
            let userinfo = &authority[..at];
            let (user, password) = match userinfo.find(':') {
                Some(colon) => (&userinfo[..colon], Some(colon + 1..at)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.push(Param {
                    keyword: "user".into(),
                    value: decode(user, "user name")?,
                    span: base..base + user.len(),
                });
            }
            if let Some(range) = password {
                params.push(Param {
                    keyword: "password".into(),
                    value: decode(&userinfo[range.clone()], "password")?,
                    span: base + range.start..base + range.end,
                });
            }
            at + 1
        }
        None => 0,
    };
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    let host_list = &authority[hosts_start..];
    if !host_list.is_empty() {
        for entry in host_list.split(',') {
            let (host, port) = if let Some(inner) = entry.strip_prefix('[') {
                let close = inner.find(']').ok_or_else(|| {
                    error("an IPv6 address in the URL's host list has no closing ']'")
                })?;
                let after = &inner[close + 1..];
                let port = match after.strip_prefix(':') {
                    Some(port) => port,
                    None if after.is_empty() => "",
                    None => return Err(error(
                        "an IPv6 address in the URL's host list is followed by neither ':' nor ','",
                    )),
                };
                (&inner[..close], port)
            } else {
                match entry.rfind(':') {
                    Some(colon) => (&entry[..colon], &entry[colon + 1..]),
                    None => (entry, ""),
                }
            };
            hosts.push(decode(host, "host")?);
            ports.push(decode(port, "port")?);
        }
    }
    let span = base + hosts_start..base + authority_end;
    if hosts.iter().any(|h| !h.is_empty()) {
        params.push(Param {
            keyword: "host".into(),
            value: hosts.join(","),
            span: span.clone(),
        });
    }
    if ports.iter().any(|p| !p.is_empty()) {
        params.push(Param {
            keyword: "port".into(),
            value: ports.join(","),
            span,
        });
    }
    let after = &rest[authority_end..];
    let (path, query, query_at) = match after.find('?') {
        Some(q) => (&after[..q], Some(&after[q + 1..]), authority_end + q + 1),
        None => (after, None, rest.len()),
    };
    if let Some(dbname) = path.strip_prefix('/').filter(|d| !d.is_empty()) {
        let start = base + authority_end + 1;
        params.push(Param {
            keyword: "dbname".into(),
            value: decode(dbname, "database name")?,
            span: start..start + dbname.len(),
        });
    }
    if let Some(query) = query {
        let mut at = base + query_at;
        for pair in query.split('&') {
            let start = at;
            at += pair.len() + 1;
            if pair.is_empty() {
                continue;
            }
            let Some((keyword, value)) = pair.split_once('=') else {
                return Err(error(
                    "a parameter after '?' in the URL has no '=' (write ?keyword=value&keyword=value)",
                ));
            };
            let keyword = decode(keyword, "parameter name")?;
            let value_start = start + pair.len() - value.len();
            let value_span = value_start..value_start + value.len();
            let value = decode(value, "parameter value")?;
            // libpq's JDBC-style alias.
            let (keyword, value) = if keyword == "ssl" && value == "true" {
                ("sslmode".to_string(), "require".to_string())
            } else {
                (keyword, value)
            };
            params.push(Param {
                keyword,
                value,
                span: value_span,
            });
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.keyword, p.value))
            .collect()
    }

    fn owned(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keywords_are_read_as_libpq_reads_them() {
        assert_eq!(
            pairs("host=db.example.org dbname=archive user=muninn"),
            owned(&[
                ("host", "db.example.org"),
                ("dbname", "archive"),
                ("user", "muninn")
            ])
        );
        assert_eq!(
            pairs("  host = h\tuser=a\\ b  options='-c x=\\'y z\\''  "),
            owned(&[("host", "h"), ("user", "a b"), ("options", "-c x='y z'")])
        );
        assert_eq!(
            pairs("password='a b\\\\c' dbname=''"),
            owned(&[("password", "a b\\c"), ("dbname", "")])
        );
        assert_eq!(pairs(""), owned(&[]));
        assert_eq!(pairs("   "), owned(&[]));
    }

    #[test]
    fn syntax_errors_do_not_repeat_what_was_written() {
        let stray = parse("host=h password=my secret").unwrap_err().to_string();
        assert!(
            stray.contains("character 20") && !stray.contains("secret"),
            "{stray}"
        );
        let open = parse("password='hunter2").unwrap_err().to_string();
        assert!(
            open.contains("\"password\" has no closing quote") && !open.contains("hunter2"),
            "{open}"
        );
    }

    #[test]
    fn urls_are_read_as_libpq_reads_them() {
        assert_eq!(
            pairs("postgresql://muninn:s%40cret@db.example.org:5433/archive?sslmode=verify-full&application_name=x%20y"),
            owned(&[
                ("user", "muninn"),
                ("password", "s@cret"),
                ("host", "db.example.org"),
                ("port", "5433"),
                ("dbname", "archive"),
                ("sslmode", "verify-full"),
                ("application_name", "x y"),
            ])
        );
        assert_eq!(
            pairs("postgres://a,b:5433,[::1]:5434/db"),
            owned(&[
                ("host", "a,b,::1"),
                ("port", ",5433,5434"),
                ("dbname", "db")
            ])
        );
        assert_eq!(
            pairs("postgresql://%2Fvar%2Frun%2Fpostgresql/db"),
            owned(&[("host", "/var/run/postgresql"), ("dbname", "db")])
        );
        assert_eq!(
            pairs("postgresql:///db?host=/tmp&ssl=true"),
            owned(&[("dbname", "db"), ("host", "/tmp"), ("sslmode", "require")])
        );
        assert_eq!(pairs("postgresql://"), owned(&[]));
        assert_eq!(
            pairs("postgresql://u@h"),
            owned(&[("user", "u"), ("host", "h")])
        );
        let bad = parse("postgresql://h/db?password").unwrap_err().to_string();
        assert!(bad.contains("has no '='"), "{bad}");
    }

    #[test]
    fn passwords_are_masked_where_they_are_written() {
        assert_eq!(
            masked("host=h password=hunter2 user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(
            masked("password = 'a b c' user=u password=x"),
            "password = *** user=u password=***"
        );
        assert_eq!(
            masked("postgresql://u:hunter2@h/db?password=other&sslmode=require"),
            "postgresql://u:***@h/db?password=***&sslmode=require"
        );
        assert_eq!(
            masked("postgresql://u:p@ss:w@rd@h/db"),
            "postgresql://u:***@h/db"
        );
        assert_eq!(
            masked("postgresql://u:pa/ss@h/db?sslmode=require"),
            "postgresql://u:***@h/db?sslmode=require"
        );
        assert_eq!(masked("host=h user=u"), "host=h user=u");
        assert_eq!(masked("postgresql://u@h/db"), "postgresql://u@h/db");
        let unreadable = masked("host=h password='hunter2");
        assert!(!unreadable.contains("hunter2"), "{unreadable}");
    }
}
