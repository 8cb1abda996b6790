//! The archive handle the host passes to a plugin's `sync`: it turns the
//! plugin's calls into catalogue changes, commits them in batches together
//! with the run's counts and watermarks, and stops the run when asked to
//! (a signal, `--fail-fast`, a storage failure). The batch state
//! ([`batch`]) holds the rules of a run; the ABI adapter ([`adapter`]) only
//! converts the plugin's calls to and from their ABI form.

mod adapter;
mod batch;
#[cfg(test)]
mod tests;

pub use adapter::ArchiveHandle;
pub use batch::{BatchPolicy, Failure, RunRules, Shared, State, Stop, WouldChange};
