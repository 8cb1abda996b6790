//! Writing the catalogue: changes are held back and written together.
//!
//! `create` and `update` check the product and prepare its namespaces at
//! once (a refused product is refused to the plugin, as on SQLite, and so
//! is a second create of one uuid or name), then hold the rows back. A
//! flush (before a read they touch, at commit, or when enough is held
//! back) writes them with a few statements per table: `COPY` for
//! new products, one `UPDATE ... FROM (VALUES ...)` per shape of update,
//! one upsert per namespace, one for owner records. Should the server
//! refuse any of it, the flush is undone and its changes replayed one by
//! one, each in a savepoint, so that only the refused ones are left out;
//! they are reported by [`Catalogue::flush`](crate::Catalogue::flush).

use super::schema::{self, quoted};
use super::values::{cast_type, push_copy_field, timestamp_text, to_text};
use super::{is_product_error, Store};
use crate::{CatalogueError, ChangeKind, Refused, Result};
use chrono::Utc;
use muninn_sync_model::{
    plan_namespace_write, text_is_not_json, truncate_to_micros, ColumnChange, CoreField, Product,
    Update, Uuid, Value, ValueType,
};
use postgres::types::ToSql;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;

/// How many changes (a product's create and its owner record count two)
/// are held back before they are written anyway: enough to amortise the
/// round trips, few enough to bound the memory (a few MB).
const HOLD_BACK: usize = 4000;

/// PostgreSQL takes at most 65,535 parameters per statement.
const MAX_PARAMETERS: usize = 60_000;

/// How a refusal that another session's schema change caused begins.
const SCHEMA_RACE: &str = "the namespace changed meanwhile";

/// A namespace's values in text form, by column.
type NamespaceRow = Vec<(String, Option<String>)>;

struct HeldCreate {
    uuid: Uuid,
    product: String,
    product_type: String,
    /// Every core field in [`CoreField::ALL`] order, as text.
    core: Vec<Option<String>>,
    namespaces: Vec<(String, NamespaceRow)>,
}

/// Which core fields an update sets, and per namespace which columns
/// (`None`: the namespace's row is removed).
type UpdateShape = (Vec<CoreField>, Vec<(String, Option<Vec<String>>)>);

struct HeldUpdate {
    uuid: Uuid,
    metadata_date: String,
    core: Vec<(CoreField, Option<String>)>,
    /// `None`: remove the product's row of that namespace.
    namespaces: Vec<(String, Option<NamespaceRow>)>,
}

impl HeldUpdate {
    /// Updates of one shape go into one statement.
    fn shape(&self) -> UpdateShape {
        (
            self.core.iter().map(|(f, _)| *f).collect(),
            self.namespaces
                .iter()
                .map(|(n, row)| {
                    (
                        n.clone(),
                        row.as_ref()
                            .map(|r| r.iter().map(|(c, _)| c.clone()).collect()),
                    )
                })
                .collect(),
        )
    }
}

/// The changes held back since the last flush, in the order they are
/// written: updates of products in the catalogue, creates, updates of the
/// products created (an update of a product held back waits for its
/// create), owner records last.
///
/// A read writes them first only when they touch what it reads (see
/// [`Pending::touches_products`]): a plugin that looks up each page before
/// it creates would otherwise cut every `COPY` to the page's size and
/// write its updates one at a time.
#[derive(Default)]
pub(super) struct Pending {
    creates: Vec<HeldCreate>,
    updates: Vec<HeldUpdate>,
    claims: Vec<(Uuid, String)>,
    /// The held-back creates' uuids and (type, name)s.
    created: HashSet<Uuid>,
    created_names: HashSet<(String, String)>,
    /// Products with a held-back update: a second update of one is written
    /// after the first, so the first is flushed before it is held.
    updated: HashSet<Uuid>,
    /// Whether a held-back update renames or retypes a product, which a
    /// look-up by name cannot tell from the names it asks for.
    renames: bool,
    claimed: HashSet<Uuid>,
}

