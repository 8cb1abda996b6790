//! Where PostgreSQL's server programs are, and whether PostGIS is there too.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};

/// What to do when PostgreSQL or PostGIS is missing: every such panic says
/// it, so that nobody has to guess which packages the tests want.
pub(crate) const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (as root or with sudo; \
     it installs Debian's postgresql and postgresql-15-postgis-3), or set \
     MUNINN_SYNC_TEST_PG_BINDIR to the bin directory of a PostgreSQL with PostGIS";

/// The environment variable that names the bin directory to use instead of
/// searching: for a PostgreSQL outside Debian's layout.
const BINDIR_VARIABLE: &str = "MUNINN_SYNC_TEST_PG_BINDIR";

/// `initdb` and `postgres` of one installation.
pub(crate) struct Binaries {
    pub(crate) initdb: PathBuf,
    pub(crate) postgres: PathBuf,
}

impl Binaries {
    /// The installation to use: `$MUNINN_SYNC_TEST_PG_BINDIR` when set,
    /// otherwise the first with PostGIS among `pg_config --bindir` and
    /// Debian's /usr/lib/postgresql/*/bin (newest first). Fails naming the
    /// install script when none has both programs, or none has PostGIS.
    pub(crate) fn find() -> Result<Self> {
        let candidates = candidates();
        let complete: Vec<&PathBuf> = candidates
            .iter()
            .filter(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
            .collect();
        let Some(first) = complete.first() else {
            bail!(
                "PostgreSQL's initdb and postgres were not found (looked in {}); {INSTALL_HINT}",
                listed(&candidates)
            );
        };
        // A directory whose share directory we cannot tell is given the
        // benefit of the doubt: CREATE EXTENSION postgis then says.
        let chosen = complete
            .iter()
            .find(|dir| postgis_present(dir) != Some(false))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "PostGIS is not installed for the PostgreSQL in {} (no extension/postgis.control \
                     in its share directory); {INSTALL_HINT}",
                    first.display()
                )
            })?;
        Ok(Binaries {
            initdb: chosen.join("initdb"),
            postgres: chosen.join("postgres"),
        })
    }
}

fn candidates() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os(BINDIR_VARIABLE) {
        return vec![PathBuf::from(dir)];
    }
    let mut dirs = Vec::new();
    if let Some(dir) = pg_config(Path::new("pg_config"), "--bindir") {
        dirs.push(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    debian.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    for (_, dir) in debian {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// Whether the installation in `bindir` has PostGIS's control file; `None`
/// when its share directory cannot be told (no pg_config beside it and not
/// Debian's layout).
fn postgis_present(bindir: &Path) -> Option<bool> {
    let sharedir = pg_config(&bindir.join("pg_config"), "--sharedir").or_else(|| {
        // Debian: /usr/lib/postgresql/15/bin -> /usr/share/postgresql/15.
        let version = bindir.parent()?.file_name()?;
        let dir = Path::new("/usr/share/postgresql").join(version);
        dir.is_dir().then_some(dir)
    })?;
    Some(sharedir.join("extension/postgis.control").is_file())
}

fn pg_config(program: &Path, option: &str) -> Option<PathBuf> {
    let output = Command::new(program).arg(option).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let path = text.trim();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

fn listed(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "no pg_config on PATH and no /usr/lib/postgresql/*/bin".to_owned();
    }
    dirs.iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
