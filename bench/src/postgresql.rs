//! The PostgreSQL scenario: the same feed synced by the real binary into a
//! private PostgreSQL + PostGIS server on 127.0.0.1, directly and through
//! a relay that adds a round trip of 1 ms (the database on another host),
//! against the server's own limit for the same rows (`COPY` of every row a
//! first sync writes; and, to compare with earlier figures, of its `core`
//! and `eo` rows only).

use crate::feed::{self, Feeds};
use crate::latency_proxy::LatencyProxy;
use crate::measure::{run_with, Binaries, Sync};
use crate::raw_copy::{self, Rows};
use anyhow::{anyhow, Context, Result};
use muninn_sync_test_postgres::{cluster, Cluster, TestDatabase};
use std::path::Path;
use std::time::{Duration, Instant};

/// The round trip the relay adds: half of it in each direction.
const ADDED_ROUND_TRIP: Duration = Duration::from_millis(1);

/// The synchronizer every configuration names, and so its owner records.
const SYNCHRONIZER: &str = "feed";

/// The private server and the relay in front of it, for the whole run.
pub struct Server {
    cluster: &'static Cluster,
    proxy: LatencyProxy,
    /// The round trip the relay adds, as measured with `SELECT 1`.
    pub added_round_trip_ms: f64,
    /// Whether the server logs every statement of the syncs with its
    /// duration (to find where the time goes; it slows the syncs).
    log_statements: bool,
}

/// How muninn-sync reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Localhost,
    /// Through the relay: 1 ms more per round trip.
    Remote,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Localhost => "localhost",
            Route::Remote => "+1 ms RTT",
        }
    }

    fn config(self) -> &'static str {
        match self {
            Route::Localhost => "postgresql.toml",
            Route::Remote => "postgresql-1ms.toml",
        }
    }
}

/// One run of muninn-sync, and what the server spent meanwhile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub sync: Sync,
    /// CPU time of every server process (the sessions included).
    pub server_cpu_seconds: f64,
    /// Round trips through the relay (none counted on localhost).
    pub round_trips: u64,
}

/// First sync, unchanged re-sync, 1% changed and --force (on localhost
/// only), one way of reaching the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Runs {
    pub first: Measured,
    pub unchanged: Measured,
    pub one_percent: Measured,
    pub forced: Option<Measured>,
    pub database_mb: f64,
}

impl Runs {
    fn each(&self) -> Vec<(&'static str, &Measured)> {
        let mut each = vec![
            ("first sync", &self.first),
            ("unchanged re-sync", &self.unchanged),
            ("1% changed", &self.one_percent),
        ];
        each.extend(self.forced.iter().map(|m| ("--force", m)));
        each
    }

    fn peak_rss_mb(&self) -> f64 {
        self.each()
            .iter()
            .map(|(_, m)| m.sync.peak_rss_mb)
            .fold(0.0, f64::max)
    }
}

/// One raw `COPY` of products 0..n.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw {
    pub seconds: f64,
    /// CPU time of every server process meanwhile.
    pub server_cpu_seconds: f64,
}

/// The figures of one feed size.
#[derive(Debug, Clone, Copy, Default)]
pub struct Row {
    pub products: u64,
    /// The raw `COPY` of every row a first sync writes: the limit of
    /// issue 16's target.
    pub raw_every_row: Raw,
    /// The raw `COPY` of the `core` and `eo` rows only, as first measured.
    pub raw_core_and_eo: Raw,
    pub parse_seconds: f64,
    pub localhost: Runs,
    pub remote: Runs,
}

impl Raw {
    /// Products copied a second.
    fn rate(&self, products: u64) -> f64 {
        per_second(products, self.seconds)
    }
}

impl Row {
    fn runs(&self, route: Route) -> &Runs {
        match route {
            Route::Localhost => &self.localhost,
            Route::Remote => &self.remote,
        }
    }
}

