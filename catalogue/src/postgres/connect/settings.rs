//! A connection's settings as libpq has them: the connection string's
//! keywords first, then the `PG*` environment variable of each keyword the
//! string leaves out, then libpq's defaults. A keyword that muninn-sync
//! cannot honour is an error naming it, never ignored.

use super::conninfo::{self, SyntaxError};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the connection is made in: the process's environment variables,
/// home directory, user name and Unix socket directory (a test gives its
/// own).
#[derive(Clone, Default)]
pub struct Environment {
    /// The `PG*` variables that are set (as text).
    pub vars: HashMap<String, String>,
    /// Where `~/.pgpass` and `~/.postgresql/root.crt` are looked for.
    pub home: Option<PathBuf>,
    /// The operating system's name for the user (libpq's default user).
    pub os_user: Option<String>,
    /// The default Unix socket directory.
    pub socket_dir: PathBuf,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut vars: Vec<(&String, &str)> = self
            .vars
            .iter()
            .map(|(name, value)| {
                let shown = if name == "PGPASSWORD" { "***" } else { value };
                (name, shown)
            })
            .collect();
        vars.sort();
        f.debug_struct("Environment")
            .field("vars", &vars)
            .field("home", &self.home)
            .field("os_user", &self.os_user)
            .field("socket_dir", &self.socket_dir)
            .finish()
    }
}

/// The Unix socket directories libpq is built with: Debian's first, then
/// upstream's.
const SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];

impl Environment {
    /// This process's.
    pub fn process() -> Environment {
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .filter(|(name, _)| name.starts_with("PG"))
            .collect();
        let socket_dir = SOCKET_DIRS
            .iter()
            .map(PathBuf::from)
            .find(|dir| dir.is_dir())
            .unwrap_or_else(|| PathBuf::from(SOCKET_DIRS[1]));
        Environment {
            vars,
            home: std::env::home_dir(),
            os_user: whoami::username().ok(),
            socket_dir,
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The `PG*` variables that are set but that muninn-sync does not
    /// honour, with what libpq would do with each.
    pub fn unhonoured(&self) -> Vec<(&'static str, &'static str)> {
        UNHONOURED_VARIABLES
            .iter()
            .filter(|(name, _)| self.vars.contains_key(*name))
            .copied()
            .collect()
    }
}

/// Environment variables libpq reads that muninn-sync does not, and what
/// they are for.
pub const UNHONOURED_VARIABLES: [(&str, &str); 15] = [
    ("PGSERVICE", "a connection service file entry"),
    ("PGSERVICEFILE", "the connection service file"),
    ("PGSYSCONFDIR", "where the system-wide service file is"),
    ("PGSSLCERT", "a client certificate"),
    ("PGSSLKEY", "a client certificate's key"),
    ("PGSSLCRL", "a certificate revocation list"),
    ("PGSSLCRLDIR", "a certificate revocation list directory"),
    (
        "PGREQUIREPEER",
        "the server process's user name on a Unix socket",
    ),
    ("PGREQUIRESSL", "TLS (deprecated: use PGSSLMODE)"),
    ("PGKRBSRVNAME", "the Kerberos service name"),
    ("PGGSSLIB", "the GSS library"),
    ("PGREQUIREAUTH", "the authentication methods allowed"),
    ("PGDATESTYLE", "the session's DateStyle"),
    ("PGTZ", "the session's time zone"),
    ("PGGEQO", "the session's geqo setting"),
];

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The value as written.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate chain is checked whatever else.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// Which certificates a server's chain must lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file (`sslrootcert`, or libpq's `~/.postgresql/root.crt`).
    File(PathBuf),
    /// The system's trusted roots.
    System,
}

impl fmt::Display for RootCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootCerts::File(path) => write!(f, "root certificate file \"{}\"", path.display()),
            RootCerts::System => f.write_str("system's trusted root certificates"),
        }
    }
}

/// One server of the host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: Host,
    pub port: u16,
}

/// Where a server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A Unix socket directory.
    Socket(PathBuf),
    /// A host name and/or a numeric address (`hostaddr`, which is then
    /// connected to, the name serving TLS and the password file).
    Tcp {
        name: Option<String>,
        addr: Option<IpAddr>,
    },
}

