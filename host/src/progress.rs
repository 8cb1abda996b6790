//! How far a run is: what it did per product type ([`Tally`], kept in every
//! run for the report and the metrics), and the bars that show it on a
//! terminal ([`Progress`], drawn with indicatif on stderr; only on a
//! terminal, so cron logs get none, and not with `-q`). Log lines suspend
//! the bars while they are written (see `crate::logging`).
//!
//! A product type's progress is measured by done / expected when its plugin
//! announced how many products lie in the window (`expect_products`), and
//! otherwise by where the time of its latest watermark lies within the
//! window `[start, end)`: the remote's time the plugin walks the window in
//! (a modification time, or a validity time for remotes without one), which
//! a product's own core times (its sensing time) do not follow.

use indicatif::{HumanCount, MultiProgress, ProgressBar, ProgressStyle};
use muninn_sync_catalogue::RunCounts;
use muninn_sync_model::{format_timestamp, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What one run did per product type, as far as the host can tell: the
/// products the plugin expected, those it handed over, and the latest time
/// it reported. Cheap per product: counters and a map look-up at most; no
/// lock, no text.
#[derive(Debug, Default)]
pub struct Tally {
    /// In the order the run named them.
    types: Vec<TypeTally>,
    index: HashMap<String, usize>,
    /// The type the plugin named last: work that names no type (an update,
    /// a count of unchanged products) is its.
    current: Option<usize>,
    /// Whether the plugin came back to a type after naming another: it walks
    /// several types at once (as `jsonl` does, in one order of time), so
    /// work that names no type cannot be given to one, and each type's
    /// progress is measured by its time.
    interleaved: bool,
    /// Work that named no type before any type was named.
    unattributed: u64,
}

#[derive(Debug)]
struct TypeTally {
    product_type: String,
    expected: Option<u64>,
    done: u64,
    /// When the run first named the type: its rate and time left count
    /// from here (a plugin that syncs one type after another starts each
    /// later).
    began: Instant,
    was_current: bool,
    first_time: Option<Timestamp>,
    latest_time: Option<Timestamp>,
}

impl Tally {
    fn slot(&mut self, product_type: &str) -> usize {
        if let Some(current) = self.current {
            if self.types[current].product_type == product_type {
                return current;
            }
        }
        if let Some(&slot) = self.index.get(product_type) {
            return slot;
        }
        self.types.push(TypeTally {
            product_type: product_type.to_string(),
            expected: None,
            done: 0,
            began: Instant::now(),
            was_current: false,
            first_time: None,
            latest_time: None,
        });
        self.index
            .insert(product_type.to_string(), self.types.len() - 1);
        self.types.len() - 1
    }

    fn make_current(&mut self, slot: usize) {
        if self.current == Some(slot) {
            return;
        }
        if self.types[slot].was_current {
            self.interleaved = true;
        }
        self.types[slot].was_current = true;
        self.current = Some(slot);
    }

    /// The plugin expects about `count` products of `product_type` in the
    /// window; a later count replaces an earlier one.
    pub fn expect(&mut self, product_type: &str, count: u64) {
        let slot = self.slot(product_type);
        self.types[slot].expected = Some(count);
        self.make_current(slot);
    }

    /// `count` products were handed over (created, updated, found
    /// unchanged, removed or failed); `product_type` when the call named it.
    pub fn handled(&mut self, product_type: Option<&str>, count: u64) {
        let slot = match product_type {
            Some(product_type) => {
                let slot = self.slot(product_type);
                self.make_current(slot);
                Some(slot)
            }
            None => self.current,
        };
        match slot {
            Some(slot) => self.types[slot].done += count,
            None => self.unattributed += count,
        }
    }

    /// The plugin reported a watermark: its walk of `product_type` reached
    /// `time`. Taken whether or not the watermark may rise (a dry run's,
    /// one held after a failure): it says where the walk is all the same.
    pub fn saw_time(&mut self, product_type: &str, time: Timestamp) {
        let slot = self.slot(product_type);
        self.make_current(slot);
        let tally = &mut self.types[slot];
        tally.first_time = Some(tally.first_time.map_or(time, |t| t.min(time)));
        tally.latest_time = Some(tally.latest_time.map_or(time, |t| t.max(time)));
    }

    /// The last count the plugin expected per product type.
    pub fn expected(&self) -> BTreeMap<String, u64> {
        self.types
            .iter()
            .filter_map(|t| Some((t.product_type.clone(), t.expected?)))
            .collect()
    }

    /// The products expected in all: the sum of the types' counts, `None`
    /// when the plugin announced none.
    pub fn expected_total(&self) -> Option<u64> {
        self.types
            .iter()
            .filter_map(|t| t.expected)
            .reduce(|a, b| a.saturating_add(b))
    }

    /// Whether every type the plugin walks has a count: the run's progress
    /// is then done / expected. A type named only by a failure (a
    /// malformed record of a type the run does not sync) does not count.
    fn all_expected(&self) -> bool {
        self.types.iter().any(|t| t.expected.is_some())
            && self
                .types
                .iter()
                .all(|t| t.expected.is_some() || t.latest_time.is_none())
    }
}

/// How far one line of progress is.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// Products handed over, when the host can tell them apart.
    pub done: Option<u64>,
    pub expected: Option<u64>,
    /// From 0 to 1: done / expected, or the time's place in the window.
    pub fraction: Option<f64>,
    /// The latest time, when the fraction comes from it.
    pub at: Option<Timestamp>,
    /// Products per second.
    pub rate: Option<f64>,
    pub left: Option<Duration>,
}

