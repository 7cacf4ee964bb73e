//! Stage 1, **listen**: the carbon ports.
//!
//! Every listener has the same shape: `bind(addr)`, `local_addr()`, and
//! `run(ctx, token)`, which serves until the token is cancelled and then
//! lets each connection flush what it read. TCP listeners share one
//! connection loop and differ only in their [`tcp::Decoder`]: plaintext
//! lines or pickle frames. A rejected line is counted by reason and a
//! rate-limited sample logged; the connection and the other lines in the
//! same read carry on.

mod config;
pub mod pickle;
pub mod plaintext;
pub mod tcp;
pub mod udp;
pub mod unix;

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::codec::{parse_line, Metric, ParseOptions, Reject};
use crate::relay::{Dispatcher, Relay};
pub use config::ListenConfig;

pub use pickle::PickleTcpListener;
pub use plaintext::PlaintextTcpListener;
pub use udp::PlaintextUdpListener;
pub use unix::PlaintextUnixListener;

/// What every listener needs.
#[derive(Debug, Clone)]
pub struct ListenCtx {
    /// Where metrics go.
    pub relay: Arc<Relay>,
    /// `[listen]` limits.
    pub limits: ListenConfig,
    /// Permits for `max_connections`, shared by the TCP listeners.
    pub connections: Arc<Semaphore>,
    /// Connection tasks, so shutdown can wait for their final flush.
    pub tasks: TaskTracker,
    /// Rate limit for logging samples of rejected input.
    pub sampler: Arc<RejectSampler>,
    /// Open connections per client address, for `max_connections_per_peer`.
    pub peers: Arc<DashMap<std::net::IpAddr, usize>>,
}

impl ListenCtx {
    /// A context for `relay` with `limits`.
    pub fn new(relay: Arc<Relay>, limits: ListenConfig) -> Self {
        ListenCtx {
            relay,
            connections: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            tasks: TaskTracker::new(),
            sampler: Arc::new(RejectSampler::default()),
            peers: Arc::default(),
        }
    }

    /// Whether more than three quarters of `max_connections` are open.
    pub fn under_pressure(&self) -> bool {
        let max = self.limits.max_connections.max(1);
        let open = max.saturating_sub(self.connections.available_permits());
        open * 4 > max * 3
    }

    /// How long a connection may wait for its next byte right now.
    pub fn idle_timeout(&self) -> std::time::Duration {
        use std::time::Duration;
        let normal = match self.limits.idle_timeout_secs {
            0 => Duration::MAX,
            s => Duration::from_secs(s),
        };
        if self.under_pressure() {
            normal.min(self.pressure_timeout())
        } else {
            normal
        }
    }

    /// `idle_timeout_under_pressure_secs`: also how often a waiting
    /// connection looks again whether pressure began.
    pub fn pressure_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.limits.idle_timeout_under_pressure_secs.max(1))
    }

    /// Takes a slot for a connection from `ip`, unless that address holds
    /// `max_connections_per_peer` already; the slot is given back when
    /// the returned guard drops.
    pub fn admit_peer(&self, ip: std::net::IpAddr) -> Option<PeerSlot> {
        let mut n = self.peers.entry(ip).or_insert(0);
        if *n >= self.limits.max_connections_per_peer.max(1) {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.peers.clone(),
            ip,
        })
    }
}

/// One connection's share of its client address's cap.
#[derive(Debug)]
pub struct PeerSlot {
    peers: Arc<DashMap<std::net::IpAddr, usize>>,
    ip: std::net::IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        // Entries at zero are removed, so the map holds only open peers.
        self.peers.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

/// The per-line step shared by the plaintext listeners: enforce
/// `max_line_bytes`, parse, and either count and dispatch the metric or
/// count and sample the rejection. Returns true when the dispatcher asks
/// for a flush.
pub(crate) fn take_line(
    line: &[u8],
    max_line_bytes: usize,
    opts: &ParseOptions,
    out: &mut Dispatcher,
    peer: &str,
    sampler: &RejectSampler,
) -> bool {
    match parse_counted(line, max_line_bytes, opts, out, peer, sampler) {
        Some(m) => out.dispatch(&m),
        None => false,
    }
}

/// Enforces `max_line_bytes` and parses: a metric is counted as received,
/// a rejection is counted and sampled.
#[inline]
pub(crate) fn parse_counted<'a>(
    line: &'a [u8],
    max_line_bytes: usize,
    opts: &ParseOptions,
    out: &mut Dispatcher,
    peer: &str,
    sampler: &RejectSampler,
) -> Option<Metric<'a>> {
    let parsed = if line.len() > max_line_bytes {
        Err(Reject::TooLong)
    } else {
        parse_line(line, opts)
    };
    match parsed {
        Ok(m) => {
            out.counts.received += 1;
            Some(m)
        }
        Err(r) => {
            out.counts.rejected[r.index()] += 1;
            sampler.sample(peer, r, line);
            None
        }
    }
}

/// Logs at most one rejected input per second, process-wide; the counters
/// carry the totals.
#[derive(Debug, Default)]
pub struct RejectSampler {
    last_second: AtomicI64,
}

impl RejectSampler {
    /// Logs `input` if no sample was logged this second.
    pub fn sample(&self, peer: &str, reason: Reject, input: &[u8]) {
        let now = crate::unix_now();
        if self.last_second.swap(now, Relaxed) == now {
            return;
        }
        let shown = String::from_utf8_lossy(&input[..input.len().min(200)]).into_owned();
        tracing::warn!(peer, reason = reason.as_str(), input = ?shown, "Rejected input (sampled; see carbonwatch_rejected_total).");
    }
}
