//! The `stac` synchronizer against a local server that answers as STAC APIs
//! do (a landing page with conformance classes, Item Search with token
//! paging), started on 127.0.0.1 by the test.

use muninn_sync_e2e::{Archive, BASE_CONFIG};
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// What the server holds and how it behaves.
#[derive(Default)]
struct Server {
    items: Vec<Json>,
    sort: bool,
    /// Answers to give to /search before the real one (status, extra header).
    failures: Vec<(u16, &'static str)>,
    /// Every request line seen.
    seen: Vec<String>,
    /// Next links as POST with a token in the body, merged.
    post: bool,
    /// The page at this offset is not JSON.
    garbage_at: Option<usize>,
    /// The next link always points at the first page again.
    repeat: bool,
    /// Claims CQL2 text filtering; `Some(true)`: it works, `Some(false)`:
    /// it answers every filter with no items (as one real back-end does).
    cql2: Option<bool>,
}

/// Starts the server; returns its base URL.
fn serve(state: Arc<Mutex<Server>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let root = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
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
            let (status, extra, body) = answer(&state, &root, &target, &line, &posted);
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
    });
    base
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
    state: &Mutex<Server>,
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
    let mut items = server.items.clone();
    // The datetime interval, closed at both ends as servers treat it.
    if let Some(interval) = query(target, "datetime") {
        let (from, to) = interval.split_once('/').unwrap();
        items.retain(|i| {
            let t = i["properties"]["datetime"].as_str().unwrap_or("");
            (from == ".." || t >= from) && (to == ".." || t <= to)
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
    if query(target, "sortby").as_deref() == Some("-updated") {
        items.sort_by_key(|i| {
            std::cmp::Reverse(
                i["properties"]["updated"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        });
    } else if server.sort {
        items.sort_by_key(|i| {
            i["properties"]["datetime"]
                .as_str()
                .unwrap_or("")
                .to_string()
        });
    } else {
        items.reverse(); // newest first, as one real back-end does
    }
    let page: Vec<Json> = items.iter().skip(offset).take(limit).cloned().collect();
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
    (
        200,
        String::new(),
        json!({"type": "FeatureCollection", "features": page, "links": links}),
    )
}

fn item(id: &str, datetime: &str, cloud: f64) -> Json {
    json!({
        "type": "Feature", "stac_version": "1.0.0", "id": id, "collection": "s2",
        "geometry": {"type": "Polygon", "coordinates": [[[5, 52], [6, 52], [6, 53], [5, 52]]]},
        "properties": {"datetime": datetime, "updated": datetime, "eo:cloud_cover": cloud, "platform": "sentinel-2a"},
        "assets": {"product": {"href": format!("https://example.org/{id}.zip"), "file:size": 1000,
                   "file:checksum": "d50110d41d8cd98f00b204e9800998ecf8427e"}}
    })
}

fn archive(base: &str, extra: &str) -> Archive {
    Archive::new(&format!(
        "{BASE_CONFIG}\n[\"synchronizer:stac\"]\nmodule = \"stac\"\nurl = \"{base}/\"\ncollections = {{ S2MSI2A = \"s2\" }}\npage_size = 2\n{extra}\n[\"synchronizer:stac\".http]\ninitial_backoff = 0.01\n"
    ))
}

fn five_items() -> Vec<Json> {
    (1..=5)
        .map(|i| {
            item(
                &format!("S2_{i}"),
                &format!("2024-01-0{i}T10:00:00Z"),
                f64::from(i),
            )
        })
        .collect()
}

#[test]
fn a_user_syncs_re_syncs_forces_and_prunes_a_stac_api() {
    let state = Arc::new(Mutex::new(Server {
        items: five_items(),
        sort: true,
        failures: vec![(503, ""), (429, "Retry-After: 1\r\n")],
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(&base, "prune = true\ntime_field = \"datetime\"");

    let first = archive.sync(&["stac", "--incremental"]);
    first.assert_ok();
    assert!(
        first
            .stderr
            .contains("5 created, 0 updated, 0 removed, 0 failed"),
        "{}",
        first.stderr
    );
    assert_eq!(
        archive.strings("SELECT product_name || ' ' || remote_url || ' ' || hash || ' ' || s.eo_cloud_cover FROM core JOIN stac s USING (uuid) ORDER BY 1")[0],
        "S2_1 https://example.org/S2_1.zip md5:d41d8cd98f00b204e9800998ecf8427e 1.0"
    );
    assert_eq!(
        archive.strings("SELECT product_type || ' ' || watermark FROM muninn_sync_watermarks"),
        ["S2MSI2A 2024-01-05 10:00:00"]
    );
    // The 503 and the 429 were retried.
    assert!(
        first.stderr.contains("503") && first.stderr.contains("429"),
        "{}",
        first.stderr
    );

    let again = archive.sync(&["stac"]);
    again.assert_ok();
    assert!(
        again
            .stderr
            .contains("0 created, 0 updated, 0 removed, 0 failed, 5 unchanged"),
        "{}",
        again.stderr
    );
    let forced = archive.sync(&["stac", "--force"]);
    assert!(
        forced.stderr.contains("0 created, 5 updated"),
        "{}",
        forced.stderr
    );

    // The server drops one item and changes another.
    {
        let mut server = state.lock().unwrap();
        server.items.remove(2);
        server.items[0]["properties"]["eo:cloud_cover"] = json!(99.5);
    }
    let pruned = archive.sync(&["stac", "--start", "2024-01-01", "--end", "2024-01-06"]);
    pruned.assert_ok();
    assert!(
        pruned.stderr.contains("0 created, 1 updated, 1 removed"),
        "{}",
        pruned.stderr
    );
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["S2_1", "S2_2", "S2_4", "S2_5"]
    );
}

#[test]
fn a_server_that_cannot_sort_still_gives_a_complete_ordered_sync() {
    let state = Arc::new(Mutex::new(Server {
        items: five_items(),
        sort: false,
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(&base, "");
    let run = archive.sync(&["stac"]);
    run.assert_ok();
    assert!(
        run.stderr.contains("the server cannot sort"),
        "{}",
        run.stderr
    );
    assert_eq!(archive.count("SELECT count(*) FROM core"), 5);
    assert!(state
        .lock()
        .unwrap()
        .seen
        .iter()
        .all(|l| !l.contains("sortby")));
}

#[test]
fn secrets_stay_out_of_messages_and_bad_pages_write_nothing() {
    let state = Arc::new(Mutex::new(Server {
        items: five_items(),
        sort: true,
        failures: vec![
            (500, ""),
            (500, ""),
            (500, ""),
            (500, ""),
            (500, ""),
            (500, ""),
        ],
        ..Server::default()
    }));
    let base = serve(state);
    let archive = archive(
        &base,
        "headers = { Authorization = \"Bearer ${STAC_TEST_TOKEN}\" }",
    );
    let run = muninn_sync_e2e::muninn_sync(
        archive.dir.path(),
        &["archive.toml", "stac"],
        &[("STAC_TEST_TOKEN", "very-secret-token")],
    );
    run.assert_error(1, &["synchronizer \"stac\"", "500"]);
    assert!(!run.stderr.contains("very-secret-token"), "{}", run.stderr);
    let unset = archive.sync(&["stac"]);
    unset.assert_error(1, &["STAC_TEST_TOKEN is not set"]);
}

#[test]
fn post_paging_odd_geometries_and_items_without_file_fields() {
    let mut items = five_items();
    items[1]["geometry"] = json!({"type": "MultiPolygon", "coordinates": [
        [[[179, 0], [180, 0], [180, 1], [179, 0]]], [[[-180, 0], [-179, 0], [-180, 1], [-180, 0]]]]});
    items[2]["geometry"] = Json::Null;
    items[3]["assets"] =
        json!({"data": {"href": "https://example.org/data.tif", "roles": ["data"]}});
    let state = Arc::new(Mutex::new(Server {
        items,
        sort: true,
        post: true,
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(&base, "");
    archive.sync(&["stac"]).assert_ok();
    assert_eq!(
        archive.strings("SELECT product_name || ' ' || CASE WHEN footprint IS NULL THEN 'none' ELSE hex(substr(footprint, 40, 1)) END || ' ' || coalesce(size, '-') || ' ' || remote_url FROM core ORDER BY 1"),
        [
            // SpatiaLite's class byte: 03 Polygon, 06 MultiPolygon.
            "S2_1 03 1000 https://example.org/S2_1.zip",
            "S2_2 06 1000 https://example.org/S2_2.zip",
            "S2_3 none 1000 https://example.org/S2_3.zip",
            "S2_4 03 - https://example.org/data.tif",
            "S2_5 03 1000 https://example.org/S2_5.zip",
        ]
    );
    assert!(state
        .lock()
        .unwrap()
        .seen
        .iter()
        .any(|l| l.starts_with("POST /search")));
}

#[test]
fn a_garbage_page_or_a_repeated_page_fails_clearly_keeping_what_was_applied() {
    let state = Arc::new(Mutex::new(Server {
        items: five_items(),
        sort: true,
        garbage_at: Some(2),
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(&base, "");
    let garbage = archive.sync(&["stac"]);
    garbage.assert_error(
        1,
        &[
            "synchronizer \"stac\"",
            "/search",
            "the answer is not JSON",
            "<html>502",
        ],
    );
    // The first page was applied whole and committed; nothing of the bad one.
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["S2_1", "S2_2"]
    );
    assert_eq!(archive.strings("PRAGMA integrity_check"), ["ok"]);

    {
        let mut server = state.lock().unwrap();
        server.garbage_at = None;
        server.repeat = true;
    }
    let repeated = archive.sync(&["stac"]);
    repeated.assert_error(1, &["the same page of 2 items twice", "instead of looping"]);
}

#[test]
fn a_long_window_is_read_in_concurrent_slices_and_applied_in_order() {
    let state = Arc::new(Mutex::new(Server {
        items: five_items(),
        sort: false,
        ..Server::default()
    }));
    let base = serve(state.clone());
    let archive = archive(&base, "slice = \"1d\"\nconcurrency = 3");
    let run = archive.sync(&["stac", "--start", "2024-01-01", "--end", "2024-01-06"]);
    run.assert_ok();
    assert!(run.stderr.contains("5 created"), "{}", run.stderr);
    assert!(
        run.stderr.contains("reading the window in time slices"),
        "{}",
        run.stderr
    );
    let searches: Vec<String> = state
        .lock()
        .unwrap()
        .seen
        .iter()
        .filter(|l| l.contains("datetime="))
        .cloned()
        .collect();
    assert_eq!(searches.len(), 5, "{searches:?}");
    // Applied in order of time, whatever order the slices came back in
    // (and the server lists newest first).
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY rowid"),
        ["S2_1", "S2_2", "S2_3", "S2_4", "S2_5"]
    );
    let again = archive.sync(&["stac", "--start", "2024-01-01", "--end", "2024-01-06"]);
    assert!(
        again
            .stderr
            .contains("0 created, 0 updated, 0 removed, 0 failed, 5 unchanged"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_cql2_filter_on_updated_is_used_when_it_works_and_doubted_when_it_does_not() {
    for works in [true, false] {
        let state = Arc::new(Mutex::new(Server {
            items: five_items(),
            sort: true,
            cql2: Some(works),
            ..Server::default()
        }));
        let base = serve(state.clone());
        let archive = archive(&base, "time_field = \"updated\"");
        let run = archive.sync(&["stac", "--start", "2024-01-03"]);
        run.assert_ok();
        assert!(
            run.stderr.contains("3 created, 0 updated"),
            "{}",
            run.stderr
        );
        assert_eq!(
            archive.strings("SELECT product_name FROM core ORDER BY 1"),
            ["S2_3", "S2_4", "S2_5"]
        );
        assert_eq!(
            run.stderr.contains("cannot be trusted"),
            !works,
            "{}",
            run.stderr
        );
        let filtered_searches = state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|l| l.contains("filter="))
            .count();
        // The probe, then the window's two pages when the filter works.
        assert_eq!(filtered_searches, if works { 3 } else { 1 });
    }
}
