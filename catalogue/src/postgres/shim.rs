//! TEMPORARY: stands in for model's namespace rules until they land.
use muninn_sync_model::{PropertyType, Value, ValueType};
use std::collections::BTreeMap;

pub struct NamespaceWrite {
    pub create_table: bool,
    pub values: Vec<PlannedValue>,
}
pub struct PlannedValue {
    pub column: String,
    pub value: Option<Value>,
    pub change: Option<ColumnChange>,
}
pub enum ColumnChange {
    Add(ValueType),
    Widen(ValueType),
    TakeAsJson,
}

pub fn plan_namespace_write(
    namespace: &str,
    existing: Option<&BTreeMap<String, PropertyType>>,
    properties: &BTreeMap<String, Option<Value>>,
) -> Result<NamespaceWrite, String> {
    muninn_sync_model::validate_namespace_name(namespace)?;
    let mut values = Vec::new();
    for (name, value) in properties {
        muninn_sync_model::validate_property_name(name)
            .map_err(|e| format!("namespace {namespace}: {e}"))?;
        if let Some(value) = value {
            value
                .check_storable()
                .map_err(|e| format!("{namespace}.{name}: {e}"))?;
        }
        let column = existing.and_then(|e| e.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)));
        if let Some((c, _)) = column {
            if c != name {
                return Err(format!("property {namespace}.{name} clashes with the existing column {namespace}.{c}: column names ignore case, so one of the two spellings has to go"));
            }
        }
        if properties
            .keys()
            .any(|o| o != name && o.eq_ignore_ascii_case(name))
        {
            return Err(format!("namespace {namespace} has properties whose names differ only in case ({name}): column names ignore case"));
        }
        match (column, value) {
            (Some((c, t)), Some(Value::Real(r)))
                if t.value_type == ValueType::Integer && !t.fixed =>
            {
                values.push(PlannedValue {
                    column: c.clone(),
                    value: Some(Value::Real(*r)),
                    change: Some(ColumnChange::Widen(ValueType::Real)),
                })
            }
            (Some((c, t)), Some(Value::Json(j))) if t.value_type == ValueType::Text && t.fixed => {
                values.push(PlannedValue {
                    column: c.clone(),
                    value: Some(Value::Json(j.clone())),
                    change: Some(ColumnChange::TakeAsJson),
                })
            }
            (Some((c, t)), Some(v)) => {
                let stored = v.clone().coerce_to(t.value_type).ok_or_else(|| {
                    format!(
                        "property {namespace}.{name} is {} in the catalogue, not {}",
                        t.value_type,
                        v.value_type()
                    )
                })?;
                values.push(PlannedValue {
                    column: c.clone(),
                    value: Some(stored),
                    change: None,
                })
            }
            (Some((c, _)), None) => values.push(PlannedValue {
                column: c.clone(),
                value: None,
                change: None,
            }),
            (None, None) => {}
            (None, Some(v)) => values.push(PlannedValue {
                column: name.clone(),
                value: Some(v.clone()),
                change: Some(ColumnChange::Add(v.value_type())),
            }),
        }
    }
    Ok(NamespaceWrite {
        create_table: existing.is_none(),
        values,
    })
}
