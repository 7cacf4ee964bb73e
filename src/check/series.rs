//! The state of one series of one check: the data the engine evolves and
//! the store keeps. The rules that move it are in `alert::eval`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::check::model::AlertType;

/// A state observed but not yet held for `for`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The candidate state.
    pub to: AlertType,
    /// When it was first observed (epoch ms).
    pub since_ms: i64,
}

/// Everything known about one series of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    /// The committed state.
    pub state: AlertType,
    /// The last compared value (after windowing).
    pub value: Option<f64>,
    /// When the last point arrived (epoch ms).
    pub last_seen_ms: i64,
    /// A change waiting for `for`.
    pub pending: Option<Pending>,
    /// When subscribers were last told about this series (epoch ms).
    pub last_notified_ms: Option<i64>,
    /// Samples inside the window, oldest first.
    #[serde(skip)]
    pub samples: VecDeque<(i64, f64)>,
    /// Whether a point came from the stream since start-up; seeding from
    /// the render API leaves such a series alone.
    #[serde(skip)]
    pub live_seen: bool,
    /// Which of its check's charted series this is, if any (the engine
    /// keeps recent values of the first few series for the UI).
    #[serde(skip)]
    pub chart: Option<u8>,
}

impl SeriesState {
    /// A series seen for the first time: Seyren assumes it was OK.
    pub fn new(now_ms: i64) -> Self {
        SeriesState {
            state: AlertType::Ok,
            value: None,
            last_seen_ms: now_ms,
            pending: None,
            last_notified_ms: None,
            samples: VecDeque::new(),
            live_seen: false,
            chart: None,
        }
    }
}
