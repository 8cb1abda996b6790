//! Item Search requests and paging: the first request of a window, and the
//! next one from a page's `rel="next"` link, in every shape the STAC API
//! spec allows (GET links, POST links with a `body`, `merge`, `headers`).

use anyhow::{anyhow, Result};
use muninn_sync_plugin_api::{model::format_timestamp, Timestamp};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashSet};

/// One Item Search request.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// For GET, the whole URL with its query.
    pub url: String,
    /// For POST, the JSON body.
    pub body: Option<Map<String, Json>>,
    /// Headers a next link asked for.
    pub headers: BTreeMap<String, String>,
}

/// What the first request of a window asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Window<'a> {
    pub collection: &'a str,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub limit: u32,
    /// `datetime` or `updated`.
    pub time_field: &'a str,
    /// Sort by the time field (the server conforms to the sort extension).
    pub sort: bool,
    /// Newest first (with `sort`): a probe for a stretch's last item.
    pub descending: bool,
    /// Filter `updated` with CQL2 text (the server conforms to it).
    pub cql2_text: bool,
}

/// RFC 3339 for a query.
fn rfc3339(time: &Timestamp) -> String {
    let text = format_timestamp(time).replace(' ', "T");
    format!("{text}Z")
}

/// The first GET request of a window. The `datetime` interval is closed at
/// both ends on the server; items at exactly `end` are dropped on our side.
pub fn first_request(search: &str, window: &Window<'_>) -> Result<SearchRequest> {
    let interval = |start: &Option<Timestamp>, end: &Option<Timestamp>| {
        let side = |t: &Option<Timestamp>| t.as_ref().map_or("..".to_string(), rfc3339);
        format!("{}/{}", side(start), side(end))
    };
    let mut query: Vec<(String, String)> = vec![
        ("collections".into(), window.collection.into()),
        ("limit".into(), window.limit.to_string()),
    ];
    let windowed = window.start.is_some() || window.end.is_some();
    match window.time_field {
        "updated" if window.cql2_text && windowed => {
            let mut conditions = Vec::new();
            if let Some(start) = &window.start {
                conditions.push(format!("updated >= TIMESTAMP('{}')", rfc3339(start)));
            }
            if let Some(end) = &window.end {
                conditions.push(format!("updated < TIMESTAMP('{}')", rfc3339(end)));
            }
            query.push(("filter-lang".into(), "cql2-text".into()));
            query.push(("filter".into(), conditions.join(" AND ")));
        }
        "updated" => {} // no filter: the whole collection, windowed on our side
        _ if windowed => query.push(("datetime".into(), interval(&window.start, &window.end))),
        _ => {}
    }
    if window.sort {
        let sign = if window.descending { "-" } else { "" };
        query.push(("sortby".into(), format!("{sign}{}", window.time_field)));
    }
    let mut url = muninn_sync_plugin_api::http::Url::parse(search)
        .map_err(|e| anyhow!("the search endpoint \"{search}\" is not a URL: {e}"))?;
    url.query_pairs_mut().extend_pairs(&query);
    Ok(SearchRequest {
        method: "GET".into(),
        url: url.to_string(),
        body: None,
        headers: BTreeMap::new(),
    })
}

