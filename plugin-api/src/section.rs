//! A synchronizer's configuration section as muninn-sync hands it to a
//! plugin. The host and the in-memory archive (`memory`) both use this, so
//! that a plugin's unit tests configure it exactly as a run does.

/// The keys of a synchronizer's section that muninn-sync reads itself and
/// takes out before the plugin sees the section.
pub const HOST_KEYS: [&str; 5] = [
    "module",
    "plugin",
    "incremental",
    "lookback",
    "inactivity_timeout",
];

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
