//! A product's properties (muninn's core namespace plus other namespaces) and
//! the changes a synchronizer makes to them.

use crate::{Geometry, Timestamp, Value, ValueType};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A namespace's properties by name. An absent property is null.
pub type Namespace = BTreeMap<String, Value>;

/// The namespace of the uuids that [`derived_uuid`] makes. Fixed forever:
/// changing it would give every derived product a new identity.
pub const PRODUCT_UUID_NAMESPACE: Uuid = Uuid::from_u128(0x6d75_6e69_6e6e_5379_6e63_0000_0000_0001);

/// A stable uuid for a product without one of its own: UUID version 5 of
/// `"<product_type>/<product_name>"` in [`PRODUCT_UUID_NAMESPACE`]. The same
/// product gets the same uuid on every run and every machine.
pub fn derived_uuid(product_type: &str, product_name: &str) -> Uuid {
    Uuid::new_v5(
        &PRODUCT_UUID_NAMESPACE,
        format!("{product_type}/{product_name}").as_bytes(),
    )
}

/// The properties of muninn's core namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CoreField {
    Uuid,
    Active,
    Hash,
    Size,
    MetadataDate,
    ArchiveDate,
    ArchivePath,
    ProductType,
    ProductName,
    PhysicalName,
    ValidityStart,
    ValidityStop,
    CreationDate,
    Footprint,
    RemoteUrl,
}

impl CoreField {
    /// In muninn's column order.
    pub const ALL: [CoreField; 15] = [
        CoreField::Uuid,
        CoreField::Active,
        CoreField::Hash,
        CoreField::Size,
        CoreField::MetadataDate,
        CoreField::ArchiveDate,
        CoreField::ArchivePath,
        CoreField::ProductType,
        CoreField::ProductName,
        CoreField::PhysicalName,
        CoreField::ValidityStart,
        CoreField::ValidityStop,
        CoreField::CreationDate,
        CoreField::Footprint,
        CoreField::RemoteUrl,
    ];

    /// The properties a synchronizer mirrors from its remote. The others are
    /// the local archive's own (`uuid` is the identity, `metadata_date` is set
    /// by the catalogue, `active`, `archive_date` and `archive_path` change
    /// when a product is pulled or stripped locally) and a sync leaves them.
    pub const MIRRORED: [CoreField; 10] = [
        CoreField::Hash,
        CoreField::Size,
        CoreField::ProductType,
        CoreField::ProductName,
        CoreField::PhysicalName,
        CoreField::ValidityStart,
        CoreField::ValidityStop,
        CoreField::CreationDate,
        CoreField::Footprint,
        CoreField::RemoteUrl,
    ];

    /// The column name in muninn's `core` table.
    pub fn name(self) -> &'static str {
        match self {
            CoreField::Uuid => "uuid",
            CoreField::Active => "active",
            CoreField::Hash => "hash",
            CoreField::Size => "size",
            CoreField::MetadataDate => "metadata_date",
            CoreField::ArchiveDate => "archive_date",
            CoreField::ArchivePath => "archive_path",
            CoreField::ProductType => "product_type",
            CoreField::ProductName => "product_name",
            CoreField::PhysicalName => "physical_name",
            CoreField::ValidityStart => "validity_start",
            CoreField::ValidityStop => "validity_stop",
            CoreField::CreationDate => "creation_date",
            CoreField::Footprint => "footprint",
            CoreField::RemoteUrl => "remote_url",
        }
    }

    pub fn from_name(name: &str) -> Option<CoreField> {
        CoreField::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn value_type(self) -> ValueType {
        match self {
            CoreField::Uuid => ValueType::Uuid,
            CoreField::Active => ValueType::Boolean,
            CoreField::Size => ValueType::Integer,
            CoreField::MetadataDate
            | CoreField::ArchiveDate
            | CoreField::ValidityStart
            | CoreField::ValidityStop
            | CoreField::CreationDate => ValueType::Timestamp,
            CoreField::Footprint => ValueType::Geometry,
            CoreField::Hash
            | CoreField::ArchivePath
            | CoreField::ProductType
            | CoreField::ProductName
            | CoreField::PhysicalName
            | CoreField::RemoteUrl => ValueType::Text,
        }
    }

    /// Whether muninn requires a value (uuid, active, metadata_date,
    /// product_type, product_name, physical_name).
    pub fn is_mandatory(self) -> bool {
        matches!(
            self,
            CoreField::Uuid
                | CoreField::Active
                | CoreField::MetadataDate
                | CoreField::ProductType
                | CoreField::ProductName
                | CoreField::PhysicalName
        )
    }
}

