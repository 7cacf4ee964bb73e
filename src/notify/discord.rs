//! DISCORD: a Discord webhook (the target is its URL) sent `content` (the
//! check and its new state) and one embed: the check's name linking to its
//! page, the description, a colour by state and one field per series (old
//! and new state, value, thresholds).

use serde_json::{json, Value};

use crate::check::model::{Subscription, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::message::{change, colour, display_name, title, webhook_url};
use crate::notify::request::Request;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// Discord allows 25 fields an embed.
const MAX_FIELDS: usize = 25;

/// What the Discord notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for DiscordConfig {
    fn from(c: &NotifyConfig) -> Self {
        DiscordConfig {
            links: Links::from(c),
        }
    }
}

/// Delivers DISCORD subscriptions.
#[derive(Debug, Clone)]
pub struct DiscordNotifier {
    client: reqwest::Client,
    cfg: DiscordConfig,
}

impl DiscordNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: DiscordConfig) -> Self {
        DiscordNotifier { client, cfg }
    }

    /// The webhook body.
    pub fn body(&self, n: &NewNotification) -> Value {
        let fields: Vec<Value> = n
            .alerts
            .iter()
            .take(MAX_FIELDS)
            .map(|a| {
                json!({
                    "name": a.target,
                    "value": change(a),
                    "inline": false,
                })
            })
            .collect();
        json!({
            "content": title(n),
            "embeds": [{
                "title": display_name(n),
                "url": self.cfg.links.check_url(&n.check.id),
                "description": n.check.description.as_deref().unwrap_or(""),
                "color": colour(n.check.state),
                "fields": fields,
            }],
        })
    }

    /// The request.
    pub fn request(&self, n: &NewNotification) -> Result<Request, NotifyError> {
        let url = webhook_url(n, "a DISCORD target is the webhook's URL")?;
        Ok(Request::json(url, self.body(n)))
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        self.request(n)?.send(&self.client).await
    }
}

impl Notifier for DiscordNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Discord
    }

    fn target_url<'a>(&self, sub: &'a Subscription) -> Option<&'a str> {
        Some(sub.target.trim())
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
