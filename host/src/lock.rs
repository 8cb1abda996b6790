//! One run of a synchronizer at a time per archive.
//!
//! The lock is an advisory lock (`flock`) on a file beside the catalogue
//! database, one file per synchronizer, so different synchronizers of an
//! archive run side by side. The kernel drops the lock when its process
//! ends, however it ends, so a lock left by a killed run is taken over by
//! the next one; the file's text (pid, start time, host) only serves to name
//! the holder in messages, and is cleared when a run ends normally.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long to wait for a running run to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Give up at once (the default).
    No,
    /// Wait this long, then give up.
    UpTo(Duration),
    /// Wait until the lock is free.
    Forever,
}

/// Who holds a lock, as its file tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub started: Option<String>,
    pub host: Option<String>,
}

impl Holder {
    fn read(text: &str) -> Holder {
        let mut holder = Holder::default();
        for (key, value) in text.split_whitespace().filter_map(|w| w.split_once('=')) {
            match key {
                "pid" => holder.pid = value.parse().ok(),
                "started" => holder.started = Some(value.to_string()),
                "host" => holder.host = Some(value.to_string()),
                _ => {}
            }
        }
        holder
    }

    /// "pid 1234 on host x, started 2026-…", or what of it is known.
    pub fn describe(&self) -> String {
        let mut text = match self.pid {
            Some(pid) => format!("pid {pid}"),
            None => "a process that has not written its pid yet".to_string(),
        };
        if let Some(host) = &self.host {
            text.push_str(&format!(" on {host}"));
        }
        if let Some(started) = &self.started {
            text.push_str(&format!(", started {started}"));
        }
        text
    }
}

/// The lock of one synchronizer of one archive, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

/// Why a lock could not be taken.
#[derive(Debug)]
pub struct Busy {
    pub path: PathBuf,
    pub holder: Holder,
}

/// The lock file of `synchronizer` for the catalogue `database`:
/// `<database>.<synchronizer>.sync-lock`, with characters that do not belong
/// in a file name replaced, beside the database file itself: every path to
/// one catalogue (a symlink, another relative path from a configuration
/// elsewhere) meets one lock, as they all write one file.
pub fn lock_path(database: &Path, synchronizer: &str) -> PathBuf {
    let database = canonical(database);
    let safe: String = synchronizer
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{safe}.sync-lock"));
    database.with_file_name(name)
}

