//! MSTEAMS: a Microsoft Teams incoming webhook (the target is its URL)
//! sent a MessageCard: the title is the check and its new state, one fact
//! per series (old and new state, value, thresholds), the description as
//! text, and an "Open check" button to the check page.

use serde_json::{json, Value};

use crate::check::model::{Subscription, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::message::{change, colour, display_name, title, webhook_url};
use crate::notify::request::Request;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// Series listed as facts in one card.
const MAX_FACTS: usize = 20;

/// What the Teams notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct MsTeamsConfig {
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for MsTeamsConfig {
    fn from(c: &NotifyConfig) -> Self {
        MsTeamsConfig {
            links: Links::from(c),
        }
    }
}

/// Delivers MSTEAMS subscriptions.
#[derive(Debug, Clone)]
pub struct MsTeamsNotifier {
    client: reqwest::Client,
    cfg: MsTeamsConfig,
}

impl MsTeamsNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: MsTeamsConfig) -> Self {
        MsTeamsNotifier { client, cfg }
    }

    /// The card.
    pub fn card(&self, n: &NewNotification) -> Value {
        let facts: Vec<Value> = n
            .alerts
            .iter()
            .take(MAX_FACTS)
            .map(|a| {
                json!({
                    "name": a.target,
                    "value": change(a),
                })
            })
            .collect();
        json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "themeColor": format!("{:06X}", colour(n.check.state)),
            "summary": title(n),
            "title": title(n),
            "sections": [{
                "activityTitle": display_name(n),
                "text": n.check.description.as_deref().unwrap_or(""),
                "facts": facts,
            }],
            "potentialAction": [{
                "@type": "OpenUri",
                "name": "Open check",
                "targets": [{"os": "default", "uri": self.cfg.links.check_url(&n.check.id)}],
            }],
        })
    }

    /// The request.
    pub fn request(&self, n: &NewNotification) -> Result<Request, NotifyError> {
        let url = webhook_url(n, "an MSTEAMS target is the incoming webhook's URL")?;
        Ok(Request::json(url, self.card(n)))
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        self.request(n)?.send(&self.client).await
    }
}

impl Notifier for MsTeamsNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Msteams
    }

    fn target_url<'a>(&self, sub: &'a Subscription) -> Option<&'a str> {
        Some(sub.target.trim())
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
