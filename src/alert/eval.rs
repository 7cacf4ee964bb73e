//! Threshold evaluation and the per-series state machine. Pure: the caller
//! passes the point's timestamp and the clock in, so every rule is
//! testable without either.
//!
//! Seyren's rules, exactly: `warn <= error` means higher is worse,
//! comparisons are inclusive, ERROR is tested before WARN, and a series never
//! seen before counts as having been OK. Beyond Seyren:
//! * `for`: a new state must be observed continuously this long before it is
//!   committed (breaches and recoveries alike);
//! * `window`: the compared value is `last`/`avg`/`min`/`max`/`sum` over the
//!   samples of the last `duration`;
//! * `noDataAfter`: a series silent that long becomes UNKNOWN;
//! * `repeatEvery`: reminders while a series stays bad.
//!
//! **Event time.** A series is evaluated in the order of its points'
//! timestamps, and `for` and `window` are measured between timestamps, so
//! an hour of backfill arriving in one second is judged as the hour it
//! was. A point behind the newest evaluated one is *late*: it joins the
//! window it falls in (re-evaluated at the same data time) and never
//! replaces the newer value; one older than the newest by more than the
//! window plus `max_lateness` changes nothing. With `max_disorder` above
//! zero, each series holds its points until they are that far behind its
//! newest (or have waited that long on the clock) and evaluates them in
//! timestamp order, so data shuffled within that bound gives the same
//! transitions as data in order. The clock drives only what no data can:
//! `noDataAfter`, reminders, held points released, and a window whose
//! series fell silent, which ages as if data time had moved on to
//! `max_lateness` behind the clock.

use std::collections::VecDeque;

use crate::check::series::Extra;
use crate::check::{Pending, SeriesState, NEVER};

use crate::check::model::{AlertType, Check, WindowFn};

/// Points a series holds for reordering at most; beyond it the oldest is
/// evaluated early, so a flood of one series cannot grow memory.
pub const MAX_HELD_POINTS: usize = 256;

/// The engine's rules for late and disordered points, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventTime {
    /// How far beyond its window a point may lag its series' newest and
    /// still count.
    pub max_lateness_ms: i64,
    /// How long a series' points wait to be evaluated in timestamp order.
    pub max_disorder_ms: i64,
}

/// Seyren's `DefaultValueChecker`. `None` when a threshold is missing.
pub fn classify(check: &Check, value: f64) -> Option<AlertType> {
    let (warn, error) = (check.warn.as_ref()?.value, check.error.as_ref()?.value);
    let beyond = |t: f64| {
        if warn <= error {
            value >= t
        } else {
            value <= t
        }
    };
    Some(if beyond(error) {
        AlertType::Error
    } else if beyond(warn) {
        AlertType::Warn
    } else {
        AlertType::Ok
    })
}

/// A committed state change of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The committed state before the change.
    pub from: AlertType,
    /// The state now committed.
    pub to: AlertType,
    /// The value that caused it; `None` for a no-data change.
    pub value: Option<f64>,
    /// The data time of the evaluation that completed it (for a no-data
    /// change, the clock's).
    pub at_ms: i64,
}

/// What became of one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Evaluated in timestamp order, or held to be.
    InOrder,
    /// Behind the newest evaluated point: it joined the window it falls
    /// in, if any, and replaced no newer value.
    Late,
    /// Older than the newest by more than the window plus `max_lateness`:
    /// it changed nothing.
    TooLate,
}

fn window_ms(check: &Check) -> i64 {
    check
        .window
        .filter(|w| !w.duration.is_zero())
        .map_or(0, |w| w.duration.0.as_millis() as i64)
}

impl SeriesState {
    /// The end of the window last evaluated (the newest timestamp unless
    /// a silent window has aged further).
    fn evaluated(&self) -> i64 {
        self.extra
            .as_ref()
            .map_or(self.newest_ms, |e| e.evaluated_ms)
    }

