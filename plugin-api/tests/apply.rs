//! `Archive::apply_all` and `apply_found`, the bulk form of `apply`: the
//! same catalogue as applying products one after the other, with one
//! look-up per product type.

use muninn_sync_plugin_api::memory::MemoryArchive;
use muninn_sync_plugin_api::{Outcome, Product, Value};

fn product(name: &str, size: i64, cloud: f64) -> Product {
    let mut product = Product::new("S2MSI1C", name);
    product.size = Some(size);
    product.namespaces.insert(
        "eo".into(),
        [("cloud_cover".to_string(), Value::Real(cloud))].into(),
    );
    product
}

fn outcomes(results: Vec<anyhow::Result<Outcome>>) -> Vec<Outcome> {
    results.into_iter().map(|r| r.unwrap()).collect()
}

#[test]
fn creates_updates_and_leaves_unchanged_as_apply_would() {
    let mut memory = MemoryArchive::new();
    memory.insert(product("same", 1, 1.0)).unwrap();
    memory.insert(product("changed", 1, 1.0)).unwrap();
    let remote = [
        product("new", 5, 5.0),
        product("same", 1, 1.0),
        product("changed", 2, 1.0),
    ];
    let done = outcomes(memory.archive().apply_all(&remote, false, &[]).unwrap());
    assert_eq!(
        done,
        [Outcome::Created, Outcome::Unchanged, Outcome::Updated]
    );
    assert_eq!(memory.product("S2MSI1C", "new").unwrap().size, Some(5));
    assert_eq!(memory.product("S2MSI1C", "changed").unwrap().size, Some(2));
    let report = memory.take_report();
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (1, 1, 1)
    );
}

#[test]
fn a_name_given_twice_is_created_once_then_updated() {
    let mut memory = MemoryArchive::new();
    let remote = [
        product("a", 1, 1.0),
        product("b", 1, 1.0),
        product("a", 2, 1.0),
    ];
    let done = outcomes(memory.archive().apply_all(&remote, false, &[]).unwrap());
    assert_eq!(done, [Outcome::Created, Outcome::Created, Outcome::Updated]);
    assert_eq!(memory.product("S2MSI1C", "a").unwrap().size, Some(2));
    assert_eq!(memory.len(), 2);
}

#[test]
fn force_writes_every_product_and_sets_its_metadata_date() {
    let mut memory = MemoryArchive::new();
    memory.insert(product("a", 1, 1.0)).unwrap();
    let before = memory.product("S2MSI1C", "a").unwrap().metadata_date;
    std::thread::sleep(std::time::Duration::from_millis(2));
    let done = outcomes(
        memory
            .archive()
            .apply_all(&[product("a", 1, 1.0)], true, &[])
            .unwrap(),
    );
    assert_eq!(done, [Outcome::Updated]);
    let after = memory.product("S2MSI1C", "a").unwrap();
    assert!(
        after.metadata_date > before,
        "{:?} {before:?}",
        after.metadata_date
    );
    assert_eq!(after.size, Some(1));
    assert_eq!(memory.take_report().updated, 1);
}

#[test]
fn only_managed_namespaces_and_the_products_own_are_compared() {
    let mut memory = MemoryArchive::new();
    let mut stored = product("a", 1, 1.0);
    // Written by another tool: not this synchronizer's to remove.
    stored
        .namespaces
        .insert("tags".into(), [("k".to_string(), Value::Integer(1))].into());
    // Managed by this synchronizer and gone from the remote: removed.
    stored
        .namespaces
        .insert("old".into(), [("x".to_string(), Value::Integer(1))].into());
    memory.insert(stored).unwrap();
    // Another product of the same look-up has `tags`: it is read for both,
    // and must still be left alone on the product that lacks it.
    let mut tagged = product("b", 1, 1.0);
    tagged
        .namespaces
        .insert("tags".into(), [("k".to_string(), Value::Integer(2))].into());
    let done = outcomes(
        memory
            .archive()
            .apply_all(&[product("a", 1, 1.0), tagged], false, &["old"])
            .unwrap(),
    );
    assert_eq!(done, [Outcome::Updated, Outcome::Created]);
    let a = memory.product("S2MSI1C", "a").unwrap();
    assert!(a.namespaces.contains_key("tags"), "{:?}", a.namespaces);
    assert!(!a.namespaces.contains_key("old"), "{:?}", a.namespaces);
}

#[test]
fn a_refused_product_is_its_own_outcome_and_the_others_are_written() {
    let mut memory = MemoryArchive::new();
    let first = product("a", 1, 1.0);
    let mut same_uuid = product("b", 1, 1.0);
    same_uuid.uuid = first.uuid;
    let results = memory
        .archive()
        .apply_all(&[first, same_uuid, product("c", 1, 1.0)], false, &[])
        .unwrap();
    assert!(matches!(results[0], Ok(Outcome::Created)));
    let refused = results[1].as_ref().unwrap_err().to_string();
    assert!(refused.contains("uuid already exists"), "{refused}");
    assert!(matches!(results[2], Ok(Outcome::Created)));
    assert_eq!(memory.len(), 2);
}

#[test]
fn apply_found_uses_the_plugins_own_look_up() {
    let mut memory = MemoryArchive::new();
    memory.insert(product("a", 1, 1.0)).unwrap();
    let mut archive = memory.archive();
    let found = archive
        .products_by_name("S2MSI1C", &["a", "new"], &["eo"])
        .unwrap();
    let mut found = found.into_iter();
    let a = archive
        .apply_found(found.next().unwrap(), &product("a", 1, 2.0), false, &[])
        .unwrap();
    let new = archive
        .apply_found(found.next().unwrap(), &product("new", 1, 2.0), false, &[])
        .unwrap();
    assert_eq!((a, new), (Outcome::Updated, Outcome::Created));
    drop(archive);
    assert_eq!(
        memory.product("S2MSI1C", "a").unwrap().namespaces["eo"]["cloud_cover"],
        Value::Real(2.0)
    );
}
