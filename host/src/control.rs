//! What the outside world asks of a running sync: stop (SIGINT, SIGTERM),
//! and whether the plugin is still doing anything (for `--timeout`).
//!
//! Signal handlers only set atomics; the archive handle looks at them on
//! the plugin's next call (it commits the batch and refuses further work),
//! and the watchdog thread (`crate::watchdog`) acts when the plugin makes no
//! call at all.

use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shared between the signal handlers, the archive handle and the watchdog.
#[derive(Debug)]
pub struct RunControl {
    /// The first stop signal received, 0 before.
    signal: Arc<AtomicI32>,
    /// How many stop signals arrived: a second one means "now".
    signals: Arc<AtomicUsize>,
    began: Instant,
    /// Milliseconds after `began` of the plugin's last call.
    last_call: AtomicU64,
}

impl Default for RunControl {
    fn default() -> Self {
        RunControl::new()
    }
}

impl RunControl {
    pub fn new() -> RunControl {
        RunControl {
            signal: Arc::new(AtomicI32::new(0)),
            signals: Arc::new(AtomicUsize::new(0)),
            began: Instant::now(),
            last_call: AtomicU64::new(0),
        }
    }

    /// Routes SIGINT and SIGTERM here instead of ending the process.
    pub fn catch_stop_signals(&self) -> std::io::Result<()> {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let first = Arc::clone(&self.signal);
            let count = Arc::clone(&self.signals);
            // SAFETY: the handler only touches atomics, which is
            // async-signal-safe.
            unsafe {
                signal_hook::low_level::register(signal, move || {
                    let _ = first.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
                    count.fetch_add(1, Ordering::SeqCst);
                })?;
            }
        }
        Ok(())
    }

    /// Asks the run to stop as if `signal` had arrived.
    pub fn request_stop(&self, signal: i32) {
        let _ = self
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
        self.signals.fetch_add(1, Ordering::SeqCst);
    }

    /// The stop signal received, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }

    /// How many stop signals arrived.
    pub fn signals_received(&self) -> usize {
        self.signals.load(Ordering::SeqCst)
    }

    /// Notes that the plugin is doing something.
    pub fn touch(&self) {
        let now = self.began.elapsed().as_millis() as u64;
        self.last_call.store(now, Ordering::Relaxed);
    }

    /// How long since the plugin's last call (or the run's start).
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_call.load(Ordering::Relaxed));
        self.began.elapsed().saturating_sub(last)
    }
}

/// `SIGINT`, `SIGTERM`, or `signal N`.
pub fn signal_name(signal: i32) -> String {
    match signal {
        signal_hook::consts::SIGINT => "SIGINT".into(),
        signal_hook::consts::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// The exit code of a run stopped by `signal`: 128 + its number, as shells
/// report a process killed by it.
pub fn signal_exit_code(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}
