//! What one engine step changed, written to the store in one transaction.

use crate::check::model::{Alert, AlertType};
use crate::check::notification::NewNotification;
use crate::check::series::SeriesState;

/// Everything one engine step changed, committed atomically.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// `(check id, series, state)` to save.
    pub series: Vec<(String, String, SeriesState)>,
    /// `(check id, series)` to forget.
    pub forget_series: Vec<(String, String)>,
    /// New alert rows.
    pub alerts: Vec<Alert>,
    /// `(check id, state, lastCheck)` to update.
    pub check_states: Vec<(String, AlertType, i64)>,
    /// Notifications to queue.
    pub notifications: Vec<NewNotification>,
}

impl Changes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
            && self.forget_series.is_empty()
            && self.alerts.is_empty()
            && self.check_states.is_empty()
            && self.notifications.is_empty()
    }
}