impl Pending {
    fn len(&self) -> usize {
        self.creates.len() + self.updates.len() + self.claims.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The held-back updates in the order they are written: those of
    /// products already in the catalogue before the creates (a rename
    /// gives its old name up before a new product takes it), those of
    /// products created in this flush after them.
    fn updates_in_order(&self) -> (Vec<&HeldUpdate>, Vec<&HeldUpdate>) {
        self.updates
            .iter()
            .partition(|u| !self.created.contains(&u.uuid))
    }

    /// Whether a look-up by these names could read a held-back change.
    pub(super) fn touches_names(&self, product_type: &str, names: &[&str]) -> bool {
        self.renames
            || (!self.created_names.is_empty()
                && names.iter().any(|name| {
                    self.created_names
                        .contains(&(product_type.to_string(), name.to_string()))
                }))
    }

    /// Whether any of these products has a held-back create or update.
    pub(super) fn touches_products(&self, uuids: impl IntoIterator<Item = Uuid>) -> bool {
        uuids
            .into_iter()
            .any(|u| self.created.contains(&u) || self.updated.contains(&u))
    }

    /// Whether any of these products has a held-back owner record.
    pub(super) fn touches_owners(&self, uuids: &[Uuid]) -> bool {
        uuids.iter().any(|u| self.claimed.contains(u))
    }
}

/// `$first::text, $first+1::text, ...`: a row of text parameters.
fn text_row(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}::text"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn now_text() -> String {
    timestamp_text(&truncate_to_micros(Utc::now()))
}

impl Store {
    /// Checks a namespace's properties against its columns (the rules are
    /// the model's, one set for every store), makes the table and columns
    /// they need, and returns the values as text in their columns.
    fn prepare_namespace(
        &mut self,
        namespace: &str,
        properties: &BTreeMap<String, Option<Value>>,
    ) -> Result<NamespaceRow> {
        self.begin()?;
        match self.plan_and_make(namespace, properties) {
            // Another synchronizer of the archive may have made the same
            // table or column at the same moment (DDL races show as a
            // failed statement): once more, from what the server has now.
            Err(CatalogueError::Product(why)) if why.starts_with(SCHEMA_RACE) => {
                tracing::debug!(namespace, "namespace changed meanwhile: planning again");
                self.plan_and_make(namespace, properties)
            }
            other => other,
        }
    }

    /// One try of [`Self::prepare_namespace`].
    fn plan_and_make(
        &mut self,
        namespace: &str,
        properties: &BTreeMap<String, Option<Value>>,
    ) -> Result<NamespaceRow> {
        let existing = self.namespaces.get(namespace).map(|t| &t.columns);
        let plan = plan_namespace_write(namespace, existing, properties)
            .map_err(CatalogueError::Product)?;
        let changes_schema = plan.create_table || plan.values.iter().any(|v| v.change.is_some());
        if changes_schema {
            let tables = self.tables.clone();
            let made = self.in_savepoint(|store| {
                let refused = |e: anyhow::Error, what: &str| {
                    let code = e
                        .downcast_ref::<postgres::Error>()
                        .and_then(|pg| pg.code())
                        .map(|c| c.code().to_string());
                    match code.as_deref() {
                        // duplicate table/column/object, or the catalogue's
                        // own unique index when two sessions create at once
                        Some("42P07" | "42701" | "42710" | "23505") => {
                            CatalogueError::product(format!("{SCHEMA_RACE}: {e:#}"))
                        }
                        Some(c) if c.starts_with("42") || c.starts_with("22") => {
                            CatalogueError::product(format!(
                                "the catalogue cannot hold {what}: {e:#}"
                            ))
                        }
                        _ => CatalogueError::Storage(e),
                    }
                };
                if plan.create_table {
                    schema::create_namespace_table(&mut store.client, &tables, namespace)
                        .map_err(|e| refused(e, namespace))?;
                }
                for value in &plan.values {
                    let what = format!("{namespace}.{}", value.column);
                    match value.change {
                        Some(ColumnChange::Add(value_type)) => schema::add_namespace_column(
                            &mut store.client,
                            &tables,
                            namespace,
                            &value.column,
                            value_type,
                        )
                        .map_err(|e| refused(e, &what))?,
                        Some(ColumnChange::Widen(value_type)) => schema::widen_column(
                            &mut store.client,
                            &tables,
                            namespace,
                            &value.column,
                            value_type,
                        )
                        .map_err(|e| refused(e, &what))?,
                        Some(ColumnChange::TakeAsJson) => {
                            if !schema::holds_only_json(
                                &mut store.client,
                                &tables,
                                namespace,
                                &value.column,
                            )
                            .map_err(CatalogueError::Storage)?
                            {
                                return Err(CatalogueError::product(text_is_not_json(
                                    namespace,
                                    &value.column,
                                )));
                            }
                            schema::record_column_type(
                                &mut store.client,
                                &tables,
                                namespace,
                                &value.column,
                                ValueType::Json,
                            )
                            .map_err(CatalogueError::Storage)?;
                        }
                        None => {}
                    }
                }
                Ok(())
            });
            // What the savepoint kept or undid, as the server has it now.
            self.reload_namespaces()?;
            made?;
        }
        Ok(plan
            .values
            .into_iter()
            .map(|v| (v.column, v.value.as_ref().map(to_text)))
            .collect())
    }

