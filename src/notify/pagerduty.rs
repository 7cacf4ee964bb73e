//! PAGERDUTY through Events API v2 (`POST {pagerduty_url}/v2/enqueue`); the
//! target is the integration's routing key. A check in WARN or ERROR
//! triggers, OK resolves, one incident per check (`dedup_key`), as Seyren's
//! v1 integration did.

use serde_json::json;

use crate::check::model::{AlertType, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::{expect_success, Notifier, NotifyConfig, NotifyError};

/// The PagerDuty notifier.
#[derive(Debug, Clone)]
pub struct PagerDutyNotifier {
    client: reqwest::Client,
    cfg: NotifyConfig,
}

impl PagerDutyNotifier {
    /// From the config.
    pub fn new(client: reqwest::Client, cfg: &NotifyConfig) -> Self {
        PagerDutyNotifier {
            client,
            cfg: cfg.clone(),
        }
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
            "client_url": self.cfg.check_url(&c.id),
            "payload": {
                "summary": summary,
                "source": "carbonwatch",
                "severity": severity,
                "custom_details": { "check": c, "state": c.state, "alerts": n.alerts },
            },
        }))
    }
}

impl Notifier for PagerDutyNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Pagerduty
    }

    async fn send(&self, n: &NewNotification) -> Result<(), NotifyError> {
        let Some(event) = self.event(n) else {
            return Ok(());
        };
        let url = format!(
            "{}/v2/enqueue",
            self.cfg.pagerduty_url.trim_end_matches('/')
        );
        let resp = self.client.post(url).json(&event).send().await?;
        expect_success(resp).await
    }
}
