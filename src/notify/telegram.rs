//! TELEGRAM: the Bot API's `sendMessage`, `POST
//! {telegram_api_url}/bot{TELEGRAM_BOT_TOKEN}/sendMessage` with `chat_id`
//! (the target) and a plain-text message: the check and its new state, one
//! line per series (old and new state, value, thresholds) and the link.

use serde_json::json;

use crate::check::model::SubscriptionType;
use crate::check::NewNotification;
use crate::notify::message::{alert_lines, title};
use crate::notify::request::Request;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// Series listed in one message; Telegram takes 4096 characters.
const MAX_LINES: usize = 20;

/// What the Telegram notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// Bot API base URL.
    pub api_url: String,
    /// Bot token.
    pub bot_token: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for TelegramConfig {
    fn from(c: &NotifyConfig) -> Self {
        TelegramConfig {
            api_url: c.telegram_api_url.trim_end_matches('/').to_string(),
            bot_token: c.telegram_bot_token.trim().to_string(),
            links: Links::from(c),
        }
    }
}

/// Delivers TELEGRAM subscriptions.
#[derive(Debug, Clone)]
pub struct TelegramNotifier {
    client: reqwest::Client,
    cfg: TelegramConfig,
}

impl TelegramNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: TelegramConfig) -> Self {
        TelegramNotifier { client, cfg }
    }

    /// The message text.
    pub fn text(&self, n: &NewNotification) -> String {
        format!(
            "{}\n{}\n{}",
            title(n),
            alert_lines(n, MAX_LINES),
            self.cfg.links.check_url(&n.check.id)
        )
    }

    /// The request.
    pub fn request(&self, n: &NewNotification) -> Result<Request, NotifyError> {
        if self.cfg.bot_token.is_empty() {
            return Err(NotifyError::NotConfigured(
                "TELEGRAM needs telegram_bot_token (TELEGRAM_BOT_TOKEN)",
            ));
        }
        Ok(Request::json(
            format!("{}/bot{}/sendMessage", self.cfg.api_url, self.cfg.bot_token),
            json!({
                "chat_id": n.subscription.target.trim(),
                "text": self.text(n),
                "disable_web_page_preview": true,
            }),
        ))
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        self.request(n)?.send(&self.client).await
    }
}

impl Notifier for TelegramNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Telegram
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
