//! Connecting to the archive's PostgreSQL server as libpq would: muninn
//! users' archives are reached through psycopg, which is libpq, and they
//! rely on its rules for the connection string, the `PG*` environment
//! variables, the password file and TLS.
//!
//! What libpq does that muninn-sync does too:
//! - `connection_string` in libpq's keyword form
//!   (`host=db.example.org dbname=archive user=muninn`, values quoted
//!   `'...'`, `\` escaping) or as a `postgresql://` / `postgres://` URL
//!   (percent-encoded, several `host:port` separated by commas, keywords
//!   after `?`, `ssl=true`). The keywords: `host` (a name, or a Unix socket
//!   directory when it starts with `/`), `hostaddr`, `port` (lists of each,
//!   tried in order), `dbname`, `user`, `password`, `passfile`,
//!   `connect_timeout`, `options`, `application_name`,
//!   `fallback_application_name`, `sslmode`, `sslrootcert` (a file, or
//!   `system`), `sslnegotiation`, `sslsni`, `ssl_min_protocol_version`,
//!   `ssl_max_protocol_version`, `target_session_attrs` (`any`,
//!   `read-write`, `read-only`), `channel_binding`, `load_balance_hosts`,
//!   `keepalives`, `keepalives_idle`, `keepalives_interval`,
//!   `keepalives_count`, `tcp_user_timeout` (milliseconds); and, as libpq
//!   takes them with nothing to do here, `sslcompression`,
//!   `sslcertmode=disable|allow`, `gssencmode=disable|prefer`,
//!   `client_encoding=UTF8`.
//! - What the string leaves out comes from `PGHOST`, `PGHOSTADDR`,
//!   `PGPORT`, `PGDATABASE`, `PGUSER`, `PGPASSWORD`, `PGPASSFILE`,
//!   `PGSSLMODE`, `PGSSLROOTCERT`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`,
//!   `PGOPTIONS`, `PGSSLNEGOTIATION`, `PGSSLSNI`, `PGSSLMINPROTOCOLVERSION`,
//!   `PGSSLMAXPROTOCOLVERSION`, `PGSSLCOMPRESSION`, `PGSSLCERTMODE`,
//!   `PGGSSENCMODE`, `PGCLIENTENCODING`, `PGTARGETSESSIONATTRS`,
//!   `PGCHANNELBINDING`, `PGLOADBALANCEHOSTS`; then libpq's defaults: the
//!   Unix socket in `/var/run/postgresql` (Debian's libpq; `/tmp` where that
//!   directory does not exist), port 5432, the operating system's user
//!   name, a database named as the user.
//! - The password: the connection string's, else `PGPASSWORD`, else the
//!   password file (`passfile`, `PGPASSFILE`, or `~/.pgpass`), by libpq's
//!   rules (see `pgpass`), ignored with a warning when its group or others
//!   may read it.
//! - `sslmode`: `disable`; `allow` (without TLS, then with it if the
//!   server refuses); `prefer`, the default (TLS when the server offers it,
//!   and without TLS when the TLS handshake fails or the server refuses
//!   the encrypted session); `require` (TLS, the
//!   certificate not checked unless a root certificate file is there:
//!   `sslrootcert`, or `~/.postgresql/root.crt`); `verify-ca` (the
//!   certificate's chain must lead to a trusted root); `verify-full` (that,
//!   and it must name the host). Over a Unix socket there is no TLS, as in
//!   libpq.
//!
//! Where muninn-sync differs:
//! - `verify-ca` and `verify-full` without `sslrootcert` and without
//!   `~/.postgresql/root.crt` check against the system's trusted roots,
//!   where libpq refuses to connect.
//! - `connect_timeout` left out waits 30 s for each server (libpq waits for
//!   ever; `connect_timeout=0` still does); it covers the whole start-up,
//!   name look-up and authentication included.
//! - `application_name` is `muninn-sync` unless the user gives one, so that
//!   the server's administrators see who is connected.
//! - `~` is the home directory as the process environment gives it
//!   (`HOME`).
//! - Not honoured, and an error naming the keyword when the connection
//!   string has it: `service` (pg_service.conf), client certificates
//!   (`sslcert`, `sslkey`, `sslpassword`, `sslcertmode=require`; libpq's
//!   default `~/.postgresql/postgresql.crt` is not sent either),
//!   revocation lists (`sslcrl`, `sslcrldir`), `requirepeer`, `requiressl`,
//!   GSSAPI (`krbsrvname`, `gsslib`, `gssdelegation`, `gssencmode=require`),
//!   `require_auth`, `replication`, `sslkeylogfile`,
//!   `target_session_attrs=primary|standby|prefer-standby`, TLS below
//!   version 1.2, and client encodings other than UTF8.
//! - Not honoured, and warned about when set: `PGSERVICE`,
//!   `PGSERVICEFILE`, `PGSYSCONFDIR`, `PGSSLCERT`, `PGSSLKEY`, `PGSSLCRL`,
//!   `PGSSLCRLDIR`, `PGREQUIREPEER`, `PGREQUIRESSL`, `PGKRBSRVNAME`,
//!   `PGGSSLIB`, `PGREQUIREAUTH`, `PGDATESTYLE`, `PGTZ`, `PGGEQO`.
//!
//! No message and no `Debug` output shows a password.

