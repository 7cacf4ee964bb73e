//! Counters shared by every stage. Hot paths count into local integers and
//! add them here once per read, so a counter costs one atomic add per batch,
//! not per line.
//!
//! Every counter struct lists itself once, as [`Figure`]s (the
//! [`Figures`] trait): each figure carries its Prometheus name and, where
//! carbon-c-relay has one, its carbon self-metric name. The admin port's
//! `/metrics` and the self-metrics sent into the stream both render those
//! lists, so the two views read the same numbers under names written in
//! one place.

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
    /// A rule's `validate` expression refused its value and timestamp.
    FailedValidation,
}

impl DropReason {
    /// Every reason, for exporting.
    pub const ALL: [DropReason; 7] = [
        DropReason::Unroutable,
        DropReason::Blackholed,
        DropReason::QueueFullUdp,
        DropReason::DropOldest,
        DropReason::ShutdownUndelivered,
        DropReason::DatagramTooLong,
        DropReason::FailedValidation,
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
            DropReason::FailedValidation => "failed_validation",
        }
    }
}

/// Whether a figure only grows or is a level now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (Prometheus `counter`).
    Counter,
    /// A level now (Prometheus `gauge`).
    Gauge,
}

/// One exported figure, named once for both views: Prometheus
/// (`carbonwatch_<prometheus>`) and the carbon self-metrics
/// (`<prefix>.<carbon>`).
#[derive(Debug, Clone, Copy)]
pub struct Figure<'a> {
    /// The name after `carbonwatch_`, if Prometheus has it.
    pub prometheus: Option<&'static str>,
    /// The path after the self-metrics prefix, if carbon has it.
    pub carbon: Option<&'static str>,
    /// A label in Prometheus; in carbon, one more path node of its value.
    pub label: Option<(&'static str, &'a str)>,
    /// Counter or gauge.
    pub kind: Kind,
    /// The value now.
    pub value: f64,
}

impl<'a> Figure<'a> {
    /// A counter at `/metrics` only.
    pub fn counter(prometheus: &'static str, value: u64) -> Self {
        Figure {
            prometheus: Some(prometheus),
            carbon: None,
            label: None,
            kind: Kind::Counter,
            value: value as f64,
        }
    }

    /// A gauge at `/metrics` only.
    pub fn gauge(prometheus: &'static str, value: f64) -> Self {
        Figure {
            kind: Kind::Gauge,
            value,
            ..Figure::counter(prometheus, 0)
        }
    }

    /// A figure only the carbon self-metrics have (carbon-c-relay's sums).
    pub fn carbon_only(carbon: &'static str, kind: Kind, value: f64) -> Self {
        Figure {
            prometheus: None,
            carbon: Some(carbon),
            label: None,
            kind,
            value,
        }
    }

    /// Also sent as a carbon self-metric, named `carbon`.
    pub fn carbon(self, carbon: &'static str) -> Self {
        Figure {
            carbon: Some(carbon),
            ..self
        }
    }

    /// With a label.
    pub fn label(self, key: &'static str, value: &'a str) -> Self {
        Figure {
            label: Some((key, value)),
            ..self
        }
    }
}

/// Counters that can list their figures.
pub trait Figures {
    /// Calls `out` once per figure.
    fn figures(&self, out: &mut dyn FnMut(Figure<'_>));
}

impl Figures for Stats {
    fn figures(&self, out: &mut dyn FnMut(Figure<'_>)) {
        let n = |c: &AtomicU64| c.load(Relaxed);
        out(Figure::counter("metrics_received_total", n(&self.received)).carbon("metricsReceived"));
        out(Figure::carbon_only(
            "metricsDropped",
            Kind::Counter,
            self.dropped_total() as f64,
        ));
        out(Figure::carbon_only(
            "metricsBlackholed",
            Kind::Counter,
            self.dropped(DropReason::Blackholed) as f64,
        ));
        out(Figure::carbon_only(
            "metricsDiscarded",
            Kind::Counter,
            self.rejected_total() as f64,
        ));
        out(Figure::counter("connections_total", n(&self.connections)).carbon("connections"));
        out(Figure::counter("disconnects_total", n(&self.disconnects)).carbon("disconnects"));
        out(Figure::counter(
            "connections_refused_total",
            n(&self.connections_refused),
        ));
        out(Figure::counter(
            "connections_refused_per_peer_total",
            n(&self.connections_refused_per_peer),
        ));
        out(Figure::counter(
            "connections_idle_closed_under_pressure_total",
            n(&self.idle_closed_under_pressure),
        ));
        for d in DropReason::ALL {
            out(Figure::counter("dropped_total", self.dropped(d))
                .carbon("dropped")
                .label("reason", d.as_str()));
        }
        for r in Reject::ALL {
            out(Figure::counter("rejected_total", self.rejected(r))
                .carbon("rejected")
                .label("reason", r.as_str()));
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
    /// Metrics parsed and accepted since the last flush.
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