/// A product as a remote describes it or as the catalogue holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub uuid: Uuid,
    pub active: bool,
    pub hash: Option<String>,
    pub size: Option<i64>,
    /// Set by the catalogue on every create and update; ignored when given.
    pub metadata_date: Option<Timestamp>,
    pub archive_date: Option<Timestamp>,
    pub archive_path: Option<String>,
    pub product_type: String,
    pub product_name: String,
    /// The product's file or directory name (a basename, no '/').
    pub physical_name: String,
    pub validity_start: Option<Timestamp>,
    pub validity_stop: Option<Timestamp>,
    pub creation_date: Option<Timestamp>,
    pub footprint: Option<Geometry>,
    pub remote_url: Option<String>,
    /// Properties of namespaces other than core, by namespace name.
    pub namespaces: BTreeMap<String, Namespace>,
}

impl Product {
    /// A remote product as a synchronizer creates it: active, not in the
    /// local archive, with a [`derived_uuid`] and `physical_name` equal to
    /// `product_name` until the caller sets them.
    pub fn new(product_type: impl Into<String>, product_name: impl Into<String>) -> Product {
        let product_type = product_type.into();
        let product_name = product_name.into();
        Product::with_uuid(
            derived_uuid(&product_type, &product_name),
            product_type,
            product_name,
        )
    }

    /// Like [`Product::new`] with a uuid of the caller's.
    pub fn with_uuid(
        uuid: Uuid,
        product_type: impl Into<String>,
        product_name: impl Into<String>,
    ) -> Product {
        let product_type = product_type.into();
        let product_name = product_name.into();
        Product {
            uuid,
            active: true,
            hash: None,
            size: None,
            metadata_date: None,
            archive_date: None,
            archive_path: None,
            physical_name: product_name.clone(),
            product_type,
            product_name,
            validity_start: None,
            validity_stop: None,
            creation_date: None,
            footprint: None,
            remote_url: None,
            namespaces: BTreeMap::new(),
        }
    }

    /// A core property's value; `None` when it is null.
    pub fn core_value(&self, field: CoreField) -> Option<Value> {
        let text = |v: &Option<String>| v.clone().map(Value::Text);
        let time = |v: &Option<Timestamp>| v.map(Value::Timestamp);
        match field {
            CoreField::Uuid => Some(Value::Uuid(self.uuid)),
            CoreField::Active => Some(Value::Boolean(self.active)),
            CoreField::Hash => text(&self.hash),
            CoreField::Size => self.size.map(Value::Integer),
            CoreField::MetadataDate => time(&self.metadata_date),
            CoreField::ArchiveDate => time(&self.archive_date),
            CoreField::ArchivePath => text(&self.archive_path),
            CoreField::ProductType => Some(Value::Text(self.product_type.clone())),
            CoreField::ProductName => Some(Value::Text(self.product_name.clone())),
            CoreField::PhysicalName => Some(Value::Text(self.physical_name.clone())),
            CoreField::ValidityStart => time(&self.validity_start),
            CoreField::ValidityStop => time(&self.validity_stop),
            CoreField::CreationDate => time(&self.creation_date),
            CoreField::Footprint => self.footprint.clone().map(Value::Geometry),
            CoreField::RemoteUrl => text(&self.remote_url),
        }
    }

    /// Sets a core property, checking its type; `None` makes it null, which
    /// the mandatory properties refuse.
    pub fn set_core_value(&mut self, field: CoreField, value: Option<Value>) -> Result<(), String> {
        let value = match value {
            Some(value) => {
                let given = value.value_type();
                Some(value.coerce_to(field.value_type()).ok_or_else(|| {
                    format!(
                        "core property {} is {}, not {given}",
                        field.name(),
                        field.value_type()
                    )
                })?)
            }
            None if field.is_mandatory() => {
                return Err(format!("core property {} cannot be null", field.name()))
            }
            None => None,
        };
        let text = |v: Option<Value>| match v {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        };
        let time = |v: Option<Value>| match v {
            Some(Value::Timestamp(t)) => Some(t),
            _ => None,
        };
        match field {
            CoreField::Uuid => {
                if let Some(Value::Uuid(u)) = value {
                    self.uuid = u
                }
            }
            CoreField::Active => {
                if let Some(Value::Boolean(b)) = value {
                    self.active = b
                }
            }
            CoreField::Hash => self.hash = text(value),
            CoreField::Size => {
                self.size = match value {
                    Some(Value::Integer(i)) => Some(i),
                    _ => None,
                }
            }
            CoreField::MetadataDate => self.metadata_date = time(value),
            CoreField::ArchiveDate => self.archive_date = time(value),
            CoreField::ArchivePath => self.archive_path = text(value),
            CoreField::ProductType => self.product_type = text(value).unwrap_or_default(),
            CoreField::ProductName => self.product_name = text(value).unwrap_or_default(),
            CoreField::PhysicalName => self.physical_name = text(value).unwrap_or_default(),
            CoreField::ValidityStart => self.validity_start = time(value),
            CoreField::ValidityStop => self.validity_stop = time(value),
            CoreField::CreationDate => self.creation_date = time(value),
            CoreField::Footprint => {
                self.footprint = match value {
                    Some(Value::Geometry(g)) => Some(g),
                    _ => None,
                }
            }
            CoreField::RemoteUrl => self.remote_url = text(value),
        }
        Ok(())
    }