    pub(super) fn hold_create(&mut self, product: &Product) -> Result<()> {
        product.validate().map_err(CatalogueError::Product)?;
        // Refused now, as the store that writes at once refuses it, so that
        // the plugin can look up the other product and say which waits.
        if self.pending.created.contains(&product.uuid) {
            return Err(CatalogueError::product(format!(
                "the catalogue already has a product with uuid {}",
                product.uuid.hyphenated()
            )));
        }
        let name = (product.product_type.clone(), product.product_name.clone());
        if self.pending.created_names.contains(&name) {
            return Err(CatalogueError::product(format!(
                "the catalogue already has a product of type {} named {}",
                muninn_sync_model::printable(&name.0),
                muninn_sync_model::printable(&name.1)
            )));
        }
        let mut namespaces = Vec::with_capacity(product.namespaces.len());
        for (namespace, properties) in &product.namespaces {
            let properties = properties
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            namespaces.push((
                namespace.clone(),
                self.prepare_namespace(namespace, &properties)?,
            ));
        }
        let now = now_text();
        let core = CoreField::ALL
            .into_iter()
            .map(|field| match field {
                CoreField::MetadataDate => Some(now.clone()),
                field => product.core_value(field).as_ref().map(to_text),
            })
            .collect();
        self.pending.created.insert(product.uuid);
        self.pending.created_names.insert(name);
        self.pending.creates.push(HeldCreate {
            uuid: product.uuid,
            product: format!("{}/{}", product.product_type, product.product_name),
            product_type: product.product_type.clone(),
            core,
            namespaces,
        });
        self.flush_when_full()
    }

    pub(super) fn hold_update(&mut self, update: &Update) -> Result<()> {
        update.check_core().map_err(CatalogueError::Product)?;
        let mut namespaces = Vec::new();
        for (namespace, change) in &update.namespaces {
            match change {
                Some(properties) => namespaces.push((
                    namespace.clone(),
                    Some(self.prepare_namespace(namespace, properties)?),
                )),
                None if self.namespaces.contains_key(namespace) => {
                    namespaces.push((namespace.clone(), None))
                }
                None => {}
            }
        }
        let renames = update
            .core
            .iter()
            .any(|(f, _)| matches!(f, CoreField::ProductName | CoreField::ProductType));
        // A second update of a product goes after the first; and a product
        // created in this flush and renamed gives its name up only once it
        // is written (a new product may take that name).
        if self.pending.updated.contains(&update.uuid)
            || (renames && self.pending.created.contains(&update.uuid))
        {
            self.flush_held_back()?;
        }
        self.pending.updated.insert(update.uuid);
        self.pending.renames |= renames;
        self.pending.updates.push(HeldUpdate {
            uuid: update.uuid,
            metadata_date: now_text(),
            core: update
                .core
                .iter()
                .map(|(f, v)| (*f, v.as_ref().map(to_text)))
                .collect(),
            namespaces,
        });
        self.flush_when_full()
    }