/// The request for the page after `page`, or `None` at the end: no next
/// link, or a page without items.
pub fn next_request(current: &SearchRequest, page: &Json) -> Result<Option<SearchRequest>> {
    let features = page
        .get("features")
        .and_then(Json::as_array)
        .ok_or_else(|| anyhow!("the answer is not a FeatureCollection: no \"features\" list"))?;
    if features.is_empty() {
        return Ok(None);
    }
    let Some(link) = page
        .get("links")
        .and_then(Json::as_array)
        .and_then(|links| {
            links
                .iter()
                .find(|l| l.get("rel").and_then(Json::as_str) == Some("next"))
        })
    else {
        return Ok(None);
    };
    let href = link
        .get("href")
        .and_then(Json::as_str)
        .ok_or_else(|| anyhow!("a \"next\" link without an \"href\""))?;
    let method = link
        .get("method")
        .and_then(Json::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let headers = link
        .get("headers")
        .and_then(Json::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let body = match method.as_str() {
        "GET" => None,
        "POST" => {
            let given = link
                .get("body")
                .and_then(Json::as_object)
                .cloned()
                .unwrap_or_default();
            let merge = link.get("merge").and_then(Json::as_bool).unwrap_or(false);
            Some(if merge {
                let mut merged = current.body.clone().unwrap_or_default();
                merged.extend(given);
                merged
            } else {
                given
            })
        }
        other => return Err(anyhow!("a \"next\" link with the method {other}")),
    };
    Ok(Some(SearchRequest {
        method,
        url: href.to_string(),
        body,
        headers,
    }))
}

/// Catches a server that sends the same page again (the same next request,
/// or the same items), which would otherwise be followed for ever.
#[derive(Debug, Default)]
pub struct RepeatGuard {
    requests: HashSet<String>,
    pages: HashSet<String>,
}

impl RepeatGuard {
    /// Notes a request about to be sent; an error if it was sent before.
    pub fn request(&mut self, request: &SearchRequest) -> Result<()> {
        let key = format!(
            "{} {} {}",
            request.method,
            request.url,
            request
                .body
                .as_ref()
                .map(|b| Json::Object(b.clone()).to_string())
                .unwrap_or_default()
        );
        if !self.requests.insert(key) {
            return Err(anyhow!(
                "the server's \"next\" link asks for a page it has already sent ({} {}): stopped instead of looping",
                request.method, request.url
            ));
        }
        Ok(())
    }

    /// Notes a page's items; an error if a page with the same items came before.
    pub fn page(&mut self, page: &Json) -> Result<()> {
        let ids: Vec<&str> = page
            .get("features")
            .and_then(Json::as_array)
            .map(|f| {
                f.iter()
                    .filter_map(|i| i.get("id").and_then(Json::as_str))
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return Ok(());
        }
        if !self.pages.insert(ids.join("\n")) {
            return Err(anyhow!(
                "the server sent the same page of {} items twice (first item \"{}\"): stopped instead of looping",
                ids.len(),
                ids[0]
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_sync_plugin_api::parse_timestamp;
    use serde_json::json;

    fn window(time_field: &'static str) -> Window<'static> {
        Window {
            collection: "sentinel-2-l2a",
            start: Some(parse_timestamp("2024-01-01").unwrap()),
            end: None,
            limit: 500,
            time_field,
            sort: true,
            descending: false,
            cql2_text: true,
        }
    }

    #[test]
    fn first_requests_carry_the_window() {
        let get = first_request("https://x.org/stac/search", &window("datetime")).unwrap();
        assert_eq!(
            get.url,
            "https://x.org/stac/search?collections=sentinel-2-l2a&limit=500&datetime=2024-01-01T00%3A00%3A00Z%2F..&sortby=datetime"
        );
        let updated = first_request("https://x.org/stac/search", &window("updated")).unwrap();
        assert!(
            updated.url.contains("filter-lang=cql2-text&filter=updated+%3E%3D+TIMESTAMP%28%272024-01-01T00%3A00%3A00Z%27%29"),
            "{}",
            updated.url
        );
        let unsorted = first_request(
            "https://x.org/search",
            &Window {
                sort: false,
                start: None,
                ..window("datetime")
            },
        )
        .unwrap();
        assert_eq!(
            unsorted.url,
            "https://x.org/search?collections=sentinel-2-l2a&limit=500"
        );
        assert!(first_request("not a url", &window("datetime")).is_err());
    }

    fn page(next: Json) -> Json {
        json!({"type": "FeatureCollection", "features": [{"id": "a"}], "links": [next]})
    }

    #[test]
    fn next_links_of_every_shape() {
        let first = first_request("https://x.org/search", &window("datetime")).unwrap();
        let get = next_request(
            &first,
            &page(json!({"rel": "next", "href": "https://x.org/search?token=next:abc"})),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (get.method.as_str(), get.url.as_str(), get.body.clone()),
            ("GET", "https://x.org/search?token=next:abc", None)
        );

        let post_start = SearchRequest {
            method: "POST".into(),
            url: "https://x.org/search".into(),
            body: Some(
                json!({"collections": ["c"], "limit": 10})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            headers: BTreeMap::new(),
        };
        let merged = next_request(
            &post_start,
            &page(json!({"rel": "next", "href": "https://x.org/search", "method": "POST", "body": {"token": "t2"}, "merge": true, "headers": {"X-Page": "2"}})),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            Json::Object(merged.body.unwrap()),
            json!({"collections": ["c"], "limit": 10, "token": "t2"})
        );
        assert_eq!(merged.headers["X-Page"], "2");
        let replaced = next_request(
            &post_start,
            &page(json!({"rel": "next", "href": "https://x.org/search", "method": "POST", "body": {"token": "t2"}})),
        )
        .unwrap()
        .unwrap();
        assert_eq!(Json::Object(replaced.body.unwrap()), json!({"token": "t2"}));

        // The end: no next link, or an empty page with one.
        assert_eq!(
            next_request(&first, &json!({"features": [{"id": "a"}], "links": []})).unwrap(),
            None
        );
        assert_eq!(
            next_request(
                &first,
                &json!({"features": [], "links": [{"rel": "next", "href": "x"}]})
            )
            .unwrap(),
            None
        );
        assert!(next_request(&first, &json!({"type": "oops"})).is_err());
    }

    #[test]
    fn a_repeated_page_is_caught() {
        let mut guard = RepeatGuard::default();
        let first = first_request("https://x.org/search", &window("datetime")).unwrap();
        guard.request(&first).unwrap();
        assert!(guard
            .request(&first)
            .unwrap_err()
            .to_string()
            .contains("already sent"));
        guard.page(&page(json!({}))).unwrap();
        assert!(guard
            .page(&page(json!({})))
            .unwrap_err()
            .to_string()
            .contains("same page"));
    }
}