    /// The part of the state only some checks use, made on first use.
    fn extra(&mut self) -> &mut Extra {
        let newest = self.newest_ms;
        self.extra.get_or_insert_with(|| {
            Box::new(Extra {
                evaluated_ms: newest,
                ..Extra::default()
            })
        })
    }

    fn clear_pending(&mut self) {
        if let Some(e) = &mut self.extra {
            e.pending = None;
        }
    }

    /// Takes one point with timestamp `ts_ms`, on the clock at `now_ms`;
    /// the changes it commits are pushed to `out`.
    pub fn observe(
        &mut self,
        check: &Check,
        ts_ms: i64,
        value: f64,
        now_ms: i64,
        et: &EventTime,
        out: &mut Vec<Transition>,
    ) -> Arrival {
        let evaluated = self.evaluated();
        if evaluated != NEVER && ts_ms < evaluated {
            return self.late(check, ts_ms, value, et, out);
        }
        if et.max_disorder_ms <= 0 {
            self.evaluate(check, ts_ms, value, out);
            return Arrival::InOrder;
        }
        let held = &mut self.extra().held;
        let i = held.partition_point(|p| p.0 < ts_ms);
        match held.get_mut(i) {
            // Equal timestamps: the later arrival wins, as in whisper.
            Some(p) if p.0 == ts_ms => *p = (ts_ms, value, now_ms),
            _ => held.insert(i, (ts_ms, value, now_ms)),
        }
        let watermark = held[held.len() - 1].0 - et.max_disorder_ms;
        let ripe = held.partition_point(|p| p.0 <= watermark);
        let overflow = held.len().saturating_sub(MAX_HELD_POINTS);
        self.release(check, ripe.max(overflow), out);
        Arrival::InOrder
    }

    fn late(
        &mut self,
        check: &Check,
        ts_ms: i64,
        value: f64,
        et: &EventTime,
        out: &mut Vec<Transition>,
    ) -> Arrival {
        let span = window_ms(check);
        if self.newest_ms != NEVER && ts_ms < self.newest_ms - span - et.max_lateness_ms {
            return Arrival::TooLate;
        }
        self.newest_ms = self.newest_ms.max(ts_ms);
        let evaluated = self.evaluated();
        if span > 0 && evaluated - ts_ms <= span {
            insert_sample(&mut self.extra().samples, ts_ms, value);
            self.evaluate_window(check, evaluated, span, out);
        }
        Arrival::Late
    }

    /// Evaluates every held point, in timestamp order.
    pub fn release_all(&mut self, check: &Check, out: &mut Vec<Transition>) {
        self.release(check, self.held_len(), out);
    }

    /// Evaluates the first `n` held points, in timestamp order.
    fn release(&mut self, check: &Check, n: usize, out: &mut Vec<Transition>) {
        if n == 0 {
            return;
        }
        let held = std::mem::take(&mut self.extra().held);
        for &(ts, value, _) in &held[..n] {
            self.evaluate(check, ts, value, out);
        }
        let e = self.extra();
        e.held = held;
        e.held.drain(..n);
    }

    /// One point at or after the newest evaluated.
    fn evaluate(&mut self, check: &Check, ts_ms: i64, value: f64, out: &mut Vec<Transition>) {
        self.newest_ms = self.newest_ms.max(ts_ms);
        if let Some(e) = &mut self.extra {
            e.evaluated_ms = ts_ms;
        }
        let span = window_ms(check);
        if span > 0 {
            insert_sample(&mut self.extra().samples, ts_ms, value);
            self.evaluate_window(check, ts_ms, span, out);
            return;
        }
        self.set_value(value);
        if let Some(observed) = classify(check, value) {
            self.decide(check, observed, ts_ms, out);
        }
    }

