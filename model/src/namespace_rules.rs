//! How a product's namespace properties go into the catalogue: the checks
//! of their names and values, the column each value goes to, the type a
//! new column gets, and when a column's type changes. Every store (SQLite,
//! PostgreSQL, the in-memory archive plugin authors test with) asks
//! [`plan_namespace_write`] and only carries the plan out, so that a value
//! one store takes, every store takes, with the same message when it does
//! not.

use crate::{validate_namespace_name, validate_property_name, PropertyType, Value, ValueType};
use std::collections::BTreeMap;

/// What writing these properties into a namespace takes: the table, the
/// columns to add or retype, and the values as they will be stored. Made
/// by [`plan_namespace_write`] before anything changes, so that a refused
/// property leaves the namespace as it was.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceWrite {
    /// The namespace has no table yet: the store creates it first, even when
    /// no value is written (a product with an empty namespace still has it).
    pub create_table: bool,
    /// One for each property to write, in the properties' order. A null
    /// for a column that does not exist is left out: there is nothing to
    /// clear.
    pub values: Vec<PlannedValue>,
}

/// One property of a [`NamespaceWrite`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedValue {
    /// The column, spelt as it exists (the property's own name for a new
    /// one). Since a spelling that differs only in case is refused, it is
    /// also the property's name.
    pub column: String,
    /// The value as it will be stored (`None`: null): converted to the
    /// column's type where that loses nothing ([`Value::coerce_to`]: an
    /// integer in a real column), a real kept as real where the column is
    /// widened, JSON kept as JSON where muninn's text column is taken as
    /// JSON ([`ColumnChange::TakeAsJson`]).
    pub value: Option<Value>,
    /// What has to change in the column before the value is written.
    pub change: Option<ColumnChange>,
}

/// A change to a namespace's column that a write needs first. The store
/// records the column's new type so that it reads the values back as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnChange {
    /// A new column of this type: the type of the first value written to
    /// the property, which every later value must then have (or be
    /// converted to without loss).
    Add(ValueType),
    /// The column becomes this type: JSON writes 12.0 as 12, so an integer
    /// column that met whole numbers first becomes real when a fraction
    /// comes. Only a column muninn-sync made is widened; one muninn's
    /// namespace schema declared ([`PropertyType::fixed`]) keeps its type,
    /// which muninn checks again when it reads the value.
    Widen(ValueType),
    /// muninn declares its JSON properties TEXT, as its text ones: its text
    /// column is taken as JSON from the first JSON value on, if every value
    /// it holds is JSON text (none yet, or muninn's `json.dumps`). Only the
    /// store can tell that: it checks, refuses the value with
    /// [`text_is_not_json`] when the column holds other text, and otherwise
    /// records the column as JSON (no longer fixed).
    TakeAsJson,
}

/// Plans the write of `properties` (`None`: null) into `namespace`, whose
/// table has the columns `existing` (name to type; `None` when the table
/// does not exist). Nothing is stored: the plan says what the store does.
///
/// Refused, with the message a user sees (naming the namespace and
/// property): an invalid namespace or property name, a value the catalogue
/// cannot store and read back ([`Value::check_storable`]), a property
/// whose name differs only in case from an existing column or from another
/// of the properties (column names ignore case, in SQLite as in muninn's
/// unquoted PostgreSQL SQL), and a value of another type than its column's
/// that cannot be converted without loss.
pub fn plan_namespace_write(
    namespace: &str,
    existing: Option<&BTreeMap<String, PropertyType>>,
    properties: &BTreeMap<String, Option<Value>>,
) -> Result<NamespaceWrite, String> {
    validate_namespace_name(namespace)?;
    let mut values = Vec::with_capacity(properties.len());
    for (name, value) in properties {
        validate_property_name(name).map_err(|e| format!("namespace {namespace}: {e}"))?;
        if let Some(value) = value {
            value
                .check_storable()
                .map_err(|e| format!("{namespace}.{name}: {e}"))?;
        }
        let column = existing.and_then(|columns| find_column(columns, name));
        if let Some((column, _)) = column {
            if column != name {
                return Err(format!(
                    "property {namespace}.{name} clashes with the existing column {namespace}.{column}: \
                     column names ignore case, so one of the two spellings has to go"
                ));
            }
        }
        if properties
            .keys()
            .any(|other| other != name && other.eq_ignore_ascii_case(name))
        {
            return Err(format!(
                "namespace {namespace} has properties whose names differ only in case ({name}): \
                 column names ignore case"
            ));
        }
        let planned = |value: Option<Value>, change: Option<ColumnChange>| PlannedValue {
            column: name.clone(),
            value,
            change,
        };
        values.push(match (column, value) {
            (Some((_, column)), Some(Value::Real(real)))
                if column.value_type == ValueType::Integer && !column.fixed =>
            {
                planned(
                    Some(Value::Real(*real)),
                    Some(ColumnChange::Widen(ValueType::Real)),
                )
            }
            (Some((_, column)), Some(Value::Json(json)))
                if column.value_type == ValueType::Text && column.fixed =>
            {
                planned(
                    Some(Value::Json(json.clone())),
                    Some(ColumnChange::TakeAsJson),
                )
            }
            (Some((_, column)), Some(value)) => {
                let value_type = column.value_type;
                let stored = value.clone().coerce_to(value_type).ok_or_else(|| {
                    format!(
                        "property {namespace}.{name} is {value_type} in the catalogue, not {}",
                        value.value_type()
                    )
                })?;
                planned(Some(stored), None)
            }
            (Some(_), None) => planned(None, None),
            (None, None) => continue, // null in a column that does not exist: nothing to store
            (None, Some(value)) => planned(
                Some(value.clone()),
                Some(ColumnChange::Add(value.value_type())),
            ),
        });
    }
    Ok(NamespaceWrite {
        create_table: existing.is_none(),
        values,
    })
}

