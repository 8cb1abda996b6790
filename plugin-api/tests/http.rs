//! The HTTP client helper against a scripted server on 127.0.0.1: what a
//! plugin sees when a catalogue throttles, fails, hangs or is not there, and
//! that no secret leaks into an error or a log line on the way.
//!
//! The crate's dev-dependency on itself turns the `http` feature on, so a
//! plain `cargo test --workspace` runs these.
#![cfg(feature = "http")]

use muninn_sync_plugin_api::http::{HttpClient, HttpClientBuilder, HttpConfig, HttpError, Method};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the server does with one connection.
enum Step {
    Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Reads the request and holds the connection without answering.
    Hang(Duration),
    /// Writes these bytes as they are, then holds the connection.
    Raw(String, Duration),
    /// Answers 200 with a chunked body that never ends, until the client
    /// hangs up.
    Endless,
}

fn reply(status: u16, body: &str) -> Step {
    Step::Reply {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

/// A server that answers one connection per step, in order, then stops
/// listening; it keeps every request it read, head and body, as text.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(script: Vec<Step>) -> Server {
        Server::start_on("127.0.0.1", script)
    }

    /// As [`Server::start`], on another loopback address (127.0.0.2 is
    /// another origin than 127.0.0.1).
    fn start_on(ip: &str, script: Vec<Step>) -> Server {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        thread::spawn(move || {
            for step in script {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let request = read_request(&stream);
                seen.lock().unwrap().push(request);
                answer(stream, step);
            }
        });
        Server { addr, requests }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// `http://ip:port`, as origins are written.
    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_request(stream: &TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap();
            }
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

fn answer(mut stream: TcpStream, step: Step) {
    match step {
        Step::Reply {
            status,
            headers,
            body,
        } => {
            let mut response = format!(
                "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                response.push_str(&format!("{name}: {value}\r\n"));
            }
            response.push_str("\r\n");
            response.push_str(&body);
            // The client may have given up already; that is its business.
            let _ = stream.write_all(response.as_bytes());
        }
        Step::Hang(time) => thread::sleep(time),
        Step::Raw(bytes, time) => {
            let _ = stream.write_all(bytes.as_bytes());
            thread::sleep(time);
        }
        Step::Endless => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            let chunk = format!("10000\r\n{}\r\n", "[".repeat(0x10000));
            if stream.write_all(head.as_bytes()).is_ok() {
                while stream.write_all(chunk.as_bytes()).is_ok() {}
            }
        }
    }
}

/// Retries without real waiting, so that the tests stay fast.
fn quick() -> HttpClientBuilder {
    HttpClient::builder()
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(5))
}

/// Everything logged at any level while `run` runs, as text.
fn capture_logs<T>(run: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer(Arc::new(Mutex::new(Vec::new())));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let value = tracing::subscriber::with_default(subscriber, run);
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (value, logs)
}

fn http_error(error: &anyhow::Error) -> &HttpError {
    error
        .downcast_ref::<HttpError>()
        .expect("the error is an HttpError")
}

fn retry_warnings(logs: &str) -> usize {
    logs.lines()
        .filter(|line| line.contains("WARN") && line.contains("retrying"))
        .count()
}

#[test]
fn a_503_is_retried_until_the_server_answers() {
    let server = Server::start(vec![
        reply(503, "busy"),
        reply(503, "busy"),
        reply(200, "ok"),
    ]);
    let client = quick().build().unwrap();

    let (response, logs) = capture_logs(|| client.get(&server.url("/items")));

    let response = response.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "ok");
    assert_eq!(server.requests().len(), 3);
    assert_eq!(retry_warnings(&logs), 2, "{logs}");
    assert!(
        logs.contains("attempt=1") && logs.contains("attempt=2"),
        "{logs}"
    );
    assert!(logs.contains("503 Service Unavailable"), "{logs}");
}