    /// The window ending at `at_ms`; a sum over no samples is 0, other
    /// aggregates of none are left to `noDataAfter`.
    fn evaluate_window(&mut self, check: &Check, at_ms: i64, span: i64, out: &mut Vec<Transition>) {
        let Some(func) = check.window.map(|w| w.func) else {
            return;
        };
        let samples = &mut self.extra().samples;
        while samples.front().is_some_and(|&(t, _)| at_ms - t > span) {
            samples.pop_front();
        }
        let agg = aggregate(func, samples).or((func == WindowFn::Sum).then_some(0.0));
        if let Some(v) = agg {
            self.set_value(v);
            if let Some(observed) = classify(check, v) {
                self.decide(check, observed, at_ms, out);
            }
        }
    }

    /// Lets the clock do what no point can: releases held points that
    /// waited `max_disorder`, turns a silent series UNKNOWN, and ages a
    /// silent window to `max_lateness` behind the clock.
    pub fn tick(&mut self, check: &Check, now_ms: i64, et: &EventTime, out: &mut Vec<Transition>) {
        let waited = self.extra.as_ref().and_then(|e| {
            let cutoff = e
                .held
                .iter()
                .filter(|p| now_ms - p.2 >= et.max_disorder_ms)
                .map(|p| p.0)
                .max()?;
            Some(e.held.partition_point(|p| p.0 <= cutoff))
        });
        if let Some(n) = waited {
            self.release(check, n, out);
        }
        if let Some(nd) = check.no_data_after.filter(|d| !d.is_zero()) {
            let since = self.newest_ms.max(self.quiet_from_ms);
            if self.state != AlertType::Unknown && now_ms - since >= nd.0.as_millis() as i64 {
                if let Some(e) = &mut self.extra {
                    e.pending = None;
                    e.samples.clear();
                    e.held.clear();
                }
                out.push(self.commit(AlertType::Unknown, None, now_ms));
                return;
            }
        }
        if self.state == AlertType::Unknown {
            return;
        }
        let span = window_ms(check);
        let at = now_ms - et.max_lateness_ms;
        if span > 0 && self.newest_ms != NEVER && at > self.evaluated() {
            self.extra().evaluated_ms = at;
            self.evaluate_window(check, at, span, out);
        }
    }

    /// Whether a reminder is due (and if so, records it as sent).
    pub fn reminder_due(&mut self, check: &Check, now_ms: i64) -> bool {
        let Some(every) = check.repeat_every.filter(|r| !r.is_zero()) else {
            return false;
        };
        if matches!(self.state, AlertType::Ok | AlertType::Unknown) {
            return false;
        }
        let last = self.last_notified_ms().unwrap_or(now_ms);
        if now_ms - last >= every.0.as_millis() as i64 {
            self.set_last_notified_ms(now_ms);
            return true;
        }
        false
    }

    fn decide(
        &mut self,
        check: &Check,
        observed: AlertType,
        at_ms: i64,
        out: &mut Vec<Transition>,
    ) {
        if observed == self.state {
            self.clear_pending();
            return;
        }
        let hold = check.for_.map_or(0, |f| f.0.as_millis() as i64);
        if hold == 0 {
            self.clear_pending();
            out.push(self.commit(observed, self.value(), at_ms));
            return;
        }
        match self.pending() {
            Some(p) if p.to == observed => {
                if at_ms - p.since_ms >= hold {
                    self.clear_pending();
                    out.push(self.commit(observed, self.value(), at_ms));
                }
            }
            _ => {
                self.extra().pending = Some(Pending {
                    to: observed,
                    since_ms: at_ms,
                })
            }
        }
    }

    fn commit(&mut self, to: AlertType, value: Option<f64>, at_ms: i64) -> Transition {
        let from = std::mem::replace(&mut self.state, to);
        Transition {
            from,
            to,
            value,
            at_ms,
        }
    }
}

