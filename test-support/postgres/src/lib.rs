//! A private PostgreSQL + PostGIS cluster for the tests: started by the first
//! test of a process that asks for it, shared by that process's tests, each
//! in databases of its own, and gone when the process ends.
//!
//! The cluster is made with `initdb` in a temporary directory, listens on a
//! free port of 127.0.0.1 only, and runs as an unprivileged user (`nobody`
//! when the tests run as root, which PostgreSQL refuses). Its `postgres` is a
//! child of the test process that receives SIGQUIT when that process dies,
//! even by SIGKILL; a normal exit also removes its directory, and the next
//! start removes those that killed processes left. No test touches a server
//! it did not start. PostgreSQL comes from `$MUNINN_SYNC_TEST_PG_BINDIR`,
//! `pg_config --bindir` or /usr/lib/postgresql/*/bin; when it or PostGIS is
//! missing, the tests fail saying to run `scripts/install-test-deps.sh`.
//!
//! ```no_run
//! use muninn_sync_test_postgres::cluster;
//!
//! let database = cluster().create_database("sync_twice"); // PostGIS ready
//! // What a user writes in [postgresql] connection_string:
//! let connection_string = database.connection_string();
//! // ... run the program under test against it, then check what it wrote:
//! let mut client = database.client();
//! let row = client.query_one("SELECT ST_AsText(ST_GeogFromText('POINT(1 2)'))", &[]).unwrap();
//! assert_eq!(row.get::<_, String>(0), "POINT(1 2)");
//!
//! // A role that must give its password:
//! let role = cluster().create_role("reader", "secret");
//! assert!(database.connect_as(role.name(), "wrong").is_err());
//! ```
//!
//! Settings favour speed over durability (fsync off, a small
//! shared_buffers, no autovacuum: a test that needs planner statistics runs
//! ANALYZE) and repeatability (UTC, the C locale, UTF-8). Databases are
//! copies of a template that has PostGIS, which takes about a tenth of a
//! second; the whole cluster about a second (see docs/testing.md).
//! Under cargo-nextest every test is a process, and so starts a cluster.

mod binaries;
mod cluster;
mod database;
mod run_dir;
mod server;
mod server_user;

pub use cluster::{cluster, Cluster};
pub use database::{Role, TestDatabase};
