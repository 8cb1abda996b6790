//! Where a window is cut into slices: where its items are, found with
//! cheap probes (`limit=1` searches), so that a long sparse window costs
//! about as many requests as it has pages. The rule is in docs/stac.md
//! ("Time slices").

use anyhow::Result;
use chrono::TimeDelta;
use muninn_sync_plugin_api::Timestamp;

/// A stretch of time, `[start, end)`; `None` is an open side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl Stretch {
    fn length(&self) -> Option<TimeDelta> {
        Some(self.end? - self.start?)
    }
}

/// What a probe of a stretch (one item, or none) tells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Probe {
    /// Whether the server returned an item.
    pub found: bool,
    /// Its `numberMatched` (or `context.matched`), when it gives one.
    pub count: Option<u64>,
    /// The time of the item returned (the first, or with `descending` the
    /// last, when the server sorts), when it has one.
    pub time: Option<Timestamp>,
}

/// Sends the probes: one search of a stretch with `limit=1`, sorted
/// ascending (or descending) by the time field when the server can sort.
pub trait Prober: Sync {
    fn probe(&self, stretch: Stretch, descending: bool) -> Result<Probe>;
}

/// How far a window is cut.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// A stretch known to hold more items than this is cut: a few pages.
    pub most_items: u64,
    /// No slice is longer than this (the `slice` key).
    pub cap: Option<TimeDelta>,
    /// Slices fetched at once (the `concurrency` key): without counts, a
    /// window is cut into twice as many slices, so that they can be.
    pub concurrency: usize,
    /// Whether the server sorts by the time field.
    pub sorted: bool,
}

/// Pages a reader may hold beyond the one handled, and what "a few pages"
/// is for [`Rule::most_items`].
pub const FEW_PAGES: u64 = 4;

/// At most this many parts of one stretch at a time.
const MOST_PARTS: i64 = 64;

/// At most this many probes per window: past them, stretches are read as
/// they are (a server whose counts never shrink cannot make a run probe for
/// ever).
pub const MOST_PROBES: usize = 4096;

/// Without a sort and without counts, no slice is longer than this unless
/// the `slice` key says otherwise: such a slice is held whole in memory
/// before it is sorted, and a week was the bound before slices were cut
/// where the items are.
pub const UNCOUNTED_CAP: TimeDelta = TimeDelta::days(7);

/// The slices of a window, in order of time, and what it cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub slices: Vec<Stretch>,
    /// Probes sent.
    pub probes: usize,
    /// The window's count, when the server gave one.
    pub matched: Option<u64>,
}

/// Cuts `window` (with a start and an end) into slices by `rule`.
pub fn plan(prober: &dyn Prober, rule: &Rule, window: Stretch) -> Result<Plan> {
    let mut planner = Planner {
        prober,
        rule: *rule,
        probes: 0,
        slices: Vec::new(),
    };
    let first = planner.probe(&[window], false)?.remove(0);
    if !rule.sorted && first.count.is_none() && rule.cap.is_none() {
        planner.rule.cap = Some(UNCOUNTED_CAP);
    }
    planner.settle(window, first, true)?;
    Ok(Plan {
        slices: planner.slices,
        probes: planner.probes,
        matched: first.count,
    })
}

struct Planner<'a> {
    prober: &'a dyn Prober,
    rule: Rule,
    probes: usize,
    slices: Vec<Stretch>,
}

