//! A local server that answers as the Copernicus Data Space Ecosystem's
//! OData catalogue does (`Products` and `DeletedProducts` under
//! `<base>/odata/v1`), with the service's limits: the `$filter` subset real
//! clients send (anything else is a 400), `$orderby` on a time field then
//! `Id`, `$top` up to 1000 and `$skip` up to 10,000 (a 422 past them), next
//! links silently left out where they would pass the `$skip` cap,
//! `$expand=Attributes`, `$count`, 2,000 requests a minute; and scripted
//! misbehaviour. Started on 127.0.0.1 by the OData tests and the benchmark.
//!
//! Products are given as JSON in CDSE's shape (see [`product`]), plus the
//! server's own `Collection` field (`{"Name": "SENTINEL-2"}`): what
//! `Collection/Name` filters on, never part of an answer, as in CDSE's.
//! They are kept as JSON text with what filters and orders read beside it
//! ([`Products`]): a serde_json value of a product with its attributes
//! takes some 20 KB, too much for the benchmark's 100,000.

use serde_json::{json, Value as Json};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// CDSE's largest `$top`.
pub const MAX_TOP: u64 = 1000;
/// CDSE's largest `$skip`.
pub const MAX_SKIP: u64 = 10_000;
/// The values of `DeletionCause`.
pub const DELETION_CAUSES: [&str; 4] = [
    "Duplicated product",
    "Missing checksum",
    "Corrupted product",
    "Obsolete product or Other",
];

/// What the server holds and how it behaves.
pub struct OdataServer {
    /// `Products`, with their `Attributes` (left out of answers without
    /// `$expand=Attributes`) and `Collection`.
    pub products: Products,
    /// `DeletedProducts`: products with `DeletionDate` and `DeletionCause`
    /// (see [`deleted`]).
    pub deleted: Products,
    /// Answers to give before real ones, in order (status, extra header
    /// lines such as `"Retry-After: 1\r\n"`).
    pub failures: Vec<(u16, &'static str)>,
    /// From the request with this 0-based number on (counting every request
    /// in `seen`), every answer has this status: `Some((0, 503))` is a
    /// service that is down.
    pub outage: Option<(usize, u16)>,
    /// What `$count=true` answers instead of the real `@odata.count`, as
    /// JSON text (`"\"many\""`, `"-1"`); `Some("")` leaves it out, as a
    /// service that ignores `$count` does. `None`: the real count.
    pub count_answer: Option<&'static str>,
    /// A count alone (`$count=true` with `$top=0`) is not answered before
    /// this many other requests to `Products` (the pages) have come: a
    /// service that counts slowly, and a test that the pages do not wait
    /// for the count. `None`: answered at once.
    pub hold_count_until_pages: Option<usize>,
    /// Every request target (path and query, as sent).
    pub seen: Vec<String>,
    /// Requests in any 60 s before a 429 (CDSE: 2,000 a minute per user);
    /// `None`: no limit.
    pub requests_per_minute: Option<usize>,
    /// Called before each answer with the request's number (0-based), its
    /// target, the products and the deleted products: a service whose data
    /// changes while a client reads it.
    #[allow(clippy::type_complexity)]
    pub before_answer: Option<Box<dyn FnMut(usize, &str, &mut Products, &mut Products) + Send>>,
}

impl Default for OdataServer {
    fn default() -> OdataServer {
        OdataServer {
            products: Products::default(),
            deleted: Products::default(),
            failures: Vec::new(),
            outage: None,
            count_answer: None,
            hold_count_until_pages: None,
            seen: Vec::new(),
            requests_per_minute: Some(2000),
            before_answer: None,
        }
    }
}

impl OdataServer {
    /// The largest value of query option `key` (`$skip`, `$top`) among the
    /// requests seen; 0 when none had it.
    pub fn max_option(&self, key: &str) -> u64 {
        self.seen
            .iter()
            .filter_map(|t| option(t, key))
            .filter_map(|v| v.parse().ok())
            .max()
            .unwrap_or(0)
    }

    /// The requests seen to `entity_set` (`Products`, `DeletedProducts`).
    pub fn requests_to(&self, entity_set: &str) -> Vec<String> {
        let path = format!("/odata/v1/{entity_set}");
        self.seen
            .iter()
            .filter(|t| t.split('?').next() == Some(path.as_str()))
            .cloned()
            .collect()
    }
}

/// The entities of one entity set, by `Id`: each as its JSON text, with
/// `Attributes` apart (answers without `$expand` leave them out), and the
/// fields filters and `$orderby` read. Built from products in CDSE's shape
/// ([`product`], [`deleted`]); a product with the `Id` of one already held
/// replaces it.
#[derive(Default)]
pub struct Products {
    entities: Vec<Entity>,
    /// `Id` -> place in `entities`.
    places: HashMap<Box<str>, usize>,
}

struct Entity {
    id: Box<str>,
    name: Box<str>,
    collection: Option<Box<str>>,
    /// The `productType` string attribute.
    product_type: Option<Box<str>>,
    online: Option<bool>,
    /// The times of [`Field::ALL`], in microseconds since 1970.
    times: [Option<i64>; 6],
    /// The JSON object without `Attributes` and `Collection`.
    text: Box<str>,
    /// The `Attributes` list as JSON, when there is one.
    attributes: Option<Box<str>>,
}

impl Entity {
    fn new(mut product: Json) -> Entity {
        let fields = product.as_object_mut().expect("a product is a JSON object");
        let attributes = fields.remove("Attributes");
        let collection = fields.remove("Collection");
        let text = |value: Option<&Json>| value.and_then(Json::as_str).map(Box::from);
        let mut times = [None; 6];
        for (field, time) in Field::ALL.iter().zip(&mut times) {
            *time = field.read(&product);
        }
        let product_type = attributes
            .iter()
            .flat_map(|a| a.as_array())
            .flatten()
            .find(|a| {
                a["Name"] == "productType" && a["@odata.type"] == "#OData.CSC.StringAttribute"
            })
            .and_then(|a| text(a.get("Value")));
        Entity {
            id: text(product.get("Id")).expect("a product has an Id"),
            name: text(product.get("Name")).unwrap_or_default(),
            collection: collection.as_ref().and_then(|c| text(c.get("Name"))),
            product_type,
            online: product["Online"].as_bool(),
            times,
            text: product.to_string().into(),
            attributes: attributes.map(|a| a.to_string().into()),
        }
    }

    /// The product as it was given.
    fn json(&self) -> Json {
        let mut product: Json = serde_json::from_str(&self.text).expect("stored JSON");
        if let Some(attributes) = &self.attributes {
            product["Attributes"] = serde_json::from_str(attributes).expect("stored JSON");
        }
        if let Some(collection) = &self.collection {
            product["Collection"] = json!({"Name": collection});
        }
        product
    }

    /// The entity in an answer.
    fn write(&self, expand: bool, out: &mut String) {
        match (&self.attributes, expand) {
            (Some(attributes), true) => {
                out.push_str(self.text.strip_suffix('}').expect("a JSON object"));
                if self.text.len() > 2 {
                    out.push(',');
                }
                out.push_str("\"Attributes\":");
                out.push_str(attributes);
                out.push('}');
            }
            _ => out.push_str(&self.text),
        }
    }
}

impl Products {
    /// Adds a product, or replaces the one with its `Id`.
    pub fn push(&mut self, product: Json) {
        let entity = Entity::new(product);
        match self.places.get(&entity.id) {
            Some(&place) => self.entities[place] = entity,
            None => {
                self.places.insert(entity.id.clone(), self.entities.len());
                self.entities.push(entity);
            }
        }
    }

    /// Removes the product with this `Id`, returning it.
    pub fn remove(&mut self, id: &str) -> Option<Json> {
        let place = self.places.remove(id)?;
        let entity = self.entities.swap_remove(place);
        if let Some(moved) = self.entities.get(place) {
            self.places.insert(moved.id.clone(), place);
        }
        Some(entity.json())
    }

    /// The product with this `Id`.
    pub fn get(&self, id: &str) -> Option<Json> {
        self.places.get(id).map(|&p| self.entities[p].json())
    }

