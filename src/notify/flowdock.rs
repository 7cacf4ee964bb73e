//! FLOWDOCK: Flowdock's chat API to the letter of Seyren's call, for
//! compatible servers: `POST {flowdock_api_url}/v1/messages/chat/{token}`
//! (the target is the flow token) with `{"content", "external_user_name",
//! "tags"}`; the content is `"{emoji} {name} has entered its {STATE} state
//! - [{series}: {value}, ...] - {first alert's time} - {link}"` and the tags
//! are the state then `flowdock_tags`.

use serde_json::json;

use crate::check::model::SubscriptionType;
use crate::check::NewNotification;
use crate::notify::message::{iso_millis, value};
use crate::notify::request::{path_segment, Request};
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// What the Flowdock notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct FlowdockConfig {
    /// API base URL.
    pub api_url: String,
    /// Sender name.
    pub external_username: String,
    /// Extra tags.
    pub tags: Vec<String>,
    /// Emojis by state ordinal.
    pub emojis: Vec<String>,
    /// Links back to the UI.
    pub links: Links,
}

/// Guava's `Splitter.on(',').omitEmptyStrings().trimResults()`.
fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

impl From<&NotifyConfig> for FlowdockConfig {
    fn from(c: &NotifyConfig) -> Self {
        FlowdockConfig {
            api_url: c.flowdock_api_url.trim_end_matches('/').to_string(),
            external_username: c.flowdock_external_username.clone(),
            tags: list(&c.flowdock_tags),
            emojis: list(&c.flowdock_emojis),
            links: Links::from(c),
        }
    }
}

/// Delivers FLOWDOCK subscriptions.
#[derive(Debug, Clone)]
pub struct FlowdockNotifier {
    client: reqwest::Client,
    cfg: FlowdockConfig,
}

impl FlowdockNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: FlowdockConfig) -> Self {
        FlowdockNotifier { client, cfg }
    }

    /// The request, as Seyren builds it.
    pub fn request(&self, n: &NewNotification) -> Request {
        let c = &n.check;
        let alerts: Vec<String> = n
            .alerts
            .iter()
            .map(|a| format!("{}: {}", a.target, value(a.value)))
            .collect();
        let emoji = self
            .cfg
            .emojis
            .get(c.state as usize)
            .map_or("", String::as_str);
        let first = n
            .alerts
            .first()
            .map_or_else(String::new, |a| iso_millis(a.timestamp));
        let content = format!(
            "{emoji} {} has entered its {} state - [{}] - {first} - {}",
            c.name,
            c.state,
            alerts.join(", "),
            self.cfg.links.check_url(&c.id)
        );
        let mut tags = vec![c.state.to_string()];
        tags.extend(self.cfg.tags.iter().cloned());
        Request::json(
            format!(
                "{}/v1/messages/chat/{}",
                self.cfg.api_url,
                path_segment(n.subscription.target.trim())
            ),
            json!({
                "content": content,
                "external_user_name": self.cfg.external_username,
                "tags": tags,
            }),
        )
        .header("accept", "application/json")
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        self.request(n).send(&self.client).await
    }
}

impl Notifier for FlowdockNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Flowdock
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
