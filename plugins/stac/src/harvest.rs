//! Reading one product type's window from the server, page by page.

use crate::search::{next_request, RepeatGuard, SearchRequest};
use crate::slices::{Probe, Prober, Stretch};
use anyhow::{anyhow, Context, Result};
use muninn_sync_plugin_api::http::{HttpClient, Method};
use serde_json::Value as Json;
use std::sync::mpsc::TryRecvError;
use std::sync::{Condvar, Mutex};

/// Fetches one page and checks it is JSON.
pub fn fetch(client: &HttpClient, request: &SearchRequest) -> Result<Json> {
    let method = match request.method.as_str() {
        "POST" => Method::POST,
        _ => Method::GET,
    };
    let response = client.send(method, &request.url, |mut builder| {
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        builder
    })?;
    let shown = client.redact(&request.url);
    serde_json::from_slice(response.bytes()).with_context(|| {
        let start = String::from_utf8_lossy(&response.bytes()[..response.bytes().len().min(200)])
            .into_owned();
        format!(
            "{} {shown}: the answer is not JSON (it starts with {:?})",
            request.method,
            client.redact(&start)
        )
    })
}

/// Calls `each_page` with the features of every page of a search, following
/// next links until the end; a repeated page is an error. The features are
/// handed over, not copied. Returns the number of pages.
pub fn pages(
    client: &HttpClient,
    first: SearchRequest,
    mut each_page: impl FnMut(Vec<Json>) -> Result<()>,
) -> Result<usize> {
    let mut guard = RepeatGuard::default();
    let mut request = Some(first);
    let mut count = 0;
    while let Some(current) = request {
        guard
            .request(&current)
            .map_err(|e| anyhow!(client.redact(&e.to_string())))?;
        let mut page = fetch(client, &current)?;
        guard.page(&page)?;
        if !page.get("features").is_some_and(Json::is_array) {
            return Err(anyhow!(
                "{} {}: the answer is not a FeatureCollection (no \"features\" list)",
                current.method,
                client.redact(&current.url)
            ));
        }
        request = next_request(&current, &page)?;
        let features = match page.get_mut("features").map(Json::take) {
            Some(Json::Array(features)) => features,
            _ => Vec::new(),
        };
        each_page(features)?;
        count += 1;
    }
    Ok(count)
}

/// What [`read_in_order`] hands the sync thread.
pub enum Event {
    /// The next page of slice `slice`, in order.
    Page { slice: usize, features: Vec<Json> },
    /// The slice of the last page is read to its end, in `pages` pages.
    End { pages: usize },
    /// The next page has not arrived yet: the caller is about to wait.
    Wait,
}

/// Reads the searches `firsts` (one per slice) with `concurrency` reader
/// threads, and hands their pages to `handle` on the calling thread, slice
/// after slice and page after page, in order. Pages are fetched and parsed
/// while earlier ones are written, with bounded memory: a reader holds at
/// most `ahead` pages of its slice that `handle` has not taken, and starts
/// a slice only when it is one of the `concurrency` slices from the one
/// `handle` is working through; so at most `concurrency` × `ahead` pages
/// wait. The first error (a reader's or `handle`'s) ends the reading and
/// is returned; the pages before it have been handled.
pub fn read_in_order(
    client: &HttpClient,
    firsts: Vec<SearchRequest>,
    concurrency: usize,
    ahead: usize,
    mut handle: impl FnMut(Event) -> Result<()>,
) -> Result<()> {
    let count = firsts.len();
    let concurrency = concurrency.clamp(1, count.max(1));
    let mut receivers = Vec::with_capacity(count);
    let mut work = Vec::with_capacity(count);
    for (slice, first) in firsts.into_iter().enumerate() {
        // One page more waits in the reader's hand, blocked on the send.
        let (sender, receiver) =
            std::sync::mpsc::sync_channel::<Result<Delivery>>(ahead.max(1) - 1);
        receivers.push(receiver);
        work.push((slice, first, sender));
    }
    // Slices are taken in order, so the one `handle` waits for always has
    // a reader: the readers of later slices wait only while `handle` works
    // through earlier ones.
    let work = Mutex::new(work.into_iter());
    let gate = Gate::default();
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            scope.spawn(|| loop {
                let Some((slice, first, sender)) = work.lock().ok().and_then(|mut w| w.next())
                else {
                    break;
                };
                if !gate.enter(slice, concurrency) {
                    break;
                }
                let read = pages(client, first, |features| {
                    if gate.cancelled(slice) {
                        return Err(anyhow!("the reading was stopped"));
                    }
                    sender
                        .send(Ok(Delivery::Page(features)))
                        .map_err(|_| anyhow!("the reading was stopped"))
                });
                if read.is_err() {
                    // The slices after this one will not be handled: their
                    // readers stop, instead of fetching them (with retries)
                    // until `handle` sees the error.
                    gate.cancel_from(slice + 1);
                }
                // When `handle` has stopped, nobody listens: nothing to tell.
                let _ = sender.send(read.map(Delivery::End));
            });
        }
        let result = (|| {
            for (slice, receiver) in receivers.iter().enumerate() {
                gate.handling(slice);
                loop {
                    let delivery = match receiver.try_recv() {
                        Ok(delivery) => delivery,
                        Err(TryRecvError::Empty) => {
                            handle(Event::Wait)?;
                            receiver.recv().map_err(|_| {
                                anyhow!("the reader of slice {slice} ended without a word")
                            })?
                        }
                        Err(TryRecvError::Disconnected) => {
                            return Err(anyhow!("the reader of slice {slice} ended without a word"))
                        }
                    };
                    match delivery? {
                        Delivery::Page(features) => handle(Event::Page { slice, features })?,
                        Delivery::End(pages) => {
                            handle(Event::End { pages })?;
                            break;
                        }
                    }
                }
            }
            Ok(())
        })();
        // Readers blocked on a full channel wake up with an error when its
        // receiver goes; the others stop before their next slice or page.
        gate.cancel_from(0);
        drop(receivers);
        result
    })
}

