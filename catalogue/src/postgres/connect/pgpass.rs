//! libpq's password file (`~/.pgpass`, or `PGPASSFILE`, or the `passfile`
//! keyword), read by libpq's rules:
//!
//! - one `hostname:port:database:username:password` a line; the first line
//!   whose four fields match gives the password;
//! - a field written `*` matches anything; `\:` and `\\` stand for `:` and
//!   `\` (in the password too, which ends at an unescaped `:`);
//! - lines starting with `#` are comments; a line with fewer than five
//!   fields matches nothing;
//! - a connection over the default Unix socket directory (or with no host)
//!   is looked up as `localhost` (the caller passes that name);
//! - a file that is not a plain file, or that its group or others may
//!   read, write or run, is ignored with a warning: a password others can
//!   read is no secret.
//!
//! No crate on crates.io keeps these rules as libpq does (the rust-postgres
//! `passfile` pull request is still open), so they are written here.

use std::path::Path;

/// What the connection is looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key<'a> {
    /// The host as written (or `localhost` for the default socket).
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// A password file as found.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordFile {
    /// There is none (libpq says nothing either).
    Missing,
    /// It is there but not used, and why (libpq's warning).
    Ignored(String),
    /// Its text.
    Read(String),
}

impl std::fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordFile::Missing => f.write_str("Missing"),
            PasswordFile::Ignored(why) => f.debug_tuple("Ignored").field(why).finish(),
            PasswordFile::Read(_) => f.write_str("Read(..)"),
        }
    }
}

/// Reads the password file at `path` as libpq would use it.
pub fn read(path: &Path) -> PasswordFile {
    let shown = path.display();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return PasswordFile::Missing,
        Err(error) => {
            return PasswordFile::Ignored(format!(
                "password file \"{shown}\" cannot be read: {error}"
            ))
        }
    };
    if !metadata.is_file() {
        return PasswordFile::Ignored(format!("password file \"{shown}\" is not a plain file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            return PasswordFile::Ignored(format!(
                "password file \"{shown}\" has group or world access; permissions should be u=rw (0600) or less (chmod 0600 \"{shown}\")"
            ));
        }
    }
    match std::fs::read(path) {
        // libpq reads bytes; a password that is not UTF-8 could not be
        // sent by the postgres crate anyway, so such lines match nothing.
        Ok(bytes) => PasswordFile::Read(String::from_utf8_lossy(&bytes).into_owned()),
        Err(error) => {
            PasswordFile::Ignored(format!("password file \"{shown}\" cannot be read: {error}"))
        }
    }
}

/// The password of the first line of `text` that matches `key`.
pub fn find(text: &str, key: Key<'_>) -> Option<String> {
    let port = key.port.to_string();
    let wanted = [key.host, port.as_str(), key.dbname, key.user];
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .find_map(|line| {
            let fields = fields(line)?;
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, wanted)| field.any || field.text == wanted);
            matches.then(|| fields[4].text.clone())
        })
}

/// One field of a line: its text with escapes undone, and whether it was
/// written `*`.
struct Field {
    text: String,
    any: bool,
}

/// The five fields of a line, or `None` when it has fewer. The password
/// ends at an unescaped `:` as in libpq; anything after it is ignored.
fn fields(line: &str) -> Option<[Field; 5]> {
    let mut fields: Vec<Field> = Vec::with_capacity(5);
    let mut text = String::new();
    let mut raw = String::new();
    let mut chars = line.chars();
    let mut ended = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                raw.push(c);
                if let Some(escaped) = chars.next() {
                    raw.push(escaped);
                    text.push(escaped);
                }
            }
            ':' => {
                fields.push(Field {
                    any: raw == "*",
                    text: std::mem::take(&mut text),
                });
                raw.clear();
                if fields.len() == 5 {
                    ended = true;
                    break;
                }
            }
            c => {
                raw.push(c);
                text.push(c);
            }
        }
    }
    if !ended {
        // The password runs to the end of the line.
        fields.push(Field {
            any: raw == "*",
            text,
        });
    }
    fields.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(host: &'a str, port: u16, dbname: &'a str, user: &'a str) -> Key<'a> {
        Key {
            host,
            port,
            dbname,
            user,
        }
    }

    const FILE: &str = "\
# hostname:port:database:username:password
db.example.org:5432:archive:muninn:first
db.example.org:*:*:muninn:second
*:5433:*:*:third\\:with\\\\escapes:ignored
localhost:5432:archive:muninn:socket

not:enough:fields:here
we\\:ird:5432:*:*:escaped host\r
*:*:*:star\\*:literal star
";

    #[test]
    fn the_first_matching_line_gives_the_password() {
        let find = |k| find(FILE, k);
        assert_eq!(
            find(key("db.example.org", 5432, "archive", "muninn")).as_deref(),
            Some("first")
        );
        assert_eq!(
            find(key("db.example.org", 6000, "other", "muninn")).as_deref(),
            Some("second")
        );
        assert_eq!(
            find(key("elsewhere", 5433, "x", "y")).as_deref(),
            Some("third:with\\escapes")
        );
        assert_eq!(
            find(key("localhost", 5432, "archive", "muninn")).as_deref(),
            Some("socket")
        );
        assert_eq!(
            find(key("we:ird", 5432, "x", "y")).as_deref(),
            Some("escaped host")
        );
        assert_eq!(find(key("elsewhere", 5432, "archive", "muninn")), None);
        // `\*` is a literal star, not a wildcard.
        assert_eq!(
            find(key("h", 1, "d", "star*")).as_deref(),
            Some("literal star")
        );
        assert_eq!(find(key("h", 1, "d", "stars")), None);
        // A comment is never a line.
        assert_eq!(find(key("# hostname", 1, "d", "u")), None);
        assert_eq!(find(key("not", 1, "fields", "here")), None);
    }

    #[test]
    fn a_file_others_may_read_is_ignored_with_the_reason() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        assert_eq!(read(&path), PasswordFile::Missing);
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&path), PasswordFile::Read("*:*:*:*:secret\n".into()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let PasswordFile::Ignored(why) = read(&path) else {
            panic!("read a group-readable file");
        };
        assert!(
            why.contains("has group or world access") && why.contains("0600"),
            "{why}"
        );
        let PasswordFile::Ignored(why) = read(dir.path()) else {
            panic!("read a directory");
        };
        assert!(why.contains("is not a plain file"), "{why}");
        assert!(!format!("{:?}", PasswordFile::Read("secret".into())).contains("secret"));
    }
}
