//! carbon-c-relay style self-metrics, sent through the router like any
//! other metric every `[stats] interval_secs`:
//!
//! ```text
//! <prefix>.metricsReceived      accepted by a parser
//! <prefix>.metricsSent          written to destinations
//! <prefix>.metricsQueued        queued now, all destinations
//! <prefix>.metricsDropped       not delivered, all reasons
//! <prefix>.metricsBlackholed    sent to a blackhole
//! <prefix>.metricStalls         readers paused by a full queue
//! <prefix>.metricsDiscarded     rejected by a parser, all reasons
//! <prefix>.dropped.<reason>     per drop reason
//! <prefix>.rejected.<reason>    per parse-reject reason
//! <prefix>.connections / .disconnects
//! <prefix>.destinations.<host_port>.{sent,queued,dropped,requeued,failures,stalls}
//! <prefix>.destinations.<host_port>.spool.{bytes,segments,oldestAgeSeconds,spooled,replayed,replayRate}
//! ```
//!
//! Counters are cumulative, as carbon-c-relay sends them by default.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::codec::{Metric, ParseOptions};
use crate::relay::Relay;
use crate::relay::StatsConfig;
use crate::stats::{Figure, Figures, Kind};

/// The prefix with the host name filled in: `{host}` with its dots as
/// `_`, `{fqdn}` as it is, `{short}` up to its first dot (carbon-c-relay's
/// `\.1`, `\1` and `\2`).
pub fn prefix(cfg: &StatsConfig) -> String {
    expand_prefix(&cfg.prefix, &gethostname::gethostname().to_string_lossy())
}

fn expand_prefix(prefix: &str, fqdn: &str) -> String {
    let short = fqdn.split('.').next().unwrap_or_default();
    prefix
        .replace("{host}", &fqdn.replace('.', "_"))
        .replace("{fqdn}", fqdn)
        .replace("{short}", short)
}

/// Every self-metric as `(name, value)`: the figures that have a carbon
/// name, the relay's under `prefix`, each destination's under
/// `prefix.destinations.<host_port>`.
pub fn snapshot(relay: &Relay, prefix: &str) -> Vec<(String, f64)> {
    snapshot_kinds(relay, prefix)
        .into_iter()
        .map(|(n, v, _)| (n, v))
        .collect()
}

/// [`snapshot`] with each figure's kind.
fn snapshot_kinds(relay: &Relay, prefix: &str) -> Vec<(String, f64, Kind)> {
    let mut out = Vec::new();
    let mut under = |node: &str, f: Figure<'_>| {
        if let Some(name) = f.carbon {
            let name = match f.label {
                Some((_, v)) => format!("{node}.{name}.{v}"),
                None => format!("{node}.{name}"),
            };
            out.push((name, f.value, f.kind));
        }
    };
    relay.figures(&mut |f| under(prefix, f));
    for d in relay.destinations() {
        let node = format!(
            "{prefix}.destinations.{}",
            d.spec.address().replace(['.', ':'], "_")
        );
        d.figures(&mut |f| under(&node, f));
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
    // With `reset_counters`: each counter's value at the last report.
    let mut last: HashMap<String, f64> = HashMap::new();
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
        for (name, value, kind) in snapshot_kinds(&relay, &prefix) {
            let value = match (cfg.reset_counters, kind) {
                (true, Kind::Counter) => {
                    let before = last.insert(name.clone(), value).unwrap_or(0.0);
                    (value - before).max(0.0)
                }
                _ => value,
            };
            if let Ok(m) = Metric::from_parts(name.into(), value, now as f64, &opts) {
                dispatcher.dispatch(&m);
            }
        }
        dispatcher.flush_nowait();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_name_the_host_three_ways() {
        let p = super::expand_prefix("a.{host}.{short}.{fqdn}", "web1.ams.example");
        assert_eq!(p, "a.web1_ams_example.web1.web1.ams.example");
    }
}
