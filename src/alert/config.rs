//! `[alerting]`: the engine's queues, tick and memory bounds.

use serde::Deserialize;

/// `[alerting]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AlertingConfig {
    /// SQLite file for checks, states, history and the outbox; `""`
    /// disables alerting.
    pub store: String,
    /// Batches of matched points queued for the engine; beyond it points
    /// are dropped and counted, so alerting can never stall forwarding.
    pub queue_max_batches: usize,
    /// Engine batches queued for the store writer.
    pub store_queue_max_batches: usize,
    /// How often time-based rules are advanced.
    pub tick_ms: u64,
    /// Series tracked per check; protects memory from a glob that matches
    /// an exploding set of names. Further series are counted and ignored.
    pub max_series_per_check: usize,
    /// Names each connection remembers the match answer for.
    pub max_cached_names: usize,
    /// How long the matching points of a connection whose reads are
    /// always ready (its client sends faster than the relay reads) may wait
    /// to be handed to the engine in one batch. Each hand-over may wake
    /// the engine's thread, which under such a load cost more throughput
    /// than everything else alerting does. A connection whose reads catch
    /// up hands its points over at once, so this never delays an alert
    /// from a relay that keeps up.
    pub batch_max_wait_ms: u64,
    /// How far behind its series' newest point, beyond the check's
    /// window, a late point still counts. Bounds what a late point can
    /// revise; older points change nothing and are counted.
    pub max_lateness_secs: u64,
    /// How far ahead of the clock a timestamp may be and still be
    /// evaluated: protects every series from one client with a wrong
    /// clock, whose point would make all honest points late. Such points
    /// are still forwarded, and counted.
    pub max_future_secs: u64,
    /// How out of order a series' points may arrive and still be
    /// evaluated in timestamp order: each series holds its points until
    /// they are this far behind its newest, or have waited this long on
    /// the clock. 0 evaluates every point at once.
    pub max_disorder_secs: u64,
}

impl AlertingConfig {
    /// The rules for late and disordered points.
    pub fn event_time(&self) -> crate::alert::eval::EventTime {
        crate::alert::eval::EventTime {
            max_lateness_ms: (self.max_lateness_secs as i64).saturating_mul(1000),
            max_disorder_ms: (self.max_disorder_secs as i64).saturating_mul(1000),
        }
    }
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            store: "carbonwatch.db".into(),
            queue_max_batches: 4096,
            store_queue_max_batches: 1024,
            tick_ms: 1000,
            max_series_per_check: 100_000,
            max_cached_names: 500_000,
            batch_max_wait_ms: 4,
            max_lateness_secs: 300,
            max_future_secs: 600,
            max_disorder_secs: 0,
        }
    }
}