#[test]
fn a_429_waits_as_long_as_retry_after_says() {
    let server = Server::start(vec![
        Step::Reply {
            status: 429,
            headers: vec![("Retry-After", "1".to_string())],
            body: "slow down".to_string(),
        },
        reply(200, "ok"),
    ]);
    // Backoff alone would wait a millisecond.
    let client = quick().build().unwrap();

    let started = Instant::now();
    let (response, logs) = capture_logs(|| client.get(&server.url("/search")));

    assert_eq!(response.unwrap().status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(logs.contains("retry_after_ms=1000"), "{logs}");
    assert!(logs.contains("wait_ms=1000"), "{logs}");
}

#[test]
fn a_404_is_not_retried_and_the_error_says_what_and_where() {
    let server = Server::start(vec![reply(404, "no such collection"), reply(200, "ok")]);
    let client = quick().build().unwrap();
    let url = server.url("/collections/S2_MSI_L1C");

    let error = client.get(&url).unwrap_err();

    assert_eq!(server.requests().len(), 1);
    let message = format!("{error:#}");
    assert!(message.contains(&format!("GET {url}")), "{message}");
    assert!(message.contains("404 Not Found"), "{message}");
    assert!(message.contains("no such collection"), "{message}");
    assert!(!message.contains("attempts"), "{message}");
    assert_eq!(http_error(&error).status().map(|s| s.as_u16()), Some(404));
    assert_eq!(http_error(&error).attempts(), 1);
}

#[test]
fn retrying_stops_after_max_retries() {
    let server = Server::start(vec![
        reply(500, "oops"),
        reply(502, "bad gateway"),
        reply(500, "still oops"),
        reply(200, "too late"),
    ]);
    let client = quick().max_retries(2).build().unwrap();

    let error = client.get(&server.url("/odata/Products")).unwrap_err();

    assert_eq!(server.requests().len(), 3);
    let message = format!("{error:#}");
    assert!(message.contains("500 Internal Server Error"), "{message}");
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert!(message.contains("still oops"), "{message}");
    assert_eq!(http_error(&error).attempts(), 3);
}

#[test]
fn a_refused_connection_is_retried_then_reported() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = quick().max_retries(2).build().unwrap();
    let url = format!("http://127.0.0.1:{port}/stac");

    let (result, logs) = capture_logs(|| client.get(&url));

    let error = result.unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains(&format!("GET {url}")), "{message}");
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert!(message.to_lowercase().contains("connect"), "{message}");
    assert_eq!(http_error(&error).status(), None);
    assert_eq!(retry_warnings(&logs), 2, "{logs}");
}

#[test]
fn a_server_that_never_answers_times_out() {
    let server = Server::start(vec![Step::Hang(Duration::from_secs(10))]);
    let client = quick()
        .timeout(Duration::from_millis(300))
        .max_retries(0)
        .build()
        .unwrap();

    let started = Instant::now();
    let error = client.get(&server.url("/slow")).unwrap_err();
    let elapsed = started.elapsed();

    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    // Far below the server's 10 s: the client's timeout ended it.
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    assert!(http_error(&error).is_timeout(), "{error:#}");
    let message = format!("{error:#}");
    assert!(message.contains("timed out"), "{message}");
    assert!(message.contains("timeout 0.3 s"), "{message}");
}

#[test]
fn the_rate_cap_spaces_requests() {
    let server = Server::start((0..5).map(|_| reply(200, "ok")).collect());
    let client = quick().max_requests_per_second(20.0).build().unwrap();

    let started = Instant::now();
    for _ in 0..5 {
        client.get(&server.url("/page")).unwrap();
    }

    // Five starts 50 ms apart span at least 200 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn secrets_appear_in_no_error_and_no_log() {
    let echo = "you sent token=tok-abc123, password hunter2-pass and Bearer bear-xyz";
    let server = Server::start(vec![reply(500, echo), reply(500, echo)]);
    let client = quick()
        .max_retries(1)
        .secret("hunter2-pass")
        .bearer_token("bear-xyz")
        .build()
        .unwrap();
    let url = server.url("/search?token=tok-abc123&limit=5");

    let (result, logs) = capture_logs(|| client.get(&url));

    // The server got the real credentials: they were masked, not left out.
    let sent = server.requests().join("\n");
    assert!(sent.contains("token=tok-abc123"), "{sent}");
    assert!(sent.contains("Bearer bear-xyz"), "{sent}");
    let error = result.unwrap_err();
    let texts = [
        format!("{error}"),
        format!("{error:#}"),
        format!("{error:?}"),
        logs,
        format!("{client:?}"),
    ];
    for text in &texts {
        for secret in ["tok-abc123", "hunter2-pass", "bear-xyz"] {
            assert!(!text.contains(secret), "{secret} leaked into: {text}");
        }
    }
    let message = &texts[1];
    assert!(
        message.contains(&format!(
            "GET http://{}/search?token=***&limit=5",
            server.addr
        )),
        "{message}"
    );
    assert!(
        message.contains("you sent token=***, password *** and ***"),
        "{message}"
    );
    assert!(texts[3].contains("token=***"), "{}", texts[3]);
}

