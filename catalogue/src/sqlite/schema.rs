//! The tables: muninn 7.5's `core`, `link`, `tag` and namespace tables, and
//! muninn-sync's own records beside them.

use super::values::{declared_type, type_from_declaration, UuidForm};
use super::FootprintFormat;
use anyhow::{bail, Context, Result};
use muninn_sync_model::{find_column, CoreField, PropertyType, ValueType};
use rusqlite::{Connection, OptionalExtension};
use std::collections::BTreeMap;

/// The version of muninn-sync's own tables in this database.
const SCHEMA_VERSION: &str = "1";

/// Table names under a `table_prefix`.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub prefix: String,
    pub core: String,
    pub link: String,
    pub tag: String,
    pub meta: String,
    pub columns: String,
    pub runs: String,
    pub watermarks: String,
    pub owners: String,
    pub deletions: String,
}

impl Tables {
    pub fn new(prefix: &str) -> Tables {
        Tables {
            prefix: prefix.to_string(),
            core: format!("{prefix}core"),
            link: format!("{prefix}link"),
            tag: format!("{prefix}tag"),
            meta: format!("{prefix}muninn_sync_meta"),
            columns: format!("{prefix}muninn_sync_columns"),
            runs: format!("{prefix}muninn_sync_runs"),
            watermarks: format!("{prefix}muninn_sync_watermarks"),
            owners: format!("{prefix}muninn_sync_owners"),
            deletions: format!("{prefix}muninn_sync_deletions"),
        }
    }

    pub fn namespace(&self, namespace: &str) -> String {
        format!("{}{namespace}", self.prefix)
    }

    /// A namespace's table name quoted for SQL. Namespace names come from
    /// remotes: quoted, a name SQLite keeps as a keyword (`order`, or a
    /// prefix and a name that together spell one) is still a name.
    pub fn namespace_sql(&self, namespace: &str) -> String {
        quoted(&self.namespace(namespace))
    }
}

