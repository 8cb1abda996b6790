//! Finding and loading synchronizer plugins.

use abi_stable::library::{lib_header_from_path, LibraryError};
use anyhow::{anyhow, bail, Context, Result};
use muninn_sync_plugin_api::ffi::{PluginModuleRef, ABI_VERSION, ABI_VERSION_SYMBOL};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where plugins named by name (`module = "jsonl"`) are searched first.
pub const PLUGIN_PATH_VARIABLE: &str = "MUNINN_SYNC_PLUGIN_PATH";

/// The plugins that come with muninn-sync.
pub const BUILT_IN_PLUGINS: [&str; 3] = ["jsonl", "stac", "odata"];

/// Whether a `module` value is a dotted Python module path, such as
/// `muninn_cdse.sync`, which no plugin name or file can be.
pub fn is_python_module_path(module: &str) -> bool {
    let identifier = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    module.contains('.')
        && !module.ends_with(std::env::consts::DLL_SUFFIX)
        && module.split('.').all(identifier)
}

/// What to do about a Python muninn synchronizer module: the end of every
/// message that finds one. `quote` writes a value as the configuration
/// file's form needs it.
pub fn rust_plugin_hint(module: &str, quote: &dyn Fn(&str) -> String) -> String {
    let lower = module.to_ascii_lowercase();
    // A built-in that plainly does the module's job; CDSE is an OData catalogue.
    let suggestion = BUILT_IN_PLUGINS
        .into_iter()
        .find(|name| lower.contains(name))
        .or_else(|| lower.contains("cdse").then_some("odata"));
    let built_ins = BUILT_IN_PLUGINS.join(", ");
    let named = match suggestion {
        Some(name) => format!("plugin = {} (a built-in: {built_ins})", quote(name)),
        None => format!(
            "plugin = {} (one of the built-ins {built_ins})",
            quote("<name>")
        ),
    };
    format!(
        "muninn-sync loads Rust plugins (cdylib .so files). Map it: add {named} or plugin = {} to the section; Python muninn does not read that key. See docs/migrating-from-muninn.md, and docs/plugin-abi.md to write a plugin",
        quote("/path/to/libyours.so")
    )
}

/// A loaded plugin. Plugins are never unloaded: the root module and the code
/// behind it live as long as the process.
#[derive(Clone, Copy)]
pub struct Plugin {
    pub module: PluginModuleRef,
    pub path: &'static Path,
}

impl Plugin {
    pub fn name(&self) -> &'static str {
        self.module.name().as_str()
    }

    pub fn version(&self) -> &'static str {
        self.module.version().as_str()
    }

    /// `plugin jsonl 0.1.0 (/path/libjsonl.so)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "plugin {} {} ({})",
            self.name(),
            self.version(),
            self.path.display()
        )
    }
}

/// The files a plugin name may be in, in the order they are tried:
/// `lib<name>.so` and `<name>.so` in each `MUNINN_SYNC_PLUGIN_PATH` entry,
/// then beside the muninn-sync executable.
pub fn candidates(
    name: &str,
    search_path: Option<&str>,
    executable_dir: Option<&Path>,
) -> Vec<PathBuf> {
    let mut directories: Vec<PathBuf> = search_path
        .unwrap_or("")
        .split(':')
        .filter(|entry| !entry.is_empty())
        .map(PathBuf::from)
        .collect();
    directories.extend(executable_dir.map(Path::to_path_buf));
    let suffix = std::env::consts::DLL_SUFFIX;
    let prefix = std::env::consts::DLL_PREFIX;
    directories
        .iter()
        .flat_map(|dir| {
            [
                dir.join(format!("{prefix}{name}{suffix}")),
                dir.join(format!("{name}{suffix}")),
            ]
        })
        .collect()
}

/// Where a plugin is named, which decides what a message about it tells the
/// user to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamedIn {
    /// The `module` (or `plugin`) key of a `["synchronizer:<name>"]`
    /// section: a Python module there can be mapped with `plugin = ...`.
    Section,
    /// `--check-plugin NAME` on the command line, which has no section.
    CheckPlugin,
}