    pub(super) fn hold_claim(&mut self, uuids: &[Uuid], synchronizer: &str) -> Result<()> {
        self.pending.claimed.extend(uuids);
        self.pending
            .claims
            .extend(uuids.iter().map(|u| (*u, synchronizer.to_string())));
        self.flush_when_full()
    }

    fn flush_when_full(&mut self) -> Result<()> {
        if self.pending.len() >= HOLD_BACK {
            self.flush_held_back()?;
        }
        Ok(())
    }

    /// Writes what is held back; refused changes go to `self.refused`.
    pub(super) fn flush_held_back(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.begin()?;
        let pending = std::mem::take(&mut self.pending);
        self.client.batch_execute("SAVEPOINT flush")?;
        match self.write_all(&pending) {
            Ok(()) => {
                self.client.batch_execute("RELEASE SAVEPOINT flush")?;
                Ok(())
            }
            Err(Failed::Storage(error)) => Err(error),
            Err(Failed::Product(why)) => {
                tracing::debug!(error = %why, "a held-back change was refused: writing them one by one");
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT flush; RELEASE SAVEPOINT flush")?;
                self.replay(pending)
            }
        }
    }

    /// Writes every held-back change; a refusal stops at the first.
    fn write_all(&mut self, pending: &Pending) -> std::result::Result<(), Failed> {
        let (existing, new) = pending.updates_in_order();
        self.write_updates_by_shape(&existing)?;
        let creates: Vec<&HeldCreate> = pending.creates.iter().collect();
        self.write_creates(&creates)?;
        self.write_updates_by_shape(&new)?;
        self.write_claims(&pending.claims, &pending.created)?;
        Ok(())
    }

    /// Updates grouped by shape, one statement per shape and chunk.
    fn write_updates_by_shape(
        &mut self,
        updates: &[&HeldUpdate],
    ) -> std::result::Result<(), Failed> {
        let mut shapes: Vec<(_, Vec<&HeldUpdate>)> = Vec::new();
        for &update in updates {
            let shape = update.shape();
            match shapes.iter_mut().find(|(s, _)| *s == shape) {
                Some((_, group)) => group.push(update),
                None => shapes.push((shape, vec![update])),
            }
        }
        for (_, group) in shapes {
            let missing = self.write_updates(&group)?;
            if let Some(uuid) = missing.first() {
                return Err(Failed::Product(format!(
                    "no product with uuid {}",
                    uuid.simple()
                )));
            }
        }
        Ok(())
    }

    /// Replays the changes one by one, each in a savepoint, after the
    /// flush as a whole was refused.
    fn replay(&mut self, pending: Pending) -> Result<()> {
        let (existing, new) = pending.updates_in_order();
        self.replay_updates(&existing)?;
        let mut lost: HashSet<Uuid> = HashSet::new();
        for create in &pending.creates {
            if let Err(message) = self.replay_one(|store| store.write_creates(&[create]))? {
                lost.insert(create.uuid);
                self.refused.push(Refused {
                    uuid: create.uuid,
                    product: create.product.clone(),
                    product_type: Some(create.product_type.clone()),
                    change: ChangeKind::Create,
                    message,
                });
            }
        }
        self.replay_updates(&new)?;
        let claims: Vec<(Uuid, String)> = pending
            .claims
            .iter()
            .filter(|(u, _)| !lost.contains(u))
            .cloned()
            .collect();
        let created: HashSet<Uuid> = pending.created.difference(&lost).copied().collect();
        self.write_claims(&claims, &created)
            .map_err(Failed::into_error)?;
        Ok(())
    }

    /// Replays updates one by one; the refused ones go to `self.refused`.
    fn replay_updates(&mut self, updates: &[&HeldUpdate]) -> Result<()> {
        for &update in updates {
            let outcome =
                self.replay_one(|store| match store.write_updates(&[update])?.first() {
                    Some(uuid) => Err(Failed::Product(format!(
                        "no product with uuid {}",
                        uuid.simple()
                    ))),
                    None => Ok(()),
                })?;
            if let Err(message) = outcome {
                self.refused.push(Refused {
                    uuid: update.uuid,
                    product: update.uuid.simple().to_string(),
                    product_type: None,
                    change: ChangeKind::Update,
                    message,
                });
            }
        }
        Ok(())
    }