/// Inserts a sample in timestamp order; an equal timestamp replaces.
fn insert_sample(samples: &mut VecDeque<(i64, f64)>, ts: i64, value: f64) {
    if samples.back().is_none_or(|&(t, _)| t < ts) {
        samples.push_back((ts, value));
        return;
    }
    let i = samples.partition_point(|&(t, _)| t < ts);
    match samples.get_mut(i) {
        Some(s) if s.0 == ts => s.1 = value,
        _ => samples.insert(i, (ts, value)),
    }
}

fn aggregate(func: WindowFn, samples: &VecDeque<(i64, f64)>) -> Option<f64> {
    let values = samples.iter().map(|&(_, v)| v);
    match func {
        WindowFn::Last => samples.back().map(|&(_, v)| v),
        WindowFn::Sum => (!samples.is_empty()).then(|| values.sum()),
        WindowFn::Avg => (!samples.is_empty()).then(|| values.sum::<f64>() / samples.len() as f64),
        WindowFn::Min => values.reduce(f64::min),
        WindowFn::Max => values.reduce(f64::max),
    }
}

/// A check's series by state (indexed by [`AlertType`]); a check has at
/// most `max_series_per_check` of them.
pub type Counts = [u32; 5];

/// The check-level state from per-state series counts (indexed by
/// `AlertType as usize`): the worst state among series with data; with no
/// such series, UNKNOWN, or OK when `allowNoData` is set.
pub fn check_state(counts: &Counts, allow_no_data: bool) -> AlertType {
    const ORDER: [AlertType; 4] = [
        AlertType::Exception,
        AlertType::Error,
        AlertType::Warn,
        AlertType::Ok,
    ];
    for t in ORDER {
        if counts[t as usize] > 0 {
            return t;
        }
    }
    if allow_no_data {
        AlertType::Ok
    } else {
        AlertType::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::model::{Span, Window};
    use proptest::prelude::*;
    use std::time::Duration;

    fn check(warn: &str, error: &str) -> Check {
        serde_json::from_value(
            serde_json::json!({"warn": warn, "error": error, "enabled": true, "live": true}),
        )
        .unwrap()
    }

    /// Seyren's DefaultValueCheckerTest.
    #[test]
    fn seyren_thresholds() {
        let up = check("0.15", "0.20");
        assert_eq!(classify(&up, 0.15), Some(AlertType::Warn));
        assert_eq!(classify(&up, 0.20), Some(AlertType::Error));
        assert_eq!(classify(&up, 0.10), Some(AlertType::Ok));
        let down = check("0.20", "0.15");
        assert_eq!(classify(&down, 0.20), Some(AlertType::Warn));
        assert_eq!(classify(&down, 0.15), Some(AlertType::Error));
        assert_eq!(classify(&down, 0.21), Some(AlertType::Ok));
        // warn == error counts as "higher is worse".
        let eq = check("5", "5");
        assert_eq!(classify(&eq, 5.0), Some(AlertType::Error));
        assert_eq!(classify(&eq, 4.0), Some(AlertType::Ok));
        let mut missing = check("1", "2");
        missing.error = None;
        assert_eq!(classify(&missing, 9.0), None);
    }

    const ET: EventTime = EventTime {
        max_lateness_ms: 300_000,
        max_disorder_ms: 0,
    };

    /// One point at data time `ts` (ms), on a clock that reads the same.
    fn obs(s: &mut SeriesState, c: &Check, v: f64, ts: i64) -> Option<Transition> {
        let mut out = Vec::new();
        s.observe(c, ts, v, ts, &ET, &mut out);
        assert!(out.len() <= 1, "one point, one change at most: {out:?}");
        out.pop()
    }

    fn tick(s: &mut SeriesState, c: &Check, now: i64) -> Option<Transition> {
        let mut out = Vec::new();
        s.tick(c, now, &ET, &mut out);
        out.pop()
    }

    /// Seyren's CheckRunnerTest, translated to per-point evaluation.
    #[test]
    fn state_changes_only_on_real_changes() {
        let c = check("5", "10");
        let mut s = SeriesState::new();
        assert_eq!(obs(&mut s, &c, 1.0, 1), None, "OK -> OK does nothing");
        let t = obs(&mut s, &c, 12.0, 2).unwrap();
        assert_eq!(
            (t.from, t.to, t.value, t.at_ms),
            (AlertType::Ok, AlertType::Error, Some(12.0), 2)
        );
        assert_eq!(
            obs(&mut s, &c, 15.0, 3),
            None,
            "ERROR -> ERROR is no change (no alert row)"
        );
        let t = obs(&mut s, &c, 6.0, 4).unwrap();
        assert_eq!((t.from, t.to), (AlertType::Error, AlertType::Warn));
        let t = obs(&mut s, &c, 0.0, 5).unwrap();
        assert_eq!((t.from, t.to), (AlertType::Warn, AlertType::Ok));
    }

    #[test]
    fn a_new_series_in_error_changes_at_once() {
        let c = check("5", "10");
        let mut s = SeriesState::new();
        assert_eq!(
            obs(&mut s, &c, 100.0, 0).map(|t| t.to),
            Some(AlertType::Error)
        );
    }

    #[test]
    fn for_holds_breaches_and_recoveries_in_data_time() {
        let mut c = check("5", "10");
        c.for_ = Some(Span(Duration::from_secs(60)));
        let mut s = SeriesState::new();
        assert_eq!(obs(&mut s, &c, 20.0, 0), None);
        assert_eq!(obs(&mut s, &c, 20.0, 30_000), None);
        // A dip resets the clock.
        assert_eq!(obs(&mut s, &c, 1.0, 40_000), None);
        assert_eq!(obs(&mut s, &c, 20.0, 50_000), None);
        assert_eq!(obs(&mut s, &c, 20.0, 109_999), None);
        let t = obs(&mut s, &c, 20.0, 110_000).unwrap();
        assert_eq!((t.to, t.at_ms), (AlertType::Error, 110_000));
        // Recovery must hold too, and the clock alone does not hold it:
        // only data says the recovery lasted.
        assert_eq!(obs(&mut s, &c, 1.0, 120_000), None);
        assert_eq!(tick(&mut s, &c, 1_000_000), None);
        assert_eq!(obs(&mut s, &c, 1.0, 179_999), None);
        assert_eq!(
            obs(&mut s, &c, 1.0, 180_000).map(|t| (t.from, t.to)),
            Some((AlertType::Error, AlertType::Ok))
        );
    }

    #[test]
    fn an_hour_arriving_at_once_is_judged_as_an_hour() {
        // One point a minute, breaching for 20 minutes in the middle,
        // all on a clock that reads the same instant.
        let mut c = check("5", "10");
        c.for_ = Some(Span(Duration::from_secs(300)));
        let mut s = SeriesState::new();
        let now = 10_000_000;
        let mut out = Vec::new();
        for m in 0..60i64 {
            let v = if (20..40).contains(&m) { 50.0 } else { 1.0 };
            s.observe(&c, m * 60_000, v, now, &ET, &mut out);
        }
        let got: Vec<_> = out.iter().map(|t| (t.to, t.at_ms / 60_000)).collect();
        assert_eq!(got, [(AlertType::Error, 25), (AlertType::Ok, 45)]);
    }

    #[test]
    fn a_late_point_never_overrides_a_newer_value() {
        let c = check("5", "10");
        let mut s = SeriesState::new();
        let now = 3_600_000;
        let mut out = Vec::new();
        assert_eq!(
            s.observe(&c, now, 1.0, now, &ET, &mut out),
            Arrival::InOrder
        );
        // Inside max_lateness: late, but with no window there is nothing
        // it can join.
        assert_eq!(
            s.observe(&c, now - 60_000, 500.0, now, &ET, &mut out),
            Arrival::Late
        );
        // Thirty minutes old: too late to count.
        assert_eq!(
            s.observe(&c, now - 1_800_000, 500.0, now, &ET, &mut out),
            Arrival::TooLate
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(
            (s.state, s.value(), s.newest_ms),
            (AlertType::Ok, Some(1.0), now)
        );
    }

    #[test]
    fn a_late_point_joins_the_window_it_falls_in() {
        let mut c = check("5", "10");
        c.window = Some(Window {
            func: WindowFn::Sum,
            duration: Span(Duration::from_secs(60)),
        });
        let mut s = SeriesState::new();
        assert_eq!(obs(&mut s, &c, 4.0, 100_000), None);
        // 50 s behind the newest: inside the window, the sum becomes 11.
        let mut out = Vec::new();
        assert_eq!(
            s.observe(&c, 50_000, 7.0, 100_000, &ET, &mut out),
            Arrival::Late
        );
        assert_eq!(
            out.iter().map(|t| (t.to, t.at_ms)).collect::<Vec<_>>(),
            [(AlertType::Error, 100_000)]
        );
        // 90 s behind: outside the window, within lateness; nothing moves.
        out.clear();
        assert_eq!(
            s.observe(&c, 10_000, -100.0, 100_000, &ET, &mut out),
            Arrival::Late
        );
        assert!(out.is_empty());
        assert_eq!(s.value(), Some(11.0));
    }

    #[test]
    fn disorder_within_the_bound_is_evaluated_in_order() {
        let c = check("5", "10");
        let et = EventTime {
            max_disorder_ms: 30_000,
            ..ET
        };
        let mut s = SeriesState::new();
        let mut out = Vec::new();
        // 0:500 arrives after 20:1; in order it is ERROR at 0, OK at 20.
        for (ts, v) in [(20_000, 1.0), (0, 500.0), (40_000, 1.0), (60_000, 1.0)] {
            s.observe(&c, ts, v, 0, &et, &mut out);
        }
        let got: Vec<_> = out.iter().map(|t| (t.to, t.at_ms)).collect();
        assert_eq!(got, [(AlertType::Error, 0), (AlertType::Ok, 20_000)]);
        // 40 and 60 are held until the clock says they waited long enough.
        assert_eq!(s.held_len(), 2);
        s.tick(&c, 29_999, &et, &mut out);
        assert_eq!(s.held_len(), 2);
        s.tick(&c, 30_000, &et, &mut out);
        assert_eq!(s.held_len(), 0);
        assert_eq!(s.newest_ms, 60_000);
    }

    #[test]
    fn windows_aggregate_in_data_time_and_age_when_silent() {
        let mut c = check("5", "10");
        c.window = Some(Window {
            func: WindowFn::Sum,
            duration: Span(Duration::from_secs(60)),
        });
        let mut s = SeriesState::new();
        assert_eq!(obs(&mut s, &c, 2.0, 0), None, "sum 2");
        assert_eq!(obs(&mut s, &c, 2.0, 10_000), None, "sum 4");
        assert_eq!(
            obs(&mut s, &c, 2.0, 20_000).map(|t| t.to),
            Some(AlertType::Warn),
            "sum 6"
        );
        assert_eq!(obs(&mut s, &c, 2.0, 30_000), None, "sum 8");
        assert_eq!(
            obs(&mut s, &c, 3.0, 40_000).map(|t| t.to),
            Some(AlertType::Error),
            "sum 11"
        );
        // The points leave the window as data time moves on: at 75 s,
        // 2+2+3 = 7.
        assert_eq!(
            obs(&mut s, &c, 0.0, 75_000).map(|t| t.to),
            Some(AlertType::Warn)
        );
        // The clock alone moves nothing until the series has been silent
        // for max_lateness...
        assert_eq!(tick(&mut s, &c, 300_000), None);
        // ...then the window ages as if data time had gone on: empty, 0.
        let t = tick(&mut s, &c, 75_000 + 300_000 + 61_000).unwrap();
        assert_eq!((t.to, t.at_ms), (AlertType::Ok, 136_000));

        let mut avg = check("5", "10");
        avg.window = Some(Window {
            func: WindowFn::Avg,
            duration: Span(Duration::from_secs(60)),
        });
        let mut s = SeriesState::new();
        assert_eq!(
            obs(&mut s, &avg, 20.0, 0).map(|t| t.to),
            Some(AlertType::Error)
        );
        assert_eq!(obs(&mut s, &avg, 0.0, 1_000), None, "avg 10 is still ERROR");
        assert_eq!(
            obs(&mut s, &avg, 0.0, 2_000).map(|t| t.to),
            Some(AlertType::Warn),
            "avg 6.67"
        );

        let mut max = check("5", "10");
        max.window = Some(Window {
            func: WindowFn::Max,
            duration: Span(Duration::from_secs(60)),
        });
        let mut s = SeriesState::new();
        obs(&mut s, &max, 12.0, 0);
        assert_eq!(obs(&mut s, &max, 0.0, 1_000), None, "the max is still 12");
        let mut min = check("5", "10");
        min.window = Some(Window {
            func: WindowFn::Min,
            duration: Span(Duration::from_secs(60)),
        });
        let mut s = SeriesState::new();
        obs(&mut s, &min, 12.0, 0);
        assert_eq!(
            obs(&mut s, &min, 0.0, 1_000).map(|t| t.to),
            Some(AlertType::Ok),
            "the min is 0"
        );
    }

    #[test]
    fn no_data_after_compares_the_clock_with_the_newest_timestamp() {
        let mut c = check("5", "10");
        c.no_data_after = Some(Span(Duration::from_secs(90)));
        let mut s = SeriesState::new();
        obs(&mut s, &c, 20.0, 0);
        assert_eq!(tick(&mut s, &c, 89_999), None);
        let t = tick(&mut s, &c, 90_000).unwrap();
        assert_eq!(
            (t.from, t.to, t.value, t.at_ms),
            (AlertType::Error, AlertType::Unknown, None, 90_000)
        );
        assert_eq!(
            tick(&mut s, &c, 200_000),
            None,
            "UNKNOWN stays without repeating"
        );
        assert_eq!(
            obs(&mut s, &c, 1.0, 200_001).map(|t| (t.from, t.to)),
            Some((AlertType::Unknown, AlertType::Ok))
        );
        // A point stamped long ago is silent as soon as it arrives.
        let mut s = SeriesState::new();
        let mut out = Vec::new();
        s.observe(&c, 0, 20.0, 1_000_000, &ET, &mut out);
        s.tick(&c, 1_000_000, &ET, &mut out);
        assert_eq!(out.last().map(|t| t.to), Some(AlertType::Unknown));
        // A restored series counts silence from the restart.
        let mut s = s.restored(5_000_000);
        s.state = AlertType::Error;
        assert_eq!(tick(&mut s, &c, 5_089_999), None);
    }

    #[test]
    fn reminders_repeat_while_bad() {
        let mut c = check("5", "10");
        c.repeat_every = Some(Span(Duration::from_secs(600)));
        let mut s = SeriesState::new();
        obs(&mut s, &c, 20.0, 0);
        s.set_last_notified_ms(0);
        assert!(!s.reminder_due(&c, 599_999));
        assert!(s.reminder_due(&c, 600_000));
        assert!(!s.reminder_due(&c, 600_001));
        assert!(s.reminder_due(&c, 1_200_000));
        obs(&mut s, &c, 1.0, 1_200_001);
        assert!(!s.reminder_due(&c, 5_000_000), "no reminders once OK");
    }

    /// A random check: thresholds either way, maybe `for`, maybe a window.
    fn any_check() -> impl Strategy<Value = Check> {
        let for_ = prop_oneof![Just(0u64), Just(30), Just(90)];
        let window = prop_oneof![
            Just(None),
            (0..5usize, 30u64..200).prop_map(|(f, secs)| Some(Window {
                func: [
                    WindowFn::Last,
                    WindowFn::Sum,
                    WindowFn::Avg,
                    WindowFn::Min,
                    WindowFn::Max
                ][f],
                duration: Span(Duration::from_secs(secs)),
            })),
        ];
        (any::<bool>(), for_, window).prop_map(|(up, for_secs, window)| {
            let mut c = if up {
                check("5", "10")
            } else {
                check("10", "5")
            };
            c.for_ = (for_secs > 0).then_some(Span(Duration::from_secs(for_secs)));
            c.window = window;
            c
        })
    }

    /// Points at strictly increasing timestamps, 1 to 60 s apart, and for
    /// each a delay in [0, 1) of the disorder bound.
    fn any_series() -> impl Strategy<Value = Vec<(i64, f64, f64)>> {
        prop::collection::vec((1i64..60, 0u8..16, 0.0f64..1.0), 1..80).prop_map(|steps| {
            let mut ts = 1_000_000_000_000;
            steps
                .into_iter()
                .map(|(gap, v, jitter)| {
                    ts += gap * 1000;
                    (ts, f64::from(v), jitter)
                })
                .collect()
        })
    }

    type Changes = Vec<(AlertType, AlertType, Option<f64>, i64)>;

    fn changes(out: &[Transition]) -> Changes {
        out.iter()
            .map(|t| (t.from, t.to, t.value, t.at_ms))
            .collect()
    }

    proptest! {
        /// The same data gives the same transitions in real time, in one
        /// burst, and shuffled within the disorder bound.
        #[test]
        fn arrival_order_within_the_bound_changes_nothing(
            c in any_check(),
            points in any_series(),
            disorder_secs in 1i64..120,
        ) {
            let d = disorder_secs * 1000;
            // In order and in real time, with no reordering at all.
            let mut s = SeriesState::new();
            let mut real_time = Vec::new();
            for &(ts, v, _) in &points {
                s.tick(&c, ts, &ET, &mut real_time);
                s.observe(&c, ts, v, ts, &ET, &mut real_time);
            }
            let reference = changes(&real_time);
            let last = points.last().unwrap().0;

            // In order, in one burst on a clock that stands still.
            let et = EventTime { max_disorder_ms: d, ..ET };
            let mut s = SeriesState::new();
            let mut burst = Vec::new();
            for &(ts, v, _) in &points {
                s.observe(&c, ts, v, last, &et, &mut burst);
            }
            s.tick(&c, last + d, &et, &mut burst);
            prop_assert_eq!(&changes(&burst), &reference);

            // Shuffled: each point arrives before the newest arrived is
            // `d` ahead of it.
            let mut shuffled = points.clone();
            shuffled.sort_by(|a, b| {
                (a.0 as f64 + a.2 * d as f64).total_cmp(&(b.0 as f64 + b.2 * d as f64))
            });
            let mut s = SeriesState::new();
            let mut out = Vec::new();
            for &(ts, v, _) in &shuffled {
                let arrival = s.observe(&c, ts, v, last, &et, &mut out);
                prop_assert_eq!(arrival, Arrival::InOrder);
            }
            s.tick(&c, last + d, &et, &mut out);
            prop_assert_eq!(&changes(&out), &reference);
        }
    }

    #[test]
    fn check_state_is_the_worst_series_with_data() {
        let mut counts: Counts = [0; 5];
        assert_eq!(check_state(&counts, false), AlertType::Unknown);
        assert_eq!(check_state(&counts, true), AlertType::Ok);
        counts[AlertType::Unknown as usize] = 3;
        counts[AlertType::Ok as usize] = 1;
        assert_eq!(check_state(&counts, false), AlertType::Ok);
        counts[AlertType::Warn as usize] = 1;
        assert_eq!(check_state(&counts, false), AlertType::Warn);
    }
}