/// The plugin file a `module` value names: a path (it contains '/' or ends
/// in the platform's library suffix; relative paths are taken from the
/// configuration file's directory) or a plugin name to search for.
pub fn resolve(module: &str, config_dir: &Path) -> Result<PathBuf> {
    resolve_in(module, config_dir, NamedIn::Section)
}

/// The plugin file `--check-plugin` names, as [`resolve`] finds a `module`
/// value's, with relative paths taken from `current_dir`.
pub fn resolve_check_plugin(plugin: &str, current_dir: &Path) -> Result<PathBuf> {
    resolve_in(plugin, current_dir, NamedIn::CheckPlugin)
}

fn resolve_in(module: &str, base_dir: &Path, named_in: NamedIn) -> Result<PathBuf> {
    if module.contains('/') || module.ends_with(std::env::consts::DLL_SUFFIX) {
        let path = crate::config::resolve(base_dir, module);
        if !path.is_file() {
            bail!("plugin file not found: \"{}\"", path.display());
        }
        return Ok(path);
    }
    // Written in either form of the configuration.
    let quote = |text: &str| format!("\"{text}\"");
    if is_python_module_path(module) {
        let hint = match named_in {
            NamedIn::Section => rust_plugin_hint(module, &quote),
            NamedIn::CheckPlugin => format!(
                "muninn-sync loads Rust plugins (cdylib .so files): give --check-plugin a plugin file's path or a plugin's name (the built-ins: {})",
                BUILT_IN_PLUGINS.join(", ")
            ),
        };
        bail!("\"{module}\" is a Python module (Python muninn's synchronizer), not a plugin name or file; {hint}");
    }
    let valid_name = module
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        let what = match named_in {
            NamedIn::Section => format!("module \"{module}\""),
            NamedIn::CheckPlugin => format!("\"{module}\""),
        };
        bail!(
            "{what} is neither a plugin name (letters, digits, '_', '-') nor a path to a plugin file"
        );
    }
    let executable_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let search_path = std::env::var(PLUGIN_PATH_VARIABLE).ok();
    find(
        module,
        search_path.as_deref(),
        executable_dir.as_deref(),
        named_in,
    )
}

/// The first of a plugin name's [`candidates`] that exists, or an error
/// that says where it looked and what to do.
fn find(
    name: &str,
    search_path: Option<&str>,
    executable_dir: Option<&Path>,
    named_in: NamedIn,
) -> Result<PathBuf> {
    let candidates = candidates(name, search_path, executable_dir);
    if let Some(found) = candidates.iter().find(|path| path.is_file()) {
        // Only a relative entry of the search path gives a relative
        // candidate (the executable's directory is absolute).
        if found.is_relative() {
            let entry = found
                .parent()
                .map_or_else(String::new, |p| p.display().to_string());
            let here = std::env::current_dir()
                .map_or_else(|_| "unknown".to_string(), |dir| dir.display().to_string());
            tracing::warn!(
                plugin = name,
                current_dir = %here,
                "the plugin file \"{}\" was found through the relative entry \"{entry}\" of {PLUGIN_PATH_VARIABLE}, which is taken from the current directory: whoever can write where muninn-sync is started chooses the code it runs; give {PLUGIN_PATH_VARIABLE} absolute directories",
                found.display()
            );
        }
        return Ok(found.clone());
    }
    let looked = candidates
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if named_in == NamedIn::CheckPlugin {
        // No section here: say where the name was looked for, and the two
        // ways to make it found.
        let path_variable = match search_path.filter(|path| !path.is_empty()) {
            Some(path) => format!("{PLUGIN_PATH_VARIABLE} ({path})"),
            None => format!("{PLUGIN_PATH_VARIABLE} (not set)"),
        };
        let beside = executable_dir.map_or_else(
            || "beside the executable (whose directory is unknown)".to_string(),
            |dir| format!("beside the executable ({})", dir.display()),
        );
        let file = format!(
            "{}{name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        bail!(
            "plugin \"{name}\" not found: looked in each directory of {path_variable}, then {beside}, for {looked}. Give the plugin file's path (--check-plugin ./{file}), or set {PLUGIN_PATH_VARIABLE} to the directories that hold it (separated by ':')"
        );
    }
    let mut message = format!("plugin \"{name}\" not found; looked for {looked} (set {PLUGIN_PATH_VARIABLE} to add directories)");
    // A name with '-' cannot be imported by Python.
    if !name.contains('-') && !name.starts_with(|c: char| c.is_ascii_digit()) {
        let quote = |text: &str| format!("\"{text}\"");
        message.push_str(&format!(
            ". If \"{name}\" is Python muninn's synchronizer module: {}",
            rust_plugin_hint(name, &quote)
        ));
    }
    bail!(message)
}

