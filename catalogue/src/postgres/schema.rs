//! The tables on PostgreSQL: muninn 7.5's `core`, `link`, `tag` and
//! namespace tables as its postgresql backend creates them, and
//! muninn-sync's own records beside them.

use super::values::{declared_type, type_from_declaration};
use anyhow::{bail, Context, Result};
use muninn_sync_model::{CoreField, PropertyType, ValueType};
use postgres::GenericClient;
use std::collections::BTreeMap;

/// The version of muninn-sync's own tables in this database.
const SCHEMA_VERSION: &str = "1";

/// Table names under a `table_prefix`. muninn's prefix may name a schema
/// (`archive.` or `archive.s2_`), so names are never quoted as a whole.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub prefix: String,
    pub core: String,
    pub link: String,
    pub tag: String,
    pub columns: String,
    pub meta: String,
    pub runs: String,
    pub watermarks: String,
    pub owners: String,
    pub deletions: String,
}

impl Tables {
    pub fn new(prefix: &str) -> Tables {
        let name = |table: &str| format!("{prefix}{table}");
        Tables {
            prefix: prefix.to_string(),
            core: name("core"),
            link: name("link"),
            tag: name("tag"),
            columns: name("muninn_sync_columns"),
            meta: name("muninn_sync_meta"),
            runs: name("muninn_sync_runs"),
            watermarks: name("muninn_sync_watermarks"),
            owners: name("muninn_sync_owners"),
            deletions: name("muninn_sync_deletions"),
        }
    }

    /// A namespace's table, quoted: namespace names come from remotes, and
    /// quoted a keyword is still a name. A schema in the prefix stays
    /// outside the quotes.
    pub fn namespace_sql(&self, namespace: &str) -> String {
        let full = format!("{}{namespace}", self.prefix);
        match full.rsplit_once('.') {
            Some((schema, table)) => format!("{schema}.{}", quoted(table)),
            None => quoted(&full),
        }
    }

    /// The schema and bare name of a table (`public` without a schema in
    /// the prefix): how the system catalogues name it.
    pub fn split(&self, table: &str) -> (String, String) {
        match table.rsplit_once('.') {
            Some((schema, name)) => (schema.to_string(), name.to_string()),
            None => ("public".to_string(), table.to_string()),
        }
    }

    /// The prefix without its schema: what namespace tables' names start with.
    fn name_prefix(&self) -> &str {
        self.prefix
            .rsplit_once('.')
            .map_or(self.prefix.as_str(), |(_, p)| p)
    }
}

/// An SQL identifier in double quotes (a quote inside doubled).
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Checks a `table_prefix` as muninn's postgresql backend does:
/// `[a-z][_a-z]*(\.[a-z][_a-z]*)*` (a schema may come first); digits are
/// allowed after the first letter, as on SQLite.
pub(crate) fn validate_table_prefix(prefix: &str) -> Result<()> {
    let part_ok = |part: &str| {
        let mut chars = part.chars();
        matches!(chars.next(), Some('a'..='z'))
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
    };
    let trailing_dot_ok = |p: &str| p.strip_suffix('.').unwrap_or(p).split('.').all(part_ok);
    if !(prefix.is_empty() || trailing_dot_ok(prefix)) {
        bail!(
            "invalid table_prefix \"{prefix}\": expected lowercase letters, digits or '_', \
             starting with a letter, optionally after a schema name and '.'"
        );
    }
    Ok(())
}

pub(crate) fn table_exists(
    client: &mut impl GenericClient,
    tables: &Tables,
    table: &str,
) -> Result<bool> {
    let (schema, name) = tables.split(table);
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = $2",
            &[&schema, &name],
        )?
        .is_some())
}

/// Whether PostGIS is installed in this database.
pub(crate) fn has_postgis(client: &mut impl GenericClient) -> Result<bool> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_type WHERE typname = 'geography'",
            &[],
        )?
        .is_some())
}

