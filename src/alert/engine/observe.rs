//! One point, one tick: the per-series state machine applied to the
//! checks that match, and the alert rows and notifications a change makes.

use std::sync::atomic::Ordering::Relaxed;

use jiff::tz::TimeZone;

use super::{Engine, History, CHART_POINTS, CHART_SERIES};
use crate::alert::eval::{Arrival, Transition};
use crate::alert::handle::EngineStats;
use crate::check::{
    new_id, schedule, Alert, AlertType, Changes, Check, NewNotification, NotificationKind,
    SeriesState,
};
use crate::route::index::Slot;

impl Engine {
    /// One streamed point, stamped `ts` (epoch seconds), against every
    /// check whose pattern matches its name.
    pub(super) fn evaluate(&mut self, name: &str, value: f64, ts: i64, now: i64) {
        let ts_ms = ts.saturating_mul(1000);
        if ts_ms > now.saturating_add(self.max_future_ms) {
            self.stats.points_future.fetch_add(1, Relaxed);
            return;
        }
        let mut matching = std::mem::take(&mut self.matching);
        matching.clear();
        let index = &self.index;
        self.names
            .get_or(name, &mut matching, |out| index.matches(name, out));
        for &slot in &matching {
            self.observe(slot, name, ts_ms, value, now, true);
        }
        self.matching = matching;
    }

    /// One value stamped `ts_ms` for one series of the check in `slot`.
    /// `live` marks the series as updated by the stream. Returns the
    /// series' state after.
    pub(super) fn observe(
        &mut self,
        slot: Slot,
        name: &str,
        ts_ms: i64,
        value: f64,
        now: i64,
        live: bool,
    ) -> Option<AlertType> {
        let rt = self.slots.get_mut(slot as usize).and_then(Option::as_mut)?;
        self.evaluations += 1;
        rt.last_check = Some(now);
        let series = match rt.series.get_mut(name) {
            Some(series) => series,
            None => {
                if rt.series.len() >= self.cfg.max_series_per_check {
                    self.stats.series_refused.fetch_add(1, Relaxed);
                    if rt.series_refused == 0 {
                        tracing::warn!(check = %rt.check.name, max_series_per_check = self.cfg.max_series_per_check,
                            "A check has reached max_series_per_check; its new series are not evaluated.");
                    }
                    rt.series_refused += 1;
                    if self.refusing.last() != Some(&slot) {
                        self.refusing.push(slot);
                    }
                    return None;
                }
                rt.counts[AlertType::Ok as usize] += 1;
                self.stats.series.fetch_add(1, Relaxed);
                rt.series.insert(name, SeriesState::new())
            }
        };
        // The first few series seen are charted (their slot is kept on the
        // series, so the rest cost no search).
        if series.chart.is_none() {
            let recent = rt.recent.get_or_insert_with(Box::default);
            if recent.len() < CHART_SERIES {
                series.chart = Some(recent.len() as u8);
                recent.push((name.into(), History::default()));
            }
        }
        if let (Some(i), Some(recent)) = (series.chart, rt.recent.as_mut()) {
            let points = &mut recent[i as usize].1;
            if points.len() == CHART_POINTS {
                points.pop_front();
            }
            points.push_back((ts_ms, value));
        }
        series.live_seen |= live;
        let mut out = std::mem::take(&mut self.transitions);
        match series.observe(&rt.check, ts_ms, value, now, &self.event_time, &mut out) {
            Arrival::InOrder => {}
            Arrival::Late => _ = self.stats.points_late.fetch_add(1, Relaxed),
            Arrival::TooLate => _ = self.stats.points_too_late.fetch_add(1, Relaxed),
        }
        let state = series.state;
        let mut step = Step {
            batch: &mut self.batch,
            changed: &mut self.changed,
            stats: &self.stats,
            now,
        };
        step.commit(slot, &rt.check, &mut rt.counts, series, name, &mut out);
        self.transitions = out;
        Some(state)
    }

    /// At shutdown: evaluates every point still held for reordering, so
    /// what arrived is judged and saved.
    pub(super) fn release_held(&mut self) {
        let now = self.clock.now_ms();
        let mut out = std::mem::take(&mut self.transitions);
        for slot in 0..self.slots.len() {
            let Some(rt) = self.slots[slot].as_mut() else {
                continue;
            };
            let mut step = Step {
                batch: &mut self.batch,
                changed: &mut self.changed,
                stats: &self.stats,
                now,
            };
            for (name, series) in rt.series.iter_mut().filter(|(_, s)| s.held_len() > 0) {
                series.release_all(&rt.check, &mut out);
                step.commit(
                    slot as Slot,
                    &rt.check,
                    &mut rt.counts,
                    series,
                    name,
                    &mut out,
                );
            }
        }
        self.transitions = out;
    }