/// Loads a plugin file once per process: a second synchronizer with the
/// same file gets the same plugin, a different file its own.
pub fn load(path: &Path) -> Result<Plugin> {
    static LOADED: Mutex<Option<HashMap<PathBuf, Plugin>>> = Mutex::new(None);
    let canonical = path
        .canonicalize()
        .with_context(|| format!("plugin file not found: \"{}\"", path.display()))?;
    let mut loaded = LOADED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let loaded = loaded.get_or_insert_with(HashMap::new);
    if let Some(plugin) = loaded.get(&canonical) {
        return Ok(*plugin);
    }
    let plugin = load_new(&canonical)?;
    loaded.insert(canonical, plugin);
    Ok(plugin)
}

fn load_new(path: &Path) -> Result<Plugin> {
    let shown = path.display();
    if let Some(why) = writable_by_others(path) {
        tracing::warn!(
            "loading the plugin \"{shown}\", which {why}: whoever can write there chooses the code muninn-sync runs; keep plugins where only their owner can write"
        );
    }
    // SAFETY: opening a library runs its initialisers; only files that the
    // archive's configuration names are opened, as muninn imports its modules.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| {
        // libloading keeps dlerror's text (bad ELF header, missing
        // library, undefined symbol) in the error's source.
        let reason = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
        anyhow!("\"{shown}\" cannot be loaded as a plugin: {reason}")
    })?;
    // SAFETY: the symbol, when present, is the u32 static `export_plugin!` writes.
    let abi_version = unsafe {
        library
            .get::<*const u32>(ABI_VERSION_SYMBOL.as_bytes())
            .map(|symbol| **symbol)
    }
    .map_err(|_| {
        anyhow!("\"{shown}\" is not a muninn-sync plugin: it has no {ABI_VERSION_SYMBOL} symbol (plugins export one with muninn_sync_plugin_api::export_plugin!)")
    })?;
    if abi_version != ABI_VERSION {
        bail!(
            "plugin \"{shown}\" was built against plugin ABI version {abi_version}, but this muninn-sync {} supports ABI version {ABI_VERSION}; rebuild the plugin against muninn-sync-plugin-api {ABI_VERSION}.x",
            env!("CARGO_PKG_VERSION")
        );
    }
    // Kept loaded for the life of the process, like abi_stable's own handle.
    std::mem::forget(library);
    tracing::debug!(path = %shown, abi_version, "loaded plugin library, ABI version matches");
    let module = lib_header_from_path(path)
        .and_then(|header| header.init_root_module::<PluginModuleRef>())
        .map_err(|e| anyhow!("plugin \"{shown}\" cannot be used: {}", summarise(&e)))?;
    if module.abi_version() != ABI_VERSION {
        bail!(
            "plugin \"{shown}\" declares plugin ABI version {} in its root module, but this muninn-sync supports ABI version {ABI_VERSION}",
            module.abi_version()
        );
    }
    let path: &'static Path = Box::leak(path.to_path_buf().into_boxed_path());
    // Which file's code runs is worth a line at the default level.
    tracing::info!(plugin = module.name().as_str(), version = module.version().as_str(), path = %path.display(), "loaded plugin");
    Ok(Plugin { module, path })
}