/// Creates muninn's tables as muninn 7.5's postgresql backend does, and
/// ours, inside the caller's transaction.
pub(crate) fn create_tables(client: &mut impl GenericClient, tables: &Tables) -> Result<()> {
    let mut columns = Vec::new();
    for field in CoreField::ALL {
        let not_null = if field.is_mandatory() {
            " NOT NULL"
        } else {
            ""
        };
        columns.push(format!(
            "{} {}{not_null}",
            field.name(),
            declared_type(field.value_type())
        ));
    }
    let core = &tables.core;
    let bare = tables.split(core).1;
    let mut sql = format!("CREATE TABLE {core} ({});\n", columns.join(", "));
    sql += &format!("ALTER TABLE {core} ADD PRIMARY KEY (uuid);\n");
    sql += &format!(
        "ALTER TABLE {core} ADD CONSTRAINT {bare}_archive_path_uniq UNIQUE (archive_path, physical_name);\n"
    );
    sql += &format!(
        "ALTER TABLE {core} ADD CONSTRAINT {bare}_product_name_uniq UNIQUE (product_type, product_name);\n"
    );
    for field in CoreField::ALL {
        let name = field.name();
        match field {
            CoreField::Uuid | CoreField::ArchivePath | CoreField::RemoteUrl => {}
            CoreField::Footprint => {
                sql += &format!("CREATE INDEX idx_{bare}_{name} ON {core} USING GIST ({name});\n")
            }
            _ => sql += &format!("CREATE INDEX idx_{bare}_{name} ON {core} ({name});\n"),
        }
    }
    let (link, link_bare) = (&tables.link, tables.split(&tables.link).1);
    let (tag, tag_bare) = (&tables.tag, tables.split(&tables.tag).1);
    sql += &format!(
        "CREATE TABLE {link} (id SERIAL PRIMARY KEY, uuid UUID NOT NULL, source_uuid UUID NOT NULL);
         ALTER TABLE {link} ADD CONSTRAINT {link_bare}_link_uuid_source_uuid_uniq UNIQUE (uuid, source_uuid);
         ALTER TABLE {link} ADD CONSTRAINT {link_bare}_uuid_fkey FOREIGN KEY (uuid) REFERENCES {core} (uuid) ON DELETE CASCADE;
         CREATE INDEX idx_{link_bare}_uuid ON {link} (uuid);
         CREATE INDEX idx_{link_bare}_source_uuid ON {link} (source_uuid);
         CREATE TABLE {tag} (id SERIAL PRIMARY KEY, uuid UUID NOT NULL, tag TEXT COLLATE \"C\" NOT NULL);
         ALTER TABLE {tag} ADD CONSTRAINT {tag_bare}_tag_uuid_tag_uniq UNIQUE (uuid, tag);
         ALTER TABLE {tag} ADD CONSTRAINT {tag_bare}_uuid_fkey FOREIGN KEY (uuid) REFERENCES {core} (uuid) ON DELETE CASCADE;
         CREATE INDEX idx_{tag_bare}_uuid ON {tag} (uuid);
         CREATE INDEX idx_{tag_bare}_tag ON {tag} (tag);\n"
    );
    client
        .batch_execute(&sql)
        .context("cannot create muninn's tables")?;
    create_own_tables(client, tables)
}

/// muninn-sync's own tables; created in muninn archives on first use.
/// Owner rows reference core with `ON DELETE CASCADE`, so a product muninn
/// removes takes its owner record with it.
pub(crate) fn create_own_tables(client: &mut impl GenericClient, tables: &Tables) -> Result<()> {
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO {meta} (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}') ON CONFLICT DO NOTHING;
         CREATE TABLE IF NOT EXISTS {columns} (namespace TEXT NOT NULL, property TEXT NOT NULL,
             type TEXT NOT NULL, PRIMARY KEY (namespace, property));
         CREATE TABLE IF NOT EXISTS {runs} (
             id BIGSERIAL PRIMARY KEY,
             synchronizer TEXT NOT NULL,
             plugin TEXT NOT NULL,
             product_types TEXT,
             window_start TIMESTAMP,
             window_end TIMESTAMP,
             incremental BOOLEAN NOT NULL,
             force BOOLEAN NOT NULL,
             started TIMESTAMP NOT NULL,
             finished TIMESTAMP,
             pid BIGINT NOT NULL,
             hostname TEXT NOT NULL,
             created BIGINT NOT NULL DEFAULT 0,
             updated BIGINT NOT NULL DEFAULT 0,
             unchanged BIGINT NOT NULL DEFAULT 0,
             removed BIGINT NOT NULL DEFAULT 0,
             failed BIGINT NOT NULL DEFAULT 0,
             outcome TEXT NOT NULL,
             error TEXT);
         CREATE INDEX IF NOT EXISTS idx_{runs_bare}_synchronizer ON {runs} (synchronizer, id);
         CREATE TABLE IF NOT EXISTS {watermarks} (
             synchronizer TEXT NOT NULL,
             product_type TEXT NOT NULL,
             watermark TIMESTAMP NOT NULL,
             run_id BIGINT NOT NULL,
             PRIMARY KEY (synchronizer, product_type));
         CREATE TABLE IF NOT EXISTS {owners} (
             uuid UUID PRIMARY KEY REFERENCES {core} (uuid) ON DELETE CASCADE ON UPDATE CASCADE,
             synchronizer TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS {deletions} (
             synchronizer TEXT NOT NULL,
             product_type TEXT NOT NULL,
             product_name TEXT NOT NULL,
             uuid UUID,
             deleted TIMESTAMP NOT NULL,
             PRIMARY KEY (synchronizer, product_type, product_name));",
        meta = tables.meta,
        columns = tables.columns,
        runs = tables.runs,
        runs_bare = tables.split(&tables.runs).1,
        watermarks = tables.watermarks,
        owners = tables.owners,
        deletions = tables.deletions,
        core = tables.core,
    );
    client
        .batch_execute(&sql)
        .context("cannot create muninn-sync's own tables")?;
    Ok(())
}

/// Whether all of muninn-sync's own tables exist.
pub(crate) fn own_tables_exist(client: &mut impl GenericClient, tables: &Tables) -> Result<bool> {
    for table in [
        &tables.meta,
        &tables.columns,
        &tables.runs,
        &tables.watermarks,
        &tables.owners,
        &tables.deletions,
    ] {
        if !table_exists(client, tables, table)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks that an existing core table is muninn's: every core property
/// with a type muninn-sync can read, and uuid its primary key. Anything
/// else is another application's table of the same name, which a sync
/// must not write into.
pub(crate) fn check_core_layout(client: &mut impl GenericClient, tables: &Tables) -> Result<()> {
    let (schema, name) = tables.split(&tables.core);
    let rows = client.query(
        "SELECT column_name, udt_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
        &[&schema, &name],
    )?;
    let found: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut wrong = Vec::new();
    for field in CoreField::ALL {
        match found.get(field.name()) {
            None => wrong.push(format!("no column {}", field.name())),
            Some(udt) if type_from_declaration(udt) != field.value_type() => wrong.push(format!(
                "{} is {udt}, not {}",
                field.name(),
                declared_type(field.value_type())
            )),
            Some(_) => {}
        }
    }
    if !wrong.is_empty() {
        bail!(
            "table {} is not muninn's core table ({}): the table_prefix may name another application's tables",
            tables.core,
            wrong.join("; ")
        );
    }
    Ok(())
}

/// A namespace table: its columns (without `uuid`) with their types, as
/// the model's rules take them (`fixed`: muninn made the column, so its
/// declared type stands and is never widened).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NamespaceTable {
    pub columns: BTreeMap<String, PropertyType>,
}

/// Every namespace table of the catalogue: tables under the prefix whose
/// `uuid` references core, as muninn creates them.
pub(crate) fn load_namespaces(
    client: &mut impl GenericClient,
    tables: &Tables,
) -> Result<BTreeMap<String, NamespaceTable>> {
    let recorded: BTreeMap<(String, String), ValueType> =
        if table_exists(client, tables, &tables.columns)? {
            client
                .query(
                    &format!("SELECT namespace, property, type FROM {}", tables.columns),
                    &[],
                )?
                .iter()
                .filter_map(|row| {
                    let value_type = ValueType::from_name(row.get::<_, &str>(2))?;
                    Some(((row.get(0), row.get(1)), value_type))
                })
                .collect()
        } else {
            BTreeMap::new()
        };
    let (schema, core) = tables.split(&tables.core);
    // Tables of the schema with a foreign key from uuid to core.
    let rows = client.query(
        "SELECT c.relname, a.attname, t.typname
           FROM pg_catalog.pg_constraint k
           JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_catalog.pg_class r ON r.oid = k.confrelid
           JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
          WHERE k.contype = 'f' AND n.nspname = $1 AND r.relname = $2
            AND k.conkey = ARRAY[(SELECT attnum FROM pg_catalog.pg_attribute
                                   WHERE attrelid = c.oid AND attname = 'uuid')]::int2[]
          ORDER BY c.relname, a.attnum",
        &[&schema, &core],
    )?;
    let mut namespaces: BTreeMap<String, NamespaceTable> = BTreeMap::new();
    let own = [&tables.owners, &tables.link, &tables.tag].map(|t| tables.split(t).1);
    for row in rows {
        let table: String = row.get(0);
        if own.contains(&table) {
            continue;
        }
        let Some(namespace) = table.strip_prefix(tables.name_prefix()) else {
            continue;
        };
        if muninn_sync_model::validate_namespace_name(namespace).is_err() {
            continue;
        }
        let column: String = row.get(1);
        let entry = namespaces.entry(namespace.to_string()).or_default();
        if column == "uuid" {
            continue;
        }
        let kind = PropertyType::of_column(
            recorded
                .get(&(namespace.to_string(), column.clone()))
                .copied(),
            || type_from_declaration(row.get(2)),
        );
        entry.columns.insert(column, kind);
    }
    Ok(namespaces)
}

/// Creates a namespace table as muninn would: `uuid` is the primary key
/// and references core, so removing a product removes its namespaces.
pub(crate) fn create_namespace_table(
    client: &mut impl GenericClient,
    tables: &Tables,
    namespace: &str,
) -> Result<()> {
    client.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (uuid UUID PRIMARY KEY REFERENCES {core} (uuid) ON DELETE CASCADE)",
        table = tables.namespace_sql(namespace),
        core = tables.core,
    ))?;
    Ok(())
}