mod conninfo;
mod pgpass;
mod settings;
mod tls;

use anyhow::anyhow;
use settings::{Environment, PasswordSource, Server, Settings, SslMode};
use std::fmt;
use std::time::Duration;

/// The `[postgresql]` section of an archive's configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// libpq keywords or a `postgresql://` URL (muninn's `connection_string`).
    pub connection_string: String,
    /// Put before every table name (muninn's `table_prefix`).
    pub table_prefix: String,
}

impl PostgresOptions {
    /// Options for a connection string, with no table prefix.
    pub fn new(connection_string: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            connection_string: connection_string.into(),
            table_prefix: String::new(),
        }
    }

    /// [`connect`] to these.
    pub fn connect(&self) -> anyhow::Result<postgres::Client> {
        connect(self)
    }

    /// [`describe`] these.
    pub fn describe(&self) -> String {
        describe(self)
    }

    /// Checks the connection string alone, before any connection: its
    /// syntax, that muninn-sync honours each keyword, and their values.
    /// The environment is not read (a `PG*` variable's value is checked
    /// when connecting). Errors never show a password.
    pub fn check(&self) -> anyhow::Result<()> {
        let neutral = Environment {
            os_user: Some(String::from("user")),
            socket_dir: std::path::PathBuf::from("/tmp"),
            ..Environment::default()
        };
        Settings::resolve(&self.connection_string, &neutral)
            .map(drop)
            .map_err(anyhow::Error::new)
    }
}

/// The connection string with its password masked: configuration errors
/// and logs print the options.
impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field(
                "connection_string",
                &conninfo::masked(&self.connection_string),
            )
            .field("table_prefix", &self.table_prefix)
            .finish()
    }
}

/// Where the options lead, after the environment and libpq's defaults:
/// `host:port/dbname as user` (hosts separated by commas), never the
/// password; what errors, logs and `--list` name the catalogue by.
pub fn describe(options: &PostgresOptions) -> String {
    describe_in(options, &Environment::process())
}

fn describe_in(options: &PostgresOptions, env: &Environment) -> String {
    match Settings::resolve(&options.connection_string, env) {
        Ok(settings) => settings.describe(),
        Err(error) => format!("(a connection_string that cannot be used: {error})"),
    }
}

/// Opens a connection as libpq would (see the module's documentation).
/// Errors name the server as [`describe`] does, say what went wrong
/// (unreachable, authentication failed, no such database, TLS) and what
/// to do, and never show a password.
pub fn connect(options: &PostgresOptions) -> anyhow::Result<postgres::Client> {
    connect_in(options, &Environment::process())
}

