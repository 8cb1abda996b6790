//! The archive's configuration: finding the file from an archive id, as
//! muninn does, and reading the sections muninn-sync uses, from a TOML file
//! or from muninn's own INI `.cfg` file.

mod cfg;
pub mod ini;
mod secrets;

pub use secrets::Secrets;

use crate::duration::parse_duration;
use crate::loader;
use anyhow::{anyhow, bail, Context, Result};
use muninn_sync_catalogue::{PostgresOptions, SqliteOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable muninn searches for archive configurations.
pub const CONFIG_PATH_VARIABLE: &str = "MUNINN_CONFIG_PATH";

/// The keys muninn 7.5 knows in `[archive]`. The ones muninn-sync does not
/// use are accepted so that an existing archive's configuration works as is.
const ARCHIVE_KEYS: [&str; 12] = [
    "database",
    "storage",
    "cascade_grace_period",
    "max_cascade_cycles",
    "external_archives",
    "auth_file",
    "tempdir",
    "product_type_extensions",
    "namespace_extensions",
    "remote_backend_extensions",
    "hook_extensions",
    "synchronizers",
];

const SQLITE_KEYS: [&str; 3] = ["connection_string", "mod_spatialite_path", "table_prefix"];

/// The keys muninn 7.5 knows in `[postgresql]`. `library` (psycopg2 or
/// pg8000, the Python driver) means nothing to muninn-sync and is accepted
/// so that a muninn `.cfg` file works as is.
const POSTGRESQL_KEYS: [&str; 3] = ["connection_string", "table_prefix", "library"];

// The keys of a synchronizer's section that the host reads and takes out
// before the plugin sees the section: plugin-api's list, which its
// in-memory archive drops too.
use muninn_sync_plugin_api::section::HOST_KEYS;

/// The start of a synchronizer section's name.
const SYNCHRONIZER_PREFIX: &str = "synchronizer:";

/// The file names an archive id stands for, in the order they are tried
/// in each entry of the search path.
const EXTENSIONS: [&str; 2] = ["toml", "cfg"];

/// An archive's configuration file, read.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// Where the catalogue is (`[archive] database`).
    pub database: Database,
    /// The `[sqlite]` section, when `database` is [`Database::Sqlite`].
    /// For a PostgreSQL archive it is not read (muninn reads only the
    /// section of its database) and this holds an empty path: look at
    /// `database` first.
    pub sqlite: SqliteOptions,
    /// `[archive] synchronizers`, when given.
    pub registered: Option<Vec<String>>,
    /// Every `["synchronizer:<name>"]` section by name.
    pub synchronizers: BTreeMap<String, toml::Table>,
    source: Source,
}

/// Where an archive's catalogue is: muninn's `database = sqlite` or
/// `database = postgresql` and that section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file: [`ArchiveConfig::sqlite`].
    Sqlite,
    /// A PostgreSQL + PostGIS database: the `[postgresql]` section. Its
    /// `Debug` masks the password of the connection string.
    Postgresql(PostgresOptions),
}

/// The file's form and where its keys are, for messages.
#[derive(Debug, Clone)]
struct Source {
    file: String,
    /// muninn's INI form (`.cfg`), not TOML.
    ini: bool,
    /// In an INI file, the line of each key by section and key.
    lines: cfg::KeyLines,
}

impl Source {
    /// A section's header as the file writes it: `[synchronizer:x]` in an
    /// INI file, `["synchronizer:x"]` in TOML.
    fn header(&self, section: &str) -> String {
        let bare = section
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if self.ini || bare {
            format!("[{section}]")
        } else {
            format!("[\"{section}\"]")
        }
    }

    /// `configuration file "f", section [s]`, with the key's line in an INI
    /// file.
    fn at(&self, section: &str, key: Option<&str>) -> String {
        let line = key
            .and_then(|key| self.lines.get(&(section.to_string(), key.to_string())))
            .map(|line| format!(", line {line}"))
            .unwrap_or_default();
        format!(
            "configuration file \"{}\"{line}, section {}",
            self.file,
            self.header(section)
        )
    }

    /// The same with `, key "k"`.
    fn at_key(&self, section: &str, key: &str) -> String {
        format!("{}, key \"{key}\"", self.at(section, Some(key)))
    }
}

/// One synchronizer's section.
#[derive(Debug, Clone)]
pub struct SynchronizerConfig {
    pub name: String,
    /// The plugin to load, a plugin name or the path of a plugin file: the
    /// `plugin` key when there is one (muninn-sync's own, so that a file
    /// shared with Python muninn keeps its Python `module`), else `module`.
    pub module: String,
    /// The host's own keys of the section.
    pub run: RunSettings,
    /// `adopt` and `adopt_from`: whose products the synchronizer may take
    /// over besides its own.
    pub ownership: muninn_sync_model::Ownership,
    /// The other keys, for the plugin.
    pub options: toml::Table,
}

impl SynchronizerConfig {
    /// The section's credentials (values under `headers` and credential
    /// keys), to mask in what the plugin says about its configuration.
    pub fn secrets(&self) -> Secrets {
        Secrets::of_section(&self.options)
    }
}

/// Keys of a synchronizer's section that the host reads and takes out
/// before the plugin sees the section, as it does with `module`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSettings {
    /// `incremental = true`: runs without --start begin at the watermark.
    pub incremental: bool,
    /// `lookback = "10m"`: how far before the watermark they begin.
    pub lookback: Option<Duration>,
    /// `inactivity_timeout = "30m"`: the default of --timeout. Not plain
    /// `timeout`, which plugins use for their own (HTTP) timeouts.
    pub timeout: Option<Duration>,
    /// `future_tolerance = "1d"`: how far past the run's start a product's
    /// time may lie and still raise a watermark (`None`: the default, a
    /// day; zero: none past the start).
    pub future_tolerance: Option<Duration>,
    /// `max_products = 10000000`: the most products one run may hand over
    /// before it stops (`None` or 0: no limit).
    pub max_products: Option<u64>,
}