impl Server {
    /// Starts the private cluster (as the tests do) and the relay, and
    /// measures the round trip the relay adds.
    pub fn start(log_statements: bool) -> Result<Server> {
        let cluster = cluster();
        let address = format!("{}:{}", cluster.host(), cluster.port()).parse()?;
        let one_way = ADDED_ROUND_TRIP / 2;
        let proxy = LatencyProxy::start(address, one_way)?;
        let mut server = Server {
            cluster,
            proxy,
            added_round_trip_ms: 0.0,
            log_statements,
        };
        // Sleeps wake up late: the delay is set once more, less what the
        // first measurement found beyond 1 ms.
        let database = cluster.create_database("bench_ping");
        let direct = server.round_trip_ms(&database, Route::Localhost)?;
        let first = server.round_trip_ms(&database, Route::Remote)? - direct;
        let late = Duration::from_secs_f64(((first - 1.0) / 2e3).clamp(0.0, 0.25e-3));
        server.proxy.set_one_way(one_way - late);
        server.added_round_trip_ms = server.round_trip_ms(&database, Route::Remote)? - direct;
        eprintln!(
            "PostgreSQL on 127.0.0.1:{} (pid {}); SELECT 1 takes {direct:.3} ms, {:.3} ms more through the relay",
            cluster.port(),
            cluster.server_pid(),
            server.added_round_trip_ms
        );
        Ok(server)
    }

    fn port(&self, route: Route) -> u16 {
        match route {
            Route::Localhost => self.cluster.port(),
            Route::Remote => self.proxy.port(),
        }
    }

    /// libpq keywords for `database` by `route`, as a user writes them.
    fn connection_string(&self, database: &TestDatabase, route: Route) -> String {
        format!(
            "host={} port={} user={} dbname={}",
            self.cluster.host(),
            self.port(route),
            self.cluster.superuser(),
            database.name()
        )
    }

    /// Copies the server's log to `path` when it logged the statements.
    pub fn keep_log(&self, path: &Path) -> Result<()> {
        if self.log_statements {
            std::fs::copy(self.cluster.log_file(), path)?;
            eprintln!(
                "the server's log, every statement with its duration: {}",
                path.display()
            );
        }
        Ok(())
    }

    /// A new database for the syncs, logging their statements if asked.
    fn create_database(&self, hint: &str) -> Result<TestDatabase> {
        let database = self.cluster.create_database(hint);
        if self.log_statements {
            self.cluster.client().batch_execute(&format!(
                "ALTER DATABASE {} SET log_min_duration_statement = 0",
                database.name()
            ))?;
        }
        Ok(database)
    }

