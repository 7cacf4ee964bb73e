//! carbonwatch: a Graphite-protocol streaming proxy with inline alerting.
//!
//! # Crate map, in the order data flows
//!
//! | stage | module | what it does |
//! |---|---|---|
//! | 1 | [`listen`] | carbon plaintext (TCP, UDP) and pickle ports; limits; backpressure |
//! | 2 | [`codec`] | lines and pickle frames to [`codec::Metric`], with carbon's rules |
//! | 3 | [`route`] | rules, clusters, bit-exact carbon and carbon-c-relay hashing |
//! | 4 | [`relay`] | per-destination bounded queues, disk spools, writers, self-metrics |
//! | 5 | [`alert`] | Seyren checks evaluated on the stream: index, state machine, engine |
//! | 6 | [`poll`] | checks on any Graphite expression, from the render API; live-check seeding |
//! | 7 | [`notify`] | HTTP, Slack, PagerDuty, Alertmanager, email; the outbox worker |
//! | 8 | [`store`] | checks, series states, alert history, outbox (SQLite) |
//! | 9 | [`api`] | the admin HTTP port: Seyren's REST API, the web UI, `/metrics` |
//!
//! Around them: [`config`] (the TOML file), [`stats`] (shared counters),
//! [`app`] (wiring, reload, shutdown) and [`bench`] (the load generators).
#![deny(missing_docs)]

pub mod alert;
pub mod api;
pub mod app;
pub mod check;
pub mod codec;
pub mod config;
pub mod listen;
pub mod notify;
pub mod poll;
pub mod relay;
pub mod route;
pub mod stats;
pub mod store;

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
