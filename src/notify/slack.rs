//! SLACK, with Seyren's text. A target that is a URL is an incoming
//! webhook (Seyren issue #376). A target that names a channel goes, when
//! `slack_token` (`SLACK_TOKEN`) is set, through Seyren's own call:
//! `POST {slack_api_url}/chat.postMessage` with `accept: application/json`
//! and the form `token`, `channel`, `text`, `username`, `icon_url`; else
//! to `[notify] slack_webhook_url` with the channel in the JSON. A trailing
//! `!` on the target adds `<!channel>`, as in Seyren.

use serde_json::json;

use crate::check::model::{Subscription, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::request::Request;
use crate::notify::{expect_success, Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// What the Slack notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// Incoming webhook for targets that name a channel.
    pub webhook_url: String,
    /// Name the message is posted as.
    pub username: String,
    /// Icon of the message.
    pub icon_url: String,
    /// Comma-separated emojis, one per state by its ordinal.
    pub emojis: String,
    /// Legacy token for `chat.postMessage`.
    pub token: String,
    /// Web API base URL.
    pub api_url: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for SlackConfig {
    fn from(c: &NotifyConfig) -> Self {
        SlackConfig {
            token: c.slack_token.trim().to_string(),
            api_url: c.slack_api_url.trim_end_matches('/').to_string(),
            webhook_url: c.slack_webhook_url.clone(),
            username: c.slack_username.clone(),
            icon_url: c.slack_icon_url.clone(),
            emojis: c.slack_emojis.clone(),
            links: Links::from(c),
        }
    }
}

/// Delivers SLACK subscriptions (see the module comment for the payload).
#[derive(Debug, Clone)]
pub struct SlackNotifier {
    client: reqwest::Client,
    cfg: SlackConfig,
}

impl SlackNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: SlackConfig) -> Self {
        SlackNotifier { client, cfg }
    }

    /// Seyren's message text.
    pub fn text(&self, n: &NewNotification) -> String {
        let c = &n.check;
        let desc = c
            .description
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(|d| format!("\n> {d}"))
            .unwrap_or_default();
        let lines: Vec<String> = n
            .alerts
            .iter()
            .map(|a| {
                format!(
                    "{} = {} ({} to {})",
                    a.target,
                    a.value.map_or("no data".into(), |v| v.to_string()),
                    a.from_type,
                    a.to_type
                )
            })
            .collect();
        let channel = if n.subscription.target.ends_with('!') {
            "<!channel>"
        } else {
            ""
        };
        // Seyren picks the emoji by the state's ordinal.
        let emoji = self
            .cfg
            .emojis
            .split(',')
            .nth(c.state as usize)
            .unwrap_or("")
            .trim();
        format!(
            "{emoji}*{}* {} [{}]{}\n```\n{}\n```\n#{} {}",
            c.state,
            c.name,
            self.cfg.links.check_url(&c.id),
            desc,
            lines.join("\n"),
            c.state.as_str().to_lowercase(),
            channel
        )
    }
}

impl SlackNotifier {
    /// Seyren's `chat.postMessage` request, for a channel target while a
    /// token is set.
    pub fn post_message(&self, n: &NewNotification) -> Option<Request> {
        let channel = n.subscription.target.trim().trim_end_matches('!');
        if self.cfg.token.is_empty() || crate::notify::request::is_url(channel) {
            return None;
        }
        Some(
            Request::form(
                format!("{}/chat.postMessage", self.cfg.api_url),
                vec![
                    ("token", self.cfg.token.clone()),
                    ("channel", channel.to_string()),
                    ("text", self.text(n)),
                    ("username", self.cfg.username.clone()),
                    ("icon_url", self.cfg.icon_url.clone()),
                ],
            )
            .header("accept", "application/json"),
        )
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        if let Some(r) = self.post_message(n) {
            // The Web API answers 200 with `ok: false` when it refuses.
            let answer = r.fetch_json(&self.client).await?;
            return match answer["ok"].as_bool() {
                Some(true) => Ok(()),
                _ => Err(NotifyError::Refused(
                    answer["error"]
                        .as_str()
                        .unwrap_or("no ok in the answer")
                        .to_string(),
                )),
            };
        }
        let target = n.subscription.target.trim_end_matches('!');
        let (url, body) = if target.starts_with("http://") || target.starts_with("https://") {
            (target.to_string(), json!({ "text": self.text(n) }))
        } else if !self.cfg.webhook_url.is_empty() {
            (
                self.cfg.webhook_url.clone(),
                json!({ "channel": target, "text": self.text(n) }),
            )
        } else {
            return Err(NotifyError::NotConfigured(
                "SLACK target is not a webhook URL and slack_webhook_url is unset",
            ));
        };
        let mut body = body;
        body["username"] = json!(self.cfg.username);
        if !self.cfg.icon_url.is_empty() {
            body["icon_url"] = json!(self.cfg.icon_url);
        }
        let resp = self.client.post(url).json(&body).send().await?;
        expect_success(resp).await
    }
}

impl Notifier for SlackNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Slack
    }

    fn target_url<'a>(&self, sub: &'a Subscription) -> Option<&'a str> {
        let t = sub.target.trim();
        (t.starts_with("http://") || t.starts_with("https://")).then_some(t)
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