    /// Runs one replayed change in a savepoint: `Ok(Err(why))` when the
    /// server refused it for the product's sake.
    fn replay_one(
        &mut self,
        work: impl FnOnce(&mut Self) -> std::result::Result<(), Failed>,
    ) -> Result<std::result::Result<(), String>> {
        self.client.batch_execute("SAVEPOINT replay")?;
        match work(self) {
            Ok(()) => {
                self.client.batch_execute("RELEASE SAVEPOINT replay")?;
                Ok(Ok(()))
            }
            Err(Failed::Product(why)) => {
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT replay; RELEASE SAVEPOINT replay")?;
                Ok(Err(why))
            }
            Err(Failed::Storage(error)) => Err(error),
        }
    }

    /// New products: core rows, then each namespace's rows, by `COPY`.
    fn write_creates(&mut self, creates: &[&HeldCreate]) -> std::result::Result<(), Failed> {
        if creates.is_empty() {
            return Ok(());
        }
        let columns = CoreField::ALL.map(CoreField::name).join(", ");
        let mut data = String::with_capacity(creates.len() * 400);
        for create in creates {
            for (index, field) in create.core.iter().enumerate() {
                if index > 0 {
                    data.push('\t');
                }
                push_copy_field(&mut data, field.as_deref());
            }
            data.push('\n');
        }
        self.copy_in(
            &format!("COPY {} ({columns}) FROM STDIN", self.tables.core),
            &data,
        )?;
        // One COPY per namespace and set of columns.
        let mut groups: BTreeMap<(String, Vec<String>), String> = BTreeMap::new();
        for create in creates {
            for (namespace, row) in &create.namespaces {
                let key = (
                    namespace.clone(),
                    row.iter().map(|(c, _)| c.clone()).collect(),
                );
                let data = groups.entry(key).or_default();
                data.push_str(&create.uuid.hyphenated().to_string());
                for (_, value) in row {
                    data.push('\t');
                    push_copy_field(data, value.as_deref());
                }
                data.push('\n');
            }
        }
        for ((namespace, columns), data) in groups {
            let mut list = String::from("uuid");
            for column in &columns {
                list.push_str(", ");
                list.push_str(&quoted(column));
            }
            let sql = format!(
                "COPY {} ({list}) FROM STDIN",
                self.tables.namespace_sql(&namespace)
            );
            self.copy_in(&sql, &data)?;
        }
        Ok(())
    }

    fn copy_in(&mut self, sql: &str, data: &str) -> std::result::Result<(), Failed> {
        let target = self.target.clone();
        // Prepared once per table and set of columns: a round trip saved
        // per COPY.
        let statement = self.statement(sql).map_err(Failed::from_catalogue)?;
        let mut writer = self.client.copy_in(&statement).map_err(Failed::from)?;
        if let Err(error) = writer.write_all(data.as_bytes()) {
            // The server's own error, if it sent one, says more.
            return Err(match writer.finish() {
                Err(server) => Failed::from(server),
                Ok(_) => Failed::Storage(CatalogueError::Storage(anyhow::anyhow!(
                    "PostgreSQL catalogue {target}: COPY failed: {error}"
                ))),
            });
        }
        writer.finish().map_err(Failed::from)?;
        Ok(())
    }

