//! The state of one series of one check: the data the engine evolves and
//! the store keeps. The rules that move it are in `alert::eval`.
//!
//! Times named `*_ms` are epoch milliseconds. A series lives in *data
//! time*, the timestamps its points carry; only `noDataAfter`, reminders
//! and the ageing of a silent window look at the clock.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::check::model::AlertType;

/// A state observed but not yet held for `for`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The candidate state.
    pub to: AlertType,
    /// The data time it was first observed at.
    pub since_ms: i64,
}

/// One value and its data time, as the render API gives a series' last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The point's timestamp, epoch milliseconds.
    pub at_ms: i64,
    /// Its value.
    pub value: f64,
}

/// No point evaluated yet.
pub const NEVER: i64 = i64::MIN;

/// Everything known about one series of one check. 48 bytes: a million
/// series are a million of these in the engine's maps, so what only some
/// checks need (`for`'s pending change, a window's samples, points held
/// for reordering) lives behind one pointer, allocated by those checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub struct SeriesState {
    /// The committed state.
    pub state: AlertType,
    /// Whether a point came from the stream since start-up; seeding from
    /// the render API leaves such a series alone.
    pub live_seen: bool,
    /// Which of its check's charted series this is, if any (the engine
    /// keeps recent values of the first few series for the UI).
    pub chart: Option<u8>,
    /// The last compared value (after windowing); NaN for none (a value
    /// is never NaN: the decoder refuses it and JSON cannot carry it).
    value: f64,
    /// The newest timestamp evaluated: the data time of `value`
    /// ([`NEVER`] before the first).
    pub newest_ms: i64,
    /// When subscribers were last told about this series (wall clock);
    /// [`NEVER`] for never.
    last_notified_ms: i64,
    /// Silence for `noDataAfter` is measured from no earlier than this
    /// (wall clock): a restart is not silence.
    pub(crate) quiet_from_ms: i64,
    pub(crate) extra: Option<Box<Extra>>,
}

/// The part of a series' state only checks with `for`, `window` or
/// `max_disorder_secs` use.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Extra {
    /// A change waiting for `for`.
    pub(crate) pending: Option<Pending>,
    /// The end of the window last evaluated: the newest timestamp, or
    /// later once a silent window has aged on the clock.
    pub(crate) evaluated_ms: i64,
    /// Samples inside the window, oldest first by timestamp.
    pub(crate) samples: VecDeque<(i64, f64)>,
    /// Points waiting to be evaluated in timestamp order:
    /// `(timestamp, value, arrived)`, by timestamp.
    pub(crate) held: Vec<(i64, f64, i64)>,
}

/// What the store keeps of a series, as it always has.
#[derive(Serialize, Deserialize)]
struct Stored {
    state: AlertType,
    value: Option<f64>,
    /// Stores written before event time called it `last_seen_ms`.
    #[serde(alias = "last_seen_ms")]
    newest_ms: i64,
    pending: Option<Pending>,
    last_notified_ms: Option<i64>,
}

impl From<Stored> for SeriesState {
    fn from(s: Stored) -> Self {
        SeriesState {
            state: s.state,
            value: s.value.unwrap_or(f64::NAN),
            newest_ms: s.newest_ms,
            last_notified_ms: s.last_notified_ms.unwrap_or(NEVER),
            extra: s.pending.map(|p| {
                Box::new(Extra {
                    pending: Some(p),
                    evaluated_ms: s.newest_ms,
                    ..Extra::default()
                })
            }),
            ..SeriesState::new()
        }
    }
}

impl From<SeriesState> for Stored {
    fn from(s: SeriesState) -> Self {
        Stored {
            state: s.state,
            value: s.value(),
            newest_ms: s.newest_ms,
            pending: s.pending(),
            last_notified_ms: s.last_notified_ms(),
        }
    }
}

impl PartialEq for SeriesState {
    // By what is stored and shown; NaN, "no value", equals itself.
    fn eq(&self, o: &Self) -> bool {
        (
            self.state,
            self.value(),
            self.newest_ms,
            self.last_notified_ms,
            &self.extra,
        ) == (
            o.state,
            o.value(),
            o.newest_ms,
            o.last_notified_ms,
            &o.extra,
        ) && (self.live_seen, self.chart, self.quiet_from_ms)
            == (o.live_seen, o.chart, o.quiet_from_ms)
    }
}

impl Default for SeriesState {
    fn default() -> Self {
        SeriesState::new()
    }
}

impl SeriesState {
    /// A series seen for the first time: Seyren assumes it was OK.
    pub fn new() -> Self {
        SeriesState {
            state: AlertType::Ok,
            live_seen: false,
            chart: None,
            value: f64::NAN,
            newest_ms: NEVER,
            last_notified_ms: NEVER,
            quiet_from_ms: NEVER,
            extra: None,
        }
    }

    /// The last compared value, if any.
    pub fn value(&self) -> Option<f64> {
        (!self.value.is_nan()).then_some(self.value)
    }

    pub(crate) fn set_value(&mut self, v: f64) {
        self.value = v;
    }

    /// When subscribers were last told about this series, if ever.
    pub fn last_notified_ms(&self) -> Option<i64> {
        (self.last_notified_ms != NEVER).then_some(self.last_notified_ms)
    }

    /// Records that subscribers were told at `ms`.
    pub fn set_last_notified_ms(&mut self, ms: i64) {
        self.last_notified_ms = ms;
    }

    /// The newest timestamp evaluated, if any.
    pub fn newest(&self) -> Option<i64> {
        (self.newest_ms != NEVER).then_some(self.newest_ms)
    }

    /// A change waiting for `for`, if any.
    pub fn pending(&self) -> Option<Pending> {
        self.extra.as_ref().and_then(|e| e.pending)
    }

    /// Points held for reordering.
    pub fn held_len(&self) -> usize {
        self.extra.as_ref().map_or(0, |e| e.held.len())
    }

    /// A series read back from the store at `now_ms`: evaluation goes on
    /// from its newest point, and silence is counted from now.
    pub fn restored(mut self, now_ms: i64) -> Self {
        self.quiet_from_ms = now_ms;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_is_small_and_stored_as_before() {
        assert!(std::mem::size_of::<SeriesState>() <= 48);
        // A document written before event time reads back.
        let old = r#"{"state":"ERROR","value":12.0,"last_seen_ms":5,"pending":{"to":"OK","since_ms":4},"last_notified_ms":3}"#;
        let s: SeriesState = serde_json::from_str(old).unwrap();
        assert_eq!(
            (s.state, s.value(), s.newest_ms),
            (AlertType::Error, Some(12.0), 5)
        );
        assert_eq!(s.pending().map(|p| p.since_ms), Some(4));
        let doc = serde_json::to_value(&s).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"state": "ERROR", "value": 12.0, "newest_ms": 5,
                "pending": {"to": "OK", "since_ms": 4}, "last_notified_ms": 3})
        );
    }
}
