//! PAGERDUTY through Events API v2 (`POST {pagerduty_url}/v2/enqueue`); the
//! target is the integration's routing key. A check in WARN or ERROR
//! triggers, OK resolves, one incident per check (`dedup_key`), as Seyren's
//! v1 integration did.

use serde_json::json;

use crate::check::model::{AlertType, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::{expect_success, Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// What the PagerDuty notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct PagerDutyConfig {
    /// Events API base URL.
    pub url: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for PagerDutyConfig {
    fn from(c: &NotifyConfig) -> Self {
        PagerDutyConfig {
            url: c.pagerduty_url.clone(),
            links: Links::from(c),
        }
    }
}

/// Delivers PAGERDUTY subscriptions (see the module comment for the payload).
#[derive(Debug, Clone)]
pub struct PagerDutyNotifier {
    client: reqwest::Client,
    cfg: PagerDutyConfig,
}

impl PagerDutyNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: PagerDutyConfig) -> Self {
        PagerDutyNotifier { client, cfg }
    }

    /// The event, or `None` for states PagerDuty is not told about.
    pub fn event(&self, n: &NewNotification) -> Option<serde_json::Value> {
        let c = &n.check;
        let (action, severity, summary) = match c.state {
            AlertType::Error => (
                "trigger",
                "error",
                format!("Check '{}' has exceeded its threshold.", c.name),
            ),
            AlertType::Warn => (
                "trigger",
                "warning",
                format!("Check '{}' has exceeded its threshold.", c.name),
            ),
            AlertType::Ok => (
                "resolve",
                "info",
                format!("Check '{}' has been resolved.", c.name),
            ),
            _ => return None,
        };
        Some(json!({
            "routing_key": n.subscription.target,
            "event_action": action,
            "dedup_key": format!("MonitoringAlerts_{}", c.id),
            "client": "carbonwatch",
            "client_url": self.cfg.links.check_url(&c.id),
            "payload": {
                "summary": summary,
                "source": "carbonwatch",
                "severity": severity,
                "custom_details": { "check": c, "state": c.state, "alerts": n.alerts },
            },
        }))
    }
}

impl PagerDutyNotifier {
    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        let Some(event) = self.event(n) else {
            return Ok(());
        };
        let url = format!("{}/v2/enqueue", self.cfg.url.trim_end_matches('/'));
        let resp = self.client.post(url).json(&event).send().await?;
        expect_success(resp).await
    }
}

impl Notifier for PagerDutyNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Pagerduty
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