/// Records the type muninn-sync made a namespace column with.
pub(crate) fn record_column_type(
    client: &mut impl GenericClient,
    tables: &Tables,
    namespace: &str,
    property: &str,
    value_type: ValueType,
) -> Result<()> {
    client.execute(
        &format!(
            "INSERT INTO {} (namespace, property, type) VALUES ($1, $2, $3)
             ON CONFLICT (namespace, property) DO UPDATE SET type = EXCLUDED.type",
            tables.columns
        ),
        &[&namespace, &property, &value_type.name()],
    )?;
    Ok(())
}

/// Adds a property's column to a namespace table and records its type.
pub(crate) fn add_namespace_column(
    client: &mut impl GenericClient,
    tables: &Tables,
    namespace: &str,
    property: &str,
    value_type: ValueType,
) -> Result<()> {
    client.batch_execute(&format!(
        "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
        tables.namespace_sql(namespace),
        quoted(property),
        declared_type(value_type)
    ))?;
    record_column_type(client, tables, namespace, property, value_type)
}

/// Makes a column muninn-sync made real after it met whole numbers first.
pub(crate) fn widen_column(
    client: &mut impl GenericClient,
    tables: &Tables,
    namespace: &str,
    column: &str,
    value_type: ValueType,
) -> Result<()> {
    client.batch_execute(&format!(
        "ALTER TABLE {table} ALTER COLUMN {column} TYPE {declared} USING {column}::{cast}",
        table = tables.namespace_sql(namespace),
        column = quoted(column),
        declared = declared_type(value_type),
        cast = super::values::cast_type(value_type),
    ))?;
    record_column_type(client, tables, namespace, column, value_type)
}