/// Which slices the readers may read: the `concurrency` from the one the
/// sync thread is handling, and none from the first cancelled one on.
struct Gate {
    state: Mutex<GateState>,
    moved: Condvar,
}

struct GateState {
    handling: usize,
    cancelled_from: usize,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            state: Mutex::new(GateState {
                handling: 0,
                cancelled_from: usize::MAX,
            }),
            moved: Condvar::new(),
        }
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `slice` may be read; false when it is cancelled.
    fn enter(&self, slice: usize, concurrency: usize) -> bool {
        let mut state = self.lock();
        while slice >= state.handling + concurrency && slice < state.cancelled_from {
            state = self.moved.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        slice < state.cancelled_from
    }

    fn cancelled(&self, slice: usize) -> bool {
        slice >= self.lock().cancelled_from
    }

    /// The sync thread has come to `slice`.
    fn handling(&self, slice: usize) {
        self.lock().handling = slice;
        self.moved.notify_all();
    }

    /// No slice from `slice` on is read.
    fn cancel_from(&self, slice: usize) {
        let mut state = self.lock();
        state.cancelled_from = state.cancelled_from.min(slice);
        drop(state);
        self.moved.notify_all();
    }
}

/// What a reader sends for its slice.
enum Delivery {
    Page(Vec<Json>),
    End(usize),
}

/// Probes stretches of one collection's window: `limit=1` searches with the
/// window's own filter and order.
pub struct Searches<'a> {
    pub client: &'a HttpClient,
    pub search: &'a str,
    pub collection: &'a str,
    /// `datetime` or `updated`.
    pub time_field: &'a str,
    pub sort: bool,
    pub cql2_text: bool,
}

impl Searches<'_> {
    /// The first request of a stretch's search.
    pub fn first(&self, stretch: Stretch, limit: u32, descending: bool) -> Result<SearchRequest> {
        crate::search::first_request(
            self.search,
            &crate::search::Window {
                collection: self.collection,
                start: stretch.start,
                end: stretch.end,
                limit,
                time_field: self.time_field,
                sort: self.sort,
                descending,
                cql2_text: self.cql2_text,
            },
        )
    }
}

