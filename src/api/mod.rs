//! Stage 9, **api**: the admin HTTP port.
//!
//! - [`seyren`]: Seyren's REST API under `[admin] api_base_path` (`/api`
//!   or `/seyren/api`), behind a bearer token when one is set;
//! - [`ui`]: the web UI at `/`, its assets compiled into the binary;
//! - [`metrics`]: Prometheus text at `/metrics`.
//!
//! Every error is JSON `{"message": ..}` with a 4xx for a bad request, so
//! a client never has to parse an HTML error page.

mod config;
pub mod guard;
pub mod metrics;
pub mod server;
pub mod seyren;
pub mod ui;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio_util::sync::CancellationToken;

pub use config::AdminConfig;

use crate::alert::AlertHandle;
use crate::check::Store;
use crate::notify::outbox::OutboxStats;
use crate::notify::{Notifiers, NotifyConfig};
use crate::poll::{GraphiteConfig, PollStats, RenderClient};
use crate::relay::Relay;
use crate::store::writer::WriterStats;

/// What the API reaches of alerting, wired by `app`.
#[derive(Clone)]
pub struct Alerting {
    /// The engine: checks, series, upserts.
    pub engine: AlertHandle,
    /// Alert history and the outbox's counts.
    pub store: Arc<dyn Store>,
    /// The notifiers the outbox delivers with.
    pub notifiers: Arc<Notifiers>,
    /// The notifiers of the test endpoint, under `[notify]`'s network
    /// policy for test targets.
    pub test_notifiers: Arc<Notifiers>,
    /// `[notify] test_timeout_secs`.
    pub test_timeout: std::time::Duration,
    /// The outbox's counters.
    pub outbox: Arc<OutboxStats>,
    /// The store writer's counters.
    pub writer: Arc<WriterStats>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting").finish_non_exhaustive()
    }
}

/// What the admin port is built from: its config sections and the
/// running stages it reports on.
#[derive(Debug)]
pub struct Wiring<'a> {
    /// `[admin]`.
    pub admin: &'a AdminConfig,
    /// The address `[admin] listen` names.
    pub listen: Option<std::net::SocketAddr>,
    /// `[graphite]`, for the render proxy.
    pub graphite: &'a GraphiteConfig,
    /// `[notify]`: Seyren's URL and the test endpoint's network policy.
    pub notify: &'a NotifyConfig,
    /// Whether the pickle port is on (reported by `/api/config`).
    pub pickle_enabled: bool,
    /// The relay, for its counters.
    pub relay: Arc<Relay>,
    /// Alerting, when it is on.
    pub alerting: Option<Alerting>,
    /// The poller's counters, when alerting is on.
    pub poll: Option<Arc<PollStats>>,
}

/// An API failure: a status and a message for the client.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// 400.
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 500: a fault of ours, logged.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(error = %message, "API request failed.");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

/// What every admin route can reach.
#[derive(Clone)]
pub struct ApiContext {
    relay: Arc<Relay>,
    alerts: Option<Alerting>,
    poll: Option<Arc<PollStats>>,
    render: RenderClient,
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    base_path: String,
    token: Option<String>,
    tls: bool,
    seyren_url: String,
    graphs_enabled: bool,
    pickle_enabled: bool,
    metrics_token: Option<String>,
    guard: Arc<guard::Guard>,
    max_body_bytes: usize,
    test_policy: Arc<crate::notify::netpolicy::NetPolicy>,
    /// The admin port's connection counters.
    pub admin_stats: Arc<server::AdminStats>,
}

