//! The catalogue backends an end-to-end test runs on, and the macro that
//! runs one test body on each of them.

/// Where an archive's catalogue lives: `[archive] database`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file beside the configuration, `catalogue.sqlite`, with
    /// SpatiaLite.
    Sqlite,
    /// A database of its own in the test process's private PostgreSQL +
    /// PostGIS server (muninn-sync-test-postgres).
    Postgresql,
}

impl Backend {
    /// The value of `[archive] database`, and the section that configures
    /// the catalogue.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgresql => "postgresql",
        }
    }

    /// `sqlite` or `postgresql`, whichever this is: for the few checks that
    /// must be written differently for each.
    pub fn pick<T>(self, sqlite: T, postgresql: T) -> T {
        match self {
            Backend::Sqlite => sqlite,
            Backend::Postgresql => postgresql,
        }
    }
}

/// Two tests of one body: `on_both_backends!(name)` beside `fn name(backend:
/// Backend)` makes `name::sqlite` and `name::postgresql`, each calling the
/// function with its [`Backend`] (a module and a function may share a
/// name). The body stays an ordinary function, which rustfmt and clippy
/// see whole. `cargo test postgresql` runs a file's PostgreSQL half,
/// `cargo test name` both.
///
/// ```ignore
/// on_both_backends!(first_sync_creates_every_product);
/// /// What the test shows.
/// fn first_sync_creates_every_product(backend: Backend) {
///     let archive = Archive::with_feed_on(backend);
///     // ...
/// }
///
/// // A product bug on PostgreSQL: that half is ignored, saying why.
/// on_both_backends!(another, postgresql_ignored = "issue 16: what fails");
/// ```
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident $(, postgresql_ignored = $why:literal)? $(,)?) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::Backend::Sqlite)
            }

            #[test]
            $(#[ignore = $why])?
            fn postgresql() {
                super::$name($crate::Backend::Postgresql)
            }
        }
    };
}