impl Server {
    /// `host:port`, `[v6]:port`, or `/socket/dir:port`.
    pub fn describe(&self) -> String {
        let host = match &self.host {
            Host::Socket(dir) => dir.display().to_string(),
            Host::Tcp {
                name: Some(name), ..
            } => bracketed(name),
            Host::Tcp {
                name: None,
                addr: Some(addr),
            } => bracketed(&addr.to_string()),
            Host::Tcp {
                name: None,
                addr: None,
            } => String::from("?"),
        };
        format!("{host}:{}", self.port)
    }

    /// The host name the password file is searched with: the host as
    /// written, else the address, and `localhost` for the default socket
    /// directory (libpq's rule).
    pub fn password_file_host(&self, socket_dir: &Path) -> String {
        match &self.host {
            Host::Socket(dir) if dir == socket_dir => "localhost".to_string(),
            Host::Socket(dir) => dir.display().to_string(),
            Host::Tcp {
                name: Some(name), ..
            } => name.clone(),
            Host::Tcp {
                addr: Some(addr), ..
            } => addr.to_string(),
            Host::Tcp { .. } => "localhost".to_string(),
        }
    }

    pub fn is_socket(&self) -> bool {
        matches!(self.host, Host::Socket(_))
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// A value kept out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a password came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    ConnectionString,
    Environment,
    File(PathBuf),
}

impl fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::ConnectionString => f.write_str("the connection string"),
            PasswordSource::Environment => f.write_str("PGPASSWORD"),
            PasswordSource::File(path) => write!(f, "the password file \"{}\"", path.display()),
        }
    }
}

/// libpq's `target_session_attrs` values the postgres crate can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
}

/// libpq's `channel_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    Disable,
    Prefer,
    Require,
}

/// The TLS versions allowed, of those rustls has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsVersions {
    pub tls12: bool,
    pub tls13: bool,
}

/// Everything a connection needs, after the environment and the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Tried in order (shuffled with `load_balance_hosts=random`).
    pub servers: Vec<Server>,
    pub dbname: String,
    pub user: String,
    /// From the connection string or `PGPASSWORD`; else the password file.
    pub password: Option<(Secret, PasswordSource)>,
    /// The password file to look in (`None`: no home directory).
    pub passfile: Option<PathBuf>,
    pub sslmode: SslMode,
    /// What a server's chain is checked against, when it is: `None` means
    /// it is not (sslmode below verify-ca and no root certificate file).
    pub root_certs: Option<RootCerts>,
    /// `None`: wait for ever (`connect_timeout=0`).
    pub connect_timeout: Option<Duration>,
    pub application_name: String,
    pub options: Option<String>,
    pub keepalives: Option<bool>,
    pub keepalives_idle: Option<Duration>,
    pub keepalives_interval: Option<Duration>,
    pub keepalives_count: Option<u32>,
    pub tcp_user_timeout: Option<Duration>,
    pub target_session_attrs: SessionAttrs,
    pub channel_binding: ChannelBinding,
    pub load_balance: bool,
    /// `sslnegotiation=direct`: TLS at once, without asking the server.
    pub direct_tls: bool,
    /// Send the host name in the TLS handshake (`sslsni`).
    pub sni: bool,
    pub tls_versions: TlsVersions,
    /// The default socket directory, which the password file calls
    /// `localhost`.
    pub socket_dir: PathBuf,
}

/// The name muninn-sync gives itself on the server unless the user gives
/// one (`application_name`, `PGAPPNAME` or `fallback_application_name`).
pub const APPLICATION_NAME: &str = "muninn-sync";

/// muninn-sync's wait for a server to answer, where libpq waits for ever:
/// a sync run from cron should fail, not hang, when the server is away.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// libpq's default port.
pub const DEFAULT_PORT: u16 = 5432;

