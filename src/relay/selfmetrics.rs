//! carbon-c-relay style self-metrics, sent through the router like any
//! other metric every `[stats] interval_secs`:
//!
//! ```text
//! <prefix>.metricsReceived      accepted by a parser
//! <prefix>.metricsSent          written to destinations
//! <prefix>.metricsQueued        queued now, all destinations
//! <prefix>.metricsDropped       not delivered, all reasons
//! <prefix>.metricsDiscarded     rejected by a parser, all reasons
//! <prefix>.dropped.<reason>     per drop reason
//! <prefix>.rejected.<reason>    per parse-reject reason
//! <prefix>.connections / .disconnects
//! <prefix>.destinations.<host_port>.{sent,queued,dropped,requeued,failures}
//! <prefix>.destinations.<host_port>.spool.{bytes,segments,oldestAgeSeconds,spooled,replayed,replayRate}
//! ```
//!
//! Counters are cumulative, as carbon-c-relay sends them by default.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::codec::{Metric, ParseOptions, Reject};
use crate::relay::Relay;
use crate::relay::StatsConfig;
use crate::stats::DropReason;

/// The prefix with `{host}` filled in (dots in the host name become `_`).
pub fn prefix(cfg: &StatsConfig) -> String {
    let host = gethostname::gethostname()
        .to_string_lossy()
        .replace('.', "_");
    cfg.prefix.replace("{host}", &host)
}

/// Every self-metric as `(name, value)`.
pub fn snapshot(relay: &Relay, prefix: &str) -> Vec<(String, f64)> {
    let s = &relay.stats;
    let dests = relay.destinations();
    let sent: u64 = dests.iter().map(|d| d.stats.sent_lines.load(Relaxed)).sum();
    let queued: usize = dests.iter().map(|d| d.queue.lines()).sum();
    let mut out = vec![
        (
            format!("{prefix}.metricsReceived"),
            s.received.load(Relaxed) as f64,
        ),
        (format!("{prefix}.metricsSent"), sent as f64),
        (format!("{prefix}.metricsQueued"), queued as f64),
        (format!("{prefix}.metricsDropped"), s.dropped_total() as f64),
        (
            format!("{prefix}.metricsDiscarded"),
            s.rejected_total() as f64,
        ),
        (
            format!("{prefix}.connections"),
            s.connections.load(Relaxed) as f64,
        ),
        (
            format!("{prefix}.disconnects"),
            s.disconnects.load(Relaxed) as f64,
        ),
    ];
    out.extend(DropReason::ALL.iter().map(|d| {
        (
            format!("{prefix}.dropped.{}", d.as_str()),
            s.dropped(*d) as f64,
        )
    }));
    out.extend(Reject::ALL.iter().map(|r| {
        (
            format!("{prefix}.rejected.{}", r.as_str()),
            s.rejected(*r) as f64,
        )
    }));
    for d in &dests {
        let node = format!(
            "{prefix}.destinations.{}",
            d.spec.address().replace(['.', ':'], "_")
        );
        let st = &d.stats;
        let count = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed) as f64;
        let mut values = vec![
            ("sent", count(&st.sent_lines)),
            ("queued", d.queue.lines() as f64),
            ("dropped", count(&st.dropped_lines)),
            ("requeued", count(&st.requeued_lines)),
            ("failures", count(&st.failures)),
        ];
        if let Some(spool) = &d.spool {
            let sp = spool.lock().unwrap_or_else(|p| p.into_inner());
            values.extend([
                ("spool.bytes", sp.bytes() as f64),
                ("spool.segments", sp.segments() as f64),
                ("spool.oldestAgeSeconds", sp.oldest_age_secs()),
                ("spool.spooled", count(&st.spooled_lines)),
                ("spool.replayed", count(&st.replayed_lines)),
                ("spool.replayRate", st.replay_rate()),
            ]);
        }
        out.extend(values.into_iter().map(|(k, v)| (format!("{node}.{k}"), v)));
    }
    out
}

/// Sends the snapshot every interval until cancelled.
pub async fn run(relay: Arc<Relay>, cfg: StatsConfig, token: CancellationToken) {
    let prefix = prefix(&cfg);
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.interval_secs.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut dispatcher = relay.dispatcher();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = crate::unix_now();
        let opts = ParseOptions {
            normalize_tags: false,
            now,
        };
        for (name, value) in snapshot(&relay, &prefix) {
            if let Ok(m) = Metric::from_parts(name.into(), value, now as f64, &opts) {
                dispatcher.dispatch(&m);
            }
        }
        dispatcher.flush_nowait();
    }
}
