//! The aggregators: carbon-c-relay's buckets (`aggregator.c`), one
//! [`Aggregator`] per aggregation rule, fed by every dispatcher and
//! emptied by one expiry task ([`run`]).
//!
//! Per `compute` and output name a series keeps a fixed run of buckets
//! aligned to the interval, from `expire` before its first point to two
//! intervals past it. A point lands in the bucket of its own timestamp;
//! one before the first bucket (too old), past the last (too new), or for a
//! bucket already emitted is counted, never silently lost. A bucket is
//! emitted once `expire` (plus a per-name splay under one interval, so a
//! flood of new names does not expire all at once) has passed since it
//! started; an empty bucket emits nothing, and a series whose buckets are
//! all empty is forgotten. At shutdown, as c-relay does, every bucket that
//! has ended is emitted and the points of those still open are counted as
//! not emitted.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use regex::Regex;
use tokio_util::sync::CancellationToken;
use xxhash_rust::xxh3::Xxh3Builder;

use crate::codec::{parse_line, ParseOptions};
use crate::relay::Relay;
use crate::route::aggregate::{BucketTime, Function};
use crate::route::Aggregation;
use crate::stats::{Figure, Figures, Kind};

/// Output names by series, per compute.
type SeriesMap = DashMap<Box<str>, Series, Xxh3Builder>;

thread_local! {
    /// Where a point's output names are written, once per compute, and
    /// where its regex groups are found, without allocating per point.
    static SCRATCH: std::cell::RefCell<(String, Option<(usize, regex::CaptureLocations)>)> =
        const { std::cell::RefCell::new((String::new(), None)) };
}

/// How often the expiry task looks for buckets to emit (c-relay's 250 ms).
const EXPIRY_TICK: Duration = Duration::from_millis(250);

/// What bounds every aggregator together.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Series over all aggregators (`aggregate_max_series`).
    pub max_series: usize,
    /// Values a bucket keeps (`aggregate_max_values_per_bucket`).
    pub max_values: usize,
    /// Series held now, over all aggregators.
    pub series: Arc<AtomicUsize>,
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    start: i64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// Kept only for the functions that need every value.
    values: Vec<f64>,
}

impl Bucket {
    fn add(&mut self, v: f64, keep: bool, max_values: usize) -> bool {
        if self.count == 0 {
            (self.sum, self.min, self.max) = (v, v, v);
        } else {
            self.sum += v;
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        if !keep {
            return true;
        }
        if self.values.len() >= max_values {
            return false;
        }
        self.values.push(v);
        true
    }

    /// The value `f` computes, as carbon-c-relay computes it.
    fn compute(&mut self, f: Function) -> f64 {
        let n = self.count as f64;
        match f {
            Function::Sum => self.sum,
            Function::Count => n,
            Function::Max => self.max,
            Function::Min => self.min,
            Function::Average => self.sum / n,
            Function::Percentile(p) => {
                // Nearest rank over the values kept; c-relay's
                // `(int)(p / 100 * n + 0.9)`.
                let kept = self.values.len();
                if kept == 0 {
                    return f64::NAN;
                }
                self.values.sort_by(f64::total_cmp);
                let k = ((f64::from(p) / 100.0 * kept as f64) + 0.9) as usize;
                self.values[k.clamp(1, kept) - 1]
            }
            Function::Quantile(q) => {
                // carbon-aggregator's `percentile(factor)`.
                let n = self.values.len();
                if n == 0 {
                    return f64::NAN;
                }
                self.values.sort_by(f64::total_cmp);
                let rank = f64::from(q) / 1000.0 * (n - 1) as f64;
                let (l, r) = (rank.floor(), rank.ceil());
                let (vl, vr) = (self.values[l as usize], self.values[r as usize]);
                if l == r {
                    vl
                } else {
                    vl * (r - rank) + vr * (rank - l)
                }
            }
            Function::Variance | Function::Stddev => {
                let avg = self.sum / n;
                let mut k = 0.0;
                for v in &self.values {
                    k += (v - avg) * (v - avg);
                }
                k /= self.values.len().max(1) as f64;
                if f == Function::Variance {
                    k
                } else {
                    k.sqrt()
                }
            }
        }
    }

    fn reset(&mut self, start: i64) {
        self.start = start;
        self.count = 0;
        self.values.clear();
    }
}

#[derive(Debug)]
struct Series {
    /// Seconds after a bucket starts that it is emitted: `expire_secs`
    /// plus this series' splay.
    expire: i64,
    /// Consecutive buckets, the oldest first.
    buckets: Box<[Bucket]>,
}

impl Series {
    fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.count == 0)
    }

    /// Emits the oldest bucket and opens a new one after the newest.
    fn rotate(&mut self, interval: i64) {
        let next = self.buckets[self.buckets.len() - 1].start + interval;
        self.buckets.rotate_left(1);
        let last = self.buckets.len() - 1;
        self.buckets[last].reset(next);
    }
}