/// The share of `expected` that `done` is, at most 1 (a plugin's count is
/// an estimate; more may come). Nothing expected is all done.
pub fn fraction_by_count(done: u64, expected: u64) -> f64 {
    if expected == 0 {
        return 1.0;
    }
    (done as f64 / expected as f64).min(1.0)
}

/// Where `at` lies within `[start, end)`, from 0 to 1; `None` for a window
/// without length.
pub fn fraction_by_time(start: Timestamp, end: Timestamp, at: Timestamp) -> Option<f64> {
    let length = (end - start).num_microseconds()? as f64;
    if length <= 0.0 {
        return None;
    }
    let reached = (at - start).num_microseconds()? as f64;
    Some((reached / length).clamp(0.0, 1.0))
}

/// The time left when `fraction` of the work took `elapsed`, at the same
/// pace: `None` before anything is done to judge by, zero once all is.
pub fn time_left(elapsed: Duration, fraction: f64) -> Option<Duration> {
    if fraction >= 1.0 {
        return Some(Duration::ZERO);
    }
    if fraction <= 0.0 || elapsed.is_zero() {
        return None;
    }
    Duration::try_from_secs_f64(elapsed.as_secs_f64() * (1.0 - fraction) / fraction).ok()
}

/// One line's measure from what is known of it: by count when `expected`
/// is known (and `done` with it), else by time when `by_time` is.
pub fn measure(
    done: Option<u64>,
    expected: Option<u64>,
    by_time: Option<(f64, Timestamp)>,
    elapsed: Duration,
) -> Measure {
    let (fraction, at) = match (done, expected, by_time) {
        (Some(done), Some(expected), _) => (Some(fraction_by_count(done, expected)), None),
        (_, _, Some((fraction, at))) => (Some(fraction), Some(at)),
        _ => (None, None),
    };
    let seconds = elapsed.as_secs_f64();
    Measure {
        done,
        expected,
        fraction,
        at,
        rate: done.filter(|_| seconds > 0.0).map(|d| d as f64 / seconds),
        left: fraction.and_then(|f| time_left(elapsed, f)),
    }
}