    /// The median time of `SELECT 1` by `route`, in milliseconds.
    fn round_trip_ms(&self, database: &TestDatabase, route: Route) -> Result<f64> {
        let mut client =
            postgres::Client::connect(&self.connection_string(database, route), postgres::NoTls)?;
        let statement = client.prepare("SELECT 1")?;
        let mut times: Vec<f64> = (0..201)
            .map(|_| {
                let started = Instant::now();
                client.query_one(&statement, &[])?;
                Ok(started.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_>>()?;
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }

    /// Dirty pages of the last step written out, so that no step pays for
    /// the one before.
    fn checkpoint(&self) -> Result<()> {
        self.cluster.client().batch_execute("CHECKPOINT")?;
        Ok(())
    }

    /// CPU time of the postmaster, its children and the children it has
    /// reaped, from /proc: every session and background process.
    fn cpu_seconds(&self) -> Result<f64> {
        let postmaster = self.cluster.server_pid();
        let mut ticks = 0;
        for entry in std::fs::read_dir("/proc")? {
            let entry = entry?;
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // A process may end between the listing and the read.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let fields: Vec<u64> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest)
                .unwrap_or("")
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            // After the command: state, ppid, ..., utime (11), stime,
            // cutime, cstime.
            if fields.len() < 15 {
                continue;
            }
            if pid == postmaster {
                ticks += fields[11] + fields[12] + fields[13] + fields[14];
            } else if fields[1] == u64::from(postmaster) {
                ticks += fields[11] + fields[12];
            }
        }
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        Ok(ticks as f64 / per_second as f64)
    }

    /// Runs muninn-sync with `config` in `dir`, and what the server spent.
    fn measure(&self, binaries: &Binaries, dir: &Path, config: &str) -> Result<Measured> {
        self.measure_with(binaries, dir, config, &[])
    }

    /// [`Server::measure`] with more arguments for muninn-sync.
    fn measure_with(
        &self,
        binaries: &Binaries,
        dir: &Path,
        config: &str,
        extra: &[&str],
    ) -> Result<Measured> {
        self.checkpoint()?;
        let round_trips = self.proxy.round_trips();
        let cpu = self.cpu_seconds()?;
        let sync = run_with(binaries, dir, config, extra)?;
        Ok(Measured {
            sync,
            server_cpu_seconds: self.cpu_seconds()? - cpu,
            round_trips: self.proxy.round_trips() - round_trips,
        })
    }
}

fn config(connection_string: &str) -> String {
    format!(
        "[archive]\ndatabase = \"postgresql\"\n\n[postgresql]\nconnection_string = \"{connection_string}\"\n\n\
         [\"synchronizer:{SYNCHRONIZER}\"]\nmodule = \"jsonl\"\npath = \"feed.jsonl\"\n"
    )
}

/// Every PostgreSQL measurement of one feed size, in `dir` beside the
/// feeds: the raw `COPY` limits, then each route in a database of its own.
pub fn scenario(
    server: &Server,
    binaries: &Binaries,
    dir: &Path,
    feeds: &Feeds,
    n: u64,
    parse_seconds: f64,
) -> Result<Row> {
    let mut row = Row {
        products: n,
        parse_seconds,
        ..Row::default()
    };
    (row.raw_core_and_eo, row.raw_every_row) = raw_limit(server, binaries, dir, n)?;
    for route in [Route::Localhost, Route::Remote] {
        eprintln!("  PostgreSQL, {}", route.label());
        let database = server.create_database(&format!("bench_{n}"))?;
        std::fs::write(
            dir.join(route.config()),
            config(&server.connection_string(&database, route)),
        )?;
        feeds.use_original()?;
        let mut runs = Runs {
            first: server.measure(binaries, dir, route.config())?,
            ..Runs::default()
        };
        runs.database_mb = database_mb(&database)?;
        runs.unchanged = server.measure(binaries, dir, route.config())?;
        feeds.use_changed()?;
        runs.one_percent = server.measure(binaries, dir, route.config())?;
        if route == Route::Localhost {
            // Every product rewritten: what issue 17 wants no dearer than
            // the first sync.
            runs.forced = Some(server.measure_with(binaries, dir, route.config(), &["--force"])?);
        }
        match route {
            Route::Localhost => row.localhost = runs,
            Route::Remote => row.remote = runs,
        }
    }
    Ok(row)
}

/// The raw `COPY` of products 0..n into a catalogue whose tables
/// muninn-sync made (a first sync of ten products, then emptied), twice:
/// the `core` and `eo` rows only, then every row a first sync writes.
fn raw_limit(server: &Server, binaries: &Binaries, dir: &Path, n: u64) -> Result<(Raw, Raw)> {
    let database = server.cluster.create_database(&format!("bench_raw_{n}"));
    let tables = dir.join("tables");
    std::fs::create_dir_all(&tables)?;
    feed::write(&tables.join("feed.jsonl"), 10, |_| false)?;
    let toml = "postgresql.toml";
    std::fs::write(
        tables.join(toml),
        config(&server.connection_string(&database, Route::Localhost)),
    )?;
    run_with(binaries, &tables, toml, &[]).context("the first sync that makes the tables")?;
    let mut client = database.client();
    let mut measure = |rows: Rows| -> Result<Raw> {
        // Owner records and namespace rows reference core: all go.
        client.batch_execute("TRUNCATE core CASCADE")?;
        server.checkpoint()?;
        let cpu = server.cpu_seconds()?;
        let spent = raw_copy::copy(&mut client, n, rows, SYNCHRONIZER)?;
        let server_cpu_seconds = server.cpu_seconds()? - cpu;
        for table in Rows::Every.tables() {
            let expected = if rows.tables().contains(table) { n } else { 0 };
            let count: i64 = client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
                .get(0);
            if count as u64 != expected {
                return Err(anyhow!(
                    "after the raw COPY of {rows:?}, {table} holds {count} rows instead of {expected}"
                ));
            }
        }
        Ok(Raw {
            seconds: spent.as_secs_f64(),
            server_cpu_seconds,
        })
    };
    Ok((measure(Rows::CoreAndEo)?, measure(Rows::Every)?))
}

fn database_mb(database: &TestDatabase) -> Result<f64> {
    let bytes: i64 = database
        .client()
        .query_one("SELECT pg_database_size(current_database())", &[])?
        .get(0);
    Ok(bytes as f64 / 1e6)
}

fn per_second(count: u64, seconds: f64) -> f64 {
    count as f64 / seconds.max(1e-9)
}

/// The PostgreSQL report: rates and ratios, where the time goes, and the
/// issue's targets.
pub fn print_tables(server: &Server, rows: &[Row], sqlite: &[crate::measure::Row]) {
    println!(
        "PostgreSQL (private server on 127.0.0.1; the relay adds {:.2} ms to a round trip):",
        server.added_round_trip_ms
    );
    println!("(A raw COPY's rows/s count products, each with its row in every table that COPY writes, to compare with the first sync's products/s.)");
    println!();
    println!("| products | server | raw COPY core+eo rows/s | raw COPY of every row rows/s | first sync products/s | vs raw COPY core+eo | vs raw COPY of every row | vs localhost | µs/product | peak RSS MB | database MB | unchanged re-sync s | vs read+parse | rows written | 1% changed s | rows written | --force s | --force / first sync | rows written |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let core_and_eo = r.raw_core_and_eo.rate(r.products);
        let every_row = r.raw_every_row.rate(r.products);
        let local_rate = per_second(r.products, r.localhost.first.sync.seconds);
        for route in [Route::Localhost, Route::Remote] {
            let runs = r.runs(route);
            let rate = per_second(r.products, runs.first.sync.seconds);
            let (raw_core_and_eo, raw_every_row, vs_localhost) = match route {
                Route::Localhost => (
                    format!("{core_and_eo:.0}"),
                    format!("{every_row:.0}"),
                    "—".to_string(),
                ),
                Route::Remote => ("—".to_string(), "—".to_string(), percent(rate / local_rate)),
            };
            let (forced, forced_ratio, forced_written) = match &runs.forced {
                Some(m) => (
                    format!("{:.2}", m.sync.seconds),
                    format!("{:.2}x", m.sync.seconds / runs.first.sync.seconds),
                    m.sync.written.to_string(),
                ),
                None => ("—".into(), "—".into(), "—".into()),
            };
            println!(
                "| {} | {} | {raw_core_and_eo} | {raw_every_row} | {rate:.0} | {} | {} | {vs_localhost} | {:.1} | {:.0} | {:.0} | {:.2} | {:.2}x | {} | {:.2} | {} | {forced} | {forced_ratio} | {forced_written} |",
                r.products,
                route.label(),
                percent(rate / core_and_eo),
                percent(rate / every_row),
                1e6 * runs.first.sync.seconds / r.products as f64,
                runs.peak_rss_mb(),
                runs.database_mb,
                runs.unchanged.sync.seconds,
                runs.unchanged.sync.seconds / r.parse_seconds,
                runs.unchanged.sync.written,
                runs.one_percent.sync.seconds,
                runs.one_percent.sync.written,
            );
        }
    }
    println!();
    println!("Where the time goes (CPU seconds of the muninn-sync process and of every server process; round trips counted by the relay):");
    println!();
    println!("| products | server | run | s | vs localhost | muninn-sync CPU s | PostgreSQL CPU s | round trips | peak RSS MB |");
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        for (label, raw) in [
            ("raw COPY core+eo", r.raw_core_and_eo),
            ("raw COPY of every row", r.raw_every_row),
        ] {
            println!(
                "| {} | localhost | {label} | {:.2} | — | — | {:.2} | — | — |",
                r.products, raw.seconds, raw.server_cpu_seconds
            );
        }
        for route in [Route::Localhost, Route::Remote] {
            let local_runs = r.localhost.each();
            for (label, m) in r.runs(route).each() {
                let local = local_runs.iter().find(|(l, _)| *l == label).map(|(_, m)| m);
                let (vs_localhost, round_trips) = match (route, local) {
                    (Route::Remote, Some(local)) => (
                        percent(local.sync.seconds / m.sync.seconds),
                        m.round_trips.to_string(),
                    ),
                    _ => ("—".to_string(), "—".to_string()),
                };
                println!(
                    "| {} | {} | {label} | {:.2} | {vs_localhost} | {:.2} | {:.2} | {round_trips} | {:.0} |",
                    r.products,
                    route.label(),
                    m.sync.seconds,
                    m.sync.cpu_seconds,
                    m.server_cpu_seconds,
                    m.sync.peak_rss_mb,
                );
            }
        }
    }
    println!();
    print_targets(rows, sqlite);
}

fn percent(ratio: f64) -> String {
    format!("{:.0}%", 100.0 * ratio)
}

/// A ratio checked against a target: one decimal, so that 49.6% does not
/// read as a 50% that failed.
fn precise_percent(ratio: f64) -> String {
    format!("{:.1}%", 100.0 * ratio)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// Issues 16's and 17's targets, each at every feed size. The first
/// sync's is against the raw `COPY` of every row it writes, "the same
/// rows"; its ratio to the `core` and `eo` rows alone is shown beside it.
fn print_targets(rows: &[Row], sqlite: &[crate::measure::Row]) {
    println!("Targets (issues 16 and 17):");
    for r in rows {
        let every_row = r.raw_every_row.rate(r.products);
        let core_and_eo = r.raw_core_and_eo.rate(r.products);
        let local = per_second(r.products, r.localhost.first.sync.seconds);
        let remote = per_second(r.products, r.remote.first.sync.seconds);
        println!(
            "- {} products: PostgreSQL first sync / raw COPY of every row it writes (core, eo, jsonl, owners) = {} (>= 50%: {}; >= 70%: {}); / raw COPY of core and eo only = {}; with 1 ms RTT / localhost = {} (>= 50%: {})",
            r.products,
            precise_percent(local / every_row),
            verdict(local / every_row >= 0.5),
            verdict(local / every_row >= 0.7),
            precise_percent(local / core_and_eo),
            precise_percent(remote / local),
            verdict(remote / local >= 0.5),
        );
        if let Some(forced) = &r.localhost.forced {
            let ratio = forced.sync.seconds / r.localhost.first.sync.seconds;
            println!(
                "- {} products: PostgreSQL --force / first sync = {ratio:.2}x (<= 1: {})",
                r.products,
                verdict(ratio <= 1.0),
            );
        }
    }
    let Some(largest) = rows.iter().map(|r| r.products).max() else {
        return;
    };
    let mut peaks = Vec::new();
    if let Some(s) = sqlite.iter().find(|s| s.products == largest) {
        peaks.push((
            "SQLite",
            s.first
                .peak_rss_mb
                .max(s.unchanged.peak_rss_mb)
                .max(s.one_percent.peak_rss_mb)
                .max(s.forced.peak_rss_mb),
        ));
    }
    if let Some(r) = rows.iter().find(|r| r.products == largest) {
        peaks.push(("PostgreSQL localhost", r.localhost.peak_rss_mb()));
        peaks.push(("PostgreSQL +1 ms RTT", r.remote.peak_rss_mb()));
    }
    let shown: Vec<String> = peaks
        .iter()
        .map(|(backend, mb)| format!("{backend} {mb:.0} MB ({})", verdict(*mb < 100.0)))
        .collect();
    let note = if largest < 1_000_000 {
        " (the target is at 1,000,000; run --products 1000000)"
    } else {
        ""
    };
    println!(
        "- peak RSS of muninn-sync at {largest} products < 100 MB{note}: {}",
        shown.join(", ")
    );
}
