//! The `stac` synchronizer against hostile servers (issue 15, points 1 and
//! 4): one on 127.0.0.1, the configured origin, that links and redirects to
//! another on 127.0.0.2, which records what it receives; one that pages
//! without end; one whose answer never ends. Only the loopback range is
//! used.

use muninn_sync_e2e::{binary, Archive, Run, BASE_CONFIG};
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a hostile server answers.
enum Reply {
    Json(Json),
    Redirect(u16, String),
    /// A chunked body that never ends.
    Endless,
}

/// One request as the server read it.
struct Seen {
    method: String,
    target: String,
    body: Json,
    /// The whole request, head and body, as text.
    raw: String,
}

type Handler = Box<dyn Fn(&Seen) -> Reply + Send + Sync>;
/// Where a server's handler is set once its peer's address is known.
type HandlerSlot = Arc<Mutex<Option<Handler>>>;
/// Every request a server received.
type Received = Arc<Mutex<Vec<Seen>>>;

/// A server on `ip` whose answers `handler` decides once `handler` is set;
/// returns its origin and every request it received.
fn serve(ip: &str) -> (String, HandlerSlot, Received) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let handler: HandlerSlot = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (h, s) = (Arc::clone(&handler), Arc::clone(&seen));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (h, s) = (Arc::clone(&h), Arc::clone(&s));
            std::thread::spawn(move || respond(stream, &h, &s));
        }
    });
    (origin, handler, seen)
}

fn respond(mut stream: TcpStream, handler: &Mutex<Option<Handler>>, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut raw = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        raw.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    raw.push_str(&String::from_utf8_lossy(&body));
    let mut words = raw.split_whitespace();
    let request = Seen {
        method: words.next().unwrap_or("").to_string(),
        target: words.next().unwrap_or("").to_string(),
        body: serde_json::from_slice(&body).unwrap_or(Json::Null),
        raw,
    };
    let reply = (handler.lock().unwrap().as_ref().unwrap())(&request);
    seen.lock().unwrap().push(request);
    let _ = match reply {
        Reply::Json(json) => {
            let body = json.to_string();
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        Reply::Redirect(status, location) => write!(
            stream,
            "HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Reply::Endless => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
            stream.write_all(head.as_bytes()).and_then(|()| loop {
                stream.write_all(chunk.as_bytes())?;
            })
        }
    };
}

fn item(n: u32) -> Json {
    let time = format!("2024-01-01T00:00:{:02}Z", n % 60);
    json!({
        "type": "Feature", "stac_version": "1.0.0", "id": format!("S2_{n}"), "collection": "s2",
        "geometry": {"type": "Point", "coordinates": [5, 52]},
        "properties": {"datetime": time, "updated": time},
        "assets": {"product": {"href": format!("https://example.org/S2_{n}.zip")}}
    })
}

fn landing(search: String) -> Reply {
    Reply::Json(json!({
        "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
        "links": [{"rel": "search", "href": search}]
    }))
}

fn page(n: u32, next: Option<Json>) -> Reply {
    Reply::Json(
        json!({"type": "FeatureCollection", "features": [item(n)], "links": next.into_iter().collect::<Vec<_>>()}),
    )
}

fn token(seen: &Seen) -> Option<String> {
    seen.target
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("token=").map(str::to_string))
        .or_else(|| {
            seen.body
                .get("token")
                .and_then(Json::as_str)
                .map(str::to_string)
        })
}

/// An archive whose stac synchronizer reads `home`, with an `Authorization`
/// and an `X-Api-Key` header, and `http` settings.
fn archive(home: &str, http: &str) -> Archive {
    Archive::new(&format!(
        "{BASE_CONFIG}\n[\"synchronizer:stac\"]\nmodule = \"stac\"\nurl = \"{home}/\"\ncollections = {{ S2MSI2A = \"s2\" }}\nheaders = {{ Authorization = \"Bearer TOKEN-A\", X-Api-Key = \"KEY-A\" }}\n[\"synchronizer:stac\".http]\ninitial_backoff = 0.01\nmax_retries = 1\n{http}\n"
    ))
}

/// Runs `muninn-sync archive.toml stac`, killed after `deadline`: a run
/// that does not end is a failure, not a hung test.
fn sync_within(archive: &Archive, deadline: Duration) -> Run {
    let out = archive.path("stdout.txt");
    let err = archive.path("stderr.txt");
    let mut child = Command::new(binary())
        .current_dir(archive.dir.path())
        .args(["archive.toml", "stac"])
        .env_remove("MUNINN_CONFIG_PATH")
        .env_remove("MUNINN_SYNC_PLUGIN_PATH")
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&err).unwrap_or_default();
            let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join("\n");
            panic!("muninn-sync still ran after {deadline:?}; its last lines:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    }
}

const DEADLINE: Duration = Duration::from_secs(60);

fn has_credentials(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    ["token-a", "key-a", "authorization", "x-api-key"]
        .iter()
        .any(|word| lower.contains(word))
}

