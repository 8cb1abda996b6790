//! The PostgreSQL + PostGIS catalogue, in muninn 7.5's postgresql layout.

mod connect;

pub use connect::{connect, PostgresOptions};
