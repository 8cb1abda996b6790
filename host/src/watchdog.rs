//! The watchdog: a thread beside the plugin's that ends the run when the
//! plugin cannot: when it has done nothing for `--timeout`, or has not come
//! back from its work after a stop signal (a second signal, or
//! [`SIGNAL_GRACE`] after the first). It commits the open batch (every
//! change in it is a complete product), records the run's end, releases
//! the lock and exits the process: a plugin stuck in a system call cannot
//! be unwound, only left behind.

use crate::archive::{Shared, Stop};
use crate::control::{signal_exit_code, signal_name, RunControl};
use crate::run::{conclude, Ending, RunContext};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a plugin has, after the first stop signal, to come back to the
/// host (which then stops it cleanly) before the watchdog ends the run.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(30);

/// How long the watchdog waits for a plugin's call into the catalogue to
/// finish before it gives up recording the run's end.
const CALL_PATIENCE: Duration = Duration::from_secs(10);

/// Watches the run until `done`.
pub(crate) fn watch(
    context: &RunContext<'_>,
    shared: &Shared<'_>,
    control: &RunControl,
    done: &AtomicBool,
    timeout: Option<Duration>,
) {
    let mut signalled_at: Option<Instant> = None;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        let ending = match control.signal() {
            Some(signal) => {
                let since = *signalled_at.get_or_insert_with(|| {
                    tracing::warn!(
                        "{} received: committing the current batch and stopping (send it again to stop at once)",
                        signal_name(signal)
                    );
                    Instant::now()
                });
                if control.signals_received() < 2 && since.elapsed() < SIGNAL_GRACE {
                    continue;
                }
                Ending::Signalled(signal)
            }
            None => match timeout {
                Some(limit) if control.idle_for() >= limit => Ending::TimedOut(limit),
                _ => continue,
            },
        };
        end_run(context, shared, ending);
    }
}

/// Ends the run from the watchdog and exits the process, unless the main
/// thread got there first.
fn end_run(context: &RunContext<'_>, shared: &Shared<'_>, ending: Ending) {
    let code = match &ending {
        Ending::Signalled(signal) => signal_exit_code(*signal),
        _ => crate::run::exit_code::TIMED_OUT,
    };
    let Some(mut state) = shared.try_lock_for(CALL_PATIENCE) else {
        eprintln!(
            "ERROR: {}: the plugin is stuck inside a call to the catalogue; exiting without recording the run's end \
             (the open batch is rolled back; the next run marks this one abandoned)",
            context_who(context)
        );
        std::process::exit(i32::from(code));
    };
    if state.is_finished() {
        return; // the plugin returned meanwhile; the main thread ends the run
    }
    if let Ending::Signalled(signal) = ending {
        state.stop_after_commit_if_running(Stop::Signal(signal));
    }
    let (code, error) = conclude(context, &mut state, ending);
    if let Some(message) = error {
        eprintln!("ERROR: {message}");
    }
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(i32::from(code));
}

fn context_who(context: &RunContext<'_>) -> String {
    context.who().to_string()
}