impl Planner<'_> {
    /// Probes the stretches, `concurrency` at a time.
    fn probe(&mut self, stretches: &[Stretch], descending: bool) -> Result<Vec<Probe>> {
        self.probes += stretches.len();
        let prober = self.prober;
        let mut probes = Vec::with_capacity(stretches.len());
        for wave in stretches.chunks(self.rule.concurrency.max(1)) {
            if wave.len() == 1 {
                probes.push(prober.probe(wave[0], descending)?);
                continue;
            }
            let answers: Vec<Result<Probe>> = std::thread::scope(|scope| {
                let workers: Vec<_> = wave
                    .iter()
                    .map(|stretch| scope.spawn(move || prober.probe(*stretch, descending)))
                    .collect();
                workers
                    .into_iter()
                    .map(|w| {
                        w.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("a probe panicked")))
                    })
                    .collect()
            });
            for answer in answers {
                probes.push(answer?);
            }
        }
        Ok(probes)
    }

    fn out_of_probes(&self) -> bool {
        self.probes >= MOST_PROBES
    }

    fn within_cap(&self, stretch: &Stretch) -> bool {
        match (self.rule.cap, stretch.length()) {
            (None, _) => true,
            (Some(cap), Some(length)) => length <= cap,
            (Some(_), None) => false,
        }
    }

    /// Decides a probed stretch: nothing to read, one slice, or parts.
    fn settle(&mut self, stretch: Stretch, probe: Probe, root: bool) -> Result<()> {
        if !probe.found {
            return Ok(());
        }
        // A sorted answer's first item lies in the stretch. One outside it
        // (at or after the end, or before the start) is an item the
        // server's closed interval let in, or a server that ignores the
        // filter or the sort: either way the stretch is taken as from a
        // server that cannot sort, and nothing is concluded from the item.
        let first = probe
            .time
            .filter(|t| self.rule.sorted && inside(&stretch, t));
        let small = match probe.count {
            Some(count) => count <= self.rule.most_items,
            // Without counts, only the window is cut, for concurrency.
            None => !root || self.rule.concurrency <= 1,
        };
        if (small && self.within_cap(&stretch)) || self.out_of_probes() {
            self.slices.push(stretch);
            return Ok(());
        }
        let Some(bounds) = stretch.start.zip(stretch.end) else {
            self.slices.push(stretch);
            return Ok(());
        };
        // The extent of the stretch's items: when the server sorts, from
        // its first and last item, so that empty time at either side costs
        // nothing; else the stretch itself.
        let mut extent = bounds;
        if let Some(first) = first {
            let last = self.probe(&[stretch], true)?.remove(0).time;
            if let Some(last) = last.filter(|l| *l >= first && *l <= bounds.1) {
                extent = (first, last);
            }
        }
        if small && extent != bounds {
            if let Some(tight) = self.trimmed(stretch, extent, probe.count)? {
                self.slices.push(tight);
                return Ok(());
            }
        }
        // The parts cover the whole stretch, whatever the extent: a wrong
        // extent costs probes, never items. Items within one second are
        // not cut: the part is cut over the stretch instead (when the cap
        // wants it cut) or read whole.
        let mut cuts = self.cuts(&stretch, extent, probe.count);
        if cuts.is_empty() && extent != bounds && !self.within_cap(&stretch) {
            cuts = self.cuts(&stretch, bounds, probe.count);
        }
        if cuts.is_empty() {
            self.slices.push(stretch);
            return Ok(());
        }
        let mut pieces = Vec::with_capacity(cuts.len() + 1);
        let mut start = stretch.start;
        for cut in cuts {
            pieces.push(Stretch {
                start,
                end: Some(cut),
            });
            start = Some(cut);
        }
        pieces.push(Stretch {
            start,
            end: stretch.end,
        });
        // Without counts, a piece is probed only when the cap may cut it
        // further: an empty one costs one request either way.
        if probe.count.is_none() && pieces.iter().all(|p| self.within_cap(p)) {
            self.slices.extend(pieces);
            return Ok(());
        }
        let probes = self.probe(&pieces, false)?;
        for (piece, probe) in pieces.into_iter().zip(probes) {
            self.settle(piece, probe, false)?;
        }
        Ok(())
    }

    /// A small stretch longer than the cap, cut down to its items' extent
    /// when that lies within the cap. The server's sort put the extent
    /// there, and a server that claims to sort and does not would lose the
    /// items outside it: so the cut is kept only when the server counts as
    /// many items in it as in the stretch (one probe more), or, without
    /// counts, when the two probes found different times (a server that
    /// ignores `sortby` answers both with the same item).
    fn trimmed(
        &mut self,
        stretch: Stretch,
        (low, high): (Timestamp, Timestamp),
        count: Option<u64>,
    ) -> Result<Option<Stretch>> {
        if count.is_none() && high <= low {
            return Ok(None);
        }
        // Bounds on whole seconds ("Cuts fall on whole seconds").
        let after_high = whole_second(high) + TimeDelta::seconds(1);
        let tight = Stretch {
            start: Some(stretch.start.map_or(low, |s| s.max(whole_second(low)))),
            end: Some(stretch.end.map_or(after_high, |e| e.min(after_high))),
        };
        if !self.within_cap(&tight) || self.out_of_probes() {
            return Ok(None);
        }
        let Some(count) = count else {
            return Ok(Some(tight));
        };
        let check = self.probe(&[tight], false)?.remove(0);
        Ok((check.count == Some(count)).then_some(tight))
    }

    /// Where to cut `stretch`, whose items lie in `[low, high]`: only on
    /// whole seconds, strictly inside the stretch. A server that compares
    /// times as text, or keeps them to the millisecond, sees the same
    /// bounds as we do only on whole seconds; a stretch too short for
    /// that is read as a slice larger than planned.
    fn cuts(
        &self,
        stretch: &Stretch,
        (low, high): (Timestamp, Timestamp),
        count: Option<u64>,
    ) -> Vec<Timestamp> {
        let extent = high - low;
        let wanted = match count {
            Some(count) => count.div_ceil(self.rule.most_items.max(1)) as i64,
            None => 2 * self.rule.concurrency as i64,
        };
        let for_cap = match self.rule.cap {
            Some(cap) if cap > TimeDelta::zero() => {
                let cap = cap.num_microseconds().unwrap_or(i64::MAX).max(1);
                extent.num_microseconds().unwrap_or(i64::MAX) / cap + 1
            }
            _ => 1,
        };
        // The cap alone cuts in at most 8 parts a time: the parts' probes
        // find where the items are, and empty time costs no more.
        let parts = wanted
            .max(for_cap.min(8))
            .clamp(2, MOST_PARTS)
            .min(extent.num_seconds().max(1));
        if parts < 2 {
            return Vec::new();
        }
        let mut cuts: Vec<Timestamp> = (1..parts)
            .map(|i| whole_second(low + extent / parts as i32 * i as i32))
            .filter(|cut| {
                stretch.start.is_none_or(|s| *cut > s) && stretch.end.is_none_or(|e| *cut < e)
            })
            .collect();
        cuts.dedup();
        cuts
    }
}

