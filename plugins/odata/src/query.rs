//! Reading a window of an OData entity set completely, in order of time.
//!
//! CDSE refuses `$skip` above 10,000 and silently leaves the next link out
//! where it would pass that, so following next links loses every product
//! after the 10,000th of a window. Instead each page is asked for anew, from
//! the time of the last product seen (`<time> ge <last>`), with the
//! products already seen at exactly that time dropped. Only when more than
//! half a page shares one time is `$skip` used, to step over them.

use anyhow::{anyhow, Result};
use muninn_sync_plugin_api::http::HttpClient;
use muninn_sync_plugin_api::Timestamp;
use serde_json::Value as Json;
use std::collections::HashSet;

/// The service's largest `$skip`.
pub const MAX_SKIP: usize = 10_000;

/// One product as read, with what paging needs of it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub time: Timestamp,
    pub json: Json,
}

/// What to read: an entity set, a filter, a window on a time field.
#[derive(Debug, Clone)]
pub struct Query {
    /// `<service root>/Products` or `<service root>/DeletedProducts`.
    pub entity_set: String,
    /// Clauses and-ed with the window's.
    pub clauses: Vec<String>,
    /// The field the window is on and the order is by.
    pub time_field: String,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub page_size: u32,
    /// `$expand=Attributes`.
    pub attributes: bool,
}

impl Query {
    /// The `$filter` of the products from `from` on.
    fn filter(&self, from: Option<Timestamp>) -> Option<String> {
        let mut filter = self.clauses.clone();
        if let Some(from) = from.max(self.start) {
            filter.push(format!("{} ge {}", self.time_field, literal_time(&from)));
        }
        if let Some(end) = self.end {
            filter.push(format!("{} lt {}", self.time_field, literal_time(&end)));
        }
        (!filter.is_empty()).then(|| filter.join(" and "))
    }

    /// The URL that asks how many products the whole window holds: its
    /// filter with `$count=true` and `$top=0`, so that the answer carries
    /// the count and no product (no order, no attributes either).
    pub fn count_url(&self) -> String {
        let mut options = Vec::new();
        if let Some(filter) = self.filter(None) {
            options.push(("$filter", filter));
        }
        options.push(("$top", "0".to_string()));
        options.push(("$count", "true".to_string()));
        join(&self.entity_set, &options)
    }

    /// The URL of the page of products from `from` on, skipping `skip`.
    pub fn url(&self, from: Option<Timestamp>, skip: usize) -> String {
        let mut options = Vec::new();
        if let Some(filter) = self.filter(from) {
            options.push(("$filter", filter));
        }
        options.push(("$orderby", format!("{} asc", self.time_field)));
        options.push(("$top", self.page_size.to_string()));
        if skip > 0 {
            options.push(("$skip", skip.to_string()));
        }
        if self.attributes {
            options.push(("$expand", "Attributes".to_string()));
        }
        join(&self.entity_set, &options)
    }
}

/// `<entity set>?<name>=<value>&...`, the values percent-encoded.
fn join(entity_set: &str, options: &[(&str, String)]) -> String {
    let query: Vec<String> = options
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect();
    format!("{entity_set}?{}", query.join("&"))
}

/// How long one attempt at counting a window may take: CDSE counts slowly,
/// and the count only feeds progress, so a slow one is given up rather
/// than waited for.
pub const COUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// How many products `query`'s window holds, as the service counts them
/// (`@odata.count`), in one request that lists no product. `None`, with the
/// reason logged, when the request fails or the answer has no count that
/// can be read: the count feeds progress only, so the sync goes on.
pub fn count(client: &HttpClient, query: &Query) -> Option<u64> {
    let url = query.count_url();
    let answer = client.send(muninn_sync_plugin_api::http::Method::GET, &url, |request| {
        request
            .header(
                muninn_sync_plugin_api::http::header::ACCEPT,
                "application/json",
            )
            .timeout(COUNT_TIMEOUT)
    });
    let why = match answer {
        Ok(response) => match serde_json::from_slice::<Json>(response.bytes()) {
            Ok(json) => match json.get("@odata.count").map(|c| (c, c.as_u64())) {
                Some((_, Some(count))) => return Some(count),
                Some((other, None)) => format!("@odata.count is {other}, not a count"),
                None => "the answer has no @odata.count".to_string(),
            },
            Err(e) => format!("the answer is not JSON ({e})"),
        },
        Err(error) => format!("{error:#}"),
    };
    tracing::info!(
        request = %client.redact(&url),
        "cannot count the products of the window, progress goes by time: {}",
        client.redact(&why)
    );
    None
}

