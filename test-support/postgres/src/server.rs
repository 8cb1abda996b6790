//! The server process: initdb, then `postgres` started directly as a child
//! of the test process (not daemonised by pg_ctl), so that it cannot outlive
//! it, on a free port of 127.0.0.1.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::binaries::Binaries;
use crate::run_dir::RunDir;
use crate::server_user::ServerUser;

/// The cluster's superuser: initdb's `-U`, trusted on 127.0.0.1.
pub(crate) const SUPERUSER: &str = "postgres";

/// The group whose members must give a password (scram-sha-256); every other
/// role is trusted. `Cluster::create_role` puts its roles in it.
pub(crate) const PASSWORD_GROUP: &str = "password_login";

/// How long the server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest Unix socket path (sun_path holds 108 bytes with its NUL); past
/// it the server listens on TCP only.
const MAX_SOCKET_PATH: usize = 100;

/// Runs initdb into `run_dir`'s data directory: superuser `postgres`, UTF-8
/// in the C locale (no dependence on the machine's locales), no fsync.
pub(crate) fn initdb(
    binaries: &Binaries,
    run_dir: &RunDir,
    user: Option<&ServerUser>,
) -> Result<()> {
    let mut command = Command::new(&binaries.initdb);
    command
        .arg("--pgdata")
        .arg(run_dir.data())
        .args([
            "--username",
            SUPERUSER,
            "--encoding",
            "UTF8",
            "--locale",
            "C",
        ])
        .args(["--auth", "trust", "--no-sync", "--no-instructions"]);
    prepare(&mut command, run_dir, user);
    let output = command
        .output()
        .with_context(|| format!("running {}", binaries.initdb.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}):\n{}{}",
            binaries.initdb.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    write_hba(&run_dir.data())
}

/// Trust for everyone on 127.0.0.1 and the socket, except the members of
/// [`PASSWORD_GROUP`], who must give their password: the first matching
/// line decides.
fn write_hba(data: &Path) -> Result<()> {
    let hba = data.join("pg_hba.conf");
    let text = format!(
        "# Written by muninn-sync-test-postgres: the first matching line decides.\n\
         local all +{PASSWORD_GROUP}              scram-sha-256\n\
         local all all                            trust\n\
         host  all +{PASSWORD_GROUP} 127.0.0.1/32 scram-sha-256\n\
         host  all all              127.0.0.1/32 trust\n"
    );
    // The file exists (initdb made it, owned by the server's user), so
    // writing it keeps its owner.
    fs::write(&hba, text).with_context(|| format!("writing {}", hba.display()))
}

/// A running postmaster, child of this process.
pub(crate) struct Server {
    pid: u32,
    port: u16,
    socket_dir: Option<PathBuf>,
    exit: Arc<ExitWatch>,
}

