//! The cluster of one test process: started on first use, shared by the
//! process's tests, each of which takes databases and roles of its own.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::binaries::{Binaries, INSTALL_HINT};
use crate::database::{quote_identifier, quote_literal, Role, TestDatabase};
use crate::run_dir::RunDir;
use crate::server::{self, Server, PASSWORD_GROUP, SUPERUSER};
use crate::server_user::ServerUser;

/// The database every [`Cluster::create_database`] copies: PostGIS created
/// once here makes each test's database a copy (about 50 ms) instead of a
/// `CREATE EXTENSION` (about 0.3 s).
const POSTGIS_TEMPLATE: &str = "postgis_template";

/// The host every connection goes to: the server listens there only.
const HOST: &str = "127.0.0.1";

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// This test process's cluster, started by the first call (about a second)
/// and shared by every test of the process; it stops when the process ends,
/// however it ends.
///
/// # Panics
///
/// When the cluster cannot start, with the reason; when PostgreSQL or
/// PostGIS is missing the message says to run `scripts/install-test-deps.sh`.
/// A test that needs PostgreSQL fails rather than skips: a skipped test
/// would pass on a machine that never ran it.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| match Cluster::start() {
        Ok(cluster) => cluster,
        Err(error) => panic!("the tests' PostgreSQL cluster could not start: {error:#}"),
    })
}

/// A PostgreSQL + PostGIS server of this test process alone: its own data
/// directory in a temporary directory, its own port on 127.0.0.1, run as an
/// unprivileged user, started directly as a child of the test process.
///
/// The superuser ([`Cluster::superuser`]) is trusted without a password;
/// roles made by [`Cluster::create_role`] must give theirs (scram-sha-256).
pub struct Cluster {
    server: Server,
    run_dir: RunDir,
    started_in: Duration,
    next_id: AtomicU32,
}

impl Cluster {
    fn start() -> Result<Self> {
        let began = Instant::now();
        let user = ServerUser::for_this_process()?;
        let binaries = Binaries::find()?;
        let run_dir = RunDir::create(user.as_ref())?;
        server::initdb(&binaries, &run_dir, user.as_ref())?;
        let server = Server::start(&binaries, &run_dir, user.as_ref())?;
        let mut cluster = Cluster {
            server,
            run_dir,
            started_in: Duration::ZERO,
            next_id: AtomicU32::new(1),
        };
        cluster.prepare()?;
        cluster.server.stop_at_exit(cluster.run_dir.path());
        cluster.started_in = began.elapsed();
        Ok(cluster)
    }

    /// The password group, and the PostGIS template (closed to connections
    /// so that copying it never waits for a session inside it).
    fn prepare(&self) -> Result<()> {
        let mut client = self.try_client()?;
        // Two statements, two round trips: CREATE DATABASE refuses to run
        // in the implicit transaction of a multi-statement query.
        let group = format!("CREATE ROLE {} NOLOGIN", quote_identifier(PASSWORD_GROUP));
        let database = format!("CREATE DATABASE {}", quote_identifier(POSTGIS_TEMPLATE));
        for statement in [group, database] {
            client
                .batch_execute(&statement)
                .with_context(|| format!("preparing the cluster: {statement}"))?;
        }
        let mut template = self
            .config(SUPERUSER, POSTGIS_TEMPLATE)
            .connect(postgres::NoTls)
            .context("connecting to the PostGIS template database")?;
        template
            .batch_execute("CREATE EXTENSION postgis")
            .with_context(|| format!("CREATE EXTENSION postgis failed; {INSTALL_HINT}"))?;
        template
            .close()
            .context("leaving the PostGIS template database")?;
        client
            .batch_execute(&format!(
                "ALTER DATABASE {template} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
                template = quote_identifier(POSTGIS_TEMPLATE),
            ))
            .context("closing the PostGIS template database")?;
        Ok(())
    }

    /// A new database with PostGIS ready, named `<hint>_<n>` (the hint made
    /// a valid lower-case name; `n` unique in this process), dropped when the
    /// returned value is. About 50 ms.
    ///
    /// # Panics
    ///
    /// When the server refuses (it died, the disk is full): the message
    /// names the server's log.
    pub fn create_database(&self, hint: &str) -> TestDatabase {
        self.create_database_from(hint, POSTGIS_TEMPLATE)
    }