/// Whether `time` lies in `stretch`, `[start, end)`.
fn inside(stretch: &Stretch, time: &Timestamp) -> bool {
    stretch.start.is_none_or(|s| *time >= s) && stretch.end.is_none_or(|e| *time < e)
}

/// `time` without its fraction of a second.
fn whole_second(time: Timestamp) -> Timestamp {
    time - TimeDelta::nanoseconds(i64::from(time.timestamp_subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_sync_plugin_api::parse_timestamp;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A server holding items at these times, answering probes as a STAC
    /// API does (its datetime interval closed at both ends).
    struct Fake {
        times: Vec<Timestamp>,
        counts: bool,
        sorted: bool,
        sent: AtomicUsize,
    }

    impl Prober for Fake {
        fn probe(&self, stretch: Stretch, descending: bool) -> Result<Probe> {
            self.sent.fetch_add(1, Ordering::Relaxed);
            let inside: Vec<Timestamp> = self
                .times
                .iter()
                .copied()
                .filter(|t| {
                    stretch.start.is_none_or(|s| *t >= s) && stretch.end.is_none_or(|e| *t <= e)
                })
                .collect();
            let time = match (self.sorted, descending) {
                (true, false) => inside.iter().min().copied(),
                (true, true) => inside.iter().max().copied(),
                (false, _) => inside.get(inside.len() / 2).copied(),
            };
            Ok(Probe {
                found: !inside.is_empty(),
                count: self.counts.then_some(inside.len() as u64),
                time,
            })
        }
    }

    fn t(text: &str) -> Timestamp {
        parse_timestamp(text).unwrap()
    }

    /// 30 years; 3 clusters of `each` items, one every 10 minutes.
    fn clustered(each: i64) -> Vec<Timestamp> {
        let mut times = Vec::new();
        for day in ["1998-03-01", "2007-07-15", "2021-11-30"] {
            for i in 0..each {
                times.push(t(day) + TimeDelta::minutes(10 * i));
            }
        }
        times
    }

    fn window() -> Stretch {
        Stretch {
            start: Some(t("1995-01-01")),
            end: Some(t("2025-01-01")),
        }
    }

    fn rule(sorted: bool, cap: Option<TimeDelta>) -> Rule {
        Rule {
            most_items: FEW_PAGES * 100,
            cap,
            concurrency: 2,
            sorted,
        }
    }

    /// The slices cover every item once, in order.
    fn check(plan: &Plan, times: &[Timestamp]) {
        for pair in plan.slices.windows(2) {
            assert!(pair[0].end <= pair[1].start, "{:?}", plan.slices);
        }
        for time in times {
            let holding = plan
                .slices
                .iter()
                .filter(|s| s.start.is_none_or(|st| *time >= st) && s.end.is_none_or(|e| *time < e))
                .count();
            assert_eq!(holding, 1, "{time} in {:?}", plan.slices);
        }
    }

    #[test]
    fn a_sparse_window_is_cut_where_its_items_are() {
        for (sorted, counts) in [(true, true), (false, true), (true, false), (false, false)] {
            let times = clustered(1000);
            let fake = Fake {
                times: times.clone(),
                counts,
                sorted,
                sent: AtomicUsize::new(0),
            };
            let plan = plan(&fake, &rule(sorted, None), window()).unwrap();
            check(&plan, &times);
            assert_eq!(plan.probes, fake.sent.load(Ordering::Relaxed));
            // 30 pages: 3,000 items, 100 a page.
            let (most_slices, most_probes) = match (sorted, counts) {
                (true, true) => (12, 30),
                (false, true) => (16, 80),
                (true, false) => (4, 2),
                // Each slice is held whole before it is sorted: none is
                // longer than a week, though the 3 clusters are 30 pages.
                (false, false) => (24, 100),
            };
            if !sorted && !counts {
                for slice in &plan.slices {
                    assert!(slice.length().unwrap() <= UNCOUNTED_CAP, "{slice:?}");
                }
            }
            assert!(
                plan.slices.len() <= most_slices,
                "sorted={sorted} counts={counts}: {} slices",
                plan.slices.len()
            );
            assert!(
                plan.probes <= most_probes,
                "sorted={sorted} counts={counts}: {} probes",
                plan.probes
            );
            assert_eq!(plan.matched, counts.then_some(3000));
        }
    }

    #[test]
    fn a_small_window_is_one_slice_after_one_probe() {
        let times = clustered(10);
        let fake = Fake {
            times: times.clone(),
            counts: true,
            sorted: true,
            sent: AtomicUsize::new(0),
        };
        let plan = plan(&fake, &rule(true, None), window()).unwrap();
        assert_eq!((plan.slices, plan.probes), (vec![window()], 1));
        let empty = Fake {
            times: vec![],
            counts: false,
            sorted: true,
            sent: AtomicUsize::new(0),
        };
        assert!(plan_of(&empty, &rule(true, None)).slices.is_empty());
    }

    fn plan_of(fake: &Fake, rule: &Rule) -> Plan {
        plan(fake, rule, window()).unwrap()
    }

    #[test]
    fn the_cap_bounds_every_slice_and_empty_time_costs_little() {
        let day = TimeDelta::days(1);
        for (sorted, counts) in [(true, true), (true, false), (false, true)] {
            let times = clustered(100);
            let fake = Fake {
                times: times.clone(),
                counts,
                sorted,
                sent: AtomicUsize::new(0),
            };
            let plan = plan_of(&fake, &rule(sorted, Some(day)));
            check(&plan, &times);
            for slice in &plan.slices {
                assert!(slice.length().unwrap() <= day, "{slice:?}");
            }
            // 30 years of days would be 10,958 slices.
            assert!(
                plan.probes + plan.slices.len() < 120,
                "sorted={sorted} counts={counts}: {} probes, {} slices",
                plan.probes,
                plan.slices.len()
            );
        }
    }

    #[test]
    fn items_at_one_instant_are_one_slice() {
        let times = vec![t("2001-01-01"); 5000];
        let fake = Fake {
            times: times.clone(),
            counts: true,
            sorted: true,
            sent: AtomicUsize::new(0),
        };
        let plan = plan_of(&fake, &rule(true, None));
        check(&plan, &times);
        assert!(plan.probes <= 10, "{}", plan.probes);
    }

    #[test]
    fn cuts_fall_on_whole_seconds_even_in_a_dense_second() {
        // 2,000 items a millisecond apart: 20 pages within 2 seconds.
        let start = t("2010-06-01T12:00:00.250");
        let times: Vec<Timestamp> = (0..2000)
            .map(|i| start + TimeDelta::milliseconds(i))
            .collect();
        for sorted in [true, false] {
            let fake = Fake {
                times: times.clone(),
                counts: true,
                sorted,
                sent: AtomicUsize::new(0),
            };
            let plan = plan_of(&fake, &rule(sorted, None));
            check(&plan, &times);
            for slice in &plan.slices {
                for bound in [slice.start, slice.end].into_iter().flatten() {
                    assert!(
                        bound == window().start.unwrap()
                            || bound == window().end.unwrap()
                            || bound.timestamp_subsec_nanos() == 0,
                        "sorted={sorted}: {slice:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_server_that_claims_to_sort_and_does_not_loses_no_item() {
        // Five items a day apart, a 1-day cap: a slice cut down to the
        // item both probes return would hold one of them.
        let times: Vec<Timestamp> = (1..=5)
            .map(|d| t("2024-01-01T10:00:00") + TimeDelta::days(d - 1))
            .collect();
        let window = Stretch {
            start: Some(t("2024-01-01")),
            end: Some(t("2024-01-06")),
        };
        for counts in [true, false] {
            let fake = Fake {
                times: times.clone(),
                counts,
                sorted: false,
                sent: AtomicUsize::new(0),
            };
            let plan = plan(&fake, &rule(true, Some(TimeDelta::days(1))), window).unwrap();
            check(&plan, &times);
            for slice in &plan.slices {
                assert!(slice.length().unwrap() <= TimeDelta::days(1), "{slice:?}");
            }
        }
    }
}