    /// Updates of one shape; returns the uuids no product has.
    fn write_updates(&mut self, updates: &[&HeldUpdate]) -> std::result::Result<Vec<Uuid>, Failed> {
        let Some(first) = updates.first() else {
            return Ok(Vec::new());
        };
        let fields: Vec<CoreField> = first.core.iter().map(|(f, _)| *f).collect();
        let width = 2 + fields.len();
        let mut missing = Vec::new();
        for chunk in updates.chunks((MAX_PARAMETERS / width).max(1)) {
            let mut rows = Vec::with_capacity(chunk.len());
            let mut params: Vec<Option<String>> = Vec::with_capacity(chunk.len() * width);
            for update in chunk {
                rows.push(format!("({})", text_row(params.len() + 1, width)));
                params.push(Some(update.uuid.hyphenated().to_string()));
                params.push(Some(update.metadata_date.clone()));
                params.extend(update.core.iter().map(|(_, v)| v.clone()));
            }
            let mut names = vec!["u".to_string(), "m".to_string()];
            let mut assignments = vec!["metadata_date = v.m::timestamp".to_string()];
            for (index, field) in fields.iter().enumerate() {
                names.push(format!("f{index}"));
                assignments.push(format!(
                    "{} = v.f{index}::{}",
                    field.name(),
                    cast_type(field.value_type())
                ));
            }
            let sql = format!(
                "UPDATE {core} AS c SET {} FROM (VALUES {}) AS v({}) WHERE c.uuid = v.u::uuid RETURNING c.uuid",
                assignments.join(", "),
                rows.join(", "),
                names.join(", "),
                core = self.tables.core
            );
            let found: HashSet<Uuid> = self
                .execute_rows(&sql, &params)?
                .iter()
                .map(|row| row.get::<_, Uuid>(0))
                .collect();
            missing.extend(chunk.iter().map(|u| u.uuid).filter(|u| !found.contains(u)));
        }
        let present: Vec<&HeldUpdate> = updates
            .iter()
            .copied()
            .filter(|u| !missing.contains(&u.uuid))
            .collect();
        for (position, (namespace, row)) in first.namespaces.iter().enumerate() {
            let uuids: Vec<Uuid> = present.iter().map(|u| u.uuid).collect();
            match row {
                None => {
                    let sql = format!(
                        "DELETE FROM {} WHERE uuid = ANY($1)",
                        self.tables.namespace_sql(namespace)
                    );
                    let statement = self.statement(&sql).map_err(Failed::from_catalogue)?;
                    self.client
                        .execute(&statement, &[&uuids])
                        .map_err(Failed::from)?;
                }
                Some(columns) => {
                    let rows: Vec<&NamespaceRow> = present
                        .iter()
                        .map(|u| u.namespaces[position].1.as_ref().expect("one shape"))
                        .collect();
                    let names: Vec<String> = columns.iter().map(|(c, _)| c.clone()).collect();
                    self.upsert_namespace(namespace, &names, &uuids, &rows)?;
                }
            }
        }
        Ok(missing)
    }

