//! The physical limit on PostgreSQL: the same rows a first sync writes
//! into muninn's `core` and `eo` tables, sent by one `COPY` per table in
//! one transaction, as fast as the server takes them. No plugin, no
//! look-ups, no comparison, no run bookkeeping.

use crate::feed::product;
use anyhow::{Context, Result};
use muninn_sync_model::{CoreField, Timestamp, Value};
use std::io::Write;
use std::time::{Duration, Instant};

/// The `eo` namespace's columns, as the feed's products have them.
const EO_COLUMNS: [&str; 4] = ["cloud_cover", "orbit", "platform", "sensing_time"];

/// Copies products 0..n into the empty catalogue `client` is connected to
/// (its tables made by muninn-sync); returns the time from `BEGIN` to
/// `COMMIT`. Making the rows' text beforehand is not counted.
pub fn copy(client: &mut postgres::Client, n: u64) -> Result<Duration> {
    let (core, eo) = rows(n);
    let core_columns = CoreField::ALL.map(CoreField::name).join(", ");
    let eo_columns = EO_COLUMNS.join(", ");
    let started = Instant::now();
    let mut transaction = client.transaction()?;
    for (sql, data) in [
        (format!("COPY core ({core_columns}) FROM STDIN"), &core),
        (format!("COPY eo (uuid, {eo_columns}) FROM STDIN"), &eo),
    ] {
        let mut writer = transaction.copy_in(&sql)?;
        writer.write_all(data)?;
        writer.finish().with_context(|| sql.clone())?;
    }
    transaction.commit()?;
    Ok(started.elapsed())
}

/// The `COPY` text of the core and `eo` rows of products 0..n, as
/// muninn-sync writes them (values in PostgreSQL's text input form).
fn rows(n: u64) -> (Vec<u8>, Vec<u8>) {
    let now = muninn_sync_model::truncate_to_micros(chrono::Utc::now());
    let mut core = String::with_capacity(n as usize * 600);
    let mut eo = String::with_capacity(n as usize * 100);
    for i in 0..n {
        let (_, mut p) = product(i, n, 0);
        p.metadata_date = Some(now);
        for (index, field) in CoreField::ALL.into_iter().enumerate() {
            if index > 0 {
                core.push('\t');
            }
            push_field(&mut core, p.core_value(field));
        }
        core.push('\n');
        push_field(&mut eo, Some(Value::Uuid(p.uuid)));
        let values = &p.namespaces["eo"];
        for column in EO_COLUMNS {
            eo.push('\t');
            push_field(&mut eo, values.get(column).cloned());
        }
        eo.push('\n');
    }
    (core.into_bytes(), eo.into_bytes())
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
