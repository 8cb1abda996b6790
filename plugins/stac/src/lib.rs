//! The `stac` synchronizer: keeps a catalogue in step with a STAC API's
//! Item Search (work in progress, issue 6: configuration, conformance,
//! requests and paging, and the item mapping so far).

pub mod config;
pub mod conformance;
pub mod item;
pub mod search;
