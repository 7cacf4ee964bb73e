//! Applying render-API results: a polled check's run, and the seeding of
//! a live check's series at start-up.
//!
//! A run follows Seyren's `CheckRunner` (`seyren.md` §2.4) with the
//! fixes users asked for: each series with a value goes through the same
//! state machine as a streamed point (so `for`, `window` and
//! `repeatEvery` apply), a series whose points are all null is skipped,
//! the check's state is the worst over the series that had data in this
//! run (UNKNOWN, or OK with `allowNoData`, when none had), and a Graphite
//! failure is not "no data" but EXCEPTION, with an alert row on the way in
//! and on the way out so that it can notify.

use super::observe::alert;
use super::Engine;
use crate::alert::eval::Transition;
use crate::alert::PollFailure;
use crate::check::model::AlertType;
use crate::check::Sample;
use crate::route::index::Slot;

impl Engine {
    pub(super) fn apply_poll(
        &mut self,
        id: &str,
        result: Result<Vec<(String, Option<Sample>)>, PollFailure>,
    ) {
        let Some(slot) = self.slot_of(id) else {
            return;
        };
        let now = self.clock.now_ms();
        let Some(rt) = self.slots[slot as usize].as_mut() else {
            return;
        };
        if !rt.check.enabled || rt.check.live {
            return;
        }
        rt.last_check = Some(now);
        self.touched.push(slot);
        let values = match result {
            Ok(v) => v,
            Err(PollFailure { message: why }) => {
                if rt.exception.is_none() {
                    let from = rt.state();
                    rt.exception = Some(why.into());
                    self.check_level_change(slot, from, AlertType::Exception, now);
                } else {
                    rt.exception = Some(why.into());
                }
                return;
            }
        };
        let was_exception = rt.exception.take().is_some();
        let mut worst = if rt.check.allow_no_data {
            AlertType::Ok
        } else {
            AlertType::Unknown
        };
        for (name, value) in values {
            let Some(v) = value else { continue };
            if let Some(state) = self.observe(slot, &name, v.at_ms, v.value, now, false) {
                worst = worst.max(state);
            }
        }
        if let Some(rt) = self.slots[slot as usize].as_mut() {
            rt.poll_state = Some(worst);
        }
        if was_exception {
            self.check_level_change(slot, AlertType::Exception, worst, now);
        }
    }

    pub(super) fn apply_seed(&mut self, id: &str, values: Vec<(String, Option<Sample>)>) {
        let Some(slot) = self.slot_of(id) else {
            return;
        };
        let now = self.clock.now_ms();
        for (name, value) in values {
            let Some(v) = value else { continue };
            let fresh = self.slots[slot as usize]
                .as_ref()
                .and_then(|rt| rt.series.get(name.as_str()))
                .is_some_and(|s| s.live_seen);
            if !fresh {
                self.observe(slot, &name, v.at_ms, v.value, now, false);
            }
        }
    }

    /// An alert row for the check as a whole (its target as the series),
    /// for changes that no single series makes: into and out of EXCEPTION.
    fn check_level_change(&mut self, slot: Slot, from: AlertType, to: AlertType, now: i64) {
        let Some(rt) = self.slots[slot as usize].as_ref() else {
            return;
        };
        if from == to {
            return;
        }
        let a = alert(
            &rt.check,
            &rt.check.target,
            Transition {
                from,
                to,
                value: None,
                at_ms: now,
            },
            now,
        );
        self.batch.alerts.push(a.clone());
        self.changed.push((slot, a));
        self.stats
            .transitions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