#[test]
fn transport_errors_are_redacted_too() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = quick().max_retries(1).build().unwrap();
    let url = format!(
        "http://reader:url-pass-77@127.0.0.1:{port}/x?access_token=tok-abc123&api_key=k-456"
    );

    let (result, logs) = capture_logs(|| client.get(&url));

    let error = result.unwrap_err();
    for text in [format!("{error:#}"), format!("{error:?}"), logs] {
        for secret in ["tok-abc123", "k-456", "url-pass-77"] {
            assert!(!text.contains(secret), "{secret} leaked into: {text}");
        }
        assert!(
            text.contains(&format!(
                "http://reader:***@127.0.0.1:{port}/x?access_token=***&api_key=***"
            )),
            "{text}"
        );
    }
}

#[test]
fn post_form_sends_a_form_and_get_json_reads_json() {
    #[derive(serde::Deserialize, Debug)]
    struct Token {
        access_token: String,
    }
    #[derive(serde::Deserialize, Debug)]
    struct Page {
        #[allow(dead_code)]
        features: Vec<Feature>,
    }
    #[derive(serde::Deserialize, Debug)]
    struct Feature {
        #[allow(dead_code)]
        id: String,
    }
    let server = Server::start(vec![
        reply(200, r#"{"access_token": "fresh-token-1"}"#),
        reply(200, r#"{"features": [{"id": "a"}, {"id": 7}]}"#),
    ]);
    let client = quick().secret("pw 1&2").build().unwrap();

    let token: Token = client
        .post_form(
            &server.url("/token"),
            &[("grant_type", "password"), ("password", "pw 1&2")],
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(token.access_token, "fresh-token-1");
    let error = client.get_json::<Page>(&server.url("/search")).unwrap_err();

    let requests = server.requests();
    assert!(requests[0].starts_with("POST /token "), "{}", requests[0]);
    assert!(
        requests[0].contains("application/x-www-form-urlencoded"),
        "{}",
        requests[0]
    );
    assert!(
        requests[0].ends_with("grant_type=password&password=pw+1%262"),
        "{}",
        requests[0]
    );
    assert!(
        requests[1].contains("accept: application/json"),
        "{}",
        requests[1]
    );
    assert!(
        requests[1].contains("user-agent: muninn-sync-plugin/"),
        "{}",
        requests[1]
    );
    let message = format!("{error:#}");
    assert!(
        message.contains("not the expected JSON at features[1].id"),
        "{message}"
    );
}

#[test]
fn the_settings_fit_in_a_plugin_configuration() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PluginConfig {
        #[allow(dead_code)]
        url: String,
        #[serde(default)]
        http: HttpConfig,
    }

    let bare: PluginConfig =
        muninn_sync_plugin_api::parse_config(r#"{"url": "https://example.org"}"#).unwrap();
    assert_eq!(bare.http, HttpConfig::default());
    assert_eq!(bare.http.timeout, Duration::from_secs(60));

    let tuned: PluginConfig = muninn_sync_plugin_api::parse_config(
        r#"{"url": "https://example.org", "http": {"timeout": 2.5, "max_retries": 0,
            "max_requests_per_second": 4, "headers": {"Authorization": "Bearer cfg-secret"}}}"#,
    )
    .unwrap();
    assert_eq!(tuned.http.timeout, Duration::from_millis(2500));
    assert_eq!(tuned.http.max_retries, 0);
    assert_eq!(tuned.http.max_requests_per_second, Some(4.0));
    assert_eq!(tuned.http.connect_timeout, Duration::from_secs(10));
    let shown = format!("{:?}", HttpClient::new(&tuned.http).unwrap());
    assert!(!shown.contains("cfg-secret"), "{shown}");

    for (json, expected) in [
        (
            r#"{"url": "u", "http": {"timeout": 0}}"#,
            "key \"http.timeout\"",
        ),
        (
            r#"{"url": "u", "http": {"initial_backoff": -1}}"#,
            "key \"http.initial_backoff\"",
        ),
        (
            r#"{"url": "u", "http": {"max_requests_per_second": 0}}"#,
            "key \"http.max_requests_per_second\"",
        ),
        (
            r#"{"url": "u", "http": {"retries": 3}}"#,
            "unknown field `retries`",
        ),
    ] {
        let error = muninn_sync_plugin_api::parse_config::<PluginConfig>(json)
            .err()
            .unwrap_or_else(|| panic!("{json} was accepted"));
        assert!(error.to_string().contains(expected), "{error}");
    }
}

#[test]
fn a_zero_timeout_set_in_code_is_refused_at_build() {
    let error = HttpClient::builder()
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("\"timeout\""), "{error}");
}