/// The keywords muninn-sync honours, and the environment variable that
/// gives each a value the connection string leaves out.
const HONOURED: [(&str, Option<&str>); 29] = [
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("dbname", Some("PGDATABASE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("options", Some("PGOPTIONS")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("sslmode", Some("PGSSLMODE")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslnegotiation", Some("PGSSLNEGOTIATION")),
    ("sslsni", Some("PGSSLSNI")),
    ("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    ("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    ("sslcompression", Some("PGSSLCOMPRESSION")),
    ("sslcertmode", Some("PGSSLCERTMODE")),
    ("gssencmode", Some("PGGSSENCMODE")),
    ("client_encoding", Some("PGCLIENTENCODING")),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
    ("keepalives", None),
    ("keepalives_idle", None),
    ("keepalives_interval", None),
    ("keepalives_count", None),
    ("tcp_user_timeout", None),
];

/// libpq keywords muninn-sync cannot honour, and why.
const UNSUPPORTED: [(&str, &str); 16] = [
    ("service", "connection service files (pg_service.conf) are not read: write the service's keywords in the connection string"),
    ("sslcert", "client certificates are not supported"),
    ("sslkey", "client certificates are not supported"),
    ("sslpassword", "client certificates are not supported"),
    ("sslkeylogfile", "TLS key logging is not supported"),
    ("sslcrl", "certificate revocation lists are not supported"),
    ("sslcrldir", "certificate revocation lists are not supported"),
    ("requirepeer", "checking the server process's user name is not supported"),
    ("requiressl", "it is deprecated in libpq: write sslmode=require"),
    ("krbsrvname", "GSSAPI (Kerberos) is not supported"),
    ("gsslib", "GSSAPI (Kerberos) is not supported"),
    ("gssdelegation", "GSSAPI (Kerberos) is not supported"),
    ("require_auth", "restricting the authentication methods is not supported"),
    ("replication", "a catalogue needs no replication connection"),
    ("scram_client_key", "SCRAM pass-through keys are not supported"),
    ("scram_server_key", "SCRAM pass-through keys are not supported"),
];

/// Why a connection string cannot be used; never quotes a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

impl From<SyntaxError> for SettingsError {
    fn from(error: SyntaxError) -> Self {
        SettingsError(error.0)
    }
}

fn invalid(keyword: &str, value: &str, expected: &str) -> SettingsError {
    SettingsError(format!(
        "invalid {keyword} value \"{value}\" (expected {expected})"
    ))
}

/// The values given for each keyword: the connection string's last, or
/// the environment's.
struct Given<'a> {
    string: HashMap<String, String>,
    env: &'a Environment,
}

impl Given<'_> {
    fn get(&self, keyword: &str) -> Option<&str> {
        if let Some(value) = self.string.get(keyword) {
            return Some(value);
        }
        let (_, variable) = HONOURED.iter().find(|(k, _)| *k == keyword)?;
        self.env.var((*variable)?)
    }

    /// The value, unless absent or empty (libpq takes an empty value as
    /// the default).
    fn non_empty(&self, keyword: &str) -> Option<&str> {
        self.get(keyword).filter(|value| !value.is_empty())
    }

    fn in_string(&self, keyword: &str) -> bool {
        self.string.contains_key(keyword)
    }

    /// libpq's integer parameters: surrounding white space allowed.
    fn integer(&self, keyword: &str) -> Result<Option<i64>, SettingsError> {
        match self.non_empty(keyword) {
            None => Ok(None),
            Some(value) => value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| invalid(keyword, value, "a whole number")),
        }
    }

    fn seconds(&self, keyword: &str) -> Result<Option<Duration>, SettingsError> {
        Ok(self
            .integer(keyword)?
            .filter(|&n| n > 0)
            .map(|n| Duration::from_secs(n as u64)))
    }
}

