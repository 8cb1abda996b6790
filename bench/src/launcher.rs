//! Starting the measured runs from a small process of their own.
//!
//! Linux counts in a child's peak resident size (`ru_maxrss`) the memory
//! of the process that started it: `exec` takes over the peak of the
//! address space it replaces, which after `vfork` or `posix_spawn` is the
//! parent's, and after `fork` the parent's pages at that moment. The
//! benchmark holds feeds and `COPY` data of hundreds of MB, so a
//! muninn-sync it started itself would be charged for them. Runs are
//! started instead by a launcher: this binary again with a hidden flag,
//! started before the benchmark grows, which takes one request per line on
//! its standard input and answers one line on its standard output.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

/// The hidden flag that makes this binary a launcher.
pub const FLAG: &str = "--launcher";

/// A finished run, as the launcher measured it.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    pub status: i32,
    pub seconds: f64,
    /// User and system CPU time of the run.
    pub cpu_seconds: f64,
    pub peak_rss_kb: i64,
}

/// The launcher process; killed when dropped.
pub struct Launcher {
    pipes: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    child: Child,
}

impl Launcher {
    /// Starts the launcher; call it before the benchmark allocates much.
    pub fn start() -> Result<Launcher> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg(FLAG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the launcher")?;
        let input = child.stdin.take().context("no launcher input")?;
        let output = child.stdout.take().context("no launcher output")?;
        Ok(Launcher {
            pipes: Mutex::new((input, BufReader::new(output))),
            child,
        })
    }

    /// Runs `program args` in `dir`, its standard output discarded and its
    /// standard error written to `log`, and waits for it.
    pub fn run(&self, program: &Path, dir: &Path, args: &[&str], log: &Path) -> Result<Finished> {
        let request = json!({"program": program, "dir": dir, "args": args, "log": log});
        let mut pipes = self
            .pipes
            .lock()
            .map_err(|_| anyhow!("launcher poisoned"))?;
        let (input, output) = &mut *pipes;
        writeln!(input, "{request}")?;
        input.flush()?;
        let mut answer = String::new();
        if output.read_line(&mut answer)? == 0 {
            bail!("the launcher ended");
        }
        let answer: serde_json::Value = serde_json::from_str(&answer)?;
        if let Some(error) = answer["error"].as_str() {
            bail!("{error}");
        }
        let number = |key: &str| {
            answer[key]
                .as_f64()
                .ok_or_else(|| anyhow!("the launcher's answer has no {key}: {answer}"))
        };
        Ok(Finished {
            status: number("status")? as i32,
            seconds: number("seconds")?,
            cpu_seconds: number("cpu_seconds")?,
            peak_rss_kb: number("peak_rss_kb")? as i64,
        })
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The launcher's loop: one run per request line, until the input ends.
pub fn serve() -> Result<()> {
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let request: serde_json::Value = serde_json::from_str(&line?)?;
        let answer = match launch(&request) {
            Ok(finished) => json!({
                "status": finished.status,
                "seconds": finished.seconds,
                "cpu_seconds": finished.cpu_seconds,
                "peak_rss_kb": finished.peak_rss_kb,
            }),
            Err(error) => json!({"error": format!("{error:#}")}),
        };
        let mut out = stdout.lock();
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}

fn launch(request: &serde_json::Value) -> Result<Finished> {
    let text = |key: &str| {
        request[key]
            .as_str()
            .ok_or_else(|| anyhow!("no {key} in {request}"))
    };
    let program = PathBuf::from(text("program")?);
    let args: Vec<&str> = request["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let log = std::fs::File::create(text("log")?)?;
    let started = Instant::now();
    let child = Command::new(&program)
        .current_dir(text("dir")?)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let (status, usage) = wait_with_usage(child.id() as libc::pid_t)?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Finished {
        status,
        seconds,
        cpu_seconds: cpu(usage.ru_utime) + cpu(usage.ru_stime),
        peak_rss_kb: usage.ru_maxrss,
    })
}

/// Waits for a child and returns its exit status and its resource usage
/// (CPU time, peak resident set size in KiB), from the kernel's own
/// accounting.
fn wait_with_usage(pid: libc::pid_t) -> Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: plain system calls on a child of this process; both out
    // parameters are valid for writing.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(anyhow!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, usage))
}
