//! The `["synchronizer:<name>"]` section of an `odata` synchronizer.

use anyhow::{anyhow, Result};
use muninn_sync_plugin_api::http::HttpConfig;

/// The service's largest `$top`.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which product time drives the window and the order of reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum TimeField {
    /// The product's last change: what keeps a catalogue in step.
    #[default]
    ModificationDate,
    /// When the product was first published.
    PublicationDate,
}

impl TimeField {
    pub fn name(self) -> &'static str {
        match self {
            TimeField::ModificationDate => "ModificationDate",
            TimeField::PublicationDate => "PublicationDate",
        }
    }
}

/// The section as a user writes it (docs/odata.md).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The OData service root, e.g.
    /// `https://catalogue.dataspace.copernicus.eu/odata/v1`.
    pub url: String,
    /// The collection's name (`Collection/Name`), e.g. `SENTINEL-2`.
    pub collection: String,
    /// The product types (`productType` attribute) synced when `-p` names none.
    #[serde(default)]
    pub product_types: Vec<String>,
    /// Products per request (`$top`), at most the service's 1000.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default)]
    pub time_field: TimeField,
    /// Also remove the products the service lists as deleted.
    #[serde(default)]
    pub deletions: bool,
    /// The request-rate cap (0: none). The service allows 2000 a minute per
    /// user; the default leaves room for other clients of the same user.
    #[serde(default = "default_max_requests_per_minute")]
    pub max_requests_per_minute: u32,
    /// The base of `remote_url` (`<download_url>/Products(<Id>)/$value`);
    /// default: `url`, on CDSE's download host when `url` is CDSE's catalogue.
    #[serde(default)]
    pub download_url: Option<String>,
    /// An OData clause and-ed to every product query, e.g.
    /// `Online eq true`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Endings removed from `Name`, as often as one matches, to make the
    /// product name: what muninn's Sentinel product types do.
    #[serde(default = "default_name_suffixes")]
    pub name_suffixes: Vec<String>,
    /// The HTTP client's settings (timeouts, retries).
    #[serde(default)]
    pub http: HttpConfig,
}

fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}

fn default_max_requests_per_minute() -> u32 {
    1000
}

/// `.zip` is CDSE's packaging; `.SAFE`, `.SEN3`, `.nc` and `.EOF` are the
/// formats whose muninn product types (muninn-sentinel1/2/3/5p) name a
/// product without them.
pub fn default_name_suffixes() -> Vec<String> {
    [".zip", ".SAFE", ".SEN3", ".nc", ".EOF"]
        .map(String::from)
        .to_vec()
}

impl Config {
    /// Checks what serde cannot; errors name the key.
    pub fn check(&self) -> Result<()> {
        let http_url = |key: &str, url: &str| {
            if url.starts_with("http://") || url.starts_with("https://") {
                Ok(())
            } else {
                Err(anyhow!(
                    "key \"{key}\": expected the http(s) address of an OData service root, not \"{url}\""
                ))
            }
        };
        http_url("url", &self.url)?;
        if let Some(download) = &self.download_url {
            http_url("download_url", download)?;
        }
        if self.collection.trim().is_empty() {
            return Err(anyhow!("key \"collection\": must name a collection"));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(anyhow!(
                "key \"page_size\": {} is not between 1 and {MAX_PAGE_SIZE} (the service's largest $top)",
                self.page_size
            ));
        }
        if let Some(empty) = self.product_types.iter().find(|t| t.trim().is_empty()) {
            return Err(anyhow!(
                "key \"product_types\": \"{empty}\" is not a product type"
            ));
        }
        if self.filter.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(anyhow!(
                "key \"filter\": empty; leave the key out for no extra filter"
            ));
        }
        if self.name_suffixes.iter().any(String::is_empty) {
            return Err(anyhow!(
                "key \"name_suffixes\": an empty suffix would strip nothing"
            ));
        }
        Ok(())
    }

    /// The service root without a trailing slash.
    pub fn root(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// The base of download URLs.
    pub fn download_root(&self) -> String {
        match &self.download_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => self.root().replacen(
                "://catalogue.dataspace.copernicus.eu",
                "://download.dataspace.copernicus.eu",
                1,
            ),
        }
    }

    /// The HTTP client's settings with `max_requests_per_minute` applied:
    /// the stricter of it and the `http` table's own cap.
    pub fn http_config(&self) -> HttpConfig {
        let mut http = self.http.clone();
        if self.max_requests_per_minute > 0 {
            let rate = f64::from(self.max_requests_per_minute) / 60.0;
            http.max_requests_per_second = Some(
                http.max_requests_per_second
                    .map_or(rate, |own: f64| own.min(rate)),
            );
        }
        http
    }
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
url = "https://catalogue.dataspace.copernicus.eu/odata/v1"
collection = "SENTINEL-2"
product_types = ["S2MSI1C", "S2MSI2A"]
page_size = 1000
time_field = "ModificationDate"
deletions = true
"#,
        )
        .unwrap();
        config.check().unwrap();
        assert_eq!(config.time_field, TimeField::ModificationDate);
        assert!(config.deletions);
        assert_eq!(
            config.download_root(),
            "https://download.dataspace.copernicus.eu/odata/v1"
        );
        let rate = config.http_config().max_requests_per_second.unwrap();
        assert!((rate - 1000.0 / 60.0).abs() < 1e-9);
    }

    #[test]
    fn defaults_and_bad_values() {
        let config = parse("url = \"http://127.0.0.1:1/odata/v1/\"\ncollection = \"S1\"").unwrap();
        config.check().unwrap();
        assert_eq!(config.page_size, 1000);
        assert!(!config.deletions);
        assert_eq!(config.root(), "http://127.0.0.1:1/odata/v1");
        assert_eq!(config.download_root(), "http://127.0.0.1:1/odata/v1");
        let error = |toml: &str| {
            let base = "url = \"https://x/odata/v1\"\ncollection = \"S1\"\n";
            match parse(&format!("{base}{toml}")) {
                Err(e) => e.to_string(),
                Ok(c) => c.check().unwrap_err().to_string(),
            }
        };
        assert!(error("page_size = 5000").contains("key \"page_size\""));
        assert!(error("page_size = 0").contains("key \"page_size\""));
        assert!(error("time_field = \"Foo\"").contains("Foo"));
        assert!(error("filter = \" \"").contains("key \"filter\""));
        assert!(error("download_url = \"ftp://x\"").contains("key \"download_url\""));
        assert!(
            parse("url = \"https://x\"").is_err(),
            "collection is required"
        );
        let uncapped =
            parse("url = \"https://x\"\ncollection = \"S1\"\nmax_requests_per_minute = 0").unwrap();
        assert_eq!(uncapped.http_config().max_requests_per_second, None);
    }
}
