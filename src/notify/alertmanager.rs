//! ALERTMANAGER: each changed series becomes an alert POSTed to
//! Alertmanager's v2 API (`/api/v2/alerts`), so grouping, inhibition and
//! silences are Alertmanager's. Labels: `alertname` (the check name),
//! `check_id`, `series`, `severity` (`warning`, `critical`, `nodata`). A
//! firing alert carries an `endsAt` a year ahead, since carbonwatch sends on
//! change rather than re-sending every evaluation as Prometheus does; the
//! change that ends it sends the same labels with `endsAt` now. The target is Alertmanager's base URL, or
//! empty for `[notify] alertmanager_url`.

use jiff::{Timestamp, ToSpan};
use serde_json::json;

use crate::check::model::{AlertType, Subscription, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::{expect_success, Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// What the Alertmanager notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// Base URL for subscriptions whose target is empty.
    pub url: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for AlertmanagerConfig {
    fn from(c: &NotifyConfig) -> Self {
        AlertmanagerConfig {
            url: c.alertmanager_url.clone(),
            links: Links::from(c),
        }
    }
}

/// Delivers ALERTMANAGER subscriptions (see the module comment for the payload).
#[derive(Debug, Clone)]
pub struct AlertmanagerNotifier {
    client: reqwest::Client,
    cfg: AlertmanagerConfig,
}

impl AlertmanagerNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: AlertmanagerConfig) -> Self {
        AlertmanagerNotifier { client, cfg }
    }

    /// The alerts array. A transition resolves the alert of the state it
    /// leaves (same labels, `endsAt` now) and fires one for the state it
    /// enters, so `severity` can route and a WARN never lingers after ERROR.
    pub fn alerts(&self, n: &NewNotification) -> serde_json::Value {
        let c = &n.check;
        let severity = |t: AlertType| match t {
            AlertType::Error | AlertType::Exception => Some("critical"),
            AlertType::Warn => Some("warning"),
            AlertType::Unknown => Some("nodata"),
            AlertType::Ok => None,
        };
        let mut list = Vec::new();
        for a in &n.alerts {
            let at = Timestamp::from_millisecond(a.timestamp).unwrap_or(Timestamp::UNIX_EPOCH);
            let entry = |sev: &str, starts: Timestamp, ends: Timestamp| {
                json!({
                    "labels": { "alertname": c.name, "check_id": c.id, "series": a.target, "severity": sev, "source": "carbonwatch" },
                    "annotations": {
                        "summary": format!("{} is {}", a.target, a.to_type),
                        "description": c.description.clone().unwrap_or_default(),
                        "value": a.value.map_or("no data".into(), |v| v.to_string()),
                        "from_state": a.from_type.as_str(),
                    },
                    "startsAt": starts.to_string(),
                    "endsAt": ends.to_string(),
                    "generatorURL": self.cfg.links.check_url(&c.id),
                })
            };
            if a.from_type != a.to_type {
                if let Some(sev) = severity(a.from_type) {
                    list.push(entry(sev, at, at));
                }
            }
            if let Some(sev) = severity(a.to_type) {
                list.push(entry(sev, at, at.checked_add(8760.hours()).unwrap_or(at)));
            }
        }
        serde_json::Value::Array(list)
    }
}

impl AlertmanagerNotifier {
    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        let base = if n.subscription.target.is_empty() {
            &self.cfg.url
        } else {
            &n.subscription.target
        };
        let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
        let resp = self.client.post(url).json(&self.alerts(n)).send().await?;
        expect_success(resp).await
    }
}

impl Notifier for AlertmanagerNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Alertmanager
    }

    fn target_url<'a>(&self, sub: &'a Subscription) -> Option<&'a str> {
        let t = sub.target.trim();
        (!t.is_empty()).then_some(t)
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
