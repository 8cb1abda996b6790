//! Writing the SQLite catalogue: creating, updating and removing
//! products, and their namespace rows, whose tables and columns follow the
//! plan the model's rule makes ([`plan_namespace_write`]).

use super::schema::{self, NamespaceTable};
use super::values::option_to_sql;
use super::SqliteCatalogue;
use crate::{CatalogueError, Result};
use chrono::Utc;
use muninn_sync_model::{
    format_timestamp, plan_namespace_write, text_is_not_json, truncate_to_micros, ColumnChange,
    CoreField, NamespaceWrite, Product, PropertyType, Update, Uuid, Value, ValueType,
};
use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;
use std::collections::BTreeMap;

/// A namespace or property name SQLite refuses (a keyword, a name it keeps
/// for itself, a table that exists already): the product's fault, not the
/// storage's, so the run goes on. Other failures stay storage errors.
fn refused_name(error: anyhow::Error, what: &str) -> CatalogueError {
    let refused = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(e, _) | rusqlite::Error::SqlInputError { error: e, .. })
                if e.code == rusqlite::ErrorCode::Unknown
        )
    });
    if refused {
        CatalogueError::Product(format!("the catalogue cannot hold {what}: {error:#}"))
    } else {
        CatalogueError::Storage(error)
    }
}