#[test]
fn get_links_and_redirects_to_another_host_get_no_credentials() {
    let (home, home_handler, home_seen) = serve("127.0.0.1");
    let (other, other_handler, other_seen) = serve("127.0.0.2");
    let (h, o) = (home.clone(), other.clone());
    *home_handler.lock().unwrap() = Some(Box::new(move |seen| {
        match (seen.target.as_str(), token(seen)) {
            ("/", _) => landing(format!("{h}/search")),
            // Back home from the other host, then redirected there again.
            (_, Some(t)) if t == "2" => Reply::Redirect(302, format!("{o}/search?token=3")),
            _ => page(
                1,
                Some(json!({"rel": "next", "href": format!("{o}/search?token=1")})),
            ),
        }
    }));
    let h = home.clone();
    *other_handler.lock().unwrap() = Some(Box::new(move |seen| match token(seen).as_deref() {
        Some("1") => page(
            2,
            Some(json!({"rel": "next", "href": format!("{h}/search?token=2")})),
        ),
        _ => page(3, None),
    }));
    let archive = archive(&home, "");
    sync_within(&archive, DEADLINE).assert_ok();
    assert_eq!(
        archive.strings("SELECT product_name FROM core ORDER BY 1"),
        ["S2_1", "S2_2", "S2_3"]
    );
    let there = other_seen.lock().unwrap();
    assert_eq!(there.len(), 2);
    for seen in there.iter() {
        assert!(
            !has_credentials(&seen.raw),
            "a credential reached {other}:\n{}",
            seen.raw
        );
    }
    let at_home = home_seen.lock().unwrap();
    assert_eq!(at_home.len(), 3);
    for seen in at_home.iter() {
        assert!(
            seen.raw.contains("Bearer TOKEN-A") && seen.raw.contains("KEY-A"),
            "{}",
            seen.raw
        );
    }
}

#[test]
fn post_links_and_the_search_link_to_another_host_get_no_credentials() {
    let (home, home_handler, home_seen) = serve("127.0.0.1");
    let (other, other_handler, other_seen) = serve("127.0.0.2");
    let o = other.clone();
    *home_handler.lock().unwrap() = Some(Box::new(move |seen| match seen.method.as_str() {
        "GET" => landing(format!("{o}/search")),
        // A POST next link home, redirected with 307 (the POST repeated there).
        _ => Reply::Redirect(307, format!("{o}/search")),
    }));
    let (h, o) = (home.clone(), other.clone());
    *other_handler.lock().unwrap() = Some(Box::new(move |seen| match token(seen).as_deref() {
        None => page(
            1,
            Some(
                json!({"rel": "next", "href": format!("{h}/search"), "method": "POST", "body": {"token": "2"}, "merge": true}),
            ),
        ),
        Some("2") => page(
            2,
            Some(
                json!({"rel": "next", "href": format!("{o}/search"), "method": "POST", "body": {"token": "3"}, "merge": true}),
            ),
        ),
        _ => page(3, None),
    }));
    let archive = archive(&home, "");
    sync_within(&archive, DEADLINE).assert_ok();
    assert_eq!(archive.count("SELECT count(*) FROM core"), 3);
    let there = other_seen.lock().unwrap();
    let methods: Vec<&str> = there.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["GET", "POST", "POST"]);
    for seen in there.iter() {
        assert!(
            !has_credentials(&seen.raw),
            "a credential reached {other}:\n{}",
            seen.raw
        );
    }
    let at_home = home_seen.lock().unwrap();
    assert_eq!(at_home.len(), 2);
    assert!(at_home.iter().all(|s| s.raw.contains("KEY-A")));
}

#[test]
fn other_origins_refuse_ends_the_run_naming_both_origins() {
    let (home, home_handler, _) = serve("127.0.0.1");
    let (other, other_handler, other_seen) = serve("127.0.0.2");
    let (h, o) = (home.clone(), other.clone());
    *home_handler.lock().unwrap() = Some(Box::new(move |seen| match seen.target.as_str() {
        "/" => landing(format!("{h}/search")),
        _ => page(
            1,
            Some(json!({"rel": "next", "href": format!("{o}/search?token=1")})),
        ),
    }));
    *other_handler.lock().unwrap() = Some(Box::new(|_| page(2, None)));
    let archive = archive(&home, "other_origins = \"refuse\"");
    let run = sync_within(&archive, DEADLINE);
    run.assert_error(1, &[&home, &other, "other_origins", "refuse"]);
    assert!(
        !run.stderr.contains("TOKEN-A") && !run.stderr.contains("KEY-A"),
        "{}",
        run.stderr
    );
    assert!(other_seen.lock().unwrap().is_empty());
}

#[test]
fn a_server_that_never_stops_paging_is_stopped_by_max_requests() {
    let (home, handler, seen) = serve("127.0.0.1");
    let h = home.clone();
    *handler.lock().unwrap() = Some(Box::new(move |seen| match seen.target.as_str() {
        "/" => landing(format!("{h}/search")),
        _ => {
            let n: u32 = token(seen).and_then(|t| t.parse().ok()).unwrap_or(0);
            page(
                n,
                Some(json!({"rel": "next", "href": format!("{h}/search?token={}", n + 1)})),
            )
        }
    }));
    let archive = archive(&home, "max_requests = 20");
    let started = Instant::now();
    let run = sync_within(&archive, DEADLINE);
    run.assert_error(1, &["http.max_requests", "sent 20 requests"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(seen.lock().unwrap().len(), 20);
}

#[test]
fn an_answer_that_never_ends_is_cut_off_at_max_response_bytes() {
    let (home, handler, _) = serve("127.0.0.1");
    let h = home.clone();
    *handler.lock().unwrap() = Some(Box::new(move |seen| match seen.target.as_str() {
        "/" => landing(format!("{h}/search")),
        _ => Reply::Endless,
    }));
    let archive = archive(&home, "max_response_bytes = 1048576\ntimeout = 30");
    let started = Instant::now();
    let run = sync_within(&archive, DEADLINE);
    run.assert_error(
        1,
        &[
            "grew past http.max_response_bytes (1048576 bytes)",
            &format!("GET {home}/search?"),
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
