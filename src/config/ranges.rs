//! The valid range of every limit, so that `check-config` refuses what
//! `run` would refuse or mishandle (a zero that rejects every line, a
//! value that wraps or aborts an allocation at start-up).

use super::{RawConfig, Validator};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const DAY_SECS: u64 = 86_400;
const HOUR_MS: u64 = 3_600_000;

impl Validator<'_> {
    fn range(&mut self, path: &str, value: impl Into<u64>, min: u64, max: u64) {
        let v = value.into();
        if v < min || v > max {
            self.issue_at(
                path,
                format!("{v} is out of range: it must be {min} to {max}"),
            );
        }
    }

    fn range_usize(&mut self, path: &str, value: usize, min: u64, max: u64) {
        self.range(path, value as u64, min, max);
    }

    /// Every numeric limit of the file, section by section.
    pub(super) fn limits(&mut self, raw: &RawConfig) {
        let l = &raw.listen;
        self.range_usize("listen.max_connections", l.max_connections, 1, 1_000_000);
        self.range_usize(
            "listen.max_connections_per_peer",
            l.max_connections_per_peer,
            1,
            1_000_000,
        );
        self.range(
            "listen.idle_timeout_secs",
            l.idle_timeout_secs,
            0,
            7 * DAY_SECS,
        );
        self.range(
            "listen.idle_timeout_under_pressure_secs",
            l.idle_timeout_under_pressure_secs,
            1,
            7 * DAY_SECS,
        );
        // A line needs a name, a value and a timestamp; past 16 MiB a
        // single client could pin that much per connection.
        self.range_usize("listen.max_line_bytes", l.max_line_bytes, 16, 16 * MIB);
        self.range_usize(
            "listen.max_pickle_frame_bytes",
            l.max_pickle_frame_bytes,
            16,
            64 * MIB,
        );
        self.range_usize(
            "listen.max_pickle_expansion",
            l.max_pickle_expansion,
            1,
            256,
        );
        // The largest UDP payload there is.
        self.range_usize(
            "listen.max_datagram_bytes",
            l.max_datagram_bytes,
            16,
            65_535,
        );

        let a = &raw.admin;
        self.range_usize("admin.max_connections", a.max_connections, 1, 100_000);
        self.range("admin.header_timeout_secs", a.header_timeout_secs, 1, 3_600);
        self.range("admin.idle_timeout_secs", a.idle_timeout_secs, 1, DAY_SECS);
        self.range_usize(
            "admin.max_body_bytes",
            a.max_body_bytes,
            KIB as usize as u64,
            64 * MIB,
        );

        let r = &raw.relay;
        self.range_usize("relay.queue_max_lines", r.queue_max_lines, 1, 1 << 32);
        self.range_usize(
            "relay.queue_max_bytes",
            r.queue_max_bytes,
            64 * KIB,
            64 * GIB,
        );
        self.range_usize("relay.max_write_bytes", r.max_write_bytes, 512, 64 * MIB);
        self.range_usize(
            "relay.route_cache_max_names",
            r.route_cache_max_names,
            0,
            1 << 24,
        );
        self.range_usize(
            "relay.aggregate_max_series",
            r.aggregate_max_series,
            1,
            1 << 28,
        );
        self.range_usize(
            "relay.aggregate_max_values_per_bucket",
            r.aggregate_max_values_per_bucket,
            1,
            1 << 24,
        );
        self.range_usize(
            "relay.connections_per_destination",
            r.connections_per_destination,
            1,
            64,
        );
        self.range(
            "relay.connect_timeout_secs",
            r.connect_timeout_secs,
            1,
            3_600,
        );
        self.range("relay.reconnect_min_ms", r.reconnect_min_ms, 1, HOUR_MS);
        self.range(
            "relay.reconnect_max_ms",
            r.reconnect_max_ms,
            r.reconnect_min_ms.max(1),
            HOUR_MS,
        );
        self.range(
            "relay.write_timeout_secs",
            r.write_timeout_secs,
            1,
            DAY_SECS,
        );
        self.range_usize("relay.pickle_max_points", r.pickle_max_points, 1, 100_000);
        self.range(
            "relay.shutdown_timeout_secs",
            r.shutdown_timeout_secs,
            0,
            DAY_SECS,
        );
        self.range(
            "relay.spool_segment_bytes",
            r.spool_segment_bytes,
            64 * KIB,
            4 * GIB,
        );
        self.range(
            "relay.spool_max_bytes_per_destination",
            r.spool_max_bytes_per_destination,
            r.spool_segment_bytes.max(64 * KIB),
            1 << 50,
        );
        self.range(
            "relay.spool_max_total_bytes",
            r.spool_max_total_bytes,
            r.spool_segment_bytes.max(64 * KIB),
            1 << 50,
        );
        self.range(
            "relay.spool_fsync_interval_ms",
            r.spool_fsync_interval_ms,
            1,
            HOUR_MS,
        );

        self.range("stats.interval_secs", raw.stats.interval_secs, 1, DAY_SECS);

        let al = &raw.alerting;
        self.range_usize(
            "alerting.queue_max_batches",
            al.queue_max_batches,
            1,
            1 << 20,
        );
        self.range_usize(
            "alerting.store_queue_max_batches",
            al.store_queue_max_batches,
            1,
            1 << 20,
        );
        self.range("alerting.tick_ms", al.tick_ms, 10, HOUR_MS);
        self.range_usize(
            "alerting.max_series_per_check",
            al.max_series_per_check,
            1,
            100_000_000,
        );
        self.range_usize("alerting.max_cached_names", al.max_cached_names, 1, 1 << 30);
        self.range("alerting.batch_max_wait_ms", al.batch_max_wait_ms, 0, 1_000);
        self.range(
            "alerting.max_lateness_secs",
            al.max_lateness_secs,
            0,
            7 * DAY_SECS,
        );
        self.range(
            "alerting.max_future_secs",
            al.max_future_secs,
            0,
            7 * DAY_SECS,
        );
        // Every held point delays its series' alerts by up to this much.
        self.range("alerting.max_disorder_secs", al.max_disorder_secs, 0, 3_600);

        let n = &raw.notify;
        self.range("notify.max_attempts", n.max_attempts, 1, 1_000);
        self.range("notify.retry_min_secs", n.retry_min_secs, 1, DAY_SECS);
        self.range(
            "notify.retry_max_secs",
            n.retry_max_secs,
            n.retry_min_secs.max(1),
            7 * DAY_SECS,
        );
        self.range("notify.timeout_secs", n.timeout_secs, 1, 3_600);
        self.range("notify.irccat_port", n.irccat_port, 1, 65_535);
        self.range("notify.snmp_port", n.snmp_port, 1, 65_535);
        if !matches!(n.pagerduty_events_api.as_str(), "v1" | "v2") {
            self.issue_at(
                "notify.pagerduty_events_api",
                format!("{:?} is neither \"v1\" nor \"v2\"", n.pagerduty_events_api),
            );
        }
        if crate::notify::snmp::parse_oid(&n.snmp_oid).is_err() {
            self.issue_at(
                "notify.snmp_oid",
                format!(
                    "{:?} is not a dotted OID such as 1.3.6.1.4.1.32473.1",
                    n.snmp_oid
                ),
            );
        }
        self.range_usize("notify.concurrency", n.concurrency, 1, 10_000);
        self.range_usize(
            "notify.per_destination_concurrency",
            n.per_destination_concurrency,
            1,
            n.concurrency.max(1) as u64,
        );
        self.range_usize(
            "notify.per_destination_queue",
            n.per_destination_queue,
            1,
            1 << 20,
        );
        self.range("notify.test_timeout_secs", n.test_timeout_secs, 1, 600);
        self.range("notify.poll_interval_ms", n.poll_interval_ms, 10, HOUR_MS);
        for (key, nets) in [
            ("notify.test_deny_networks", &n.test_deny_networks),
            ("notify.test_allow_networks", &n.test_allow_networks),
        ] {
            for net in nets {
                if net.parse::<ipnet::IpNet>().is_err() {
                    self.issue_at(key, format!("{net:?} is not a network like \"10.0.0.0/8\""));
                }
            }
        }

        let g = &raw.graphite;
        self.range("graphite.refresh_secs", g.refresh_secs, 1, DAY_SECS);
        self.range("graphite.timeout_secs", g.timeout_secs, 1, 3_600);
        self.range_usize(
            "graphite.max_concurrent_requests",
            g.max_concurrent_requests,
            1,
            10_000,
        );
    }
}
