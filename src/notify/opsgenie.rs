//! OPSGENIE through its Alert API v2 (Seyren's SDK spoke v1, which
//! OpsGenie has retired), keeping Seyren's behaviour: WARN or ERROR
//! creates an alert with message `Check {name}`, details `Check State` and
//! `Target`, source `Seyren`, the teams of `OPSGENIE_TEAMS` and the
//! description; OK lists the open alerts and closes those whose message is
//! `Check {name}`. The target is the API key (`Authorization: GenieKey`).

use serde_json::{json, Value};

use crate::check::model::{AlertType, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::request::{path_segment, Request};
use crate::notify::{Delivery, Notifier, NotifyConfig, NotifyError};

/// What the OpsGenie notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct OpsGenieConfig {
    /// API base URL.
    pub api_url: String,
    /// Teams alerts go to.
    pub teams: Vec<String>,
}

impl From<&NotifyConfig> for OpsGenieConfig {
    fn from(c: &NotifyConfig) -> Self {
        OpsGenieConfig {
            api_url: c.opsgenie_api_url.trim_end_matches('/').to_string(),
            teams: c
                .opsgenie_teams
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
        }
    }
}

/// What a notification makes the OpsGenie notifier do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create an alert.
    Create(Request),
    /// List open alerts, then close those with this message.
    CloseOpen {
        /// The listing.
        list: Request,
        /// The message of the check's alerts.
        message: String,
    },
    /// Nothing (UNKNOWN, EXCEPTION).
    Nothing,
}

/// Delivers OPSGENIE subscriptions.
#[derive(Debug, Clone)]
pub struct OpsGenieNotifier {
    client: reqwest::Client,
    cfg: OpsGenieConfig,
}

impl OpsGenieNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: OpsGenieConfig) -> Self {
        OpsGenieNotifier { client, cfg }
    }

    fn auth(&self, r: Request, key: &str) -> Request {
        r.header("authorization", format!("GenieKey {key}"))
    }

    /// What to do for `n`.
    pub fn step(&self, n: &NewNotification) -> Step {
        let c = &n.check;
        let key = n.subscription.target.trim();
        let message = format!("Check {}", c.name);
        match c.state {
            AlertType::Warn | AlertType::Error => {
                let teams: Vec<Value> = self
                    .cfg
                    .teams
                    .iter()
                    .map(|t| json!({"name": t, "type": "team"}))
                    .collect();
                let body = json!({
                    "message": message,
                    "description": c.description.as_deref().unwrap_or("null"),
                    "details": {"Check State": c.state.as_str(), "Target": c.target},
                    "source": "Seyren",
                    "responders": teams,
                });
                Step::Create(self.auth(
                    Request::json(format!("{}/v2/alerts", self.cfg.api_url), body),
                    key,
                ))
            }
            AlertType::Ok => Step::CloseOpen {
                list: self.auth(
                    Request::get(format!(
                        "{}/v2/alerts?query=status%3Aopen&limit=100",
                        self.cfg.api_url
                    )),
                    key,
                ),
                message,
            },
            AlertType::Unknown | AlertType::Exception => Step::Nothing,
        }
    }

    /// The close request for the open alert `id`.
    pub fn close(&self, id: &str, key: &str) -> Request {
        self.auth(
            Request::json(
                format!("{}/v2/alerts/{}/close", self.cfg.api_url, path_segment(id)),
                json!({"source": "Seyren"}),
            ),
            key,
        )
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        match self.step(n) {
            Step::Create(r) => r.send(&self.client).await,
            Step::CloseOpen { list, message } => {
                let open = list.fetch_json(&self.client).await?;
                let key = n.subscription.target.trim();
                let ids = open["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|a| a["message"].as_str() == Some(message.as_str()))
                    .filter_map(|a| a["id"].as_str());
                for id in ids {
                    self.close(id, key).send(&self.client).await?;
                }
                Ok(())
            }
            Step::Nothing => Ok(()),
        }
    }
}

impl Notifier for OpsGenieNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Opsgenie
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