/// Counts of one aggregator (carbon-c-relay's `aggregators.*`).
#[derive(Debug, Default)]
pub struct AggregatorStats {
    /// Points the rule took.
    pub received: AtomicU64,
    /// Aggregates emitted.
    pub sent: AtomicU64,
    /// Points older than the oldest open bucket, or for a bucket already
    /// emitted.
    pub too_old: AtomicU64,
    /// Points past the newest bucket.
    pub too_new: AtomicU64,
    /// Points that would have started a series past `aggregate_max_series`.
    pub series_limit: AtomicU64,
    /// Values past `aggregate_max_values_per_bucket` (still summed).
    pub values_limit: AtomicU64,
    /// Points in buckets still open at shutdown or when a reload removed
    /// the rule: never emitted.
    pub unemitted: AtomicU64,
}

/// One aggregation rule's buckets.
#[derive(Debug)]
pub struct Aggregator {
    /// The rule.
    pub spec: Aggregation,
    /// One map from output name to series per `compute`.
    series: Vec<SeriesMap>,
    bucket_count: usize,
    limits: Limits,
    /// Spread expiry over one interval by name (off in unit tests, where
    /// exact times are asserted).
    splay: bool,
    /// Its counts.
    pub stats: AggregatorStats,
}

impl Aggregator {
    /// An aggregator for `spec` with no series yet.
    pub fn new(spec: Aggregation, limits: Limits) -> Aggregator {
        // Keyed, so names cannot be chosen to collide.
        let seed =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
        let (every, expire) = (spec.every_secs as usize, spec.expire_secs as usize);
        Aggregator {
            series: spec
                .computes
                .iter()
                .map(|_| DashMap::with_hasher(Xxh3Builder::new().with_seed(seed)))
                .collect(),
            // c-relay's `bucketcnt`: the past back to `expire`, the
            // current bucket and one more.
            bucket_count: expire.div_ceil(every.max(1)) + 2,
            spec,
            limits,
            splay: true,
            stats: AggregatorStats::default(),
        }
    }

    /// Series held, over all computes.
    pub fn series(&self) -> usize {
        self.series.iter().map(DashMap::len).sum()
    }