impl Server {
    /// Starts `postgres` on a free port of 127.0.0.1 and waits until it
    /// accepts connections; tries another port when the one picked was taken
    /// in between.
    pub(crate) fn start(
        binaries: &Binaries,
        run_dir: &RunDir,
        user: Option<&ServerUser>,
    ) -> Result<Self> {
        let socket_dir = socket_dir(run_dir.path());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port()?;
            let mut command = Command::new(&binaries.postgres);
            command.arg("-D").arg(run_dir.data());
            for setting in settings(port, socket_dir.as_deref()) {
                command.arg("-c").arg(setting);
            }
            prepare(&mut command, run_dir, user);
            die_with_this_process(&mut command);
            let log = File::options()
                .create(true)
                .append(true)
                .open(run_dir.log())
                .with_context(|| format!("opening {}", run_dir.log().display()))?;
            command
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            let (pid, exit) = spawn_kept(command)
                .with_context(|| format!("starting {}", binaries.postgres.display()))?;
            let server = Server {
                pid,
                port,
                socket_dir: socket_dir.clone(),
                exit,
            };
            match server.wait_until_ready() {
                Ok(()) => return Ok(server),
                Err(status) => {
                    let log = log_tail(&run_dir.log());
                    if log.contains("could not bind") && attempts < 5 {
                        continue;
                    }
                    bail!(
                        "{} exited before accepting connections ({status}); the end of its log {}:\n{log}",
                        binaries.postgres.display(),
                        run_dir.log().display()
                    );
                }
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn socket_dir(&self) -> Option<&Path> {
        self.socket_dir.as_deref()
    }

    /// Why the server is no longer running, if it is not.
    pub(crate) fn exited(&self) -> Option<String> {
        self.exit.status()
    }

    /// Polls until a connection succeeds, or fails with the server's exit
    /// status when it ends first (a wrong setting, a taken port).
    fn wait_until_ready(&self) -> std::result::Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exit.status() {
                return Err(status);
            }
            let attempt = postgres::Config::new()
                .host("127.0.0.1")
                .port(self.port)
                .user(SUPERUSER)
                .dbname("postgres")
                .connect_timeout(Duration::from_secs(1))
                .connect(postgres::NoTls);
            if attempt.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!("no connection within {READY_TIMEOUT:?}; stopped"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Immediate shutdown (SIGQUIT), waiting a few seconds for the server to
    /// be gone.
    fn stop(&self) {
        if self.exit.status().is_none() {
            // SAFETY: kill has no memory preconditions; the pid is our own
            // child, not yet reaped (its keeper thread reaps it), so it
            // cannot have been reused.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGQUIT) };
        }
        self.exit.wait(Duration::from_secs(5));
    }

    /// Makes the normal end of the test process stop the server and remove
    /// `run_dir`: statics are never dropped, so an `atexit` handler does it.
    /// (A killed process cannot; the server then dies of its parent-death
    /// signal and the next start removes the directory.)
    pub(crate) fn stop_at_exit(&self, run_dir: &Path) {
        let mut slot = AT_EXIT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Some(AtExit {
            pid: self.pid,
            exit: Arc::clone(&self.exit),
            run_dir: run_dir.to_owned(),
        });
        static REGISTER: Once = Once::new();
        REGISTER.call_once(|| {
            // SAFETY: stop_on_exit is an extern "C" fn that never unwinds.
            unsafe { libc::atexit(stop_on_exit) };
        });
    }
}

/// A server dropped before it became the process's cluster (its start
/// failed half-way) is stopped at once.
impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server's settings, as `-c` options (visible in `ps`): private and
/// quick rather than durable. Nothing here survives a crash of the test,
/// nor needs to.
fn settings(port: u16, socket_dir: Option<&Path>) -> Vec<String> {
    let sockets = socket_dir
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    vec![
        format!("port={port}"),
        "listen_addresses=127.0.0.1".to_owned(),
        format!("unix_socket_directories={sockets}"),
        // Durability is not wanted: the data directory is thrown away.
        "fsync=off".to_owned(),
        "synchronous_commit=off".to_owned(),
        "full_page_writes=off".to_owned(),
        "wal_level=minimal".to_owned(),
        "max_wal_senders=0".to_owned(),
        "shared_buffers=32MB".to_owned(),
        // No background work that connects to databases (and could hold up
        // CREATE DATABASE ... TEMPLATE or DROP DATABASE) or changes plans
        // between runs; a test that needs statistics runs ANALYZE.
        "autovacuum=off".to_owned(),
        // JIT compiling a test's few rows costs more than it saves.
        "jit=off".to_owned(),
        // Server-side times (now()) the same on every machine.
        "timezone=UTC".to_owned(),
        "log_timezone=UTC".to_owned(),
    ]
}

/// The run directory for the server's socket, unless its path would be too
/// long for a Unix socket (a long TMPDIR).
fn socket_dir(run_dir: &Path) -> Option<PathBuf> {
    let longest = run_dir.join(".s.PGSQL.65535.lock");
    (longest.as_os_str().len() <= MAX_SOCKET_PATH).then(|| run_dir.to_owned())
}

/// A port of 127.0.0.1 that is free now. Another process may take it before
/// the server binds it; `Server::start` then tries again.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// Common to initdb and postgres: the server's user, the run directory as
/// working directory (the tester's may be unreadable to that user), and no
/// PG* variables of the test process (PGDATA, PGPORT, PGOPTIONS, ...) that
/// would change what they do.
fn prepare(command: &mut Command, run_dir: &RunDir, user: Option<&ServerUser>) {
    command.current_dir(run_dir.path());
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"PG") {
            command.env_remove(&name);
        }
    }
    command.env("LC_ALL", OsStr::new("C"));
    if let Some(user) = user {
        user.apply(command);
    }
}

/// The server gets SIGQUIT (immediate shutdown) when its parent dies, even
/// by SIGKILL. std runs this after it changed the user, as it must be: a
/// change of credentials clears the parent-death signal.
fn die_with_this_process(command: &mut Command) {
    // SAFETY: getpid before the fork; between fork and exec only prctl and
    // getppid, which are async-signal-safe and allocate nothing.
    let parent = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGQUIT as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // The parent died before prctl took effect: no signal will come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Spawns `command` from a thread of its own that lives as long as the
/// child: the parent-death signal fires when the *thread* that forked the
/// child ends, and a test's thread ends with its test. The thread reaps the
/// child and records how it ended.
fn spawn_kept(mut command: Command) -> Result<(u32, Arc<ExitWatch>)> {
    let exit = Arc::new(ExitWatch::default());
    let recorded = Arc::clone(&exit);
    let (report, reported) = mpsc::channel();
    thread::Builder::new()
        .name("test-postgres".to_owned())
        .spawn(move || {
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(error) => {
                    let _ = report.send(Err(error));
                    return;
                }
            };
            let _ = report.send(Ok(child.id()));
            let status = match child.wait() {
                Ok(status) => status.to_string(),
                Err(error) => format!("not waited for: {error}"),
            };
            recorded.set(status);
        })
        .context("starting the thread that keeps the server")?;
    let pid = reported
        .recv()
        .context("the server's thread ended early")??;
    Ok((pid, exit))
}

/// How the server ended, once it has.
#[derive(Default)]
struct ExitWatch {
    status: Mutex<Option<String>>,
    changed: Condvar,
}

impl ExitWatch {
    fn set(&self, status: String) {
        *self
            .status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(status);
        self.changed.notify_all();
    }