    /// Changes the product with this `Id` (panics when there is none).
    pub fn update(&mut self, id: &str, change: impl FnOnce(&mut Json)) {
        let mut product = self.get(id).unwrap_or_else(|| panic!("no product {id}"));
        change(&mut product);
        assert_eq!(product["Id"], id, "an update keeps the Id");
        self.push(product);
    }

    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }
}

impl Extend<Json> for Products {
    fn extend<I: IntoIterator<Item = Json>>(&mut self, products: I) {
        for product in products {
            self.push(product);
        }
    }
}

impl FromIterator<Json> for Products {
    fn from_iter<I: IntoIterator<Item = Json>>(products: I) -> Products {
        let mut all = Products::default();
        all.extend(products);
        all
    }
}

impl From<Vec<Json>> for Products {
    fn from(products: Vec<Json>) -> Products {
        products.into_iter().collect()
    }
}

/// Starts the server; returns its base URL (the service root is
/// `<base>/odata/v1`).
pub fn serve(state: Arc<Mutex<OdataServer>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let root = base.clone();
    // The rate limit's memory: the server's, not the scripted state's.
    let recent = Arc::new(Mutex::new(VecDeque::new()));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let state = Arc::clone(&state);
            let recent = Arc::clone(&recent);
            let root = root.clone();
            std::thread::spawn(move || respond(stream, &state, &recent, &root));
        }
    });
    base
}

/// Reads one request and writes its answer.
fn respond(
    mut stream: std::net::TcpStream,
    state: &Mutex<OdataServer>,
    recent: &Mutex<VecDeque<Instant>>,
    root: &str,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("");
    let target = origin_form(words.next().unwrap_or("/"));
    let answer = if method == "GET" {
        hold_count(state, &target);
        answer(state, recent, root, &target)
    } else {
        Answer::error(405, format!("{method} is not allowed"))
    };
    let body = answer.body;
    let _ = write!(
        stream,
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n{body}",
        answer.status,
        reason(answer.status),
        body.len(),
        answer.headers,
    );
}

/// Waits, without holding the state, until a count alone may be answered
/// (see [`OdataServer::hold_count_until_pages`]).
fn hold_count(state: &Mutex<OdataServer>, target: &str) {
    if !is_count_alone(target) {
        return;
    }
    let is_page = |t: &str| t.split('?').next() == Some("/odata/v1/Products") && !is_count_alone(t);
    loop {
        let server = state.lock().unwrap();
        match server.hold_count_until_pages {
            Some(pages) if server.seen.iter().filter(|t| is_page(t)).count() < pages => {}
            _ => return,
        }
        drop(server);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a target asks for the count of `Products` and no product.
fn is_count_alone(target: &str) -> bool {
    target.split('?').next() == Some("/odata/v1/Products")
        && option(target, "$count").as_deref() == Some("true")
        && option(target, "$top").as_deref() == Some("0")
}

/// The path and query of a request target: a client sending through a
/// proxy (`http_proxy` pointing here) writes the whole URL.
fn origin_form(target: &str) -> String {
    match target.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map_or("/".into(), |at| rest[at..].to_string()),
        None => target.to_string(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Whatever",
    }
}

/// A status, extra header lines and a JSON body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    /// The answer with its `@odata.count` replaced by `scripted` (JSON
    /// text), or left out when `scripted` is empty.
    fn with_count(mut self, scripted: &str) -> Answer {
        let Some(at) = self.body.find(",\"@odata.count\":") else {
            return self;
        };
        let value_at = at + ",\"@odata.count\":".len();
        let end = self.body[value_at..]
            .find([',', '}'])
            .map_or(self.body.len(), |e| value_at + e);
        let replacement = if scripted.is_empty() {
            String::new()
        } else {
            format!(",\"@odata.count\":{scripted}")
        };
        self.body.replace_range(at..end, &replacement);
        self
    }

    fn ok(body: String) -> Answer {
        Answer {
            status: 200,
            headers: String::new(),
            body,
        }
    }

    /// An OData error.
    fn error(status: u16, message: String) -> Answer {
        Answer {
            status,
            headers: String::new(),
            body: json!({"error": {"code": status.to_string(), "message": message}}).to_string(),
        }
    }

    /// FastAPI's answer to a query option that fails validation, as CDSE
    /// gives it, written by hand to keep its key order.
    fn invalid(key: &str, input: &str, kind: &str, message: &str, context: &str) -> Answer {
        let input = Json::String(input.into());
        Answer {
            status: 422,
            headers: String::new(),
            body: format!(
                r#"{{"detail":[{{"type":"{kind}","loc":["query","{key}"],"msg":"{message}","input":{input}{context}}}]}}"#
            ),
        }
    }
}

/// The query options of a target, percent-decoded, in order.
fn options(target: &str) -> Vec<(String, String)> {
    let Some((_, query)) = target.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// The percent-decoded value of query option `key` in a request target.
pub fn option(target: &str, key: &str) -> Option<String> {
    options(target)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// Percent-decoding of a query part (`+` is a space); a `%` not followed by
/// two hex digits stays as it is.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (other, _) => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encoding of a query value for a next link (`$`, `/`, `:` and
/// `,` are left as they are, as OData services write them).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~$/:,()@".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The answer to a GET of `target`.
fn answer(
    state: &Mutex<OdataServer>,
    recent: &Mutex<VecDeque<Instant>>,
    root: &str,
    target: &str,
) -> Answer {
    let mut server = state.lock().unwrap();
    server.seen.push(target.to_string());
    let number = server.seen.len() - 1;
    if let Some(mut change) = server.before_answer.take() {
        let server = &mut *server;
        change(number, target, &mut server.products, &mut server.deleted);
        server.before_answer = Some(change);
    }
    if let Some((from, status)) = server.outage {
        if number >= from {
            return Answer::error(status, "the service is unavailable (scripted)".into());
        }
    }
    if !server.failures.is_empty() {
        let (status, headers) = server.failures.remove(0);
        let mut answer = Answer::error(status, "scripted failure".into());
        answer.headers = headers.to_string();
        return answer;
    }
    if let Some(limit) = server.requests_per_minute {
        let mut recent = recent.lock().unwrap();
        let now = Instant::now();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            recent.pop_front();
        }
        if recent.len() >= limit {
            let wait = Duration::from_secs(60) - now.duration_since(recent[0]);
            let mut answer = Answer::error(429, "Too Many Requests".into());
            answer.headers = format!("Retry-After: {}\r\n", wait.as_secs() + 1);
            return answer;
        }
        recent.push_back(now);
    }
    let path = target.split('?').next().unwrap_or("");
    let (entities, set) = match path {
        "/odata/v1/Products" => (&server.products, Set::Products),
        "/odata/v1/DeletedProducts" => (&server.deleted, Set::DeletedProducts),
        _ => return Answer::error(404, format!("no resource {path}")),
    };
    match query(entities, set, root, target) {
        Ok(answer) => match server.count_answer {
            Some(scripted) => answer.with_count(scripted),
            None => answer,
        },
        Err(answer) => answer,
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Set {
    Products,
    DeletedProducts,
}

impl Set {
    fn name(self) -> &'static str {
        match self {
            Set::Products => "Products",
            Set::DeletedProducts => "DeletedProducts",
        }
    }
}

/// A page of `entities` as `target`'s query options ask.
fn query(entities: &Products, set: Set, root: &str, target: &str) -> Result<Answer, Answer> {
    let options = options(target);
    let mut filter = None;
    let mut order = None;
    let mut top = 20;
    let mut skip = 0;
    let mut expand = false;
    let mut count = false;
    for (key, value) in &options {
        match key.as_str() {
            "$filter" => {
                filter = Some(
                    parse_filter(value, set)
                        .map_err(|e| Answer::error(400, format!("Invalid $filter: {e}")))?,
                )
            }
            "$orderby" => order = Some(parse_order(value, set).map_err(|e| Answer::error(400, e))?),
            "$top" => top = bounded(key, value, MAX_TOP)?,
            "$skip" => skip = bounded(key, value, MAX_SKIP)?,
            "$expand" if value == "Attributes" => expand = true,
            "$expand" => {
                return Err(Answer::error(
                    400,
                    format!("$expand={value}: only Attributes is supported here"),
                ))
            }
            "$count" => {
                count = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Answer::error(400, format!("$count={value}: not a boolean"))),
                }
            }
            "$format" if value == "json" => {}
            other if other.starts_with('$') => {
                return Err(Answer::error(
                    400,
                    format!("the query option {other} is not supported"),
                ))
            }
            _ => {}
        }
    }

    let mut matches: Vec<(Option<i64>, &str, &Entity)> = entities
        .entities
        .iter()
        .filter(|e| filter.as_ref().is_none_or(|f| f.holds(e)))
        .map(|e| {
            let time = order.and_then(|(field, _)| e.times[field as usize]);
            (time, &*e.id, e)
        })
        .collect();
    let total = matches.len();
    let compare = |a: &(Option<i64>, &str, &Entity), b: &(Option<i64>, &str, &Entity)| match order {
        Some((_, true)) => b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)),
        Some((_, false)) => a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)),
        // Without $orderby the order is CDSE's own business: here, by Id
        // backwards, which is not the order of any time.
        None => b.1.cmp(a.1),
    };
    let end = (skip + top) as usize;
    if end < matches.len() {
        // Only what the page needs is sorted: a request stays linear in
        // the number of products however large the collection.
        matches.select_nth_unstable_by(end, compare);
        matches.truncate(end);
    }
    matches.sort_unstable_by(compare);

    let context = if expand {
        format!("$metadata#{}(Attributes())", set.name())
    } else {
        format!("$metadata#{}", set.name())
    };
    let mut body = format!("{{\"@odata.context\":{},\"value\":[", Json::from(context));
    for (i, (_, _, entity)) in matches.iter().skip(skip as usize).enumerate() {
        if i > 0 {
            body.push(',');
        }
        entity.write(expand, &mut body);
    }
    body.push(']');
    if count {
        body.push_str(&format!(",\"@odata.count\":{total}"));
    }
    let next = skip + top;
    // CDSE leaves the next link out where it would pass its $skip cap, as
    // if the results ended there.
    if top > 0 && (next as usize) < total && next <= MAX_SKIP {
        let mut kept: Vec<String> = options
            .iter()
            .filter(|(k, _)| k != "$skip")
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        kept.push(format!("$skip={next}"));
        let path = target.split('?').next().unwrap_or("");
        let next = Json::from(format!("{root}{path}?{}", kept.join("&")));
        body.push_str(&format!(",\"@odata.nextLink\":{next}"));
    }
    body.push('}');
    Ok(Answer::ok(body))
}