    /// Adds one point of `name` (matched by `regex`, the rule's) at
    /// `timestamp`. `now` is the wall clock, read only when a series
    /// starts (its first bucket is `expire` before now).
    pub fn put(
        &self,
        regex: Option<&Regex>,
        name: &str,
        value: f64,
        timestamp: i64,
        now: &dyn Fn() -> i64,
    ) {
        self.stats.received.fetch_add(1, Relaxed);
        SCRATCH.with_borrow_mut(|(out, locs)| {
            let locs = match regex {
                Some(re) if re.captures_len() > 1 => {
                    // Locations kept per thread for the last regex used
                    // (by address and group count: a regex a reload freed
                    // may share the address, and a single-pattern regex's
                    // locations fit any with as many groups).
                    let id = re as *const Regex as usize;
                    let fits = |(of, l): &(usize, regex::CaptureLocations)| {
                        *of == id && l.len() == re.captures_len()
                    };
                    if !locs.as_ref().is_some_and(fits) {
                        *locs = Some((id, re.capture_locations()));
                    }
                    let (_, l) = locs.as_mut().expect("just set");
                    re.captures_read(l, name)?;
                    Some(&*l)
                }
                _ => None,
            };
            for (compute, map) in self.spec.computes.iter().zip(&self.series) {
                Aggregation::write_output_at(compute, locs, name, out);
                self.add(compute, map, out, value, timestamp, now);
            }
            Some(())
        });
    }

    fn add(
        &self,
        compute: &crate::route::aggregate::Compute,
        map: &SeriesMap,
        out: &str,
        value: f64,
        timestamp: i64,
        now: &dyn Fn() -> i64,
    ) {
        let interval = i64::from(self.spec.every_secs);
        let mut series = match map.get_mut(out) {
            Some(s) => s,
            None => {
                if self.limits.series.load(Relaxed) >= self.limits.max_series {
                    self.stats.series_limit.fetch_add(1, Relaxed);
                    return;
                }
                match map.entry(out.into()) {
                    dashmap::Entry::Occupied(o) => o.into_ref(),
                    dashmap::Entry::Vacant(v) => {
                        self.limits.series.fetch_add(1, Relaxed);
                        let s = self.new_series(v.key(), now());
                        v.insert(s)
                    }
                }
            }
        };
        let first = series.buckets[0].start;
        let offset = timestamp - first;
        if offset < 0 {
            self.stats.too_old.fetch_add(1, Relaxed);
            return;
        }
        let i = (offset / interval) as usize;
        if i >= self.bucket_count {
            self.stats.too_new.fetch_add(1, Relaxed);
            return;
        }
        let keep = compute.function.needs_values();
        if !series.buckets[i].add(value, keep, self.limits.max_values) {
            self.stats.values_limit.fetch_add(1, Relaxed);
        }
    }

    fn new_series(&self, name: &str, now: i64) -> Series {
        let (interval, expire) = (
            i64::from(self.spec.every_secs),
            i64::from(self.spec.expire_secs),
        );
        // c-relay starts the buckets in the past, aligned to the interval.
        let first = (now - expire).div_euclid(interval) * interval;
        let splay = if self.splay {
            (splay_hash(name) % interval as u64) as i64
        } else {
            0
        };
        Series {
            expire: expire + splay,
            buckets: (0..self.bucket_count)
                .map(|i| Bucket {
                    start: first + i as i64 * interval,
                    ..Bucket::default()
                })
                .collect(),
        }
    }

    /// Emits every bucket due at `now` through `emit` as a plaintext line,
    /// and forgets series left empty. With `last`, emits every bucket that
    /// has ended (shutdown, or a reload that removed the rule) and returns
    /// the points of the buckets still open, which are lost.
    pub fn expire(&self, now: i64, last: bool, emit: &mut dyn FnMut(String)) -> u64 {
        let interval = i64::from(self.spec.every_secs);
        let mut lost = 0;
        for (compute, map) in self.spec.computes.iter().zip(&self.series) {
            map.retain(|name, s| {
                loop {
                    let due = if last { interval } else { s.expire };
                    if s.buckets[0].start + due >= now || s.is_empty() {
                        break;
                    }
                    let b = &mut s.buckets[0];
                    if b.count > 0 {
                        emit(self.line(name, compute.function, b));
                        self.stats.sent.fetch_add(1, Relaxed);
                    }
                    s.rotate(interval);
                }
                if last {
                    lost += s.buckets.iter().map(|b| b.count).sum::<u64>();
                    s.buckets.iter_mut().for_each(|b| b.count = 0);
                }
                let keep = !s.is_empty();
                if !keep {
                    self.limits.series.fetch_sub(1, Relaxed);
                }
                keep
            });
        }
        self.stats.unemitted.fetch_add(lost, Relaxed);
        lost
    }