impl Settings {
    /// Reads a connection string and fills it from `env` as libpq would.
    pub fn resolve(connection_string: &str, env: &Environment) -> Result<Settings, SettingsError> {
        let params = conninfo::parse(connection_string)?;
        let from = if conninfo::is_url(connection_string) {
            "URL query parameter"
        } else {
            "connection string keyword"
        };
        let mut string = HashMap::new();
        for param in params {
            let keyword = param.keyword.as_str();
            if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| *k == keyword) {
                return Err(SettingsError(format!(
                    "{from} \"{keyword}\" is not supported by muninn-sync: {why}"
                )));
            }
            if !HONOURED.iter().any(|(k, _)| *k == keyword) {
                return Err(SettingsError(format!(
                    "unknown {from} \"{keyword}\" (libpq's keywords: host, hostaddr, port, dbname, user, password, passfile, sslmode, sslrootcert, connect_timeout, application_name, options, ...)"
                )));
            }
            string.insert(param.keyword, param.value);
        }
        let given = Given { string, env };
        Self::from_given(&given, env)
    }

    fn from_given(given: &Given<'_>, env: &Environment) -> Result<Settings, SettingsError> {
        let servers = servers(given, env)?;
        let user = match given.non_empty("user") {
            Some(user) => user.to_string(),
            None => env.os_user.clone().ok_or_else(|| {
                SettingsError(
                    "no user name: the operating system's user name cannot be found; write user=... in the connection string or set PGUSER".into(),
                )
            })?,
        };
        let dbname = given.non_empty("dbname").unwrap_or(&user).to_string();
        let password = given.non_empty("password").map(|password| {
            let source = if given.in_string("password") {
                PasswordSource::ConnectionString
            } else {
                PasswordSource::Environment
            };
            (Secret(password.to_string()), source)
        });
        let passfile = match given.non_empty("passfile") {
            Some(path) => Some(PathBuf::from(path)),
            None => env.home.as_ref().map(|home| home.join(".pgpass")),
        };

        let sslrootcert = given.non_empty("sslrootcert");
        let sslmode = match given.non_empty("sslmode") {
            Some(value) => SslMode::parse(value).ok_or_else(|| {
                invalid(
                    "sslmode",
                    value,
                    "disable, allow, prefer, require, verify-ca or verify-full",
                )
            })?,
            // libpq 16: the system's roots imply checking the name.
            None if sslrootcert == Some("system") => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        let root_certs = match sslrootcert {
            Some("system") if sslmode != SslMode::VerifyFull => {
                return Err(SettingsError(format!(
                    "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
                    sslmode.name()
                )))
            }
            Some("system") => Some(RootCerts::System),
            Some(path) => {
                let path = PathBuf::from(path);
                if path.exists() {
                    Some(RootCerts::File(path))
                } else if sslmode.verifies() {
                    return Err(SettingsError(format!(
                        "root certificate file \"{}\" does not exist: give the file, use the system's trusted roots with sslrootcert=system, or choose an sslmode that does not check the certificate",
                        path.display()
                    )));
                } else {
                    None
                }
            }
            // libpq's default file checks any TLS connection when it
            // exists; muninn-sync checks verify-ca and verify-full against
            // the system's roots when it does not (libpq refuses them).
            None => env
                .home
                .as_ref()
                .map(|home| home.join(".postgresql/root.crt"))
                .filter(|path| path.is_file())
                .map(RootCerts::File)
                .or_else(|| sslmode.verifies().then_some(RootCerts::System)),
        };

        let connect_timeout = match given.integer("connect_timeout")? {
            None => Some(DEFAULT_CONNECT_TIMEOUT),
            Some(n) if n <= 0 => None,
            // libpq's least timeout: 1 would often fail for no reason.
            Some(1) => Some(Duration::from_secs(2)),
            Some(n) => Some(Duration::from_secs(n as u64)),
        };
        let application_name = given
            .non_empty("application_name")
            .or_else(|| given.non_empty("fallback_application_name"))
            .unwrap_or(APPLICATION_NAME)
            .to_string();
        let options = given.non_empty("options").map(str::to_string);

        let keepalives = given.integer("keepalives")?.map(|n| n != 0);
        let keepalives_idle = given.seconds("keepalives_idle")?;
        let keepalives_interval = given.seconds("keepalives_interval")?;
        let keepalives_count = match given.integer("keepalives_count")? {
            None => None,
            Some(n) => Some(
                u32::try_from(n)
                    .map_err(|_| invalid("keepalives_count", &n.to_string(), "a count"))?,
            ),
        };

        // In milliseconds, as libpq has it (the postgres crate's own parser
        // reads seconds).
        let tcp_user_timeout = given
            .integer("tcp_user_timeout")?
            .filter(|&n| n > 0)
            .map(|n| Duration::from_millis(n as u64));

        let target_session_attrs = match given.non_empty("target_session_attrs") {
            None | Some("any") => SessionAttrs::Any,
            Some("read-write") => SessionAttrs::ReadWrite,
            Some("read-only") => SessionAttrs::ReadOnly,
            Some(other @ ("primary" | "standby" | "prefer-standby")) => {
                return Err(SettingsError(format!(
                    "target_session_attrs={other} is not supported by muninn-sync (the postgres crate checks any, read-write and read-only); a sync needs read-write"
                )))
            }
            Some(other) => {
                return Err(invalid(
                    "target_session_attrs",
                    other,
                    "any, read-write or read-only",
                ))
            }
        };
        let channel_binding = match given.non_empty("channel_binding") {
            None | Some("prefer") => ChannelBinding::Prefer,
            Some("disable") => ChannelBinding::Disable,
            Some("require") => ChannelBinding::Require,
            Some(other) => {
                return Err(invalid(
                    "channel_binding",
                    other,
                    "disable, prefer or require",
                ))
            }
        };
        let load_balance = match given.non_empty("load_balance_hosts") {
            None | Some("disable") => false,
            Some("random") => true,
            Some(other) => return Err(invalid("load_balance_hosts", other, "disable or random")),
        };
        let direct_tls = match given.non_empty("sslnegotiation") {
            None | Some("postgres") => false,
            Some("direct") => true,
            Some(other) => return Err(invalid("sslnegotiation", other, "postgres or direct")),
        };
        if direct_tls && matches!(sslmode, SslMode::Disable | SslMode::Allow | SslMode::Prefer) {
            return Err(SettingsError(format!(
                "weak sslmode \"{}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")",
                sslmode.name()
            )));
        }
        let sni = match given.non_empty("sslsni") {
            None | Some("1") => true,
            Some("0") => false,
            Some(other) => return Err(invalid("sslsni", other, "0 or 1")),
        };
        let version = |keyword: &str| -> Result<Option<u8>, SettingsError> {
            match given.non_empty(keyword) {
                None => Ok(None),
                Some("TLSv1.2") => Ok(Some(2)),
                Some("TLSv1.3") => Ok(Some(3)),
                Some(old @ ("TLSv1" | "TLSv1.1")) => Err(SettingsError(format!(
                    "{keyword}={old} is not supported by muninn-sync: its TLS library (rustls) speaks TLSv1.2 and TLSv1.3 only"
                ))),
                Some(other) => Err(invalid(keyword, other, "TLSv1.2 or TLSv1.3")),
            }
        };
        let min = version("ssl_min_protocol_version")?.unwrap_or(2);
        let max = version("ssl_max_protocol_version")?.unwrap_or(3);
        if min > max {
            return Err(SettingsError(
                "ssl_min_protocol_version is above ssl_max_protocol_version".into(),
            ));
        }
        let tls_versions = TlsVersions {
            tls12: min <= 2,
            tls13: max >= 3,
        };
        // Accepted as libpq accepts them, with nothing to do: libpq ignores
        // sslcompression now; muninn-sync sends no client certificate and
        // uses no GSSAPI; the postgres crate always speaks UTF-8.
        if let Some(value) = given.non_empty("sslcompression") {
            if !matches!(value, "0" | "1") {
                return Err(invalid("sslcompression", value, "0 or 1"));
            }
        }
        match given.non_empty("sslcertmode") {
            None | Some("disable" | "allow") => {}
            Some("require") => {
                return Err(SettingsError(
                    "sslcertmode=require is not supported by muninn-sync: client certificates are not supported".into(),
                ))
            }
            Some(other) => return Err(invalid("sslcertmode", other, "disable, allow or require")),
        }
        match given.non_empty("gssencmode") {
            None | Some("disable" | "prefer") => {}
            Some("require") => {
                return Err(SettingsError(
                    "gssencmode=require is not supported by muninn-sync: GSSAPI (Kerberos) is not supported".into(),
                ))
            }
            Some(other) => return Err(invalid("gssencmode", other, "disable, prefer or require")),
        }
        if let Some(encoding) = given.non_empty("client_encoding") {
            let utf8 = ["utf8", "utf-8", "unicode", "auto"]
                .iter()
                .any(|name| encoding.eq_ignore_ascii_case(name));
            if !utf8 {
                return Err(SettingsError(format!(
                    "client_encoding \"{encoding}\" is not supported by muninn-sync: it speaks UTF8 to the server"
                )));
            }
        }

        Ok(Settings {
            servers,
            dbname,
            user,
            password,
            passfile,
            sslmode,
            root_certs,
            connect_timeout,
            application_name,
            options,
            keepalives,
            keepalives_idle,
            keepalives_interval,
            keepalives_count,
            tcp_user_timeout,
            target_session_attrs,
            channel_binding,
            load_balance,
            direct_tls,
            sni,
            tls_versions,
            socket_dir: env.socket_dir.clone(),
        })
    }

    /// "host:port/dbname as user" (hosts joined by commas).
    pub fn describe(&self) -> String {
        let servers: Vec<String> = self.servers.iter().map(Server::describe).collect();
        format!("{}/{} as {}", servers.join(","), self.dbname, self.user)
    }
}

