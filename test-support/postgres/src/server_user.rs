//! Who runs the server: PostgreSQL refuses to run as root, and the test
//! machines run the tests as root, so a root test process hands initdb and
//! postgres to an unprivileged user.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The environment variable that names the user to run the server as when
/// the tests run as root; `nobody` otherwise.
const USER_VARIABLE: &str = "MUNINN_SYNC_TEST_PG_USER";

/// An unprivileged account from /etc/passwd.
pub(crate) struct ServerUser {
    uid: u32,
    gid: u32,
}

impl ServerUser {
    /// `None` when the test process is not root (the server then runs as
    /// the tester, as PostgreSQL wants); otherwise `$MUNINN_SYNC_TEST_PG_USER`
    /// or `nobody`, read from /etc/passwd.
    pub(crate) fn for_this_process() -> Result<Option<Self>> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        let name = std::env::var(USER_VARIABLE).unwrap_or_else(|_| "nobody".to_owned());
        let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
        let Some(user) = passwd
            .lines()
            .find_map(|line| parse_passwd_line(line, &name))
        else {
            bail!(
                "the tests run as root, which PostgreSQL refuses, and there is no user {name:?} in \
                 /etc/passwd to run the test server as; set {USER_VARIABLE} to an unprivileged user"
            );
        };
        if user.uid == 0 {
            bail!("{USER_VARIABLE}={name:?} is root, which PostgreSQL refuses to run as");
        }
        Ok(Some(user))
    }

    /// Makes `command` run as this user, with no supplementary groups.
    pub(crate) fn apply(&self, command: &mut Command) {
        command.uid(self.uid).gid(self.gid);
    }

    /// Gives `path` to this user: initdb and the server write there.
    pub(crate) fn take(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("giving {} to uid {}", path.display(), self.uid))
    }
}

fn parse_passwd_line(line: &str, name: &str) -> Option<ServerUser> {
    let mut fields = line.split(':');
    if fields.next()? != name {
        return None;
    }
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some(ServerUser { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::parse_passwd_line;

    #[test]
    fn reads_uid_and_gid_of_the_named_user_only() {
        let line = "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin";
        let user = parse_passwd_line(line, "nobody").expect("nobody's line");
        assert_eq!((user.uid, user.gid), (65534, 65534));
        assert!(parse_passwd_line(line, "nobod").is_none());
        assert!(parse_passwd_line("broken", "broken").is_none());
    }
}