    /// `name value timestamp` as carbon-c-relay prints it: `%f` for the
    /// value, an integer for `count`.
    fn line(&self, name: &str, f: Function, b: &mut Bucket) -> String {
        let interval = i64::from(self.spec.every_secs);
        let ts = match self.spec.timestamp {
            BucketTime::Start => b.start,
            BucketTime::Middle => b.start + interval / 2,
            BucketTime::End => b.start + interval,
        };
        match f {
            Function::Count => format!("{name} {} {ts}", b.count),
            f => format!("{name} {:.6} {ts}", b.compute(f)),
        }
    }
}

/// A small stable hash for the splay: the same name expires at the same
/// offset on every run.
fn splay_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Figures for [Arc<Aggregator>] {
    fn figures(&self, out: &mut dyn FnMut(Figure<'_>)) {
        if self.is_empty() {
            return;
        }
        let sum = |f: &dyn Fn(&AggregatorStats) -> &AtomicU64| -> u64 {
            self.iter().map(|a| f(&a.stats).load(Relaxed)).sum()
        };
        let received = sum(&|s| &s.received);
        let sent = sum(&|s| &s.sent);
        let reasons: [(&'static str, u64); 5] = [
            ("too_old", sum(&|s| &s.too_old)),
            ("too_new", sum(&|s| &s.too_new)),
            ("series_limit", sum(&|s| &s.series_limit)),
            ("values_limit", sum(&|s| &s.values_limit)),
            ("unemitted", sum(&|s| &s.unemitted)),
        ];
        out(Figure::counter("aggregator_received_total", received)
            .carbon("aggregators.metricsReceived"));
        out(Figure::counter("aggregator_sent_total", sent).carbon("aggregators.metricsSent"));
        // c-relay's metricsDropped: points no bucket took.
        let dropped = reasons[0].1 + reasons[1].1 + reasons[2].1;
        out(Figure::carbon_only(
            "aggregators.metricsDropped",
            Kind::Counter,
            dropped as f64,
        ));
        for (reason, n) in reasons {
            out(Figure::counter("aggregator_dropped_total", n).label("reason", reason));
        }
        let series: usize = self.iter().map(|a| a.series()).sum();
        out(Figure::gauge("aggregator_series", series as f64));
    }
}

/// Emits due buckets every 250 ms until cancelled, then what has ended.
/// Aggregates go to their rule's clusters, or back into routing at the
/// first rule; the task waits for queue room like any reader, except in
/// its last pass.
pub async fn run(relay: Arc<Relay>, token: CancellationToken) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dispatcher = relay.dispatcher();
    loop {
        let last = tokio::select! {
            _ = token.cancelled() => true,
            _ = tick.tick() => false,
        };
        dispatcher.refresh();
        let now = crate::unix_now();
        let table = dispatcher.table.clone();
        let mut lines = Vec::new();
        for (i, a) in table.aggregators.iter().enumerate() {
            let lost = a.expire(now, last, &mut |l| lines.push((Some(i), l)));
            if lost > 0 {
                tracing::warn!(
                    lost,
                    "Shut down with points in open aggregation buckets; they are not emitted."
                );
            }
        }
        for a in relay.take_retired_aggregators() {
            let lost = a.expire(now, true, &mut |l| lines.push((None, l)));
            if lost > 0 {
                tracing::warn!(lost, "A reload removed an aggregation rule; the points of its open buckets are not emitted.");
            }
        }
        let opts = ParseOptions {
            normalize_tags: false,
            now,
        };
        for (agg, line) in &lines {
            match parse_line(line.as_bytes(), &opts) {
                Ok(m) => {
                    let flush = match agg {
                        Some(i) if !table.router.aggregates[*i].send_to.is_empty() => {
                            dispatcher.dispatch_to(&m, *i)
                        }
                        Some(i) if !table.router.aggregates[*i].reaggregate => {
                            dispatcher.dispatch_past_aggregates(&m)
                        }
                        _ => dispatcher.dispatch(&m),
                    };
                    if flush && !last {
                        dispatcher.flush().await;
                    }
                }
                // A template can write a name carbon refuses (a space).
                Err(reason) => dispatcher.counts.rejected[reason as usize] += 1,
            }
        }
        if last {
            // Shutting down: never wait on a full queue (past it, the
            // spool or the bound's overflow takes them).
            dispatcher.flush_final();
            return;
        }
        dispatcher.flush().await;
        // A tick's aggregates are all there is until the next one: live
        // checks get them now.
        dispatcher.on_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::aggregate::Compute;
    use crate::route::Replacement;

    fn aggregator(every: u32, expire: u32, ts: BucketTime, funcs: &[&str]) -> Aggregator {
        let re = Regex::new(r"^sys\.([^.]+)\.cpu").unwrap();
        let computes = funcs
            .iter()
            .map(|f| Compute {
                function: Function::parse(f).unwrap(),
                write_to: Replacement::parse(&format!(r"agg.\1.{f}"), &re).unwrap(),
            })
            .collect();
        let spec = Aggregation {
            every_secs: every,
            expire_secs: expire,
            timestamp: ts,
            computes,
            send_to: Vec::new(),
            reaggregate: true,
            identity: String::new(),
        };
        let limits = Limits {
            max_series: 100,
            max_values: 1000,
            series: Arc::default(),
        };
        let mut a = Aggregator::new(spec, limits);
        a.splay = false;
        a
    }

    fn put(a: &Aggregator, name: &str, v: f64, ts: i64, now: i64) {
        let re = Regex::new(r"^sys\.([^.]+)\.cpu").unwrap();
        a.put(Some(&re), name, v, ts, &|| now);
    }

    fn drain(a: &Aggregator, now: i64, last: bool) -> Vec<String> {
        let mut out = Vec::new();
        a.expire(now, last, &mut |l| out.push(l));
        out.sort();
        out
    }

    #[test]
    fn buckets_align_and_emit_after_expiry() {
        let a = aggregator(10, 30, BucketTime::End, &["sum", "count", "average"]);
        let t0 = 1_000_000; // a multiple of 10
        for (v, ts) in [(1.0, t0), (2.0, t0 + 9), (4.0, t0 + 10)] {
            put(&a, "sys.web1.cpu", v, ts, t0 + 10);
        }
        // Not yet: the first bucket is emitted 30 s after it starts.
        assert!(drain(&a, t0 + 30, false).is_empty());
        assert_eq!(
            drain(&a, t0 + 31, false),
            vec![
                "agg.web1.average 1.500000 1000010",
                "agg.web1.count 2 1000010",
                "agg.web1.sum 3.000000 1000010",
            ]
        );
        assert_eq!(drain(&a, t0 + 41, false).len(), 3);
        // Emitted buckets are gone; empty series are forgotten.
        assert!(drain(&a, t0 + 100, false).is_empty());
        assert_eq!(a.series(), 0);
        assert_eq!(a.limits.series.load(Relaxed), 0);
        assert_eq!(a.stats.sent.load(Relaxed), 6);
    }

    #[test]
    fn points_out_of_every_bucket_are_counted() {
        let a = aggregator(10, 30, BucketTime::Start, &["sum"]);
        let now = 1_000_005;
        // Buckets from (now - 30) aligned = 999_970, five of them.
        put(&a, "sys.a.cpu", 1.0, 999_969, now);
        put(&a, "sys.a.cpu", 1.0, 999_970, now);
        put(&a, "sys.a.cpu", 1.0, 1_000_019, now);
        put(&a, "sys.a.cpu", 1.0, 1_000_020, now);
        assert_eq!(a.stats.too_old.load(Relaxed), 1);
        assert_eq!(a.stats.too_new.load(Relaxed), 1);
        assert_eq!(a.stats.received.load(Relaxed), 4);
        // The first bucket is emitted at once (it started 35 s ago); a
        // point for it afterwards is too old.
        assert_eq!(drain(&a, now + 1, false), vec!["agg.a.sum 1.000000 999970"]);
        put(&a, "sys.a.cpu", 1.0, 999_975, now + 1);
        assert_eq!(a.stats.too_old.load(Relaxed), 2);
    }

    #[test]
    fn percentiles_and_spread_as_crelay_computes_them() {
        let a = aggregator(
            10,
            20,
            BucketTime::Middle,
            &[
                "median",
                "percentile90",
                "percentile10",
                "variance",
                "stddev",
                "min",
                "max",
            ],
        );
        let t0 = 2_000_000;
        for v in [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 7.0, 6.0, 9.0, 8.0] {
            put(&a, "sys.h.cpu", v, t0, t0);
        }
        let out = drain(&a, t0 + 100, false);
        assert_eq!(
            out,
            vec![
                "agg.h.max 10.000000 2000005",
                "agg.h.median 5.000000 2000005",
                "agg.h.min 1.000000 2000005",
                "agg.h.percentile10 1.000000 2000005",
                "agg.h.percentile90 9.000000 2000005",
                "agg.h.stddev 2.872281 2000005",
                "agg.h.variance 8.250000 2000005",
            ]
        );
    }

    /// carbon-aggregator's interpolated quantiles (`rules.py`).
    #[test]
    fn quantiles_interpolate_as_carbon_aggregator() {
        let a = aggregator(10, 20, BucketTime::Start, &["p50", "p90", "p999"]);
        for v in [4.0, 1.0, 3.0, 2.0] {
            put(&a, "sys.q.cpu", v, 2_000_000, 2_000_000);
        }
        // n = 4: rank 1.5 -> 2.5; rank 2.7 -> 3.7; rank 2.997 -> 3.997.
        assert_eq!(
            drain(&a, 2_000_100, false),
            vec![
                "agg.q.p50 2.500000 2000000",
                "agg.q.p90 3.700000 2000000",
                "agg.q.p999 3.997000 2000000",
            ]
        );
    }

    #[test]
    fn the_last_pass_emits_ended_buckets_and_counts_open_ones() {
        let a = aggregator(10, 60, BucketTime::End, &["sum"]);
        let t0 = 3_000_000;
        put(&a, "sys.a.cpu", 1.0, t0, t0 + 15);
        put(&a, "sys.a.cpu", 2.0, t0 + 10, t0 + 15);
        put(&a, "sys.b.cpu", 5.0, t0 + 10, t0 + 15);
        assert!(drain(&a, t0 + 15, false).is_empty());
        assert_eq!(drain(&a, t0 + 15, true), vec!["agg.a.sum 1.000000 3000010"]);
        assert_eq!(a.stats.unemitted.load(Relaxed), 2);
        assert_eq!(a.series(), 0);
    }

    #[test]
    fn series_past_the_limit_are_refused_and_counted() {
        let mut a = aggregator(10, 20, BucketTime::End, &["sum"]);
        a.limits.max_series = 2;
        for h in ["a", "b", "c"] {
            put(&a, &format!("sys.{h}.cpu"), 1.0, 100, 100);
        }
        assert_eq!(a.series(), 2);
        assert_eq!(a.stats.series_limit.load(Relaxed), 1);
        // Existing series still take points.
        put(&a, "sys.a.cpu", 1.0, 100, 100);
        assert_eq!(a.stats.series_limit.load(Relaxed), 1);
    }
}
