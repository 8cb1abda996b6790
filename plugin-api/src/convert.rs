//! Conversions between the model's types and their ABI forms. Both sides of
//! the boundary use these, so a product reads back exactly as it was sent.

use crate::ffi::{FfiProduct, FfiProperty, FfiUpdate, FfiUuid, FfiValue, FfiWalkPosition};
use abi_stable::std_types::{RCowStr, ROption, RString, RVec};
use muninn_sync_model::{
    from_micros, to_micros, CoreField, Geometry, Namespace, PagePosition, Product, Timestamp,
    Update, Uuid, Value,
};
use std::collections::BTreeMap;

/// The namespace name that carries muninn's core properties across the ABI.
pub const CORE: &str = "core";

impl From<Uuid> for FfiUuid {
    fn from(uuid: Uuid) -> Self {
        FfiUuid {
            bytes: *uuid.as_bytes(),
        }
    }
}

impl From<FfiUuid> for Uuid {
    fn from(uuid: FfiUuid) -> Self {
        Uuid::from_bytes(uuid.bytes)
    }
}

/// A value in its ABI form.
pub fn value_to_ffi(value: &Value) -> FfiValue {
    match value {
        Value::Text(s) => FfiValue::Text(s.as_str().into()),
        Value::Integer(i) => FfiValue::Integer(*i),
        Value::Real(r) => FfiValue::Real(*r),
        Value::Boolean(b) => FfiValue::Boolean(*b),
        Value::Timestamp(t) => FfiValue::Timestamp(to_micros(t)),
        Value::Uuid(u) => FfiValue::Uuid((*u).into()),
        Value::Geometry(g) => FfiValue::Geometry(g.to_spatialite_blob().into()),
        Value::Json(j) => FfiValue::Json(j.to_string().into()),
    }
}

/// A value from its ABI form; `Ok(None)` for `Null`.
pub fn value_from_ffi(value: &FfiValue) -> Result<Option<Value>, String> {
    Ok(Some(match value {
        FfiValue::Null => return Ok(None),
        FfiValue::Text(s) => Value::Text(s.to_string()),
        FfiValue::Integer(i) => Value::Integer(*i),
        FfiValue::Real(r) => Value::Real(*r),
        FfiValue::Boolean(b) => Value::Boolean(*b),
        FfiValue::Timestamp(micros) => Value::Timestamp(
            from_micros(*micros).ok_or_else(|| format!("timestamp {micros} µs is out of range"))?,
        ),
        FfiValue::Uuid(u) => Value::Uuid((*u).into()),
        FfiValue::Geometry(blob) => Value::Geometry(
            Geometry::from_spatialite_blob(blob.as_slice()).map_err(|e| e.to_string())?,
        ),
        FfiValue::Json(text) => Value::Json(
            serde_json::from_str(text.as_str()).map_err(|e| format!("invalid JSON value: {e}"))?,
        ),
    }))
}

/// Where a walk or scan stands, from its ABI form; the refusal names the
/// position as `what` ("walk position"). The host and the in-memory
/// archive both read a page request through this, so both refuse the same
/// positions with the same words.
pub fn position_from_ffi(
    after: ROption<FfiWalkPosition>,
    what: &str,
) -> Result<Option<PagePosition>, String> {
    after
        .into_option()
        .map(|p| {
            let time = from_micros(p.time).ok_or_else(|| format!("{what} out of range"))?;
            Ok((time, Uuid::from(p.uuid)))
        })
        .transpose()
}

/// A walk's or scan's `start` or `end` (microseconds), from its ABI form
/// (`None`: open); the refusal names the bound as `what` ("scan end").
pub fn bound_from_ffi(value: ROption<i64>, what: &str) -> Result<Option<Timestamp>, String> {
    value
        .into_option()
        .map(|m| from_micros(m).ok_or_else(|| format!("{what} {m} µs is out of range")))
        .transpose()
}

/// A core property: its names are static and cross without a copy.
fn core_property(field: CoreField, value: FfiValue) -> FfiProperty {
    FfiProperty {
        namespace: RCowStr::from(CORE),
        name: RCowStr::from(field.name()),
        value,
    }
}

fn property(namespace: &str, name: &str, value: FfiValue) -> FfiProperty {
    FfiProperty {
        namespace: RCowStr::from(RString::from(namespace)),
        name: RCowStr::from(RString::from(name)),
        value,
    }
}

/// A product in its ABI form (null properties left out).
pub fn product_to_ffi(product: &Product) -> FfiProduct {
    let mut properties = RVec::with_capacity(CoreField::ALL.len() + 8);
    for field in CoreField::ALL {
        if let Some(value) = product.core_value(field) {
            properties.push(core_property(field, value_to_ffi(&value)));
        }
    }
    for (namespace, values) in &product.namespaces {
        for (name, value) in values {
            properties.push(property(namespace, name, value_to_ffi(value)));
        }
    }
    FfiProduct {
        properties,
        namespaces: product
            .namespaces
            .keys()
            .map(|n| RString::from(n.as_str()))
            .collect(),
    }
}

