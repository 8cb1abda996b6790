//! A synchronizer's configuration section as muninn-sync hands it to a
//! plugin. The host and the in-memory archive (`memory`) both use this, so
//! that a plugin's unit tests configure it exactly as a run does.

/// The keys of a synchronizer's section that muninn-sync reads itself and
/// takes out before the plugin sees the section.
pub const HOST_KEYS: [&str; 9] = [
    "module",
    "plugin",
    "incremental",
    "lookback",
    "inactivity_timeout",
    "adopt",
    "adopt_from",
    "future_tolerance",
    "max_products",
];

/// Reads the section's `adopt` (true or false; configparser's 1 and 0 too)
/// and `adopt_from` (a list of synchronizer names, or one name) into the
/// synchronizer's [`Ownership`](muninn_sync_model::Ownership), taking them
/// out of `options`. An error names the key at fault.
#[cfg(feature = "toml")]
pub fn take_ownership(
    options: &mut toml::Table,
    synchronizer: &str,
) -> Result<muninn_sync_model::Ownership, (&'static str, String)> {
    let adopt_unowned = match options.remove("adopt") {
        None => false,
        Some(toml::Value::Boolean(b)) => b,
        Some(toml::Value::Integer(n @ (0 | 1))) => n == 1,
        Some(other) => {
            return Err((
                "adopt",
                format!("expected true or false (got {})", other.type_str()),
            ))
        }
    };
    let names = |value: &toml::Value| -> Option<Vec<String>> {
        match value {
            toml::Value::String(name) => Some(name.split_whitespace().map(String::from).collect()),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(String::from))
                .collect(),
            _ => None,
        }
    };
    let adopt_from = match options.remove("adopt_from") {
        None => Vec::new(),
        Some(value) => names(&value).ok_or_else(|| {
            (
                "adopt_from",
                format!(
                    "expected a list of synchronizer names, not a {}",
                    value.type_str()
                ),
            )
        })?,
    };
    if let Some(own) = adopt_from.iter().find(|name| *name == synchronizer) {
        return Err((
            "adopt_from",
            format!("\"{own}\" is this synchronizer itself: it owns its products already"),
        ));
    }
    Ok(muninn_sync_model::Ownership {
        synchronizer: synchronizer.to_string(),
        adopt_unowned,
        adopt_from,
    })
}

/// The section's options (without [`HOST_KEYS`]) as the JSON object a
/// plugin's `synchronizer(config)` receives. TOML dates and times become
/// RFC 3339 text.
#[cfg(feature = "toml")]
pub fn to_json(options: &toml::Table) -> serde_json::Value {
    fn convert(value: &toml::Value) -> serde_json::Value {
        match value {
            toml::Value::String(s) => serde_json::Value::String(s.clone()),
            toml::Value::Integer(i) => serde_json::Value::from(*i),
            toml::Value::Float(f) => serde_json::Value::from(*f),
            toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
            toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
            toml::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(convert).collect())
            }
            toml::Value::Table(table) => serde_json::Value::Object(
                table.iter().map(|(k, v)| (k.clone(), convert(v))).collect(),
            ),
        }
    }
    serde_json::Value::Object(
        options
            .iter()
            .map(|(k, v)| (k.clone(), convert(v)))
            .collect(),
    )
}
