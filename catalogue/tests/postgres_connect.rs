//! Connecting to a real PostgreSQL server as a user's `[postgresql]
//! connection_string` asks: by keywords and by URL, with the password in
//! the string, in PGPASSWORD or in a password file, and the errors a user
//! gets for a wrong password, a missing database, a server that is not
//! there, and TLS the server does not offer.
//!
//! The server is the tests' own private cluster (muninn-sync-test-postgres).
//! Environment variables belong to the whole process, so every test here
//! holds one lock while it runs, starts with no `PG*` variable and a home
//! directory of its own (no `~/.pgpass` of the machine's), and puts the
//! environment back when it ends.

use muninn_sync_catalogue::PostgresOptions;
use muninn_sync_test_postgres::{cluster, Role, TestDatabase};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

static ENVIRONMENT: Mutex<()> = Mutex::new(());

/// The process environment of one test, put back when dropped.
struct Environment {
    saved: Vec<(OsString, Option<OsString>)>,
    home: tempfile::TempDir,
    _lock: MutexGuard<'static, ()>,
}

impl Environment {
    /// No `PG*` variable, `HOME` an empty directory, then `vars`.
    fn new(vars: &[(&str, &str)]) -> Environment {
        let lock = ENVIRONMENT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let home = tempfile::tempdir().unwrap();
        let mut names: Vec<OsString> = std::env::vars_os()
            .map(|(name, _)| name)
            .filter(|name| name.to_string_lossy().starts_with("PG"))
            .collect();
        names.push("HOME".into());
        names.extend(vars.iter().map(|(name, _)| OsString::from(name)));
        names.sort();
        names.dedup();
        let saved = names
            .into_iter()
            .map(|name| {
                let value = std::env::var_os(&name);
                (name, value)
            })
            .collect::<Vec<_>>();
        for (name, _) in &saved {
            std::env::remove_var(name);
        }
        std::env::set_var("HOME", home.path());
        for (name, value) in vars {
            std::env::set_var(name, value);
        }
        Environment {
            saved,
            home,
            _lock: lock,
        }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        for (name, value) in &self.saved {
            match value {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
        }
    }
}

/// The error of a connection that must fail.
fn refusal(options: &PostgresOptions) -> String {
    match options.connect() {
        Ok(_) => panic!("connected with {options:?}"),
        Err(error) => format!("{error:#}"),
    }
}

/// Who the session is, in which database, and whether it is encrypted.
fn session(client: &mut postgres::Client) -> (String, String, String, bool) {
    let row = client
        .query_one(
            "SELECT current_user::text, current_database()::text, current_setting('application_name'),
                    coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// A password file holding `lines`, with these permissions.
fn password_file(dir: &Path, name: &str, lines: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A database and a role that must give its password.
fn database_and_role(hint: &str, password: &str) -> (TestDatabase, Role) {
    let database = cluster().create_database(hint);
    let role = cluster().create_role(hint, password);
    (database, role)
}

#[test]
fn connects_by_keywords_and_by_url_as_muninn_sync() {
    let _env = Environment::new(&[]);
    let database = cluster().create_database("connect_forms");
    for connection_string in [database.connection_string(), database.url()] {
        let options = PostgresOptions::new(connection_string);
        assert_eq!(
            options.describe(),
            format!(
                "127.0.0.1:{}/{} as postgres",
                cluster().port(),
                database.name()
            )
        );
        let mut client = options.connect().unwrap();
        let (user, name, application, _) = session(&mut client);
        assert_eq!(
            (user.as_str(), name.as_str(), application.as_str()),
            ("postgres", database.name(), "muninn-sync")
        );
    }
    // The user's own application name wins.
    let options = PostgresOptions::new(format!(
        "{} application_name=nightly",
        database.connection_string()
    ));
    assert_eq!(session(&mut options.connect().unwrap()).2, "nightly");
}

#[test]
fn the_environment_fills_what_the_string_leaves_out() {
    let database = cluster().create_database("connect_env");
    let port = cluster().port().to_string();
    let _env = Environment::new(&[
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", &port),
        ("PGUSER", "postgres"),
        ("PGDATABASE", database.name()),
        ("PGAPPNAME", "from-env"),
    ]);
    let options = PostgresOptions::new("");
    assert_eq!(
        options.describe(),
        format!("127.0.0.1:{port}/{} as postgres", database.name())
    );
    let (user, name, application, _) = session(&mut options.connect().unwrap());
    assert_eq!(
        (user.as_str(), name.as_str(), application.as_str()),
        ("postgres", database.name(), "from-env")
    );
}

#[test]
fn the_password_comes_from_the_string_pgpassword_or_a_password_file() {
    // A password with the characters a password file escapes.
    let password = "pa:ss\\word";
    let (database, role) = database_and_role("connect_password", password);
    let base = database.connection_string_as(&role);
    let escaped = "pa\\:ss\\\\word";
    let port = cluster().port();

    // In the string, as keywords and in a URL.
    {
        let _env = Environment::new(&[]);
        let quoted = format!("{base} password='pa:ss\\\\word'");
        assert_eq!(
            session(&mut PostgresOptions::new(quoted).connect().unwrap()).0,
            role.name()
        );
        let url = database.url_as(&role).replacen(
            role.name(),
            &format!("{}:pa%3Ass%5Cword", role.name()),
            1,
        );
        assert_eq!(
            session(&mut PostgresOptions::new(url).connect().unwrap()).0,
            role.name()
        );
    }
    // PGPASSWORD.
    {
        let _env = Environment::new(&[("PGPASSWORD", password)]);
        assert_eq!(
            session(&mut PostgresOptions::new(base.clone()).connect().unwrap()).0,
            role.name()
        );
    }
    // A PGPASSFILE of mode 0600: the first matching line wins, comments
    // and other servers' lines are passed over.
    {
        let dir = tempfile::tempdir().unwrap();
        let lines = format!(
            "# hostname:port:database:username:password\n\
             db.example.org:*:*:*:not-this-one\n\
             127.0.0.1:{port}:*:{}:{escaped}\n\
             *:*:*:*:nor-this-one\n",
            role.name()
        );
        let file = password_file(dir.path(), "pgpass", &lines, 0o600);
        let _env = Environment::new(&[("PGPASSFILE", file.to_str().unwrap())]);
        assert_eq!(
            session(&mut PostgresOptions::new(base.clone()).connect().unwrap()).0,
            role.name()
        );
        // Group-readable, it is ignored, and the error says why.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let refused = refusal(&PostgresOptions::new(base.clone()));
        assert!(
            refused.contains(&format!(
                "the server asks for a password for user \"{}\" and none was given",
                role.name()
            )) && refused.contains("has group or world access")
                && refused.contains("0600"),
            "{refused}"
        );
    }
    // ~/.pgpass, with wildcards.
    {
        let env = Environment::new(&[]);
        password_file(
            env.home(),
            ".pgpass",
            &format!("*:{port}:*:{}:{escaped}\n", role.name()),
            0o600,
        );
        assert_eq!(
            session(&mut PostgresOptions::new(base.clone()).connect().unwrap()).0,
            role.name()
        );
    }
    // Over the server's Unix socket, the line names the socket directory
    // (only the default directory is `localhost`, as in libpq).
    if let Some(socket_dir) = cluster().socket_dir() {
        let env = Environment::new(&[]);
        password_file(
            env.home(),
            ".pgpass",
            &format!(
                "{}:{port}:*:{}:{escaped}\n",
                socket_dir.display().to_string().replace(':', "\\:"),
                role.name()
            ),
            0o600,
        );
        let options = PostgresOptions::new(format!(
            "host={} port={port} user={} dbname={}",
            socket_dir.display(),
            role.name(),
            database.name()
        ));
        assert_eq!(session(&mut options.connect().unwrap()).0, role.name());
    }
}

#[test]
fn a_wrong_password_names_the_user_and_never_the_password() {
    let (database, role) = database_and_role("connect_wrong", "right-password");
    let _env = Environment::new(&[]);
    let target = format!(
        "127.0.0.1:{}/{} as {}",
        cluster().port(),
        database.name(),
        role.name()
    );
    for options in [
        PostgresOptions::new(format!(
            "{} password=Hunter2Wrong",
            database.connection_string_as(&role)
        )),
        PostgresOptions::new(database.url_as(&role).replacen(
            role.name(),
            &format!("{}:Hunter2Wrong", role.name()),
            1,
        )),
    ] {
        let refused = refusal(&options);
        assert_eq!(
            refused,
            format!(
                "cannot connect to the PostgreSQL catalogue {target}: password authentication failed for user \"{}\" (the password came from the connection string): check the password in the connection string, PGPASSWORD or ~/.pgpass",
                role.name()
            )
        );
        let debug = format!("{options:?}");
        assert!(
            !debug.contains("Hunter2Wrong") && debug.contains("***"),
            "{debug}"
        );
    }
    // No password at all: what to give, and where.
    let refused = refusal(&PostgresOptions::new(database.connection_string_as(&role)));
    assert!(
        refused.starts_with(&format!("cannot connect to the PostgreSQL catalogue {target}: the server asks for a password for user \"{}\" and none was given: give it in the connection string (password=...), PGPASSWORD or ~/.pgpass", role.name())),
        "{refused}"
    );
}

#[test]
fn a_missing_database_is_named_with_how_to_create_it() {
    let _env = Environment::new(&[]);
    let port = cluster().port();
    let refused = refusal(&PostgresOptions::new(format!(
        "host=127.0.0.1 port={port} user=postgres dbname=no_such_archive"
    )));
    assert_eq!(
        refused,
        format!(
            "cannot connect to the PostgreSQL catalogue 127.0.0.1:{port}/no_such_archive as postgres: database \"no_such_archive\" does not exist: create it (createdb -h 127.0.0.1 -p {port} -U postgres no_such_archive, or CREATE DATABASE as a user allowed to), and muninn-sync or muninn-prepare then creates the catalogue's tables in it"
        )
    );
}

#[test]
fn an_unreachable_port_is_named_with_the_os_error() {
    let _env = Environment::new(&[]);
    // A port nothing listens on: taken from the system, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = refusal(&PostgresOptions::new(format!(
        "host=127.0.0.1 port={port} user=muninn dbname=archive password=Hunter2"
    )));
    assert!(
        refused.starts_with(&format!(
            "cannot connect to the PostgreSQL catalogue 127.0.0.1:{port}/archive as muninn: cannot reach 127.0.0.1:{port}: "
        )) && refused.contains("Connection refused (os error 111)")
            && refused.contains("accepting TCP/IP connections on port")
            && !refused.contains("Hunter2"),
        "{refused}"
    );
}

#[test]
fn tls_required_of_a_server_without_it_fails_clearly_and_preferred_falls_back() {
    let env = Environment::new(&[]);
    let database = cluster().create_database("connect_tls");
    let target = format!(
        "127.0.0.1:{}/{} as postgres",
        cluster().port(),
        database.name()
    );
    let required = refusal(&PostgresOptions::new(format!(
        "{} sslmode=require",
        database.connection_string()
    )));
    assert_eq!(
        required,
        format!("cannot connect to the PostgreSQL catalogue {target}: the server does not accept TLS connections, which sslmode=require requires: turn ssl on in the server's configuration, or write sslmode=prefer (TLS when the server offers it) or sslmode=disable")
    );
    let verified = refusal(&PostgresOptions::new(format!(
        "{}?sslmode=verify-full",
        database.url()
    )));
    assert!(
        verified.contains(
            "the server does not accept TLS connections, which sslmode=verify-full requires"
        ),
        "{verified}"
    );
    // prefer (libpq's default, and so with no sslmode at all) goes on
    // without TLS.
    for connection_string in [
        format!("{} sslmode=prefer", database.connection_string()),
        database.connection_string(),
    ] {
        let mut client = PostgresOptions::new(connection_string).connect().unwrap();
        assert!(!session(&mut client).3);
    }
    // PGSSLMODE counts when the string says nothing.
    drop(env);
    let _env = Environment::new(&[("PGSSLMODE", "require")]);
    let required = refusal(&PostgresOptions::new(database.connection_string()));
    assert!(
        required.contains("which sslmode=require requires"),
        "{required}"
    );
}
