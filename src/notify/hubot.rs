//! HUBOT: Seyren's JSON to a Hubot script, `POST {hubot_url}/seyren/alert`
//! with `{"seyrenUrl", "check", "subscription", "alerts", "rooms"}`, the
//! rooms being the target split on commas.

use serde_json::json;

use crate::check::model::SubscriptionType;
use crate::check::NewNotification;
use crate::notify::request::Request;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// What the Hubot notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct HubotConfig {
    /// Hubot's base URL; empty means not configured.
    pub url: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for HubotConfig {
    fn from(c: &NotifyConfig) -> Self {
        HubotConfig {
            url: c.hubot_url.trim().trim_end_matches('/').to_string(),
            links: Links::from(c),
        }
    }
}

/// Delivers HUBOT subscriptions.
#[derive(Debug, Clone)]
pub struct HubotNotifier {
    client: reqwest::Client,
    cfg: HubotConfig,
}

impl HubotNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: HubotConfig) -> Self {
        HubotNotifier { client, cfg }
    }

    /// The request, as Seyren builds it.
    pub fn request(&self, n: &NewNotification) -> Result<Request, NotifyError> {
        if self.cfg.url.is_empty() {
            return Err(NotifyError::NotConfigured(
                "HUBOT needs hubot_url (HUBOT_URL)",
            ));
        }
        let rooms: Vec<&str> = n.subscription.target.split(',').collect();
        Ok(Request::json(
            format!("{}/seyren/alert", self.cfg.url),
            json!({
                "seyrenUrl": self.cfg.links.seyren_url,
                "check": n.check,
                "subscription": n.subscription,
                "alerts": n.alerts,
                "rooms": rooms,
            }),
        ))
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        self.request(n)?.send(&self.client).await
    }
}

impl Notifier for HubotNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Hubot
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
