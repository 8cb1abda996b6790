//! Reading the SQLite catalogue: look-ups by name and uuid, walks and
//! scans a page at a time, and the namespaces' property types.

use super::values::{self, from_sql, UuidForm};
use super::SqliteCatalogue;
use crate::lookup::{scan_time, scan_values, take_in_order};
use crate::{CatalogueError, Namespaces, Result, ScanQuery, ScanRow, WalkQuery};
use anyhow::anyhow;
use muninn_sync_model::{
    format_timestamp, scan_order, walk_time, CoreField, Product, PropertyType, Timestamp, Uuid,
    Value, ValueType, WalkTime,
};
use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;
use std::collections::{BTreeMap, HashMap};

/// How many keys one look-up query takes: large enough to amortise a
/// query, small enough to stay in SQLite's limits and statement cache.
pub(super) const LOOKUP_CHUNK: usize = 100;

/// Reports a stored time muninn-sync cannot read, which a look-up then
/// takes as absent: one written before times were checked (a UTC past
/// 9999-12-31 was stored as `10000-01-01 ...`), or by another tool. The
/// run goes on; a sync that sets the property again writes a readable
/// time over it, and SQL can clear it.
fn report_unreadable_time(
    table: &str,
    column: &str,
    product: Option<&Product>,
    uuid: &Uuid,
    why: &str,
) {
    let product = product.map(|p| {
        format!(
            "{}/{}",
            muninn_sync_model::printable(&p.product_type),
            muninn_sync_model::printable(&p.product_name)
        )
    });
    tracing::warn!(
        table,
        column,
        product = product.as_deref().unwrap_or("?"),
        uuid = %uuid.simple(),
        error = %muninn_sync_model::printable(why),
        "the catalogue holds a time muninn-sync cannot read; it is taken as absent \
         (a sync that sets the property writes over it, or clear it with SQL)"
    );
}

/// Adds a parameter; returns its placeholder.
fn bind(params: &mut Vec<SqlValue>, value: SqlValue) -> String {
    params.push(value);
    format!("?{}", params.len())
}

/// The conditions of one page of a window over the timestamp column `time`,
/// paged by (time, `uuid`) as walks and scans are: `time` set, and
/// [`muninn_sync_model::in_page`] in SQL (in `[start, end)`, strictly after
/// `after`). The values go into `params`.
fn window_conditions(
    time: &str,
    uuid: &str,
    start: Option<&Timestamp>,
    end: Option<&Timestamp>,
    after: Option<&(Timestamp, Uuid)>,
    uuids: UuidForm,
    params: &mut Vec<SqlValue>,
) -> Vec<String> {
    let mut conditions = vec![format!("{time} IS NOT NULL")];
    if let Some(start) = start {
        conditions.push(format!(
            "{time} >= {}",
            bind(params, SqlValue::Text(format_timestamp(start)))
        ));
    }
    if let Some(end) = end {
        conditions.push(format!(
            "{time} < {}",
            bind(params, SqlValue::Text(format_timestamp(end)))
        ));
    }
    if let Some((at, last)) = after {
        let t = bind(params, SqlValue::Text(format_timestamp(at)));
        let u = bind(params, SqlValue::Text(uuids.text(last)));
        conditions.push(format!("({time} > {t} OR ({time} = {t} AND {uuid} > {u}))"));
    }
    conditions
}