/// Why others than the plugin file's owner could put their code in its place
/// (`path` is canonical): a file anyone may write to, or a directory anyone
/// may write to without the sticky bit (which would let anyone replace the
/// file), or a sticky one (as /tmp) where someone else put the file.
fn writable_by_others(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    const WORLD_WRITABLE: u32 = 0o002;
    const STICKY: u32 = 0o1000;
    let file = std::fs::metadata(path).ok()?;
    if file.mode() & WORLD_WRITABLE != 0 {
        return Some("is world-writable".to_string());
    }
    let dir_path = path.parent()?;
    let dir = std::fs::metadata(dir_path).ok()?;
    if dir.mode() & WORLD_WRITABLE == 0 {
        return None;
    }
    let dir_shown = dir_path.display();
    if dir.mode() & STICKY == 0 {
        return Some(format!(
            "is in a world-writable directory (\"{dir_shown}\", without the sticky bit)"
        ));
    }
    // /proc/self belongs to the process's effective user.
    let us = std::fs::metadata("/proc/self").ok()?.uid();
    (file.uid() != us && file.uid() != 0).then(|| {
        format!(
            "belongs to another user (uid {}) in a world-writable directory (\"{dir_shown}\")",
            file.uid()
        )
    })
}

/// abi_stable's layout errors run to thousands of lines; the lines a user can
/// act on are the ones that say what differs.
fn summarise(error: &LibraryError) -> String {
    let text = error.to_string();
    let useful: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.contains("incompatible")
                || line.contains("Expected:")
                || line.contains("too many")
                || line.contains("not found")
        })
        .take(4)
        .collect();
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error");
    if useful.is_empty() {
        first.to_string()
    } else {
        format!(
            "{first} ({}); it was built against an incompatible muninn-sync-plugin-api",
            useful.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_searched_on_the_plugin_path_then_beside_the_executable() {
        let found = candidates(
            "jsonl",
            Some("/a:/b"),
            Some(Path::new("/usr/lib/muninn-sync")),
        );
        let shown: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "/a/libjsonl.so",
                "/a/jsonl.so",
                "/b/libjsonl.so",
                "/b/jsonl.so",
                "/usr/lib/muninn-sync/libjsonl.so",
                "/usr/lib/muninn-sync/jsonl.so"
            ]
        );
    }

    #[test]
    fn files_others_could_replace_are_told_apart() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dir_path = dir.path().canonicalize().unwrap();
        let file = dir_path.join("libx.so");
        std::fs::write(&file, "").unwrap();
        let set = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        set(&file, 0o644);
        set(&dir_path, 0o755);
        assert_eq!(writable_by_others(&file), None);
        set(&dir_path, 0o777);
        let why = writable_by_others(&file).unwrap();
        assert!(
            why.contains("world-writable directory") && why.contains("without the sticky bit"),
            "{why}"
        );
        // Sticky (as /tmp): others cannot replace a file that is ours.
        set(&dir_path, 0o1777);
        assert_eq!(writable_by_others(&file), None);
        set(&file, 0o666);
        assert_eq!(writable_by_others(&file).unwrap(), "is world-writable");
        set(&dir_path, 0o700);
    }

    #[test]
    fn a_file_that_is_not_a_plugin_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libfake.so");
        std::fs::write(&fake, b"not an ELF file").unwrap();
        let message = load(&fake).err().unwrap().to_string();
        assert!(
            message.contains("libfake.so") && message.contains("cannot be loaded as a plugin"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_plugin_lists_where_it_was_looked_for() {
        let message = resolve("nosuch", Path::new("/etc"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("plugin \"nosuch\" not found") && message.contains("libnosuch.so"),
            "{message}"
        );
        let message = resolve("./libnosuch.so", Path::new("/etc"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("plugin file not found: \"/etc/./libnosuch.so\""),
            "{message}"
        );
    }

    #[test]
    fn a_name_check_plugin_cannot_find_says_where_it_looked_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let beside = dir.path().display();
        let message = find(
            "mine",
            Some("/a:/b"),
            Some(dir.path()),
            NamedIn::CheckPlugin,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            message,
            format!(
                "plugin \"mine\" not found: looked in each directory of MUNINN_SYNC_PLUGIN_PATH (/a:/b), then beside the executable ({beside}), for /a/libmine.so, /a/mine.so, /b/libmine.so, /b/mine.so, {beside}/libmine.so, {beside}/mine.so. Give the plugin file's path (--check-plugin ./libmine.so), or set MUNINN_SYNC_PLUGIN_PATH to the directories that hold it (separated by ':')"
            )
        );
        let unset = find("mine", None, Some(dir.path()), NamedIn::CheckPlugin)
            .unwrap_err()
            .to_string();
        assert!(
            unset.contains(&format!("MUNINN_SYNC_PLUGIN_PATH (not set), then beside the executable ({beside}), for {beside}/libmine.so, {beside}/mine.so.")),
            "{unset}"
        );
        // --check-plugin has no section to add `plugin = ...` to; a
        // section's message keeps that hint.
        assert!(!message.contains("section"), "{message}");
        let section = find("mine", None, Some(dir.path()), NamedIn::Section)
            .unwrap_err()
            .to_string();
        assert!(
            section.contains("plugin \"mine\" not found; looked for")
                && section.contains("add plugin = \"<name>\"")
                && section.contains("to the section"),
            "{section}"
        );
        let dotted = resolve_check_plugin("mypackage.sync", Path::new("/etc"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            dotted,
            "\"mypackage.sync\" is a Python module (Python muninn's synchronizer), not a plugin name or file; muninn-sync loads Rust plugins (cdylib .so files): give --check-plugin a plugin file's path or a plugin's name (the built-ins: jsonl, stac, odata)"
        );

        std::fs::write(dir.path().join("mine.so"), "").unwrap();
        assert_eq!(
            find(
                "mine",
                Some("/a:/b"),
                Some(dir.path()),
                NamedIn::CheckPlugin
            )
            .unwrap(),
            dir.path().join("mine.so")
        );
    }

    #[test]
    fn python_module_paths_are_told_apart_from_plugin_names_and_files() {
        for python in ["muninn_cdse.sync", "mypackage.sync", "_private.mod.x"] {
            assert!(is_python_module_path(python), "{python}");
        }
        for not in [
            "jsonl",
            "libjsonl.so",
            "./libx.so",
            "a/b.c",
            "1a.b",
            "a..b",
            "a.",
            "a-b.c",
        ] {
            assert!(!is_python_module_path(not), "{not}");
        }
    }

    #[test]
    fn a_python_module_says_how_to_map_it_to_a_rust_plugin() {
        let dotted = resolve("mypackage.sync", Path::new("/etc"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            dotted,
            "\"mypackage.sync\" is a Python module (Python muninn's synchronizer), not a plugin name or file; muninn-sync loads Rust plugins (cdylib .so files). Map it: add plugin = \"<name>\" (one of the built-ins jsonl, stac, odata) or plugin = \"/path/to/libyours.so\" to the section; Python muninn does not read that key. See docs/migrating-from-muninn.md, and docs/plugin-abi.md to write a plugin"
        );
        // A plain name may be either; when no plugin has it, the message
        // says what to do if it was Python's.
        let plain = resolve("muninn_stac_sync", Path::new("/etc"))
            .unwrap_err()
            .to_string();
        assert!(
            plain.contains("plugin \"muninn_stac_sync\" not found; looked for")
                && plain.contains(". If \"muninn_stac_sync\" is Python muninn's synchronizer module: muninn-sync loads Rust plugins")
                && plain.contains("add plugin = \"stac\" (a built-in: jsonl, stac, odata)"),
            "{plain}"
        );
        // Python cannot import a name with '-'.
        let hyphen = resolve("my-plugin", Path::new("/etc"))
            .unwrap_err()
            .to_string();
        assert!(!hyphen.contains("Python"), "{hyphen}");
    }
}
