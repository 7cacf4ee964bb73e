//! HTTP: Seyren's JSON payload POSTed to the subscription's URL:
//! `{"seyrenUrl", "check", "subscription", "alerts", "preview"}`. Unlike
//! Seyren, a non-2xx answer counts as a failure and is retried.

use serde_json::json;

use crate::check::model::{Subscription, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::{expect_success, Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// What the HTTP notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Every HTTP subscription posts here when set (`HTTP_NOTIFICATION_URL`).
    pub url: String,
    /// Graphite's URL, for the preview image.
    pub graphite_url: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for HttpConfig {
    fn from(c: &NotifyConfig) -> Self {
        HttpConfig {
            url: c.http_notification_url.clone(),
            graphite_url: c.graphite_url.clone(),
            links: Links::from(c),
        }
    }
}

/// Delivers HTTP subscriptions (see the module comment for the payload).
#[derive(Debug, Clone)]
pub struct HttpNotifier {
    client: reqwest::Client,
    cfg: HttpConfig,
}

impl HttpNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: HttpConfig) -> Self {
        HttpNotifier { client, cfg }
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
            "seyrenUrl": self.cfg.links.seyren_url,
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
        self.cfg.url.is_empty()
    }
}

impl HttpNotifier {
    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        let url = if self.cfg.url.is_empty() {
            &n.subscription.target
        } else {
            &self.cfg.url
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

impl Notifier for HttpNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Http
    }

    fn target_url<'a>(&self, sub: &'a Subscription) -> Option<&'a str> {
        self.uses_target().then(|| sub.target.trim())
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