/// `?first, ?first+1, ...`: `count` numbered SQL parameters.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SqliteCatalogue {
    /// The products of one type with these names, in their order.
    pub(super) fn find_by_name(
        &self,
        product_type: &str,
        product_names: &[&str],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>> {
        let namespaces = self.selected_namespaces(namespaces);
        let keys: Vec<String> = product_names.iter().map(|n| n.to_string()).collect();
        let mut found = self.products_in(
            Some(product_type),
            CoreField::ProductName,
            &keys,
            &namespaces,
        )?;
        Ok(take_in_order(&mut found, &keys))
    }

    /// The products with these uuids, in their order.
    pub(super) fn find_by_uuid(
        &self,
        uuids: &[Uuid],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>> {
        let namespaces = self.selected_namespaces(namespaces);
        let keys: Vec<String> = uuids.iter().map(|u| self.uuids.text(u)).collect();
        let mut found = self.products_in(None, CoreField::Uuid, &keys, &namespaces)?;
        Ok(take_in_order(&mut found, &keys))
    }

    /// One page of a walk ([`muninn_sync_model::page`] in SQL).
    pub(super) fn walk_page(
        &self,
        query: &WalkQuery,
        namespaces: &Namespaces,
    ) -> Result<Vec<Product>> {
        let walked = self.walk_column(&query.property)?;
        self.begin()?;
        let Some((column, join, own_namespace)) = walked else {
            return Ok(Vec::new()); // no product has that namespace property yet
        };
        let mut params: Vec<SqlValue> = vec![SqlValue::Text(query.product_type.clone())];
        let mut conditions = vec!["c.product_type = ?1".to_string()];
        conditions.extend(window_conditions(
            &column,
            "c.uuid",
            query.start.as_ref(),
            query.end.as_ref(),
            query.after.as_ref(),
            self.uuids,
            &mut params,
        ));
        let limit = bind(&mut params, SqlValue::Integer(query.limit as i64));
        let sql = format!(
            "SELECT c.uuid FROM {} c{join} WHERE {} ORDER BY {column}, c.uuid LIMIT {limit}",
            self.tables.core,
            conditions.join(" AND ")
        );
        // Kept as stored (dashed or not) to find the products again; a uuid
        // SQLite stored as a number is named by the error from_sql gives.
        let stored: Vec<rusqlite::types::Value> = self
            .conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(params), |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let uuids: Vec<String> = stored
            .into_iter()
            .map(|value| match value {
                rusqlite::types::Value::Text(text) => Ok(text),
                other => {
                    let why =
                        values::from_sql(rusqlite::types::ValueRef::from(&other), ValueType::Uuid)
                            .err()
                            .unwrap_or_else(|| format!("{other:?} where a uuid belongs"));
                    Err(CatalogueError::Storage(anyhow::anyhow!(
                        "{}.uuid of a product of type \"{}\": {why}",
                        self.tables.core,
                        query.product_type
                    )))
                }
            })
            .collect::<Result<_>>()?;
        let mut namespaces = self.selected_namespaces(namespaces);
        if let Some(own) = own_namespace {
            if !namespaces.contains(&own) {
                namespaces.push(own);
            }
        }
        let mut found = self.products_in(None, CoreField::Uuid, &uuids, &namespaces)?;
        let products: Vec<Product> = uuids.iter().filter_map(|key| found.remove(key)).collect();
        Ok(products)
    }

    /// One page of a scan ([`muninn_sync_model::page`] in SQL).
    pub(super) fn scan_page(&mut self, query: &ScanQuery) -> Result<Vec<ScanRow>> {
        self.begin_write()?;
        let Some(table) = self.namespaces.get(&query.namespace) else {
            return Ok(Vec::new()); // nothing has that namespace yet
        };
        let order_by = scan_order(&query.namespace, &query.order_by, Some(&table.columns))
            .map_err(CatalogueError::Product)?;
        let Some(order_by) = order_by.cloned() else {
            return Ok(Vec::new()); // nothing has that property yet
        };
        let columns: Vec<Option<(String, ValueType)>> = query
            .properties
            .iter()
            .map(|p| table.column(p).map(|(c, t)| (c.clone(), t)))
            .collect();
        let name = self.tables.namespace(&query.namespace);
        let table_sql = self.tables.namespace_sql(&query.namespace);
        // Ordered by (time, uuid) straight from an index: a scan of a window
        // reads the index in order instead of sorting the table. Made once
        // per namespace and property, by a sorter whose data goes to files
        // for that statement: in memory, indexing a million-row namespace
        // took 100 MB.
        self.conn.execute_batch(&format!(
            "PRAGMA temp_store = FILE;
             CREATE INDEX IF NOT EXISTS \"idx_{name}_{order_by}\" ON {table_sql} (\"{order_by}\", uuid);
             PRAGMA temp_store = MEMORY;"
        ))?;
        let mut select = format!("uuid, \"{order_by}\"");
        for column in columns.iter().flatten() {
            select.push_str(&format!(", \"{}\"", column.0));
        }
        let mut params: Vec<SqlValue> = Vec::new();
        let conditions = window_conditions(
            &format!("\"{order_by}\""),
            "uuid",
            query.start.as_ref(),
            query.end.as_ref(),
            query.after.as_ref(),
            self.uuids,
            &mut params,
        );
        let limit = bind(&mut params, SqlValue::Integer(query.limit as i64));
        let sql = format!(
            "SELECT {select} FROM {table_sql} WHERE {} ORDER BY \"{order_by}\", uuid LIMIT {limit}",
            conditions.join(" AND ")
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let mut rows = statement.query(params_from_iter(params))?;
        let mut found = Vec::new();
        let storage = |e: String| CatalogueError::Storage(anyhow!("{name}: {e}"));
        while let Some(row) = rows.next()? {
            let uuid = match from_sql(row.get_ref(0)?, ValueType::Uuid).map_err(storage)? {
                Some(Value::Uuid(u)) => u,
                _ => continue,
            };
            let Some(time) = scan_time(from_sql(row.get_ref(1)?, ValueType::Timestamp), |why| {
                report_unreadable_time(&name, &order_by, None, &uuid, why)
            }) else {
                continue;
            };
            // Any other value that cannot be read stops the scan, but a
            // time, which is taken as absent as a look-up takes it.
            let values = scan_values(&columns, 2, |index, column, value_type| {
                match from_sql(row.get_ref(index)?, value_type) {
                    Ok(value) => Ok(value),
                    Err(why) if value_type == ValueType::Timestamp => {
                        report_unreadable_time(&name, column, None, &uuid, &why);
                        Ok(None)
                    }
                    Err(why) => Err(storage(why)),
                }
            })?;
            found.push(ScanRow { uuid, time, values });
        }
        Ok(found)
    }

    /// The columns of these namespaces, by namespace and property.
    pub(super) fn read_property_types(
        &self,
        namespaces: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, PropertyType>>> {
        self.begin()?;
        Ok(namespaces
            .iter()
            .filter_map(|namespace| {
                let table = self.namespaces.get(namespace)?;
                Some((namespace.clone(), table.columns.clone()))
            })
            .collect())
    }

    fn read_core(&self, row: &rusqlite::Row<'_>) -> Result<Product> {
        let mut product = Product::with_uuid(Uuid::nil(), "", "");
        let mut unreadable = Vec::new();
        for (index, field) in CoreField::ALL.into_iter().enumerate() {
            let raw = row.get_ref(index)?;
            let value = match from_sql(raw, field.value_type()) {
                Ok(value) => value,
                Err(why) if field.value_type() == ValueType::Timestamp => {
                    unreadable.push((field.name(), why));
                    continue; // absent (metadata_date too, which the next write sets)
                }
                Err(why) => {
                    return Err(CatalogueError::Storage(anyhow!(
                        "core.{} holds {why}",
                        field.name()
                    )))
                }
            };
            product
                .set_core_value(field, value)
                .map_err(|e| CatalogueError::Storage(anyhow!(e)))?;
        }
        for (column, why) in unreadable {
            report_unreadable_time(
                &self.tables.core,
                column,
                Some(&product),
                &product.uuid,
                &why,
            );
        }
        Ok(product)
    }

    fn selected_namespaces(&self, namespaces: &Namespaces) -> Vec<String> {
        match namespaces {
            Namespaces::All => self.namespaces.keys().cloned().collect(),
            Namespaces::Only(names) => names
                .iter()
                .filter(|n| self.namespaces.contains_key(n.as_str()))
                .cloned()
                .collect(),
        }
    }

    /// Adds the given namespaces to products read from core, a few
    /// hundred products per query.
    fn read_namespaces(&self, products: &mut [Product], namespaces: &[String]) -> Result<()> {
        if products.is_empty() {
            return Ok(());
        }
        let positions: HashMap<String, usize> = products
            .iter()
            .enumerate()
            .map(|(position, p)| (self.uuids.text(&p.uuid), position))
            .collect();
        let keys: Vec<&String> = positions.keys().collect();
        for namespace in namespaces {
            let table = &self.namespaces[namespace];
            let columns: Vec<(&String, ValueType)> = table
                .columns
                .iter()
                .map(|(c, t)| (c, t.value_type))
                .collect();
            let mut select = String::from("uuid");
            for (column, _) in &columns {
                select.push_str(&format!(", \"{column}\""));
            }
            for chunk in keys.chunks(LOOKUP_CHUNK) {
                let sql = format!(
                    "SELECT {select} FROM {} WHERE uuid IN ({})",
                    self.tables.namespace_sql(namespace),
                    placeholders(1, chunk.len())
                );
                let mut statement = self.conn.prepare_cached(&sql)?;
                let mut rows = statement.query(params_from_iter(chunk.iter()))?;
                while let Some(row) = rows.next()? {
                    let key: String = row.get(0)?;
                    let Some(&position) = positions.get(&key) else {
                        continue;
                    };
                    let mut properties = BTreeMap::new();
                    for (index, (column, value_type)) in columns.iter().enumerate() {
                        let value = match from_sql(row.get_ref(index + 1)?, *value_type) {
                            Ok(value) => value,
                            Err(why) if *value_type == ValueType::Timestamp => {
                                let table = self.tables.namespace(namespace);
                                let product = &products[position];
                                report_unreadable_time(
                                    &table,
                                    column,
                                    Some(product),
                                    &product.uuid,
                                    &why,
                                );
                                None
                            }
                            Err(why) => {
                                return Err(CatalogueError::Storage(anyhow!(
                                    "{namespace}.{column} of product {key} holds {why}"
                                )))
                            }
                        };
                        if let Some(value) = value {
                            properties.insert((*column).clone(), value);
                        }
                    }
                    products[position]
                        .namespaces
                        .insert(namespace.clone(), properties);
                }
            }
        }
        Ok(())
    }

    /// The products whose core `column` is one of `keys` (and, with a type,
    /// of that product type), read a few hundred per query, with the given
    /// namespaces; by the value of `column` (`product_name` or `uuid`).
    fn products_in(
        &self,
        product_type: Option<&str>,
        column: CoreField,
        keys: &[String],
        namespaces: &[String],
    ) -> Result<HashMap<String, Product>> {
        self.begin()?;
        let mut products = Vec::with_capacity(keys.len());
        let first = if product_type.is_some() { 2 } else { 1 };
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let type_condition = if product_type.is_some() {
                "product_type = ?1 AND "
            } else {
                ""
            };
            let sql = format!(
                "{} WHERE {type_condition}{} IN ({})",
                self.core_select,
                column.name(),
                placeholders(first, chunk.len())
            );
            let mut statement = self.conn.prepare_cached(&sql)?;
            let params = product_type
                .into_iter()
                .map(String::from)
                .chain(chunk.iter().cloned());
            let mut rows = statement.query(params_from_iter(params))?;
            while let Some(row) = rows.next()? {
                products.push(self.read_core(row)?);
            }
        }
        self.read_namespaces(&mut products, namespaces)?;
        Ok(products
            .into_iter()
            .map(|p| {
                let key = match column {
                    CoreField::Uuid => self.uuids.text(&p.uuid),
                    _ => p.product_name.clone(),
                };
                (key, p)
            })
            .collect())
    }

    /// The SQL expression and join for a walk's time property
    /// ([`walk_time`]), and the namespace it belongs to; `None` when no
    /// product has that namespace property yet.
    fn walk_column(&self, property: &str) -> Result<Option<(String, String, Option<String>)>> {
        let time = walk_time(property, |namespace| {
            self.namespaces.get(namespace).map(|t| &t.columns)
        })
        .map_err(CatalogueError::Product)?;
        Ok(time.map(|time| match time {
            WalkTime::Core(field) => (format!("c.{}", field.name()), String::new(), None),
            WalkTime::Column { namespace, column } => (
                format!("n.\"{column}\""),
                format!(
                    " JOIN {} n ON n.uuid = c.uuid",
                    self.tables.namespace_sql(namespace)
                ),
                Some(namespace.to_string()),
            ),
        }))
    }
}