impl RunSettings {
    /// Takes the host's keys out of a section; `at` names a key's place.
    fn take(options: &mut toml::Table, at: &dyn Fn(&str) -> String) -> Result<RunSettings> {
        let incremental = match options.remove("incremental") {
            None => false,
            Some(toml::Value::Boolean(b)) => b,
            // configparser's getboolean, which muninn users know, reads 1 and 0.
            Some(toml::Value::Integer(n @ (0 | 1))) => n == 1,
            Some(other) => bail!("{}: expected true or false, not {other}", at("incremental")),
        };
        let mut duration = |key: &str| -> Result<Option<Duration>> {
            match options.remove(key) {
                None => Ok(None),
                Some(toml::Value::String(text)) => parse_duration(&text)
                    .map(Some)
                    .map_err(|e| anyhow!("{}: {e}", at(key))),
                Some(toml::Value::Integer(seconds)) if seconds >= 0 => {
                    Ok(Some(Duration::from_secs(seconds as u64)))
                }
                Some(other) => bail!(
                    "{}: expected a duration such as \"10m\" or a number of seconds, not {other}",
                    at(key)
                ),
            }
        };
        let lookback = duration("lookback")?;
        let timeout = duration("inactivity_timeout")?;
        let future_tolerance = duration("future_tolerance")?;
        let max_products = match options.remove("max_products") {
            None | Some(toml::Value::Integer(0)) => None,
            Some(toml::Value::Integer(n)) if n > 0 => Some(n as u64),
            Some(other) => bail!(
                "{}: expected a number of products (0: no limit), not {}",
                at("max_products"),
                other.type_str()
            ),
        };
        Ok(RunSettings {
            incremental,
            lookback,
            timeout,
            future_tolerance,
            max_products,
        })
    }
}

/// Finds an archive's configuration file: a path ending in `.toml` or
/// `.cfg` is taken as it is; an archive id is looked up in the entries of
/// `search_path` (colon-separated; an entry is a directory, or a file whose
/// name matches), entry by entry, as `<id>.toml` and then `<id>.cfg`: the
/// first entry that has either wins, and within an entry the TOML file.
pub fn locate(archive: &str, search_path: Option<&str>) -> Result<PathBuf> {
    if EXTENSIONS
        .iter()
        .any(|extension| archive.ends_with(&format!(".{extension}")))
    {
        return Ok(PathBuf::from(archive));
    }
    if archive.is_empty() || archive.contains('/') || archive.contains(std::path::MAIN_SEPARATOR) {
        bail!("invalid archive identifier: \"{archive}\"");
    }
    let file_names = EXTENSIONS.map(|extension| format!("{archive}.{extension}"));
    let search_path = search_path.unwrap_or("");
    for entry in search_path.split(':').filter(|e| !e.is_empty()) {
        let entry = Path::new(entry);
        for file_name in &file_names {
            if entry.is_dir() {
                let candidate = entry.join(file_name);
                if candidate.is_file() {
                    return Ok(candidate);
                }
            } else if entry.file_name().is_some_and(|n| n == file_name.as_str()) && entry.is_file()
            {
                return Ok(entry.to_path_buf());
            }
        }
    }
    let [toml, cfg] = &file_names;
    bail!("configuration file: \"{toml}\" or \"{cfg}\" not found on search path ({CONFIG_PATH_VARIABLE}): \"{search_path}\"")
}