/// `Collection/Name eq '<collection>'`.
pub fn collection_clause(collection: &str) -> String {
    format!("Collection/Name eq {}", literal_text(collection))
}

/// The clause that keeps the products whose `productType` attribute is
/// `product_type`.
pub fn product_type_clause(product_type: &str) -> String {
    format!(
        "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and att/OData.CSC.StringAttribute/Value eq {})",
        literal_text(product_type)
    )
}

/// An OData string literal: quotes doubled.
fn literal_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// An OData DateTimeOffset literal with microseconds, which is all muninn
/// keeps and all CDSE stores.
fn literal_time(time: &Timestamp) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Percent-encodes a query value; spaces as `%20` (not `+`, which some
/// OData servers take literally).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 16);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'\''
            | b'('
            | b')'
            | b'/'
            | b':'
            | b','
            | b'*'
            | b'$' => out.push(char::from(byte)),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Reads a query's products page by page, from the oldest on.
pub struct Pager<'c> {
    client: &'c HttpClient,
    query: Query,
    /// The time of the newest product handed out so far.
    cursor: Option<Timestamp>,
    /// The Ids handed out with exactly the cursor's time.
    at_cursor: HashSet<String>,
    done: bool,
    /// How many products the last page listed (the server may cap `$top`).
    page_length: usize,
    /// Reads the products sharing the cursor's time when they are too many
    /// to step over with `$skip`.
    within: Option<Box<Pager<'c>>>,
    /// Requests sent.
    pub requests: usize,
}

/// The field that orders the products sharing one time of the window's
/// field, when there are more of them than `$skip` can step over: CDSE can
/// filter and order by it, and it differs between products of one type.
const TIE_BREAKER: &str = "ContentDate/Start";