impl SqliteCatalogue {
    /// Creates a product: its core row and namespace rows, or nothing.
    pub(super) fn create_product(&mut self, product: &Product) -> Result<()> {
        product.validate().map_err(CatalogueError::Product)?;
        // Every namespace planned before any is changed: a refused property
        // leaves no table or column behind.
        let mut plans = Vec::with_capacity(product.namespaces.len());
        for (namespace, properties) in &product.namespaces {
            let properties = properties
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            plans.push((namespace, self.plan_namespace(namespace, &properties)?));
        }
        let mut namespace_values = Vec::with_capacity(plans.len());
        for (namespace, plan) in plans {
            namespace_values.push((namespace, self.apply_namespace_plan(namespace, plan)?));
        }
        // No savepoint: it would copy every page the insert touches (a dozen
        // indexes and the spatial index), which costs more than the insert.
        // The core row goes in with one statement, which is atomic; should a
        // namespace row then be refused, the core row is deleted again (its
        // namespace rows go with it), so the product still leaves nothing.
        self.begin_write()?;
        let mut params: Vec<SqlValue> = Vec::with_capacity(CoreField::ALL.len());
        for field in CoreField::ALL {
            params.push(match field {
                CoreField::MetadataDate => Self::now(),
                field => option_to_sql(product.core_value(field).as_ref(), self.format, self.uuids),
            });
        }
        self.conn
            .prepare_cached(&self.core_insert)?
            .execute(params_from_iter(params))?;
        let key = self.uuids.text(&product.uuid);
        for (namespace, values) in &namespace_values {
            if let Err(error) = self.write_namespace(&key, namespace, values) {
                if error.is_product_error() {
                    let sql = format!("DELETE FROM {} WHERE uuid = ?1", self.tables.core);
                    self.conn.prepare_cached(&sql)?.execute([&key])?;
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// Changes what the update names of a product, or nothing.
    pub(super) fn update_product(&mut self, update: &Update) -> Result<()> {
        let key = self.uuids.text(&update.uuid);
        update.check_core().map_err(CatalogueError::Product)?;
        let mut plans = Vec::new();
        for (namespace, change) in &update.namespaces {
            let plan = match change {
                Some(properties) => Some(self.plan_namespace(namespace, properties)?),
                None => None,
            };
            plans.push((namespace.clone(), plan));
        }
        let mut namespace_values = Vec::with_capacity(plans.len());
        for (namespace, plan) in plans {
            let values = match plan {
                Some(plan) => Some(self.apply_namespace_plan(&namespace, plan)?),
                None => None,
            };
            namespace_values.push((namespace, values));
        }
        let apply = |this: &mut Self| -> Result<()> {
            let mut assignments = vec!["metadata_date = ?1".to_string()];
            let mut params = vec![Self::now()];
            for (field, value) in &update.core {
                params.push(option_to_sql(value.as_ref(), this.format, this.uuids));
                assignments.push(format!("{} = ?{}", field.name(), params.len()));
            }
            params.push(SqlValue::Text(key.clone()));
            let sql = format!(
                "UPDATE {} SET {} WHERE uuid = ?{}",
                this.tables.core,
                assignments.join(", "),
                params.len()
            );
            let changed = this
                .conn
                .prepare_cached(&sql)?
                .execute(params_from_iter(params))?;
            if changed == 0 {
                return Err(CatalogueError::product(format!(
                    "no product with uuid {key}"
                )));
            }
            for (namespace, values) in &namespace_values {
                match values {
                    Some(values) => this.write_namespace(&key, namespace, values)?,
                    None if this.namespaces.contains_key(namespace) => {
                        let sql = format!(
                            "DELETE FROM {} WHERE uuid = ?1",
                            this.tables.namespace_sql(namespace)
                        );
                        this.conn.prepare_cached(&sql)?.execute([&key])?;
                    }
                    None => {}
                }
            }
            Ok(())
        };
        if namespace_values.is_empty() {
            // One statement, atomic by itself: no savepoint needed.
            self.begin_write()?;
            apply(self)
        } else {
            self.atomically(apply)
        }
    }

    /// Removes a product with its namespace rows and links; whether it was there.
    pub(super) fn remove_product(&mut self, uuid: Uuid) -> Result<bool> {
        let key = self.uuids.text(&uuid);
        self.begin_write()?;
        // Neither statement can be refused for the product's sake: a failure
        // is the storage's, and ends the run with the batch rolled back.
        let sql = format!("DELETE FROM {} WHERE source_uuid = ?1", self.tables.link);
        self.conn.prepare_cached(&sql)?.execute([&key])?;
        let sql = format!("DELETE FROM {} WHERE uuid = ?1", self.tables.core);
        Ok(self.conn.prepare_cached(&sql)?.execute([&key])? == 1)
    }

    /// What writing `properties` into `namespace` takes, by the
    /// catalogue's rule ([`plan_namespace_write`]), against the namespace's
    /// columns as they are now; nothing is changed yet.
    fn plan_namespace(
        &mut self,
        namespace: &str,
        properties: &BTreeMap<String, Option<Value>>,
    ) -> Result<NamespaceWrite> {
        // The write transaction first: it re-reads the namespaces another
        // synchronizer may have changed.
        self.begin_write()?;
        let existing = self.namespaces.get(namespace).map(|t| &t.columns);
        plan_namespace_write(namespace, existing, properties).map_err(CatalogueError::Product)
    }

    /// Carries out a namespace's plan: creates the table and columns,
    /// records changed column types; returns the values as they will be
    /// stored, by column.
    fn apply_namespace_plan(
        &mut self,
        namespace: &str,
        plan: NamespaceWrite,
    ) -> Result<Vec<(String, Option<Value>)>> {
        if plan.create_table {
            schema::create_namespace_table(&self.conn, &self.tables, namespace)
                .map_err(|e| refused_name(e, namespace))?;
            self.namespaces
                .insert(namespace.to_string(), NamespaceTable::default());
        }
        let mut values = Vec::with_capacity(plan.values.len());
        for planned in plan.values {
            let column = planned.column;
            let changed = match planned.change {
                None => None,
                Some(ColumnChange::Add(value_type)) => {
                    schema::add_namespace_column(
                        &self.conn,
                        &self.tables,
                        namespace,
                        &column,
                        value_type,
                        self.format,
                    )
                    .map_err(|e| refused_name(e, &format!("{namespace}.{column}")))?;
                    Some(value_type)
                }
                Some(ColumnChange::Widen(value_type)) => {
                    schema::record_column_type(
                        &self.conn,
                        &self.tables,
                        namespace,
                        &column,
                        value_type,
                    )?;
                    Some(value_type)
                }
                Some(ColumnChange::TakeAsJson) => {
                    if !schema::holds_only_json(&self.conn, &self.tables, namespace, &column)? {
                        return Err(CatalogueError::product(text_is_not_json(
                            namespace, &column,
                        )));
                    }
                    schema::record_column_type(
                        &self.conn,
                        &self.tables,
                        namespace,
                        &column,
                        ValueType::Json,
                    )?;
                    Some(ValueType::Json)
                }
            };
            if let Some(value_type) = changed {
                // Recorded by muninn-sync now, so no longer muninn's.
                let kind = PropertyType {
                    value_type,
                    fixed: false,
                };
                self.namespaces
                    .get_mut(namespace)
                    .expect("the namespace's table exists")
                    .columns
                    .insert(column.clone(), kind);
            }
            values.push((column, planned.value));
        }
        Ok(values)
    }

    /// Inserts or updates a product's row in a namespace table.
    fn write_namespace(
        &self,
        uuid: &str,
        namespace: &str,
        values: &[(String, Option<Value>)],
    ) -> Result<()> {
        let sql = upsert_sql(&self.tables.namespace_sql(namespace), values);
        let mut params = Vec::with_capacity(values.len() + 1);
        params.push(SqlValue::Text(uuid.to_string()));
        params.extend(
            values
                .iter()
                .map(|(_, v)| option_to_sql(v.as_ref(), self.format, self.uuids)),
        );
        self.conn
            .prepare_cached(&sql)?
            .execute(params_from_iter(params))?;
        Ok(())
    }

    fn now() -> SqlValue {
        SqlValue::Text(format_timestamp(&truncate_to_micros(Utc::now())))
    }
}

/// The statement that writes a product's row of a namespace table, with
/// these columns. Written into one string: it is made for every namespace
/// row a sync writes (the statement itself is prepared once and cached).
fn upsert_sql(table: &str, values: &[(String, Option<Value>)]) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(64 + table.len() + values.len() * 48);
    if values.is_empty() {
        let _ = write!(
            sql,
            "INSERT INTO {table} (uuid) VALUES (?1) ON CONFLICT (uuid) DO NOTHING"
        );
        return sql;
    }
    let _ = write!(sql, "INSERT INTO {table} (uuid");
    for (column, _) in values {
        let _ = write!(sql, ", \"{column}\"");
    }
    sql.push_str(") VALUES (?1");
    for position in 2..values.len() + 2 {
        let _ = write!(sql, ", ?{position}");
    }
    sql.push_str(") ON CONFLICT (uuid) DO UPDATE SET ");
    for (index, (column, _)) in values.iter().enumerate() {
        if index > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "\"{column}\" = excluded.\"{column}\"");
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::upsert_sql;
    use crate::{Catalogue, SqliteCatalogue, SqliteOptions};
    use muninn_sync_model::{Product, Update, Value};

    #[test]
    fn a_refused_property_leaves_no_table_or_column_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut catalogue = SqliteCatalogue::open(&SqliteOptions::new(&path)).unwrap();
        let mut product = Product::new("T", "a");
        let first = [("x".to_string(), Value::Integer(1))].into();
        product.namespaces.insert("aa".into(), first);
        let refused = [("y".to_string(), Value::Text("a\0b".into()))].into();
        product.namespaces.insert("bb".into(), refused);
        let error = catalogue.create(&product).unwrap_err().to_string();
        assert!(error.starts_with("bb.y: "), "{error}");
        let types = catalogue
            .property_types(&["aa".to_string(), "bb".to_string()])
            .unwrap();
        assert!(types.is_empty(), "{types:?}");

        let stored = Product::new("T", "b");
        catalogue.create(&stored).unwrap();
        let mut update = Update::new(stored.uuid);
        let widened = [("n".to_string(), Some(Value::Integer(1)))].into();
        update.namespaces.insert("aa".into(), Some(widened));
        let clash = [
            ("Dup".to_string(), Some(Value::Integer(1))),
            ("dup".to_string(), Some(Value::Integer(2))),
        ]
        .into();
        update.namespaces.insert("bb".into(), Some(clash));
        let error = catalogue.update(&update).unwrap_err().to_string();
        assert!(error.contains("differ only in case"), "{error}");
        let types = catalogue
            .property_types(&["aa".to_string(), "bb".to_string()])
            .unwrap();
        assert!(types.is_empty(), "{types:?}");
    }

    #[test]
    fn a_namespace_row_is_written_by_one_upsert() {
        let values = vec![
            ("cloud_cover".to_string(), Some(Value::Real(1.0))),
            ("orbit".to_string(), None),
        ];
        assert_eq!(
            upsert_sql("\"eo\"", &values),
            "INSERT INTO \"eo\" (uuid, \"cloud_cover\", \"orbit\") VALUES (?1, ?2, ?3) \
             ON CONFLICT (uuid) DO UPDATE SET \"cloud_cover\" = excluded.\"cloud_cover\", \"orbit\" = excluded.\"orbit\""
        );
        assert_eq!(
            upsert_sql("\"eo\"", &[]),
            "INSERT INTO \"eo\" (uuid) VALUES (?1) ON CONFLICT (uuid) DO NOTHING"
        );
    }
}
