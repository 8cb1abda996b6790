//! The test process's own directory (data directory, socket, server log),
//! and the removal of those that killed test processes left behind.
//!
//! A directory is named for the process that made it, by process id and
//! start time (a process id alone is reused), under
//! `$TMPDIR/muninn-sync-test-postgres-<euid>/`. A process that exits
//! normally removes its own (see `server::stop_at_exit`); one that was
//! killed cannot, so every start removes those whose process is gone and
//! whose server is gone too. A directory whose server still runs is left
//! alone: no test touches a server it did not start.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::server_user::ServerUser;

/// One test process's directory.
pub(crate) struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Makes this process's directory (emptied, if an earlier start in this
    /// process failed half-way), given to the server's user, after removing
    /// those of dead processes.
    pub(crate) fn create(user: Option<&ServerUser>) -> Result<Self> {
        let base = base_dir()?;
        remove_stale(&base);
        let me = std::process::id();
        let started = start_time(me).context("reading this process's start time from /proc")?;
        let path = base.join(format!("{me}-{started}"));
        if path.exists() {
            fs::remove_dir_all(&path)
                .with_context(|| format!("removing {} left by a failed start", path.display()))?;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        if let Some(user) = user {
            user.take(&path)?;
        }
        Ok(RunDir { path })
    }

    /// The directory itself; also the server's Unix socket directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The cluster's data directory (made by initdb).
    pub(crate) fn data(&self) -> PathBuf {
        self.path.join("data")
    }

    /// The server's standard output and error.
    pub(crate) fn log(&self) -> PathBuf {
        self.path.join("postgres.log")
    }
}

/// `$TMPDIR/muninn-sync-test-postgres-<euid>`: one per user, so that a
/// directory another user made in /tmp is never ours to use or clean.
fn base_dir() -> Result<PathBuf> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let base = std::env::temp_dir().join(format!("muninn-sync-test-postgres-{euid}"));
    // 0755: the server's user (nobody, when the tests run as root) must be
    // able to reach its directory inside.
    match fs::DirBuilder::new().mode(0o755).create(&base) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => {
            return Err(error).with_context(|| format!("creating {}", base.display()));
        }
    }
    let owner = fs::symlink_metadata(&base)
        .with_context(|| format!("reading {}", base.display()))?
        .uid();
    if owner != euid {
        bail!(
            "{} belongs to uid {owner}, not to this user (uid {euid}); remove it or set TMPDIR",
            base.display()
        );
    }
    Ok(base)
}

/// Removes the directories under `base` whose process and server are both
/// gone. Best effort: a directory that cannot be removed now is tried again
/// at the next start.
fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, started)) = name.to_str().and_then(parse_dir_name) else {
            continue;
        };
        if start_time(pid) == Some(started) {
            continue;
        }
        if server_running(&entry.path().join("data")) {
            continue;
        }
        let _ = fs::remove_dir_all(entry.path());
    }
}

fn parse_dir_name(name: &str) -> Option<(u32, u64)> {
    let (pid, started) = name.split_once('-')?;
    Some((pid.parse().ok()?, started.parse().ok()?))
}

/// The start time of process `pid` in clock ticks since boot (field 22 of
/// /proc/<pid>/stat), which tells it from a later process given the same id;
/// `None` when there is no such process, or only its zombie.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether the postmaster named in `data`'s postmaster.pid is still running.
fn server_running(data: &Path) -> bool {
    let Ok(lock) = fs::read_to_string(data.join("postmaster.pid")) else {
        return false;
    };
    let Some(pid) = lock
        .lines()
        .next()
        .and_then(|line| line.trim().parse::<u32>().ok())
    else {
        return false;
    };
    start_time(pid).is_some()
        && fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim() == "postgres")
}

#[cfg(test)]
mod tests {
    use super::{parse_dir_name, start_time};

    #[test]
    fn directory_names_are_pid_and_start_time() {
        assert_eq!(parse_dir_name("1234-5678"), Some((1234, 5678)));
        assert_eq!(parse_dir_name("1234"), None);
        assert_eq!(parse_dir_name("x-5678"), None);
    }

    #[test]
    fn this_process_has_a_start_time() {
        assert!(start_time(std::process::id()).is_some());
    }
}
