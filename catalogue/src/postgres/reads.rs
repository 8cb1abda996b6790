//! Reading the catalogue: look-ups by name and uuid, walks, scans and the
//! namespaces' column types. A read writes the held-back changes first
//! when they touch what it reads (walks and scans: always), so that it
//! sees the batch as the host left it.

use super::schema::quoted;
use super::values::{read_value, select_expression, timestamp_text};
use super::Store;
use crate::lookup::{scan_time, scan_values, take_in_order};
use crate::{CatalogueError, Namespaces, Result, ScanQuery, ScanRow, WalkQuery};
use muninn_sync_model::{
    find_column, scan_order, walk_time, CoreField, Product, PropertyType, Timestamp, Uuid,
    ValueType, WalkTime,
};
use postgres::types::ToSql;
use std::collections::{BTreeMap, HashMap};

/// Reports a stored value muninn-sync cannot read as its column's type,
/// which a look-up then takes as absent, as on SQLite: the run goes on,
/// and a sync that sets the property writes over it.
fn report_unreadable(table: &str, column: &str, uuid: &Uuid, why: &str) {
    tracing::warn!(
        table,
        column,
        uuid = %uuid.simple(),
        error = %muninn_sync_model::printable(why),
        "the catalogue holds a value muninn-sync cannot read; it is taken as absent \
         (a sync that sets the property writes over it)"
    );
}

/// The conditions of one page of a window over the timestamp column
/// `time`, paged by (time, `uuid`) as walks and scans are (see
/// [`WalkQuery`]); parameters from `$first` on, as text cast in SQL.
fn window_conditions(
    time: &str,
    uuid: &str,
    start: Option<&Timestamp>,
    end: Option<&Timestamp>,
    after: Option<&(Timestamp, Uuid)>,
    params: &mut Vec<String>,
) -> Vec<String> {
    let bind = |params: &mut Vec<String>, value: String| {
        params.push(value);
        format!("${}", params.len())
    };
    let mut conditions = vec![format!("{time} IS NOT NULL")];
    if let Some(start) = start {
        let p = bind(params, timestamp_text(start));
        conditions.push(format!("{time} >= {p}::text::timestamp"));
    }
    if let Some(end) = end {
        let p = bind(params, timestamp_text(end));
        conditions.push(format!("{time} < {p}::text::timestamp"));
    }
    if let Some((at, last)) = after {
        let t = bind(params, timestamp_text(at));
        let u = bind(params, last.hyphenated().to_string());
        // A row comparison, which the server takes as the bound of an
        // index on (time, uuid): each page starts where the last ended
        // instead of reading the index again from the window's start.
        conditions.push(format!(
            "({time}, {uuid}) > ({t}::text::timestamp, {u}::text::uuid)"
        ));
    }
    conditions
}

impl Store {
    /// A product from a row of `core_select`; a time or footprint that
    /// cannot be read is reported and left out.
    fn read_core(&self, row: &postgres::Row) -> Result<Product> {
        let mut product = Product::with_uuid(Uuid::nil(), "", "");
        let uuid: Uuid = row.try_get(0)?;
        for (index, field) in CoreField::ALL.into_iter().enumerate() {
            let value = match read_value(row, index, field.value_type()) {
                Ok(value) => value,
                Err(why) if !field.is_mandatory() => {
                    report_unreadable(&self.tables.core, field.name(), &uuid, &why);
                    continue;
                }
                Err(why) => {
                    return Err(self.storage(format!(
                        "{}.{} of {uuid} holds {why}",
                        self.tables.core,
                        field.name()
                    )))
                }
            };
            product.set_core_value(field, value).map_err(|e| {
                self.storage(format!(
                    "{}.{} of {uuid}: {e}",
                    self.tables.core,
                    field.name()
                ))
            })?;
        }
        Ok(product)
    }

    pub(super) fn selected_namespaces(&self, namespaces: &Namespaces) -> Vec<String> {
        match namespaces {
            Namespaces::All => self.namespaces.keys().cloned().collect(),
            Namespaces::Only(names) => names
                .iter()
                .filter(|n| self.namespaces.contains_key(n.as_str()))
                .cloned()
                .collect(),
        }
    }

