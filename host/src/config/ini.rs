//! INI files as Python's `configparser.ConfigParser()` reads them with its
//! default settings, which is how muninn reads an archive's `<id>.cfg`.
//!
//! The rules, each as configparser has them:
//! - `[name]` starts a section; names are case-sensitive, `[DEFAULT]` is
//!   the section whose keys every other section sees.
//! - `key = value` or `key: value` (the first `=` or `:` splits); keys are
//!   lower-cased, keys and values stripped of surrounding whitespace.
//! - Lines whose first non-blank character is `#` or `;` are comments;
//!   there are no comments after a value.
//! - A line indented more than its key's line continues the value; the
//!   lines are joined with `\n`, blank lines inside a value are kept and
//!   trailing ones dropped.
//! - A section or a key twice in one section is an error; so is a key
//!   before any section header.
//! - Values are interpolated when read: `%(name)s` is the value of `name`
//!   in the same section or else in `[DEFAULT]`, itself interpolated, up to
//!   10 levels deep; `%%` is a literal `%`.
//!
//! Unlike configparser, errors never quote a value or line that may hold a
//! credential (see `secrets`): they name the line, section and key.

use super::secrets;
use std::collections::HashMap;
use std::fmt;

/// The section whose keys every other section sees.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// configparser's `MAX_INTERPOLATION_DEPTH`.
const MAX_INTERPOLATION_DEPTH: usize = 10;

/// One `key = value`, its value as written (continuation lines joined),
/// before interpolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lower-cased, as configparser's `optionxform` leaves it.
    pub key: String,
    pub raw: String,
    /// The line of the key, from 1.
    pub line: usize,
}

/// A section and its own keys, in the order of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// The line of its (first) header; 0 for a `[DEFAULT]` the file lacks.
    pub line: usize,
    pub entries: Vec<Entry>,
}

impl Section {
    /// A key written in this section itself (not inherited from `[DEFAULT]`).
    pub fn own(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.key == key)
    }
}

/// A file read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ini {
    defaults: Section,
    sections: Vec<Section>,
}

/// What is wrong, and where: the line, and the section and key when the
/// error is in a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub section: Option<String>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(section) = &self.section {
            write!(f, ", section [{section}]")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key \"{key}\"")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Error {}

/// Python's `str.isspace()`, which `strip()` and `\s` go by: Unicode's
/// white space and the four ASCII separators 0x1C to 0x1F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn strip(text: &str) -> &str {
    text.trim_matches(is_space)
}

/// The lines of a text as Python reads a file in text mode: `\n`, `\r\n`
/// and `\r` all end one.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\n', '\r']) {
            None => {
                rest = None;
                (!current.is_empty()).then_some(current)
            }
            Some(end) => {
                let width = if current[end..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[end + width..]);
                Some(&current[..end])
            }
        }
    })
}

/// configparser's `SECTCRE`, `\[(?P<header>.+)\]`, matched at the start of
/// the stripped line: from the first `[` to the last `]`, anything after
/// it ignored.
fn section_header(line: &str) -> Option<&str> {
    let inner = line.strip_prefix('[')?;
    let end = inner.rfind(']')?;
    (end > 0).then(|| &inner[..end])
}

/// configparser's `OPTCRE` with the default delimiters: the key before the
/// first `=` or `:`, the value after it.
fn option_line(line: &str) -> Option<(&str, &str)> {
    let at = line.find(['=', ':'])?;
    Some((
        line[..at].trim_end_matches(is_space),
        strip(&line[at + 1..]),
    ))
}

/// A line of the file quoted in a message, unless it may show a
/// credential: it names one, sits in a section of credentials (`headers`),
/// or follows a credential's key (a value's line that lost its indent).
fn quoted_line(line: &str, section: Option<&str>, after_key: Option<&str>) -> String {
    let secret = secrets::may_show_credential(line)
        || section.is_some_and(|section| secrets::is_credential_in_section(section, ""))
        || after_key.is_some_and(secrets::holds_credentials);
    if secret {
        "the line (not shown: it may hold a credential)".to_string()
    } else {
        format!("{line:?}")
    }
}

/// Where the lines being read go.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Defaults,
    Section(usize),
}