    /// A new database without PostGIS, otherwise as
    /// [`create_database`](Self::create_database): for the error a user
    /// gets on a server without PostGIS.
    pub fn create_database_without_postgis(&self, hint: &str) -> TestDatabase {
        self.create_database_from(hint, "template1")
    }

    fn create_database_from(&self, hint: &str, template: &str) -> TestDatabase {
        let name = self.unique_name(hint);
        self.execute(
            &format!(
                // The default strategy (WAL_LOG): FILE_COPY was no faster
                // here and forces two checkpoints on a server that other
                // tests are writing to.
                "CREATE DATABASE {} TEMPLATE {}",
                quote_identifier(&name),
                quote_identifier(template)
            ),
            &format!("creating database {name}"),
        );
        TestDatabase::new(name, self.port())
    }

    /// A new login role named `<hint>_<n>` that must give `password`
    /// (scram-sha-256), for the tests of passwords in connection strings,
    /// `PGPASSWORD`, `~/.pgpass` and authentication failures. It has the
    /// rights of PUBLIC only: [`TestDatabase::set_owner`] gives it a
    /// database to write in. Roles belong to the cluster, not to a
    /// database, and live as long as it does.
    ///
    /// # Panics
    ///
    /// As [`create_database`](Self::create_database).
    pub fn create_role(&self, hint: &str, password: &str) -> Role {
        let name = self.unique_name(hint);
        self.execute(
            &format!(
                "CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}",
                quote_identifier(&name),
                quote_literal(password),
                quote_identifier(PASSWORD_GROUP)
            ),
            &format!("creating role {name}"),
        );
        Role::new(name, password.to_owned())
    }

    /// A superuser session on the `postgres` database, for what a test does
    /// across databases (roles of its own, `pg_stat_activity`).
    ///
    /// # Panics
    ///
    /// As [`create_database`](Self::create_database).
    pub fn client(&self) -> postgres::Client {
        self.try_client()
            .unwrap_or_else(|error| panic!("{error:#}"))
    }

    /// Always `127.0.0.1`: the server listens nowhere else.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The server's port on [`host`](Self::host), free when it started.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `postgres`, trusted without a password from 127.0.0.1.
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// The directory of the server's Unix socket (for `host=/path`
    /// connection strings), `None` when TMPDIR is too long for one.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.server.socket_dir()
    }

    /// The server's log, to read when a test fails in an unexpected way.
    pub fn log_file(&self) -> PathBuf {
        self.run_dir.log()
    }

    /// The process id of the postmaster: to check that it went with the
    /// test process. Signalling it stops the cluster of every test in the
    /// process.
    pub fn server_pid(&self) -> u32 {
        self.server.pid()
    }

    /// The directory holding the data directory, the socket and the log,
    /// removed when the process ends.
    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// How long the first [`cluster`] call took (initdb, start, PostGIS
    /// template): for the test suite's timings.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    fn unique_name(&self, hint: &str) -> String {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut base: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(48)
            .collect();
        if !base.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
            base.insert(0, 't');
        }
        format!("{base}_{id}")
    }

    fn execute(&self, statement: &str, what: &str) {
        let outcome = self
            .try_client()
            .and_then(|mut client| client.batch_execute(statement).map_err(Into::into));
        if let Err(error) = outcome {
            panic!("{what} failed: {:#}", self.explain(error));
        }
    }

    fn try_client(&self) -> Result<postgres::Client> {
        self.config(SUPERUSER, "postgres")
            .connect(postgres::NoTls)
            .map_err(|error| self.explain(error.into()))
    }

    fn config(&self, user: &str, dbname: &str) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host(HOST)
            .port(self.port())
            .user(user)
            .dbname(dbname)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// `error` with where to look: the server's log, and whether the server
    /// is still running.
    fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        let state = match self.server.exited() {
            Some(status) => format!(
                "the test server (pid {}) has exited ({status}); the end of its log:\n{}",
                self.server.pid(),
                server::log_tail(&self.run_dir.log())
            ),
            None => format!("the server's log is {}", self.run_dir.log().display()),
        };
        anyhow::anyhow!("{error:#}; {state}")
    }
}
