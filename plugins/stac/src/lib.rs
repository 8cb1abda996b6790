//! The `stac` synchronizer: keeps a catalogue in step with a STAC API's
//! Item Search (work in progress: the item mapping).

pub mod item;
