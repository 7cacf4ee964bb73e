//! HTTP: Seyren's JSON payload POSTed to the subscription's URL:
//! `{"seyrenUrl", "check", "subscription", "alerts", "preview"}`. Unlike
//! Seyren, a non-2xx answer counts as a failure and is retried.

use serde_json::json;

use crate::check::model::SubscriptionType;
use crate::check::NewNotification;
use crate::notify::{expect_success, Notifier, NotifyConfig, NotifyError};

/// The HTTP notifier.
#[derive(Debug, Clone)]
pub struct HttpNotifier {
    client: reqwest::Client,
    cfg: NotifyConfig,
}

impl HttpNotifier {
    /// From the config.
    pub fn new(client: reqwest::Client, cfg: &NotifyConfig) -> Self {
        HttpNotifier {
            client,
            cfg: cfg.clone(),
        }
    }

    /// The request body, exactly as Seyren builds it (its swapped
    /// from/until in the preview included).
    pub fn payload(&self, n: &NewNotification) -> serde_json::Value {
        let c = &n.check;
        let t = |x: &Option<crate::check::model::Threshold>| {
            x.as_ref().map_or("0".to_string(), |t| t.text.clone())
        };
        let preview = format!(
            "<br /><img src={}/render/?target={}&from=-1hours&until=now&target=alias(dashed(color(constantLine({}),%22yellow%22)),%22warn%20level%22)&target=alias(dashed(color(constantLine({}),%22red%22)),%22error%20level%22)&width=500&height=225></img>",
            self.cfg.graphite_url.trim_end_matches('/'),
            c.target,
            t(&c.warn),
            t(&c.error)
        );
        json!({
            "seyrenUrl": self.cfg.seyren_url,
            "check": c,
            "subscription": n.subscription,
            "alerts": n.alerts,
            "preview": preview,
        })
    }
}

impl HttpNotifier {
    /// Whether requests go to the subscription's target (no
    /// `HTTP_NOTIFICATION_URL` overrides it).
    pub fn uses_target(&self) -> bool {
        self.cfg.http_notification_url.is_empty()
    }
}

impl Notifier for HttpNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Http
    }

    async fn send(&self, n: &NewNotification) -> Result<(), NotifyError> {
        let url = if self.cfg.http_notification_url.is_empty() {
            &n.subscription.target
        } else {
            &self.cfg.http_notification_url
        };
        if url.is_empty() {
            return Err(NotifyError::NotConfigured(
                "HTTP subscription without a URL",
            ));
        }
        let resp = self.client.post(url).json(&self.payload(n)).send().await?;
        expect_success(resp).await
    }
}
