//! The muninn-sync host: its command line, the archive configuration, the
//! plugin loader and the archive handle plugins write through. The binary
//! (`main.rs`) only wires these together.

pub mod adopt;
pub mod archive;
pub mod backend;
pub mod cli;
pub mod config;
pub mod control;
pub mod duration;
pub mod loader;
pub mod lock;
pub mod logging;
pub mod ops;
pub mod progress;
pub mod report;
pub mod run;
pub mod watchdog;
pub mod window;