fn connect_in(options: &PostgresOptions, env: &Environment) -> anyhow::Result<postgres::Client> {
    let settings = Settings::resolve(&options.connection_string, env).map_err(|error| {
        anyhow!("cannot connect to the PostgreSQL catalogue: connection_string: {error}")
    })?;
    for (variable, what) in env.unhonoured() {
        tracing::warn!(
            variable,
            "{variable} is set ({what}), but muninn-sync does not honour it"
        );
    }
    let target = settings.describe();
    let mut passwords = Passwords { file: None };
    let mut servers: Vec<&Server> = settings.servers.iter().collect();
    if settings.load_balance {
        shuffle(&mut servers);
    }
    let mut failures = Vec::new();
    for server in servers {
        let password = passwords.for_server(&settings, server);
        match attempt(&settings, server, password.as_ref(), &passwords) {
            Ok(client) => {
                tracing::debug!(catalogue = %target, server = %server.describe(), "connected to PostgreSQL");
                return Ok(client);
            }
            Err(failure) => failures.push((server.describe(), failure.message)),
        }
    }
    let why = match failures.as_slice() {
        [(_, why)] => why.clone(),
        many => many
            .iter()
            .map(|(server, why)| format!("{server}: {why}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    Err(anyhow!(
        "cannot connect to the PostgreSQL catalogue {target}: {why}"
    ))
}

/// libpq's random order of hosts (`load_balance_hosts=random`), from the
/// standard library's random hash keys.
fn shuffle<T>(items: &mut [T]) {
    use std::hash::{BuildHasher, Hasher};
    for i in (1..items.len()).rev() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(i);
        let j = (hasher.finish() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The password of each server: the connection string's or
/// `PGPASSWORD`, else the password file's line for it.
struct Passwords {
    /// The password file, read once when first needed.
    file: Option<pgpass::PasswordFile>,
}

impl Passwords {
    fn for_server(
        &mut self,
        settings: &Settings,
        server: &Server,
    ) -> Option<(String, PasswordSource)> {
        if let Some((password, source)) = &settings.password {
            return Some((password.0.clone(), source.clone()));
        }
        let path = settings.passfile.as_ref()?;
        let file = self.file.get_or_insert_with(|| {
            let file = pgpass::read(path);
            if let pgpass::PasswordFile::Ignored(why) = &file {
                tracing::warn!(file = %path.display(), "{why}");
            }
            file
        });
        let pgpass::PasswordFile::Read(text) = file else {
            return None;
        };
        let host = server.password_file_host(&settings.socket_dir);
        let key = pgpass::Key {
            host: &host,
            port: server.port,
            dbname: &settings.dbname,
            user: &settings.user,
        };
        pgpass::find(text, key).map(|password| (password, PasswordSource::File(path.clone())))
    }

    /// Why no password came from the file, for a server that wants one.
    fn why_none(&self, settings: &Settings, server: &Server) -> String {
        let Some(path) = &settings.passfile else {
            return String::from("; there is no home directory for a ~/.pgpass");
        };
        match &self.file {
            Some(pgpass::PasswordFile::Ignored(why)) => format!("; {why}, so it was not used"),
            Some(pgpass::PasswordFile::Read(_)) => format!(
                "; the password file \"{}\" has no line for {}:{}:{}:{}",
                path.display(),
                server.password_file_host(&settings.socket_dir),
                server.port,
                settings.dbname,
                settings.user
            ),
            _ => format!("; there is no password file \"{}\"", path.display()),
        }
    }
}

/// How one connection attempt uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// None.
    Off,
    /// When the server offers it.
    Offered,
    /// Always.
    On,
}

/// Why an attempt failed, and what kind of failure it was (which decides
/// whether `allow` and `prefer` try again the other way).
#[derive(Debug)]
struct Failure {
    kind: FailureKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// TLS could not be set up or the handshake failed.
    Tls,
    /// The server answered with an error.
    Server,
    /// Anything else: unreachable, timed out, closed.
    Other,
}

/// Connects to one server as `sslmode` says, trying again the other way
/// for `allow` and `prefer`.
fn attempt(
    settings: &Settings,
    server: &Server,
    password: Option<&(String, PasswordSource)>,
    passwords: &Passwords,
) -> Result<postgres::Client, Failure> {
    let run = |tls: Tls| run(settings, server, password, passwords, tls);
    if server.is_socket() {
        return run(Tls::Off);
    }
    match settings.sslmode {
        SslMode::Disable => run(Tls::Off),
        SslMode::Allow => match run(Tls::Off) {
            Err(plain) if plain.kind == FailureKind::Server => {
                tracing::debug!(server = %server.describe(), "refused without TLS; trying with TLS (sslmode=allow)");
                run(Tls::On).map_err(|tls| Failure {
                    message: format!(
                        "{} (a connection without TLS was tried first: {})",
                        tls.message, plain.message
                    ),
                    ..tls
                })
            }
            other => other,
        },
        // libpq tries again without TLS when the TLS handshake fails, and
        // when the server refuses the encrypted session (a pg_hba.conf
        // hostnossl line): both failures are told, once when alike.
        SslMode::Prefer => match run(Tls::Offered) {
            Err(tls) if matches!(tls.kind, FailureKind::Tls | FailureKind::Server) => {
                tracing::debug!(server = %server.describe(), error = %tls.message, "failed with TLS; trying without (sslmode=prefer)");
                run(Tls::Off).map_err(|plain| {
                    let message = if plain.message == tls.message {
                        plain.message
                    } else if tls.kind == FailureKind::Tls {
                        format!(
                            "{} (TLS was tried first and failed: {})",
                            plain.message, tls.message
                        )
                    } else {
                        format!("{}; and without TLS: {}", tls.message, plain.message)
                    };
                    Failure { message, ..plain }
                })
            }
            other => other,
        },
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => run(Tls::On),
    }
}

/// One connection attempt.
fn run(
    settings: &Settings,
    server: &Server,
    password: Option<&(String, PasswordSource)>,
    passwords: &Passwords,
    tls: Tls,
) -> Result<postgres::Client, Failure> {
    let config = crate_config(settings, server, password.map(|(p, _)| p.as_str()), tls);
    let check = match settings.sslmode {
        SslMode::VerifyFull => tls::Check::ChainAndName,
        SslMode::VerifyCa => tls::Check::Chain,
        _ if settings.root_certs.is_some() => tls::Check::Chain,
        _ => tls::Check::Nothing,
    };
    let context = Context {
        settings,
        server,
        password_source: password.map(|(_, source)| source),
        passwords,
        check,
    };
    let connector = match tls {
        Tls::Off => None,
        Tls::Offered | Tls::On => Some(
            tls::connector(
                check,
                settings.root_certs.as_ref(),
                settings.tls_versions,
                settings.sni,
                settings.direct_tls,
            )
            .map_err(|why| Failure {
                kind: FailureKind::Tls,
                message: format!("TLS ({}) cannot be set up: {why}", context.tls_label()),
            })?,
        ),
    };
    match with_deadline(config, connector, settings.connect_timeout) {
        Ok(client) => Ok(client),
        Err(Attempt::TimedOut(timeout)) => Err(Failure {
            kind: FailureKind::Other,
            message: format!(
                "no answer from {} within {} s (connect_timeout; 0 waits for ever)",
                server.describe(),
                timeout.as_secs()
            ),
        }),
        Err(Attempt::NoThread(error)) => Err(Failure {
            kind: FailureKind::Other,
            message: format!("cannot start a thread to connect on: {error}"),
        }),
        Err(Attempt::Failed(error)) => Err(context.explain(&error)),
    }
}

/// The postgres crate's configuration for one attempt on one server.
fn crate_config(
    settings: &Settings,
    server: &Server,
    password: Option<&str>,
    tls: Tls,
) -> postgres::Config {
    use postgres::config::{
        ChannelBinding, SslMode as CrateSslMode, SslNegotiation, TargetSessionAttrs,
    };
    let mut config = postgres::Config::new();
    config
        .user(&settings.user)
        .dbname(&settings.dbname)
        .application_name(&settings.application_name)
        .port(server.port);
    if let Some(password) = password {
        config.password(password);
    }
    if let Some(options) = &settings.options {
        config.options(options);
    }
    match &server.host {
        settings::Host::Socket(dir) => {
            config.host_path(dir);
        }
        settings::Host::Tcp { name, addr } => {
            // The name serves TLS; the address, when given, is connected to.
            match (name, addr) {
                (Some(name), _) => config.host(name),
                (None, Some(addr)) => config.host(&addr.to_string()),
                (None, None) => config.host("localhost"),
            };
            if let Some(addr) = addr {
                config.hostaddr(*addr);
            }
        }
    }
    if let Some(timeout) = settings.connect_timeout {
        config.connect_timeout(timeout);
    }
    if let Some(keepalives) = settings.keepalives {
        config.keepalives(keepalives);
    }
    if let Some(idle) = settings.keepalives_idle {
        config.keepalives_idle(idle);
    }
    if let Some(interval) = settings.keepalives_interval {
        config.keepalives_interval(interval);
    }
    if let Some(count) = settings.keepalives_count {
        config.keepalives_retries(count);
    }
    if let Some(timeout) = settings.tcp_user_timeout {
        config.tcp_user_timeout(timeout);
    }
    config.target_session_attrs(match settings.target_session_attrs {
        settings::SessionAttrs::Any => TargetSessionAttrs::Any,
        settings::SessionAttrs::ReadWrite => TargetSessionAttrs::ReadWrite,
        settings::SessionAttrs::ReadOnly => TargetSessionAttrs::ReadOnly,
    });
    config.channel_binding(match settings.channel_binding {
        settings::ChannelBinding::Disable => ChannelBinding::Disable,
        settings::ChannelBinding::Prefer => ChannelBinding::Prefer,
        settings::ChannelBinding::Require => ChannelBinding::Require,
    });
    config.ssl_mode(match tls {
        Tls::Off => CrateSslMode::Disable,
        Tls::Offered => CrateSslMode::Prefer,
        Tls::On => CrateSslMode::Require,
    });
    if settings.direct_tls && tls != Tls::Off {
        config.ssl_negotiation(SslNegotiation::Direct);
    }
    config
}

enum Attempt {
    Failed(postgres::Error),
    TimedOut(Duration),
    /// No thread to connect on.
    NoThread(std::io::Error),
}

/// Connects, giving up after `timeout`: the postgres crate's own timeout
/// covers only the TCP connection, not the name look-up nor a server that
/// accepts and then says nothing. An attempt given up on is left to end
/// on its own thread; its connection, if it ever comes, is dropped.
fn with_deadline(
    config: postgres::Config,
    connector: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    timeout: Option<Duration>,
) -> Result<postgres::Client, Attempt> {
    let run = move || match connector {
        Some(connector) => config.connect(connector),
        None => config.connect(postgres::NoTls),
    };
    let Some(timeout) = timeout else {
        return run().map_err(Attempt::Failed);
    };
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("postgres-connect".into())
        .spawn(move || {
            let _ = sender.send(run());
        })
        .map_err(Attempt::NoThread)?;
    match receiver.recv_timeout(timeout) {
        Ok(result) => result.map_err(Attempt::Failed),
        Err(_) => Err(Attempt::TimedOut(timeout)),
    }
}

/// What an attempt was, to explain its failure.
struct Context<'a> {
    settings: &'a Settings,
    server: &'a Server,
    password_source: Option<&'a PasswordSource>,
    passwords: &'a Passwords,
    check: tls::Check,
}

impl Context<'_> {
    /// `sslmode=verify-full, checked against the system's trusted root
    /// certificates`.
    fn tls_label(&self) -> String {
        let mode = format!("sslmode={}", self.settings.sslmode.name());
        match (self.check, &self.settings.root_certs) {
            (tls::Check::Nothing, _) | (_, None) => format!("{mode}, the certificate not checked"),
            (tls::Check::Chain, Some(roots)) => {
                format!("{mode}, the certificate's chain checked against the {roots}")
            }
            (tls::Check::ChainAndName, Some(roots)) => {
                format!("{mode}, the certificate checked against the {roots} and for the host name")
            }
        }
    }

    /// A failed attempt as a user should read it.
    fn explain(&self, error: &postgres::Error) -> Failure {
        let settings = self.settings;
        let user = &settings.user;
        let dbname = &settings.dbname;
        if let Some(db) = error.as_db_error() {
            let code = db.code().code();
            let message = db.message();
            let text = match code {
                "28P01" => format!(
                    "password authentication failed for user \"{user}\"{}: check the password in the connection string, PGPASSWORD or ~/.pgpass",
                    self.password_source
                        .map(|source| format!(" (the password came from {source})"))
                        .unwrap_or_default()
                ),
                "28000" => format!(
                    "the server refused user \"{user}\": {message}; check the user name, and the server's pg_hba.conf for this host, user and database"
                ),
                "3D000" => {
                    let host = match &self.server.host {
                        settings::Host::Socket(dir) => dir.display().to_string(),
                        settings::Host::Tcp { name: Some(name), .. } => name.clone(),
                        settings::Host::Tcp { addr: Some(addr), .. } => addr.to_string(),
                        settings::Host::Tcp { .. } => "localhost".to_string(),
                    };
                    format!(
                        "database \"{dbname}\" does not exist: create it (createdb -h {host} -p {} -U {user} {dbname}, or CREATE DATABASE as a user allowed to), and muninn-sync or muninn-prepare then creates the catalogue's tables in it",
                        self.server.port
                    )
                }
                "42501" => format!(
                    "{message}: user \"{user}\" may not connect to database \"{dbname}\" (GRANT CONNECT ON DATABASE ... TO {user})"
                ),
                "53300" => format!(
                    "{message}: the server has no free connection; try again later, or raise its max_connections"
                ),
                "57P03" => format!(
                    "{message}: the server is starting up, shutting down or recovering; try again"
                ),
                _ => format!("{message} (SQLSTATE {code})"),
            };
            return Failure {
                kind: FailureKind::Server,
                message: text,
            };
        }
        let chain = chain(error);
        let top = error.to_string();
        // A server before PostgreSQL 17 closes a direct TLS handshake.
        let direct = if settings.direct_tls {
            " (sslnegotiation=direct needs a PostgreSQL 17 server or later)"
        } else {
            ""
        };
        if let Some(rustls_error) = find_rustls_error(error) {
            let hint = tls::explain(rustls_error)
                .map(|hint| format!("{hint}: "))
                .unwrap_or_default();
            return Failure {
                kind: FailureKind::Tls,
                message: format!(
                    "TLS ({}) failed: {hint}{rustls_error}{direct}",
                    self.tls_label()
                ),
            };
        }
        if top.starts_with("error performing TLS handshake") {
            let message = if chain.contains("server does not support TLS") {
                format!(
                    "the server does not accept TLS connections, which sslmode={} requires: turn ssl on in the server's configuration, or write sslmode=prefer (TLS when the server offers it) or sslmode=disable",
                    settings.sslmode.name()
                )
            } else {
                format!("TLS ({}) failed: {chain}{direct}", self.tls_label())
            };
            return Failure {
                kind: FailureKind::Tls,
                message,
            };
        }
        if chain.contains("password missing") {
            return Failure {
                kind: FailureKind::Server,
                message: format!(
                    "the server asks for a password for user \"{user}\" and none was given: give it in the connection string (password=...), PGPASSWORD or ~/.pgpass (a line host:port:database:user:password, chmod 0600){}",
                    self.passwords.why_none(settings, self.server)
                ),
            };
        }
        if top.starts_with("error connecting to server") {
            let io = find_io_error(error);
            let hint = match (&self.server.host, io.map(std::io::Error::kind)) {
                (settings::Host::Socket(dir), _) => format!(
                    ": is the server running on this machine, with its socket {}/.s.PGSQL.{} (unix_socket_directories, port)?",
                    dir.display(),
                    self.server.port
                ),
                (_, Some(std::io::ErrorKind::ConnectionRefused)) => format!(
                    ": is the server running on that host and accepting TCP/IP connections on port {} (listen_addresses, port)?",
                    self.server.port
                ),
                (_, Some(std::io::ErrorKind::TimedOut)) => {
                    ": is the host up, and does a firewall let the port through?".to_string()
                }
                _ => String::new(),
            };
            return Failure {
                kind: FailureKind::Other,
                message: format!("cannot reach {}: {chain}{hint}", self.server.describe()),
            };
        }
        if top.starts_with("authentication error") {
            return Failure {
                kind: FailureKind::Server,
                message: format!(
                    "{chain} (muninn-sync authenticates by password, MD5 or SCRAM, as the server's pg_hba.conf allows)"
                ),
            };
        }
        Failure {
            kind: FailureKind::Other,
            message: chain,
        }
    }
}

