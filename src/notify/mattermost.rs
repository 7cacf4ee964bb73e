//! MATTERMOST: a Mattermost incoming webhook (the target is its URL) sent
//! `{"text"}` in Markdown: the check and its new state in bold, one line
//! per series (old and new state, value, thresholds) and the link.

use serde_json::json;

use crate::check::model::{Subscription, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::message::{alert_lines, title, webhook_url};
use crate::notify::request::Request;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// Series listed in one message.
const MAX_LINES: usize = 50;

/// What the Mattermost notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct MattermostConfig {
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for MattermostConfig {
    fn from(c: &NotifyConfig) -> Self {
        MattermostConfig {
            links: Links::from(c),
        }
    }
}

/// Delivers MATTERMOST subscriptions.
#[derive(Debug, Clone)]
pub struct MattermostNotifier {
    client: reqwest::Client,
    cfg: MattermostConfig,
}

impl MattermostNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: MattermostConfig) -> Self {
        MattermostNotifier { client, cfg }
    }

    /// The message text.
    pub fn text(&self, n: &NewNotification) -> String {
        format!(
            "**{}**\n```\n{}\n```\n{}",
            title(n),
            alert_lines(n, MAX_LINES),
            self.cfg.links.check_url(&n.check.id)
        )
    }

    /// The request.
    pub fn request(&self, n: &NewNotification) -> Result<Request, NotifyError> {
        let url = webhook_url(n, "a MATTERMOST target is the incoming webhook's URL")?;
        Ok(Request::json(url, json!({ "text": self.text(n) })))
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        self.request(n)?.send(&self.client).await
    }
}

impl Notifier for MattermostNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Mattermost
    }

    fn target_url<'a>(&self, sub: &'a Subscription) -> Option<&'a str> {
        Some(sub.target.trim())
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