impl ApiContext {
    /// The context for one admin port.
    pub fn new(w: Wiring<'_>) -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let a = w.admin;
        ApiContext {
            relay: w.relay,
            alerts: w.alerting,
            poll: w.poll,
            render: RenderClient::new(w.graphite),
            recorder: Arc::new(recorder),
            handle,
            base_path: a.api_base_path.trim_end_matches('/').to_string(),
            token: (!a.auth_token.is_empty()).then(|| a.auth_token.clone()),
            tls: !a.tls_cert_file.is_empty(),
            seyren_url: w.notify.seyren_url.clone(),
            graphs_enabled: a.graphs_enabled,
            pickle_enabled: w.pickle_enabled,
            metrics_token: [&a.metrics_auth_token, &a.auth_token]
                .into_iter()
                .find(|t| !t.is_empty())
                .cloned(),
            guard: Arc::new(guard::Guard::new(a, w.listen)),
            max_body_bytes: a.max_body_bytes,
            test_policy: Arc::new(crate::notify::netpolicy::NetPolicy::new(w.notify)),
            admin_stats: Arc::default(),
        }
    }

    fn alerts(&self) -> Result<&Alerting, ApiError> {
        self.alerts.as_ref().ok_or_else(|| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "alerting is off: set [alerting] store".into(),
        })
    }
}

/// Every admin route: Seyren's API under the base path, the UI, the
/// render proxy and `/metrics`, behind the guards.
pub fn router(ctx: ApiContext) -> Router {
    use seyren::*;
    let api = Router::new()
        .route("/checks", get(list_checks).post(create_check))
        .route(
            "/checks/{id}",
            get(get_check).put(update_check).delete(delete_check),
        )
        .route(
            "/checks/{id}/alerts",
            get(check_alerts).delete(delete_alerts),
        )
        .route("/checks/{id}/series", get(check_series))
        .route("/checks/{id}/points", get(check_points))
        .route(
            "/checks/{id}/subscriptions",
            axum::routing::post(create_subscription),
        )
        .route(
            "/checks/{id}/subscriptions/{sid}",
            put(update_subscription).delete(delete_subscription),
        )
        .route(
            "/checks/{id}/subscriptions/{sid}/test",
            put(test_subscription),
        )
        .route("/alerts", get(all_alerts))
        .route("/config", get(config))
        .route("/metrics/{target}/total", get(metrics_total))
        .route("/checks/{id}/image", get(ui::check_image))
        .route("/checks/{id}/image/", get(ui::check_image))
        .route("/chart/{target}", get(ui::chart_image))
        .route("/chart/{target}/", get(ui::chart_image))
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            require_token,
        ));
    let metrics = Router::new()
        .route("/metrics", get(metrics::metrics))
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            require_metrics_token,
        ));
    Router::new()
        .nest(&ctx.base_path, api)
        .merge(metrics)
        .merge(ui::routes())
        .layer(axum::extract::DefaultBodyLimit::max(ctx.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            ctx.guard.clone(),
            guard::check,
        ))
        .layer(axum::middleware::from_fn(guard::json_errors))
        .with_state(ctx)
}

/// `/metrics` needs `metrics_auth_token`, or the API's token, when either
/// is set, as Prometheus exporters do.
async fn require_metrics_token(
    State(ctx): State<ApiContext>,
    req: Request,
    next: Next,
) -> Response {
    match &ctx.metrics_token {
        Some(token) if !bearer_matches(&req, token) => unauthorized(),
        _ => next.run(req).await,
    }
}

fn bearer_matches(req: &Request, token: &str) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

fn unauthorized() -> Response {
    let mut r = ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: "a bearer token is required: Authorization: Bearer <token>".into(),
    }
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

/// With a token configured, API requests must carry it as
/// `Authorization: Bearer <token>`.
async fn require_token(State(ctx): State<ApiContext>, req: Request, next: Next) -> Response {
    match &ctx.token {
        Some(token) if !bearer_matches(&req, token) => unauthorized(),
        _ => next.run(req).await,
    }
}

/// Compares without an early exit, so the time taken says nothing about
/// how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves the admin port until cancelled, over TLS when `tls` is given,
/// under `[admin]`'s connection cap and timeouts.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: ApiContext,
    tls: Option<tokio_rustls::TlsAcceptor>,
    admin: &AdminConfig,
    token: CancellationToken,
) {
    let stats = ctx.admin_stats.clone();
    let limits = server::ConnLimits::from_config(admin);
    let app = router(ctx);
    server::serve(
        listener,
        app,
        tls,
        admin.max_connections,
        limits,
        stats,
        token,
    )
    .await;
}