/// An error and its causes, `: `-separated.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}

fn find_io_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        current = error.source();
    }
    None
}

/// The rustls error in a chain: tokio-rustls wraps it in an `io::Error`.
fn find_rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    /// The error of a connection that must fail.
    fn failure(options: &PostgresOptions, env: &Environment) -> String {
        match connect_in(options, env) {
            Ok(_) => panic!("connected with {options:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            home: Some(PathBuf::from("/nonexistent/home")),
            os_user: Some("osuser".into()),
            socket_dir: PathBuf::from("/var/run/postgresql"),
        }
    }

    #[test]
    fn debug_masks_the_password_in_either_form() {
        for text in [
            "host=db.example.org user=muninn password=hunter2 dbname=archive",
            "host=db.example.org password='hunter2 with spaces'",
            "postgresql://muninn:hunter2@db.example.org/archive",
            "postgresql://muninn@db.example.org/archive?password=hunter2",
            "host=db password='hunter2",
        ] {
            let options = PostgresOptions::new(text);
            let debug = format!("{options:?} {options:#?}");
            assert!(!debug.contains("hunter2"), "{debug}");
        }
        let shown = format!(
            "{:?}",
            PostgresOptions::new("host=db.example.org password=hunter2")
        );
        assert_eq!(
            shown,
            "PostgresOptions { connection_string: \"host=db.example.org password=***\", table_prefix: \"\" }"
        );
    }

    #[test]
    fn describe_applies_the_environment_and_defaults() {
        let options = PostgresOptions::new("dbname=archive password=hunter2");
        assert_eq!(
            describe_in(
                &options,
                &env(&[("PGHOST", "db.example.org"), ("PGPORT", "5433")])
            ),
            "db.example.org:5433/archive as osuser"
        );
        assert_eq!(
            describe_in(&options, &env(&[])),
            "/var/run/postgresql:5432/archive as osuser"
        );
        let bad = describe_in(
            &PostgresOptions::new("password=hunter2 sslmode=x"),
            &env(&[]),
        );
        assert!(
            bad.contains("invalid sslmode value") && !bad.contains("hunter2"),
            "{bad}"
        );
    }

    #[test]
    fn check_reads_the_string_alone() {
        PostgresOptions::new("").check().unwrap();
        PostgresOptions::new("postgresql://u:p@h/d?sslmode=verify-full")
            .check()
            .unwrap();
        let error = PostgresOptions::new("host=h password=hunter2 sslmode=sometimes")
            .check()
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "invalid sslmode value \"sometimes\" (expected disable, allow, prefer, require, verify-ca or verify-full)"
        );
    }

    #[test]
    fn an_unusable_string_is_an_error_before_any_connection() {
        let error = failure(
            &PostgresOptions::new("host=db.example.org password=hunter2 sslcert=/x"),
            &env(&[]),
        );
        assert!(
            error.contains("connection_string")
                && error.contains("\"sslcert\" is not supported")
                && !error.contains("hunter2"),
            "{error}"
        );
    }

    #[test]
    fn an_unreachable_server_is_named_with_the_os_error() {
        // A port nothing listens on: bind one, then let it go.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let options = PostgresOptions::new(format!(
            "host=127.0.0.1 port={port} user=muninn password=hunter2 dbname=archive"
        ));
        let error = failure(&options, &env(&[]));
        assert!(
            error.starts_with(&format!(
                "cannot connect to the PostgreSQL catalogue 127.0.0.1:{port}/archive as muninn: cannot reach 127.0.0.1:{port}"
            )) && error.contains("os error")
                && error.contains("accepting TCP/IP connections")
                && !error.contains("hunter2"),
            "{error}"
        );
    }

    #[test]
    fn a_server_that_says_nothing_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let options = PostgresOptions::new(format!(
            "host=127.0.0.1 port={port} user=u dbname=d connect_timeout=2 sslmode=disable"
        ));
        let started = std::time::Instant::now();
        let error = failure(&options, &env(&[]));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            error.contains(&format!("no answer from 127.0.0.1:{port} within 2 s")),
            "{error}"
        );
        drop(listener);
    }

    #[test]
    fn the_crates_configuration_keeps_the_password_out_of_debug() {
        let settings = Settings::resolve(
            "host=db.example.org user=muninn password=hunter2",
            &env(&[]),
        )
        .unwrap();
        let config = crate_config(&settings, &settings.servers[0], Some("hunter2"), Tls::On);
        assert_eq!(config.get_password(), Some(&b"hunter2"[..]));
        assert_eq!(config.get_application_name(), Some("muninn-sync"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn shuffle_keeps_every_item() {
        let mut items: Vec<u32> = (0..20).collect();
        shuffle(&mut items);
        items.sort();
        assert_eq!(items, (0..20).collect::<Vec<_>>());
    }
}
