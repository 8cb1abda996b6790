//! The muninn-sync host: its command line, the archive configuration, the
//! plugin loader and the archive handle plugins write through. The binary
//! (`main.rs`) only wires these together.

pub mod archive;
pub mod cli;
pub mod config;
pub mod loader;
pub mod logging;
pub mod run;