impl<'c> Pager<'c> {
    pub fn new(client: &'c HttpClient, query: Query) -> Pager<'c> {
        Pager {
            client,
            query,
            cursor: None,
            at_cursor: HashSet::new(),
            done: false,
            page_length: usize::MAX,
            within: None,
            requests: 0,
        }
    }

    /// The next products in order of time (then Id); `None` at the end.
    pub fn next_page(&mut self) -> Result<Option<Vec<Entry>>> {
        loop {
            if self.within.is_none() {
                return self.next_by_time();
            }
            if let Some(fresh) = self.next_within()? {
                return Ok(Some(fresh));
            }
        }
    }

    /// The next products of the cursor's time from the reader of those
    /// (with that time, whatever their order within it); `None` when it
    /// has nothing new now (then reading goes on after that time).
    fn next_within(&mut self) -> Result<Option<Vec<Entry>>> {
        let Some(within) = self.within.as_mut() else {
            return Ok(None);
        };
        let cursor = self.cursor;
        match within.next_page()? {
            Some(entries) => Ok(Some(
                entries
                    .into_iter()
                    .filter(|entry| !self.at_cursor.contains(&entry.id))
                    .map(|mut entry| {
                        entry.time = cursor.unwrap_or(entry.time);
                        entry
                    })
                    .collect(),
            )
            .filter(|fresh: &Vec<Entry>| !fresh.is_empty())),
            None => {
                self.requests += within.requests;
                self.within = None;
                // Everything of that time has been read.
                self.cursor = cursor.map(|c| c + chrono::TimeDelta::microseconds(1));
                self.at_cursor.clear();
                Ok(None)
            }
        }
    }

    /// The next page of products from the cursor on.
    fn next_by_time(&mut self) -> Result<Option<Vec<Entry>>> {
        if self.done {
            return Ok(None);
        }
        // Products already handed out come back first at the cursor's
        // time: step over all but half a page of them, so that a page
        // always brings new ones, and a product that moved away while
        // we read cannot make us step over one we have not seen.
        // Half a page is read again, so that the page's first product shows
        // whether the skip stepped over read products only (below); pages
        // of one product cannot both overlap and advance.
        let page = self.page_length.min(self.query.page_size as usize);
        let overlap = if page >= 2 { page / 2 } else { 0 };
        let skip = self.at_cursor.len().saturating_sub(overlap);
        if skip > MAX_SKIP && self.query.time_field != TIE_BREAKER {
            tracing::info!(
                entity_set = self.query.entity_set,
                "more than {MAX_SKIP} products have {} {}: reading them in order of {TIE_BREAKER}",
                self.query.time_field,
                self.cursor.map(|c| literal_time(&c)).unwrap_or_default()
            );
        }
        if skip > MAX_SKIP {
            return self.read_within();
        }
        let url = self.query.url(self.cursor, skip);
        let mut page = self.fetch(&url)?;
        self.requests += 1;
        let listed = match page.get_mut("value").map(Json::take) {
            Some(Json::Array(listed)) => listed,
            _ => {
                return Err(anyhow!(
                    "GET {}: the answer has no \"value\" list",
                    self.client.redact(&url)
                ))
            }
        };
        if skip > 0 && overlap > 0 && !self.skipped_only_read(&listed) {
            // Products read at the cursor's time moved away (changed again,
            // or deleted) since: the skip may have stepped over unread ones.
            return self.reread_crowd(&url);
        }
        let full = listed.len() >= self.query.page_size as usize;
        self.page_length = listed.len().max(1);
        // The service leaves the next link out where the next page would
        // need a `$skip` past its cap, however many products follow.
        let at_cap = !listed.is_empty() && skip + listed.len() > MAX_SKIP;
        let more = full || at_cap || page.get("@odata.nextLink").is_some_and(|l| !l.is_null());
        let fresh = self.fresh(&url, listed)?;
        if fresh.is_empty() {
            if more {
                return Err(anyhow!(
                    "GET {}: the page holds only products already read; the service's order is not stable",
                    self.client.redact(&url)
                ));
            }
            self.done = true;
            return Ok(None);
        }
        self.done = !more;
        Ok(Some(fresh))
    }

    /// Whether a page asked for with a `$skip` starts with a product read
    /// before at the cursor's time: then every product stepped over was
    /// read before too (the service orders a time's products by Id, and
    /// the read ones are the first of them).
    fn skipped_only_read(&self, listed: &[Json]) -> bool {
        let Some(first) = listed.first() else {
            return false;
        };
        let id_read = first
            .get("Id")
            .and_then(Json::as_str)
            .is_some_and(|id| self.at_cursor.contains(id));
        let at_cursor_time = crate::product::time(first, &self.query.time_field)
            .ok()
            .flatten()
            .is_some_and(|t| Some(t) == self.cursor);
        id_read && at_cursor_time
    }

    /// After a `$skip` that may have stepped over unread products: reads
    /// the cursor's time again whole (in the order of [`TIE_BREAKER`],
    /// dropping what was read), or, when that is what is being read
    /// already, stops rather than miss products.
    fn reread_crowd(&mut self, url: &str) -> Result<Option<Vec<Entry>>> {
        if self.query.time_field == TIE_BREAKER {
            return Err(anyhow!(
                "GET {}: products read at {TIE_BREAKER} {} changed while they were being read, and $skip cannot step over them safely; run the sync again",
                self.client.redact(url),
                self.cursor.map(|c| literal_time(&c)).unwrap_or_default()
            ));
        }
        tracing::info!(
            entity_set = self.query.entity_set,
            "products read at {} {} changed while they were being read: reading that time again, in order of {TIE_BREAKER}",
            self.query.time_field,
            self.cursor.map(|c| literal_time(&c)).unwrap_or_default()
        );
        self.read_within()
    }

    /// Starts reading the products of the cursor's time in the order of
    /// [`TIE_BREAKER`]: more of them than `$skip` can step over share that
    /// time (a bulk change stamps thousands of products with one time).
    fn read_within(&mut self) -> Result<Option<Vec<Entry>>> {
        let (Some(cursor), None) = (self.cursor, &self.within) else {
            return Err(anyhow!(
                "{}: more than {MAX_SKIP} products share one {} and {TIE_BREAKER}; the service cannot page past them",
                self.query.entity_set,
                self.query.time_field,
            ));
        };
        if self.query.time_field == TIE_BREAKER {
            return Err(anyhow!(
                "{} (filter {}): more than {MAX_SKIP} products have {TIE_BREAKER} {}; the service cannot page past them",
                self.query.entity_set,
                self.query.clauses.join(" and "),
                literal_time(&cursor)
            ));
        }
        let field = &self.query.time_field;
        let next = cursor + chrono::TimeDelta::microseconds(1);
        let mut clauses = self.query.clauses.clone();
        clauses.push(format!("{field} ge {}", literal_time(&cursor)));
        clauses.push(format!("{field} lt {}", literal_time(&next)));
        let query = Query {
            clauses,
            time_field: TIE_BREAKER.into(),
            start: None,
            end: None,
            ..self.query.clone()
        };
        self.within = Some(Box::new(Pager::new(self.client, query)));
        self.next_page()
    }

    /// The page's products not handed out before, checked for order and
    /// window; moves the cursor.
    fn fresh(&mut self, url: &str, listed: Vec<Json>) -> Result<Vec<Entry>> {
        let field = self.query.time_field.as_str();
        let shown = || self.client.redact(url);
        let mut fresh = Vec::with_capacity(listed.len());
        let mut previous = self.cursor;
        for json in listed {
            let id = json
                .get("Id")
                .and_then(Json::as_str)
                .ok_or_else(|| anyhow!("GET {}: a product without an \"Id\"", shown()))?
                .to_string();
            let time = crate::product::time(&json, field)
                .map_err(|e| anyhow!("GET {}: product {id}: {e}", shown()))?
                .ok_or_else(|| anyhow!("GET {}: product {id} has no {field}", shown()))?;
            if previous.is_some_and(|p| time < p) {
                return Err(anyhow!(
                    "GET {}: product {id} is out of order by {field}: the service did not sort as asked",
                    shown()
                ));
            }
            if self.query.start.is_some_and(|s| time < s)
                || self.query.end.is_some_and(|e| time >= e)
            {
                return Err(anyhow!(
                    "GET {}: product {id} ({field} {}) is outside the window: the service did not filter as asked",
                    shown(),
                    literal_time(&time)
                ));
            }
            previous = Some(time);
            if Some(time) == self.cursor {
                if !self.at_cursor.insert(id.clone()) {
                    continue;
                }
            } else {
                self.cursor = Some(time);
                self.at_cursor.clear();
                self.at_cursor.insert(id.clone());
            }
            fresh.push(Entry { id, time, json });
        }
        Ok(fresh)
    }

    fn fetch(&self, url: &str) -> Result<Json> {
        let response = self.client.get(url)?;
        serde_json::from_slice(response.bytes()).map_err(|e| {
            let bytes = response.bytes();
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            anyhow!(
                "GET {}: the answer is not JSON ({e}; it starts with {:?})",
                self.client.redact(url),
                self.client.redact(&start)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_sync_plugin_api::parse_timestamp;

    fn query() -> Query {
        Query {
            entity_set: "https://x/odata/v1/Products".into(),
            clauses: vec![
                collection_clause("SENTINEL-2"),
                product_type_clause("S2MSI1C"),
            ],
            time_field: "ModificationDate".into(),
            start: Some(parse_timestamp("2024-01-01T00:00:00Z").unwrap()),
            end: Some(parse_timestamp("2024-01-02T00:00:00.5Z").unwrap()),
            page_size: 1000,
            attributes: true,
        }
    }

    #[test]
    fn the_count_asks_for_the_window_and_no_product() {
        let mut query = query();
        query.start = Some(parse_timestamp("2024-01-01T00:00:00Z").unwrap());
        let url = query.count_url();
        assert!(url.ends_with("&$top=0&$count=true"), "{url}");
        assert!(
            url.contains("ModificationDate%20ge%202024-01-01T00:00:00.000000Z"),
            "{url}"
        );
        assert!(
            !url.contains("$orderby") && !url.contains("$expand"),
            "{url}"
        );
    }

    #[test]
    fn urls_carry_the_window_order_and_expansion() {
        let url = query().url(None, 0);
        assert_eq!(
            url,
            "https://x/odata/v1/Products?$filter=Collection/Name%20eq%20'SENTINEL-2'%20and%20\
             Attributes/OData.CSC.StringAttribute/any(att:att/Name%20eq%20'productType'%20and%20\
             att/OData.CSC.StringAttribute/Value%20eq%20'S2MSI1C')%20and%20\
             ModificationDate%20ge%202024-01-01T00:00:00.000000Z%20and%20\
             ModificationDate%20lt%202024-01-02T00:00:00.500000Z\
             &$orderby=ModificationDate%20asc&$top=1000&$expand=Attributes"
        );
        let later = parse_timestamp("2024-01-01T12:00:00.123456Z").unwrap();
        let moved = query().url(Some(later), 700);
        assert!(
            moved.contains("ge%202024-01-01T12:00:00.123456Z"),
            "{moved}"
        );
        assert!(moved.contains("&$skip=700&"), "{moved}");
        assert_eq!(literal_text("it's"), "'it''s'");
        assert_eq!(encode("a+b&c=d#"), "a%2Bb%26c%3Dd%23");
    }
}