impl ArchiveConfig {
    /// Reads and checks a configuration file, muninn's INI form when its
    /// name ends in `.cfg` and TOML otherwise; errors name the file, the
    /// section and the key (and in an INI file the line).
    pub fn read(path: &Path) -> Result<ArchiveConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration file \"{}\"", path.display()))?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<ArchiveConfig> {
        let file = path.display().to_string();
        if path.extension().is_some_and(|e| e == "cfg") {
            let (document, lines) = cfg::document(&file, text)?;
            let source = Source {
                file,
                ini: true,
                lines,
            };
            return Self::check(path, document, source);
        }
        let document: toml::Table = toml::from_str(text).map_err(|e| {
            anyhow!(
                "invalid TOML in configuration file \"{file}\": {}",
                describe_toml_error(text, &e)
            )
        })?;
        let source = Source {
            file,
            ini: false,
            lines: Default::default(),
        };
        Self::check(path, document, source)
    }

    /// Checks the sections muninn-sync reads, from either form.
    fn check(path: &Path, document: toml::Table, source: Source) -> Result<ArchiveConfig> {
        let file = &source.file;
        let section = |name: &str| -> Result<Option<&toml::Table>> {
            match document.get(name) {
                None => Ok(None),
                Some(toml::Value::Table(table)) => Ok(Some(table)),
                Some(_) => bail!("configuration file \"{file}\": [{name}] must be a section"),
            }
        };
        let archive = section("archive")?
            .ok_or_else(|| anyhow!("configuration file \"{file}\": missing [archive] section"))?;
        for key in archive.keys() {
            if !ARCHIVE_KEYS.contains(&key.as_str()) {
                bail!(
                    "{}: unknown key \"{key}\" (known keys: {})",
                    source.at("archive", Some(key)),
                    ARCHIVE_KEYS.join(", ")
                );
            }
        }
        let at_database = source.at("archive", Some("database"));
        let quote = |text: &str| {
            if source.ini {
                text.to_string()
            } else {
                format!("\"{text}\"")
            }
        };
        let postgresql = match archive.get("database") {
            Some(toml::Value::String(db)) if db == "sqlite" => false,
            Some(toml::Value::String(db)) if db == "postgresql" => true,
            Some(other) => bail!(
                "{at_database}: database must be \"sqlite\" or \"postgresql\", not {other}"
            ),
            None => bail!(
                "configuration file \"{file}\", section [archive]: missing key \"database\" (database = {} or database = {})",
                quote("sqlite"),
                quote("postgresql")
            ),
        };
        let registered = match archive.get("synchronizers") {
            None => None,
            Some(value) => Some(
                synchronizer_names(value)
                    .with_context(|| source.at_key("archive", "synchronizers"))?,
            ),
        };

        let (database, sqlite) = if postgresql {
            let section = section("postgresql")?.ok_or_else(|| {
                anyhow!(
                    "configuration file \"{file}\": missing [postgresql] section (database = {} needs one, with connection_string = {})",
                    quote("postgresql"),
                    quote("host=db.example.org dbname=archive user=muninn")
                )
            })?;
            let options = postgresql_options(section, &source)?;
            (
                Database::Postgresql(options),
                SqliteOptions::new(PathBuf::new()),
            )
        } else {
            let section = section("sqlite")?.ok_or_else(|| {
                anyhow!(
                    "configuration file \"{file}\": missing [sqlite] section (database = {} needs one)",
                    quote("sqlite")
                )
            })?;
            (Database::Sqlite, sqlite_options(path, section, &source)?)
        };

        let mut synchronizers = BTreeMap::new();
        for (key, value) in &document {
            let Some(name) = key.strip_prefix(SYNCHRONIZER_PREFIX) else {
                continue;
            };
            check_synchronizer_name(name).with_context(|| source.at(key, None))?;
            let toml::Value::Table(table) = value else {
                bail!(
                    "configuration file \"{file}\": {} must be a section",
                    source.header(key)
                );
            };
            synchronizers.insert(name.to_string(), table.clone());
        }
        Ok(ArchiveConfig {
            path: path.to_path_buf(),
            database,
            sqlite,
            registered,
            synchronizers,
            source,
        })
    }

    /// A synchronizer section's header as the file writes it, for messages:
    /// `[synchronizer:x]` in a `.cfg` file, `["synchronizer:x"]` in TOML.
    pub fn section_header(&self, synchronizer: &str) -> String {
        self.source
            .header(&format!("{SYNCHRONIZER_PREFIX}{synchronizer}"))
    }

    /// The names a user may pass as SYNCHRONIZER.
    pub fn known_synchronizers(&self) -> Vec<String> {
        match &self.registered {
            Some(names) => names.clone(),
            None => self.synchronizers.keys().cloned().collect(),
        }
    }

    /// The section of one synchronizer, checked as muninn checks it: a
    /// synchronizer `[archive] synchronizers` leaves out is refused, unless
    /// its section has a `plugin` key. That key is muninn-sync's alone, and
    /// Python muninn imports every listed module each time it opens the
    /// archive, so a synchronizer only muninn-sync runs must stay off the
    /// list of a file both read.
    pub fn synchronizer(&self, name: &str) -> Result<SynchronizerConfig> {
        let file = &self.source.file;
        let known = self.known_synchronizers();
        let own = self
            .synchronizers
            .get(name)
            .is_some_and(|section| section.contains_key("plugin"));
        if !own && !known.iter().any(|k| k == name) {
            let listed = known
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ");
            bail!("unregistered synchronizer: \"{name}\"; registered synchronizers: {listed} (configuration file \"{file}\")");
        }
        self.section(name)
    }

    /// The section of one synchronizer, whether `[archive] synchronizers`
    /// names it or not (what `--list` shows of every section).
    pub fn section(&self, name: &str) -> Result<SynchronizerConfig> {
        let file = &self.source.file;
        let section = format!("{SYNCHRONIZER_PREFIX}{name}");
        let header = self.source.header(&section);
        let mut options = self
            .synchronizers
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("missing synchronizer \"{name}\" configuration: configuration file \"{file}\" has no {header} section"))?;
        let mut text_key = |key: &str| -> Result<Option<String>> {
            match options.remove(key) {
                None => Ok(None),
                Some(toml::Value::String(value)) if !value.trim().is_empty() => Ok(Some(value)),
                Some(other) => bail!(
                    "{}: {key} must be a plugin name or path, not {other}",
                    self.source.at(&section, Some(key))
                ),
            }
        };
        let module_key = text_key("module")?;
        let plugin = text_key("plugin")?;
        let quote = |text: &str| {
            if self.source.ini {
                text.to_string()
            } else {
                format!("\"{text}\"")
            }
        };
        let module = match (plugin, module_key) {
            (Some(plugin), _) => plugin,
            (None, Some(module)) if loader::is_python_module_path(&module) => bail!(
                "{}: module \"{module}\" is a Python module (Python muninn's synchronizer); {}",
                self.source.at(&section, Some("module")),
                loader::rust_plugin_hint(&module, &quote)
            ),
            (None, Some(module)) => module,
            (None, None) => bail!(
                "missing module option for synchronizer \"{name}\": configuration file \"{file}\", section {header} needs module = {} (or plugin = {}, which only muninn-sync reads)",
                quote("<plugin>"),
                quote("<plugin>")
            ),
        };
        let run = RunSettings::take(&mut options, &|key| self.source.at_key(&section, key))?;
        let ownership = muninn_sync_plugin_api::section::take_ownership(&mut options, name)
            .map_err(|(key, e)| anyhow!("{}: {e}", self.source.at_key(&section, key)))?;
        Ok(SynchronizerConfig {
            name: name.to_string(),
            module,
            run,
            ownership,
            options,
        })
    }
}

/// Unknown keys of a database section, refused as muninn refuses them.
fn check_keys(section: &toml::Table, name: &str, known: &[&str], source: &Source) -> Result<()> {
    for key in section.keys() {
        if !known.contains(&key.as_str()) {
            bail!(
                "{}: unknown key \"{key}\" (known keys: {})",
                source.at(name, Some(key)),
                known.join(", ")
            );
        }
    }
    Ok(())
}

/// A text key of a database section, `None` when absent; the error of a
/// value of another type shows the type, not the value (which may be a
/// credential in `[postgresql]`).
fn text_key(
    section: &toml::Table,
    name: &str,
    key: &str,
    source: &Source,
) -> Result<Option<String>> {
    match section.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => bail!(
            "{}: {key} must be a string, not {}",
            source.at(name, Some(key)),
            other.type_str()
        ),
    }
}

