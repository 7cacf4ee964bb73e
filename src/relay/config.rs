//! `[relay]` and `[stats]`: destination queues, connections and spools,
//! and the self-metrics.

use serde::Deserialize;

/// What a destination queue does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Stop reading from TCP clients until there is room (UDP datagrams
    /// that find no room are dropped and counted).
    #[default]
    Block,
    /// Make room by discarding the oldest queued lines, counted.
    DropOldest,
}

/// `[relay]`: destination queues and connections, for every destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RelayConfig {
    /// Queue bound per destination in lines: the backpressure point.
    pub queue_max_lines: usize,
    /// Queue bound per destination in bytes; with `queue_max_lines`, caps
    /// resident memory at about destinations × this.
    pub queue_max_bytes: usize,
    /// Policy when a destination queue is full.
    pub when_full: WhenFull,
    /// Largest write to a destination; bounds one syscall's buffer.
    pub max_write_bytes: usize,
    /// TCP connections per destination, each with its own writer, for
    /// destinations that one connection cannot saturate.
    pub connections_per_destination: usize,
    /// Give up a connect attempt after this long.
    pub connect_timeout_secs: u64,
    /// First reconnect delay; doubles per failure.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, so a long outage is retried at this pace.
    pub reconnect_max_ms: u64,
    /// A write that makes no progress this long marks the connection dead,
    /// so a stalled backend is noticed.
    pub write_timeout_secs: u64,
    /// Points per pickle frame towards pickle destinations (carbon: 500).
    pub pickle_max_points: usize,
    /// On SIGTERM, how long to keep delivering queued data before giving
    /// up; what is left goes to the spool, or is reported as undelivered.
    pub shutdown_timeout_secs: u64,
    /// Directory of the per-destination disk spools; `""` turns spooling
    /// off. What a shutdown could not deliver is written here and
    /// delivered by the next start.
    pub spool_dir: String,
    /// Disk a destination's spool may use; protects the disk.
    pub spool_max_bytes_per_destination: u64,
    /// Disk all spools together may use; each counts against it.
    pub spool_max_total_bytes: u64,
    /// What a full spool does: `block` (the reader waits) or `drop_oldest`
    /// (its oldest segment is deleted, and its lines counted as dropped).
    pub spool_when_full: WhenFull,
    /// Spool segment size: replayed data is freed a segment at a time.
    pub spool_segment_bytes: u64,
    /// How often spooled data is fsynced: what a power cut may lose.
    pub spool_fsync_interval_ms: u64,
    /// Names whose route each client connection remembers, so a hash ring
    /// places a repeating name once rather than on every point (16 bytes
    /// a name; bounds that memory per connection). 0 turns it off.
    pub route_cache_max_names: usize,
    /// Cleanse names as carbon-c-relay does before routing them (odd
    /// bytes to `_`, runs of dots to one, outer dots dropped; tags kept).
    /// On for carbon-c-relay config files, so the output matches c-relay's.
    pub cleanse_names: bool,
    /// Aggregate series (one output name of one `compute`) held at once,
    /// over all aggregation rules: bounds the aggregators' memory (a few
    /// hundred bytes a series). A point that would start one more is
    /// counted (`aggregator_dropped_total{reason="series_limit"}`).
    pub aggregate_max_series: usize,
    /// Values one bucket keeps for `median`, `percentileNN`, `variance`
    /// and `stddev` (8 bytes each); past it a point still counts in the
    /// sums, and is counted as `values_limit`.
    pub aggregate_max_values_per_bucket: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            queue_max_lines: 1_000_000,
            queue_max_bytes: 64 << 20,
            when_full: WhenFull::Block,
            max_write_bytes: 256 << 10,
            connections_per_destination: 1,
            connect_timeout_secs: 5,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5_000,
            write_timeout_secs: 30,
            pickle_max_points: 500,
            shutdown_timeout_secs: 30,
            spool_dir: String::new(),
            spool_max_bytes_per_destination: 1 << 30,
            spool_when_full: WhenFull::Block,
            spool_max_total_bytes: 4 << 30,
            spool_segment_bytes: 64 << 20,
            spool_fsync_interval_ms: 1000,
            route_cache_max_names: 262_144,
            cleanse_names: false,
            aggregate_max_series: 1_000_000,
            aggregate_max_values_per_bucket: 100_000,
        }
    }
}

/// `[stats]`: carbon-style self-metrics sent into the stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StatsConfig {
    /// Whether self-metrics are sent at all.
    pub enabled: bool,
    /// Seconds between reports.
    pub interval_secs: u64,
    /// Name prefix; `{host}` becomes the host name with `.` as `_`,
    /// `{fqdn}` the host name as it is, `{short}` its first label.
    pub prefix: String,
    /// Send each counter as its increase over the interval instead of its
    /// total (carbon-c-relay's `reset counters after interval`).
    pub reset_counters: bool,
    /// Clusters the self-metrics go to directly, skipping every rule
    /// (carbon-c-relay's `statistics send to`); empty: through the rules.
    pub send_to: Vec<String>,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            enabled: true,
            interval_secs: 60,
            prefix: "carbon.relays.{host}".into(),
            reset_counters: false,
            send_to: Vec::new(),
        }
    }
}
