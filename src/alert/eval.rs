//! Threshold evaluation and the per-series state machine. Pure: the caller
//! passes the time in, so every rule is testable without a clock.
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

use std::collections::VecDeque;

use crate::check::{Pending, SeriesState};

use crate::check::model::{AlertType, Check, WindowFn};

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
}

impl SeriesState {
    /// Takes one point. Returns the committed change, if any.
    pub fn observe(&mut self, check: &Check, value: f64, now_ms: i64) -> Option<Transition> {
        self.last_seen_ms = now_ms;
        let compared = match &check.window {
            Some(w) if !w.duration.is_zero() => {
                self.samples.push_back((now_ms, value));
                self.evict(now_ms, w.duration.0.as_millis() as i64);
                aggregate(w.func, &self.samples).unwrap_or(value)
            }
            _ => value,
        };
        self.value = Some(compared);
        let observed = classify(check, compared)?;
        self.decide(check, observed, now_ms)
    }

    /// Advances time without a point: commits a change that has now been
    /// held for `for`, turns a silent series UNKNOWN, and lets a windowed
    /// value age.
    pub fn tick(&mut self, check: &Check, now_ms: i64) -> Option<Transition> {
        if let Some(nd) = check.no_data_after.filter(|d| !d.is_zero()) {
            if self.state != AlertType::Unknown
                && now_ms - self.last_seen_ms >= nd.0.as_millis() as i64
            {
                self.pending = None;
                self.samples.clear();
                return Some(self.commit(AlertType::Unknown, None));
            }
        }
        if self.state == AlertType::Unknown {
            return None;
        }
        if let Some(w) = check.window.filter(|w| !w.duration.is_zero()) {
            let before = self.samples.len();
            self.evict(now_ms, w.duration.0.as_millis() as i64);
            if self.samples.len() != before {
                // A sum over an emptied window is 0; other aggregates of no
                // samples are left to noDataAfter.
                let agg =
                    aggregate(w.func, &self.samples).or((w.func == WindowFn::Sum).then_some(0.0));
                if let Some(v) = agg {
                    self.value = Some(v);
                    if let Some(observed) = classify(check, v) {
                        return self.decide(check, observed, now_ms);
                    }
                }
            }
        }
        let hold = check.for_.map_or(0, |f| f.0.as_millis() as i64);
        match self.pending {
            Some(p) if now_ms - p.since_ms >= hold => {
                self.pending = None;
                Some(self.commit(p.to, self.value))
            }
            _ => None,
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
        let last = self.last_notified_ms.unwrap_or(now_ms);
        if now_ms - last >= every.0.as_millis() as i64 {
            self.last_notified_ms = Some(now_ms);
            return true;
        }
        false
    }

    fn evict(&mut self, now_ms: i64, span_ms: i64) {
        while self.samples.len() > 1
            && self
                .samples
                .front()
                .is_some_and(|&(t, _)| now_ms - t > span_ms)
        {
            self.samples.pop_front();
        }
        // The newest sample also ages out once the whole window has passed.
        if self.samples.len() == 1
            && self
                .samples
                .front()
                .is_some_and(|&(t, _)| now_ms - t > span_ms)
        {
            self.samples.pop_front();
        }
    }

    fn decide(&mut self, check: &Check, observed: AlertType, now_ms: i64) -> Option<Transition> {
        if observed == self.state {
            self.pending = None;
            return None;
        }
        let hold = check.for_.map_or(0, |f| f.0.as_millis() as i64);
        if hold == 0 {
            self.pending = None;
            return Some(self.commit(observed, self.value));
        }
        match self.pending {
            Some(p) if p.to == observed => {
                if now_ms - p.since_ms >= hold {
                    self.pending = None;
                    return Some(self.commit(observed, self.value));
                }
                None
            }
            _ => {
                self.pending = Some(Pending {
                    to: observed,
                    since_ms: now_ms,
                });
                None
            }
        }
    }

    fn commit(&mut self, to: AlertType, value: Option<f64>) -> Transition {
        let from = std::mem::replace(&mut self.state, to);
        Transition { from, to, value }
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

/// The check-level state from per-state series counts (indexed by
/// `AlertType as usize`): the worst state among series with data; with no
/// such series, UNKNOWN, or OK when `allowNoData` is set.
pub fn check_state(counts: &[usize; 5], allow_no_data: bool) -> AlertType {
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

    /// Seyren's CheckRunnerTest, translated to per-point evaluation.
    #[test]
    fn state_changes_only_on_real_changes() {
        let c = check("5", "10");
        let mut s = SeriesState::new(0);
        assert_eq!(s.observe(&c, 1.0, 1), None, "OK -> OK does nothing");
        let t = s.observe(&c, 12.0, 2).unwrap();
        assert_eq!(
            (t.from, t.to, t.value),
            (AlertType::Ok, AlertType::Error, Some(12.0))
        );
        assert_eq!(
            s.observe(&c, 15.0, 3),
            None,
            "ERROR -> ERROR is no change (no alert row)"
        );
        let t = s.observe(&c, 6.0, 4).unwrap();
        assert_eq!((t.from, t.to), (AlertType::Error, AlertType::Warn));
        let t = s.observe(&c, 0.0, 5).unwrap();
        assert_eq!((t.from, t.to), (AlertType::Warn, AlertType::Ok));
    }

    #[test]
    fn a_new_series_in_error_changes_at_once() {
        let c = check("5", "10");
        let mut s = SeriesState::new(0);
        assert_eq!(
            s.observe(&c, 100.0, 0).map(|t| t.to),
            Some(AlertType::Error)
        );
    }

    #[test]
    fn for_holds_breaches_and_recoveries() {
        let mut c = check("5", "10");
        c.for_ = Some(Span(Duration::from_secs(60)));
        let mut s = SeriesState::new(0);
        assert_eq!(s.observe(&c, 20.0, 0), None);
        assert_eq!(s.observe(&c, 20.0, 30_000), None);
        // A dip resets the clock.
        assert_eq!(s.observe(&c, 1.0, 40_000), None);
        assert_eq!(s.observe(&c, 20.0, 50_000), None);
        assert_eq!(s.observe(&c, 20.0, 109_999), None);
        assert_eq!(
            s.observe(&c, 20.0, 110_000).map(|t| t.to),
            Some(AlertType::Error)
        );
        // Recovery must hold too; the tick commits it without a new point.
        assert_eq!(s.observe(&c, 1.0, 120_000), None);
        assert_eq!(s.tick(&c, 179_999), None);
        assert_eq!(
            s.tick(&c, 180_000).map(|t| (t.from, t.to)),
            Some((AlertType::Error, AlertType::Ok))
        );
    }

    #[test]
    fn windows_aggregate_and_age() {
        let mut c = check("5", "10");
        c.window = Some(Window {
            func: WindowFn::Sum,
            duration: Span(Duration::from_secs(60)),
        });
        let mut s = SeriesState::new(0);
        assert_eq!(s.observe(&c, 2.0, 0), None, "sum 2");
        assert_eq!(s.observe(&c, 2.0, 10_000), None, "sum 4");
        assert_eq!(
            s.observe(&c, 2.0, 20_000).map(|t| t.to),
            Some(AlertType::Warn),
            "sum 6"
        );
        assert_eq!(s.observe(&c, 2.0, 30_000), None, "sum 8");
        assert_eq!(
            s.observe(&c, 3.0, 40_000).map(|t| t.to),
            Some(AlertType::Error),
            "sum 11"
        );
        // As time passes the oldest points leave the window: 2+2+3 = 7.
        assert_eq!(s.tick(&c, 75_000).map(|t| t.to), Some(AlertType::Warn));
        // Then all of them: an empty sum is 0.
        assert_eq!(s.tick(&c, 101_000).map(|t| t.to), Some(AlertType::Ok));

        let mut avg = check("5", "10");
        avg.window = Some(Window {
            func: WindowFn::Avg,
            duration: Span(Duration::from_secs(60)),
        });
        let mut s = SeriesState::new(0);
        assert_eq!(
            s.observe(&avg, 20.0, 0).map(|t| t.to),
            Some(AlertType::Error)
        );
        assert_eq!(s.observe(&avg, 0.0, 1_000), None, "avg 10 is still ERROR");
        assert_eq!(
            s.observe(&avg, 0.0, 2_000).map(|t| t.to),
            Some(AlertType::Warn),
            "avg 6.67"
        );

        let mut max = check("5", "10");
        max.window = Some(Window {
            func: WindowFn::Max,
            duration: Span(Duration::from_secs(60)),
        });
        let mut s = SeriesState::new(0);
        s.observe(&max, 12.0, 0);
        assert_eq!(s.observe(&max, 0.0, 1_000), None, "the max is still 12");
        let mut min = check("5", "10");
        min.window = Some(Window {
            func: WindowFn::Min,
            duration: Span(Duration::from_secs(60)),
        });
        let mut s = SeriesState::new(0);
        s.observe(&min, 12.0, 0);
        assert_eq!(
            s.observe(&min, 0.0, 1_000).map(|t| t.to),
            Some(AlertType::Ok),
            "the min is 0"
        );
    }

    #[test]
    fn no_data_after_turns_unknown_and_data_brings_it_back() {
        let mut c = check("5", "10");
        c.no_data_after = Some(Span(Duration::from_secs(90)));
        let mut s = SeriesState::new(0);
        s.observe(&c, 20.0, 0);
        assert_eq!(s.tick(&c, 89_999), None);
        let t = s.tick(&c, 90_000).unwrap();
        assert_eq!(
            (t.from, t.to, t.value),
            (AlertType::Error, AlertType::Unknown, None)
        );
        assert_eq!(s.tick(&c, 200_000), None, "UNKNOWN stays without repeating");
        assert_eq!(
            s.observe(&c, 1.0, 200_001).map(|t| (t.from, t.to)),
            Some((AlertType::Unknown, AlertType::Ok))
        );
    }

    #[test]
    fn reminders_repeat_while_bad() {
        let mut c = check("5", "10");
        c.repeat_every = Some(Span(Duration::from_secs(600)));
        let mut s = SeriesState::new(0);
        s.observe(&c, 20.0, 0);
        s.last_notified_ms = Some(0);
        assert!(!s.reminder_due(&c, 599_999));
        assert!(s.reminder_due(&c, 600_000));
        assert!(!s.reminder_due(&c, 600_001));
        assert!(s.reminder_due(&c, 1_200_000));
        s.observe(&c, 1.0, 1_200_001);
        assert!(!s.reminder_due(&c, 5_000_000), "no reminders once OK");
    }

    #[test]
    fn check_state_is_the_worst_series_with_data() {
        let mut counts = [0usize; 5];
        assert_eq!(check_state(&counts, false), AlertType::Unknown);
        assert_eq!(check_state(&counts, true), AlertType::Ok);
        counts[AlertType::Unknown as usize] = 3;
        counts[AlertType::Ok as usize] = 1;
        assert_eq!(check_state(&counts, false), AlertType::Ok);
        counts[AlertType::Warn as usize] = 1;
        assert_eq!(check_state(&counts, false), AlertType::Warn);
    }
}
