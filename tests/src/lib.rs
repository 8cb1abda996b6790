//! Helpers for end-to-end tests that use muninn-sync as a user does: write an
//! archive configuration and a feed, run the real binary with the real
//! plugins, and look at the catalogue with SQL, on SQLite and on PostgreSQL
//! (one test body for both: [`on_both_backends!`]).

mod archive;
mod backend;
mod catalogue;
pub mod odata_server;
pub mod stac_server;

pub use archive::{Archive, BASE_CONFIG, FEED_SECTION};
pub use backend::Backend;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// The directory the binaries of this test's profile are in
/// (`target/debug` or `target/release`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Builds the muninn-sync binary and the built-in plugins once per test
/// process (cargo test builds neither a dependency's binary nor cdylibs for
/// this crate), and returns the binary's path.
pub fn binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let mut build = cargo();
        build.current_dir(workspace()).args([
            "build",
            "--quiet",
            "-p",
            "muninn-sync",
            "-p",
            "muninn-sync-jsonl",
            "-p",
            "muninn-sync-stac",
            "-p",
            "muninn-sync-odata",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of muninn-sync and its plugins failed"
        );
        dir.join("muninn-sync")
    })
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `ERROR: ` lines of stderr.
    pub fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("ERROR: "))
            .collect()
    }

    /// Asserts the run succeeded, showing its output when not.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "muninn-sync failed:\n{}", self.stderr);
        self
    }

    /// Asserts the run failed with `code` and one `ERROR:` line containing
    /// every one of `parts`.
    pub fn assert_error(&self, code: i32, parts: &[&str]) -> &Self {
        assert_eq!(self.code, code, "expected exit {code}:\n{}", self.stderr);
        if code == 1 {
            let errors = self.errors();
            assert_eq!(errors.len(), 1, "expected one ERROR line:\n{}", self.stderr);
            for part in parts {
                assert!(errors[0].contains(part), "{part:?} not in {:?}", errors[0]);
            }
        } else {
            for part in parts {
                assert!(
                    self.stderr.contains(part),
                    "{part:?} not in:\n{}",
                    self.stderr
                );
            }
        }
        self
    }
}

/// Runs muninn-sync with `args` in `dir`, with a clean environment for the
/// variables it reads.
pub fn muninn_sync(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(binary());
    command
        .current_dir(dir)
        .args(args)
        .env_remove("MUNINN_CONFIG_PATH")
        .env_remove("MUNINN_SYNC_PLUGIN_PATH");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run muninn-sync");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A product line for a jsonl feed.
pub fn product(product_type: &str, name: &str, modified: &str) -> serde_json::Value {
    serde_json::json!({
        "modified": modified,
        "product_type": product_type,
        "product_name": name,
        "physical_name": format!("{name}.SAFE"),
        "size": 1000,
        "hash": "md5:9e107d9d372bb6826bd81d3542a419d6",
        "validity_start": modified,
        "remote_url": format!("https://example.org/p/{name}"),
        "footprint": "POLYGON((5 52, 6 52, 6 53, 5 53, 5 52))",
        "namespaces": {"eo": {"cloud_cover": 12.5, "platform": "sentinel-2a"}}
    })
}

/// A deletion line for a jsonl feed.
pub fn deletion(product_type: &str, name: &str, modified: &str) -> serde_json::Value {
    serde_json::json!({"modified": modified, "product_type": product_type, "product_name": name, "deleted": true})
}

/// Builds a copy of `tests/fixtures/outside-plugin` against the plugin-api
/// in `plugin_api_dir`, outside this workspace, and returns the plugin file.
/// Builds share one target directory so dependencies compile once.
pub fn build_outside_plugin(work: &Path, plugin_api_dir: &Path) -> PathBuf {
    let crate_dir = work.join("outside-plugin");
    std::fs::create_dir_all(crate_dir.join("src")).expect("create the plugin crate");
    let fixture = workspace().join("tests/fixtures/outside-plugin");
    let manifest = std::fs::read_to_string(fixture.join("Cargo.toml"))
        .expect("read the fixture manifest")
        .replace(
            "../../../plugin-api",
            plugin_api_dir.to_str().expect("UTF-8 path"),
        );
    std::fs::write(crate_dir.join("Cargo.toml"), manifest).expect("write the manifest");
    std::fs::copy(fixture.join("src/lib.rs"), crate_dir.join("src/lib.rs"))
        .expect("copy the source");
    // The workspace's lock file pins the same dependency versions as the
    // workspace's build. Not offline: a machine that never built the
    // project has not downloaded them all (cargo fetches what is missing).
    std::fs::copy(workspace().join("Cargo.lock"), crate_dir.join("Cargo.lock"))
        .expect("copy Cargo.lock");
    let target = workspace().join("target/outside-plugins");
    let output = cargo()
        .current_dir(&crate_dir)
        .args(["build", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo build for the outside plugin");
    assert!(
        output.status.success(),
        "building the outside plugin failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = target.join("debug/liboutside_plugin.so");
    // Each build overwrites the same file: keep this one's copy apart.
    let kept = work.join("liboutside_plugin.so");
    std::fs::copy(&built, &kept).expect("copy the plugin");
    kept
}

/// The outside plugin (tests/fixtures/outside-plugin) built against this
/// repository's plugin-api, once per test process.
pub fn outside_plugin() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = BUILT.get_or_init(|| {
        let work = tempfile::tempdir().expect("temporary directory");
        let plugin = build_outside_plugin(work.path(), &workspace().join("plugin-api"));
        (work, plugin)
    });
    path
}

/// Copies a directory tree (no symlinks expected).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create directory");
    for entry in std::fs::read_dir(from).expect("list directory") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// A muninn-sync run going on in the background, as a cron job or a second
/// terminal starts one; killed if the test ends before it does.
pub struct Background {
    child: Option<std::process::Child>,
}

impl Background {
    pub(crate) fn new(child: std::process::Child) -> Background {
        Background { child: Some(child) }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the run is still ours").id()
    }

    /// Sends a signal as `kill -<signal> <pid>` does (`TERM`, `INT`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// `kill -9`: the process dies at once, without cleaning up.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("the run is still ours");
        child.kill().expect("kill -9");
        child.wait().expect("reap the killed run");
    }

    /// Waits for the run to end and returns what it printed.
    pub fn finish(mut self) -> Run {
        let output = self
            .child
            .take()
            .expect("the run is still ours")
            .wait_with_output()
            .expect("wait for muninn-sync");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `condition` every 50 ms until it holds; panics naming `what` after
/// `limit` (keep it generous: machines running tests are often busy).
pub fn wait_until(what: &str, limit: std::time::Duration, mut condition: impl FnMut() -> bool) {
    let began = std::time::Instant::now();
    while !condition() {
        assert!(
            began.elapsed() < limit,
            "gave up after {limit:?} waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