/// The text of one line: `84,899 / 200,000 (42%), 4,764/s, 24 s left`.
pub fn describe(m: &Measure) -> String {
    let mut text = match (m.done, m.expected) {
        (Some(done), Some(expected)) => {
            format!("{} / {}", HumanCount(done), HumanCount(expected))
        }
        (Some(done), None) => format!("{} products", HumanCount(done)),
        (None, Some(expected)) => format!("{} expected", HumanCount(expected)),
        (None, None) => String::new(),
    };
    let part = |text: &mut String, item: String| {
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(&item);
    };
    match (m.fraction, m.at) {
        (Some(f), Some(at)) => part(
            &mut text,
            format!(
                "{:.0}% of the window (at {})",
                (f * 100.0).floor(),
                format_timestamp(&at)
            ),
        ),
        (Some(f), None) => {
            let _ = write!(text, " ({:.0}%)", (f * 100.0).floor());
        }
        (None, Some(at)) => part(&mut text, format!("at {}", format_timestamp(&at))),
        (None, None) => {}
    }
    if let Some(rate) = m.rate {
        part(&mut text, format!("{}/s", HumanCount(rate.round() as u64)));
    }
    if let Some(left) = m.left.filter(|l| !l.is_zero()) {
        part(&mut text, format!("{} left", short_duration(left)));
    }
    text
}

/// `45 s`, `3 min 20 s`, `2 h 05 min`: what a user reads at a glance.
pub fn short_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64().ceil() as u64;
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min {:02} s", seconds / 60, seconds % 60),
        _ => format!("{} h {:02} min", seconds / 3600, (seconds % 3600) / 60),
    }
}

