//! VICTOROPS: `POST` to `VICTOROPS_REST_ENDPOINT` resolved against the
//! routing key (the target, `default` when empty; the endpoint should end
//! in `/`), with Seyren's JSON: `entity_id` (the check id),
//! `entity_display_name`, `message_type` (OK → RECOVERY, WARN and UNKNOWN →
//! WARNING, ERROR and EXCEPTION → CRITICAL), `state_message` (`Check:
//! {description}\nQuery: {target}\n{first alert as snake_case JSON}\n{link}`)
//! and `monitoring_tool: "Seyren"`.

use serde_json::json;

use crate::check::model::{AlertType, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::message::alert_snake_case;
use crate::notify::request::Request;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// What the VictorOps notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct VictorOpsConfig {
    /// REST endpoint; empty means not configured.
    pub rest_endpoint: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for VictorOpsConfig {
    fn from(c: &NotifyConfig) -> Self {
        VictorOpsConfig {
            rest_endpoint: c.victorops_rest_endpoint.trim().to_string(),
            links: Links::from(c),
        }
    }
}

/// Delivers VICTOROPS subscriptions.
#[derive(Debug, Clone)]
pub struct VictorOpsNotifier {
    client: reqwest::Client,
    cfg: VictorOpsConfig,
}

impl VictorOpsNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: VictorOpsConfig) -> Self {
        VictorOpsNotifier { client, cfg }
    }

    /// The request, as Seyren builds it.
    pub fn request(&self, n: &NewNotification) -> Result<Request, NotifyError> {
        let base = url::Url::parse(&self.cfg.rest_endpoint).map_err(|_| {
            NotifyError::NotConfigured(
                "VICTOROPS needs victorops_rest_endpoint (VICTOROPS_REST_ENDPOINT), a URL",
            )
        })?;
        let key = match n.subscription.target.trim() {
            "" => "default",
            k => k,
        };
        // java.net.URI.resolve, as Seyren does: RFC 3986 reference
        // resolution.
        let url = base.join(key).map_err(|_| {
            NotifyError::NotConfigured("the VICTOROPS routing key is not a URL path")
        })?;
        let c = &n.check;
        let message_type = match c.state {
            AlertType::Ok => "RECOVERY",
            AlertType::Warn | AlertType::Unknown => "WARNING",
            AlertType::Error | AlertType::Exception => "CRITICAL",
        };
        let mut message = format!(
            "Check: {}\nQuery: {}",
            c.description.as_deref().unwrap_or("null"),
            c.target
        );
        if let Some(a) = n.alerts.first() {
            message.push('\n');
            message.push_str(&alert_snake_case(a).to_string());
        }
        message.push('\n');
        message.push_str(&self.cfg.links.check_url(&c.id));
        Ok(Request::json(
            url.as_str(),
            json!({
                "entity_id": c.id,
                "entity_display_name": c.name,
                "message_type": message_type,
                "state_message": message,
                "monitoring_tool": "Seyren",
            }),
        ))
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        self.request(n)?.send(&self.client).await
    }
}

impl Notifier for VictorOpsNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Victorops
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
