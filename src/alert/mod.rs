//! Stage 5, **alert**: Seyren-style checks evaluated on the stream.
//!
//! * [`model`]: checks, subscriptions and alerts with Seyren's JSON shapes.
//! * [`eval`]: thresholds and the per-series state machine (pure).
//! * [`index`]: which live checks' globs match a metric name, without
//!   cost growing with the number of checks.
pub mod engine;
pub mod eval;
pub mod index;
pub mod model;
pub mod tap;