/// An SQL identifier in double quotes (a quote inside doubled).
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Checks a `table_prefix` as muninn does: lowercase letters and '_' (we
/// also allow digits after the first letter).
pub(crate) fn validate_table_prefix(prefix: &str) -> Result<()> {
    let mut chars = prefix.chars();
    let ok = prefix.is_empty()
        || (matches!(chars.next(), Some('a'..='z'))
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_')));
    if !ok {
        bail!("invalid table_prefix \"{prefix}\": expected a lowercase letter followed by lowercase letters, digits or '_'");
    }
    Ok(())
}

pub(crate) fn table_exists(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The footprint format recorded in an existing catalogue, or, for a muninn
/// archive that muninn-sync has not written yet, the one its layout shows.
pub(crate) fn recorded_footprint_format(
    conn: &Connection,
    tables: &Tables,
) -> Result<Option<FootprintFormat>> {
    if let Some(value) = footprint_format_in_meta(conn, tables)? {
        return FootprintFormat::from_name(&value)
            .map(Some)
            .with_context(|| {
                format!(
                    "unknown footprint_format \"{value}\" in table {}",
                    tables.meta
                )
            });
    }
    if !table_exists(conn, &tables.core)? {
        return Ok(None);
    }
    // A muninn archive: muninn itself always registers the footprint with SpatiaLite.
    let declared: Option<String> = conn
        .query_row(
            &format!(
                "SELECT type FROM pragma_table_info('{}') WHERE name = 'footprint'",
                tables.core
            ),
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(Some(
        match declared.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("TEXT") => FootprintFormat::Wkt,
            _ => FootprintFormat::Spatialite,
        },
    ))
}

/// Whether muninn-sync's own tables exist and record the footprint format.
pub(crate) fn format_is_recorded(conn: &Connection, tables: &Tables) -> Result<bool> {
    Ok(table_exists(conn, &tables.columns)? && footprint_format_in_meta(conn, tables)?.is_some())
}

/// The footprint format muninn-sync recorded, as written.
fn footprint_format_in_meta(conn: &Connection, tables: &Tables) -> Result<Option<String>> {
    if !table_exists(conn, &tables.meta)? {
        return Ok(None);
    }
    Ok(conn
        .query_row(
            &format!(
                "SELECT value FROM {} WHERE key = 'footprint_format'",
                tables.meta
            ),
            [],
            |row| row.get(0),
        )
        .optional()?)
}

/// Creates muninn's tables and ours in a new catalogue, in one transaction.
/// Creates muninn's tables and ours, inside the caller's transaction.
pub(crate) fn create_tables(
    tx: &Connection,
    tables: &Tables,
    format: FootprintFormat,
) -> Result<()> {
    let mut columns = Vec::new();
    for field in CoreField::ALL {
        if field == CoreField::Footprint && format == FootprintFormat::Spatialite {
            continue; // added below with AddGeometryColumn, as muninn does
        }
        let declared = match field.value_type() {
            ValueType::Geometry => "TEXT",
            other => declared_type(other, format),
        };
        let not_null = if field.is_mandatory() {
            " NOT NULL"
        } else {
            ""
        };
        columns.push(format!("{} {declared}{not_null}", field.name()));
    }
    columns.push("PRIMARY KEY (uuid)".into());
    columns.push("UNIQUE (archive_path, physical_name)".into());
    columns.push("UNIQUE (product_type, product_name)".into());
    tx.execute_batch(&format!(
        "CREATE TABLE {} ({});",
        tables.core,
        columns.join(", ")
    ))?;
    if format == FootprintFormat::Spatialite {
        tx.query_row(
            &format!(
                "SELECT AddGeometryColumn('{}', 'footprint', 4326, 'GEOMETRY', 2)",
                tables.core
            ),
            [],
            |_| Ok(()),
        )
        .context("SpatiaLite's AddGeometryColumn failed for core.footprint")?;
    }
    for field in CoreField::ALL {
        match field {
            CoreField::Uuid | CoreField::ArchivePath | CoreField::RemoteUrl => {}
            CoreField::Footprint if format == FootprintFormat::Spatialite => {
                tx.query_row(
                    &format!("SELECT CreateSpatialIndex('{}', 'footprint')", tables.core),
                    [],
                    |_| Ok(()),
                )
                .context("SpatiaLite's CreateSpatialIndex failed for core.footprint")?;
            }
            CoreField::Footprint => {}
            field => tx.execute_batch(&format!(
                "CREATE INDEX idx_{core}_{name} ON {core} ({name});",
                core = tables.core,
                name = field.name()
            ))?,
        }
    }
    tx.execute_batch(&format!(
        "CREATE TABLE {link} (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, \
             uuid UUID TEXT REFERENCES {core}(uuid) ON DELETE CASCADE, \
             source_uuid UUID TEXT NOT NULL, UNIQUE (uuid, source_uuid));
         CREATE INDEX idx_{link}_uuid ON {link} (uuid);
         CREATE INDEX idx_{link}_source_uuid ON {link} (source_uuid);
         CREATE TABLE {tag} (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, \
             uuid UUID TEXT REFERENCES {core}(uuid) ON DELETE CASCADE, \
             tag TEXT NOT NULL, UNIQUE (uuid, tag));
         CREATE INDEX idx_{tag}_uuid ON {tag} (uuid);
         CREATE INDEX idx_{tag}_tag ON {tag} (tag);",
        core = tables.core,
        link = tables.link,
        tag = tables.tag,
    ))?;
    create_own_tables(tx, tables)?;
    tx.execute(
        &format!(
            "INSERT OR REPLACE INTO {} (key, value) VALUES ('footprint_format', ?1)",
            tables.meta
        ),
        [format.name()],
    )?;
    Ok(())
}

/// muninn-sync's own tables; created in muninn archives on first use.
pub(crate) fn create_own_tables(conn: &Connection, tables: &Tables) -> Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {meta} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS {columns} (namespace TEXT NOT NULL, property TEXT NOT NULL, \
             type TEXT NOT NULL, PRIMARY KEY (namespace, property));
         INSERT OR IGNORE INTO {meta} (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');",
        meta = tables.meta,
        columns = tables.columns,
    ))?;
    super::runs::create_run_tables(conn, tables)?;
    super::owners::create_owner_tables(conn, tables)?;
    Ok(())
}

pub(crate) fn record_footprint_format(
    conn: &Connection,
    tables: &Tables,
    format: FootprintFormat,
) -> Result<()> {
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO {} (key, value) VALUES ('footprint_format', ?1)",
            tables.meta
        ),
        [format.name()],
    )?;
    Ok(())
}

/// A namespace table and the types of its columns.
#[derive(Debug, Clone, Default)]
pub(crate) struct NamespaceTable {
    /// Column name -> type, without `uuid`. A column is `fixed` when its
    /// type is read from its declaration because muninn-sync did not make
    /// it (muninn did): its text may be JSON, its integers are not widened.
    pub columns: BTreeMap<String, PropertyType>,
}

impl NamespaceTable {
    /// The existing column whose name matches `name` (column names ignore
    /// case: [`find_column`]).
    pub fn column(&self, name: &str) -> Option<(&String, ValueType)> {
        find_column(&self.columns, name).map(|(column, kind)| (column, kind.value_type))
    }
}

