//! PUSHOVER: `POST {pushover_api_url}/1/messages.json` with Seyren's form:
//! `token` (`PUSHOVER_APP_API_TOKEN`), `user` (the target, a 30-character
//! user key), `title` (`[CRIT]`, `[WARN]` or `[OK]` and the check's name),
//! `message` (`Check details : {link}`) and `priority` (1 for WARN and
//! ERROR, else 0).

use crate::check::model::{AlertType, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::request::Request;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// What the Pushover notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct PushoverConfig {
    /// API base URL.
    pub api_url: String,
    /// Application token.
    pub app_token: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for PushoverConfig {
    fn from(c: &NotifyConfig) -> Self {
        PushoverConfig {
            api_url: c.pushover_api_url.trim_end_matches('/').to_string(),
            app_token: c.pushover_app_api_token.trim().to_string(),
            links: Links::from(c),
        }
    }
}

/// Delivers PUSHOVER subscriptions.
#[derive(Debug, Clone)]
pub struct PushoverNotifier {
    client: reqwest::Client,
    cfg: PushoverConfig,
}

impl PushoverNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: PushoverConfig) -> Self {
        PushoverNotifier { client, cfg }
    }

    /// The request, as Seyren builds it; Seyren's two refusals (no token,
    /// a user key not 30 characters long) are errors here, not silence.
    pub fn request(&self, n: &NewNotification) -> Result<Request, NotifyError> {
        if self.cfg.app_token.is_empty() {
            return Err(NotifyError::NotConfigured(
                "PUSHOVER needs pushover_app_api_token (PUSHOVER_APP_API_TOKEN)",
            ));
        }
        let user = n.subscription.target.trim();
        if user.chars().count() != 30 {
            return Err(NotifyError::NotConfigured(
                "a PUSHOVER target is a 30-character user key",
            ));
        }
        let c = &n.check;
        let title = match c.state {
            AlertType::Error => format!("[CRIT] {}", c.name),
            AlertType::Warn => format!("[WARN] {}", c.name),
            AlertType::Ok => format!("[OK] {}", c.name),
            AlertType::Unknown | AlertType::Exception => String::new(),
        };
        let priority = if matches!(c.state, AlertType::Warn | AlertType::Error) {
            "1"
        } else {
            "0"
        };
        Ok(Request::form(
            format!("{}/1/messages.json", self.cfg.api_url),
            vec![
                ("token", self.cfg.app_token.clone()),
                ("user", user.to_string()),
                ("title", title),
                (
                    "message",
                    format!("Check details : {}", self.cfg.links.check_url(&c.id)),
                ),
                ("priority", priority.into()),
            ],
        ))
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        self.request(n)?.send(&self.client).await
    }
}

impl Notifier for PushoverNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Pushover
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
