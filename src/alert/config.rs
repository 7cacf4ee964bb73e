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
        }
    }
}
