//! TWILIO: an SMS through `POST {twilio_url}/{TWILIO_ACCOUNT_SID}/Messages`
//! with Basic auth `SID:TOKEN` and Seyren's form: `To` (the target),
//! `From` (`TWILIO_PHONE_NUMBER`) and `Body` (`ERROR Check {name} has
//! exceeded its threshold.`, `WARN ...`, or `OK Check {name} has been
//! resolved.`). Other states are not sent.

use crate::check::model::{AlertType, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::request::Request;
use crate::notify::{Delivery, Notifier, NotifyConfig, NotifyError};

/// What the Twilio notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// Accounts URL.
    pub url: String,
    /// Account SID.
    pub account_sid: String,
    /// Auth token.
    pub auth_token: String,
    /// Sender number.
    pub phone_number: String,
}

impl From<&NotifyConfig> for TwilioConfig {
    fn from(c: &NotifyConfig) -> Self {
        TwilioConfig {
            url: c.twilio_url.trim().trim_end_matches('/').to_string(),
            account_sid: c.twilio_account_sid.clone(),
            auth_token: c.twilio_auth_token.clone(),
            phone_number: c.twilio_phone_number.clone(),
        }
    }
}

/// Delivers TWILIO subscriptions.
#[derive(Debug, Clone)]
pub struct TwilioNotifier {
    client: reqwest::Client,
    cfg: TwilioConfig,
}

impl TwilioNotifier {
    /// From its config.
    pub fn new(client: reqwest::Client, cfg: TwilioConfig) -> Self {
        TwilioNotifier { client, cfg }
    }

    /// The request, as Seyren builds it; `None` for a state it does not send.
    pub fn request(&self, n: &NewNotification) -> Result<Option<Request>, NotifyError> {
        if self.cfg.url.is_empty() || self.cfg.account_sid.is_empty() {
            return Err(NotifyError::NotConfigured(
                "TWILIO needs twilio_url and twilio_account_sid (TWILIO_ACCOUNT_SID)",
            ));
        }
        let name = &n.check.name;
        let body = match n.check.state {
            AlertType::Error => format!("ERROR Check {name} has exceeded its threshold."),
            AlertType::Warn => format!("WARN Check {name} has exceeded its threshold."),
            AlertType::Ok => format!("OK Check {name} has been resolved."),
            AlertType::Unknown | AlertType::Exception => return Ok(None),
        };
        Ok(Some(
            Request::form(
                format!("{}/{}/Messages", self.cfg.url, self.cfg.account_sid),
                vec![
                    ("To", n.subscription.target.clone()),
                    ("From", self.cfg.phone_number.clone()),
                    ("Body", body),
                ],
            )
            .basic_auth(&self.cfg.account_sid, &self.cfg.auth_token),
        ))
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        match self.request(n)? {
            Some(r) => r.send(&self.client).await,
            None => Ok(()),
        }
    }
}

impl Notifier for TwilioNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Twilio
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
