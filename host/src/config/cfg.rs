//! muninn's own `.cfg` files: the INI file turned into the document a TOML
//! configuration is, so that both are checked by the same code and the
//! plugins get typed values either way.
//!
//! - `[archive]`, `[sqlite]` and `[postgresql]` values stay text, as
//!   muninn reads them.
//! - `[synchronizer:<name>]` values that are TOML values (integers, floats,
//!   `true`/`false`, quoted strings, arrays, inline tables) become those,
//!   and `yes`/`no`/`on`/`off`/`true`/`false` in any case become booleans;
//!   anything else, dates and times included, stays the text as written.
//! - `[synchronizer:<name>.<table>]` is the table `<table>` of synchronizer
//!   `<name>` (`["synchronizer:<name>".<table>]` in TOML); more dots nest
//!   deeper. Synchronizer names cannot contain a dot.
//! - `[DEFAULT]` keys serve interpolation everywhere, but count as keys of
//!   a section only where muninn-sync knows the key: in `[archive]`,
//!   `[sqlite]` and `[postgresql]`, and the host's own keys of a
//!   synchronizer's section. The
//!   plugins, which refuse keys they do not know, never get them.

use super::ini::{self, Ini, Section};
use super::{ARCHIVE_KEYS, HOST_KEYS, POSTGRESQL_KEYS, SQLITE_KEYS, SYNCHRONIZER_PREFIX};
use anyhow::{anyhow, bail, Result};
use std::collections::{HashMap, HashSet};

/// Where each key of the file is, by section and key, for messages.
pub type KeyLines = HashMap<(String, String), usize>;

/// The document a `.cfg` file stands for, and the line of each key.
pub fn document(file: &str, text: &str) -> Result<(toml::Table, KeyLines)> {
    let ini = Ini::parse(text).map_err(|e| at_line(file, e))?;
    let mut document = toml::Table::new();
    let mut lines = KeyLines::new();
    let mut tables = Vec::new();
    for section in ini.sections() {
        let (known, typed): (&[&str], bool) = match section.name.as_str() {
            "archive" => (&ARCHIVE_KEYS, false),
            "sqlite" => (&SQLITE_KEYS, false),
            "postgresql" => (&POSTGRESQL_KEYS, false),
            name => match name.strip_prefix(SYNCHRONIZER_PREFIX) {
                Some(rest) if rest.contains('.') => {
                    tables.push(section);
                    continue;
                }
                Some(_) => (&HOST_KEYS, true),
                // Other tools' sections: not ours to read.
                None => continue,
            },
        };
        let mut table = toml::Table::new();
        let inherited = ini
            .defaults()
            .entries
            .iter()
            .filter(|e| known.contains(&e.key.as_str()) && section.own(&e.key).is_none());
        for entry in section.entries.iter().chain(inherited) {
            let text = ini.value(section, entry).map_err(|e| at_line(file, e))?;
            let value = if typed {
                typed_value(&text)
            } else {
                toml::Value::String(text)
            };
            table.insert(entry.key.clone(), value);
            lines.insert((section.name.clone(), entry.key.clone()), entry.line);
        }
        document.insert(section.name.clone(), toml::Value::Table(table));
    }
    add_tables(file, &ini, &mut document, tables)?;
    Ok((document, lines))
}

fn at_line(file: &str, error: ini::Error) -> anyhow::Error {
    anyhow!("configuration file \"{file}\", {error}")
}

