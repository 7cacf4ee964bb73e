//! Stage 8, **store**: checks, per-series state, alert history and the
//! notification outbox, behind the [`Store`] trait. [`sqlite::SqliteStore`]
//! is the default (a file, nothing to install); a PostgreSQL store can
//! implement the same trait.
//!
//! A state change, its alert row and the notifications it causes are
//! written in one transaction ([`Store::commit`]). That makes a restart safe:
//! a notification is in the outbox exactly when its alert exists, and it
//! leaves the outbox only once delivered.

pub mod sqlite;

use serde::{Deserialize, Serialize};

use crate::alert::eval::SeriesState;
use crate::alert::model::{Alert, AlertType, Check, Subscription};

pub use sqlite::SqliteStore;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored document did not decode.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A check with this name exists already.
    #[error("a check named {0:?} exists already")]
    DuplicateName(String),
    /// The store's helper thread could not start.
    #[error("store thread: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a notification was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// Series changed state.
    Change,
    /// A series is still bad (`repeatEvery`).
    Reminder,
    /// `PUT .../subscriptions/{id}/test`.
    Test,
}

/// What happened to a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    /// Waiting to be sent (or retried).
    Pending,
    /// Sent and accepted.
    Delivered,
    /// Gave up after the last retry.
    Failed,
    /// Deferred until a window opened, and by then no longer current.
    Superseded,
}

/// A notification to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewNotification {
    /// Why.
    pub kind: NotificationKind,
    /// The check as it was, state included.
    pub check: Check,
    /// Who.
    pub subscription: Subscription,
    /// The changes it reports.
    pub alerts: Vec<Alert>,
    /// Not before this epoch-ms time (a closed window or a mute defers it).
    pub not_before_ms: i64,
}

/// A notification in the outbox.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Outbox id.
    pub id: i64,
    /// Its content.
    pub body: NewNotification,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When it was created (epoch ms).
    pub created_ms: i64,
}

/// Everything one engine step changed, committed atomically.
#[derive(Debug, Default, Clone)]
pub struct Batch {
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

impl Batch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
            && self.forget_series.is_empty()
            && self.alerts.is_empty()
            && self.check_states.is_empty()
            && self.notifications.is_empty()
    }
}

/// Persistent state. Methods block; async callers use `spawn_blocking`.
pub trait Store: Send + Sync + 'static {
    /// Every check.
    fn load_checks(&self) -> Result<Vec<Check>, StoreError>;
    /// One check.
    fn get_check(&self, id: &str) -> Result<Option<Check>, StoreError>;
    /// Inserts or replaces a check (by id); names are unique.
    fn put_check(&self, check: &Check) -> Result<(), StoreError>;
    /// Inserts or replaces many checks in one transaction.
    fn put_checks(&self, checks: &[Check]) -> Result<(), StoreError> {
        checks.iter().try_for_each(|c| self.put_check(c))
    }
    /// Deletes a check with its series, alerts and pending notifications.
    fn delete_check(&self, id: &str) -> Result<bool, StoreError>;
    /// Every saved series state as `(check id, series, state)`.
    fn load_series(&self) -> Result<Vec<(String, String, SeriesState)>, StoreError>;
    /// Writes one engine step. Returns the notifications created that are
    /// due now, already claimed: the caller delivers each, or hands it
    /// back with [`Store::release_notification`].
    fn commit(&self, batch: &Batch) -> Result<Vec<Notification>, StoreError>;
    /// Alerts, newest first, optionally for one check: `(page, total)`.
    /// `items == 0` means no limit.
    fn alerts(
        &self,
        check_id: Option<&str>,
        start: usize,
        items: usize,
    ) -> Result<(Vec<Alert>, usize), StoreError>;
    /// Deletes a check's alerts older than `before_ms` (all when `None`).
    fn delete_alerts(&self, check_id: &str, before_ms: Option<i64>) -> Result<usize, StoreError>;
    /// Pending notifications due at `now_ms`, oldest first.
    fn due_notifications(&self, now_ms: i64, limit: usize)
        -> Result<Vec<Notification>, StoreError>;
    /// Takes a pending notification for delivery. False if it is no longer
    /// pending (another delivery took it, or it was finished), so that no
    /// notification is ever sent twice by one process.
    fn claim_notification(&self, id: i64) -> Result<bool, StoreError>;
    /// Returns a claimed notification to pending, for the outbox's poll.
    fn release_notification(&self, id: i64) -> Result<(), StoreError>;
    /// Puts a notification back to pending, due at `until_ms`, without
    /// counting an attempt: its destination was busy, not failing.
    fn defer_notification(&self, id: i64, until_ms: i64) -> Result<(), StoreError>;
    /// Records a delivery attempt's outcome. With `retry_at_ms` the
    /// notification goes back to pending until then.
    fn finish_notification(
        &self,
        id: i64,
        status: NotificationStatus,
        error: Option<&str>,
        retry_at_ms: Option<i64>,
    ) -> Result<(), StoreError>;
    /// The saved state of one series, if any.
    fn series_state(&self, check_id: &str, series: &str) -> Result<Option<AlertType>, StoreError>;
    /// Counts of notifications by status.
    fn notification_counts(&self) -> Result<Vec<(NotificationStatus, usize)>, StoreError>;
}