/// Every namespace table of the catalogue: tables under the prefix whose
/// `uuid` references core, as muninn creates them.
pub(crate) fn load_namespaces(
    conn: &Connection,
    tables: &Tables,
) -> Result<BTreeMap<String, NamespaceTable>> {
    let recorded: BTreeMap<(String, String), ValueType> = if table_exists(conn, &tables.columns)? {
        let mut statement = conn.prepare(&format!(
            "SELECT namespace, property, type FROM {}",
            tables.columns
        ))?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut recorded = BTreeMap::new();
        for row in rows {
            let (namespace, property, type_name) = row?;
            if let Some(value_type) = ValueType::from_name(&type_name) {
                recorded.insert((namespace, property), value_type);
            }
        }
        recorded
    } else {
        BTreeMap::new()
    };
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut namespaces = BTreeMap::new();
    for table in names {
        let Some(namespace) = table.strip_prefix(&tables.prefix) else {
            continue;
        };
        if muninn_sync_model::validate_namespace_name(namespace).is_err() {
            continue;
        }
        let references_core: bool = conn
            .query_row(
                "SELECT 1 FROM pragma_foreign_key_list(?1) WHERE \"table\" = ?2 AND \"from\" = 'uuid'",
                [&table, &tables.core],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !references_core {
            continue;
        }
        let mut statement = conn.prepare("SELECT name, type FROM pragma_table_info(?1)")?;
        let columns = statement
            .query_map([&table], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut namespace_table = NamespaceTable::default();
        for (column, declared) in columns {
            if column.eq_ignore_ascii_case("uuid") {
                continue;
            }
            let kind = PropertyType::of_column(
                recorded
                    .get(&(namespace.to_string(), column.clone()))
                    .copied(),
                || type_from_declaration(&declared),
            );
            namespace_table.columns.insert(column, kind);
        }
        namespaces.insert(namespace.to_string(), namespace_table);
    }
    Ok(namespaces)
}

/// Creates a namespace table as muninn would: `uuid` is the primary key and
/// references core, so removing a product removes its namespaces.
pub(crate) fn create_namespace_table(
    conn: &Connection,
    tables: &Tables,
    namespace: &str,
) -> Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE {table} (uuid UUID TEXT PRIMARY KEY REFERENCES {core}(uuid) ON DELETE CASCADE);",
        table = tables.namespace_sql(namespace),
        core = tables.core,
    ))?;
    Ok(())
}

/// Records the type muninn-sync reads a namespace column as.
pub(crate) fn record_column_type(
    conn: &Connection,
    tables: &Tables,
    namespace: &str,
    property: &str,
    value_type: ValueType,
) -> Result<()> {
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO {} (namespace, property, type) VALUES (?1, ?2, ?3)",
            tables.columns
        ),
        [namespace, property, value_type.name()],
    )?;
    Ok(())
}

/// Adds a property's column to a namespace table and records its type.
pub(crate) fn add_namespace_column(
    conn: &Connection,
    tables: &Tables,
    namespace: &str,
    property: &str,
    value_type: ValueType,
    format: FootprintFormat,
) -> Result<()> {
    let table = tables.namespace(namespace);
    if value_type == ValueType::Geometry && format == FootprintFormat::Spatialite {
        conn.query_row(
            &format!("SELECT AddGeometryColumn('{table}', '{property}', 4326, 'GEOMETRY', 2)"),
            [],
            |_| Ok(()),
        )
        .with_context(|| format!("SpatiaLite's AddGeometryColumn failed for {table}.{property}"))?;
    } else {
        conn.execute_batch(&format!(
            "ALTER TABLE {} ADD COLUMN \"{property}\" {};",
            quoted(&table),
            declared_type(value_type, format)
        ))?;
    }
    record_column_type(conn, tables, namespace, property, value_type)
}

/// SQLite's schema version: it changes whenever any connection changes a
/// table.
pub(crate) fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA schema_version", [], |row| row.get(0))?)
}

/// How this catalogue writes uuids, from the declaration of core's `uuid`:
/// muninn's `UUID` (NUMERIC affinity) or our `UUID TEXT`.
pub(crate) fn uuid_form(conn: &Connection, tables: &Tables) -> Result<UuidForm> {
    let declared: String = conn.query_row(
        &format!(
            "SELECT type FROM pragma_table_info('{}') WHERE name = 'uuid'",
            tables.core
        ),
        [],
        |row| row.get(0),
    )?;
    Ok(UuidForm::for_declaration(&declared))
}

/// Whether every value in a namespace column is JSON text (or NULL): what
/// muninn stores for a property of its JSON type, which it declares `TEXT`
/// like its text properties.
pub(crate) fn holds_only_json(
    conn: &Connection,
    tables: &Tables,
    namespace: &str,
    column: &str,
) -> Result<bool> {
    let other: Option<i64> = conn
        .query_row(
            &format!(
                "SELECT 1 FROM {} WHERE \"{column}\" IS NOT NULL AND (typeof(\"{column}\") != 'text' OR NOT json_valid(\"{column}\")) LIMIT 1",
                tables.namespace_sql(namespace)
            ),
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(other.is_none())
}