/// A `$top` or `$skip` value, checked as CDSE's FastAPI does.
fn bounded(key: &str, value: &str, max: u64) -> Result<u64, Answer> {
    let Ok(number) = value.trim().parse::<i64>() else {
        return Err(Answer::invalid(
            key,
            value,
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            "",
        ));
    };
    if number < 0 {
        return Err(Answer::invalid(
            key,
            value,
            "greater_than_equal",
            "Input should be greater than or equal to 0",
            r#","ctx":{"ge":0}"#,
        ));
    }
    if number as u64 > max {
        return Err(Answer::invalid(
            key,
            value,
            "less_than_equal",
            &format!("Input should be less than or equal to {max}"),
            &format!(r#","ctx":{{"le":{max}}}"#),
        ));
    }
    Ok(number as u64)
}

/// A time field of products: what filters compare and `$orderby` sorts by.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Field {
    Modification,
    Publication,
    Origin,
    Deletion,
    ContentStart,
    ContentEnd,
}

impl Field {
    /// In the order of their discriminants.
    const ALL: [Field; 6] = [
        Field::Modification,
        Field::Publication,
        Field::Origin,
        Field::Deletion,
        Field::ContentStart,
        Field::ContentEnd,
    ];

    fn parse(name: &str, set: Set) -> Option<Field> {
        Some(match name {
            "ModificationDate" => Field::Modification,
            "PublicationDate" => Field::Publication,
            "OriginDate" => Field::Origin,
            "DeletionDate" if set == Set::DeletedProducts => Field::Deletion,
            "ContentDate/Start" => Field::ContentStart,
            "ContentDate/End" => Field::ContentEnd,
            _ => return None,
        })
    }

    /// The field's time in microseconds since 1970.
    fn read(self, entity: &Json) -> Option<i64> {
        let value = match self {
            Field::Modification => &entity["ModificationDate"],
            Field::Publication => &entity["PublicationDate"],
            Field::Origin => &entity["OriginDate"],
            Field::Deletion => &entity["DeletionDate"],
            Field::ContentStart => &entity["ContentDate"]["Start"],
            Field::ContentEnd => &entity["ContentDate"]["End"],
        };
        value.as_str().and_then(|t| parse_time(t, false))
    }
}

/// `<time field> [asc|desc]`: the field and whether it is descending.
fn parse_order(text: &str, set: Set) -> Result<(Field, bool), String> {
    let mut words = text.split_whitespace();
    let name = words.next().unwrap_or("");
    let field = Field::parse(name, set)
        .ok_or_else(|| format!("Invalid $orderby: cannot order {} by {name:?}", set.name()))?;
    let descending = match words.next() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return Err(format!("Invalid $orderby: direction {other:?}")),
    };
    match words.next() {
        None => Ok((field, descending)),
        Some(_) => Err(format!("Invalid $orderby: {text:?}")),
    }
}

/// A time as microseconds since 1970 from `YYYY-MM-DDTHH:MM:SS[.f]Z`.
/// `strict` (a literal in a filter): 0, 3 or 6 fractional digits; else
/// up to 9, read to the microsecond.
fn parse_time(text: &str, strict: bool) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let b = whole.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = &whole[range];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 59 {
        return None;
    }
    let digits = fraction.len();
    if (strict && ![0, 3, 6].contains(&digits))
        || digits > 9
        || (text.contains('.') && digits == 0)
        || !fraction.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let micros = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(6)
        .fold(0, |n, digit| n * 10 + i64::from(digit - b'0'));
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(seconds * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a number of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A time (microseconds since 1970) as CDSE writes it, with `digits` (0, 3
/// or 6) fractional digits and `Z`.
fn format_time(micros: i64, digits: usize) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let in_day = seconds.rem_euclid(86_400);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    );
    if digits > 0 {
        text.push('.');
        text.push_str(&format!("{fraction:06}")[..digits.min(6)]);
    }
    text.push('Z');
    text
}

/// `time` (as CDSE writes it) moved by `micros`, written with `digits`
/// (0, 3 or 6) fractional digits: `after("2024-03-01T00:00:00Z", 1_500_000,
/// 3)` is `"2024-03-01T00:00:01.500Z"`.
pub fn after(time: &str, micros: i64, digits: usize) -> String {
    let at = parse_time(time, false).unwrap_or_else(|| panic!("not a CDSE time: {time:?}"));
    format_time(at + micros, digits)
}

/// The number of fractional digits of a CDSE time.
fn digits_of(time: &str) -> usize {
    time.split_once('.')
        .map_or(0, |(_, f)| f.trim_end_matches('Z').len())
}

// ---------------------------------------------------------------------
// $filter

/// A parsed `$filter`.
#[derive(Debug)]
enum Clause {
    All(Vec<Clause>),
    AnyOf(Vec<Clause>),
    Collection(String),
    /// `Attributes/OData.CSC.<kind>Attribute/any(att:att/Name eq '<name>'
    /// and att/OData.CSC.<kind>Attribute/Value <op> <value>)`
    Attribute {
        kind: String,
        name: String,
        op: Op,
        value: Literal,
    },
    Time(Field, Op, i64),
    Online(bool),
    /// `Name eq '...'`, `contains(Name,'...')`, `startswith(...)`, `endswith(...)`.
    Name(NameTest, String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            _ => return None,
        })
    }

    fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            Op::Eq => left == right,
            Op::Ne => left != right,
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
        }
    }
}

