//! The ground floor of alerting: the words every alerting stage speaks.
//!
//! Checks, subscriptions and alerts with Seyren's JSON shapes ([`model`]),
//! a series' state ([`series`]), notifications ([`notification`]), what one
//! engine step changed ([`changes`]), when a subscription wants to hear
//! ([`schedule`]) and the storage port ([`store`]). Nothing here imports a
//! stage: `alert`, `poll`, `notify`, `store` and `api` all build on it.

pub mod changes;
pub mod model;
pub mod notification;
pub mod schedule;
pub mod series;
pub mod store;

pub use changes::Changes;
pub use model::{new_id, Alert, AlertType, Check, Degraded, Subscription, SubscriptionType};
pub use notification::{
    NewNotification, Notification, NotificationKind, NotificationSink, NotificationStatus,
};
pub use series::{Pending, Sample, SeriesState, NEVER};
pub use store::{Store, StoreError};
