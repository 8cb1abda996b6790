//! A local server that answers as STAC APIs do: a landing page with
//! conformance classes, Item Search with token (GET) or body (POST) paging,
//! an optional sort and datetime / CQL2 filters, and scripted misbehaviour.
//! Started on 127.0.0.1 by the STAC tests and the benchmark.

use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// What the server holds and how it behaves.
#[derive(Default)]
pub struct StacServer {
    pub items: Vec<Json>,
    pub sort: bool,
    /// Answers to give to /search before the real one (status, extra header).
    pub failures: Vec<(u16, &'static str)>,
    /// Every request line seen.
    pub seen: Vec<String>,
    /// Next links as POST with a token in the body, merged.
    pub post: bool,
    /// The page at this offset is not JSON.
    pub garbage_at: Option<usize>,
    /// The next link always points at the first page again.
    pub repeat: bool,
    /// Claims CQL2 text filtering; `Some(true)`: it works, `Some(false)`:
    /// it answers every filter with no items (as one real back-end does).
    pub cql2: Option<bool>,
    /// Says how many items match (`numberMatched`), as some servers do.
    pub number_matched: bool,
    /// With `sort`: claims the sort extension but ignores `sortby`,
    /// answering newest first whatever is asked.
    pub sort_ignored: bool,
}

impl StacServer {
    /// The searches seen (every request but the landing page's).
    pub fn searches(&self) -> Vec<&str> {
        self.seen
            .iter()
            .map(String::as_str)
            .filter(|line| line.contains("/search"))
            .collect()
    }
}

/// Starts the server; returns its base URL.
pub fn serve(state: Arc<Mutex<StacServer>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let root = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let state = Arc::clone(&state);
            let root = root.clone();
            // One thread per connection: clients read slices concurrently.
            std::thread::spawn(move || respond(stream, &state, &root));
        }
    });
    base
}

/// Reads one request and writes its answer.
fn respond(mut stream: std::net::TcpStream, state: &Mutex<StacServer>, root: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut posted = vec![0; length];
    let _ = std::io::Read::read_exact(&mut reader, &mut posted);
    let posted: Json = serde_json::from_slice(&posted).unwrap_or(Json::Null);
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, extra, body) = answer(state, root, &target, &line, &posted);
    let body = match body {
        Json::String(raw) => raw,
        other => other.to_string(),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
}

fn query(target: &str, key: &str) -> Option<String> {
    let (_, query) = target.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| decode(v))
    })
}

/// Percent-decoding of a query value (`+` is a space).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn answer(
    state: &Mutex<StacServer>,
    root: &str,
    target: &str,
    line: &str,
    posted: &Json,
) -> (u16, String, Json) {
    let mut server = state.lock().unwrap();
    server.seen.push(line.trim().to_string());
    if target == "/" {
        let mut conforms = vec![
            "https://api.stacspec.org/v1.0.0/core",
            "https://api.stacspec.org/v1.0.0-rc.1/item-search",
        ];
        if server.sort {
            conforms.push("https://api.stacspec.org/v1.0.0/item-search#sort");
        }
        if server.cql2.is_some() {
            conforms.push("https://api.stacspec.org/v1.0.0-rc.2/item-search#filter");
            conforms.push("http://www.opengis.net/spec/cql2/1.0/conf/cql2-text");
        }
        return (
            200,
            String::new(),
            json!({"conformsTo": conforms, "links": [{"rel": "search", "href": format!("{root}/search")}]}),
        );
    }
    if !server.failures.is_empty() {
        let (status, header) = server.failures.remove(0);
        return (status, header.to_string(), json!({"code": "busy"}));
    }
    let limit: usize = query(target, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10);
    let offset: usize = query(target, "token")
        .or_else(|| {
            posted
                .get("token")
                .and_then(Json::as_str)
                .map(str::to_string)
        })
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    if server.garbage_at == Some(offset) {
        return (
            200,
            String::new(),
            Json::String("<html>502 Bad Gateway</html>".into()),
        );
    }
    // References, not copies: a page is cloned, not the whole collection.
    let mut items: Vec<&Json> = server.items.iter().collect();
    // The datetime interval, closed at both ends as servers treat it.
    if let Some(interval) = query(target, "datetime") {
        // As times, not text: "10:30:00Z" is before "10:30:00.5Z".
        let (from, to) = interval.split_once('/').unwrap();
        let time = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
        let (from, to) = (time(from), time(to));
        items.retain(|i| {
            let t = time(item_time(i));
            from.is_none_or(|from| t >= Some(from)) && to.is_none_or(|to| t <= Some(to))
        });
    }
    // updated >= TIMESTAMP('…') [AND updated < TIMESTAMP('…')]
    if let Some(filter) = query(target, "filter") {
        if server.cql2 == Some(false) {
            items.clear();
        }
        for condition in filter.split(" AND ") {
            let at = condition.split('\'').nth(1).unwrap_or("").to_string();
            let below = condition.contains(" < ");
            items.retain(|i| {
                let t = i["properties"]["updated"].as_str().unwrap_or("");
                if below {
                    t < at.as_str()
                } else {
                    t >= at.as_str()
                }
            });
        }
    }
    let sortby = query(target, "sortby");
    if server.sort_ignored {
        items.reverse();
    } else if sortby.as_deref() == Some("-updated") {
        items.sort_by_key(|i| {
            std::cmp::Reverse(
                i["properties"]["updated"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        });
    } else if server.sort && sortby.as_deref() == Some("-datetime") {
        items.sort_by_key(|i| std::cmp::Reverse(item_time(i).to_string()));
    } else if server.sort {
        items.sort_by_key(|i| item_time(i).to_string());
    } else {
        items.reverse(); // newest first, as one real back-end does
    }
    let page: Vec<Json> = items
        .iter()
        .skip(offset)
        .take(limit)
        .map(|i| (*i).clone())
        .collect();
    let mut links = vec![];
    if offset + limit < items.len() {
        let next = if server.repeat { 0 } else { offset + limit };
        let base = target.split("&token=").next().unwrap();
        links.push(if server.post {
            json!({"rel": "next", "href": format!("{root}{base}"), "method": "POST",
                   "body": {"token": next.to_string()}, "merge": true})
        } else {
            json!({"rel": "next", "href": format!("{root}{base}&token={next}")})
        });
    }
    let returned = page.len();
    let mut answer = json!({"type": "FeatureCollection", "features": page, "links": links});
    if server.number_matched {
        answer["numberMatched"] = json!(items.len());
        answer["numberReturned"] = json!(returned);
    }
    (200, String::new(), answer)
}

/// An item's time for the datetime interval and the sort: `datetime`, or
/// `start_datetime` for an item with a range only.
fn item_time(item: &Json) -> &str {
    let properties = &item["properties"];
    properties["datetime"]
        .as_str()
        .or_else(|| properties["start_datetime"].as_str())
        .unwrap_or("")
}
