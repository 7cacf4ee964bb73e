//! PAGERDUTY: a check in WARN or ERROR triggers, OK resolves, one incident
//! per check (`MonitoringAlerts_{id}`); other states are not sent. By
//! default Seyren's own call, Events API v1 (`POST
//! {pagerduty_url}/generic/2010-04-15/create_event.json` with
//! `service_key`, `event_type`, `description`, `incident_key`, `client:
//! "Seyren"`, `client_url` and `details` {CHECK, STATE, ALERTS, SEYREN_URL},
//! the check and alerts as snake_case JSON strings; an answer other than
//! `status: success` is a failure); with `pagerduty_events_api = "v2"`,
//! Events API v2 (`POST {pagerduty_url}/v2/enqueue`). The target is the
//! service key (v1) or routing key (v2).

use serde_json::json;

use crate::check::model::{AlertType, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::message::alert_snake_case;
use crate::notify::request::Request;
use crate::notify::{expect_success, Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// JSON with its object keys turned from camelCase to snake_case, as
/// Seyren's Jackson writes the check inside PagerDuty's details.
fn snake_case(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let mut out = String::with_capacity(k.len() + 4);
                    for ch in k.chars() {
                        if ch.is_ascii_uppercase() {
                            out.push('_');
                            out.push(ch.to_ascii_lowercase());
                        } else {
                            out.push(ch);
                        }
                    }
                    (out, snake_case(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(snake_case).collect()),
        other => other,
    }
}

/// What the PagerDuty notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct PagerDutyConfig {
    /// Events API base URL.
    pub url: String,
    /// `v1` (Seyren's) or `v2`.
    pub events_api: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for PagerDutyConfig {
    fn from(c: &NotifyConfig) -> Self {
        PagerDutyConfig {
            url: c.pagerduty_url.trim_end_matches('/').to_string(),
            events_api: c.pagerduty_events_api.clone(),
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

    /// Seyren's Events API v1 request, or `None` for states it does not
    /// send.
    pub fn event_v1(&self, n: &NewNotification) -> Option<Request> {
        let c = &n.check;
        let (event_type, description) = match c.state {
            AlertType::Error | AlertType::Warn => (
                "trigger",
                format!("Check '{}' has exceeded its threshold.", c.name),
            ),
            AlertType::Ok => ("resolve", format!("Check '{}' has been resolved.", c.name)),
            _ => return None,
        };
        let alerts: Vec<serde_json::Value> = n.alerts.iter().map(alert_snake_case).collect();
        let check = snake_case(serde_json::to_value(c).unwrap_or_default());
        Some(Request::json(
            format!("{}/generic/2010-04-15/create_event.json", self.cfg.url),
            json!({
                "service_key": n.subscription.target.trim(),
                "event_type": event_type,
                "description": description,
                "incident_key": format!("MonitoringAlerts_{}", c.id),
                "client": "Seyren",
                "client_url": self.cfg.links.check_url(&c.id),
                "details": {
                    "CHECK": check.to_string(),
                    "STATE": c.state.as_str(),
                    "ALERTS": serde_json::Value::from(alerts).to_string(),
                    "SEYREN_URL": self.cfg.links.seyren_url,
                },
            }),
        ))
    }

    /// The Events API v2 event, or `None` for states PagerDuty is not told
    /// about.
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
        if self.cfg.events_api != "v2" {
            let Some(request) = self.event_v1(n) else {
                return Ok(());
            };
            let answer = request.fetch_json(&self.client).await?;
            return match answer["status"].as_str() {
                Some("success") => Ok(()),
                _ => Err(NotifyError::Refused(
                    answer["message"]
                        .as_str()
                        .unwrap_or("no status: success in the answer")
                        .to_string(),
                )),
            };
        }
        let Some(event) = self.event(n) else {
            return Ok(());
        };
        let url = format!("{}/v2/enqueue", self.cfg.url);
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