impl Ini {
    /// Reads a whole file; the first error stops it.
    pub fn parse(text: &str) -> Result<Ini, Error> {
        // Python keeps a byte order mark and then finds no section header;
        // an editor's BOM is not worth refusing a file for.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut ini = Ini {
            defaults: Section {
                name: DEFAULT_SECTION.to_string(),
                line: 0,
                entries: Vec::new(),
            },
            sections: Vec::new(),
        };
        // The lines of each value, joined at the end (configparser's
        // `_join_multiline_values`).
        let mut parts: HashMap<(Target, usize), Vec<String>> = HashMap::new();
        let mut target: Option<Target> = None;
        // The entry that a more indented line continues.
        let mut open: Option<(Target, usize)> = None;
        let mut indent_level = 0;
        for (index, line) in lines(text).enumerate() {
            let number = index + 1;
            let stripped = strip(line);
            if stripped.starts_with('#') || stripped.starts_with(';') {
                continue;
            }
            if stripped.is_empty() {
                if let Some(value) = open {
                    parts.entry(value).or_default().push(String::new());
                }
                continue;
            }
            let indent = line.chars().take_while(|&c| is_space(c)).count();
            if let Some(value) = open.filter(|_| indent > indent_level) {
                parts.entry(value).or_default().push(stripped.to_string());
                continue;
            }
            indent_level = indent;
            // The key whose value a line that lost its indent may continue.
            let after_key = open.map(|(target, index)| match target {
                Target::Defaults => ini.defaults.entries[index].key.clone(),
                Target::Section(i) => ini.sections[i].entries[index].key.clone(),
            });
            let quoted =
                |section: Option<&str>| quoted_line(stripped, section, after_key.as_deref());
            if let Some(name) = section_header(stripped) {
                if let Some(existing) = ini.sections.iter().find(|s| s.name == name) {
                    return Err(Error {
                        line: number,
                        section: None,
                        key: None,
                        message: format!(
                            "section [{name}] appears twice (first at line {})",
                            existing.line
                        ),
                    });
                }
                target = Some(if name == DEFAULT_SECTION {
                    if ini.defaults.line == 0 {
                        ini.defaults.line = number;
                    }
                    Target::Defaults
                } else {
                    ini.sections.push(Section {
                        name: name.to_string(),
                        line: number,
                        entries: Vec::new(),
                    });
                    Target::Section(ini.sections.len() - 1)
                });
                open = None;
                continue;
            }
            let Some(current) = target else {
                return Err(Error {
                    line: number,
                    section: None,
                    key: None,
                    message: format!(
                        "{} comes before any section header; the file must start with one, such as [archive]",
                        quoted(None)
                    ),
                });
            };
            let section = match current {
                Target::Defaults => &mut ini.defaults,
                Target::Section(i) => &mut ini.sections[i],
            };
            let Some((key, value)) = option_line(stripped) else {
                return Err(Error {
                    line: number,
                    section: Some(section.name.clone()),
                    key: None,
                    message: format!(
                        "{} is neither a [section] header nor a key = value line (a value continued on the next line must be indented more than its key)",
                        quoted(Some(&section.name))
                    ),
                });
            };
            if key.is_empty() {
                return Err(Error {
                    line: number,
                    section: Some(section.name.clone()),
                    key: None,
                    message: format!(
                        "{} has no key before its '=' or ':'",
                        quoted(Some(&section.name))
                    ),
                });
            }
            let key = key.to_lowercase();
            if let Some(existing) = section.own(&key) {
                return Err(Error {
                    line: number,
                    section: Some(section.name.clone()),
                    key: Some(key.clone()),
                    message: format!(
                        "the key appears twice in the section (first at line {}; keys are not case-sensitive)",
                        existing.line
                    ),
                });
            }
            section.entries.push(Entry {
                key,
                raw: String::new(),
                line: number,
            });
            let entry = (current, section.entries.len() - 1);
            parts.insert(entry, vec![value.to_string()]);
            open = Some(entry);
        }
        for ((target, index), lines) in parts {
            let section = match target {
                Target::Defaults => &mut ini.defaults,
                Target::Section(i) => &mut ini.sections[i],
            };
            section.entries[index].raw = lines.join("\n").trim_end_matches(is_space).to_string();
        }
        Ok(ini)
    }

    /// The sections other than `[DEFAULT]`, in the order of the file.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// `[DEFAULT]` (empty when the file has none).
    pub fn defaults(&self) -> &Section {
        &self.defaults
    }

    /// A key as `section` sees it: its own, else `[DEFAULT]`'s.
    pub fn entry<'a>(&'a self, section: &'a Section, key: &str) -> Option<&'a Entry> {
        section.own(key).or_else(|| self.defaults.own(key))
    }

    /// The value of `entry` read in `section`, interpolated (configparser's
    /// `get`).
    pub fn value(&self, section: &Section, entry: &Entry) -> Result<String, Error> {
        let mut value = String::new();
        self.interpolate(section, entry, &entry.raw, 1, &mut value)?;
        Ok(value)
    }

    /// Every key `section` sees and its interpolated value, in
    /// configparser's order: `[DEFAULT]`'s keys first (configparser's
    /// `items(section)`).
    pub fn items(&self, section: &Section) -> Result<Vec<(String, String)>, Error> {
        let defaults = self.defaults.entries.iter().map(|e| &e.key);
        let own = section
            .entries
            .iter()
            .map(|e| &e.key)
            .filter(|key| self.defaults.own(key).is_none());
        defaults
            .chain(own)
            .map(|key| {
                let entry = self.entry(section, key).expect("a key of the section");
                Ok((key.clone(), self.value(section, entry)?))
            })
            .collect()
    }

    /// configparser's `BasicInterpolation._interpolate_some`: references in a
    /// referenced value are looked up in the section being read too.
    fn interpolate(
        &self,
        section: &Section,
        entry: &Entry,
        mut rest: &str,
        depth: usize,
        out: &mut String,
    ) -> Result<(), Error> {
        let error = |message: String| Error {
            line: entry.line,
            section: Some(section.name.clone()),
            key: Some(entry.key.clone()),
            message,
        };
        // The value itself, unless it is a credential.
        let shown = |text: &str| {
            if secrets::is_credential_in_section(&section.name, &entry.key) {
                format!(
                    "(the value is not shown: \"{}\" holds a credential)",
                    entry.key
                )
            } else {
                format!("{text:?}")
            }
        };
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(error(format!(
                "%(name)s references nest more than {MAX_INTERPOLATION_DEPTH} deep (does a key refer to itself?): {}",
                shown(&entry.raw)
            )));
        }
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(after) = rest.strip_prefix("%%") {
                out.push('%');
                rest = after;
            } else if let Some(after) = rest.strip_prefix("%(") {
                // `%\(([^)]+)\)s`
                let name_end = after.find(')').filter(|&end| end > 0);
                let Some(end) = name_end.filter(|&end| after[end + 1..].starts_with('s')) else {
                    return Err(error(format!(
                        "bad interpolation reference {}: write %(name)s, or %% for a literal %",
                        shown(rest)
                    )));
                };
                let name = after[..end].to_lowercase();
                rest = &after[end + 2..];
                let Some(referenced) = self.entry(section, &name) else {
                    return Err(error(format!(
                        "%({name})s refers to a key \"{name}\" that is in neither [{}] nor [{DEFAULT_SECTION}]",
                        section.name
                    )));
                };
                if referenced.raw.contains('%') {
                    self.interpolate(section, entry, &referenced.raw, depth + 1, out)?;
                } else {
                    out.push_str(&referenced.raw);
                }
            } else {
                return Err(error(format!(
                    "'%' must be followed by '%' or '(', found {} (write %% for a literal %)",
                    shown(rest)
                )));
            }
        }
        out.push_str(rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every section's items as configparser's `items()` gives them.
    fn read(text: &str) -> Vec<(String, Vec<(String, String)>)> {
        let ini = Ini::parse(text).unwrap();
        ini.sections()
            .iter()
            .map(|s| (s.name.clone(), ini.items(s).unwrap()))
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(text: &str) -> Error {
        let ini = match Ini::parse(text) {
            Err(error) => return error,
            Ok(ini) => ini,
        };
        for section in ini.sections() {
            if let Err(error) = ini.items(section) {
                return error;
            }
        }
        panic!("no error in {text:?}")
    }

    #[test]
    fn keys_values_delimiters_and_case() {
        let got = read("[Archive]\nDataBase = sqlite\nstorage: none\nspaced key   =   a = b : c  \nempty =\ncolon:x=y\n");
        assert_eq!(got[0].0, "Archive", "section names keep their case");
        assert_eq!(
            got[0].1,
            pairs(&[
                ("database", "sqlite"),
                ("storage", "none"),
                ("spaced key", "a = b : c"),
                ("empty", ""),
                ("colon", "x=y"),
            ])
        );
        // [default] is an ordinary section; [ a ] keeps its spaces; text after
        // the last ']' is ignored.
        let names: Vec<String> = read("[default]\n[ a ]\n[b] trailing\n[c]d]\n")
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["default", " a ", "b", "c]d"]);
    }

    #[test]
    fn comments_are_whole_lines_only() {
        let got = read(
            "# top\n; also\n[s]\n  # indented comment\na = 1 # not a comment\nb = x ; nor this\n",
        );
        assert_eq!(
            got[0].1,
            pairs(&[("a", "1 # not a comment"), ("b", "x ; nor this")])
        );
    }

    #[test]
    fn continuation_lines_are_joined_with_newlines() {
        let text = "[s]\nlist = a\n  b\n\n    c\n# a comment inside\n  d\n\n\nnext = 1\nempty =\n    x\n  key = not a key\n";
        assert_eq!(
            read(text)[0].1,
            pairs(&[
                ("list", "a\nb\n\nc\nd"),
                ("next", "1"),
                ("empty", "\nx\nkey = not a key"),
            ])
        );
        // An indented first key is a key; a line indented no more than its
        // key's line starts a new key; an indented header continues a value.
        let text = "[s]\n  a = 1\n  b = 2\n    [t]\n";
        assert_eq!(read(text)[0].1, pairs(&[("a", "1"), ("b", "2\n[t]")]));
        // Line ends: \r\n and a lone \r too.
        assert_eq!(
            read("[s]\r\na = 1\r\n  2\rb = 3")[0].1,
            pairs(&[("a", "1\n2"), ("b", "3")])
        );
    }

    #[test]
    fn default_keys_are_seen_by_every_section_and_overridden_by_its_own() {
        let text = "[DEFAULT]\nroot = /srv\nmode = a\n[s]\nmode = b\nown = 1\n[t]\n[DEFAULT]\nlate = yes\n";
        let got = read(text);
        assert_eq!(
            got[0].1,
            pairs(&[
                ("root", "/srv"),
                ("mode", "b"),
                ("late", "yes"),
                ("own", "1")
            ])
        );
        assert_eq!(
            got[1].1,
            pairs(&[("root", "/srv"), ("mode", "a"), ("late", "yes")])
        );
        let ini = Ini::parse(text).unwrap();
        assert_eq!(ini.defaults().entries.len(), 3);
        assert!(ini.section("s").unwrap().own("root").is_none());
    }

    #[test]
    fn interpolation_reads_the_section_then_default_recursively() {
        let text = "[DEFAULT]\nroot = /srv\nfeeds = %(root)s/feeds\n[s]\npath = %(FEEDS)s/a.jsonl\npct = 100%%\nuse = %(pct)s done\n[t]\nroot = /data\npath = %(feeds)s\n";
        let got = read(text);
        let s: std::collections::HashMap<_, _> = got[0].1.iter().cloned().collect();
        assert_eq!(s["path"], "/srv/feeds/a.jsonl");
        assert_eq!(s["pct"], "100%");
        assert_eq!(s["use"], "100% done");
        // A DEFAULT value's references are read in the section that reads it.
        let t: std::collections::HashMap<_, _> = got[1].1.iter().cloned().collect();
        assert_eq!(t["path"], "/data/feeds");
        // A chain of ten values with references reads (k10 -> ... -> k1,
        // then k0 has none); eleven do not, as in configparser.
        let mut chain = String::from("[s]\nk0 = end\n");
        for i in 1..=11 {
            chain.push_str(&format!("k{i} = %(k{})s\n", i - 1));
        }
        let ini = Ini::parse(&chain).unwrap();
        let s = &ini.sections()[0];
        assert_eq!(ini.value(s, s.own("k10").unwrap()).unwrap(), "end");
        let too_deep = ini.value(s, s.own("k11").unwrap()).unwrap_err();
        assert!(too_deep.message.contains("more than 10 deep"), "{too_deep}");
    }

    #[test]
    fn interpolation_errors_name_line_section_and_key() {
        let missing = error("[s]\n\nurl = %(host)s/x\n");
        assert_eq!(
            missing.to_string(),
            "line 3, section [s], key \"url\": %(host)s refers to a key \"host\" that is in neither [s] nor [DEFAULT]"
        );
        let percent = error("[s]\ndiscount = 50% off\n");
        assert_eq!(
            (percent.line, percent.key.as_deref()),
            (2, Some("discount"))
        );
        assert!(
            percent
                .message
                .contains("'%' must be followed by '%' or '('")
                && percent.message.contains("write %% for a literal %"),
            "{percent}"
        );
        let unclosed = error("[s]\nx = %(name\n");
        assert!(
            unclosed
                .message
                .contains("bad interpolation reference \"%(name\""),
            "{unclosed}"
        );
        let no_s = error("[s]\nx = %(name)d\nname = 1\n");
        assert!(
            no_s.message.contains("bad interpolation reference"),
            "{no_s}"
        );
        let empty = error("[s]\nx = %()s\n");
        assert!(
            empty.message.contains("bad interpolation reference"),
            "{empty}"
        );
        let itself = error("[s]\nloop = %(loop)s\n");
        assert!(itself.message.contains("refer to itself"), "{itself}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let before = error("\n# comment\nname = 1\n[s]\n");
        assert_eq!(before.line, 3);
        assert!(
            before
                .message
                .contains("\"name = 1\" comes before any section header"),
            "{before}"
        );
        let bogus = error("[s]\na = 1\nno delimiter here\n");
        assert_eq!(
            bogus.to_string(),
            "line 3, section [s]: \"no delimiter here\" is neither a [section] header nor a key = value line (a value continued on the next line must be indented more than its key)"
        );
        let no_key = error("[s]\n = 1\n");
        assert_eq!(no_key.line, 2);
        assert!(no_key.message.contains("has no key"), "{no_key}");
        let empty_header = error("[s]\n[]\n");
        assert_eq!(empty_header.line, 2);
    }

    #[test]
    fn errors_do_not_quote_what_may_be_a_credential() {
        let hidden = "the line (not shown: it may hold a credential)";
        // A line naming one, a value that lost its indent after a
        // credential's key, any line of a table of headers.
        for (text, line) in [
            ("[s]\nAuthorization Bearer hunter2\n", 2),
            ("[s]\ntoken =\nhunter2\n", 3),
            ("[s:x.headers]\nhunter2\n", 2),
        ] {
            let error = error(text);
            assert_eq!(error.line, line, "{error}");
            assert!(
                error.message.starts_with(hidden) && !error.message.contains("hunter2"),
                "{error}"
            );
        }
        for text in [
            "[s]\npassword = hunter%2\n",
            "[s]\npassword = hunter%(2\n",
            "[s]\npassword = %(password)s\n",
            "[s:x.headers]\nAccept = hunter%2\n",
        ] {
            let error = error(text);
            assert!(
                error.message.contains("(the value is not shown: \"")
                    && !error.message.contains("hunter"),
                "{error}"
            );
        }
        // Other values and lines are quoted as before.
        assert!(error("[s]\nurl = a%b\n").message.contains("found \"%b\""));
        assert!(error("[s]\nname =\nhunter2\n")
            .message
            .starts_with("\"hunter2\" is neither"));
    }

    #[test]
    fn duplicate_sections_and_keys_are_errors_but_default_may_reopen() {
        let section = error("[s]\na = 1\n[t]\n[s]\n");
        assert_eq!(
            section.to_string(),
            "line 4: section [s] appears twice (first at line 1)"
        );
        let key = error("[s]\nName = 1\nname = 2\n");
        assert_eq!(
            key.to_string(),
            "line 3, section [s], key \"name\": the key appears twice in the section (first at line 2; keys are not case-sensitive)"
        );
        let default_key = error("[DEFAULT]\na = 1\n[s]\n[DEFAULT]\na = 2\n");
        assert_eq!(
            (default_key.line, default_key.section.as_deref()),
            (5, Some("DEFAULT"))
        );
        assert!(Ini::parse("[DEFAULT]\na = 1\n[s]\n[DEFAULT]\nb = 2\n").is_ok());
        // The same key in two sections is fine.
        assert!(Ini::parse("[s]\na = 1\n[t]\na = 2\n").is_ok());
    }

    #[test]
    fn an_empty_file_and_a_byte_order_mark() {
        assert!(Ini::parse("").unwrap().sections().is_empty());
        assert_eq!(read("\u{feff}[s]\na = 1\n")[0].1, pairs(&[("a", "1")]));
    }
}
