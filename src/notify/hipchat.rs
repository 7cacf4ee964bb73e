//! HIPCHAT: HipChat's v2 room notification API, to the letter of Seyren's
//! call, for self-hosted and compatible servers. For each room id in the
//! comma-separated target, `POST {hipchat_baseurl}/v2/room/{room}/notification?auth_token=..`
//! with the form `message` (HTML), `color`, `message_format=html` and
//! `notify=true`. UNKNOWN and EXCEPTION are not sent.

use crate::check::model::{AlertType, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::request::{path_segment, send_all, Request};
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// What the HipChat notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct HipchatConfig {
    /// Server base URL.
    pub base_url: String,
    /// Room notification token.
    pub auth_token: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for HipchatConfig {
    fn from(c: &NotifyConfig) -> Self {
        HipchatConfig {
            base_url: c.hipchat_baseurl.trim_end_matches('/').to_string(),
            auth_token: c.hipchat_authtoken.clone(),
            links: Links::from(c),
        }
    }
}

/// Delivers HIPCHAT subscriptions.
#[derive(Debug, Clone)]
pub struct HipchatNotifier {
    client: reqwest::Client,
    cfg: HipchatConfig,
}

impl HipchatNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: HipchatConfig) -> Self {
        HipchatNotifier { client, cfg }
    }

    /// One request per room; none for a state Seyren does not send.
    pub fn requests(&self, n: &NewNotification) -> Vec<Request> {
        let c = &n.check;
        let color = match c.state {
            AlertType::Error => "red",
            AlertType::Warn => "yellow",
            AlertType::Ok => "green",
            AlertType::Unknown | AlertType::Exception => return Vec::new(),
        };
        let message = format!(
            "Check <a href={}>{}</a> has entered its {} state.",
            self.cfg.links.check_url(&c.id),
            c.name,
            c.state
        );
        n.subscription
            .target
            .split(',')
            .map(str::trim)
            .filter(|room| !room.is_empty())
            .map(|room| {
                let url = format!(
                    "{}/v2/room/{}/notification?auth_token={}",
                    self.cfg.base_url,
                    path_segment(room),
                    self.cfg.auth_token
                );
                Request::form(
                    url,
                    vec![
                        ("message", message.clone()),
                        ("color", color.into()),
                        ("message_format", "html".into()),
                        ("notify", "true".into()),
                    ],
                )
            })
            .collect()
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        send_all(&self.client, &self.requests(n)).await
    }
}

impl Notifier for HipchatNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Hipchat
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