#[derive(Debug)]
enum Literal {
    Text(String),
    Number(f64),
    Time(i64),
    Bool(bool),
}

#[derive(Clone, Copy, Debug)]
enum NameTest {
    Eq,
    Contains,
    StartsWith,
    EndsWith,
}

impl Clause {
    /// About how long `holds` takes.
    fn cost(&self) -> u8 {
        match self {
            Clause::Time(..) => 0,
            Clause::Collection(_) | Clause::Online(_) | Clause::Name(..) => 1,
            Clause::Attribute { .. } => 2,
            Clause::All(_) | Clause::AnyOf(_) => 3,
        }
    }

    fn holds(&self, entity: &Entity) -> bool {
        match self {
            Clause::All(all) => all.iter().all(|c| c.holds(entity)),
            Clause::AnyOf(any) => any.iter().any(|c| c.holds(entity)),
            Clause::Collection(name) => entity.collection.as_deref() == Some(name),
            Clause::Attribute {
                kind,
                name,
                op: Op::Eq,
                value: Literal::Text(text),
            } if kind == "StringAttribute" && name == "productType" => {
                entity.product_type.as_deref() == Some(text)
            }
            Clause::Attribute {
                kind,
                name,
                op,
                value,
            } => entity
                .attributes
                .as_deref()
                .and_then(|a| serde_json::from_str::<Vec<Json>>(a).ok())
                .into_iter()
                .flatten()
                .filter(|a| {
                    a["Name"].as_str() == Some(name)
                        && a["@odata.type"]
                            .as_str()
                            .and_then(|t| t.strip_prefix("#OData.CSC."))
                            == Some(kind.as_str())
                })
                .any(|a| match value {
                    Literal::Text(text) => a["Value"].as_str().is_some_and(|v| op.holds(v, text)),
                    Literal::Number(n) => a["Value"].as_f64().is_some_and(|v| op.holds(v, *n)),
                    Literal::Time(t) => a["Value"]
                        .as_str()
                        .and_then(|v| parse_time(v, false))
                        .is_some_and(|v| op.holds(v, *t)),
                    Literal::Bool(b) => a["Value"].as_bool().is_some_and(|v| op.holds(v, *b)),
                }),
            Clause::Time(field, op, at) => {
                entity.times[*field as usize].is_some_and(|t| op.holds(t, *at))
            }
            Clause::Online(online) => entity.online == Some(*online),
            Clause::Name(test, text) => {
                let name = &*entity.name;
                match test {
                    NameTest::Eq => name == text,
                    NameTest::Contains => name.contains(text.as_str()),
                    NameTest::StartsWith => name.starts_with(text.as_str()),
                    NameTest::EndsWith => name.ends_with(text.as_str()),
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Clone)]
enum Token {
    Open,
    Close,
    Comma,
    Text(String),
    Word(String),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '\'' => {
                chars.next();
                let mut literal = String::new();
                loop {
                    match chars.next() {
                        None => return Err("a string literal is not closed".into()),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            literal.push('\'');
                        }
                        Some('\'') => break,
                        Some(other) => literal.push(other),
                    }
                }
                tokens.push(Token::Text(literal));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "(),'".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// Parses the `$filter` subset clients of CDSE send; anything else is an
/// error, so that a client sending it fails visibly.
fn parse_filter(text: &str, set: Set) -> Result<Clause, String> {
    let mut parser = Parser {
        tokens: tokens(text)?,
        at: 0,
        set,
    };
    let clause = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(clause),
        Some(token) => Err(format!("unexpected {token:?}")),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    set: Set,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn peek_word(&self, word: &str) -> bool {
        self.tokens.get(self.at) == Some(&Token::Word(word.into()))
    }

    fn word(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(word)) => Ok(word),
            other => Err(format!("expected a name or a value, found {other:?}")),
        }
    }

    fn expect(&mut self, expected: Token) -> Result<(), String> {
        match self.next() {
            Some(token) if token == expected => Ok(()),
            other => Err(format!("expected {expected:?}, found {other:?}")),
        }
    }

    fn expect_word(&mut self, expected: &str) -> Result<(), String> {
        self.expect(Token::Word(expected.into()))
    }

    fn text(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Text(text)) => Ok(text),
            other => Err(format!("expected a string literal, found {other:?}")),
        }
    }

    fn op(&mut self) -> Result<Op, String> {
        let word = self.word()?;
        Op::parse(&word).ok_or_else(|| format!("unknown operator {word:?}"))
    }

    fn or(&mut self) -> Result<Clause, String> {
        let mut any = vec![self.and()?];
        while self.peek_word("or") {
            self.at += 1;
            any.push(self.and()?);
        }
        Ok(if any.len() == 1 {
            any.pop().unwrap()
        } else {
            Clause::AnyOf(any)
        })
    }

    fn and(&mut self) -> Result<Clause, String> {
        let mut all = vec![self.primary()?];
        while self.peek_word("and") {
            self.at += 1;
            all.push(self.primary()?);
        }
        // The cheap, selective clauses first: most products fail the time.
        all.sort_by_key(Clause::cost);
        Ok(if all.len() == 1 {
            all.pop().unwrap()
        } else {
            Clause::All(all)
        })
    }

    fn primary(&mut self) -> Result<Clause, String> {
        let word = match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                self.expect(Token::Close)?;
                return Ok(inner);
            }
            Some(Token::Word(word)) => word,
            other => return Err(format!("expected a clause, found {other:?}")),
        };
        if word == "Collection/Name" {
            self.expect_word("eq")?;
            return Ok(Clause::Collection(self.text()?));
        }
        if word == "Online" {
            self.expect_word("eq")?;
            return match self.word()?.as_str() {
                "true" => Ok(Clause::Online(true)),
                "false" => Ok(Clause::Online(false)),
                other => Err(format!("Online eq {other}: not a boolean")),
            };
        }
        if word == "Name" {
            self.expect_word("eq")?;
            return Ok(Clause::Name(NameTest::Eq, self.text()?));
        }
        let test = match word.as_str() {
            "contains" => Some(NameTest::Contains),
            "startswith" => Some(NameTest::StartsWith),
            "endswith" => Some(NameTest::EndsWith),
            _ => None,
        };
        if let Some(test) = test {
            self.expect(Token::Open)?;
            self.expect_word("Name")?;
            self.expect(Token::Comma)?;
            let text = self.text()?;
            self.expect(Token::Close)?;
            return Ok(Clause::Name(test, text));
        }
        if let Some(kind) = word
            .strip_prefix("Attributes/OData.CSC.")
            .and_then(|rest| rest.strip_suffix("/any"))
        {
            return self.attribute(kind.to_string());
        }
        if let Some(field) = Field::parse(&word, self.set) {
            let op = self.op()?;
            let literal = self.word()?;
            let at = parse_time(&literal, true).ok_or_else(|| {
                format!("{literal:?} is not a datetime (YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z)")
            })?;
            return Ok(Clause::Time(field, op, at));
        }
        Err(format!("unsupported clause starting at {word:?}"))
    }

    /// After `Attributes/OData.CSC.<kind>/any`.
    fn attribute(&mut self, kind: String) -> Result<Clause, String> {
        if ![
            "StringAttribute",
            "IntegerAttribute",
            "DoubleAttribute",
            "DateTimeOffsetAttribute",
            "BooleanAttribute",
        ]
        .contains(&kind.as_str())
        {
            return Err(format!("unknown attribute type {kind:?}"));
        }
        self.expect(Token::Open)?;
        let head = self.word()?;
        let (variable, path) = head
            .split_once(':')
            .ok_or_else(|| format!("expected <variable>:<variable>/Name, found {head:?}"))?;
        if path != format!("{variable}/Name") {
            return Err(format!("expected {variable}/Name, found {path:?}"));
        }
        self.expect_word("eq")?;
        let name = self.text()?;
        self.expect_word("and")?;
        self.expect_word(&format!("{variable}/OData.CSC.{kind}/Value"))?;
        let op = self.op()?;
        let value = if kind == "StringAttribute" {
            if op != Op::Eq {
                return Err("a string attribute is compared with eq only".into());
            }
            Literal::Text(self.text()?)
        } else {
            let word = self.word()?;
            match kind.as_str() {
                "DateTimeOffsetAttribute" => Literal::Time(
                    parse_time(&word, true).ok_or_else(|| format!("{word:?} is not a datetime"))?,
                ),
                "BooleanAttribute" => match word.as_str() {
                    "true" => Literal::Bool(true),
                    "false" => Literal::Bool(false),
                    _ => return Err(format!("{word:?} is not a boolean")),
                },
                _ => Literal::Number(
                    word.parse()
                        .map_err(|_| format!("{word:?} is not a number"))?,
                ),
            }
        };
        self.expect(Token::Close)?;
        Ok(Clause::Attribute {
            kind,
            name,
            op,
            value,
        })
    }
}