/// The existing column that `name` refers to, and its type: column names
/// ignore case (SQLite compares them so, and muninn's PostgreSQL SQL does
/// not quote them), so `cloudCover` and `cloudcover` are one column.
pub fn find_column<'c>(
    columns: &'c BTreeMap<String, PropertyType>,
    name: &str,
) -> Option<(&'c String, &'c PropertyType)> {
    if let Some(exact) = columns.get_key_value(name) {
        return Some(exact); // the common case, without a scan
    }
    columns
        .iter()
        .find(|(column, _)| column.eq_ignore_ascii_case(name))
}

/// The refusal of a JSON value for muninn's text column `namespace.property`
/// that holds text which is not JSON (see [`ColumnChange::TakeAsJson`]).
pub fn text_is_not_json(namespace: &str, property: &str) -> String {
    format!(
        "property {namespace}.{property} is text in the catalogue, not json \
         (muninn made the column, and it holds text that is not JSON)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(list: &[(&str, ValueType, bool)]) -> BTreeMap<String, PropertyType> {
        list.iter()
            .map(|(name, value_type, fixed)| {
                let column = PropertyType {
                    value_type: *value_type,
                    fixed: *fixed,
                };
                (name.to_string(), column)
            })
            .collect()
    }

    fn properties(list: &[(&str, Option<Value>)]) -> BTreeMap<String, Option<Value>> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect()
    }

    fn plan(
        existing: Option<&BTreeMap<String, PropertyType>>,
        list: &[(&str, Option<Value>)],
    ) -> Result<NamespaceWrite, String> {
        plan_namespace_write("eo", existing, &properties(list))
    }

    fn one(planned: Result<NamespaceWrite, String>) -> PlannedValue {
        let mut write = planned.unwrap();
        assert_eq!(write.values.len(), 1, "{write:?}");
        write.values.remove(0)
    }

    #[test]
    fn a_new_namespace_gets_its_table_and_a_column_of_each_first_value_type() {
        let write = plan(
            None,
            &[
                ("cloud", Some(Value::Integer(3))),
                ("gone", None),
                ("platform", Some(Value::Text("S2A".into()))),
            ],
        )
        .unwrap();
        assert!(write.create_table);
        assert_eq!(
            write.values,
            [
                PlannedValue {
                    column: "cloud".into(),
                    value: Some(Value::Integer(3)),
                    change: Some(ColumnChange::Add(ValueType::Integer)),
                },
                PlannedValue {
                    column: "platform".into(),
                    value: Some(Value::Text("S2A".into())),
                    change: Some(ColumnChange::Add(ValueType::Text)),
                },
            ],
            "a null for a column that does not exist is left out"
        );
        let empty = plan(None, &[]).unwrap();
        assert!(empty.create_table && empty.values.is_empty());
    }

    #[test]
    fn an_existing_column_takes_its_own_type_or_a_lossless_conversion() {
        let existing = columns(&[
            ("cloud", ValueType::Real, false),
            ("name", ValueType::Text, false),
        ]);
        let planned = one(plan(
            Some(&existing),
            &[("cloud", Some(Value::Integer(12)))],
        ));
        assert_eq!(planned.value, Some(Value::Real(12.0)));
        assert_eq!(planned.change, None);
        let write = plan(Some(&existing), &[("name", None)]).unwrap();
        assert!(!write.create_table);
        assert_eq!(write.values[0].value, None, "a null clears the column");
        let refused = plan(Some(&existing), &[("name", Some(Value::Integer(1)))]).unwrap_err();
        assert_eq!(
            refused,
            "property eo.name is text in the catalogue, not integer"
        );
    }

    #[test]
    fn an_integer_column_muninn_sync_made_is_widened_when_a_fraction_comes() {
        let existing = columns(&[("cloud", ValueType::Integer, false)]);
        let planned = one(plan(Some(&existing), &[("cloud", Some(Value::Real(12.5)))]));
        assert_eq!(planned.value, Some(Value::Real(12.5)));
        assert_eq!(planned.change, Some(ColumnChange::Widen(ValueType::Real)));
    }

    #[test]
    fn a_column_muninn_declared_keeps_its_type() {
        let existing = columns(&[("n", ValueType::Integer, true)]);
        let refused = plan(Some(&existing), &[("n", Some(Value::Real(1.5)))]).unwrap_err();
        assert_eq!(
            refused,
            "property eo.n is integer in the catalogue, not real"
        );
        let whole = one(plan(Some(&existing), &[("n", Some(Value::Integer(2)))]));
        assert_eq!(whole.change, None);
    }

    #[test]
    fn json_goes_into_a_text_column_only_when_muninn_declared_it() {
        let json = Value::Json(serde_json::json!({"a": 1}));
        let muninns = columns(&[("t", ValueType::Text, true)]);
        let planned = one(plan(Some(&muninns), &[("t", Some(json.clone()))]));
        assert_eq!(planned.value, Some(json.clone()));
        assert_eq!(planned.change, Some(ColumnChange::TakeAsJson));
        let ours = columns(&[("t", ValueType::Text, false)]);
        let refused = plan(Some(&ours), &[("t", Some(json))]).unwrap_err();
        assert_eq!(refused, "property eo.t is text in the catalogue, not json");
        assert_eq!(
            text_is_not_json("eo", "t"),
            "property eo.t is text in the catalogue, not json \
             (muninn made the column, and it holds text that is not JSON)"
        );
    }

    #[test]
    fn names_that_differ_only_in_case_are_one_column() {
        let existing = columns(&[("cloudCover", ValueType::Real, false)]);
        assert_eq!(
            find_column(&existing, "CLOUDCOVER").map(|(c, _)| c.as_str()),
            Some("cloudCover")
        );
        let clash = plan(Some(&existing), &[("cloudcover", Some(Value::Real(1.0)))]).unwrap_err();
        assert_eq!(
            clash,
            "property eo.cloudcover clashes with the existing column eo.cloudCover: \
             column names ignore case, so one of the two spellings has to go"
        );
        let within = plan(
            None,
            &[
                ("Cloud", Some(Value::Real(1.0))),
                ("cloud", Some(Value::Real(2.0))),
            ],
        )
        .unwrap_err();
        assert_eq!(
            within,
            "namespace eo has properties whose names differ only in case (Cloud): \
             column names ignore case"
        );
    }

    #[test]
    fn names_and_values_the_catalogue_cannot_hold_are_refused() {
        let bad_namespace = plan_namespace_write("Eo", None, &properties(&[])).unwrap_err();
        assert!(
            bad_namespace.starts_with("invalid namespace name \"Eo\""),
            "{bad_namespace}"
        );
        let bad_property = plan(None, &[("x y", Some(Value::Integer(1)))]).unwrap_err();
        assert!(
            bad_property.starts_with("namespace eo: invalid property name \"x y\""),
            "{bad_property}"
        );
        let nul = plan(None, &[("t", Some(Value::Text("a\0b".into())))]).unwrap_err();
        assert!(nul.starts_with("eo.t: "), "{nul}");
    }

    #[test]
    fn the_first_refused_property_in_name_order_is_the_one_named() {
        let existing = columns(&[("a", ValueType::Text, false)]);
        let refused = plan(
            Some(&existing),
            &[
                ("a", Some(Value::Integer(1))),
                ("b", Some(Value::Text("a\0".into()))),
            ],
        )
        .unwrap_err();
        assert!(refused.starts_with("property eo.a is text"), "{refused}");
    }
}