/// Whether every value of a text column is JSON (or NULL): the cast
/// fails on the first that is not, inside a savepoint so that the batch's
/// transaction survives it.
pub(crate) fn holds_only_json(
    client: &mut impl GenericClient,
    tables: &Tables,
    namespace: &str,
    column: &str,
) -> Result<bool> {
    let column = quoted(column);
    client.batch_execute("SAVEPOINT json_check")?;
    let checked = client.query_opt(
        &format!(
            "SELECT 1 FROM {} WHERE {column} IS NOT NULL AND {column}::text::jsonb IS NULL LIMIT 1",
            tables.namespace_sql(namespace)
        ),
        &[],
    );
    match checked {
        Ok(_) => {
            client.batch_execute("RELEASE SAVEPOINT json_check")?;
            Ok(true)
        }
        Err(error) if error.code().is_some() => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT json_check; RELEASE SAVEPOINT json_check")?;
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

/// Namespace tables muninn-sync made that are no longer linked to core:
/// `muninn-destroy` drops core with CASCADE, which on PostgreSQL takes only
/// the foreign key of a namespace table muninn does not know, so the table
/// and its rows outlive the products. Writing into it again would refuse
/// every product as a duplicate; better one clear error naming them.
pub(crate) fn unlinked_namespace_tables(
    client: &mut impl GenericClient,
    tables: &Tables,
    namespaces: &BTreeMap<String, NamespaceTable>,
) -> Result<Vec<String>> {
    if !table_exists(client, tables, &tables.columns)? {
        return Ok(Vec::new());
    }
    let recorded: Vec<String> = client
        .query(
            &format!("SELECT DISTINCT namespace FROM {}", tables.columns),
            &[],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut unlinked = Vec::new();
    for namespace in recorded {
        if namespaces.contains_key(&namespace) {
            continue;
        }
        let table = format!("{}{namespace}", tables.prefix);
        if table_exists(client, tables, &table)? {
            unlinked.push(table);
        }
    }
    Ok(unlinked)
}

/// muninn-sync's bookkeeping of a catalogue muninn-destroy dropped: its
/// `DROP TABLE core CASCADE` takes the owner table's foreign key and leaves
/// the rows. Owner records, watermarks and deletions then describe products
/// the new catalogue does not hold, and a sync would skip everything
/// before the old watermarks: the tables to drop, or none.
pub(crate) fn stale_bookkeeping_tables(
    client: &mut impl GenericClient,
    tables: &Tables,
) -> Result<Vec<String>> {
    if !table_exists(client, tables, &tables.owners)? {
        return Ok(Vec::new());
    }
    let (schema, name) = tables.split(&tables.owners);
    let linked = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_constraint c \
             JOIN pg_catalog.pg_class r ON r.oid = c.conrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
             WHERE n.nspname = $1 AND r.relname = $2 AND c.contype = 'f'",
            &[&schema, &name],
        )?
        .is_some();
    if linked {
        return Ok(Vec::new());
    }
    let mut stale = Vec::new();
    for table in [&tables.owners, &tables.watermarks, &tables.deletions] {
        if table_exists(client, tables, table)? {
            stale.push(table.clone());
        }
    }
    Ok(stale)
}
