//! `/metrics`: every counter in Prometheus text.

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::api::ApiContext;
use crate::codec::Reject;
use crate::stats::DropReason;

/// Copies the relay's counters into a private `metrics` recorder and
/// renders it, so Prometheus and the carbon self-metrics read one source.
pub async fn metrics(State(s): State<ApiContext>) -> impl IntoResponse {
    metrics::with_local_recorder(&*s.recorder, || {
        let st = &s.relay.stats;
        metrics::counter!("carbonwatch_metrics_received_total").absolute(st.received.load(Relaxed));
        let admin = &s.admin_stats;
        metrics::counter!("carbonwatch_admin_connections_refused_total")
            .absolute(admin.refused.load(Relaxed));
        metrics::counter!("carbonwatch_admin_connections_timed_out_total")
            .absolute(admin.timed_out.load(Relaxed));
        for r in Reject::ALL {
            metrics::counter!("carbonwatch_rejected_total", "reason" => r.as_str())
                .absolute(st.rejected(r));
        }
        for d in DropReason::ALL {
            metrics::counter!("carbonwatch_dropped_total", "reason" => d.as_str())
                .absolute(st.dropped(d));
        }
        metrics::counter!("carbonwatch_connections_total").absolute(st.connections.load(Relaxed));
        metrics::counter!("carbonwatch_disconnects_total").absolute(st.disconnects.load(Relaxed));
        metrics::counter!("carbonwatch_connections_refused_total")
            .absolute(st.connections_refused.load(Relaxed));
        metrics::counter!("carbonwatch_connections_refused_per_peer_total")
            .absolute(st.connections_refused_per_peer.load(Relaxed));
        metrics::counter!("carbonwatch_connections_idle_closed_under_pressure_total")
            .absolute(st.idle_closed_under_pressure.load(Relaxed));
        for d in s.relay.destinations() {
            let dest = d.spec.address();
            let ds = &d.stats;
            metrics::counter!("carbonwatch_destination_sent_total", "destination" => dest.clone())
                .absolute(ds.sent_lines.load(Relaxed));
            metrics::counter!("carbonwatch_destination_requeued_total", "destination" => dest.clone()).absolute(ds.requeued_lines.load(Relaxed));
            metrics::counter!("carbonwatch_destination_dropped_total", "destination" => dest.clone()).absolute(ds.dropped_lines.load(Relaxed));
            metrics::counter!("carbonwatch_destination_failures_total", "destination" => dest.clone()).absolute(ds.failures.load(Relaxed));
            metrics::gauge!("carbonwatch_destination_queued_lines", "destination" => dest.clone())
                .set(d.queue.lines() as f64);
            metrics::gauge!("carbonwatch_destination_queued_bytes", "destination" => dest.clone())
                .set(d.queue.bytes() as f64);
            metrics::counter!("carbonwatch_destination_spooled_total", "destination" => dest.clone())
                .absolute(ds.spooled_lines.load(Relaxed));
            metrics::counter!("carbonwatch_destination_replayed_total", "destination" => dest.clone())
                .absolute(ds.replayed_lines.load(Relaxed));
            if let Some(spool) = &d.spool {
                let sp = spool.lock().unwrap_or_else(|p| p.into_inner());
                metrics::gauge!("carbonwatch_destination_spool_bytes", "destination" => dest.clone())
                    .set(sp.bytes() as f64);
                metrics::gauge!("carbonwatch_destination_spool_segments", "destination" => dest.clone())
                    .set(sp.segments() as f64);
                metrics::counter!("carbonwatch_destination_spool_corrupt_regions_total", "destination" => dest.clone())
                    .absolute(sp.damage.corrupt_regions);
                metrics::counter!("carbonwatch_destination_spool_quarantined_total", "destination" => dest.clone())
                    .absolute(sp.damage.quarantined);
                metrics::counter!("carbonwatch_destination_spool_errors_total", "destination" => dest.clone())
                    .absolute(ds.spool_errors.load(Relaxed));
                let age = sp.oldest_age_secs();
                metrics::gauge!("carbonwatch_destination_spool_oldest_age_seconds", "destination" => dest.clone())
                    .set(age);
                metrics::gauge!("carbonwatch_destination_spool_replay_lines_per_second", "destination" => dest.clone())
                    .set(ds.replay_rate());
            }
            metrics::gauge!("carbonwatch_destination_up", "destination" => dest)
                .set(if d.is_healthy() { 1.0 } else { 0.0 });
        }
        if let Some(a) = &s.alerts {
            let (t, e, o) = (&a.engine.tap, &a.engine.stats, &a.outbox);
            metrics::counter!("carbonwatch_alert_points_total")
                .absolute(t.points_sent.load(Relaxed));
            metrics::counter!("carbonwatch_alert_points_dropped_total")
                .absolute(t.points_dropped.load(Relaxed));
            metrics::counter!("carbonwatch_alert_evaluations_total")
                .absolute(e.evaluations.load(Relaxed));
            metrics::counter!("carbonwatch_alert_transitions_total")
                .absolute(e.transitions.load(Relaxed));
            metrics::gauge!("carbonwatch_alert_series").set(e.series.load(Relaxed) as f64);
            metrics::counter!("carbonwatch_alert_series_refused_total")
                .absolute(e.series_refused.load(Relaxed));
            metrics::counter!("carbonwatch_alert_store_errors_total")
                .absolute(a.writer.commit_errors.load(Relaxed));
            for (outcome, n) in [
                ("delivered", &o.delivered),
                ("retried", &o.retried),
                ("failed", &o.failed),
                ("superseded", &o.superseded),
            ] {
                metrics::counter!("carbonwatch_notifications_total", "outcome" => outcome)
                    .absolute(n.load(Relaxed));
            }
            metrics::counter!("carbonwatch_notifications_deferred_busy_total")
                .absolute(o.deferred_busy.load(Relaxed));
        }
        if let Some(p) = &s.poll {
            metrics::counter!("carbonwatch_poll_runs_total").absolute(p.runs.load(Relaxed));
            metrics::counter!("carbonwatch_poll_errors_total").absolute(p.errors.load(Relaxed));
            metrics::counter!("carbonwatch_poll_skipped_total").absolute(p.skipped.load(Relaxed));
            metrics::counter!("carbonwatch_poll_seeded_total").absolute(p.seeded.load(Relaxed));
            metrics::gauge!("carbonwatch_poll_checks").set(p.scheduled.load(Relaxed) as f64);
            metrics::gauge!("carbonwatch_poll_start_lateness_max_ms")
                .set(p.lateness_max_ms.load(Relaxed) as f64);
            let bounds = crate::poll::LATENESS_BUCKETS_MS.map(|b| b.to_string());
            for (i, n) in p.lateness.iter().enumerate() {
                let le = bounds.get(i).cloned().unwrap_or_else(|| "+Inf".into());
                metrics::counter!("carbonwatch_poll_start_lateness_ms", "below" => le)
                    .absolute(n.load(Relaxed));
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.handle.render(),
    )
}
