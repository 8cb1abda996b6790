//! Applying remote products in bulk: one look-up for many products instead
//! of one per product. A plugin reads its remote a page at a time; looking
//! each product up on its own costs a query per product, and over a network
//! (a PostgreSQL catalogue) a round trip per product.

use crate::{Archive, Outcome};
use anyhow::Result;
use muninn_sync_model::{Product, Update};
use std::collections::{BTreeMap, HashSet};

impl Archive<'_> {
    /// [`Archive::apply`] for a product the plugin has already looked up,
    /// with [`Archive::products_by_name`] for a page of products at once:
    /// `existing` is what that look-up found, read with (at least) the
    /// namespaces this synchronizer manages and the product's own. Any other
    /// namespace `existing` carries is left alone, as [`Archive::apply`]
    /// leaves the namespaces of other synchronizers and tools.
    ///
    /// With `force` the product is written even when nothing differs (muninn's
    /// meaning: every product in the window is written and its
    /// `metadata_date` set), but only the properties that differ are
    /// rewritten: writing a value the catalogue already holds changes
    /// nothing but costs index and spatial index updates.
    pub fn apply_found(
        &mut self,
        existing: Option<Product>,
        product: &Product,
        force: bool,
        namespaces: &[&str],
    ) -> Result<Outcome> {
        let Some(mut existing) = existing else {
            self.create_properties(product)?;
            return Ok(Outcome::Created);
        };
        existing.namespaces.retain(|namespace, _| {
            namespaces.contains(&namespace.as_str()) || product.namespaces.contains_key(namespace)
        });
        let update = Update::between(&existing, product, false);
        self.apply_update(&update, force)
    }

    /// [`Archive::apply`] for many products, with one look-up per product
    /// type instead of one per product; the outcome of each, in order.
    /// The result is that of applying them one after the other: a product
    /// named twice is looked up again once its first is written. An error
    /// of one product's write is that product's outcome and the others go
    /// on; an error of a look-up ends the call.
    pub fn apply_all(
        &mut self,
        products: &[Product],
        force: bool,
        namespaces: &[&str],
    ) -> Result<Vec<Result<Outcome>>> {
        let mut outcomes = Vec::with_capacity(products.len());
        let mut rest = products;
        while !rest.is_empty() {
            let group = distinct_prefix(rest);
            let mut found = self.look_up(&rest[..group], namespaces)?;
            for (product, existing) in rest[..group].iter().zip(found.drain(..)) {
                outcomes.push(self.apply_found(existing, product, force, namespaces));
            }
            rest = &rest[group..];
        }
        Ok(outcomes)
    }

    /// The catalogue's state of each product (by type and name), with the
    /// managed namespaces and every product's own, one query per type.
    fn look_up(
        &mut self,
        products: &[Product],
        namespaces: &[&str],
    ) -> Result<Vec<Option<Product>>> {
        let wanted = managed_and_own(namespaces, products);
        let mut by_type: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (position, product) in products.iter().enumerate() {
            by_type
                .entry(&product.product_type)
                .or_default()
                .push(position);
        }
        let mut found: Vec<Option<Product>> = vec![None; products.len()];
        for (product_type, positions) in by_type {
            let names: Vec<&str> = positions
                .iter()
                .map(|&p| products[p].product_name.as_str())
                .collect();
            let answers = self.products_by_name(product_type, &names, &wanted)?;
            for (position, answer) in positions.into_iter().zip(answers) {
                found[position] = answer;
            }
        }
        Ok(found)
    }
}

/// The namespaces a look-up for applying `products` reads: the managed
/// ones and every product's own (without them the comparison would see
/// a product's own namespaces as new on every run).
pub(crate) fn managed_and_own<'n>(namespaces: &[&'n str], products: &'n [Product]) -> Vec<&'n str> {
    let mut wanted: Vec<&str> = namespaces.to_vec();
    for own in products.iter().flat_map(|p| p.namespaces.keys()) {
        if !wanted.contains(&own.as_str()) {
            wanted.push(own);
        }
    }
    wanted
}

/// How many of `products` from the first have no type and name twice.
fn distinct_prefix(products: &[Product]) -> usize {
    let mut seen = HashSet::with_capacity(products.len());
    products
        .iter()
        .position(|p| !seen.insert((p.product_type.as_str(), p.product_name.as_str())))
        .unwrap_or(products.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_seen_again_ends_the_group() {
        let a = Product::new("T", "A");
        let b = Product::new("T", "B");
        let other_type = Product::new("U", "A");
        assert_eq!(distinct_prefix(&[]), 0);
        assert_eq!(
            distinct_prefix(&[a.clone(), b.clone(), other_type.clone()]),
            3
        );
        assert_eq!(distinct_prefix(&[a.clone(), b, a.clone(), other_type]), 2);
        assert_eq!(distinct_prefix(&[a.clone(), a]), 1);
    }
}