    fn status(&self) -> Option<String> {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Waits at most `timeout` for the end; whether it came.
    fn wait(&self, timeout: Duration) -> bool {
        let status = self
            .status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (status, _) = self
            .changed
            .wait_timeout_while(status, timeout, |status| status.is_none())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        status.is_some()
    }
}

/// What the exit handler stops and removes.
struct AtExit {
    pid: u32,
    exit: Arc<ExitWatch>,
    run_dir: PathBuf,
}

static AT_EXIT: Mutex<Option<AtExit>> = Mutex::new(None);

/// Runs in `exit()`, while the keeper thread still runs and can reap the
/// server: SIGQUIT, wait for the server's end, remove the run directory.
extern "C" fn stop_on_exit() {
    let _ = std::panic::catch_unwind(|| {
        let Ok(mut slot) = AT_EXIT.try_lock() else {
            return;
        };
        let Some(stop) = slot.take() else {
            return;
        };
        if stop.exit.status().is_none() {
            // SAFETY: as in Server::stop.
            unsafe { libc::kill(stop.pid as libc::pid_t, libc::SIGQUIT) };
        }
        if stop.exit.wait(Duration::from_secs(5)) {
            let _ = fs::remove_dir_all(&stop.run_dir);
        }
    });
}

/// The last lines of the server's log, for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
