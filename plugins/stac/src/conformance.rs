//! What a STAC API can do, read from its landing page's `conformsTo`, never
//! guessed.

use anyhow::{anyhow, Result};
use serde_json::Value as Json;

/// The parts of a STAC API a synchronizer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The Item Search endpoint (the landing page's `rel="search"` link).
    pub search: String,
    /// Whether the server says it can sort (`item-search#sort`).
    pub sort: bool,
    /// Whether it can filter with CQL2 text / JSON (`item-search#filter`
    /// with the cql2-text or cql2-json class).
    pub cql2_text: bool,
    pub cql2_json: bool,
}

/// The conformance class after its version: for
/// `https://api.stacspec.org/v1.0.0-rc.2/item-search#filter`,
/// `item-search#filter`; servers differ in the version part.
fn stac_class(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("https://api.stacspec.org/")?;
    let (_version, class) = rest.split_once('/')?;
    Some(class)
}

impl Capabilities {
    /// Reads a landing page fetched from `url`; `shown` is how messages
    /// name it (the URL with its secrets masked). Without a search link,
    /// the search endpoint is `<url>/search`: from the real URL, so that a
    /// `user:password@` in it stays a working one.
    pub fn from_landing(url: &str, shown: &str, landing: &Json) -> Result<Capabilities> {
        let classes: Vec<&str> = landing
            .get("conformsTo")
            .and_then(Json::as_array)
            .ok_or_else(|| {
                anyhow!("{shown} is not a STAC API landing page: it has no \"conformsTo\" list")
            })?
            .iter()
            .filter_map(Json::as_str)
            .collect();
        let has = |class: &str| classes.iter().any(|uri| stac_class(uri) == Some(class));
        if !has("item-search") {
            return Err(anyhow!(
                "the STAC API at {shown} does not conform to Item Search (no .../item-search in \"conformsTo\")"
            ));
        }
        let cql2 = |kind: &str| {
            classes.iter().any(|uri| {
                uri.starts_with("http://www.opengis.net/spec/cql2/") && uri.ends_with(kind)
            })
        };
        let filter = has("item-search#filter");
        let search = landing
            .get("links")
            .and_then(Json::as_array)
            .and_then(|links| {
                links.iter().find(|link| {
                    link.get("rel").and_then(Json::as_str) == Some("search")
                        && link
                            .get("method")
                            .and_then(Json::as_str)
                            .is_none_or(|m| m.eq_ignore_ascii_case("GET"))
                })
            })
            .and_then(|link| link.get("href").and_then(Json::as_str))
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}/search", url.trim_end_matches('/')));
        Ok(Capabilities {
            search,
            sort: has("item-search#sort"),
            cql2_text: filter && cql2("/conf/cql2-text"),
            cql2_json: filter && cql2("/conf/cql2-json"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classes_are_matched_whatever_their_version() {
        let landing = json!({
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0-rc.1/item-search",
                "https://api.stacspec.org/v1.0.0/item-search#sort",
                "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
                "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text"
            ],
            "links": [
                {"rel": "self", "href": "https://x.org/stac"},
                {"rel": "search", "href": "https://x.org/stac/search", "method": "POST"},
                {"rel": "search", "href": "https://x.org/stac/search2", "method": "GET"}
            ]
        });
        let capabilities =
            Capabilities::from_landing("https://x.org/stac", "https://x.org/stac", &landing)
                .unwrap();
        assert_eq!(
            capabilities,
            Capabilities {
                search: "https://x.org/stac/search2".into(),
                sort: true,
                cql2_text: true,
                cql2_json: false,
            }
        );
    }

    #[test]
    fn the_search_endpoint_keeps_the_urls_own_credentials() {
        let bare = json!({"conformsTo": ["https://api.stacspec.org/v1.0.0/item-search"]});
        let capabilities =
            Capabilities::from_landing("https://u:p@x.org/stac", "https://u:***@x.org/stac", &bare)
                .unwrap();
        assert_eq!(capabilities.search, "https://u:p@x.org/stac/search");
    }

    #[test]
    fn a_server_without_item_search_or_sort() {
        let bare = json!({"conformsTo": ["https://api.stacspec.org/v1.0.0/item-search"]});
        let capabilities =
            Capabilities::from_landing("https://x.org/", "https://x.org/", &bare).unwrap();
        assert_eq!(capabilities.search, "https://x.org/search");
        assert!(!capabilities.sort && !capabilities.cql2_text && !capabilities.cql2_json);
        let not_stac =
            Capabilities::from_landing("https://x.org", "https://x.org", &json!({"title": "hi"}))
                .unwrap_err();
        assert!(
            not_stac.to_string().contains("no \"conformsTo\""),
            "{not_stac}"
        );
        let core_only = json!({"conformsTo": ["https://api.stacspec.org/v1.0.0/core"]});
        assert!(Capabilities::from_landing("https://x.org", "https://x.org", &core_only).is_err());
    }
}
