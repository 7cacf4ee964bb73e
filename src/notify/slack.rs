//! SLACK through an incoming webhook (Seyren issue #376: its token API is
//! gone). The target is the webhook URL, or a channel name used with
//! `[notify] slack_webhook_url`. A trailing `!` on the target adds
//! `<!channel>`, as in Seyren. The text follows Seyren's layout.

use serde_json::json;

use crate::check::model::SubscriptionType;
use crate::check::NewNotification;
use crate::notify::{expect_success, Notifier, NotifyConfig, NotifyError};

/// The Slack notifier.
#[derive(Debug, Clone)]
pub struct SlackNotifier {
    client: reqwest::Client,
    cfg: NotifyConfig,
}

impl SlackNotifier {
    /// From the config.
    pub fn new(client: reqwest::Client, cfg: &NotifyConfig) -> Self {
        SlackNotifier {
            client,
            cfg: cfg.clone(),
        }
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
            .slack_emojis
            .split(',')
            .nth(c.state as usize)
            .unwrap_or("")
            .trim();
        format!(
            "{emoji}*{}* {} [{}]{}\n```\n{}\n```\n#{} {}",
            c.state,
            c.name,
            self.cfg.check_url(&c.id),
            desc,
            lines.join("\n"),
            c.state.as_str().to_lowercase(),
            channel
        )
    }
}

impl Notifier for SlackNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Slack
    }

    async fn send(&self, n: &NewNotification) -> Result<(), NotifyError> {
        let target = n.subscription.target.trim_end_matches('!');
        let (url, body) = if target.starts_with("http://") || target.starts_with("https://") {
            (target.to_string(), json!({ "text": self.text(n) }))
        } else if !self.cfg.slack_webhook_url.is_empty() {
            (
                self.cfg.slack_webhook_url.clone(),
                json!({ "channel": target, "text": self.text(n) }),
            )
        } else {
            return Err(NotifyError::NotConfigured(
                "SLACK target is not a webhook URL and slack_webhook_url is unset",
            ));
        };
        let mut body = body;
        body["username"] = json!(self.cfg.slack_username);
        if !self.cfg.slack_icon_url.is_empty() {
            body["icon_url"] = json!(self.cfg.slack_icon_url);
        }
        let resp = self.client.post(url).json(&body).send().await?;
        expect_success(resp).await
    }
}
