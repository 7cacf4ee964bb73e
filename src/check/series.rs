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

/// Everything known about one series of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    /// The committed state.
    pub state: AlertType,
    /// The last compared value (after windowing).
    pub value: Option<f64>,
    /// The newest timestamp evaluated: the data time of `value`
    /// ([`NEVER`] before the first). Stores written before event time
    /// called it `last_seen_ms`.
    #[serde(alias = "last_seen_ms")]
    pub newest_ms: i64,
    /// A change waiting for `for`.
    pub pending: Option<Pending>,
    /// When subscribers were last told about this series (wall clock).
    pub last_notified_ms: Option<i64>,
    /// The end of the window last evaluated: `newest_ms`, or later once a
    /// silent window has aged on the clock.
    #[serde(skip, default = "never")]
    pub evaluated_ms: i64,
    /// Samples inside the window, oldest first by timestamp.
    #[serde(skip)]
    pub samples: VecDeque<(i64, f64)>,
    /// Points waiting to be evaluated in timestamp order (only with
    /// `max_disorder_secs`): `(timestamp, value, arrived)`, by timestamp.
    #[serde(skip)]
    pub held: Vec<(i64, f64, i64)>,
    /// Silence for `noDataAfter` is measured from no earlier than this
    /// (wall clock): a restart is not silence.
    #[serde(skip)]
    pub quiet_from_ms: i64,
    /// Whether a point came from the stream since start-up; seeding from
    /// the render API leaves such a series alone.
    #[serde(skip)]
    pub live_seen: bool,
    /// Which of its check's charted series this is, if any (the engine
    /// keeps recent values of the first few series for the UI).
    #[serde(skip)]
    pub chart: Option<u8>,
}

fn never() -> i64 {
    NEVER
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
            value: None,
            newest_ms: NEVER,
            pending: None,
            last_notified_ms: None,
            evaluated_ms: NEVER,
            samples: VecDeque::new(),
            held: Vec::new(),
            quiet_from_ms: NEVER,
            live_seen: false,
            chart: None,
        }
    }

    /// The newest timestamp evaluated, if any.
    pub fn newest(&self) -> Option<i64> {
        (self.newest_ms != NEVER).then_some(self.newest_ms)
    }

    /// A series read back from the store at `now_ms`: evaluation goes on
    /// from its newest point, and silence is counted from now.
    pub fn restored(mut self, now_ms: i64) -> Self {
        self.evaluated_ms = self.newest_ms;
        self.quiet_from_ms = now_ms;
        self
    }
}
