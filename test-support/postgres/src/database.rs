//! A test's own database and roles, and how to reach them: libpq connection
//! strings and URLs for the programs under test, clients for the test's own
//! queries.

use std::time::Duration;

use crate::server::SUPERUSER;

/// A database of one test, in the process's [`Cluster`](crate::Cluster):
/// nobody else writes in it. Dropped (`DROP DATABASE ... WITH (FORCE)`,
/// closing whatever sessions are left) when this value is.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    port: u16,
}

impl TestDatabase {
    pub(crate) fn new(name: String, port: u16) -> Self {
        TestDatabase { name, port }
    }

    /// The database's name, unique in the cluster.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// libpq keywords for the superuser, which needs no password:
    /// `host=127.0.0.1 port=N user=postgres dbname=D`, as a user writes
    /// `[postgresql] connection_string`.
    pub fn connection_string(&self) -> String {
        self.connection_string_for(SUPERUSER)
    }

    /// libpq keywords for `role`, without its password: the test adds
    /// `password=...`, `PGPASSWORD` or a `.pgpass` line, or none to see the
    /// refusal.
    pub fn connection_string_as(&self, role: &Role) -> String {
        self.connection_string_for(role.name())
    }

    /// `postgresql://postgres@127.0.0.1:N/D`: the URL form of
    /// [`connection_string`](Self::connection_string).
    pub fn url(&self) -> String {
        self.url_for(SUPERUSER)
    }

    /// `postgresql://ROLE@127.0.0.1:N/D`, without the password.
    pub fn url_as(&self, role: &Role) -> String {
        self.url_for(role.name())
    }

    /// A superuser session in this database, for the test's own queries and
    /// settings (`ALTER DATABASE ... SET default_transaction_read_only = on`
    /// makes the server refuse writes).
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    pub fn client(&self) -> postgres::Client {
        self.config(SUPERUSER)
            .connect(postgres::NoTls)
            .unwrap_or_else(|error| panic!("connecting to {}: {error}", self.connection_string()))
    }

    /// A session as `user` with `password`, or the server's refusal: for
    /// tests of what a role may do, or of a wrong password.
    pub fn connect_as(
        &self,
        user: &str,
        password: &str,
    ) -> Result<postgres::Client, postgres::Error> {
        self.config(user)
            .password(password)
            .connect(postgres::NoTls)
    }

    /// Makes `role` the owner of this database, and so of its `public`
    /// schema (PostgreSQL 15 gives that to the database's owner): the role
    /// can then create tables in it, as muninn-prepare does.
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub fn set_owner(&self, role: &Role) {
        let statement = format!(
            "ALTER DATABASE {} OWNER TO {}",
            quote_identifier(&self.name),
            quote_identifier(role.name())
        );
        self.client()
            .batch_execute(&statement)
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }

    fn connection_string_for(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname={}",
            self.port, self.name
        )
    }

    fn url_for(&self, user: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{}", self.port, self.name)
    }

    fn config(&self, user: &str) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .dbname(&self.name)
            .connect_timeout(Duration::from_secs(10));
        config
    }
}

/// Dropping the database keeps a long test process's disk use to the
/// databases of the tests still running. Best effort: the whole cluster
/// goes with the process anyway.
impl Drop for TestDatabase {
    fn drop(&mut self) {
        let statement = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_identifier(&self.name)
        );
        let mut config = self.config(SUPERUSER);
        config.dbname("postgres");
        if let Ok(mut client) = config.connect(postgres::NoTls) {
            let _ = client.batch_execute(&statement);
        }
    }
}

/// A login role that must give its password (scram-sha-256), made by
/// [`Cluster::create_role`](crate::Cluster::create_role).
#[derive(Debug, Clone)]
pub struct Role {
    name: String,
    password: String,
}

impl Role {
    pub(crate) fn new(name: String, password: String) -> Self {
        Role { name, password }
    }

    /// The role's name, unique in the cluster.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The password the role was given.
    pub fn password(&self) -> &str {
        &self.password
    }
}

/// `name` as an SQL identifier.
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal (standard_conforming_strings is on, so
/// only quotes need doubling).
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