    pub(super) fn tick(&mut self, now: i64) {
        let mut out = std::mem::take(&mut self.transitions);
        for &slot in &self.ticking {
            let Some(rt) = self.slots[slot as usize].as_mut() else {
                continue;
            };
            for (name, series) in rt.series.iter_mut() {
                series.tick(&rt.check, now, &self.event_time, &mut out);
                if !out.is_empty() {
                    let mut step = Step {
                        batch: &mut self.batch,
                        changed: &mut self.changed,
                        stats: &self.stats,
                        now,
                    };
                    step.commit(slot, &rt.check, &mut rt.counts, series, name, &mut out);
                } else if series.reminder_due(&rt.check, now) {
                    let saved = series.clone();
                    self.batch
                        .series
                        .push((rt.check.id.clone(), name.to_string(), saved.clone()));
                    // A reminder reports the unchanged state: from == to.
                    let still = Transition {
                        from: saved.state,
                        to: saved.state,
                        value: saved.value(),
                        at_ms: now,
                    };
                    let reminder = alert(&rt.check, name, still, now);
                    queue_notifications(
                        &rt.check,
                        &[reminder],
                        NotificationKind::Reminder,
                        now,
                        &self.tz,
                        &mut self.batch,
                    );
                }
            }
        }
        self.transitions = out;
    }
}

/// Where one step's committed changes go.
struct Step<'a> {
    batch: &'a mut Changes,
    changed: &'a mut Vec<(Slot, Alert)>,
    stats: &'a EngineStats,
    now: i64,
}

impl Step<'_> {
    /// Commits the changes in `out` (draining it) of one series of the
    /// check in `slot`: the check's state counts, the series' state to
    /// save and the alert rows go into the step's batch, and the alerts
    /// into `changed` for the step's notifications.
    fn commit(
        &mut self,
        slot: Slot,
        check: &Check,
        counts: &mut crate::alert::eval::Counts,
        series: &mut SeriesState,
        name: &str,
        out: &mut Vec<Transition>,
    ) {
        for t in out.drain(..) {
            series.set_last_notified_ms(self.now);
            counts[t.from as usize] -= 1;
            counts[t.to as usize] += 1;
            let alert = alert(check, name, t, self.now);
            self.batch
                .series
                .push((check.id.clone(), name.to_string(), series.clone()));
            self.batch.alerts.push(alert.clone());
            self.changed.push((slot, alert));
            self.stats.transitions.fetch_add(1, Relaxed);
        }
    }
}

/// The alert record of one series' change, with the check's thresholds
/// of the moment: stamped with the change's data time, and with `now`
/// as the time it was detected.
pub(super) fn alert(check: &Check, series: &str, t: Transition, now: i64) -> Alert {
    Alert {
        id: new_id(),
        check_id: check.id.clone(),
        value: t.value,
        target: series.to_string(),
        warn: check.warn.clone(),
        error: check.error.clone(),
        from_type: t.from,
        to_type: t.to,
        timestamp: t.at_ms,
        detected_timestamp: Some(now),
    }
}

/// Queues one notification per subscription that wants any of `alerts`,
/// deferred to the next open window and past any mute.
pub(super) fn queue_notifications(
    check: &Check,
    alerts: &[Alert],
    kind: NotificationKind,
    now: i64,
    tz: &TimeZone,
    batch: &mut Changes,
) {
    for sub in &check.subscriptions {
        let wanted = schedule::filter(sub, alerts);
        if wanted.is_empty() {
            continue;
        }
        let earliest = check.muted_until.map_or(now, |m| m.max(now));
        let Some(not_before_ms) = schedule::next_open(sub, earliest, tz) else {
            tracing::warn!(check = %check.name, subscription = %sub.id, "Subscription has no open day or time; nothing sent.");
            continue;
        };
        batch.notifications.push(NewNotification {
            kind,
            check: check.clone(),
            subscription: sub.clone(),
            alerts: wanted,
            not_before_ms,
        });
    }
}
