//! The `["synchronizer:<name>"]` section of a `stac` synchronizer.

use anyhow::{anyhow, Result};
use muninn_sync_plugin_api::http::HttpConfig;
use std::collections::BTreeMap;

/// Which item time drives the window and the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeField {
    /// The acquisition time (`datetime`, or `start_datetime`).
    #[default]
    Datetime,
    /// The record's last change (`updated`): what incremental runs want.
    Updated,
}

impl TimeField {
    pub fn name(self) -> &'static str {
        match self {
            TimeField::Datetime => "datetime",
            TimeField::Updated => "updated",
        }
    }
}

/// The section as a user writes it (docs/stac.md).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The API's landing page.
    pub url: String,
    /// Product type -> collection id (default: each product type asked for
    /// is a collection id).
    #[serde(default)]
    pub collections: Option<BTreeMap<String, String>>,
    /// The asset whose href becomes remote_url (default: `product`, else the
    /// first asset with the role `data`).
    #[serde(default)]
    pub asset: Option<String>,
    /// Items per page asked for (the server may cap it).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default)]
    pub time_field: TimeField,
    /// Sent with every request; `${VAR}` is replaced by the environment
    /// variable VAR, and the values are kept out of every message.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Remove products of a completely read window that the server no
    /// longer returns.
    #[serde(default)]
    pub prune: bool,
    /// The longest time slice (`"7d"`, `"12h"`, `"30m"`, or seconds): a
    /// cap on the slices the window is cut into where its items are. None:
    /// no cap, but from a server that neither sorts nor counts (whose
    /// slices are held whole) [`crate::slices::UNCOUNTED_CAP`].
    #[serde(default, deserialize_with = "text_or_seconds")]
    pub slice: Option<String>,
    /// How many slices are fetched at once (1: one after the other).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The HTTP client's settings (timeouts, retries, rate cap).
    #[serde(default)]
    pub http: HttpConfig,
}

fn default_page_size() -> u32 {
    500
}

/// A duration as text (`"7d"`) or a number of seconds.
fn text_or_seconds<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum TextOrSeconds {
        Text(String),
        Seconds(f64),
    }
    Ok(Some(match serde::Deserialize::deserialize(deserializer)? {
        TextOrSeconds::Text(text) => text,
        TextOrSeconds::Seconds(seconds) => seconds.to_string(),
    }))
}

fn default_concurrency() -> usize {
    2
}

impl Config {
    /// Checks what serde cannot; errors name the key.
    pub fn check(&self) -> Result<()> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(anyhow!(
                "key \"url\": expected the http(s) address of the STAC API's landing page, not \"{}\"",
                self.url
            ));
        }
        if self.page_size == 0 {
            return Err(anyhow!("key \"page_size\": must be at least 1"));
        }
        if self.concurrency == 0 {
            return Err(anyhow!("key \"concurrency\": must be at least 1"));
        }
        self.slice_length()?;
        Ok(())
    }

    /// The `slice` key as a duration, when it is set.
    pub fn slice_length(&self) -> Result<Option<std::time::Duration>> {
        let Some(slice) = &self.slice else {
            return Ok(None);
        };
        let text = slice.trim();
        let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
            Some(at) => text.split_at(at),
            None => (text, "s"),
        };
        let seconds_per_unit = match unit {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => f64::NAN,
        };
        let seconds = number.trim().parse::<f64>().unwrap_or(f64::NAN) * seconds_per_unit;
        if !(seconds.is_finite() && seconds >= 1.0) {
            return Err(anyhow!(
                "key \"slice\": \"{slice}\" is not a duration of at least a second (\"7d\", \"12h\", \"30m\", \"90s\")"
            ));
        }
        Ok(Some(std::time::Duration::from_secs_f64(seconds)))
    }

    /// The collection of a product type.
    pub fn collection<'a>(&'a self, product_type: &'a str) -> &'a str {
        self.collections
            .as_ref()
            .and_then(|c| c.get(product_type))
            .map_or(product_type, String::as_str)
    }

    /// The headers with `${VAR}` expanded from `environment`.
    pub fn expanded_headers(
        &self,
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, String>> {
        self.headers
            .iter()
            .map(|(name, value)| {
                let value = expand(value, &environment)
                    .map_err(|e| anyhow!("key \"headers.{name}\": {e}"))?;
                Ok((name.clone(), value))
            })
            .collect()
    }
}

/// Replaces each `${VAR}` in `text` with the variable's value.
pub fn expand(text: &str, environment: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| anyhow!("\"${{\" without a closing \"}}\""))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(anyhow!(
                "\"${{{name}}}\" is not an environment variable name"
            ));
        }
        let value = environment(name)
            .ok_or_else(|| anyhow!("the environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Config> {
        let value: serde_json::Value = serde_json::to_value(toml::from_str::<toml::Table>(toml)?)?;
        Ok(serde_json::from_value(value)?)
    }

    #[test]
    fn the_issue_example_reads() {
        let config = parse(
            r#"
url = "https://earth-search.aws.element84.com/v1"
collections = { S2MSI2A = "sentinel-2-l2a", S1GRD = "sentinel-1-grd" }
asset = "product"
page_size = 500
time_field = "updated"
headers = { Authorization = "Bearer ${EARTHSEARCH_TOKEN}" }
prune = false
"#,
        )
        .unwrap();
        config.check().unwrap();
        assert_eq!(config.collection("S2MSI2A"), "sentinel-2-l2a");
        assert_eq!(config.collection("other"), "other");
        assert_eq!(config.time_field, TimeField::Updated);
        let headers = config
            .expanded_headers(|name| (name == "EARTHSEARCH_TOKEN").then(|| "s3cret".into()))
            .unwrap();
        assert_eq!(headers["Authorization"], "Bearer s3cret");
        let unset = config.expanded_headers(|_| None).unwrap_err().to_string();
        assert!(
            unset.contains("headers.Authorization")
                && unset.contains("EARTHSEARCH_TOKEN is not set"),
            "{unset}"
        );
    }

    #[test]
    fn defaults_and_bad_values() {
        let config = parse("url = \"https://x.org/stac\"").unwrap();
        assert_eq!(
            (config.page_size, config.time_field, config.prune),
            (500, TimeField::Datetime, false)
        );
        assert!(parse("url = \"ftp://x\"").unwrap().check().is_err());
        assert_eq!(config.slice_length().unwrap(), None);
        assert_eq!(config.concurrency, 2);
        let seconds = parse("url = \"https://x\"\nslice = 3600").unwrap();
        assert_eq!(
            seconds.slice_length().unwrap(),
            Some(std::time::Duration::from_secs(3600))
        );
        let sliced = parse("url = \"https://x\"\nslice = \"12h\"\nconcurrency = 4").unwrap();
        assert_eq!(
            sliced.slice_length().unwrap(),
            Some(std::time::Duration::from_secs(12 * 3600))
        );
        let bad = parse("url = \"https://x\"\nslice = \"soon\"")
            .unwrap()
            .check()
            .unwrap_err();
        assert!(bad.to_string().contains("key \"slice\""), "{bad}");
        assert!(parse("url = \"https://x\"\ntime_field = \"created\"").is_err());
        assert!(expand("${A", |_| Some("x".into())).is_err());
        assert_eq!(expand("a${B}c${B}", |_| Some("-".into())).unwrap(), "a-c-");
    }
}