/// The `[sqlite]` section: the database file, resolved beside the
/// configuration file.
fn sqlite_options(path: &Path, section: &toml::Table, source: &Source) -> Result<SqliteOptions> {
    check_keys(section, "sqlite", &SQLITE_KEYS, source)?;
    let connection_string = text_key(section, "sqlite", "connection_string", source)?
        .ok_or_else(|| anyhow!("configuration file \"{}\", section [sqlite]: missing key \"connection_string\" (the database file)", source.file))?;
    check_database_file(&connection_string, source.ini)
        .with_context(|| source.at_key("sqlite", "connection_string"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut options = SqliteOptions::new(resolve(base, &connection_string));
    if let Some(mod_spatialite) = text_key(section, "sqlite", "mod_spatialite_path", source)? {
        options.mod_spatialite_path = mod_spatialite;
    }
    if let Some(prefix) = text_key(section, "sqlite", "table_prefix", source)? {
        options.table_prefix = prefix;
    }
    Ok(options)
}

/// The `[postgresql]` section. The connection string is checked (its
/// syntax and keywords) but not used: the `PG*` environment variables and
/// the server count when the catalogue is opened. Messages never show it.
fn postgresql_options(section: &toml::Table, source: &Source) -> Result<PostgresOptions> {
    check_keys(section, "postgresql", &POSTGRESQL_KEYS, source)?;
    let connection_string = text_key(section, "postgresql", "connection_string", source)?
        .ok_or_else(|| {
            anyhow!(
                "configuration file \"{}\", section [postgresql]: missing key \"connection_string\" (libpq keywords such as host=db.example.org dbname=archive user=muninn, or a postgresql:// URL)",
                source.file
            )
        })?;
    let mut options = PostgresOptions::new(connection_string);
    options
        .check()
        .with_context(|| source.at_key("postgresql", "connection_string"))?;
    if let Some(prefix) = text_key(section, "postgresql", "table_prefix", source)? {
        check_postgresql_table_prefix(&prefix)
            .with_context(|| source.at_key("postgresql", "table_prefix"))?;
        options.table_prefix = prefix;
    }
    // Python muninn's driver; read so that its type is checked, then left.
    text_key(section, "postgresql", "library", source)?;
    Ok(options)
}

/// muninn's PostgreSQL table prefixes: `[a-z][_a-z]*(\.[a-z][_a-z]*)*`, a
/// schema name first when there is a dot. As on SQLite, digits may follow
/// the first letter (muninn's check is anchored at the start only, so it
/// takes them); a prefix may end with the dot (`archive.`, tables in
/// schema `archive`). Anything else would have to be quoted in SQL, and
/// muninn writes table names unquoted.
fn check_postgresql_table_prefix(prefix: &str) -> Result<()> {
    let part = |part: &str| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let body = prefix.strip_suffix('.').unwrap_or(prefix);
    if !prefix.is_empty() && !body.split('.').all(part) {
        bail!("invalid table_prefix \"{prefix}\": expected lowercase letters, digits or '_', starting with a letter, optionally after a schema name and '.' (such as s2_ or archive.s2_)");
    }
    Ok(())
}

/// A path from the configuration: relative ones are taken from `base`.
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Refuses a `connection_string` that names no file: SQLite's temporary
/// and in-memory databases (`""`, `:memory:`, and as URIs `file::memory:`,
/// `file:x?mode=memory`, `file:`) keep nothing, so every run would report
/// products created and the next would find none. Any other `file:` URI is
/// refused too: muninn opens the value as a file name, and SQLite would
/// read it as a URI or as a file name depending on how the configuration
/// file was named (relative paths are joined to its directory).
/// `ini`: the file is muninn's `.cfg` form, which writes values unquoted.
fn check_database_file(connection_string: &str, ini: bool) -> Result<()> {
    let text = connection_string.trim();
    let uri = text
        .get(..5)
        .filter(|scheme| scheme.eq_ignore_ascii_case("file:"))
        .map(|_| &text[5..]);
    let keeps_nothing = match uri {
        None => text.is_empty() || text == ":memory:",
        Some(rest) => {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let path = path.split_once('#').map_or(path, |(path, _)| path);
            path.is_empty()
                || path == ":memory:"
                || query.split('&').any(|parameter| {
                    let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
                    (key == "mode" && value == "memory") || (key == "vfs" && value == "memdb")
                })
        }
    };
    if keeps_nothing {
        bail!("{connection_string:?} is a temporary or in-memory SQLite database, which would keep nothing: connection_string must name a database file");
    }
    if let Some(rest) = uri {
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        let path = path.strip_prefix("//localhost").unwrap_or(path);
        let path = if ini {
            path.to_string()
        } else {
            format!("\"{path}\"")
        };
        bail!("{connection_string:?} is a SQLite URI; muninn-sync, like muninn, reads connection_string as the database file's path: write connection_string = {path} (a file whose name starts with \"file:\" is written ./file:...)");
    }
    Ok(())
}

/// muninn's synchronizer names: `[a-zA-Z][_\-a-zA-Z0-9]*`.
fn check_synchronizer_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        bail!("invalid synchronizer name \"{name}\": expected a letter followed by letters, digits, '_' or '-'");
    }
    Ok(())
}

/// `synchronizers` as a TOML list, or as muninn's whitespace-separated text.
fn synchronizer_names(value: &toml::Value) -> Result<Vec<String>> {
    let names: Vec<String> = match value {
        toml::Value::String(text) => text.split_whitespace().map(String::from).collect(),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::String(s) => Ok(s.clone()),
                other => Err(anyhow!("expected synchronizer names, found {other}")),
            })
            .collect::<Result<_>>()?,
        other => bail!("expected a list of synchronizer names, found {other}"),
    };
    for name in &names {
        check_synchronizer_name(name)?;
    }
    Ok(names)
}

/// A TOML error as `line L, column C: message`.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    }
}

/// The synchronizer's options as the JSON object a plugin receives: the
/// one conversion plugin-api's in-memory archive uses too.
pub use muninn_sync_plugin_api::section::to_json as options_to_json;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ArchiveConfig> {
        ArchiveConfig::parse(Path::new("/etc/muninn/demo.toml"), text)
    }

    const GOOD: &str = r#"
[archive]
database = "sqlite"
storage = "none"

[sqlite]
connection_string = "demo.sqlite"