    /// Inserts or updates rows of a namespace (the given columns only).
    fn upsert_namespace(
        &mut self,
        namespace: &str,
        columns: &[String],
        uuids: &[Uuid],
        rows: &[&NamespaceRow],
    ) -> std::result::Result<(), Failed> {
        let types: Vec<ValueType> = columns
            .iter()
            .map(|c| {
                self.namespaces
                    .get(namespace)
                    .and_then(|t| t.columns.get(c).map(|kind| kind.value_type))
                    .unwrap_or(ValueType::Text)
            })
            .collect();
        let width = 1 + columns.len();
        for (chunk, uuid_chunk) in rows
            .chunks((MAX_PARAMETERS / width).max(1))
            .zip(uuids.chunks((MAX_PARAMETERS / width).max(1)))
        {
            let mut values = Vec::with_capacity(chunk.len());
            let mut params: Vec<Option<String>> = Vec::with_capacity(chunk.len() * width);
            for (row, uuid) in chunk.iter().zip(uuid_chunk) {
                values.push(format!("({})", text_row(params.len() + 1, width)));
                params.push(Some(uuid.hyphenated().to_string()));
                params.extend(row.iter().map(|(_, v)| v.clone()));
            }
            let mut names = vec!["u".to_string()];
            let mut list = vec!["uuid".to_string()];
            let mut select = vec!["v.u::uuid".to_string()];
            let mut assignments = Vec::new();
            for (index, (column, value_type)) in columns.iter().zip(&types).enumerate() {
                names.push(format!("p{index}"));
                list.push(quoted(column));
                select.push(format!("v.p{index}::{}", cast_type(*value_type)));
                assignments.push(format!("{0} = EXCLUDED.{0}", quoted(column)));
            }
            let conflict = if assignments.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", assignments.join(", "))
            };
            let sql = format!(
                "INSERT INTO {} ({}) SELECT {} FROM (VALUES {}) AS v({}) ON CONFLICT (uuid) {conflict}",
                self.tables.namespace_sql(namespace),
                list.join(", "),
                select.join(", "),
                values.join(", "),
                names.join(", ")
            );
            self.execute_rows(&sql, &params)?;
        }
        Ok(())
    }

    /// Owner records, in uuid order (neighbouring index pages): those of
    /// products `created` in the same flush by `COPY`, since they cannot
    /// have one yet, the others by an upsert. The last claim of a product
    /// wins.
    fn write_claims(
        &mut self,
        claims: &[(Uuid, String)],
        created: &HashSet<Uuid>,
    ) -> std::result::Result<(), Failed> {
        let owners: BTreeMap<Uuid, &str> = claims.iter().map(|(u, s)| (*u, s.as_str())).collect();
        let mut copied = String::new();
        let mut by_synchronizer: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
        for (uuid, synchronizer) in owners {
            if created.contains(&uuid) {
                copied.push_str(&uuid.hyphenated().to_string());
                copied.push('\t');
                push_copy_field(&mut copied, Some(synchronizer));
                copied.push('\n');
            } else {
                by_synchronizer.entry(synchronizer).or_default().push(uuid);
            }
        }
        if !copied.is_empty() {
            let sql = format!(
                "COPY {} (uuid, synchronizer) FROM STDIN",
                self.tables.owners
            );
            self.copy_in(&sql, &copied)?;
        }
        for (synchronizer, uuids) in by_synchronizer {
            // A product gone meanwhile (refused at an earlier write of the
            // batch, or removed by another process) has no owner to record.
            let sql = format!(
                "INSERT INTO {owners} (uuid, synchronizer) SELECT u, $2 FROM unnest($1::uuid[]) AS u \
                 WHERE EXISTS (SELECT 1 FROM {core} c WHERE c.uuid = u) \
                 ON CONFLICT (uuid) DO UPDATE SET synchronizer = EXCLUDED.synchronizer",
                owners = self.tables.owners,
                core = self.tables.core
            );
            let statement = self.statement(&sql).map_err(Failed::from_catalogue)?;
            self.client
                .execute(&statement, &[&uuids, &synchronizer])
                .map_err(Failed::from)?;
        }
        Ok(())
    }

    /// Runs a statement whose parameters are all text; its rows.
    fn execute_rows(
        &mut self,
        sql: &str,
        params: &[Option<String>],
    ) -> std::result::Result<Vec<postgres::Row>, Failed> {
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        // Shapes repeat from flush to flush: prepared once each.
        let statement = self.statement(sql).map_err(Failed::from_catalogue)?;
        self.client.query(&statement, &refs).map_err(Failed::from)
    }

    pub(super) fn delete(&mut self, uuid: Uuid) -> Result<bool> {
        if self.pending.touches_products([uuid]) || self.pending.touches_owners(&[uuid]) {
            self.flush_held_back()?;
        }
        self.begin()?;
        let sql = format!(
            "WITH links AS (DELETE FROM {link} WHERE source_uuid = $1) DELETE FROM {core} WHERE uuid = $1",
            link = self.tables.link,
            core = self.tables.core
        );
        let statement = self.statement(&sql)?;
        Ok(self.client.execute(&statement, &[&uuid])? == 1)
    }
}

/// Why a bulk write stopped: a change the server refused (replayed one by
/// one), or the storage.
enum Failed {
    Product(String),
    Storage(CatalogueError),
}

impl Failed {
    fn from_catalogue(error: CatalogueError) -> Failed {
        match error {
            CatalogueError::Product(why) => Failed::Product(why),
            storage => Failed::Storage(storage),
        }
    }

    fn into_error(self) -> CatalogueError {
        match self {
            Failed::Product(why) => CatalogueError::Storage(anyhow::anyhow!(why)),
            Failed::Storage(error) => error,
        }
    }
}

impl From<postgres::Error> for Failed {
    fn from(error: postgres::Error) -> Failed {
        if is_product_error(&error) {
            Failed::Product(CatalogueError::from(error).to_string())
        } else {
            Failed::Storage(error.into())
        }
    }
}