/// A product from its ABI form; names the property at fault.
pub fn product_from_ffi(ffi: &FfiProduct) -> Result<Product, String> {
    let mut product = Product::with_uuid(Uuid::nil(), "", "");
    let mut seen = [false; CoreField::ALL.len()];
    let mut namespaces: BTreeMap<String, Namespace> = ffi
        .namespaces
        .iter()
        .map(|n| (n.to_string(), Namespace::new()))
        .collect();
    for p in ffi.properties.iter() {
        let described = || format!("property {}.{}", p.namespace, p.name);
        let value = value_from_ffi(&p.value).map_err(|e| format!("{}: {e}", described()))?;
        if p.namespace.as_str() == CORE {
            let field = CoreField::from_name(p.name.as_str())
                .ok_or_else(|| format!("unknown core property \"{}\"", p.name))?;
            product.set_core_value(field, value)?;
            seen[field as usize] = true;
        } else if let Some(value) = value {
            namespaces
                .entry(p.namespace.to_string())
                .or_default()
                .insert(p.name.to_string(), value);
        }
    }
    for field in CoreField::ALL {
        if field.is_mandatory() && field != CoreField::MetadataDate && !seen[field as usize] {
            return Err(format!("core property {} is missing", field.name()));
        }
    }
    product.namespaces = namespaces;
    Ok(product)
}

/// An update in its ABI form.
pub fn update_to_ffi(update: &Update) -> FfiUpdate {
    let ffi_or_null = |v: &Option<Value>| v.as_ref().map_or(FfiValue::Null, value_to_ffi);
    let mut properties = RVec::new();
    let mut removed_namespaces = RVec::new();
    for (field, value) in &update.core {
        properties.push(core_property(*field, ffi_or_null(value)));
    }
    for (namespace, change) in &update.namespaces {
        match change {
            None => removed_namespaces.push(RString::from(namespace.as_str())),
            Some(values) => {
                for (name, value) in values {
                    properties.push(property(namespace, name, ffi_or_null(value)));
                }
                if values.is_empty() {
                    // Creates the namespace without properties.
                    properties.push(property(namespace, "", FfiValue::Null));
                }
            }
        }
    }
    FfiUpdate {
        uuid: update.uuid.into(),
        properties,
        removed_namespaces,
    }
}

/// An update from its ABI form; names the property at fault.
pub fn update_from_ffi(ffi: &FfiUpdate) -> Result<Update, String> {
    let mut update = Update::new(ffi.uuid.into());
    for p in ffi.properties.iter() {
        let value = value_from_ffi(&p.value)
            .map_err(|e| format!("property {}.{}: {e}", p.namespace, p.name))?;
        if p.namespace.as_str() == CORE {
            let field = CoreField::from_name(p.name.as_str())
                .ok_or_else(|| format!("unknown core property \"{}\"", p.name))?;
            update.core.insert(field, value);
        } else {
            let values = update
                .namespaces
                .entry(p.namespace.to_string())
                .or_insert_with(|| Some(BTreeMap::new()))
                .get_or_insert_with(BTreeMap::new);
            if !p.name.is_empty() {
                values.insert(p.name.to_string(), value);
            }
        }
    }
    for namespace in ffi.removed_namespaces.iter() {
        update.namespaces.insert(namespace.to_string(), None);
    }
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_sync_model::parse_timestamp;

    fn product() -> Product {
        let mut p = Product::new("S2MSI1C", "S2A_X");
        p.hash = Some("md5:00".into());
        p.size = Some(812345678);
        p.validity_start = Some(parse_timestamp("2024-01-02T10:00:00.123456Z").unwrap());
        p.footprint = Some(Geometry::from_wkt("POLYGON((5 52, 6 52, 6 53, 5 52))").unwrap());
        p.namespaces.insert(
            "eo".into(),
            [
                ("cloud_cover".to_string(), Value::Real(12.5)),
                ("platform".to_string(), Value::from("sentinel-2a")),
                (
                    "extra".to_string(),
                    Value::Json(serde_json::json!({"a": [1, 2]})),
                ),
            ]
            .into(),
        );
        p.namespaces.insert("empty".into(), Namespace::new());
        p
    }

    #[test]
    fn products_cross_unchanged() {
        let p = product();
        assert_eq!(product_from_ffi(&product_to_ffi(&p)).unwrap(), p);
    }

    #[test]
    fn updates_cross_unchanged() {
        let old = product();
        let mut new = product();
        new.size = None;
        new.namespaces.remove("eo");
        new.namespaces.insert(
            "stac".into(),
            [("gsd".to_string(), Value::Integer(10))].into(),
        );
        new.namespaces.insert("blank".into(), Namespace::new());
        let update = Update::between(&old, &new, false);
        assert_eq!(update_from_ffi(&update_to_ffi(&update)).unwrap(), update);
    }

    #[test]
    fn bad_products_name_the_property() {
        let mut ffi = product_to_ffi(&product());
        ffi.properties.retain(|p| p.name.as_str() != "product_name");
        assert!(product_from_ffi(&ffi).unwrap_err().contains("product_name"));
        let mut ffi = product_to_ffi(&product());
        ffi.properties
            .push(core_property(CoreField::Size, FfiValue::Text("big".into())));
        assert!(product_from_ffi(&ffi).unwrap_err().contains("size"));
        let mut ffi = product_to_ffi(&product());
        ffi.properties
            .push(property(CORE, "colour", FfiValue::Integer(1)));
        assert!(product_from_ffi(&ffi).unwrap_err().contains("colour"));
    }
}
