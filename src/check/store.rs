//! The storage port: what the engine, the outbox and the API need kept.
//! The `store` stage implements it (SQLite today); nothing here names a
//! backend.

use crate::check::changes::Changes;
use crate::check::model::{Alert, AlertType, Check};
use crate::check::notification::{Notification, NotificationStatus};
use crate::check::series::SeriesState;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Db(#[source] Box<dyn std::error::Error + Send + Sync>),
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

/// Persistent state. Methods block; async callers use `spawn_blocking`.
pub trait Store: Send + Sync + 'static {
    /// Every check, in the store's order (insertion; an update keeps its
    /// place), handed to `each` one at a time: 100,000 are never all held
    /// as documents and as checks at once.
    fn scan_checks(&self, each: &mut dyn FnMut(Check)) -> Result<(), StoreError>;
    /// Every check, in the store's order.
    fn load_checks(&self) -> Result<Vec<Check>, StoreError> {
        let mut out = Vec::new();
        self.scan_checks(&mut |c| out.push(c))?;
        Ok(out)
    }
    /// One check.
    fn get_check(&self, id: &str) -> Result<Option<Check>, StoreError>;
    /// Inserts or replaces a check (by id); names are unique.
    fn put_check(&self, check: &Check) -> Result<(), StoreError>;
    /// Inserts or replaces many checks in one transaction.
    fn put_checks(&self, checks: &[&Check]) -> Result<(), StoreError> {
        checks.iter().try_for_each(|c| self.put_check(c))
    }
    /// Deletes a check with its series, alerts and pending notifications.
    fn delete_check(&self, id: &str) -> Result<bool, StoreError>;
    /// Every saved series state as `(check id, series, state)`.
    fn load_series(&self) -> Result<Vec<(String, String, SeriesState)>, StoreError>;
    /// Writes one engine step's changes. Returns the notifications created that are
    /// due now, already claimed: the caller delivers each, or hands it
    /// back with [`Store::release_notification`].
    fn commit(&self, changes: &Changes) -> Result<Vec<Notification>, StoreError>;
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
