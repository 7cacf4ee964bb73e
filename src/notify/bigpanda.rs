//! BIGPANDA: one `POST {bigpanda_notification_url}` per alert, with
//! `Authorization: Bearer {BIGPANDA_AUTH_BEARER}` and Seyren's JSON:
//! `app_key` (the target), `status` (critical, warning or ok, from the
//! alert's new state), `service` (the check's name), `check` (the series),
//! `description`, `timestamp` (epoch seconds), `seyrenCheckUrl`,
//! `currentValue`, `thresholdWarning`, `thresholdCritical` and
//! `previewGraph`.

use serde_json::json;

use crate::check::model::{AlertType, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::request::Request;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// What the BigPanda notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct BigPandaConfig {
    /// Alerts URL.
    pub url: String,
    /// Bearer token.
    pub auth_bearer: String,
    /// Graphite's URL, for the preview graph.
    pub graphite_url: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for BigPandaConfig {
    fn from(c: &NotifyConfig) -> Self {
        BigPandaConfig {
            url: c.bigpanda_notification_url.trim().to_string(),
            auth_bearer: c.bigpanda_auth_bearer.trim().to_string(),
            graphite_url: c.graphite_url.trim_end_matches('/').to_string(),
            links: Links::from(c),
        }
    }
}

/// Delivers BIGPANDA subscriptions.
#[derive(Debug, Clone)]
pub struct BigPandaNotifier {
    client: reqwest::Client,
    cfg: BigPandaConfig,
}

impl BigPandaNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: BigPandaConfig) -> Self {
        BigPandaNotifier { client, cfg }
    }

    /// One request per alert, as Seyren builds them; Seyren stops at the
    /// first alert of another state, and so do these.
    pub fn requests(&self, n: &NewNotification) -> Result<Vec<Request>, NotifyError> {
        let app_key = n.subscription.target.trim();
        if app_key.is_empty() {
            return Err(NotifyError::NotConfigured(
                "a BIGPANDA target is the integration's app key",
            ));
        }
        if self.cfg.url.is_empty() || self.cfg.auth_bearer.is_empty() {
            return Err(NotifyError::NotConfigured(
                "BIGPANDA needs bigpanda_notification_url and bigpanda_auth_bearer",
            ));
        }
        let c = &n.check;
        let t = |x: &Option<crate::check::model::Threshold>| {
            x.as_ref().map_or("null".to_string(), |t| t.text.clone())
        };
        let preview = format!(
            "{}/render/?target={}&from=-1h&target=alias(dashed(color(constantLine({}),%22yellow%22)),%22warn%20level%22)&target=alias(dashed(color(constantLine({}),%22red%22)),%22error%20level%22)&width=500&height=225",
            self.cfg.graphite_url,
            c.target,
            t(&c.warn),
            t(&c.error)
        );
        let mut out = Vec::new();
        for a in &n.alerts {
            let status = match a.to_type {
                AlertType::Error => "critical",
                AlertType::Warn => "warning",
                AlertType::Ok => "ok",
                AlertType::Unknown | AlertType::Exception => break,
            };
            let body = json!({
                "app_key": app_key,
                "status": status,
                "service": c.name,
                "check": a.target,
                "description": c.description,
                "timestamp": a.timestamp.div_euclid(1000),
                "seyrenCheckUrl": self.cfg.links.check_url(&c.id),
                "currentValue": a.value,
                "thresholdWarning": a.warn.as_ref().map(|t| t.value),
                "thresholdCritical": a.error.as_ref().map(|t| t.value),
                "previewGraph": preview,
            });
            out.push(
                Request::json(&self.cfg.url, body)
                    .header("authorization", format!("Bearer {}", self.cfg.auth_bearer)),
            );
        }
        Ok(out)
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        crate::notify::request::send_all(&self.client, &self.requests(n)?).await
    }
}

impl Notifier for BigPandaNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Bigpanda
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
