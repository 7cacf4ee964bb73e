//! Notifications: what the engine asks to be sent, and what became of it.

use serde::{Deserialize, Serialize};

use crate::check::model::{Alert, Check, Subscription};

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

/// Where committed notifications go to be delivered: the outbox.
pub trait NotificationSink: Send + Sync + 'static {
    /// Offers a claimed notification for delivery now. False when the
    /// sink is full: the caller releases it to pending in the store, where
    /// the outbox's poll finds it later.
    fn offer(&self, n: Notification) -> bool;
}
