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
pub mod writer;

pub use crate::check::store::{Store, StoreError};
pub use sqlite::SqliteStore;
