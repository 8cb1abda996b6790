//! Answers to a look-up in the order it asked, whatever the store.

use muninn_sync_model::Product;
use std::collections::HashMap;
use std::hash::Hash;

/// The products for `keys`, in their order: moved out of `found` (the
/// products a store read, by key), and copied only for a key asked for
/// twice; `None` for a key nothing was found for.
pub(crate) fn take_in_order<K: Hash + Eq>(
    found: &mut HashMap<K, Product>,
    keys: &[K],
) -> Vec<Option<Product>> {
    let mut answers: Vec<Option<Product>> = Vec::with_capacity(keys.len());
    for (position, key) in keys.iter().enumerate() {
        let answer = match found.remove(key) {
            Some(product) => Some(product),
            None => keys[..position]
                .iter()
                .position(|earlier| earlier == key)
                .and_then(|earlier| answers[earlier].clone()),
        };
        answers.push(answer);
    }
    answers
}
