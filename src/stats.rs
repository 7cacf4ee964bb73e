//! Counters shared by every stage. Hot paths count into local integers and
//! add them here once per read, so a counter costs one atomic add per batch,
//! not per line. [`crate::api`] renders these for Prometheus and
//! [`crate::relay::selfmetrics`] sends them into the stream, so both views
//! read the same numbers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::codec::Reject;

/// Why a parsed metric was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// No rule sent it anywhere.
    Unroutable,
    /// A blackhole cluster took it, on purpose.
    Blackholed,
    /// A UDP datagram found its destination queue full.
    QueueFullUdp,
    /// `when_full = "drop_oldest"` evicted it from a full queue.
    DropOldest,
    /// Still queued when the shutdown grace period ran out.
    ShutdownUndelivered,
    /// A UDP datagram longer than `max_datagram_bytes`.
    DatagramTooLong,
}

impl DropReason {
    /// Every reason, for exporting.
    pub const ALL: [DropReason; 6] = [
        DropReason::Unroutable,
        DropReason::Blackholed,
        DropReason::QueueFullUdp,
        DropReason::DropOldest,
        DropReason::ShutdownUndelivered,
        DropReason::DatagramTooLong,
    ];

    /// Stable snake_case label.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Unroutable => "unroutable",
            DropReason::Blackholed => "blackholed",
            DropReason::QueueFullUdp => "queue_full_udp",
            DropReason::DropOldest => "drop_oldest",
            DropReason::ShutdownUndelivered => "shutdown_undelivered",
            DropReason::DatagramTooLong => "datagram_too_long",
        }
    }
}

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Metrics accepted by a parser (carbonwatch's own self-metrics are
    /// not included).
    pub received: AtomicU64,
    /// Input rejected by a parser, by [`Reject`] reason.
    pub rejected: [AtomicU64; Reject::ALL.len()],
    /// Metrics not delivered, by [`DropReason`].
    pub dropped: [AtomicU64; DropReason::ALL.len()],
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// TCP connections closed.
    pub disconnects: AtomicU64,
    /// TCP connections refused because `max_connections` was reached.
    pub connections_refused: AtomicU64,
    /// Connections refused because their client address already held
    /// `max_connections_per_peer` (also counted in `connections_refused`).
    pub connections_refused_per_peer: AtomicU64,
    /// Connections closed by the shortened idle timeout while the carbon
    /// ports were near `max_connections`.
    pub idle_closed_under_pressure: AtomicU64,
}

impl Stats {
    /// Adds to a reject counter.
    pub fn add_reject(&self, r: Reject, n: u64) {
        self.rejected[r.index()].fetch_add(n, Relaxed);
    }

    /// Adds to a drop counter.
    pub fn add_drop(&self, d: DropReason, n: u64) {
        self.dropped[d as usize].fetch_add(n, Relaxed);
    }

    /// Reads a drop counter.
    pub fn dropped(&self, d: DropReason) -> u64 {
        self.dropped[d as usize].load(Relaxed)
    }

    /// Reads a reject counter.
    pub fn rejected(&self, r: Reject) -> u64 {
        self.rejected[r.index()].load(Relaxed)
    }

    /// Sum of every reject counter.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Sum of every drop counter.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// Per-line counts kept by one connection between flushes.
#[derive(Debug, Default)]
pub struct LocalCounts {
    /// Accepted metrics.
    pub received: u64,
    /// Rejections by reason.
    pub rejected: [u64; Reject::ALL.len()],
    /// Drops by reason.
    pub dropped: [u64; DropReason::ALL.len()],
}

impl LocalCounts {
    /// Adds everything to `stats` and resets.
    pub fn flush_into(&mut self, stats: &Stats) {
        if self.received > 0 {
            stats.received.fetch_add(self.received, Relaxed);
        }
        for (i, n) in self.rejected.iter().enumerate().filter(|(_, n)| **n > 0) {
            stats.rejected[i].fetch_add(*n, Relaxed);
        }
        for (i, n) in self.dropped.iter().enumerate().filter(|(_, n)| **n > 0) {
            stats.dropped[i].fetch_add(*n, Relaxed);
        }
        *self = LocalCounts::default();
    }
}