// ---------------------------------------------------------------------
// Products

/// A JSON object of these fields, moved in (`json!` would copy each value
/// that is not a literal).
fn object<const N: usize>(fields: [(&str, Json); N]) -> Json {
    Json::Object(
        fields
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

/// A stable 64-bit mix (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn seed(product_type: &str, n: u64) -> u64 {
    let hash = product_type
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    mix(hash ^ mix(n))
}

fn hex(seed: u64, digits: usize) -> String {
    (0..digits.div_ceil(16))
        .map(|i| format!("{:016x}", mix(seed.wrapping_add(i as u64))))
        .collect::<String>()[..digits]
        .to_string()
}

/// The `Id` of the `n`th generated product of a type: a UUID (version 4
/// form) that does not follow `n`'s order.
pub fn uuid(product_type: &str, n: u64) -> String {
    let h = hex(seed(product_type, n), 32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn attribute(kind: &str, name: &str, value: Json) -> Json {
    object([
        ("@odata.type", format!("#OData.CSC.{kind}Attribute").into()),
        ("Name", name.into()),
        ("Value", value),
        ("ValueType", kind.into()),
    ])
}

/// `20240101T101031` of a time.
fn compact(micros: i64) -> String {
    format_time(micros, 0)
        .trim_end_matches('Z')
        .replace(['-', ':'], "")
}

/// A square footprint (WKT in `Footprint`, GeoJSON in `GeoFootprint`).
fn polygon(lon: f64, lat: f64) -> (Json, Json) {
    let ring = [
        (lon, lat),
        (lon + 1.0, lat),
        (lon + 1.0, lat + 1.0),
        (lon, lat + 1.0),
        (lon, lat),
    ];
    let wkt: Vec<String> = ring.iter().map(|(x, y)| format!("{x} {y}")).collect();
    let coordinates: Vec<Json> = ring.iter().map(|(x, y)| json!([x, y])).collect();
    (
        json!(format!(
            "geography'SRID=4326;POLYGON (({}))'",
            wkt.join(", ")
        )),
        object([
            ("type", "Polygon".into()),
            ("coordinates", Json::Array(vec![coordinates.into()])),
        ]),
    )
}

/// Gives a product a MultiPolygon footprint across the antimeridian (in
/// `Footprint` and `GeoFootprint`).
pub fn antimeridian(product: &mut Json) {
    product["Footprint"] = json!(concat!(
        "geography'SRID=4326;MULTIPOLYGON (((179.5 10, 180 10, 180 11, 179.5 11, 179.5 10)), ",
        "((-180 10, -179.5 10, -179.5 11, -180 11, -180 10)))'"
    ));
    product["GeoFootprint"] = json!({"type": "MultiPolygon", "coordinates": [
        [[[179.5, 10.0], [180.0, 10.0], [180.0, 11.0], [179.5, 11.0], [179.5, 10.0]]],
        [[[-180.0, 10.0], [-179.5, 10.0], [-179.5, 11.0], [-180.0, 11.0], [-180.0, 10.0]]]
    ]});
}

/// The `n`th generated product of `product_type`, modified at `modified`
/// (a CDSE time: `2024-01-01T10:00:00.000Z`), in the shape CDSE lists
/// products with `$expand=Attributes`.
///
/// The mission and collection follow the type: `S2MSI*` Sentinel-2,
/// `*GRD*`/`*SLC*` Sentinel-1, `OL_*`/`SL_*`/`SR_*`/`SY_*` Sentinel-3,
/// `L1B_*`/`L2__*` Sentinel-5P, `AUX_*` Sentinel-1 auxiliary files. The
/// product was sensed `n` × 37 s after 2024-01-01T10:10:31 and published
/// 40 minutes before `modified`. Times have 6 fractional digits except
/// `OriginDate`, which has 3 for even `n`, and `PublicationDate`, which has
/// `modified`'s. As in real data, now and then: every 97th product (`n` %
/// 97 = 96) has an empty `Checksum` list, every 89th no footprint, every
/// 83rd a MultiPolygon, every 101st a `ContentLength` of 0; the first
/// products are plain.
pub fn product(n: u64, product_type: &str, modified: &str) -> Json {
    let seed = seed(product_type, n);
    let id = uuid(product_type, n);
    let sensing = parse_time("2024-01-01T10:10:31.024000Z", false).unwrap() + n as i64 * 37_000_000;
    let processing = sensing + 7_200_000_000 + (seed % 3_600_000_000) as i64;
    let second = 1_000_000;
    let unit = if n.is_multiple_of(2) { "A" } else { "B" };
    let relative_orbit = 1 + n % 143;
    let absolute_orbit = 35_000 + n / 14;
    let cloud = (seed % 10_000) as f64 / 100.0;
    let common = |end: i64| {
        vec![
            attribute("String", "productType", json!(product_type)),
            attribute(
                "DateTimeOffset",
                "processingDate",
                json!(format_time(processing, 6)),
            ),
            attribute("Integer", "orbitNumber", json!(absolute_orbit)),
            attribute("Integer", "relativeOrbitNumber", json!(relative_orbit)),
            attribute(
                "DateTimeOffset",
                "beginningDateTime",
                json!(format_time(sensing, 6)),
            ),
            attribute(
                "DateTimeOffset",
                "endingDateTime",
                json!(format_time(end, 6)),
            ),
            attribute("String", "platformSerialIdentifier", json!(unit)),
            attribute("String", "origin", json!("ESA")),
        ]
    };
    let (collection, name, end, s3, mut attributes) = if let Some(level) =
        product_type.strip_prefix("S2MSI")
    {
        const LETTERS: &[u8] = b"CDEFGHJKLMNPQRSTUVWX";
        let tile = format!(
            "{:02}{}{}{}",
            1 + n % 60,
            LETTERS[(n / 60 % 20) as usize] as char,
            LETTERS[(seed % 20) as usize] as char,
            LETTERS[(seed / 20 % 20) as usize] as char,
        );
        let name = format!(
            "S2{unit}_MSIL{level}_{}_N0510_R{relative_orbit:03}_T{tile}_{}.SAFE",
            compact(sensing),
            compact(processing)
        );
        let mut attributes = common(sensing);
        attributes.extend([
            attribute("Double", "cloudCover", json!(cloud)),
            attribute("String", "tileId", json!(tile)),
            attribute("String", "processorVersion", json!("05.10")),
            attribute("String", "instrumentShortName", json!("MSI")),
            attribute("String", "platformShortName", json!("SENTINEL-2")),
            attribute("String", "operationalMode", json!("INS-NOBS")),
            attribute("String", "processingLevel", json!(format!("S2MSI{level}"))),
        ]);
        ("SENTINEL-2", name, sensing, "Sentinel-2/MSI", attributes)
    } else if product_type.contains("GRD") || product_type.contains("SLC") {
        let end = sensing + 25 * second;
        let name = format!(
            "S1{unit}_IW_GRDH_1SDV_{}_{}_{absolute_orbit:06}_{:06X}_{:04X}.SAFE",
            compact(sensing),
            compact(end),
            seed % 0x100_0000,
            seed / 0x100_0000 % 0x1_0000
        );
        let mut attributes = common(end);
        attributes.extend([
            attribute("String", "orbitDirection", json!("ASCENDING")),
            attribute("String", "polarisationChannels", json!("VV&VH")),
            attribute("String", "swathIdentifier", json!("IW")),
            attribute("String", "timeliness", json!("Fast-24h")),
            attribute("Integer", "sliceNumber", json!(1 + n % 20)),
            attribute("Integer", "totalSlices", json!(20)),
        ]);
        ("SENTINEL-1", name, end, "Sentinel-1/SAR", attributes)
    } else if ["OL_", "SL_", "SR_", "SY_"]
        .iter()
        .any(|p| product_type.starts_with(p))
    {
        let end = sensing + 180 * second;
        let name = format!(
            "S3{unit}_{product_type:_<11}_{}_{}_{}_0179_{:03}_{relative_orbit:03}_{:04}_PS1_O_NR_003.SEN3",
            compact(sensing),
            compact(end),
            compact(processing),
            100 + n % 20,
            n % 3600
        );
        let mut attributes = common(end);
        attributes.extend([
            attribute("Integer", "cycleNumber", json!(100 + n % 20)),
            attribute("String", "timeliness", json!("NR")),
            attribute("Double", "brightCover", json!(cloud / 2.0)),
        ]);
        ("SENTINEL-3", name, end, "Sentinel-3/OLCI", attributes)
    } else if product_type.starts_with("L1B_") || product_type.starts_with("L2__") {
        let end = sensing + 6_060 * second;
        let name = format!(
            "S5P_OFFL_{product_type:_<10}_{}_{}_{:05}_03_020600_{}.nc",
            compact(sensing),
            compact(end),
            absolute_orbit % 100_000,
            compact(processing)
        );
        let mut attributes = common(end);
        attributes.extend([
            attribute("String", "processorVersion", json!("020600")),
            attribute("String", "timeliness", json!("OFFL")),
        ]);
        ("SENTINEL-5P", name, end, "Sentinel-5P/TROPOMI", attributes)
    } else if product_type.starts_with("AUX_") {
        let end = sensing + 86_400 * second;
        let name = format!(
            "S1{unit}_OPER_{product_type:_<10}_OPOD_{}_V{}_{}.EOF",
            compact(processing),
            compact(sensing),
            compact(end)
        );
        ("SENTINEL-1", name, end, "Sentinel-1/AUX", common(end))
    } else {
        let name = format!("{product_type}_{}_{n:06}.zip", compact(sensing));
        ("OTHER", name, sensing, "Other", common(sensing))
    };
    attributes.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    let date = format_time(sensing, 0);
    let s3_path = format!(
        "/eodata/{s3}/{product_type}/{}/{}/{}/{name}{}",
        &date[0..4],
        &date[5..7],
        &date[8..10],
        if n % 3 == 2 { ".zip" } else { "" }
    );
    let checked = parse_time(modified, false).expect("modified is a CDSE time") - 3 * second;
    let checksum = if n % 97 == 96 {
        json!([])
    } else {
        let entry = |value: String, algorithm: &str, date: i64| {
            object([
                ("Value", value.into()),
                ("Algorithm", algorithm.into()),
                ("ChecksumDate", format_time(date, 6).into()),
            ])
        };
        Json::Array(vec![
            entry(hex(seed ^ 1, 32), "MD5", checked),
            entry(hex(seed ^ 2, 64), "BLAKE3", checked + 21_333),
        ])
    };
    let (footprint, geo) = polygon(
        ((seed % 3_400) as f64 / 10.0 - 170.0).round(),
        ((seed / 3_400 % 1_400) as f64 / 10.0 - 70.0).round() + 0.25,
    );
    let origin = sensing + 4_800 * second + (seed % 1_000_000) as i64;
    let length = if n % 101 == 100 {
        0
    } else {
        100_000_000 + seed % 900_000_000
    };
    let origin_digits = if n.is_multiple_of(2) { 3 } else { 6 };
    let mut product = object([
        ("@odata.mediaContentType", "application/octet-stream".into()),
        ("Id", id.into()),
        ("Name", name.into()),
        ("ContentType", "application/octet-stream".into()),
        ("ContentLength", length.into()),
        ("OriginDate", format_time(origin, origin_digits).into()),
        (
            "PublicationDate",
            after(modified, -2_400 * second, digits_of(modified)).into(),
        ),
        ("ModificationDate", modified.into()),
        ("Online", true.into()),
        ("EvictionDate", "9999-12-31T23:59:59.999999Z".into()),
        ("S3Path", s3_path.into()),
        ("Checksum", checksum),
        (
            "ContentDate",
            object([
                ("Start", format_time(sensing, 6).into()),
                ("End", format_time(end, 6).into()),
            ]),
        ),
        ("Footprint", footprint),
        ("GeoFootprint", geo),
        ("Attributes", attributes.into()),
        ("Collection", object([("Name", collection.into())])),
    ]);
    if n % 89 == 88 {
        product["Footprint"] = Json::Null;
        product["GeoFootprint"] = Json::Null;
    } else if n % 83 == 82 {
        antimeridian(&mut product);
    }
    product
}

/// Generated products `numbers` of one type, to serve; `modified(n)` gives
/// each its `ModificationDate`.
pub fn products(
    numbers: std::ops::Range<u64>,
    product_type: &str,
    modified: impl Fn(u64) -> String,
) -> Products {
    numbers
        .map(|n| product(n, product_type, &modified(n)))
        .collect()
}

/// As [`products`], as JSON values to change before they are served.
pub fn product_list(
    numbers: std::ops::Range<u64>,
    product_type: &str,
    modified: impl Fn(u64) -> String,
) -> Vec<Json> {
    numbers
        .map(|n| product(n, product_type, &modified(n)))
        .collect()
}

/// The products of an answer CDSE gave that someone recorded
/// (tests/fixtures/real/odata): a page's `value` list, or the product of a
/// subscription notification (`value` or `Value`), each with the server's
/// `Collection` so that it can be served as it came.
pub fn recorded(answer: &str, collection: &str) -> Vec<Json> {
    let answer: Json = serde_json::from_str(answer).expect("a recorded answer is JSON");
    let products = match answer.get("value").or_else(|| answer.get("Value")) {
        Some(Json::Array(products)) => products.clone(),
        Some(product) => vec![product.clone()],
        None => panic!("a recorded answer is a page or a notification"),
    };
    products
        .into_iter()
        .map(|mut product| {
            product["Collection"] = json!({"Name": collection});
            product
        })
        .collect()
}

/// A `DeletedProducts` entry for `product`: the product as it was, with
/// `DeletionDate` and `DeletionCause` (one of [`DELETION_CAUSES`]).
pub fn deleted(product: &Json, deletion_date: &str, cause: &str) -> Json {
    assert!(
        DELETION_CAUSES.contains(&cause),
        "not a CDSE cause: {cause}"
    );
    let mut entry = product.clone();
    entry["DeletionDate"] = json!(deletion_date);
    entry["DeletionCause"] = json!(cause);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Answer {
        fn json(&self) -> Json {
            serde_json::from_str(&self.body).expect("a JSON answer")
        }
    }

    fn server(products: Vec<Json>) -> Mutex<OdataServer> {
        Mutex::new(OdataServer {
            products: products.into(),
            ..OdataServer::default()
        })
    }

    fn get(state: &Mutex<OdataServer>, target: &str) -> Answer {
        answer(
            state,
            &Mutex::new(VecDeque::new()),
            "http://127.0.0.1:1",
            target,
        )
    }

    fn names(answer: &Answer) -> Vec<String> {
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.json()["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["Id"].as_str().unwrap().to_string())
            .collect()
    }

    const S2: &str = "Collection/Name%20eq%20%27SENTINEL-2%27";

    #[test]
    fn times_read_and_write_as_cdse_writes_them() {
        let t = parse_time("2024-03-01T10:20:30.123456Z", true).unwrap();
        assert_eq!(format_time(t, 6), "2024-03-01T10:20:30.123456Z");
        assert_eq!(format_time(t, 3), "2024-03-01T10:20:30.123Z");
        assert_eq!(
            parse_time("2024-03-01T10:20:30.500Z", true),
            parse_time("2024-03-01T10:20:30.500000Z", true)
        );
        assert_eq!(parse_time("1970-01-01T00:00:01Z", true), Some(1_000_000));
        assert_eq!(
            after("2024-02-28T23:59:59.000Z", 1_500_000, 3),
            "2024-02-29T00:00:00.500Z"
        );
        assert_eq!(
            after("9999-12-31T23:59:59.999999Z", 0, 6),
            "9999-12-31T23:59:59.999999Z"
        );
        for bad in [
            "2024-03-01T10:20:30.12Z",
            "2024-03-01T10:20:30",
            "2024-03-01 10:20:30Z",
            "2024-03-01T10:20:30+00:00",
            "2024-03-01T10:20:30.1234567Z",
            "2024-13-01T10:20:30Z",
        ] {
            assert_eq!(parse_time(bad, true), None, "{bad}");
        }
    }

    #[test]
    fn generated_products_have_cdses_shape() {
        let p = product(0, "S2MSI1C", "2024-01-01T12:00:00.000Z");
        let name = p["Name"].as_str().unwrap();
        assert!(
            name.starts_with("S2A_MSIL1C_20240101T101031_N0510_R001_T01")
                && name.ends_with(".SAFE"),
            "{name}"
        );
        assert_eq!(p["Id"].as_str().unwrap().len(), 36);
        assert_eq!(p["PublicationDate"], "2024-01-01T11:20:00.000Z");
        assert_eq!(p["OriginDate"].as_str().unwrap().len(), 24);
        assert_eq!(
            product(1, "S2MSI1C", "2024-01-01T12:00:00.000Z")["OriginDate"]
                .as_str()
                .unwrap()
                .len(),
            27
        );
        assert_eq!(p["Checksum"][0]["Algorithm"], "MD5");
        assert_eq!(p["Checksum"][1]["Value"].as_str().unwrap().len(), 64);
        assert!(p["Footprint"]
            .as_str()
            .unwrap()
            .starts_with("geography'SRID=4326;POLYGON (("));
        assert_eq!(p["GeoFootprint"]["type"], "Polygon");
        let kinds: Vec<&str> = p["Attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["ValueType"].as_str().unwrap())
            .collect();
        for kind in ["String", "Integer", "Double", "DateTimeOffset"] {
            assert!(kinds.contains(&kind), "{kinds:?}");
        }
        assert_ne!(uuid("S2MSI1C", 0), uuid("S2MSI2A", 0));
        assert!(product(0, "L2__NO2___", "2024-01-01T12:00:00Z")["Name"]
            .as_str()
            .unwrap()
            .starts_with("S5P_OFFL_L2__NO2____20240101T101031_"));
        assert!(product(0, "OL_1_EFR___", "2024-01-01T12:00:00Z")["Name"]
            .as_str()
            .unwrap()
            .starts_with("S3A_OL_1_EFR____20240101T101031_"));
        assert_eq!(
            product(96, "S2MSI1C", "2024-01-01T12:00:00Z")["Checksum"],
            json!([])
        );
        assert_eq!(
            product(88, "S2MSI1C", "2024-01-01T12:00:00Z")["GeoFootprint"],
            Json::Null
        );
        assert_eq!(
            product(82, "S2MSI1C", "2024-01-01T12:00:00Z")["GeoFootprint"]["type"],
            "MultiPolygon"
        );
    }

    #[test]
    fn a_count_alone_lists_no_product_and_can_be_scripted_away() {
        let state = server(product_list(0..3, "S2MSI1C", |n| {
            format!("2024-01-0{}T00:00:00.000Z", n + 1)
        }));
        let target = "/odata/v1/Products?$filter=ModificationDate%20ge%202024-01-02T00:00:00.000Z&$top=0&$count=true";
        let counted = get(&state, target).json();
        assert_eq!(counted["@odata.count"], 2);
        assert_eq!(counted["value"], json!([]));
        assert_eq!(counted.get("@odata.nextLink"), None);
        state.lock().unwrap().count_answer = Some("\"many\"");
        assert_eq!(get(&state, target).json()["@odata.count"], "many");
        state.lock().unwrap().count_answer = Some("");
        let ignored = get(&state, target).json();
        assert_eq!(ignored.get("@odata.count"), None);
        assert_eq!(ignored["value"], json!([]), "{ignored}");
    }

    #[test]
    fn a_skip_past_10000_is_a_422_and_the_next_link_stops_there() {
        let state = server(product_list(0..10_050, "S2MSI1C", |_| {
            "2024-01-01T00:00:00.000Z".into()
        }));
        let refused = get(
            &state,
            "/odata/v1/Products?$orderby=ModificationDate%20asc&$skip=10001",
        );
        assert_eq!(refused.status, 422);
        assert_eq!(
            refused.body,
            r#"{"detail":[{"type":"less_than_equal","loc":["query","$skip"],"msg":"Input should be less than or equal to 10000","input":"10001","ctx":{"le":10000}}]}"#
        );
        let top = get(&state, "/odata/v1/Products?$top=1001");
        assert_eq!(top.status, 422);
        assert!(top.body.contains(r#""loc":["query","$top"]"#));
        assert_eq!(get(&state, "/odata/v1/Products?$top=ten").status, 422);
        assert_eq!(get(&state, "/odata/v1/Products?$skip=-1").status, 422);

        // The page at 9,000 links to 10,000; the page at 10,000 links to
        // nothing, though 50 more products match.
        let page = get(
            &state,
            &format!("/odata/v1/Products?%24filter={S2}&$top=1000&$skip=9000&$orderby=ModificationDate+asc&$count=true"),
        );
        assert_eq!(page.json()["@odata.count"], 10_050);
        let page = page.json();
        let next = page["@odata.nextLink"].as_str().unwrap();
        assert!(
            next.starts_with("http://127.0.0.1:1/odata/v1/Products?"),
            "{next}"
        );
        assert_eq!(option(next, "$skip").as_deref(), Some("10000"));
        assert_eq!(
            option(next, "$filter").as_deref(),
            Some("Collection/Name eq 'SENTINEL-2'")
        );
        assert_eq!(
            option(next, "$orderby").as_deref(),
            Some("ModificationDate asc")
        );
        let last = get(&state, &next[next.find("/odata").unwrap()..]);
        assert_eq!(names(&last).len(), 50);
        assert_eq!(last.json().get("@odata.nextLink"), None);
        let cut = get(
            &state,
            "/odata/v1/Products?$top=1000&$skip=9500&$orderby=ModificationDate",
        );
        assert_eq!(names(&cut).len(), 550);
        assert_eq!(cut.json().get("@odata.nextLink"), None);
        assert_eq!(state.lock().unwrap().max_option("$skip"), 10_001);
    }

    #[test]
    fn pages_are_ordered_by_the_time_then_id_and_unordered_without_orderby() {
        let times = [
            "2024-01-02T00:00:00.000Z",
            "2024-01-01T00:00:00.000000Z",
            "2024-01-01T00:00:00.000Z",
            "2024-01-01T00:00:00.500Z",
            "2024-01-01T00:00:00.499999Z",
        ];
        let all = product_list(0..5, "S2MSI1C", |n| times[n as usize].into());
        let id = |n: usize| all[n]["Id"].as_str().unwrap().to_string();
        let state = server(all.clone());
        let mut first_two = [id(1), id(2)];
        first_two.sort();
        let ascending = names(&get(
            &state,
            "/odata/v1/Products?$orderby=ModificationDate%20asc",
        ));
        assert_eq!(
            ascending,
            [
                first_two[0].clone(),
                first_two[1].clone(),
                id(4),
                id(3),
                id(0)
            ]
        );
        let descending = names(&get(
            &state,
            "/odata/v1/Products?$orderby=ModificationDate%20desc&$top=2",
        ));
        assert_eq!(descending, [id(0), id(3)]);
        let paged: Vec<String> = (0..5)
            .flat_map(|skip| {
                names(&get(
                    &state,
                    &format!("/odata/v1/Products?$orderby=ModificationDate&$top=1&$skip={skip}"),
                ))
            })
            .collect();
        assert_eq!(paged, ascending);
        let mut by_id: Vec<String> = (0..5).map(id).collect();
        by_id.sort();
        by_id.reverse();
        assert_eq!(names(&get(&state, "/odata/v1/Products")), by_id);
        assert_eq!(get(&state, "/odata/v1/Products?$orderby=Name").status, 400);
        assert_eq!(
            get(&state, "/odata/v1/Products?$orderby=DeletionDate").status,
            400
        );
    }

    #[test]
    fn filters_select_by_collection_type_and_time() {
        let mut all = product_list(0..4, "S2MSI1C", |n| {
            format!("2024-01-0{}T00:00:00.000Z", n + 1)
        });
        all.extend(product_list(0..2, "S2MSI2A", |_| {
            "2024-01-02T00:00:00.000000Z".into()
        }));
        all.extend(product_list(0..2, "GRD", |_| {
            "2024-01-02T00:00:00.000000Z".into()
        }));
        all[1]["Online"] = json!(false);
        let state = server(all.clone());
        let count = |filter: &str| {
            let answer = get(
                &state,
                &format!("/odata/v1/Products?$filter={filter}&$orderby=PublicationDate"),
            );
            assert_eq!(answer.status, 200, "{filter}: {:?}", answer.body);
            answer.json()["value"].as_array().unwrap().len()
        };
        assert_eq!(count(S2), 6);
        assert_eq!(count("Collection/Name eq 'SENTINEL-1'"), 2);
        let l1c = "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and att/OData.CSC.StringAttribute/Value eq 'S2MSI1C')";
        assert_eq!(count(&format!("{S2} and {l1c}")), 4);
        assert_eq!(
            count(&format!(
                "({S2}) and ({l1c}) and ModificationDate ge 2024-01-02T00:00:00.000000Z and ModificationDate lt 2024-01-04T00:00:00Z"
            )),
            2
        );
        assert_eq!(
            count(&format!(
                "{l1c}+and+ModificationDate+gt+2024-01-02T00:00:00.000Z"
            )),
            2
        );
        assert_eq!(count("ModificationDate eq 2024-01-02T00:00:00.000Z"), 5);
        assert_eq!(
            count(&format!(
                "{S2} and ContentDate/Start lt 2024-01-01T10:11:00.000Z"
            )),
            2
        );
        assert_eq!(count(&format!("{l1c} and Online eq true")), 3);
        assert_eq!(
            count(&format!("{l1c} or Collection/Name eq 'SENTINEL-1'")),
            6
        );
        assert_eq!(
            count("Attributes/OData.CSC.IntegerAttribute/any(a:a/Name eq 'relativeOrbitNumber' and a/OData.CSC.IntegerAttribute/Value le 1)"),
            3
        );
        assert_eq!(count("contains(Name,'MSIL2A')"), 2);
        for bad in [
            "ModificationDate ge 2024-01-02",
            "ModificationDate ge '2024-01-02T00:00:00Z'",
            "ModificationDate ge 2024-01-02T00:00:00.0Z",
            "DeletionDate ge 2024-01-02T00:00:00Z",
            "Collection/Name eq 'SENTINEL-2' and",
            "Collection/Name eq 'SENTINEL-2' and Foo eq 1",
            "OData.CSC.Intersects(area=geography'SRID=4326;POINT (1 2)')",
            "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and att/OData.CSC.StringAttribute/Value eq 'S2MSI1C'",
            "(Collection/Name eq 'SENTINEL-2'",
        ] {
            let answer = get(&state, &format!("/odata/v1/Products?$filter={bad}"));
            assert_eq!(answer.status, 400, "{bad}");
            assert!(answer.json()["error"]["message"].as_str().unwrap().contains("$filter"));
        }
        assert_eq!(get(&state, "/odata/v1/Products?$select=Name").status, 400);
        assert_eq!(get(&state, "/odata/v1/Nothing").status, 404);
    }

    #[test]
    fn attributes_come_only_with_expand_and_collection_never() {
        let state = server(product_list(0..2, "S2MSI1C", |_| {
            "2024-01-01T00:00:00Z".into()
        }));
        let bare = get(&state, "/odata/v1/Products");
        assert_eq!(bare.json()["@odata.context"], "$metadata#Products");
        for p in bare.json()["value"].as_array().unwrap() {
            assert_eq!(p.get("Attributes"), None);
            assert_eq!(p.get("Collection"), None);
            assert!(p.get("Checksum").is_some());
        }
        let expanded = get(&state, "/odata/v1/Products?$expand=Attributes");
        assert_eq!(
            expanded.json()["@odata.context"],
            "$metadata#Products(Attributes())"
        );
        assert_eq!(expanded.json().get("@odata.count"), None);
        for p in expanded.json()["value"].as_array().unwrap() {
            assert!(p["Attributes"].as_array().unwrap().len() > 5);
            assert_eq!(p.get("Collection"), None);
        }
        assert_eq!(get(&state, "/odata/v1/Products?$expand=Assets").status, 400);
    }

    #[test]
    fn deleted_products_filter_by_deletion_date() {
        let all = product_list(0..3, "S2MSI1C", |_| "2024-01-01T00:00:00Z".into());
        let state = server(vec![]);
        state.lock().unwrap().deleted = Products::from(vec![
            deleted(&all[0], "2024-02-01T00:00:00.000000Z", "Duplicated product"),
            deleted(&all[1], "2024-02-03T00:00:00.000Z", "Corrupted product"),
        ]);
        let answer = get(
            &state,
            "/odata/v1/DeletedProducts?$filter=DeletionDate%20ge%202024-02-02T00:00:00Z&$orderby=DeletionDate&$expand=Attributes",
        );
        assert_eq!(names(&answer), [all[1]["Id"].as_str().unwrap()]);
        assert_eq!(
            answer.json()["value"][0]["DeletionCause"],
            "Corrupted product"
        );
        assert_eq!(
            answer.json()["@odata.context"],
            "$metadata#DeletedProducts(Attributes())"
        );
    }

    #[test]
    fn scripted_failures_come_first_and_the_rate_limit_answers_429() {
        let state = server(vec![]);
        state.lock().unwrap().failures = vec![(429, "Retry-After: 1\r\n"), (503, "")];
        let recent = Mutex::new(VecDeque::new());
        let get = |target: &str| answer(&state, &recent, "http://x", target);
        let first = get("/odata/v1/Products");
        assert_eq!(
            (first.status, first.headers.as_str()),
            (429, "Retry-After: 1\r\n")
        );
        assert_eq!(get("/odata/v1/Products").status, 503);
        assert_eq!(get("/odata/v1/Products").status, 200);
        state.lock().unwrap().requests_per_minute = Some(2);
        assert_eq!(get("/odata/v1/Products").status, 200);
        let limited = get("/odata/v1/Products");
        assert_eq!(limited.status, 429);
        assert!(limited.headers.starts_with("Retry-After: "));
        state.lock().unwrap().outage = Some((0, 503));
        assert_eq!(get("/odata/v1/Products").status, 503);
        assert_eq!(state.lock().unwrap().seen.len(), 6);
    }

    #[test]
    fn the_server_speaks_http() {
        use std::io::Read;
        let state = Arc::new(server(product_list(0..3, "S2MSI1C", |_| {
            "2024-01-01T00:00:00Z".into()
        })));
        let base = serve(state.clone());
        let mut stream = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
        write!(
            stream,
            "GET /odata/v1/Products?$top=2&$orderby=ModificationDate HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        let body: Json = serde_json::from_str(body).unwrap();
        assert_eq!(body["value"].as_array().unwrap().len(), 2);
        let next = body["@odata.nextLink"].as_str().unwrap();
        assert!(
            next.starts_with(&format!("{base}/odata/v1/Products?")),
            "{next}"
        );
        assert!(!next.contains(' '), "{next}");
        assert_eq!(state.lock().unwrap().seen.len(), 1);
        assert_eq!(
            origin_form("http://catalogue.dataspace.copernicus.eu/odata/v1/Products?$top=1"),
            "/odata/v1/Products?$top=1"
        );
    }
}
