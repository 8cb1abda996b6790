//! Connecting to the archive's PostgreSQL server as libpq would.

/// The `[postgresql]` section of an archive's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// libpq keywords or a `postgresql://` URL (muninn's `connection_string`).
    pub connection_string: String,
    /// Put before every table name (muninn's `table_prefix`).
    pub table_prefix: String,
}

/// Opens a connection (being written: see issue 16).
pub fn connect(_options: &PostgresOptions) -> anyhow::Result<postgres::Client> {
    anyhow::bail!("PostgreSQL connections are not written yet")
}
