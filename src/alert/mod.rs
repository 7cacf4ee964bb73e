//! Stage 5, **alert**: Seyren-style checks evaluated on the stream.
//!
//! * [`eval`]: thresholds and the per-series state machine (pure).
//! * [`engine`]: the task that owns every check's series and applies
//!   streamed points, ticks and polled results to them.
//! * [`handle`]: how the API, the poller and `app` talk to the engine.
//! * [`validate`]: what a check must be before the engine takes it.
//!
//! The engine's ports are the vocabulary's [`Store`](crate::check::Store)
//! trait and a bounded queue of [`Changes`](crate::check::Changes); it
//! names no backend and no notifier. Points reach it through the relay's
//! [`tap`](crate::relay::tap); which checks a name matches is the
//! [`PatternIndex`](crate::route::index::PatternIndex).

mod config;
pub mod engine;
pub mod eval;
pub mod handle;
mod validate;

pub use config::AlertingConfig;
pub use engine::{start, Clock};
pub use handle::{AlertHandle, CheckError, EngineStats, PollFailure, Recent};
pub use validate::{config_check_id, problem, validate};