#[test]
fn the_client_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<HttpClient>();
}

/// A redirect to `to`.
fn redirect(status: u16, to: String) -> Step {
    Step::Reply {
        status,
        headers: vec![("Location", to)],
        body: String::new(),
    }
}

/// Whether a request (head and body, as the server read it) carries any of
/// the configured credentials.
fn has_credentials(request: &str) -> bool {
    let lower = request.to_ascii_lowercase();
    [
        "key-a",
        "token-a",
        "x-api-key",
        "authorization",
        "x-plain",
        "plain-a",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

#[test]
fn configured_headers_go_only_to_the_configured_origin() {
    let elsewhere = Server::start_on("127.0.0.2", (0..4).map(|_| reply(200, "{}")).collect());
    let home = Server::start(vec![
        redirect(302, elsewhere.url("/moved")),
        redirect(307, elsewhere.url("/posted")),
        reply(200, "{}"),
    ]);
    let client = quick()
        .origin(home.url("/stac/"))
        .header("X-Api-Key", "KEY-A")
        .header("X-Plain", "plain-a")
        .bearer_token("TOKEN-A")
        .build()
        .unwrap();
    let body = serde_json::json!({"token": "2"});
    // A link to another origin, GET and POST.
    client.get(&elsewhere.url("/direct")).unwrap();
    client
        .send(Method::POST, &elsewhere.url("/direct-post"), |r| {
            r.json(&body)
        })
        .unwrap();
    // A redirect to another origin, GET and POST (307 repeats the POST).
    let moved = client.get(&home.url("/search")).unwrap();
    assert_eq!(moved.url().as_str(), elsewhere.url("/moved"));
    client
        .send(Method::POST, &home.url("/search"), |r| r.json(&body))
        .unwrap();
    // Home still gets them.
    client.get(&home.url("/again")).unwrap();

    let there = elsewhere.requests();
    assert_eq!(there.len(), 4, "{there:#?}");
    assert!(
        there[1].starts_with("POST /direct-post") && there[1].contains("\"token\""),
        "{}",
        there[1]
    );
    assert!(
        there[3].starts_with("POST /posted") && there[3].contains("\"token\""),
        "{}",
        there[3]
    );
    for request in &there {
        assert!(
            !has_credentials(request),
            "a credential left home: {request}"
        );
    }
    let at_home = home.requests();
    assert_eq!(at_home.len(), 3);
    for request in &at_home {
        assert!(
            request.contains("KEY-A")
                && request.contains("Bearer TOKEN-A")
                && request.contains("plain-a"),
            "{request}"
        );
    }
}

#[test]
fn url_credentials_go_only_to_the_configured_origin() {
    let elsewhere = Server::start_on("127.0.0.2", vec![reply(200, "{}"), reply(200, "{}")]);
    let home = Server::start(vec![reply(200, "{}"), redirect(301, elsewhere.url("/x"))]);
    let configured = format!("http://user:pw-a@{}/stac", home.addr);
    let client = quick().origin(configured).build().unwrap();
    client.get(&home.url("/stac/search")).unwrap();
    client.get(&home.url("/stac/moved")).unwrap();
    client
        .get(&format!("http://user:pw-a@{}/direct", elsewhere.addr))
        .unwrap();
    // "user:pw-a" in base64.
    assert!(
        home.requests()[0].contains("Basic dXNlcjpwdy1h"),
        "{}",
        home.requests()[0]
    );
    for request in elsewhere.requests() {
        assert!(!has_credentials(&request), "{request}");
    }
    assert_eq!(elsewhere.requests().len(), 2);
}

#[test]
fn other_origins_refuse_names_both_origins() {
    let elsewhere = Server::start_on("127.0.0.2", vec![reply(200, "{}")]);
    let home = Server::start(vec![redirect(302, elsewhere.url("/moved"))]);
    let config: HttpConfig =
        serde_json::from_str(r#"{"other_origins": "refuse", "headers": {"X-Api-Key": "KEY-A"}}"#)
            .unwrap();
    let client = quick()
        .config(config)
        .origin(home.url("/"))
        .build()
        .unwrap();
    for error in [
        client.get(&elsewhere.url("/direct")).unwrap_err(),
        client.get(&home.url("/search")).unwrap_err(),
    ] {
        let message = error.to_string();
        assert!(
            message.contains(&home.origin())
                && message.contains(&elsewhere.origin())
                && message.contains("other_origins"),
            "{message}"
        );
        assert!(!message.contains("KEY-A"), "{message}");
    }
    assert!(elsewhere.requests().is_empty());
    let bad: Result<HttpConfig, _> = serde_json::from_str(r#"{"other_origins": "always"}"#);
    assert!(bad.is_err());
}

#[test]
fn a_content_length_above_the_cap_is_refused_before_reading() {
    let server = Server::start(vec![Step::Raw(
        "HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n[".into(),
        Duration::from_secs(20),
    )]);
    let client = quick()
        .max_response_bytes(1024 * 1024)
        .timeout(Duration::from_secs(15))
        .max_retries(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = client.get(&server.url("/huge?token=SECRET")).unwrap_err();
    let message = error.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        message.contains("http.max_response_bytes (1048576 bytes)")
            && message.contains("10000000000")
            && message.contains(&server.url("/huge?token=***")),
        "{message}"
    );
}

#[test]
fn an_endless_body_is_cut_off_at_the_cap() {
    let server = Server::start(vec![Step::Endless, Step::Endless]);
    let client = quick()
        .max_response_bytes(1024 * 1024)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = client.get(&server.url("/stream")).unwrap_err();
    let message = error.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        message.contains("grew past http.max_response_bytes (1048576 bytes)")
            && message.contains(&server.url("/stream")),
        "{message}"
    );
    // Asking again would get the same: not retried.
    assert_eq!(http_error(&error).attempts(), 1);
}

#[test]
fn max_requests_ends_the_run() {
    let server = Server::start((0..3).map(|_| reply(200, "{}")).collect());
    let config: HttpConfig = serde_json::from_str(r#"{"max_requests": 2}"#).unwrap();
    let client = quick().config(config).build().unwrap();
    client.get(&server.url("/1")).unwrap();
    client.get(&server.url("/2")).unwrap();
    let message = client.get(&server.url("/3")).unwrap_err().to_string();
    assert!(
        message.contains("http.max_requests")
            && message.contains("sent 2 requests")
            && message.contains(&server.url("/3")),
        "{message}"
    );
    assert_eq!(server.requests().len(), 2);
    assert_eq!(HttpConfig::default().max_requests, 1_000_000);
    assert_eq!(HttpConfig::default().max_response_bytes, 256 * 1024 * 1024);
    let unlimited: HttpConfig = serde_json::from_str(r#"{"max_requests": 0}"#).unwrap();
    let client = HttpClient::new(&unlimited).unwrap();
    let server = Server::start((0..3).map(|_| reply(200, "{}")).collect());
    for _ in 0..3 {
        client.get(&server.url("/")).unwrap();
    }
}
