//! The catalogue's storage failing under a run: a full disk and a read-only
//! database end the run with a clear error, and leave what was committed
//! whole.
//!
//! SQLite only: both are about the catalogue file on the machine that runs
//! muninn-sync (its size limit, its permissions, the lock file beside it).
//! A PostgreSQL server's disk is not the client's; its read-only database
//! is tested in postgresql.rs.

use muninn_sync_e2e::{binary, product, Archive, Run};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Runs muninn-sync in the archive with `prepare` applied to the child
/// between fork and exec.
fn sync_with(
    program: &std::path::Path,
    archive: &Archive,
    args: &[&str],
    prepare: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) -> Run {
    let mut command = Command::new(program);
    command
        .current_dir(archive.dir.path())
        .arg("archive.toml")
        .args(args)
        .env_remove("MUNINN_CONFIG_PATH")
        .env_remove("MUNINN_SYNC_PLUGIN_PATH");
    // SAFETY: the closure only calls async-signal-safe libc functions.
    unsafe {
        command.pre_exec(prepare);
    }
    let output = command.output().expect("run muninn-sync");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn feed(count: usize) -> Vec<serde_json::Value> {
    (0..count)
        .map(|i| {
            let mut line = product(
                "T",
                &format!("P{i:05}"),
                &format!(
                    "2024-01-01T{:02}:{:02}:{:02}Z",
                    i / 3600,
                    i / 60 % 60,
                    i % 60
                ),
            );
            // Bulky enough to outgrow the file size limit below quickly.
            line["namespaces"]["eo"]["note"] = serde_json::json!("x".repeat(400));
            line
        })
        .collect()
}

#[test]
fn a_full_disk_ends_the_run_clearly_and_keeps_what_was_committed() {
    let archive = Archive::with_feed();
    archive.write_feed("feed.jsonl", &feed(200));
    archive.sync(&["feed"]).assert_ok();
    let before = archive.strings("SELECT uuid || product_name || size FROM core ORDER BY uuid");
    let size = std::fs::metadata(archive.path("catalogue.sqlite"))
        .unwrap()
        .len();

    archive.write_feed("feed.jsonl", &feed(3000));
    // The file system's limit, as a full disk would set it: writes past it
    // fail (SIGXFSZ ignored, so they fail rather than kill).
    let limit = size + 256 * 1024;
    let full = sync_with(binary(), &archive, &["feed"], move || {
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    });
    full.assert_error(
        1,
        &[
            "synchronizer \"feed\"",
            "the catalogue's disk failed a write",
            "rolled back",
        ],
    );
    assert!(
        full.stderr.contains("sync of \"feed\" failed"),
        "{}",
        full.stderr
    );

    assert_eq!(archive.strings("PRAGMA integrity_check"), ["ok"]);
    let after: Vec<String> = archive.strings(
        "SELECT uuid || product_name || size FROM core WHERE product_name < 'P00200' ORDER BY uuid",
    );
    assert_eq!(after, before, "the products committed before are untouched");
    let partial =
        archive.count("SELECT count(*) FROM core LEFT JOIN eo USING (uuid) WHERE eo.uuid IS NULL");
    assert_eq!(partial, 0);

    // Space again: the same command finishes the job.
    archive.sync(&["feed"]).assert_ok();
    assert_eq!(archive.count("SELECT count(*) FROM core"), 3000);
    assert_eq!(archive.strings("PRAGMA integrity_check"), ["ok"]);
}

#[test]
fn a_read_only_catalogue_is_refused_by_name_and_left_alone() {
    let archive = Archive::with_feed();
    archive.write_feed("feed.jsonl", &feed(5));
    archive.sync(&["feed"]).assert_ok();
    archive.write_feed("feed.jsonl", &feed(10));
    let db = archive.path("catalogue.sqlite");
    let content = std::fs::read(&db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    // The directory stays writable (the lock file lives there); root ignores
    // file permissions, so as root the run drops to an unprivileged user.
    std::fs::set_permissions(archive.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let as_root = unsafe { libc::geteuid() } == 0;
    let program = if as_root {
        // The unprivileged user may not reach the build directory: it gets
        // its own copy of the binary and the plugin beside it.
        for file in ["muninn-sync", "libjsonl.so"] {
            let copy = archive.path(file);
            std::fs::copy(binary().with_file_name(file), &copy).unwrap();
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        archive.path("muninn-sync")
    } else {
        binary().to_path_buf()
    };
    let refused = sync_with(&program, &archive, &["feed"], move || {
        if as_root && unsafe { libc::setgid(65534) != 0 || libc::setuid(65534) != 0 } {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    });
    refused.assert_error(
        1,
        &["catalogue database", "catalogue.sqlite", "is read-only"],
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        content,
        "the catalogue is unchanged"
    );
}