/// The host list: `host` and `hostaddr` entries side by side, each with
/// its port; the default socket directory when neither is given.
fn servers(given: &Given<'_>, env: &Environment) -> Result<Vec<Server>, SettingsError> {
    let split = |keyword: &str| -> Vec<String> {
        given
            .non_empty(keyword)
            .map(|value| value.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let names = split("host");
    let addrs = split("hostaddr");
    if !names.is_empty() && !addrs.is_empty() && names.len() != addrs.len() {
        return Err(SettingsError(format!(
            "could not match {} host names to {} hostaddr values",
            names.len(),
            addrs.len()
        )));
    }
    let count = names.len().max(addrs.len()).max(1);
    let ports: Vec<u16> = split("port")
        .iter()
        .map(|port| {
            if port.is_empty() {
                return Ok(DEFAULT_PORT);
            }
            port.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| invalid("port", port, "a number from 1 to 65535"))
        })
        .collect::<Result<_, _>>()?;
    if ports.len() > 1 && ports.len() != count {
        return Err(SettingsError(format!(
            "could not match {} port numbers to {count} hosts",
            ports.len()
        )));
    }
    (0..count)
        .map(|i| {
            let name = names.get(i).filter(|n| !n.is_empty());
            let addr = match addrs.get(i).filter(|a| !a.is_empty()) {
                None => None,
                Some(addr) => Some(addr.parse::<IpAddr>().map_err(|_| {
                    invalid("hostaddr", addr, "a numeric IPv4 or IPv6 address")
                })?),
            };
            let host = match (name, addr) {
                (Some(name), None) if name.starts_with('/') => Host::Socket(PathBuf::from(name)),
                (Some(name), _) if name.starts_with('@') => {
                    return Err(SettingsError(
                        "abstract Unix sockets (a host starting with '@') are not supported by muninn-sync".into(),
                    ))
                }
                (None, None) => Host::Socket(env.socket_dir.clone()),
                (name, addr) => Host::Tcp {
                    name: name.cloned(),
                    addr,
                },
            };
            let port = match ports.len() {
                0 => DEFAULT_PORT,
                1 => ports[0],
                _ => ports[i],
            };
            Ok(Server { host, port })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: Some(PathBuf::from("/nonexistent/home/muninn")),
            os_user: Some("osuser".into()),
            socket_dir: PathBuf::from("/var/run/postgresql"),
        }
    }

    fn resolve(text: &str, vars: &[(&str, &str)]) -> Settings {
        Settings::resolve(text, &env(vars)).unwrap()
    }

    fn error(text: &str, vars: &[(&str, &str)]) -> String {
        Settings::resolve(text, &env(vars)).unwrap_err().to_string()
    }

    #[test]
    fn libpq_defaults_fill_an_empty_string() {
        let settings = resolve("", &[]);
        assert_eq!(
            settings.describe(),
            "/var/run/postgresql:5432/osuser as osuser"
        );
        assert_eq!(settings.sslmode, SslMode::Prefer);
        assert_eq!(settings.root_certs, None);
        assert_eq!(settings.password, None);
        assert_eq!(
            settings.passfile,
            Some(PathBuf::from("/nonexistent/home/muninn/.pgpass"))
        );
        assert_eq!(settings.application_name, "muninn-sync");
        assert_eq!(settings.connect_timeout, Some(Duration::from_secs(30)));
        assert!(settings.servers[0].is_socket());
        assert_eq!(
            settings.servers[0].password_file_host(&settings.socket_dir),
            "localhost"
        );
    }

    #[test]
    fn the_environment_fills_only_what_the_string_leaves_out() {
        let vars = [
            ("PGHOST", "env.example.org"),
            ("PGPORT", "6000"),
            ("PGDATABASE", "envdb"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envsecret"),
            ("PGPASSFILE", "/etc/muninn/pgpass"),
            ("PGSSLMODE", "require"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGAPPNAME", "envapp"),
            ("PGOPTIONS", "-c geqo=off"),
        ];
        let all_env = resolve("", &vars);
        assert_eq!(all_env.describe(), "env.example.org:6000/envdb as envuser");
        assert_eq!(
            all_env.password,
            Some((Secret("envsecret".into()), PasswordSource::Environment))
        );
        assert_eq!(all_env.passfile, Some(PathBuf::from("/etc/muninn/pgpass")));
        assert_eq!(all_env.sslmode, SslMode::Require);
        assert_eq!(all_env.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(all_env.application_name, "envapp");
        assert_eq!(all_env.options.as_deref(), Some("-c geqo=off"));

        let string_wins = resolve(
            "host=db.example.org dbname=archive user=muninn password=secret sslmode=disable application_name=mine",
            &vars,
        );
        assert_eq!(
            string_wins.describe(),
            "db.example.org:6000/archive as muninn"
        );
        assert_eq!(
            string_wins.password,
            Some((Secret("secret".into()), PasswordSource::ConnectionString))
        );
        assert_eq!(string_wins.sslmode, SslMode::Disable);
        assert_eq!(string_wins.application_name, "mine");

        let url = resolve("postgresql://muninn@db.example.org/archive", &vars);
        assert_eq!(url.describe(), "db.example.org:6000/archive as muninn");
        // An empty value counts as given: the default, not the environment.
        let empty = resolve("host='' port=''", &vars);
        assert_eq!(
            empty.describe(),
            "/var/run/postgresql:5432/envdb as envuser"
        );
        // fallback_application_name gives way to PGAPPNAME.
        assert_eq!(
            resolve("fallback_application_name=fb", &[]).application_name,
            "fb"
        );
        assert_eq!(
            resolve("fallback_application_name=fb", &vars).application_name,
            "envapp"
        );
    }

    #[test]
    fn host_lists_addresses_and_sockets() {
        let settings = resolve("host=a,/tmp,b hostaddr=192.0.2.1,,::1 port=1,2,3", &[]);
        assert_eq!(
            settings.servers,
            vec![
                Server {
                    host: Host::Tcp {
                        name: Some("a".into()),
                        addr: Some("192.0.2.1".parse().unwrap())
                    },
                    port: 1
                },
                Server {
                    host: Host::Socket("/tmp".into()),
                    port: 2
                },
                Server {
                    host: Host::Tcp {
                        name: Some("b".into()),
                        addr: Some("::1".parse().unwrap())
                    },
                    port: 3
                },
            ]
        );
        assert_eq!(settings.describe(), "a:1,/tmp:2,b:3/osuser as osuser");
        let v6 = resolve("hostaddr=::1 port=5433", &[]);
        assert_eq!(v6.describe(), "[::1]:5433/osuser as osuser");
        assert_eq!(v6.servers[0].password_file_host(&v6.socket_dir), "::1");
        let other_socket = resolve("host=/tmp", &[]);
        assert_eq!(
            other_socket.servers[0].password_file_host(&other_socket.socket_dir),
            "/tmp"
        );
        assert!(
            error("host=a,b port=1,2,3", &[]).contains("could not match 3 port numbers to 2 hosts")
        );
        assert!(error("host=a,b hostaddr=192.0.2.1", &[])
            .contains("could not match 2 host names to 1 hostaddr"));
        assert!(error("hostaddr=db.example.org", &[]).contains("invalid hostaddr value"));
        assert!(error("port=0", &[]).contains("invalid port value \"0\""));
        assert!(error("port=x", &[("PGPORT", "5432")]).contains("invalid port value \"x\""));
    }

    #[test]
    fn tls_modes_and_root_certificates_as_libpq() {
        assert_eq!(resolve("sslmode=require", &[]).root_certs, None);
        assert_eq!(
            resolve("sslmode=verify-ca", &[]).root_certs,
            Some(RootCerts::System)
        );
        let system = resolve("sslrootcert=system", &[]);
        assert_eq!(system.sslmode, SslMode::VerifyFull);
        assert_eq!(system.root_certs, Some(RootCerts::System));
        assert!(
            error("sslrootcert=system sslmode=require", &[]).contains("weak sslmode \"require\"")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("root.crt");
        std::fs::write(&file, "").unwrap();
        let with_file = resolve(
            &format!("sslmode=require sslrootcert={}", file.display()),
            &[],
        );
        assert_eq!(with_file.root_certs, Some(RootCerts::File(file.clone())));
        // libpq's ~/.postgresql/root.crt counts when it exists.
        let mut home_env = env(&[]);
        std::fs::create_dir(dir.path().join(".postgresql")).unwrap();
        std::fs::write(dir.path().join(".postgresql/root.crt"), "").unwrap();
        home_env.home = Some(dir.path().to_path_buf());
        assert_eq!(
            Settings::resolve("", &home_env).unwrap().root_certs,
            Some(RootCerts::File(dir.path().join(".postgresql/root.crt")))
        );
        let missing = error("sslmode=verify-full sslrootcert=/nonexistent/root.crt", &[]);
        assert!(
            missing.contains("\"/nonexistent/root.crt\" does not exist"),
            "{missing}"
        );
        assert_eq!(
            resolve("sslmode=require sslrootcert=/nonexistent/root.crt", &[]).root_certs,
            None
        );
        assert!(error("sslmode=on", &[]).contains("invalid sslmode value \"on\""));
        assert!(error("", &[("PGSSLMODE", "maybe")]).contains("invalid sslmode value \"maybe\""));
        assert!(error("sslnegotiation=direct", &[]).contains("weak sslmode \"prefer\""));
        assert!(error("ssl_min_protocol_version=TLSv1.1", &[]).contains("TLSv1.2 and TLSv1.3 only"));
        let tls13 = resolve("ssl_min_protocol_version=TLSv1.3", &[]);
        assert_eq!(
            tls13.tls_versions,
            TlsVersions {
                tls12: false,
                tls13: true
            }
        );
    }

    #[test]
    fn keywords_that_cannot_be_honoured_are_errors_naming_them() {
        for (text, expected) in [
            (
                "service=archive",
                "\"service\" is not supported by muninn-sync: connection service files",
            ),
            (
                "sslcert=/x sslkey=/y",
                "\"sslcert\" is not supported by muninn-sync: client certificates",
            ),
            ("sslcrl=/x", "certificate revocation lists"),
            ("requiressl=1", "write sslmode=require"),
            ("krbsrvname=postgres", "GSSAPI"),
            ("gssencmode=require", "GSSAPI"),
            (
                "target_session_attrs=standby",
                "target_session_attrs=standby is not supported",
            ),
            (
                "client_encoding=LATIN1",
                "client_encoding \"LATIN1\" is not supported",
            ),
            (
                "hots=db.example.org",
                "unknown connection string keyword \"hots\"",
            ),
            (
                "postgresql://h/db?sslcert=x",
                "URL query parameter \"sslcert\" is not supported",
            ),
            (
                "postgresql://h/db?nonsense=x",
                "unknown URL query parameter \"nonsense\"",
            ),
        ] {
            let message = error(text, &[]);
            assert!(message.contains(expected), "{text}: {message}");
        }
        // libpq's harmless ones are taken.
        resolve("gssencmode=disable sslcompression=0 sslcertmode=allow client_encoding=UTF8 sslsni=0 keepalives=1 keepalives_idle=30 keepalives_count=3", &[]);
    }

    #[test]
    fn timeouts_as_libpq_reads_them() {
        assert_eq!(resolve("connect_timeout=0", &[]).connect_timeout, None);
        assert_eq!(resolve("connect_timeout=-5", &[]).connect_timeout, None);
        assert_eq!(
            resolve("connect_timeout=1", &[]).connect_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            resolve("connect_timeout=' 12 '", &[]).connect_timeout,
            Some(Duration::from_secs(12))
        );
        assert!(
            error("connect_timeout=soon", &[]).contains("invalid connect_timeout value \"soon\"")
        );
    }

    #[test]
    fn no_password_shows_in_debug_or_errors() {
        let settings = resolve("password=hunter2", &[("PGPASSWORD", "hunter3")]);
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let env = env(&[("PGPASSWORD", "hunter3")]);
        assert!(!format!("{env:?}").contains("hunter3"));
        for text in [
            "password=hunter2 sslmode=bogus",
            "password=hunter2 port=x",
            "host=h password=hunter2 wrong",
            "password='hunter2",
            "postgresql://u:hunter2@h:x/db",
            "postgresql://u:hunter2@h/db?unknown=1",
        ] {
            let message = error(text, &[]);
            assert!(!message.contains("hunter2"), "{text}: {message}");
        }
    }
}
