//! `/metrics`: every counter in Prometheus text.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::api::ApiContext;
use crate::stats::{Figure, Figures, Kind};

/// Copies every stage's figures into a private `metrics` recorder and
/// renders it; the carbon self-metrics read the same figures.
pub async fn metrics(State(s): State<ApiContext>) -> impl IntoResponse {
    metrics::with_local_recorder(&*s.recorder, || {
        let mut plain = |f: Figure<'_>| record(f, None);
        s.relay.figures(&mut plain);
        s.admin_stats.figures(&mut plain);
        if let Some(a) = &s.alerts {
            a.engine.tap.figures(&mut plain);
            a.engine.stats.figures(&mut plain);
            a.writer.figures(&mut plain);
            a.outbox.figures(&mut plain);
        }
        if let Some(p) = &s.poll {
            p.figures(&mut plain);
        }
        for d in s.relay.destinations() {
            let dest = d.spec.address();
            d.figures(&mut |f| record(f, Some(&dest)));
        }
    });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.handle.render(),
    )
}

/// Sets one figure in the current recorder.
fn record(f: Figure<'_>, destination: Option<&str>) {
    let Some(name) = f.prometheus else {
        return;
    };
    let name = format!("carbonwatch_{name}");
    let labels: Vec<(&'static str, String)> = f
        .label
        .map(|(k, v)| (k, v.to_string()))
        .into_iter()
        .chain(destination.map(|d| ("destination", d.to_string())))
        .collect();
    match f.kind {
        Kind::Counter => metrics::counter!(name, &labels).absolute(f.value as u64),
        Kind::Gauge => metrics::gauge!(name, &labels).set(f.value),
    }
}
