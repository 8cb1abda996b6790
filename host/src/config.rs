//! The archive's configuration: finding the file from an archive id, as
//! muninn does, and reading the sections muninn-sync uses.

use crate::duration::parse_duration;
use anyhow::{anyhow, bail, Context, Result};
use muninn_sync_catalogue::SqliteOptions;
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

/// An archive's configuration file, read.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// The catalogue database.
    pub sqlite: SqliteOptions,
    /// `[archive] synchronizers`, when given.
    pub registered: Option<Vec<String>>,
    /// Every `["synchronizer:<name>"]` section by name.
    pub synchronizers: BTreeMap<String, toml::Table>,
}

/// One synchronizer's section.
#[derive(Debug, Clone)]
pub struct SynchronizerConfig {
    pub name: String,
    /// The `module` key: a plugin name or the path of a plugin file.
    pub module: String,
    /// The host's own keys of the section.
    pub run: RunSettings,
    /// The other keys, for the plugin.
    pub options: toml::Table,
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
}

impl RunSettings {
    /// Takes the host's keys out of a section.
    fn take(options: &mut toml::Table, file: &str, name: &str) -> Result<RunSettings> {
        let at = |key: &str| {
            format!(
                "configuration file \"{file}\", section [\"synchronizer:{name}\"], key \"{key}\""
            )
        };
        let incremental = match options.remove("incremental") {
            None => false,
            Some(toml::Value::Boolean(b)) => b,
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
        Ok(RunSettings {
            incremental,
            lookback: duration("lookback")?,
            timeout: duration("inactivity_timeout")?,
        })
    }
}

/// Finds an archive's configuration file: a path ending in `.toml` is taken
/// as it is; an archive id is looked up as `<id>.toml` in the entries of
/// `search_path` (colon-separated; an entry is a directory, or a file whose
/// name matches).
pub fn locate(archive: &str, search_path: Option<&str>) -> Result<PathBuf> {
    if archive.ends_with(".toml") {
        return Ok(PathBuf::from(archive));
    }
    if archive.is_empty() || archive.contains('/') || archive.contains(std::path::MAIN_SEPARATOR) {
        bail!("invalid archive identifier: \"{archive}\"");
    }
    let file_name = format!("{archive}.toml");
    let search_path = search_path.unwrap_or("");
    for entry in search_path.split(':').filter(|e| !e.is_empty()) {
        let entry = Path::new(entry);
        if entry.is_dir() {
            let candidate = entry.join(&file_name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        } else if entry.file_name().is_some_and(|n| n == file_name.as_str()) && entry.is_file() {
            return Ok(entry.to_path_buf());
        }
    }
    bail!("configuration file: \"{file_name}\" not found on search path ({CONFIG_PATH_VARIABLE}): \"{search_path}\"")
}

impl ArchiveConfig {
    /// Reads and checks a configuration file; errors name the file, the
    /// section and the key.
    pub fn read(path: &Path) -> Result<ArchiveConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration file \"{}\"", path.display()))?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<ArchiveConfig> {
        let file = path.display();
        let document: toml::Table = toml::from_str(text).map_err(|e| {
            anyhow!(
                "invalid TOML in configuration file \"{file}\": {}",
                describe_toml_error(text, &e)
            )
        })?;
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
                bail!("configuration file \"{file}\", section [archive]: unknown key \"{key}\" (known keys: {})", ARCHIVE_KEYS.join(", "));
            }
        }
        match archive.get("database") {
            Some(toml::Value::String(db)) if db == "sqlite" => {}
            Some(toml::Value::String(db)) if db == "postgresql" => bail!(
                "configuration file \"{file}\", section [archive]: database \"postgresql\" is not supported yet; muninn-sync supports \"sqlite\""
            ),
            Some(other) => bail!(
                "configuration file \"{file}\", section [archive]: database must be \"sqlite\", not {other}"
            ),
            None => bail!("configuration file \"{file}\", section [archive]: missing key \"database\" (database = \"sqlite\")"),
        }
        let registered = match archive.get("synchronizers") {
            None => None,
            Some(value) => Some(synchronizer_names(value).with_context(|| {
                format!("configuration file \"{file}\", section [archive], key \"synchronizers\"")
            })?),
        };

        let sqlite = section("sqlite")?
            .ok_or_else(|| anyhow!("configuration file \"{file}\": missing [sqlite] section (database = \"sqlite\" needs one)"))?;
        for key in sqlite.keys() {
            if !SQLITE_KEYS.contains(&key.as_str()) {
                bail!("configuration file \"{file}\", section [sqlite]: unknown key \"{key}\" (known keys: {})", SQLITE_KEYS.join(", "));
            }
        }
        let text_key = |key: &str| -> Result<Option<String>> {
            match sqlite.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => bail!("configuration file \"{file}\", section [sqlite]: {key} must be a string, not {other}"),
            }
        };
        let connection_string = text_key("connection_string")?
            .ok_or_else(|| anyhow!("configuration file \"{file}\", section [sqlite]: missing key \"connection_string\" (the database file)"))?;
        if connection_string.trim().is_empty() || connection_string.trim() == ":memory:" {
            bail!(
                "configuration file \"{file}\", section [sqlite]: connection_string must name a database file, not {connection_string:?} (a temporary database would keep nothing)"
            );
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut options = SqliteOptions::new(resolve(base, &connection_string));
        if let Some(mod_spatialite) = text_key("mod_spatialite_path")? {
            options.mod_spatialite_path = mod_spatialite;
        }
        if let Some(prefix) = text_key("table_prefix")? {
            options.table_prefix = prefix;
        }

        let mut synchronizers = BTreeMap::new();
        for (key, value) in &document {
            let Some(name) = key.strip_prefix("synchronizer:") else {
                continue;
            };
            check_synchronizer_name(name)
                .with_context(|| format!("configuration file \"{file}\", section [\"{key}\"]"))?;
            let toml::Value::Table(table) = value else {
                bail!("configuration file \"{file}\": [\"{key}\"] must be a section");
            };
            synchronizers.insert(name.to_string(), table.clone());
        }
        Ok(ArchiveConfig {
            path: path.to_path_buf(),
            sqlite: options,
            registered,
            synchronizers,
        })
    }

    /// The names a user may pass as SYNCHRONIZER.
    pub fn known_synchronizers(&self) -> Vec<String> {
        match &self.registered {
            Some(names) => names.clone(),
            None => self.synchronizers.keys().cloned().collect(),
        }
    }

    /// The section of one synchronizer, checked as muninn checks it.
    pub fn synchronizer(&self, name: &str) -> Result<SynchronizerConfig> {
        let file = self.path.display();
        let known = self.known_synchronizers();
        if !known.iter().any(|k| k == name) {
            let listed = known
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ");
            bail!("unregistered synchronizer: \"{name}\"; registered synchronizers: {listed} (configuration file \"{file}\")");
        }
        let mut options = self
            .synchronizers
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("missing synchronizer \"{name}\" configuration: configuration file \"{file}\" has no [\"synchronizer:{name}\"] section"))?;
        let module = match options.remove("module") {
            Some(toml::Value::String(module)) if !module.trim().is_empty() => module,
            Some(other) => bail!(
                "configuration file \"{file}\", section [\"synchronizer:{name}\"]: module must be a plugin name or path, not {other}"
            ),
            None => bail!(
                "missing module option for synchronizer \"{name}\": configuration file \"{file}\", section [\"synchronizer:{name}\"] needs module = \"<plugin>\""
            ),
        };
        let run = RunSettings::take(&mut options, &file.to_string(), name)?;
        Ok(SynchronizerConfig {
            name: name.to_string(),
            module,
            run,
            options,
        })
    }
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

/// The synchronizer's options as the JSON object a plugin receives. TOML
/// dates and times become RFC 3339 text.
pub fn options_to_json(options: &toml::Table) -> serde_json::Value {
    fn convert(value: &toml::Value) -> serde_json::Value {
        match value {
            toml::Value::String(s) => serde_json::Value::String(s.clone()),
            toml::Value::Integer(i) => serde_json::Value::from(*i),
            toml::Value::Float(f) => serde_json::Value::from(*f),
            toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
            toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
            toml::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(convert).collect())
            }
            toml::Value::Table(table) => serde_json::Value::Object(
                table.iter().map(|(k, v)| (k.clone(), convert(v))).collect(),
            ),
        }
    }
    serde_json::Value::Object(
        options
            .iter()
            .map(|(k, v)| (k.clone(), convert(v)))
            .collect(),
    )
}

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
            }
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
            missing.contains("\"other.toml\" not found on search path")
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
    }
}