["synchronizer:feed"]
module = "jsonl"
path = "feed.jsonl"
"#;

    fn message(result: Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", result.unwrap_err())
    }

    #[test]
    fn reads_muninn_sections_and_resolves_the_database_beside_the_file() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.sqlite.path, Path::new("/etc/muninn/demo.sqlite"));
        assert_eq!(config.sqlite.mod_spatialite_path, "mod_spatialite");
        let feed = config.synchronizer("feed").unwrap();
        assert_eq!(feed.module, "jsonl");
        assert_eq!(
            options_to_json(&feed.options),
            serde_json::json!({"path": "feed.jsonl"})
        );
    }

    #[test]
    fn the_hosts_own_keys_are_read_and_kept_from_the_plugin() {
        let text = GOOD.replace(
            "path = \"feed.jsonl\"",
            "path = \"feed.jsonl\"\nincremental = true\nlookback = \"1h\"\ninactivity_timeout = 600\ntimeout = 5",
        );
        let feed = parse(&text).unwrap().synchronizer("feed").unwrap();
        assert_eq!(
            feed.run,
            RunSettings {
                incremental: true,
                lookback: Some(Duration::from_secs(3600)),
                timeout: Some(Duration::from_secs(600)),
                ..RunSettings::default()
            }
        );
        // Off the list, a section muninn-sync alone runs (it has `plugin`).
        let listed = GOOD.replace("[archive]", "[archive]\nsynchronizers = [\"other\"]");
        let listed = format!("{listed}\n[\"synchronizer:mine\"]\nplugin = \"jsonl\"\n");
        let config = parse(&listed).unwrap();
        assert_eq!(config.synchronizer("mine").unwrap().module, "jsonl");
        assert!(message(config.synchronizer("feed")).contains("unregistered synchronizer"));
        // 1 and 0, as configparser's getboolean reads them; not 2.
        let one = GOOD.replace("path = \"feed.jsonl\"", "incremental = 1");
        assert!(
            parse(&one)
                .unwrap()
                .synchronizer("feed")
                .unwrap()
                .run
                .incremental
        );
        let two = GOOD.replace("path = \"feed.jsonl\"", "incremental = 2");
        assert!(
            message(parse(&two).unwrap().synchronizer("feed")).contains("expected true or false")
        );
        // A plugin's own `timeout` stays the plugin's.
        assert_eq!(
            options_to_json(&feed.options),
            serde_json::json!({"path": "feed.jsonl", "timeout": 5})
        );
        let bad = message(
            parse(&GOOD.replace("path = \"feed.jsonl\"", "lookback = \"soon\""))
                .unwrap()
                .synchronizer("feed"),
        );
        assert!(
            bad.contains("section [\"synchronizer:feed\"], key \"lookback\"")
                && bad.contains("invalid duration \"soon\""),
            "{bad}"
        );
    }

    #[test]
    fn errors_name_file_section_and_key() {
        let unknown_key = message(parse(&GOOD.replace("storage", "storge")));
        assert!(
            unknown_key.contains("/etc/muninn/demo.toml")
                && unknown_key.contains("[archive]")
                && unknown_key.contains("\"storge\""),
            "{unknown_key}"
        );
        let bad_toml = message(parse("[archive]\ndatabase = sqlite\n"));
        assert!(bad_toml.contains("line 2, column 12"), "{bad_toml}");
        let no_module = message(
            parse(&GOOD.replace("module = \"jsonl\"", ""))
                .unwrap()
                .synchronizer("feed"),
        );
        assert!(
            no_module.contains("missing module option for synchronizer \"feed\""),
            "{no_module}"
        );
        let unknown = message(parse(GOOD).unwrap().synchronizer("nosuch"));
        assert!(
            unknown.contains(
                "unregistered synchronizer: \"nosuch\"; registered synchronizers: \"feed\""
            ),
            "{unknown}"
        );
        let listed =
            parse(&GOOD.replace("storage = \"none\"", "synchronizers = \"feed other\"")).unwrap();
        let missing = message(listed.synchronizer("other"));
        assert!(
            missing.contains("missing synchronizer \"other\" configuration"),
            "{missing}"
        );
        let empty = message(parse(&GOOD.replace("\"demo.sqlite\"", "\"\"")));
        assert!(
            empty.contains("connection_string must name a database file"),
            "{empty}"
        );
        let postgres = message(parse(
            &GOOD.replace("\"sqlite\"\nstorage", "\"postgresql\"\nstorage"),
        ));
        assert!(postgres.contains("postgresql"), "{postgres}");
    }

    #[test]
    fn connection_strings_that_keep_nothing_or_are_uris_are_refused() {
        for nothing in [
            "",
            "  ",
            ":memory:",
            " :memory: ",
            "file::memory:",
            "File::memory:?cache=shared",
            "file:x.sqlite?mode=memory",
            "file:x.sqlite?cache=shared&mode=memory",
            "file:/x.sqlite?vfs=memdb",
            "file:",
            "file:?mode=rwc",
            "file:#x",
        ] {
            let refused = message(parse(
                &GOOD.replace("\"demo.sqlite\"", &format!("{nothing:?}")),
            ));
            assert!(
                refused.starts_with("configuration file \"/etc/muninn/demo.toml\", section [sqlite], key \"connection_string\": ")
                    && refused.contains("would keep nothing"),
                "{nothing:?}: {refused}"
            );
        }
        let uri = message(parse(
            &GOOD.replace("\"demo.sqlite\"", "\"file:/srv/demo.sqlite?mode=rwc\""),
        ));
        assert!(
            uri.contains("is a SQLite URI")
                && uri.contains("write connection_string = \"/srv/demo.sqlite\""),
            "{uri}"
        );
        // Names that only look alike are files.
        for file in ["memory.sqlite", ":memory:.sqlite", "file.sqlite", "files:x"] {
            let config = parse(&GOOD.replace("\"demo.sqlite\"", &format!("{file:?}"))).unwrap();
            assert_eq!(config.sqlite.path, Path::new("/etc/muninn").join(file));
        }
    }

    #[test]
    fn archive_ids_are_found_on_the_search_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("demo.toml");
        std::fs::write(&file, GOOD).unwrap();
        let dir_entry = dir.path().to_str().unwrap();
        assert_eq!(
            locate("demo", Some(&format!("/nonexistent:{dir_entry}"))).unwrap(),
            file
        );
        assert_eq!(locate("demo", Some(file.to_str().unwrap())).unwrap(), file);
        let missing = message(locate("other", Some(dir_entry)));
        assert!(
            missing.contains("\"other.toml\" or \"other.cfg\" not found on search path")
                && missing.contains(dir_entry),
            "{missing}"
        );
        assert!(
            message(locate("t/x", Some(dir_entry))).contains("invalid archive identifier: \"t/x\"")
        );
        assert_eq!(
            locate("x/archive.toml", None).unwrap(),
            Path::new("x/archive.toml")
        );
        assert_eq!(
            locate("x/archive.cfg", None).unwrap(),
            Path::new("x/archive.cfg")
        );
    }

    #[test]
    fn cfg_files_are_found_too_entry_by_entry_toml_first_within_one() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let search = format!("{}:{}", first.path().display(), second.path().display());
        let write = |dir: &tempfile::TempDir, name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, "").unwrap();
            path
        };
        let later_toml = write(&second, "demo.toml");
        assert_eq!(locate("demo", Some(&search)).unwrap(), later_toml);
        // An earlier entry wins, whichever form it has.
        let cfg = write(&first, "demo.cfg");
        assert_eq!(locate("demo", Some(&search)).unwrap(), cfg);
        // Within one entry, TOML first.
        let toml = write(&first, "demo.toml");
        assert_eq!(locate("demo", Some(&search)).unwrap(), toml);
        // A file entry matches either name.
        assert_eq!(locate("demo", Some(cfg.to_str().unwrap())).unwrap(), cfg);
    }

    fn parse_cfg(text: &str) -> Result<ArchiveConfig> {
        ArchiveConfig::parse(Path::new("/etc/muninn/demo.cfg"), text)
    }

    const GOOD_CFG: &str = "\
# muninn's own form
[DEFAULT]
root = /srv/muninn
incremental = yes