/// Puts each `[synchronizer:<name>.<a>.<b>]` section into its
/// synchronizer's table, shallow ones first so that deeper ones land in
/// them; a missing table on the way is made, as TOML makes one.
fn add_tables(
    file: &str,
    ini: &Ini,
    document: &mut toml::Table,
    mut sections: Vec<&Section>,
) -> Result<()> {
    sections.sort_by_key(|s| s.name.matches('.').count());
    // Tables made by sections (not by a key's inline table): deeper
    // sections may add to them.
    let mut made: HashSet<Vec<String>> = HashSet::new();
    for section in sections {
        let place = format!(
            "configuration file \"{file}\", line {}, section [{}]",
            section.line, section.name
        );
        let rest = &section.name[SYNCHRONIZER_PREFIX.len()..];
        let (name, path) = rest.split_once('.').expect("a dotted section");
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            bail!("{place}: a table name between dots is empty; write [{SYNCHRONIZER_PREFIX}<name>.<table>]");
        }
        let parent_name = format!("{SYNCHRONIZER_PREFIX}{name}");
        let Some(toml::Value::Table(parent)) = document.get_mut(&parent_name) else {
            bail!(
                "{place}: this would be table \"{}\" of synchronizer \"{name}\", but there is no [{parent_name}] section (synchronizer names cannot contain '.')",
                path.join(".")
            );
        };
        let mut table = parent;
        for depth in 0..path.len() {
            let key = &path[depth];
            let last = depth + 1 == path.len();
            let sofar = path[..=depth].to_vec();
            let exists = table.contains_key(key);
            if exists && (last || !made.contains(&sofar)) {
                bail!(
                    "{place}: [{parent_name}] already has a key \"{}\"; give the table's keys in one place",
                    sofar.join(".")
                );
            }
            if !exists {
                table.insert(key.clone(), toml::Value::Table(toml::Table::new()));
                made.insert(sofar);
            }
            table = match table.get_mut(key) {
                Some(toml::Value::Table(inner)) => inner,
                _ => unreachable!("a table made or checked above"),
            };
        }
        for entry in &section.entries {
            let text = ini.value(section, entry).map_err(|e| at_line(file, e))?;
            table.insert(entry.key.clone(), typed_value(&text));
        }
    }
    Ok(())
}

/// A synchronizer's INI value as the TOML value it spells, else as text.
pub fn typed_value(text: &str) -> toml::Value {
    // configparser's getboolean() words, but not 1 and 0, which stay the
    // integers TOML reads them as.
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => return toml::Value::Boolean(true),
        "false" | "no" | "off" => return toml::Value::Boolean(false),
        _ => {}
    }
    match text.parse::<toml::Value>() {
        // A time stays as written: TOML would only rewrite it (a 'T' for
        // the space) on its way to the plugin as text.
        Ok(toml::Value::Datetime(_)) | Err(_) => toml::Value::String(text.to_string()),
        // `inf` and `nan` are words to an INI file, and JSON has no such
        // numbers.
        Ok(toml::Value::Float(f)) if !f.is_finite() => toml::Value::String(text.to_string()),
        Ok(value) => value,
    }
}

#[cfg(test)]
mod tests {
    use super::typed_value;
    use toml::Value;

    #[test]
    fn values_become_what_toml_reads_them_as_or_stay_text() {
        let text = |s: &str| Value::String(s.to_string());
        for (written, expected) in [
            ("42", Value::Integer(42)),
            ("-7", Value::Integer(-7)),
            ("1_000", Value::Integer(1000)),
            ("1", Value::Integer(1)),
            ("0", Value::Integer(0)),
            ("2.5", Value::Float(2.5)),
            ("true", Value::Boolean(true)),
            ("False", Value::Boolean(false)),
            ("YES", Value::Boolean(true)),
            ("no", Value::Boolean(false)),
            ("On", Value::Boolean(true)),
            ("off", Value::Boolean(false)),
            ("\"quoted # text\"", text("quoted # text")),
            ("'literal'", text("literal")),
            ("[\"a\",\n\"b\"]", Value::Array(vec![text("a"), text("b")])),
            ("plain text", text("plain text")),
            ("jsonl", text("jsonl")),
            ("muninn_cdse.sync", text("muninn_cdse.sync")),
            ("007", text("007")),
            ("5 # five", text("5 # five")),
            ("\"unclosed", text("\"unclosed")),
            ("2024-01-01", text("2024-01-01")),
            ("2024-01-01 10:00:00", text("2024-01-01 10:00:00")),
            ("inf", text("inf")),
            ("nan", text("nan")),
            ("", text("")),
            ("a\nb", text("a\nb")),
        ] {
            assert_eq!(typed_value(written), expected, "{written:?}");
        }
        let table = typed_value("{ a = 1, b = \"x\" }");
        assert_eq!(table["a"], Value::Integer(1));
        assert_eq!(table["b"], text("x"));
    }
}