/// `3 created, 5 unchanged`: the run's line ends with the counts that are
/// not zero (the line must fit a terminal's width).
fn describe_counts(c: &RunCounts) -> String {
    [
        (c.created, "created"),
        (c.updated, "updated"),
        (c.unchanged, "unchanged"),
        (c.removed, "removed"),
        (c.failed, "failed"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{} {what}", HumanCount(count)))
    .collect::<Vec<_>>()
    .join(", ")
}

/// The window the plugin walks, for the time-based measure: an open start
/// is where the walk began (its first time), an open end the run's start
/// (a remote's times do not pass now).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Option<Timestamp>,
    pub end: Timestamp,
}

impl Window {
    fn fraction(
        &self,
        first: Option<Timestamp>,
        at: Option<Timestamp>,
    ) -> Option<(f64, Timestamp)> {
        let at = at?;
        let start = self.start.or(first)?;
        Some((fraction_by_time(start, self.end, at)?, at))
    }
}

impl Tally {
    /// The measure of each type's line, in the order the run named them.
    /// Types walked together (in one order of time) have their expected
    /// count and the time reached, but no fraction of their own: their
    /// products cannot be told apart, and the run's line measures them all.
    fn type_measures(&self, window: &Window, now: Instant) -> Vec<(&str, Measure)> {
        let single = self.types.len() == 1;
        self.types
            .iter()
            .map(|t| {
                let m = if self.interleaved && !single {
                    Measure {
                        done: None,
                        expected: t.expected,
                        fraction: None,
                        at: t.latest_time,
                        rate: None,
                        left: None,
                    }
                } else {
                    // A single type's is all the work.
                    let done = t.done + if single { self.unattributed } else { 0 };
                    let by_time = window.fraction(t.first_time, t.latest_time);
                    let elapsed = now.saturating_duration_since(t.began);
                    measure(Some(done), t.expected, by_time, elapsed)
                };
                (t.product_type.as_str(), m)
            })
            .collect()
    }

    /// The measure of the whole run: by count when every type the plugin
    /// walks has one; by time when the types are walked together (or there
    /// is one); else counts and rate only.
    fn total_measure(&self, counts: &RunCounts, window: &Window, elapsed: Duration) -> Measure {
        let done =
            counts.created + counts.updated + counts.unchanged + counts.removed + counts.failed;
        let expected = self.all_expected().then(|| self.expected_total()).flatten();
        let by_time = if self.interleaved || self.types.len() == 1 {
            let first = self.types.iter().filter_map(|t| t.first_time).min();
            let latest = self.types.iter().filter_map(|t| t.latest_time).max();
            window.fraction(first, latest)
        } else {
            None
        };
        measure(Some(done), expected, by_time, elapsed)
    }
}

/// The terminal's bars, set up once by `crate::logging::init` when stderr
/// is a terminal and info lines are shown; the log's writer suspends them.
static TERMINAL: OnceLock<MultiProgress> = OnceLock::new();

/// The bars' place on the terminal, for the log's writer.
pub(crate) fn attach_terminal() -> MultiProgress {
    TERMINAL.get_or_init(MultiProgress::new).clone()
}

/// How often the bars are brought up to date.
const EVERY: Duration = Duration::from_millis(250);

/// At most this many product types get a line of their own; the last line
/// counts them all.
const MAX_TYPE_LINES: usize = 8;

/// The bars of one run: a line per product type when there are several,
/// and a last line for the whole run with its counts.
pub struct Progress {
    terminal: MultiProgress,
    window: Window,
    began: Instant,
    last_drawn: Instant,
    calls: u32,
    /// Set when the bars were taken off the screen: a call that comes
    /// after (the watchdog's, a plugin's thread still running) draws
    /// nothing, as indicatif cannot place a bar before a removed one.
    finished: bool,
    /// Per product type, in the order the run named them.
    lines: Vec<Line>,
    total: Line,
}

/// One bar, and whether it is drawn as a bar (a fraction is known) or a
/// spinner.
struct Line {
    bar: ProgressBar,
    as_bar: Option<bool>,
}

impl Line {
    fn new(bar: ProgressBar) -> Line {
        Line { bar, as_bar: None }
    }

    fn show(&mut self, label: &str, m: &Measure, text: String) {
        let as_bar = m.fraction.is_some();
        if self.as_bar != Some(as_bar) {
            let template = if as_bar {
                "{prefix} [{bar:25}] {wide_msg}"
            } else {
                "{prefix} {spinner} {wide_msg}"
            };
            let style = ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> ");
            self.bar.set_style(style);
            self.as_bar = Some(as_bar);
        }
        self.bar.set_prefix(label.to_string());
        self.bar
            .set_position((m.fraction.unwrap_or(0.0) * 1000.0).round() as u64);
        self.bar.set_message(text);
        if !as_bar {
            self.bar.tick();
        }
    }
}

impl Progress {
    /// The bars of a run over `window`, if stderr is a terminal, its log
    /// shows info lines, and the user did not ask for quiet.
    pub fn for_terminal(quiet: bool, window: Window) -> Option<Progress> {
        let terminal = TERMINAL.get().filter(|_| !quiet)?.clone();
        Some(Progress::on(terminal, window))
    }

    fn on(terminal: MultiProgress, window: Window) -> Progress {
        let total = Line::new(terminal.add(ProgressBar::new(1000)));
        let now = Instant::now();
        Progress {
            terminal,
            window,
            began: now,
            // The first draw is due at the first call (see `tick`): a user
            // at a terminal sees the run moving from its first products,
            // however fast it is.
            last_drawn: now.checked_sub(EVERY).unwrap_or(now),
            calls: 0,
            finished: false,
            lines: Vec::new(),
            total,
        }
    }

    /// Brings the bars up to date when it is due; cheap enough to call on
    /// every call of the plugin's (a counter, and the clock at the first
    /// call and every 64th after it). Does nothing once the bars are
    /// finished.
    pub fn tick(&mut self, counts: &RunCounts, tally: &Tally) {
        self.calls = self.calls.wrapping_add(1);
        if self.finished || self.calls % 64 != 1 || self.last_drawn.elapsed() < EVERY {
            return;
        }
        self.last_drawn = Instant::now();
        self.draw(counts, tally);
    }

    fn draw(&mut self, counts: &RunCounts, tally: &Tally) {
        let now = Instant::now();
        let types = tally.type_measures(&self.window, now);
        let total = tally.total_measure(counts, &self.window, now - self.began);
        let shown = if types.len() > 1 {
            types.len().min(MAX_TYPE_LINES)
        } else {
            0
        };
        while self.lines.len() < shown {
            let bar = ProgressBar::new(1000);
            let bar = self.terminal.insert_before(&self.total.bar, bar);
            self.lines.push(Line::new(bar));
        }
        let width = types
            .iter()
            .map(|(t, _)| t.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(8, 24);
        let label = |text: &str| {
            let text: String = muninn_sync_model::printable(text)
                .chars()
                .take(width)
                .collect();
            format!("{text:<width$}")
        };
        for (line, (product_type, m)) in self.lines.iter_mut().zip(&types) {
            line.show(&label(product_type), m, describe(m));
        }
        let (name, more) = match types.len() {
            0 => ("products".to_string(), String::new()),
            1 => (types[0].0.to_string(), String::new()),
            n if n > MAX_TYPE_LINES => ("all".to_string(), format!(" ({} product types)", n)),
            _ => ("all".to_string(), String::new()),
        };
        let mut text = format!("{}{more}", describe(&total));
        let counts = describe_counts(counts);
        if !counts.is_empty() {
            let _ = write!(text, ": {counts}");
        }
        self.total.show(&label(&name), &total, text);
    }

    /// Takes the bars off the screen, at the end of the run, for good:
    /// later ticks draw nothing.
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        for line in self.lines.iter().chain([&self.total]) {
            line.bar.finish_and_clear();
            self.terminal.remove(&line.bar);
        }
        let _ = self.terminal.clear();
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("lines", &self.lines.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_sync_model::parse_timestamp;

    fn t(text: &str) -> Timestamp {
        parse_timestamp(text).unwrap()
    }

    #[test]
    fn the_bars_are_drawn_at_the_first_call_and_not_after_the_end() {
        let hidden = MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());
        let window = Window {
            start: None,
            end: t("2024-01-05"),
        };
        let mut progress = Progress::on(hidden, window);
        let mut tally = Tally::default();
        tally.expect("A", 10);
        tally.expect("B", 10);
        let counts = RunCounts::default();
        progress.tick(&counts, &tally);
        assert_eq!(progress.lines.len(), 2, "drawn at the first call");
        // A type named after the end, when a draw is due: its bar would go
        // before the run's line, which is gone.
        tally.expect("C", 10);
        progress.finish();
        progress.last_drawn = progress.last_drawn.checked_sub(EVERY).unwrap();
        progress.calls = 64;
        progress.tick(&counts, &tally);
        assert_eq!(progress.lines.len(), 2, "nothing drawn after the end");
        progress.finish();
    }

    #[test]
    fn done_over_expected_gives_percent_rate_and_time_left() {
        let m = measure(Some(84_899), Some(200_000), None, Duration::from_secs(20));
        assert_eq!(m.fraction, Some(84_899.0 / 200_000.0));
        assert_eq!(m.left.map(|l| l.as_secs()), Some(27));
        assert_eq!(describe(&m), "84,899 / 200,000 (42%), 4,245/s, 28 s left");
        let done = measure(Some(210), Some(200), None, Duration::from_secs(2));
        assert_eq!(done.fraction, Some(1.0), "an estimate that was passed");
        assert_eq!(describe(&done), "210 / 200 (100%), 105/s");
        assert_eq!(fraction_by_count(0, 0), 1.0, "nothing expected is all done");
    }

    #[test]
    fn without_a_count_the_time_within_the_window_measures() {
        let (start, end) = (t("2024-01-01"), t("2024-01-05"));
        assert_eq!(fraction_by_time(start, end, t("2024-01-02")), Some(0.25));
        assert_eq!(fraction_by_time(start, end, t("2023-12-01")), Some(0.0));
        assert_eq!(fraction_by_time(start, end, t("2030-01-01")), Some(1.0));
        assert_eq!(fraction_by_time(end, start, t("2024-01-02")), None);
        let m = measure(
            Some(500),
            None,
            Some((0.25, t("2024-01-02"))),
            Duration::from_secs(10),
        );
        assert_eq!(m.left, Some(Duration::from_secs(30)));
        assert_eq!(
            describe(&m),
            "500 products, 25% of the window (at 2024-01-02 00:00:00), 50/s, 30 s left"
        );
        let open = Window {
            start: None,
            end: t("2024-01-05"),
        };
        assert_eq!(
            open.fraction(Some(t("2024-01-01")), Some(t("2024-01-04"))),
            Some((0.75, t("2024-01-04"))),
            "an open start is where the walk began"
        );
    }

    #[test]
    fn time_left_needs_something_done() {
        assert_eq!(time_left(Duration::from_secs(10), 0.0), None);
        assert_eq!(time_left(Duration::ZERO, 0.5), None);
        assert_eq!(
            time_left(Duration::from_secs(10), 1.0),
            Some(Duration::ZERO)
        );
        assert_eq!(
            time_left(Duration::from_secs(30), 0.75),
            Some(Duration::from_secs(10))
        );
        assert_eq!(short_duration(Duration::from_secs(45)), "45 s");
        assert_eq!(short_duration(Duration::from_secs(200)), "3 min 20 s");
        assert_eq!(short_duration(Duration::from_secs(7500)), "2 h 05 min");
    }

    #[test]
    fn one_type_after_another_gets_its_own_counts() {
        let mut tally = Tally::default();
        tally.expect("A", 3);
        tally.handled(Some("A"), 1);
        tally.handled(None, 2); // updates, unchanged: A's
        tally.expect("B", 10);
        tally.handled(None, 4);
        let window = Window {
            start: None,
            end: t("2024-01-05"),
        };
        let lines = tally.type_measures(&window, Instant::now());
        assert_eq!(lines[0].1.done, Some(3));
        assert_eq!(lines[0].1.fraction, Some(1.0));
        assert_eq!(lines[1].1.done, Some(4));
        assert_eq!(lines[1].1.fraction, Some(0.4));
        assert_eq!(tally.expected_total(), Some(13));
        let counts = RunCounts {
            unchanged: 7,
            ..RunCounts::default()
        };
        let total = tally.total_measure(&counts, &window, Duration::from_secs(1));
        assert_eq!(total.fraction, Some(7.0 / 13.0));
    }

    #[test]
    fn types_walked_together_are_measured_by_time() {
        let mut tally = Tally::default();
        tally.expect("A", 100);
        tally.expect("B", 100);
        tally.handled(Some("A"), 1);
        tally.handled(None, 50);
        tally.saw_time("A", t("2024-01-03"));
        tally.saw_time("B", t("2024-01-03"));
        let window = Window {
            start: Some(t("2024-01-01")),
            end: t("2024-01-05"),
        };
        let lines = tally.type_measures(&window, Instant::now());
        for (_, m) in &lines {
            assert_eq!((m.done, m.fraction), (None, None), "{m:?}");
        }
        assert_eq!(
            describe(&lines[1].1),
            "100 expected, at 2024-01-03 00:00:00"
        );
        let counts = RunCounts {
            created: 1,
            unchanged: 50,
            ..RunCounts::default()
        };
        let total = tally.total_measure(&counts, &window, Duration::from_secs(1));
        assert_eq!(
            total.fraction,
            Some(51.0 / 200.0),
            "the run's count is known in all"
        );
        // Without counts, the time they reached measures the run.
        let mut tally = Tally::default();
        for product_type in ["A", "B", "A", "B"] {
            tally.saw_time(product_type, t("2024-01-04"));
        }
        let total = tally.total_measure(&counts, &window, Duration::from_secs(1));
        assert_eq!(total.fraction, Some(0.75));
    }

    #[test]
    fn without_counts_or_times_there_is_no_fraction() {
        let mut tally = Tally::default();
        tally.handled(None, 5);
        tally.expect("A", 10);
        tally.saw_time("B", t("2024-01-02"));
        assert_eq!(tally.expected(), BTreeMap::from([("A".to_string(), 10)]));
        let window = Window {
            start: None,
            end: t("2024-01-05"),
        };
        let counts = RunCounts {
            updated: 5,
            ..RunCounts::default()
        };
        let total = tally.total_measure(&counts, &window, Duration::from_secs(1));
        assert_eq!(
            total.fraction, None,
            "B, walked without a count, one type after another"
        );
        assert_eq!(describe(&total), "5 products, 5/s");
        assert_eq!(describe_counts(&counts), "5 updated");
        assert_eq!(Tally::default().expected_total(), None);
    }
}