/// The database's canonical path: the file's when it exists, else its
/// directory's with the file name, as the first run creates the file
/// there. A directory that does not exist leaves the path as given (the
/// catalogue cannot be opened there either). A hard link is another name
/// the kernel does not tell apart: it gets its own lock.
fn canonical(database: &Path) -> PathBuf {
    if let Ok(path) = database.canonicalize() {
        return path;
    }
    let (Some(dir), Some(name)) = (database.parent(), database.file_name()) else {
        return database.to_path_buf();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    dir.canonicalize()
        .map_or_else(|_| database.to_path_buf(), |dir| dir.join(name))
}

impl RunLock {
    /// Takes the lock at `path`, waiting as `wait` says. On success the file
    /// names this process; `previous` is the holder a killed run left behind,
    /// if any.
    pub fn acquire(
        path: &Path,
        wait: Wait,
        host: &str,
    ) -> Result<std::result::Result<(RunLock, Option<Holder>), Busy>> {
        let mut file = open_lock_file(path)?;
        let began = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let give_up = match wait {
                        Wait::No => true,
                        Wait::UpTo(limit) => began.elapsed() >= limit,
                        Wait::Forever => false,
                    };
                    if give_up {
                        return Ok(Err(Busy {
                            path: path.to_path_buf(),
                            holder: Holder::read(&read_text(&mut file)),
                        }));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(TryLockError::Error(error)) => {
                    return Err(error).with_context(|| {
                        format!("cannot lock the run lock file \"{}\"", path.display())
                    })
                }
            }
        }
        let left = read_text(&mut file);
        let previous = (!left.trim().is_empty()).then(|| Holder::read(&left));
        let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let stamp = format!("pid={} started={started} host={host}\n", std::process::id());
        // A lock file that another user made may be read-only to us: the
        // lock still works, only the holder goes unnamed.
        if let Err(error) = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(stamp.as_bytes()))
            .and_then(|()| file.flush())
        {
            tracing::debug!(lock = %path.display(), %error, "cannot write this run's name into the lock file");
        }
        Ok(Ok((
            RunLock {
                file,
                path: path.to_path_buf(),
            },
            previous,
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lets go of the lock (as dropping it does).
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for RunLock {
    /// Clears the file's text, so that the next run knows this one ended
    /// without being killed, however it ended: a run that fails before it
    /// starts syncing drops its lock here too.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Opens (creating it if need be) the lock file; one that exists but is not
/// writable is opened for reading, which is enough to lock it.
fn open_lock_file(path: &Path) -> Result<File> {
    let writable = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path);
    match writable {
        Ok(file) => Ok(file),
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied && path.exists() => {
            File::open(path)
                .with_context(|| format!("cannot open the run lock file \"{}\"", path.display()))
        }
        Err(error) => Err(error).with_context(|| {
            format!(
                "cannot create the run lock file \"{}\" beside the catalogue database",
                path.display()
            )
        }),
    }
}

fn read_text(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut text));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_to_one_database_has_one_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("sub")).unwrap();
        std::os::unix::fs::symlink(&real, real.join("link")).unwrap();
        let expected = real.join("archive.sqlite.feed.sync-lock");
        // Before the first run creates the file, and after.
        for create in [false, true] {
            if create {
                std::fs::write(real.join("archive.sqlite"), "").unwrap();
                std::os::unix::fs::symlink("archive.sqlite", real.join("alias.sqlite")).unwrap();
                assert_eq!(lock_path(&real.join("alias.sqlite"), "feed"), expected);
            }
            for path in [
                real.join("archive.sqlite"),
                real.join("sub/../archive.sqlite"),
                real.join("link/archive.sqlite"),
            ] {
                assert_eq!(lock_path(&path, "feed"), expected, "{}", path.display());
            }
        }
        // Nowhere to canonicalize: the path as given.
        assert_eq!(
            lock_path(Path::new("/nonexistent/x.sqlite"), "feed"),
            Path::new("/nonexistent/x.sqlite.feed.sync-lock")
        );
    }

    #[test]
    fn a_second_taker_is_told_who_holds_the_lock_and_takes_it_over_once_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(&dir.path().join("archive.sqlite"), "cdse odata");
        assert_eq!(
            path.file_name().unwrap(),
            "archive.sqlite.cdse_odata.sync-lock"
        );
        let (first, previous) = RunLock::acquire(&path, Wait::No, "h").unwrap().unwrap();
        assert_eq!(previous, None);
        let busy = RunLock::acquire(&path, Wait::UpTo(Duration::from_millis(300)), "h")
            .unwrap()
            .unwrap_err();
        assert_eq!(busy.holder.pid, Some(std::process::id()));
        let started = busy.holder.started.clone().unwrap();
        assert_eq!(
            busy.holder.describe(),
            format!("pid {} on h, started {started}", std::process::id())
        );
        first.release();
        let (second, previous) = RunLock::acquire(&path, Wait::No, "h").unwrap().unwrap();
        assert_eq!(previous, None, "a released lock leaves no holder behind");
        drop(second);
        // A killed process leaves its text behind, and the kernel its lock.
        std::fs::write(&path, format!("pid=4242 started={started} host=h\n")).unwrap();
        let (_third, previous) = RunLock::acquire(&path, Wait::No, "h").unwrap().unwrap();
        let previous = previous.unwrap();
        assert_eq!(
            (previous.pid, previous.started),
            (Some(4242), Some(started))
        );
    }
}
