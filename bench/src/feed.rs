//! A synthetic but realistic feed: Sentinel-like product names over several
//! product types, all core properties, polygon and multi-polygon footprints,
//! and a namespace with values of four types.

use muninn_sync_model::{format_timestamp, Geometry, Point, Product, Timestamp, Value};
use std::io::Write;
use std::path::Path;

/// splitmix64: a small, fast, deterministic generator, so every run of the
/// benchmark syncs the same products.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(seed: u64) -> f64 {
    (mix(seed) >> 11) as f64 / (1u64 << 53) as f64
}

const TYPES: [(&str, &str); 4] = [
    ("S2MSI1C", "S2A_MSIL1C"),
    ("S2MSI2A", "S2B_MSIL2A"),
    ("IW_GRDH_1S", "S1A_IW_GRDH_1SDV"),
    ("OL_1_EFR___", "S3A_OL_1_EFR____"),
];

/// The feed's time span: products' `modified` times spread over a year.
const SPAN_MICROS: i64 = 365 * 24 * 3600 * 1_000_000;

fn start() -> Timestamp {
    muninn_sync_model::parse_timestamp("2024-01-01T00:00:00Z").expect("valid")
}

/// Product `i` of a feed of `n`, at `version` (0 for the first state; a
/// higher version changes its size, cloud cover and modification time a
/// little). Returns the `modified` time and the product.
pub fn product(i: u64, n: u64, version: u64) -> (Timestamp, Product) {
    let seed = i.wrapping_mul(0x1000_0000_01B3);
    let (product_type, prefix) = TYPES[(i % TYPES.len() as u64) as usize];
    let offset = SPAN_MICROS / n.max(1) as i64 * i as i64;
    let sensing = start() + chrono::Duration::microseconds(offset);
    let modified =
        sensing + chrono::Duration::hours(3) + chrono::Duration::milliseconds(version as i64);
    let stamp = sensing.format("%Y%m%dT%H%M%S");
    let name = format!(
        "{prefix}_{stamp}_N0510_R{:03}_T{:05}_{i:08}",
        i % 143,
        mix(seed) % 60_000
    );
    let mut product = Product::new(product_type, &name);
    product.physical_name = format!("{name}.SAFE");
    product.size = Some(100_000_000 + (mix(seed + 1) % 900_000_000) as i64 + version as i64);
    product.hash = Some(format!("md5:{:016x}{:016x}", mix(seed + 2), mix(seed + 3)));
    product.validity_start = Some(sensing);
    product.validity_stop = Some(sensing + chrono::Duration::seconds(10));
    product.creation_date = Some(sensing + chrono::Duration::hours(2));
    product.remote_url = Some(format!(
        "https://catalogue.example.org/odata/v1/Products({:032x})/$value",
        product.uuid.as_u128()
    ));
    product.footprint = Some(footprint(seed));
    let cloud_cover = (unit(seed + 4) * 100.0 * 100.0).round() / 100.0 + version as f64;
    product.namespaces.insert(
        "eo".into(),
        [
            ("cloud_cover".to_string(), Value::Real(cloud_cover)),
            ("platform".to_string(), Value::from(prefix[..3].to_string())),
            ("orbit".to_string(), Value::Integer((i % 143) as i64 + 1)),
            ("sensing_time".to_string(), Value::Timestamp(sensing)),
        ]
        .into(),
    );
    (modified, product)
}

/// A 100 km tile somewhere on Earth; one in ten crosses the antimeridian and
/// is a multi-polygon, as real ones are.
fn footprint(seed: u64) -> Geometry {
    let lat = -80.0 + unit(seed + 5) * 160.0;
    let ring = |x0: f64, x1: f64| {
        vec![
            Point { x: x0, y: lat },
            Point { x: x1, y: lat },
            Point {
                x: x1,
                y: lat + 0.9,
            },
            Point {
                x: x0,
                y: lat + 0.9,
            },
            Point { x: x0, y: lat },
        ]
    };
    if mix(seed + 6).is_multiple_of(10) {
        Geometry::MultiPolygon(vec![vec![ring(179.5, 180.0)], vec![ring(-180.0, -179.4)]])
    } else {
        let lon = -180.0 + unit(seed + 7) * 358.0;
        Geometry::Polygon(vec![ring(lon, lon + 1.1)])
    }
}

/// The feed line of a product.
pub fn line(modified: &Timestamp, product: &Product) -> String {
    let time =
        |t: &Option<Timestamp>| t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let eo = &product.namespaces["eo"];
    let json_value = |v: &Value| match v {
        Value::Real(r) => serde_json::json!(r),
        Value::Integer(i) => serde_json::json!(i),
        Value::Timestamp(t) => {
            serde_json::json!(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        }
        other => serde_json::json!(other.to_string()),
    };
    serde_json::json!({
        "modified": modified.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "product_type": product.product_type,
        "product_name": product.product_name,
        "physical_name": product.physical_name,
        "uuid": product.uuid.simple().to_string(),
        "size": product.size,
        "hash": product.hash,
        "validity_start": time(&product.validity_start),
        "validity_stop": time(&product.validity_stop),
        "creation_date": time(&product.creation_date),
        "remote_url": product.remote_url,
        "footprint": product.footprint.as_ref().map(Geometry::to_wkt),
        "namespaces": {"eo": eo.iter().map(|(k, v)| (k.clone(), json_value(v))).collect::<serde_json::Map<_, _>>()},
    })
    .to_string()
}

/// Writes a feed of `n` products in `modified` order; the products for which
/// `changed(i)` holds are written at version 1.
pub fn write(path: &Path, n: u64, changed: impl Fn(u64) -> bool) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for i in 0..n {
        let (modified, product) = product(i, n, u64::from(changed(i)));
        writeln!(out, "{}", line(&modified, &product))?;
    }
    out.flush()?;
    Ok(())
}

/// The SQL text of a timestamp, as the catalogue stores it.
pub fn sql_time(t: &Option<Timestamp>) -> Option<String> {
    t.as_ref().map(format_timestamp)
}

/// The two states of a feed a scenario syncs, written once and put in
/// place as `feed.jsonl` (a hard link, so switching costs nothing) for
/// each backend in turn.
pub struct Feeds {
    dir: std::path::PathBuf,
}

impl Feeds {
    /// Writes the feed of `n` products in `dir`, and the same feed with one
    /// product in a hundred changed; the first is put in place.
    pub fn write(dir: &Path, n: u64) -> anyhow::Result<Feeds> {
        let feeds = Feeds {
            dir: dir.to_path_buf(),
        };
        write(&feeds.original(), n, |_| false)?;
        write(&feeds.changed(), n, |i| i % 100 == 37)?;
        feeds.use_original()?;
        Ok(feeds)
    }

    /// `feed.jsonl`, the path every configuration names.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.join("feed.jsonl")
    }

    fn original(&self) -> std::path::PathBuf {
        self.dir.join("feed-original.jsonl")
    }

    fn changed(&self) -> std::path::PathBuf {
        self.dir.join("feed-changed.jsonl")
    }

    /// Puts the feed as first generated in place.
    pub fn use_original(&self) -> anyhow::Result<()> {
        self.put_in_place(&self.original())
    }

    /// Puts the feed with 1% of its products changed in place.
    pub fn use_changed(&self) -> anyhow::Result<()> {
        self.put_in_place(&self.changed())
    }

    fn put_in_place(&self, source: &Path) -> anyhow::Result<()> {
        let path = self.path();
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
        std::fs::hard_link(source, &path)?;
        Ok(())
    }
}