impl Prober for Searches<'_> {
    fn probe(&self, stretch: Stretch, descending: bool) -> Result<Probe> {
        let request = self.first(stretch, 1, descending)?;
        let page = fetch(self.client, &request)?;
        let first = page.pointer("/features/0");
        let count = page
            .get("numberMatched")
            .or_else(|| page.pointer("/context/matched"))
            .and_then(Json::as_u64);
        let time = first.and_then(|item| {
            let properties = item.get("properties")?;
            let text = match self.time_field {
                "updated" => properties.get("updated")?.as_str()?,
                _ => properties
                    .get("datetime")
                    .and_then(Json::as_str)
                    .or_else(|| properties.get("start_datetime")?.as_str())?,
            };
            muninn_sync_plugin_api::parse_timestamp(text).ok()
        });
        Ok(Probe {
            found: first.is_some(),
            count,
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A server of slices `/s<slice>?p=<page>`, three pages each; slice
    /// `garbage` answers its second page with HTML. Returns its base URL
    /// and the request targets it has seen.
    fn serve(garbage: Option<usize>) -> (String, Arc<Mutex<Vec<String>>>) {
        serve_pages(garbage.map(|slice| (slice, 1)), |_| 3)
    }

    /// A server of slices of `pages(slice)` pages; the page `garbage`
    /// (slice, page) is HTML.
    fn serve_pages(
        garbage: Option<(usize, usize)>,
        pages: fn(usize) -> usize,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (root, log) = (base.clone(), Arc::clone(&seen));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                log.lock().unwrap().push(target.clone());
                let (path, page) = target.split_once("?p=").unwrap();
                let slice: usize = path.trim_start_matches("/s").parse().unwrap();
                let page: usize = page.parse().unwrap();
                let body = if garbage == Some((slice, page)) {
                    "<html>502</html>".to_string()
                } else {
                    let next: Vec<Json> = (page + 1 < pages(slice))
                        .then(|| serde_json::json!({"rel": "next", "href": format!("{root}/s{slice}?p={}", page + 1)}))
                        .into_iter()
                        .collect();
                    serde_json::json!({"features": [{"id": format!("s{slice}p{page}")}], "links": next})
                        .to_string()
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (base, seen)
    }

    fn firsts(base: &str, slices: usize) -> Vec<SearchRequest> {
        (0..slices)
            .map(|slice| SearchRequest {
                method: "GET".into(),
                url: format!("{base}/s{slice}?p=0"),
                body: None,
                headers: Default::default(),
            })
            .collect()
    }

    fn client() -> HttpClient {
        HttpClient::builder().max_retries(0).build().unwrap()
    }

    #[test]
    fn slices_read_at_once_are_handed_over_in_order() {
        let (base, _) = serve(None);
        let mut handed = Vec::new();
        read_in_order(&client(), firsts(&base, 3), 2, 4, |event| {
            match event {
                Event::Page { slice, features } => {
                    handed.push(format!("{slice}:{}", features[0]["id"].as_str().unwrap()))
                }
                Event::End { pages } => handed.push(format!("end {pages}")),
                Event::Wait => {}
            }
            Ok(())
        })
        .unwrap();
        let slice = |s: usize| {
            [
                format!("{s}:s{s}p0"),
                format!("{s}:s{s}p1"),
                format!("{s}:s{s}p2"),
                "end 3".into(),
            ]
        };
        let expected: Vec<String> = (0..3).flat_map(slice).collect();
        assert_eq!(handed, expected);
    }

    #[test]
    fn the_next_page_is_read_while_this_one_is_handled() {
        let (base, seen) = serve(None);
        let mut first = true;
        read_in_order(&client(), firsts(&base, 1), 1, 2, |event| {
            if let Event::Page { .. } = event {
                if std::mem::take(&mut first) {
                    // The reader asks for page 2 while page 1 is handled.
                    let started = Instant::now();
                    while !seen.lock().unwrap().iter().any(|t| t.ends_with("p=1")) {
                        assert!(
                            started.elapsed() < Duration::from_secs(10),
                            "the second page was not asked for while the first was handled"
                        );
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_failed_slice_ends_the_reading_after_the_pages_before_it() {
        let (base, _) = serve(Some(1));
        let mut pages = Vec::new();
        let error = read_in_order(&client(), firsts(&base, 3), 3, 4, |event| {
            if let Event::Page { features, .. } = event {
                pages.push(features[0]["id"].as_str().unwrap().to_string());
            }
            Ok(())
        })
        .unwrap_err();
        assert!(error.to_string().contains("not JSON"), "{error:#}");
        assert_eq!(pages, ["s0p0", "s0p1", "s0p2", "s1p0"]);
        // A failing handler ends it too.
        let stopped = read_in_order(&client(), firsts(&base, 3), 2, 1, |event| match event {
            Event::Page { .. } => Err(anyhow!("the catalogue said no")),
            _ => Ok(()),
        })
        .unwrap_err();
        assert_eq!(stopped.to_string(), "the catalogue said no");
    }

    #[test]
    fn readers_wait_for_the_slices_before_theirs_to_be_handled() {
        // Slices of one page: a reader's page and End fit in its channel,
        // and without a shared bound the readers would run through all.
        let (base, seen) = serve_pages(None, |_| 1);
        let (concurrency, ahead) = (2, 2);
        let mut handled = 0;
        read_in_order(&client(), firsts(&base, 10), concurrency, ahead, |event| {
            if let Event::Page { .. } = event {
                handled += 1;
                if handled == 1 {
                    // A slow write: time for the readers to run ahead.
                    let started = Instant::now();
                    while seen.lock().unwrap().len() <= concurrency * ahead + 1
                        && started.elapsed() < Duration::from_millis(300)
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                let asked = seen.lock().unwrap().len();
                assert!(
                    asked <= handled + concurrency * ahead,
                    "{asked} pages asked for, {handled} handled"
                );
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(handled, 10);
    }

    #[test]
    fn a_failed_slice_stops_the_readers_of_later_ones() {
        // Slice 1 fails at once; slice 2 is long, and its reader may run
        // far ahead: it stops when slice 1 fails, not when the sync thread,
        // still writing slice 0, comes to the error.
        let (base, seen) = serve_pages(Some((1, 0)), |slice| if slice == 2 { 200 } else { 3 });
        let of_slice_2 = |seen: &Mutex<Vec<String>>| {
            seen.lock()
                .unwrap()
                .iter()
                .filter(|t| t.starts_with("/s2?"))
                .count()
        };
        let mut first = true;
        let error = read_in_order(&client(), firsts(&base, 3), 3, 256, |event| {
            if let Event::Page { .. } = event {
                if std::mem::take(&mut first) {
                    let started = Instant::now();
                    while of_slice_2(&seen) < 200 && started.elapsed() < Duration::from_secs(1) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            Ok(())
        })
        .unwrap_err();
        assert!(error.to_string().contains("not JSON"), "{error:#}");
        assert!(of_slice_2(&seen) < 200, "slice 2 was read to its end");
    }
}