    /// Checks what muninn checks before it stores a product: non-empty type
    /// and name, a physical name that is a basename, a relative archive path,
    /// well-formed namespace and property names; and that the catalogue can
    /// store every value and read it back ([`Value::check_storable`]): no
    /// NUL in text, times in the years 1 to 9999, footprints on the globe.
    /// The error names the property at fault. `metadata_date` is not
    /// checked: the catalogue sets it.
    pub fn validate(&self) -> Result<(), String> {
        // Checked in place: core_value would copy every text and footprint.
        let texts = [
            (CoreField::ProductType, Some(&self.product_type)),
            (CoreField::ProductName, Some(&self.product_name)),
            (CoreField::PhysicalName, Some(&self.physical_name)),
            (CoreField::Hash, self.hash.as_ref()),
            (CoreField::ArchivePath, self.archive_path.as_ref()),
            (CoreField::RemoteUrl, self.remote_url.as_ref()),
        ];
        for (field, text) in texts {
            if let Some(text) = text {
                crate::value::check_text(text).map_err(|e| format!("{}: {e}", field.name()))?;
            }
        }
        let times = [
            (CoreField::ArchiveDate, self.archive_date),
            (CoreField::ValidityStart, self.validity_start),
            (CoreField::ValidityStop, self.validity_stop),
            (CoreField::CreationDate, self.creation_date),
        ];
        for (field, time) in times {
            if let Some(time) = time {
                crate::check_storable_timestamp(&time)
                    .map_err(|e| format!("{}: {e}", field.name()))?;
            }
        }
        if let Some(footprint) = &self.footprint {
            footprint
                .check_wgs84()
                .map_err(|e| format!("footprint: {e}"))?;
        }
        if self.product_type.is_empty() {
            return Err("product_type is empty".into());
        }
        if self.product_name.is_empty() {
            return Err("product_name is empty".into());
        }
        if self.physical_name.is_empty()
            || self.physical_name.contains('/')
            || matches!(self.physical_name.as_str(), "." | "..")
        {
            return Err(format!(
                "physical_name \"{}\" is not a file name (it must be non-empty and contain no '/')",
                self.physical_name
            ));
        }
        if let Some(path) = &self.archive_path {
            if path.starts_with('/') || path.split('/').any(|part| part == "..") {
                return Err(format!(
                    "archive_path \"{path}\" must be relative and stay inside the archive"
                ));
            }
        }
        for (namespace, properties) in &self.namespaces {
            crate::validate_namespace_name(namespace)?;
            for (name, value) in properties {
                crate::validate_property_name(name)
                    .map_err(|e| format!("namespace {namespace}: {e}"))?;
                value
                    .check_storable()
                    .map_err(|e| format!("{namespace}.{name}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// A change to one product: only the properties named here change. A value
/// of `None` makes a property null; a namespace mapped to `None` is removed
/// from the product.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub uuid: Uuid,
    pub core: BTreeMap<CoreField, Option<Value>>,
    pub namespaces: BTreeMap<String, Option<BTreeMap<String, Option<Value>>>>,
}

impl Update {
    /// A change that changes nothing yet.
    pub fn new(uuid: Uuid) -> Update {
        Update {
            uuid,
            core: BTreeMap::new(),
            namespaces: BTreeMap::new(),
        }
    }

    /// Checks the core changes as every store does before it writes any:
    /// `uuid` and `metadata_date` cannot be updated (the one names the
    /// product, the catalogue sets the other), and each changed property
    /// meets the rules a created product's does ([`Product::validate`]: a
    /// file name, a relative path, a time the catalogue reads back, ...).
    pub fn check_core(&self) -> Result<(), String> {
        for (field, value) in &self.core {
            if *field == CoreField::Uuid || *field == CoreField::MetadataDate {
                return Err(format!("core property {} cannot be updated", field.name()));
            }
            // The rest of `check` is valid, so what fails is the change.
            let mut check = Product::new("x", "x");
            check.set_core_value(*field, value.clone())?;
            check.validate()?;
        }
        Ok(())
    }

    /// What turns `old` (as the catalogue holds it, read with the namespaces
    /// the synchronizer manages) into `new` (as the remote describes it).
    /// Only [`CoreField::MIRRORED`] core properties and the namespaces of
    /// either side are compared; a namespace only `old` has is removed.
    /// With `everything`, every mirrored property and namespace of `new` is
    /// included even when equal, which is what `--force` asks for.
    ///
    /// Values are compared as the catalogue stores them: an old value has
    /// its column's type, and a new value that [`Value::coerce_to`] turns
    /// into that type is compared after the conversion. JSON writes `0` for
    /// a cloud cover of 0.0: the integer 0 for a real column that holds 0.0
    /// is no change, and would otherwise rewrite the product on every run.
    pub fn between(old: &Product, new: &Product, everything: bool) -> Update {
        let mut update = Update::new(old.uuid);
        for field in CoreField::MIRRORED {
            let wanted = new.core_value(field);
            if everything || !stored_alike(old.core_value(field).as_ref(), wanted.as_ref()) {
                update.core.insert(field, wanted);
            }
        }
        for (namespace, new_properties) in &new.namespaces {
            let old_properties = old.namespaces.get(namespace);
            let mut changes = BTreeMap::new();
            for (name, value) in new_properties {
                if everything
                    || !stored_alike(old_properties.and_then(|p| p.get(name)), Some(value))
                {
                    changes.insert(name.clone(), Some(value.clone()));
                }
            }
            for name in old_properties.into_iter().flat_map(|p| p.keys()) {
                if !new_properties.contains_key(name) {
                    changes.insert(name.clone(), None);
                }
            }
            if !changes.is_empty() || (everything && old_properties.is_none()) {
                update.namespaces.insert(namespace.clone(), Some(changes));
            }
        }
        for namespace in old.namespaces.keys() {
            if !new.namespaces.contains_key(namespace) {
                update.namespaces.insert(namespace.clone(), None);
            }
        }
        update
    }

    /// Whether applying it would change no property.
    pub fn is_empty(&self) -> bool {
        self.core.is_empty() && self.namespaces.is_empty()
    }
}

/// Whether storing `new` where the catalogue holds `old` would store the
/// same thing: equal values, or `new` converted without loss to `old`'s
/// type (its column's) equal to `old`. Both null is alike; one null is not.
fn stored_alike(old: Option<&Value>, new: Option<&Value>) -> bool {
    match (old, new) {
        (Some(old), Some(new)) if old.value_type() != new.value_type() => {
            new.clone().coerce_to(old.value_type()).as_ref() == Some(old)
        }
        (old, new) => old == new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_timestamp;

    fn product() -> Product {
        let mut p = Product::new("S2MSI1C", "S2A_X");
        p.size = Some(10);
        p.validity_start = Some(parse_timestamp("2024-01-01T00:00:00Z").unwrap());
        p.namespaces.insert(
            "eo".into(),
            [("cloud_cover".to_string(), Value::Real(12.5))].into(),
        );
        p
    }

    #[test]
    fn derived_uuids_are_stable_and_distinct() {
        assert_eq!(derived_uuid("A", "x"), derived_uuid("A", "x"));
        assert_ne!(derived_uuid("A", "x"), derived_uuid("B", "x"));
        assert_eq!(Product::new("A", "x").uuid, derived_uuid("A", "x"));
    }

    #[test]
    fn equal_products_need_no_update() {
        assert!(Update::between(&product(), &product(), false).is_empty());
    }

    #[test]
    fn force_includes_every_mirrored_property() {
        let update = Update::between(&product(), &product(), true);
        assert_eq!(update.core.len(), CoreField::MIRRORED.len());
        assert_eq!(update.namespaces["eo"].as_ref().unwrap().len(), 1);
    }

    #[test]
    fn update_names_changed_cleared_and_removed_properties_only() {
        let old = product();
        let mut new = product();
        new.size = None;
        new.remote_url = Some("https://example.org/x".into());
        new.active = false; // local state: not mirrored
        new.namespaces.clear();
        new.namespaces.insert(
            "stac".into(),
            [("platform".to_string(), Value::from("s2a"))].into(),
        );
        let update = Update::between(&old, &new, false);
        assert_eq!(
            update.core,
            [
                (CoreField::Size, None),
                (
                    CoreField::RemoteUrl,
                    Some(Value::from("https://example.org/x"))
                )
            ]
            .into()
        );
        assert_eq!(update.namespaces["eo"], None);
        assert_eq!(
            update.namespaces["stac"],
            Some([("platform".to_string(), Some(Value::from("s2a")))].into())
        );
    }

    #[test]
    fn a_value_is_compared_as_its_column_stores_it() {
        // The catalogue typed the column real (12.5 came first); an item
        // then writes a cloud cover of 0.0 as the JSON integer 0.
        let mut old = product();
        old.namespaces
            .get_mut("eo")
            .unwrap()
            .insert("cloud_cover".into(), Value::Real(0.0));
        let mut new = product();
        new.namespaces
            .get_mut("eo")
            .unwrap()
            .insert("cloud_cover".into(), Value::Integer(0));
        assert!(Update::between(&old, &new, false).is_empty());
        // A different number is still a change, and so is a value that does
        // not convert (text where the column is real), or a real where the
        // column is integer (that would lose the fraction).
        for (stored, wanted) in [
            (Value::Real(0.0), Value::Integer(1)),
            (Value::Real(0.0), Value::from("0")),
            (Value::Integer(0), Value::Real(0.5)),
            (Value::Integer(0), Value::Real(0.0)),
        ] {
            old.namespaces
                .get_mut("eo")
                .unwrap()
                .insert("cloud_cover".into(), stored.clone());
            new.namespaces
                .get_mut("eo")
                .unwrap()
                .insert("cloud_cover".into(), wanted.clone());
            let update = Update::between(&old, &new, false);
            assert_eq!(
                update.namespaces["eo"],
                Some([("cloud_cover".to_string(), Some(wanted.clone()))].into()),
                "{stored:?} -> {wanted:?}"
            );
        }
    }

    #[test]
    fn set_core_value_checks_types_and_mandatory_fields() {
        let mut p = product();
        assert!(p
            .set_core_value(CoreField::Size, Some(Value::from("big")))
            .is_err());
        assert!(p.set_core_value(CoreField::ProductName, None).is_err());
        p.set_core_value(CoreField::Size, None).unwrap();
        assert_eq!(p.size, None);
        p.set_core_value(CoreField::Hash, Some(Value::from("md5:00")))
            .unwrap();
        assert_eq!(p.core_value(CoreField::Hash), Some(Value::from("md5:00")));
    }

    #[test]
    fn validation_names_the_fault() {
        let mut p = product();
        p.physical_name = "dir/file".into();
        assert!(p.validate().unwrap_err().contains("physical_name"));
        let mut p = product();
        p.namespaces.insert("Bad".into(), Namespace::new());
        assert!(p.validate().unwrap_err().contains("Bad"));
    }

    #[test]
    fn validation_refuses_what_the_catalogue_cannot_read_back() {
        let late = parse_timestamp("9999-12-31T23:59:59-01:00").unwrap();
        let mut p = product();
        p.validity_stop = Some(late);
        let message = p.validate().unwrap_err();
        assert!(
            message.starts_with("validity_stop: 10000-01-01"),
            "{message}"
        );
        let mut p = product();
        p.namespaces
            .get_mut("eo")
            .unwrap()
            .insert("sensed".into(), Value::Timestamp(late));
        assert!(p.validate().unwrap_err().starts_with("eo.sensed: "));
        for field in [
            CoreField::ProductType,
            CoreField::ProductName,
            CoreField::PhysicalName,
        ] {
            let mut p = product();
            p.set_core_value(field, Some(Value::from("S2\0X"))).unwrap();
            let message = p.validate().unwrap_err();
            assert!(message.starts_with(field.name()), "{message}");
            assert!(message.contains("NUL"), "{message}");
        }
        let mut p = product();
        p.footprint = Some(Geometry::from_wkt("POINT(181 0)").unwrap());
        assert!(p
            .validate()
            .unwrap_err()
            .starts_with("footprint: longitude 181"));
        // The catalogue sets metadata_date; a wrong one given is ignored.
        let mut p = product();
        p.metadata_date = Some(late);
        assert!(p.validate().is_ok());
    }
}
