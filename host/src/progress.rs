//! The progress line on a terminal: products per second and counts, redrawn
//! in place on stderr. Only on a terminal (cron logs get none) and not with
//! `-q`; log lines clear it before they print (see `crate::logging`).

use muninn_sync_catalogue::RunCounts;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Whether a progress line is on the screen, so that a log line can wipe
/// it first.
static SHOWN: AtomicBool = AtomicBool::new(false);

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(250);

/// The progress line of one run.
#[derive(Debug)]
pub struct Progress {
    began: Instant,
    last_drawn: Instant,
    calls: u32,
}

impl Progress {
    /// A progress line, if stderr is a terminal and the user did not ask
    /// for quiet.
    pub fn for_terminal(quiet: bool) -> Option<Progress> {
        let now = Instant::now();
        (!quiet && std::io::stderr().is_terminal()).then(|| Progress {
            began: now,
            // The first line is due at once: a user at a terminal sees the
            // run moving from its first products, however fast it is.
            last_drawn: now.checked_sub(EVERY).unwrap_or(now),
            calls: 0,
        })
    }

    /// Redraws the line when it is due; cheap enough to call on every call
    /// of the plugin's.
    pub fn tick(&mut self, counts: &RunCounts) {
        self.calls = self.calls.wrapping_add(1);
        if !self.calls.is_multiple_of(64) || self.last_drawn.elapsed() < EVERY {
            return;
        }
        self.last_drawn = Instant::now();
        let line = describe(counts, self.began.elapsed());
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[K{line}");
        let _ = stderr.flush();
        SHOWN.store(true, Ordering::SeqCst);
    }

    /// Wipes the line, at the end of the run.
    pub fn clear(&mut self) {
        wipe(&mut std::io::stderr().lock());
    }
}

/// Wipes the progress line if one is shown; log output calls this first.
pub fn wipe(out: &mut impl Write) {
    if SHOWN.swap(false, Ordering::SeqCst) {
        let _ = write!(out, "\r\x1b[K");
    }
}

fn describe(counts: &RunCounts, elapsed: Duration) -> String {
    let handled =
        counts.created + counts.updated + counts.unchanged + counts.removed + counts.failed;
    let rate = handled as f64 / elapsed.as_secs_f64().max(1e-3);
    format!(
        "{handled} products, {rate:.0}/s: {} created, {} updated, {} unchanged, {} removed, {} failed",
        counts.created, counts.updated, counts.unchanged, counts.removed, counts.failed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_gives_rate_and_counts() {
        let counts = RunCounts {
            created: 150,
            updated: 20,
            unchanged: 30,
            removed: 0,
            failed: 0,
        };
        assert_eq!(
            describe(&counts, Duration::from_secs(2)),
            "200 products, 100/s: 150 created, 20 updated, 30 unchanged, 0 removed, 0 failed"
        );
    }
}