    /// Adds the given namespaces to products read from core: one query per
    /// namespace for all of them.
    fn read_namespaces(&mut self, products: &mut [Product], namespaces: &[String]) -> Result<()> {
        if products.is_empty() {
            return Ok(());
        }
        let positions: HashMap<Uuid, usize> = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.uuid, i))
            .collect();
        let keys: Vec<Uuid> = positions.keys().copied().collect();
        for namespace in namespaces {
            let table = &self.namespaces[namespace];
            let columns: Vec<(String, ValueType)> = table
                .columns
                .iter()
                .map(|(c, t)| (c.clone(), t.value_type))
                .collect();
            let mut select = String::from("uuid");
            for (column, value_type) in &columns {
                select.push_str(", ");
                select.push_str(&select_expression(&quoted(column), *value_type));
            }
            let sql = format!(
                "SELECT {select} FROM {} WHERE uuid = ANY($1)",
                self.tables.namespace_sql(namespace)
            );
            let statement = self.statement(&sql)?;
            let rows = self.client.query(&statement, &[&keys])?;
            let table_name = self.tables.namespace_sql(namespace);
            for row in rows {
                let uuid: Uuid = row.try_get(0)?;
                let Some(&position) = positions.get(&uuid) else {
                    continue;
                };
                let mut properties = BTreeMap::new();
                for (index, (column, value_type)) in columns.iter().enumerate() {
                    match read_value(&row, index + 1, *value_type) {
                        Ok(Some(value)) => {
                            properties.insert(column.clone(), value);
                        }
                        Ok(None) => {}
                        Err(why) => report_unreadable(&table_name, column, &uuid, &why),
                    }
                }
                products[position]
                    .namespaces
                    .insert(namespace.clone(), properties);
            }
        }
        Ok(())
    }

    /// The products whose core `column` (product_name within a type, or
    /// uuid) is one of `keys`, with the given namespaces.
    /// Only the caller knows whether held-back changes touch them: it
    /// writes those first.
    fn products_where(
        &mut self,
        condition: &str,
        params: &[&(dyn ToSql + Sync)],
        namespaces: &[String],
    ) -> Result<Vec<Product>> {
        self.begin()?;
        let sql = format!("{} WHERE {condition}", self.core_select);
        let statement = self.statement(&sql)?;
        let rows = self.client.query(&statement, params)?;
        let mut products = rows
            .iter()
            .map(|row| self.read_core(row))
            .collect::<Result<Vec<_>>>()?;
        self.read_namespaces(&mut products, namespaces)?;
        Ok(products)
    }

    pub(super) fn find_by_name(
        &mut self,
        product_type: &str,
        product_names: &[&str],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>> {
        let namespaces = self.selected_namespaces(namespaces);
        if self.pending.touches_names(product_type, product_names) {
            self.flush_held_back()?;
        }
        let condition = "product_type = $1 AND product_name = ANY($2)";
        let mut products =
            self.products_where(condition, &[&product_type, &product_names], &namespaces)?;
        // A product found by its name may have a held-back update.
        if self
            .pending
            .touches_products(products.iter().map(|p| p.uuid))
        {
            self.flush_held_back()?;
            products =
                self.products_where(condition, &[&product_type, &product_names], &namespaces)?;
        }
        let mut found: HashMap<String, Product> = products
            .into_iter()
            .map(|p| (p.product_name.clone(), p))
            .collect();
        let names: Vec<String> = product_names.iter().map(|n| n.to_string()).collect();
        Ok(take_in_order(&mut found, &names))
    }

    pub(super) fn find_by_uuid(
        &mut self,
        uuids: &[Uuid],
        namespaces: &Namespaces,
    ) -> Result<Vec<Option<Product>>> {
        let namespaces = self.selected_namespaces(namespaces);
        if self.pending.touches_products(uuids.iter().copied()) {
            self.flush_held_back()?;
        }
        let products = self.products_where("uuid = ANY($1)", &[&uuids], &namespaces)?;
        let mut found: HashMap<Uuid, Product> = products.into_iter().map(|p| (p.uuid, p)).collect();
        Ok(take_in_order(&mut found, uuids))
    }

    /// The SQL expression and join for a walk's time property (the
    /// model's rule picks the column), and the namespace it belongs to.
    fn walk_column(&self, property: &str) -> Result<Option<(String, String, Option<String>)>> {
        let time = walk_time(property, |namespace| {
            self.namespaces.get(namespace).map(|t| &t.columns)
        })
        .map_err(CatalogueError::Product)?;
        Ok(time.map(|time| match time {
            WalkTime::Core(field) => (format!("c.{}", field.name()), String::new(), None),
            WalkTime::Column { namespace, column } => (
                format!("n.{}", quoted(column)),
                format!(
                    " JOIN {} n ON n.uuid = c.uuid",
                    self.tables.namespace_sql(namespace)
                ),
                Some(namespace.to_string()),
            ),
        }))
    }

    pub(super) fn walk_page(
        &mut self,
        query: &WalkQuery,
        namespaces: &Namespaces,
    ) -> Result<Vec<Product>> {
        self.flush_held_back()?;
        self.begin()?;
        let Some((column, join, own_namespace)) = self.walk_column(&query.property)? else {
            return Ok(Vec::new()); // no product has that namespace property yet
        };
        let mut params = vec![query.product_type.clone()];
        let mut conditions = vec!["c.product_type = $1".to_string()];
        conditions.extend(window_conditions(
            &column,
            "c.uuid",
            query.start.as_ref(),
            query.end.as_ref(),
            query.after.as_ref(),
            &mut params,
        ));
        let sql = format!(
            "SELECT c.uuid FROM {} c{join} WHERE {} ORDER BY {column}, c.uuid LIMIT {}",
            self.tables.core,
            conditions.join(" AND "),
            query.limit
        );
        let statement = self.statement(&sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let uuids: Vec<Uuid> = self
            .client
            .query(&statement, &refs)?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        let mut namespaces = self.selected_namespaces(namespaces);
        if let Some(own) = own_namespace {
            if !namespaces.contains(&own) {
                namespaces.push(own);
            }
        }
        let found = self.find_by_uuid(&uuids, &Namespaces::Only(namespaces))?;
        Ok(found.into_iter().flatten().collect())
    }

    pub(super) fn scan_page(&mut self, query: &ScanQuery) -> Result<Vec<ScanRow>> {
        self.flush_held_back()?;
        self.begin()?;
        let table = self.namespaces.get(&query.namespace);
        let Some(order_by) =
            scan_order(&query.namespace, &query.order_by, table.map(|t| &t.columns))
                .map_err(CatalogueError::Product)?
                .cloned()
        else {
            return Ok(Vec::new()); // nothing has that namespace or column yet
        };
        let table = &self.namespaces[&query.namespace];
        let find = |name: &str| find_column(&table.columns, name);
        let columns: Vec<Option<(String, ValueType)>> = query
            .properties
            .iter()
            .map(|p| find(p).map(|(c, t)| (c.clone(), t.value_type)))
            .collect();
        let table_sql = self.tables.namespace_sql(&query.namespace);
        let bare = self
            .tables
            .split(&format!("{}{}", self.tables.prefix, query.namespace))
            .1;
        // Ordered by (time, uuid) straight from an index, as on SQLite;
        // made once per run, not before every page.
        let index = quoted(&format!("idx_{bare}_{order_by}"));
        if !self.indexes_made.contains(&index) {
            self.client.batch_execute(&format!(
                "CREATE INDEX IF NOT EXISTS {index} ON {table_sql} ({}, uuid)",
                quoted(&order_by)
            ))?;
            self.indexes_made.insert(index);
        }
        let mut select = format!("uuid, {}", quoted(&order_by));
        for (column, value_type) in columns.iter().flatten() {
            select.push_str(", ");
            select.push_str(&select_expression(&quoted(column), *value_type));
        }
        let mut params = Vec::new();
        let conditions = window_conditions(
            &quoted(&order_by),
            "uuid",
            query.start.as_ref(),
            query.end.as_ref(),
            query.after.as_ref(),
            &mut params,
        );
        let sql = format!(
            "SELECT {select} FROM {table_sql} WHERE {} ORDER BY {}, uuid LIMIT {}",
            conditions.join(" AND "),
            quoted(&order_by),
            query.limit
        );
        let statement = self.statement(&sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self.client.query(&statement, &refs)?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            let uuid: Uuid = row.try_get(0)?;
            let Some(time) = scan_time(read_value(&row, 1, ValueType::Timestamp), |why| {
                report_unreadable(&table_sql, &order_by, &uuid, why)
            }) else {
                continue;
            };
            let values = scan_values(&columns, 2, |index, column, value_type| {
                Ok::<_, CatalogueError>(read_value(&row, index, value_type).unwrap_or_else(|why| {
                    report_unreadable(&table_sql, column, &uuid, &why);
                    None
                }))
            })?;
            found.push(ScanRow { uuid, time, values });
        }
        Ok(found)
    }

    pub(super) fn column_types(
        &mut self,
        namespaces: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, PropertyType>>> {
        // Held-back changes made their tables and columns when held.
        self.begin()?;
        Ok(namespaces
            .iter()
            .filter_map(|namespace| {
                let table = self.namespaces.get(namespace)?;
                Some((namespace.clone(), table.columns.clone()))
            })
            .collect())
    }
}
