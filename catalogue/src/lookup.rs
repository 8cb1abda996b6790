//! Answers to a look-up or a scan in the shape it asked for, whatever the
//! store: the stores only read their rows.

use muninn_sync_model::{Product, Timestamp, Value, ValueType};
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

/// The order time of a scan row as a store read it: `None` leaves the row
/// out, since a row without a time has no place in the order. A time that
/// cannot be read is handed to `report` first (a look-up takes such a time
/// as absent, so the run goes on).
pub(crate) fn scan_time(
    read: Result<Option<Value>, String>,
    report: impl FnOnce(&str),
) -> Option<Timestamp> {
    match read {
        Ok(Some(Value::Timestamp(time))) => Some(time),
        Ok(_) => None,
        Err(why) => {
            report(&why);
            None
        }
    }
}

/// A scan row's values for the requested properties, in their order:
/// `columns` holds each one's column (`None`: the namespace has no such
/// column, so the value is absent), read from result column `first` on by
/// `read` (index, column, type), which decides what a value that cannot
/// be read becomes.
pub(crate) fn scan_values<E>(
    columns: &[Option<(String, ValueType)>],
    first: usize,
    mut read: impl FnMut(usize, &str, ValueType) -> Result<Option<Value>, E>,
) -> Result<Vec<Option<Value>>, E> {
    let mut index = first;
    columns
        .iter()
        .map(|column| match column {
            Some((name, value_type)) => {
                index += 1;
                read(index - 1, name, *value_type)
            }
            None => Ok(None),
        })
        .collect()
}