[archive]
database = sqlite
storage = none
synchronizers = feed
  other

[sqlite]
connection_string = %(root)s/demo.sqlite

[synchronizer:feed]
module = jsonl
path = %(root)s/feed.jsonl
product_types = [\"S2MSI1C\", \"S2MSI2A\"]
page_size = 100
ratio = 0.5
strict = off
numbered = 1
label = \"quoted\"
plain = some text
since = 2024-01-01 10:00:00
headers = { Authorization = \"Bearer x\" }
discount = 10%%

[synchronizer:feed.http]
timeout = 30

[synchronizer:feed.http.retry]
attempts = 3

[synchronizer:other]
module = muninn_other.sync
plugin = stac

[other tool]
anything = goes
";

    #[test]
    fn a_muninn_cfg_file_reads_as_the_same_configuration() {
        let config = parse_cfg(GOOD_CFG).unwrap();
        assert_eq!(config.sqlite.path, Path::new("/srv/muninn/demo.sqlite"));
        assert_eq!(
            config.registered,
            Some(vec!["feed".to_string(), "other".to_string()])
        );
        let feed = config.synchronizer("feed").unwrap();
        assert_eq!(feed.module, "jsonl");
        // incremental comes from [DEFAULT]: a key the host knows.
        assert!(feed.run.incremental);
        assert_eq!(
            options_to_json(&feed.options),
            serde_json::json!({
                "path": "/srv/muninn/feed.jsonl",
                "product_types": ["S2MSI1C", "S2MSI2A"],
                "page_size": 100,
                "ratio": 0.5,
                "strict": false,
                "numbered": 1,
                "label": "quoted",
                "plain": "some text",
                "since": "2024-01-01 10:00:00",
                "headers": {"Authorization": "Bearer x"},
                "discount": "10%",
                "http": {"timeout": 30, "retry": {"attempts": 3}},
            })
        );
        // plugin wins over a Python module, and neither reaches the plugin.
        let other = config.synchronizer("other").unwrap();
        assert_eq!(other.module, "stac");
        assert!(other.options.is_empty(), "{:?}", other.options);
        assert_eq!(config.section_header("feed"), "[synchronizer:feed]");
    }

    #[test]
    fn default_keys_count_only_where_muninn_sync_knows_them() {
        // `root` in [DEFAULT] is no unknown key of [archive] or [sqlite],
        // and the plugin does not get it; [sqlite] takes table_prefix from it.
        let text = "[DEFAULT]\nroot = /srv\ntable_prefix = t_\n[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = %(root)s/x.sqlite\n[synchronizer:feed]\nmodule = jsonl\npath = %(root)s/f\n";
        let config = parse_cfg(text).unwrap();
        assert_eq!(config.sqlite.table_prefix, "t_");
        let feed = config.synchronizer("feed").unwrap();
        assert_eq!(
            options_to_json(&feed.options),
            serde_json::json!({"path": "/srv/f"})
        );
        // A key written in the section itself is checked as in TOML, with its line.
        let unknown = message(parse_cfg(
            &text.replace("database = sqlite", "database = sqlite\nstorge = none"),
        ));
        assert!(
            unknown.contains("configuration file \"/etc/muninn/demo.cfg\", line 6, section [archive]: unknown key \"storge\""),
            "{unknown}"
        );
    }

    #[test]
    fn typed_values_feed_the_host_keys_too() {
        let text = "[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = x.sqlite\n[synchronizer:feed]\nmodule = \"jsonl\"\nincremental = True\nlookback = 1h\ninactivity_timeout = 600\n";
        let feed = parse_cfg(text).unwrap().synchronizer("feed").unwrap();
        assert_eq!(feed.module, "jsonl");
        assert_eq!(
            feed.run,
            RunSettings {
                incremental: true,
                lookback: Some(Duration::from_secs(3600)),
                timeout: Some(Duration::from_secs(600)),
                ..RunSettings::default()
            }
        );
        let bad = message(
            parse_cfg(&text.replace("lookback = 1h", "lookback = soon"))
                .unwrap()
                .synchronizer("feed"),
        );
        assert!(
            bad.contains("\"/etc/muninn/demo.cfg\", line 8, section [synchronizer:feed], key \"lookback\": invalid duration \"soon\""),
            "{bad}"
        );
    }

    #[test]
    fn a_python_module_is_refused_with_how_to_map_it() {
        let text = "[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = x.sqlite\n[synchronizer:cdse]\nmodule = muninn_cdse.sync\n";
        let python = message(parse_cfg(text).unwrap().synchronizer("cdse"));
        assert_eq!(
            python,
            "configuration file \"/etc/muninn/demo.cfg\", line 6, section [synchronizer:cdse]: module \"muninn_cdse.sync\" is a Python module (Python muninn's synchronizer); muninn-sync loads Rust plugins (cdylib .so files). Map it: add plugin = odata (a built-in: jsonl, stac, odata) or plugin = /path/to/libyours.so to the section; Python muninn does not read that key. See docs/migrating-from-muninn.md, and docs/plugin-abi.md to write a plugin"
        );
        // In TOML the hint is written as TOML.
        let toml = message(
            parse("[archive]\ndatabase = \"sqlite\"\n[sqlite]\nconnection_string = \"x\"\n[\"synchronizer:m\"]\nmodule = \"pkg.sync\"\n")
                .unwrap()
                .synchronizer("m"),
        );
        assert!(
            toml.contains("section [\"synchronizer:m\"]: module \"pkg.sync\" is a Python module")
                && toml.contains("add plugin = \"<name>\" (one of the built-ins jsonl, stac, odata) or plugin = \"/path/to/libyours.so\""),
            "{toml}"
        );
        let mapped = parse_cfg(&format!("{text}plugin = /opt/libcdse.so\n"))
            .unwrap()
            .synchronizer("cdse")
            .unwrap();
        assert_eq!(mapped.module, "/opt/libcdse.so");
        let neither = message(
            parse_cfg(&text.replace("module = muninn_cdse.sync", "url = x"))
                .unwrap()
                .synchronizer("cdse"),
        );
        assert!(
            neither.contains("missing module option for synchronizer \"cdse\"")
                && neither.contains(
                    "section [synchronizer:cdse] needs module = <plugin> (or plugin = <plugin>"
                ),
            "{neither}"
        );
    }

    #[test]
    fn table_sections_need_their_synchronizer_and_no_clashing_key() {
        let base = "[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = x.sqlite\n";
        let orphan = message(parse_cfg(&format!(
            "{base}[synchronizer:cdse.http]\ntimeout = 5\n"
        )));
        assert_eq!(
            orphan,
            "configuration file \"/etc/muninn/demo.cfg\", line 5, section [synchronizer:cdse.http]: this would be table \"http\" of synchronizer \"cdse\", but there is no [synchronizer:cdse] section (synchronizer names cannot contain '.')"
        );
        let clash = message(parse_cfg(&format!(
            "{base}[synchronizer:cdse.http]\ntimeout = 5\n[synchronizer:cdse]\nmodule = odata\nhttp = {{ timeout = 1 }}\n"
        )));
        assert!(
            clash.contains(
                "section [synchronizer:cdse.http]: [synchronizer:cdse] already has a key \"http\""
            ),
            "{clash}"
        );
        let empty = message(parse_cfg(&format!(
            "{base}[synchronizer:cdse]\nmodule = odata\n[synchronizer:cdse..x]\n"
        )));
        assert!(
            empty.contains("a table name between dots is empty"),
            "{empty}"
        );
        // A deeper table may come first in the file.
        let config = parse_cfg(&format!(
            "{base}[synchronizer:cdse.http.retry]\nattempts = 2\n[synchronizer:cdse]\nmodule = odata\n[synchronizer:cdse.http]\ntimeout = 5\n"
        ))
        .unwrap();
        assert_eq!(
            options_to_json(&config.synchronizer("cdse").unwrap().options),
            serde_json::json!({"http": {"timeout": 5, "retry": {"attempts": 2}}})
        );
    }

    #[test]
    fn cfg_syntax_and_interpolation_errors_name_file_and_line() {
        let syntax = message(parse_cfg("[archive]\ndatabase = sqlite\njunk\n"));
        assert!(
            syntax.starts_with("configuration file \"/etc/muninn/demo.cfg\", line 3, section [archive]: \"junk\" is neither"),
            "{syntax}"
        );
        let missing = message(parse_cfg(
            "[archive]\ndatabase = sqlite\n[sqlite]\nconnection_string = %(root)s/x\n",
        ));
        assert!(
            missing.starts_with("configuration file \"/etc/muninn/demo.cfg\", line 4, section [sqlite], key \"connection_string\": %(root)s refers to a key \"root\""),
            "{missing}"
        );
        let names = message(parse_cfg(
            "[archive]\ndatabase = sqlite\nsynchronizers = a, b\n[sqlite]\nconnection_string = x\n",
        ));
        assert!(
            names.contains("line 3, section [archive], key \"synchronizers\"")
                && names.contains("invalid synchronizer name \"a,\""),
            "{names}"
        );
    }

    const POSTGRESQL: &str = r#"
[archive]
database = "postgresql"
storage = "none"

[postgresql]
connection_string = "host=db.example.org dbname=archive user=muninn password=hunter2"
table_prefix = "s2_"

["synchronizer:feed"]
module = "jsonl"
path = "feed.jsonl"
"#;

    fn postgres_options(config: &ArchiveConfig) -> &PostgresOptions {
        match &config.database {
            Database::Postgresql(options) => options,
            Database::Sqlite => panic!("read as SQLite: {config:?}"),
        }
    }

    #[test]
    fn a_postgresql_archive_reads_its_section() {
        let config = parse(POSTGRESQL).unwrap();
        let options = postgres_options(&config);
        assert_eq!(
            options.connection_string,
            "host=db.example.org dbname=archive user=muninn password=hunter2"
        );
        assert_eq!(options.table_prefix, "s2_");
        assert_eq!(config.synchronizer("feed").unwrap().module, "jsonl");
        // Optional prefix; muninn's `library` taken and left; a [sqlite]
        // section is not read.
        let plain = parse(
            &POSTGRESQL
                .replace("table_prefix = \"s2_\"", "library = \"psycopg2\"")
                .replace("[postgresql]", "[sqlite]\nwhatever = 1\n\n[postgresql]"),
        )
        .unwrap();
        assert_eq!(postgres_options(&plain).table_prefix, "");
        for prefix in ["s", "s2_", "archive.", "archive.s2_", "a_b.c1"] {
            let config = parse(&POSTGRESQL.replace("\"s2_\"", &format!("{prefix:?}"))).unwrap();
            assert_eq!(postgres_options(&config).table_prefix, prefix);
        }
        // SQLite archives say so.
        assert_eq!(parse(GOOD).unwrap().database, Database::Sqlite);
        // A URL is a connection string too.
        let url = parse(&POSTGRESQL.replace(
            "\"host=db.example.org dbname=archive user=muninn password=hunter2\"",
            "\"postgresql://muninn:hunter2@db.example.org/archive?sslmode=verify-full\"",
        ))
        .unwrap();
        assert!(postgres_options(&url)
            .connection_string
            .starts_with("postgresql://"));
    }

    #[test]
    fn a_muninn_cfg_file_with_postgresql_reads_the_same() {
        let text = "\
[DEFAULT]
host = db.example.org

[archive]
database = postgresql
storage = none

[postgresql]
connection_string = host=%(host)s dbname=archive user=muninn password=hunter2
table_prefix = s2_
library = psycopg2

[synchronizer:feed]
module = jsonl
";
        let config = parse_cfg(text).unwrap();
        let options = postgres_options(&config);
        assert_eq!(
            options.connection_string,
            "host=db.example.org dbname=archive user=muninn password=hunter2"
        );
        assert_eq!(options.table_prefix, "s2_");
        // [DEFAULT]'s table_prefix counts in [postgresql], as in muninn.
        let inherited = parse_cfg(
            &text
                .replace("table_prefix = s2_\n", "")
                .replace("[DEFAULT]\n", "[DEFAULT]\ntable_prefix = t_\n"),
        )
        .unwrap();
        assert_eq!(postgres_options(&inherited).table_prefix, "t_");
        let unknown = message(parse_cfg(&text.replace("library", "libary")));
        assert!(
            unknown.starts_with("configuration file \"/etc/muninn/demo.cfg\", line 11, section [postgresql]: unknown key \"libary\""),
            "{unknown}"
        );
    }

    #[test]
    fn postgresql_errors_name_file_section_and_key() {
        let no_section = message(parse(
            "[archive]\ndatabase = \"postgresql\"\n[sqlite]\nconnection_string = \"x.sqlite\"\n",
        ));
        assert_eq!(
            no_section,
            "configuration file \"/etc/muninn/demo.toml\": missing [postgresql] section (database = \"postgresql\" needs one, with connection_string = \"host=db.example.org dbname=archive user=muninn\")"
        );
        let no_string = message(parse(&POSTGRESQL.replace(
            "connection_string = \"host=db.example.org dbname=archive user=muninn password=hunter2\"",
            "",
        )));
        assert!(
            no_string.starts_with("configuration file \"/etc/muninn/demo.toml\", section [postgresql]: missing key \"connection_string\""),
            "{no_string}"
        );
        let no_section_cfg = message(parse_cfg("[archive]\ndatabase = postgresql\n"));
        assert!(
            no_section_cfg.contains("\"/etc/muninn/demo.cfg\": missing [postgresql] section (database = postgresql needs one"),
            "{no_section_cfg}"
        );
        let unknown = message(parse(&POSTGRESQL.replace("table_prefix", "prefix")));
        assert!(
            unknown.contains("section [postgresql]: unknown key \"prefix\" (known keys: connection_string, table_prefix, library)"),
            "{unknown}"
        );
        let prefix = message(parse(&POSTGRESQL.replace("\"s2_\"", "\"S2\"")));
        assert!(
            prefix.contains(
                "section [postgresql], key \"table_prefix\": invalid table_prefix \"S2\""
            ),
            "{prefix}"
        );
        for bad in ["2s", "s-2", "a..b", ".a", "a b"] {
            let error = message(parse(&POSTGRESQL.replace("\"s2_\"", &format!("{bad:?}"))));
            assert!(error.contains("invalid table_prefix"), "{bad}: {error}");
        }
        let keyword = message(parse(
            &POSTGRESQL.replace("dbname=archive", "service=archive"),
        ));
        assert!(
            keyword.contains("section [postgresql], key \"connection_string\": connection string keyword \"service\" is not supported"),
            "{keyword}"
        );
        let database = message(parse(
            &POSTGRESQL.replace("\"postgresql\"\nstorage", "\"mysql\"\nstorage"),
        ));
        assert!(
            database.contains("section [archive]: database must be \"sqlite\" or \"postgresql\""),
            "{database}"
        );
    }

    #[test]
    fn the_connection_strings_password_never_shows() {
        let url = "postgresql://muninn:hunter2@db.example.org/archive";
        let keywords = "host=db.example.org user=muninn password=hunter2";
        let mut failures = Vec::new();
        for connection_string in [keywords, url] {
            let toml = POSTGRESQL.replace(
                "\"host=db.example.org dbname=archive user=muninn password=hunter2\"",
                &format!("{connection_string:?}"),
            );
            // Debug of a good configuration.
            let config = parse(&toml).unwrap();
            failures.push(format!("{config:?}"));
            failures.push(format!("{:?}", config.database));
            // Errors about the section, the string and other keys.
            for broken in [
                toml.replace("table_prefix", "tabel_prefix"),
                toml.replace("\"s2_\"", "\"S2\""),
                toml.replace("/archive\"", "/archive?sslmode=sometimes\"")
                    .replace("password=hunter2", "password=hunter2 sslmode=sometimes"),
                toml.replace("[postgresql]", "[postgresql]\nlibrary = 3"),
                toml.replace("\"postgresql\"\nstorage", "\"nosuch\"\nstorage"),
            ] {
                failures.push(message(parse(&broken)));
            }
            let cfg = format!(
                "[archive]\ndatabase = postgresql\n[postgresql]\nconnection_string = {connection_string}\n"
            );
            failures.push(format!("{:?}", parse_cfg(&cfg).unwrap()));
            // TOML that cannot be read.
            failures.push(message(parse(&toml.replace(
                &format!("{connection_string:?}"),
                &format!("\"{connection_string}"),
            ))));
            for broken in [
                // A lone % (a percent-encoded URL must write %%) and a bad
                // reference.
                cfg.replace("hunter2", "hunter%2"),
                cfg.replace("hunter2", "hunter%(x"),
                // A value's line that lost its indent.
                cfg.replace("connection_string = ", "connection_string =\n"),
                format!("{cfg}table_prefix = Bad\n"),
                // A line that is no key = value.
                format!("{cfg}hunter2 and more\n"),
            ] {
                failures.push(message(parse_cfg(&broken)));
            }
        }
        // A TOML table where a string belongs shows its type only.
        failures.push(message(parse(&POSTGRESQL.replace(
            "\"host=db.example.org dbname=archive user=muninn password=hunter2\"",
            "{ password = \"hunter2\" }",
        ))));
        for shown in &failures {
            assert!(!shown.contains("hunter"), "{shown}");
        }
        assert!(failures.iter().any(|f| f.contains("password=***")));
        assert!(failures.iter().any(|f| f.contains("muninn:***@")));
    }
}
