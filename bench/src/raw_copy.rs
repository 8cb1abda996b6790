//! The physical limit on PostgreSQL: rows a first sync writes, sent by one
//! `COPY` per table in one transaction, as fast as the server takes them.
//! No plugin, no look-ups, no comparison, no run bookkeeping.
//!
//! Two sets of rows are measured: every row a first sync through the
//! jsonl plugin writes for a product (its `core` and `eo` rows, the
//! plugin's `jsonl` row, its owner record), which is "the same rows" of
//! issue 16's target; and only the `core` and `eo` rows, the limit as it
//! was first measured, kept to compare with earlier figures.

use crate::feed::{self, product};
use anyhow::{Context, Result};
use muninn_sync_model::{CoreField, Timestamp, Value};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::time::{Duration, Instant};

/// The `eo` namespace's columns, as the feed's products have them.
const EO_COLUMNS: [&str; 4] = ["cloud_cover", "orbit", "platform", "sensing_time"];

/// The columns of the jsonl plugin's namespace, as the plugin fills them.
pub const JSONL_COLUMNS: [&str; 3] = ["fingerprint", "key", "modified"];

/// Which of a first sync's rows a raw `COPY` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Only a product's `core` and `eo` rows.
    CoreAndEo,
    /// Every row a first sync writes for a product: `core`, `eo`, `jsonl`
    /// and `muninn_sync_owners`.
    Every,
}

impl Rows {
    /// The tables this set of rows goes to, in `COPY` order.
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Rows::CoreAndEo => &["core", "eo"],
            Rows::Every => &["core", "eo", "jsonl", "muninn_sync_owners"],
        }
    }
}

/// One table's `COPY` statement and its rows in `COPY`'s text format.
struct Table {
    sql: String,
    data: String,
}

impl Table {
    fn new(name: &str, columns: &[&str], bytes_per_row: usize, n: u64) -> Table {
        Table {
            sql: format!("COPY {name} ({}) FROM STDIN", columns.join(", ")),
            data: String::with_capacity(n as usize * bytes_per_row),
        }
    }

    /// Appends a row of `values`.
    fn push(&mut self, values: impl IntoIterator<Item = Option<Value>>) {
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.data.push('\t');
            }
            push_field(&mut self.data, value);
        }
        self.data.push('\n');
    }
}

/// Copies `rows` of products 0..n into the empty catalogue `client` is
/// connected to (its tables made by muninn-sync; `synchronizer` the name
/// its owner records give); returns the time from `BEGIN` to `COMMIT`.
/// Making the rows' text beforehand is not counted.
pub fn copy(
    client: &mut postgres::Client,
    n: u64,
    rows: Rows,
    synchronizer: &str,
) -> Result<Duration> {
    let tables = texts(n, rows, synchronizer);
    let started = Instant::now();
    let mut transaction = client.transaction()?;
    for table in &tables {
        let mut writer = transaction.copy_in(&table.sql)?;
        writer.write_all(table.data.as_bytes())?;
        writer.finish().with_context(|| table.sql.clone())?;
    }
    transaction.commit()?;
    Ok(started.elapsed())
}

/// The `COPY` text of `rows` of products 0..n, as muninn-sync writes them
/// (values in PostgreSQL's text input form), one [`Table`] for each of
/// [`Rows::tables`].
fn texts(n: u64, rows: Rows, synchronizer: &str) -> Vec<Table> {
    let now = muninn_sync_model::truncate_to_micros(chrono::Utc::now());
    let core_columns = CoreField::ALL.map(CoreField::name);
    let uuid_and = |columns: &[&'static str]| [&["uuid"], columns].concat();
    let mut core = Table::new("core", &core_columns, 600, n);
    let mut eo = Table::new("eo", &uuid_and(&EO_COLUMNS), 100, n);
    // The plugin's row and the owner record, when they are measured too.
    let mut bookkeeping = (rows == Rows::Every).then(|| {
        (
            Table::new("jsonl", &uuid_and(&JSONL_COLUMNS), 90, n),
            Table::new("muninn_sync_owners", &["uuid", "synchronizer"], 45, n),
        )
    });
    for i in 0..n {
        let (modified, mut p) = product(i, n, 0);
        let uuid = Some(Value::Uuid(p.uuid));
        if let Some((jsonl, owners)) = &mut bookkeeping {
            // The plugin keeps a hash of the product's line and one of its
            // type and name; any 64-bit hash has the same size.
            let fingerprint = hash(&feed::line(&modified, &p));
            let key = hash(&(&p.product_type, &p.product_name));
            jsonl.push([
                uuid.clone(),
                Some(Value::Integer(fingerprint)),
                Some(Value::Integer(key)),
                Some(Value::Timestamp(modified)),
            ]);
            owners.push([uuid.clone(), Some(Value::Text(synchronizer.to_string()))]);
        }
        p.metadata_date = Some(now);
        core.push(CoreField::ALL.map(|field| p.core_value(field)));
        let values = &p.namespaces["eo"];
        eo.push(std::iter::once(uuid).chain(EO_COLUMNS.map(|column| values.get(column).cloned())));
    }
    let mut tables = vec![core, eo];
    tables.extend(
        bookkeeping
            .into_iter()
            .flat_map(|(jsonl, owners)| [jsonl, owners]),
    );
    tables
}

/// A 64-bit hash of `value` (`DefaultHasher::new` has fixed keys).
pub fn hash(value: &impl Hash) -> i64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish() as i64
}

/// A value in `COPY`'s text format: `\N` for NULL, and the characters
/// that would end a field or a row escaped.
fn push_field(line: &mut String, value: Option<Value>) {
    let Some(value) = value else {
        line.push_str("\\N");
        return;
    };
    for c in text(&value).chars() {
        match c {
            '\\' => line.push_str("\\\\"),
            '\t' => line.push_str("\\t"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
}

/// PostgreSQL's text input form of a value, in muninn's column types.
fn text(value: &Value) -> String {
    match value {
        Value::Text(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Boolean(b) => if *b { "t" } else { "f" }.to_string(),
        Value::Timestamp(t) => timestamp(t),
        Value::Uuid(u) => u.hyphenated().to_string(),
        Value::Geometry(g) => format!("SRID=4326;{}", g.to_wkt()),
        Value::Json(j) => j.to_string(),
    }
}

/// A `timestamp` (UTC, no zone) to the microsecond.
fn timestamp(t: &Timestamp) -> String {
    t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}
