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

use crate::check::model::{AlertType, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::{expect_success, Notifier, NotifyConfig, NotifyError};

/// The Alertmanager notifier.
#[derive(Debug, Clone)]
pub struct AlertmanagerNotifier {
    client: reqwest::Client,
    cfg: NotifyConfig,
}

impl AlertmanagerNotifier {
    /// From the config.
    pub fn new(client: reqwest::Client, cfg: &NotifyConfig) -> Self {
        AlertmanagerNotifier {
            client,
            cfg: cfg.clone(),
        }
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
                    "generatorURL": self.cfg.check_url(&c.id),
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

impl Notifier for AlertmanagerNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Alertmanager
    }

    async fn send(&self, n: &NewNotification) -> Result<(), NotifyError> {
        let base = if n.subscription.target.is_empty() {
            &self.cfg.alertmanager_url
        } else {
            &n.subscription.target
        };
        let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
        let resp = self.client.post(url).json(&self.alerts(n)).send().await?;
        expect_success(resp).await
    }
}
