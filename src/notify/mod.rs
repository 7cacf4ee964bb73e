//! Stage 7, **notify**: delivering alert notifications.
//!
//! Every channel is a [`Notifier`] of the same shape (a config struct of
//! its own built from `[notify]`, a payload builder that returns the
//! [`request::Request`]s, lines or datagrams it will send, and `send`), so
//! knowing one means knowing all. Seyren's fifteen: [`email`] (SMTP through
//! lettre), [`pagerduty`], [`hipchat`], [`hubot`], [`flowdock`], [`http`]
//! (Seyren's JSON payload), [`irccat`] (TCP lines), [`pushover`],
//! [`logger`], [`snmp`] (SNMPv2c traps), [`slack`], [`twilio`],
//! [`victorops`], [`opsgenie`] and [`bigpanda`]; then [`alertmanager`] (v2
//! alerts API, so grouping and silences come from Alertmanager) and the
//! chat tools Seyren never had, [`telegram`], [`msteams`], [`discord`] and
//! [`mattermost`], whose words come from [`message`]. [`outbox`] drives them from the store's
//! outbox with retries; when a subscription listens is the vocabulary's
//! (`check::schedule`), decided before a notification is queued.

pub mod alertmanager;
pub mod bigpanda;
pub mod discord;
pub mod email;
pub mod flowdock;
pub mod hipchat;
pub mod http;
pub mod hubot;
pub mod irccat;
pub mod logger;
pub mod mattermost;
pub mod message;
pub mod msteams;
pub mod netpolicy;
pub mod opsgenie;
pub mod outbox;
pub mod pagerduty;
pub mod pushover;
pub mod request;
pub mod slack;
pub mod snmp;
pub mod telegram;
pub mod twilio;
pub mod victorops;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::check::model::{Subscription, SubscriptionType};
use crate::check::NewNotification;

/// A delivery failure.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The channel is not configured (for example no SMTP host).
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
    /// The HTTP request could not be made.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The mail server refused or could not be reached.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// An address (the sender or the subscription's target) is not one.
    #[error("{what}: {source}")]
    Address {
        /// Which address it was (`from`, `to`).
        what: &'static str,
        /// What lettre found wrong with it.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The message could not be built.
    #[error("message: {0}")]
    Message(#[from] lettre::error::Error),
    /// A socket (irccat's TCP, SNMP's UDP) failed.
    #[error(transparent)]
    Io(std::io::Error),
    /// The service answered 2xx but said it failed (Slack's `ok: false`).
    #[error("refused: {0}")]
    Refused(String),
    /// The endpoint answered with a non-2xx status; `body` is the start
    /// of its answer, for the log (never echoed to an API client).
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The first 200 characters of the answer.
        body: String,
    },
}

impl NotifyError {
    /// The error as an API client may see it: a foreign endpoint's answer
    /// is reduced to its status, so the test endpoint cannot be used to
    /// read internal services.
    pub fn for_client(&self) -> String {
        match self {
            NotifyError::Status { status, .. } => format!("HTTP {status}"),
            other => other.to_string(),
        }
    }
}

/// `[smtp]`: the mail server (Seyren's `SMTP_*` variables override it).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    /// Server host; `""` disables EMAIL subscriptions.
    pub host: String,
    /// Server port (25, 587 for STARTTLS, 465 for `smtps`).
    pub port: u16,
    /// Sender address (`SMTP_FROM` or `SEYREN_FROM_EMAIL`).
    pub from: String,
    /// Login, if the server needs one.
    pub username: String,
    /// Password for `username`; never logged.
    pub password: String,
    /// `smtp` (STARTTLS when the server offers it, required on port 587)
    /// or `smtps` (TLS from the first byte).
    pub protocol: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "localhost".into(),
            port: 25,
            from: "alert@carbonwatch".into(),
            username: String::new(),
            password: String::new(),
            protocol: "smtp".into(),
        }
    }
}

/// `[notify]`: delivery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NotifyConfig {
    /// Base URL of this service's UI, for links (Seyren's `SEYREN_URL`).
    pub seyren_url: String,
    /// Graphite's URL, for preview images in payloads: `[graphite] url`,
    /// copied here by the config.
    #[serde(skip)]
    pub graphite_url: String,
    /// When set, every HTTP subscription posts here (`HTTP_NOTIFICATION_URL`).
    pub http_notification_url: String,
    /// Incoming-webhook URL for SLACK subscriptions whose target is a
    /// channel name rather than a URL.
    pub slack_webhook_url: String,
    /// Name the Slack message is posted as (`SLACK_USERNAME`).
    pub slack_username: String,
    /// Icon of the Slack message (`SLACK_ICON_URL`).
    pub slack_icon_url: String,
    /// Comma-separated emojis prefixed to the text, one per state in the
    /// order UNKNOWN, OK, WARN, ERROR, EXCEPTION (`SLACK_EMOJIS`).
    pub slack_emojis: String,
    /// PagerDuty Events API base URL (`PAGERDUTY_API_URL`).
    pub pagerduty_url: String,
    /// `v1`, Seyren's Events API call, or `v2` (`PAGERDUTY_EVENTS_API`).
    pub pagerduty_events_api: String,
    /// Alertmanager base URL for ALERTMANAGER subscriptions whose target is
    /// empty.
    pub alertmanager_url: String,
    // Each channel's settings below are named after Seyren's environment
    // variable, lower-cased (`HIPCHAT_BASEURL` is `hipchat_baseurl`); the
    // variable overrides the key. URLs default to the public services.
    /// Slack's legacy token (`SLACK_TOKEN`): with it, a SLACK target that
    /// names a channel goes through `chat.postMessage`, as in Seyren.
    pub slack_token: String,
    /// Slack's Web API base (`SLACK_API_URL`).
    pub slack_api_url: String,
    /// HipChat (or a compatible server) base URL (`HIPCHAT_BASEURL`).
    pub hipchat_baseurl: String,
    /// HipChat room notification token (`HIPCHAT_AUTHTOKEN`).
    pub hipchat_authtoken: String,
    /// Hubot's base URL (`HUBOT_URL`); HUBOT posts to `/seyren/alert`.
    pub hubot_url: String,
    /// Flowdock's API base (`FLOWDOCK_API_URL`).
    pub flowdock_api_url: String,
    /// Name Flowdock shows as the sender (`FLOWDOCK_EXTERNAL_USERNAME`).
    pub flowdock_external_username: String,
    /// Comma-separated tags added to every Flowdock message (`FLOWDOCK_TAGS`).
    pub flowdock_tags: String,
    /// Comma-separated emojis by state ordinal (`FLOWDOCK_EMOJIS`).
    pub flowdock_emojis: String,
    /// irccat's host (`IRCCAT_HOST`).
    pub irccat_host: String,
    /// irccat's TCP port (`IRCCAT_PORT`).
    pub irccat_port: u16,
    /// Pushover's API base (`PUSHOVER_API_URL`).
    pub pushover_api_url: String,
    /// Pushover application token (`PUSHOVER_APP_API_TOKEN`).
    pub pushover_app_api_token: String,
    /// Where SNMP traps go (`SNMP_HOST`).
    pub snmp_host: String,
    /// Trap port (`SNMP_PORT`).
    pub snmp_port: u16,
    /// SNMPv2c community (`SNMP_COMMUNITY`).
    pub snmp_community: String,
    /// The trap's OID; the varbinds are `.1` to `.8` under it (`SNMP_OID`).
    pub snmp_oid: String,
    /// Twilio's accounts URL (`TWILIO_URL`).
    pub twilio_url: String,
    /// Twilio account SID (`TWILIO_ACCOUNT_SID`).
    pub twilio_account_sid: String,
    /// Twilio auth token (`TWILIO_AUTH_TOKEN`).
    pub twilio_auth_token: String,
    /// The number SMS are sent from (`TWILIO_PHONE_NUMBER`).
    pub twilio_phone_number: String,
    /// OpsGenie's API base (`OPSGENIE_API_URL`).
    pub opsgenie_api_url: String,
    /// Comma-separated teams OpsGenie alerts go to (`OPSGENIE_TEAMS`).
    pub opsgenie_teams: String,
    /// VictorOps REST endpoint, ending in `/`; the routing key is resolved
    /// against it (`VICTOROPS_REST_ENDPOINT`).
    pub victorops_rest_endpoint: String,
    /// BigPanda's alerts URL (`BIGPANDA_NOTIFICATION_URL`).
    pub bigpanda_notification_url: String,
    /// BigPanda bearer token (`BIGPANDA_AUTH_BEARER`).
    pub bigpanda_auth_bearer: String,
    /// Telegram's Bot API base (`TELEGRAM_API_URL`).
    pub telegram_api_url: String,
    /// Telegram bot token (`TELEGRAM_BOT_TOKEN`).
    pub telegram_bot_token: String,
    /// Delivery attempts before a notification is marked failed.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub retry_min_secs: u64,
    /// Longest retry delay.
    pub retry_max_secs: u64,
    /// One delivery attempt's time limit, so a hung endpoint cannot hold a
    /// delivery slot.
    pub timeout_secs: u64,
    /// Deliveries in flight at once; one slow channel cannot take them all
    /// for longer than `timeout_secs`.
    pub concurrency: usize,
    /// Deliveries in flight at once to one destination (a subscription
    /// type and target): a hanging endpoint holds at most this many of
    /// `concurrency`, so the others keep flowing.
    pub per_destination_concurrency: usize,
    /// Deliveries waiting for one destination. Past it a notification
    /// stays pending in the store and is picked up by a later poll,
    /// counted as `carbonwatch_notifications_deferred_busy_total`.
    pub per_destination_queue: usize,
    /// Time limit of `PUT .../subscriptions/{sid}/test`, which answers
    /// within it whatever the target does.
    pub test_timeout_secs: u64,
    /// Networks the test endpoint may not send to (CIDR), so an API user
    /// cannot make carbonwatch probe its own host or a cloud metadata
    /// service. Loopback and link-local by default.
    pub test_deny_networks: Vec<String>,
    /// Networks allowed even inside `test_deny_networks`.
    pub test_allow_networks: Vec<String>,
    /// How often the outbox looks for due retries and deferred deliveries.
    pub poll_interval_ms: u64,
    /// Time zone of subscription windows (IANA name).
    pub timezone: String,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            seyren_url: "http://localhost:8080".into(),
            graphite_url: "http://localhost:80".into(),
            http_notification_url: String::new(),
            slack_webhook_url: String::new(),
            slack_username: "carbonwatch".into(),
            slack_icon_url: String::new(),
            slack_emojis: String::new(),
            pagerduty_url: "https://events.pagerduty.com".into(),
            pagerduty_events_api: "v1".into(),
            alertmanager_url: "http://localhost:9093".into(),
            slack_token: String::new(),
            slack_api_url: "https://slack.com/api".into(),
            hipchat_baseurl: "https://api.hipchat.com".into(),
            hipchat_authtoken: String::new(),
            hubot_url: String::new(),
            flowdock_api_url: "https://api.flowdock.com".into(),
            flowdock_external_username: "Seyren".into(),
            flowdock_tags: String::new(),
            flowdock_emojis: String::new(),
            irccat_host: "localhost".into(),
            irccat_port: 12345,
            pushover_api_url: "https://api.pushover.net".into(),
            pushover_app_api_token: String::new(),
            snmp_host: "localhost".into(),
            snmp_port: 162,
            snmp_community: "public".into(),
            snmp_oid: "1.3.6.1.4.1.32473.1".into(),
            twilio_url: "https://api.twilio.com/2010-04-01/Accounts".into(),
            twilio_account_sid: String::new(),
            twilio_auth_token: String::new(),
            twilio_phone_number: String::new(),
            opsgenie_api_url: "https://api.opsgenie.com".into(),
            opsgenie_teams: "ops".into(),
            victorops_rest_endpoint: String::new(),
            bigpanda_notification_url: "https://api.bigpanda.io/data/v2/alerts".into(),
            bigpanda_auth_bearer: String::new(),
            telegram_api_url: "https://api.telegram.org".into(),
            telegram_bot_token: String::new(),
            max_attempts: 8,
            retry_min_secs: 5,
            retry_max_secs: 600,
            timeout_secs: 10,
            concurrency: 16,
            per_destination_concurrency: 2,
            per_destination_queue: 64,
            test_timeout_secs: 5,
            test_deny_networks: [
                "127.0.0.0/8",
                "::1/128",
                "169.254.0.0/16",
                "fe80::/10",
                "0.0.0.0/8",
                "::/128",
            ]
            .map(String::from)
            .to_vec(),
            test_allow_networks: Vec::new(),
            poll_interval_ms: 1000,
            timezone: "UTC".into(),
        }
    }
}

impl NotifyConfig {
    /// Delay before retry number `attempt` (1-based).
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let secs = self
            .retry_min_secs
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        Duration::from_secs(secs.min(self.retry_max_secs.max(self.retry_min_secs)))
    }
}

/// A delivery in progress. Boxed, so that every notifier can stand behind
/// `dyn Notifier`.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'a>>;

/// A delivery channel: a config of its own, a payload builder, and `send`.
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// The subscription type it serves.
    fn kind(&self) -> SubscriptionType;
    /// The URL a subscription's own target makes it call, for the types
    /// whose target is one (URLs from `[notify]` are the operator's and
    /// not subject to the test endpoint's network policy).
    fn target_url<'a>(&self, sub: &'a Subscription) -> Option<&'a str> {
        let _ = sub;
        None
    }
    /// Delivers one notification.
    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a>;
}

/// Links back to the UI, for notifiers' messages (Seyren's `SEYREN_URL`).
#[derive(Debug, Clone)]
pub struct Links {
    /// The UI's base URL.
    pub seyren_url: String,
}

impl From<&NotifyConfig> for Links {
    fn from(c: &NotifyConfig) -> Self {
        Links {
            seyren_url: c.seyren_url.clone(),
        }
    }
}

impl Links {
    /// Link to a check in the UI.
    pub fn check_url(&self, check_id: &str) -> String {
        format!(
            "{}/#/checks/{check_id}",
            self.seyren_url.trim_end_matches('/')
        )
    }
}

/// One notifier per subscription type.
#[derive(Debug, Clone)]
pub struct Notifiers {
    by_kind: Vec<Arc<dyn Notifier>>,
}

impl Notifiers {
    /// Builds every notifier from the config.
    pub fn new(cfg: &NotifyConfig, smtp: &SmtpConfig) -> Self {
        Self::with_client(cfg, smtp, Self::client(cfg.timeout_secs).build())
    }

    /// The notifiers the test endpoint uses: their HTTP client resolves
    /// names through [`netpolicy::PolicyResolver`] and gives up after
    /// `test_timeout_secs`.
    pub fn for_tests(cfg: &NotifyConfig, smtp: &SmtpConfig) -> Self {
        let policy = Arc::new(netpolicy::NetPolicy::new(cfg));
        let client = Self::client(cfg.test_timeout_secs)
            .dns_resolver(Arc::new(netpolicy::PolicyResolver(policy)))
            .build();
        Self::with_client(cfg, smtp, client)
    }

    fn client(timeout_secs: u64) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(timeout_secs.max(1)))
            .user_agent(concat!("carbonwatch/", env!("CARGO_PKG_VERSION")))
    }

    fn with_client(
        cfg: &NotifyConfig,
        smtp: &SmtpConfig,
        client: reqwest::Result<reqwest::Client>,
    ) -> Self {
        let client = client.expect("the HTTP client builds with static settings");
        let c = client;
        let by_kind: Vec<Arc<dyn Notifier>> = vec![
            Arc::new(email::EmailNotifier::new(email::EmailConfig::new(
                cfg, smtp,
            ))),
            Arc::new(pagerduty::PagerDutyNotifier::new(c.clone(), cfg.into())),
            Arc::new(hipchat::HipchatNotifier::new(c.clone(), cfg.into())),
            Arc::new(hubot::HubotNotifier::new(c.clone(), cfg.into())),
            Arc::new(flowdock::FlowdockNotifier::new(c.clone(), cfg.into())),
            Arc::new(http::HttpNotifier::new(c.clone(), cfg.into())),
            Arc::new(irccat::IrccatNotifier::new(cfg.into())),
            Arc::new(pushover::PushoverNotifier::new(c.clone(), cfg.into())),
            Arc::new(logger::LoggerNotifier::new(cfg.into())),
            Arc::new(snmp::SnmpNotifier::new(cfg.into())),
            Arc::new(slack::SlackNotifier::new(c.clone(), cfg.into())),
            Arc::new(twilio::TwilioNotifier::new(c.clone(), cfg.into())),
            Arc::new(victorops::VictorOpsNotifier::new(c.clone(), cfg.into())),
            Arc::new(opsgenie::OpsGenieNotifier::new(c.clone(), cfg.into())),
            Arc::new(bigpanda::BigPandaNotifier::new(c.clone(), cfg.into())),
            Arc::new(alertmanager::AlertmanagerNotifier::new(
                c.clone(),
                cfg.into(),
            )),
            Arc::new(telegram::TelegramNotifier::new(c.clone(), cfg.into())),
            Arc::new(msteams::MsTeamsNotifier::new(c.clone(), cfg.into())),
            Arc::new(discord::DiscordNotifier::new(c.clone(), cfg.into())),
            Arc::new(mattermost::MattermostNotifier::new(c, cfg.into())),
        ];
        Notifiers { by_kind }
    }

    /// The notifier for `kind`.
    pub fn get(&self, kind: SubscriptionType) -> Option<&dyn Notifier> {
        self.by_kind
            .iter()
            .find(|n| n.kind() == kind)
            .map(|n| n.as_ref())
    }

    /// The URL a subscription's own target makes carbonwatch call, if any
    /// (see [`Notifier::target_url`]).
    pub fn target_url<'a>(&self, sub: &'a Subscription) -> Option<&'a str> {
        sub.kind
            .and_then(|k| self.get(k))
            .and_then(|n| n.target_url(sub))
    }

    /// Delivers through the notifier for the subscription's type.
    pub async fn send(&self, n: &NewNotification) -> Result<(), NotifyError> {
        match n.subscription.kind.and_then(|k| self.get(k)) {
            Some(notifier) => notifier.send(n).await,
            None => Err(NotifyError::NotConfigured(
                "no notifier for this subscription type",
            )),
        }
    }
}

/// Fails on a non-2xx answer, with the start of its body.
async fn expect_success(resp: reqwest::Response) -> Result<(), NotifyError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    Err(NotifyError::Status {
        status: status.as_u16(),
        body: body.chars().take(200).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::model::{Alert, AlertType, Check, Subscription, Threshold};
    use crate::check::{NewNotification, NotificationKind};

    fn notification(kind: SubscriptionType, target: &str, state: AlertType) -> NewNotification {
        let mut check: Check = serde_json::from_value(serde_json::json!({
            "id": "c1", "name": "ssh", "description": "failed logins", "target": "auth.*.failed",
            "warn": "5", "error": "10", "enabled": true, "live": true}))
        .unwrap();
        check.state = state;
        let subscription: Subscription = serde_json::from_value(
            serde_json::json!({"type": kind, "target": target, "enabled": true}),
        )
        .unwrap();
        let alert = Alert {
            id: "a1".into(),
            check_id: "c1".into(),
            value: Some(12.0),
            target: "auth.web1.failed".into(),
            warn: Threshold::parse("5"),
            error: Threshold::parse("10"),
            from_type: AlertType::Warn,
            to_type: state,
            timestamp: 1_700_000_000_000,
            detected_timestamp: None,
        };
        NewNotification {
            kind: NotificationKind::Change,
            check,
            subscription,
            alerts: vec![alert],
            not_before_ms: 0,
        }
    }

    fn cfg() -> NotifyConfig {
        NotifyConfig {
            seyren_url: "http://cw".into(),
            ..NotifyConfig::default()
        }
    }

    #[test]
    fn every_type_has_its_notifier() {
        let all = Notifiers::new(&cfg(), &SmtpConfig::default());
        for kind in SubscriptionType::ALL {
            assert_eq!(all.get(kind).map(|n| n.kind()), Some(kind));
        }
    }

    #[test]
    fn logger_writes_seyrens_line() {
        let n = notification(SubscriptionType::Logger, "", AlertType::Error);
        assert_eq!(
            logger::LoggerNotifier::new((&cfg()).into()).line(&n),
            "Seyren notification 'ssh' changed state to 'ERROR' @ 'http://cw/#/checks/c1' with 1 alert(s)"
        );
    }

    #[test]
    fn slack_text_follows_seyren() {
        let n = notification(SubscriptionType::Slack, "#ops!", AlertType::Error);
        let text = slack::SlackNotifier::new(reqwest::Client::new(), (&cfg()).into()).text(&n);
        assert_eq!(
            text,
            "*ERROR* ssh [http://cw/#/checks/c1]\n> failed logins\n```\nauth.web1.failed = 12 (WARN to ERROR)\n```\n#error <!channel>"
        );
    }

    #[test]
    fn pagerduty_v1_is_seyrens_create_event() {
        let pd = pagerduty::PagerDutyNotifier::new(reqwest::Client::new(), (&cfg()).into());
        let r = pd
            .event_v1(&notification(
                SubscriptionType::Pagerduty,
                "svc",
                AlertType::Warn,
            ))
            .unwrap();
        assert_eq!(
            r.url,
            "https://events.pagerduty.com/generic/2010-04-15/create_event.json"
        );
        let request::Body::Json(b) = &r.body else {
            panic!("JSON")
        };
        assert_eq!(
            (
                &b["service_key"],
                &b["event_type"],
                &b["incident_key"],
                &b["client"]
            ),
            (
                &serde_json::json!("svc"),
                &serde_json::json!("trigger"),
                &serde_json::json!("MonitoringAlerts_c1"),
                &serde_json::json!("Seyren")
            )
        );
        assert_eq!(b["description"], "Check 'ssh' has exceeded its threshold.");
        let check: serde_json::Value =
            serde_json::from_str(b["details"]["CHECK"].as_str().unwrap()).unwrap();
        assert_eq!(check["allow_no_data"], false, "snake_case: {check}");
        let alerts: serde_json::Value =
            serde_json::from_str(b["details"]["ALERTS"].as_str().unwrap()).unwrap();
        assert_eq!(alerts[0]["to_type"], "WARN");
        assert_eq!(b["details"]["SEYREN_URL"], "http://cw");
        let ok = pd
            .event_v1(&notification(
                SubscriptionType::Pagerduty,
                "svc",
                AlertType::Ok,
            ))
            .unwrap();
        let request::Body::Json(ok) = &ok.body else {
            panic!("JSON")
        };
        assert_eq!(ok["event_type"], "resolve");
        assert_eq!(ok["description"], "Check 'ssh' has been resolved.");
    }

    #[test]
    fn pagerduty_triggers_and_resolves_one_incident_per_check() {
        let pd = pagerduty::PagerDutyNotifier::new(reqwest::Client::new(), (&cfg()).into());
        let fire = pd
            .event(&notification(
                SubscriptionType::Pagerduty,
                "key",
                AlertType::Error,
            ))
            .unwrap();
        assert_eq!(
            (
                fire["event_action"].as_str(),
                fire["payload"]["severity"].as_str()
            ),
            (Some("trigger"), Some("error"))
        );
        assert_eq!(fire["routing_key"], "key");
        assert_eq!(fire["dedup_key"], "MonitoringAlerts_c1");
        let ok = pd
            .event(&notification(
                SubscriptionType::Pagerduty,
                "key",
                AlertType::Ok,
            ))
            .unwrap();
        assert_eq!(ok["event_action"], "resolve");
        assert_eq!(ok["dedup_key"], fire["dedup_key"]);
        assert!(pd
            .event(&notification(
                SubscriptionType::Pagerduty,
                "key",
                AlertType::Unknown
            ))
            .is_none());
    }

    #[test]
    fn alertmanager_resolves_the_state_it_leaves() {
        let am = alertmanager::AlertmanagerNotifier::new(reqwest::Client::new(), (&cfg()).into());
        let v = am.alerts(&notification(
            SubscriptionType::Alertmanager,
            "",
            AlertType::Error,
        ));
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["labels"]["severity"], "warning");
        assert_eq!(
            list[0]["startsAt"], list[0]["endsAt"],
            "the WARN alert ends now"
        );
        assert_eq!(list[1]["labels"]["severity"], "critical");
        assert_ne!(list[1]["startsAt"], list[1]["endsAt"]);
    }

    #[test]
    fn email_escapes_and_lists_changes() {
        let mut n = notification(SubscriptionType::Email, "a@b.c", AlertType::Error);
        n.check.name = "<script>".into();
        let (subject, body) =
            email::EmailNotifier::new(email::EmailConfig::new(&cfg(), &SmtpConfig::default()))
                .render(&n);
        assert_eq!(subject, "carbonwatch alert: <script> is ERROR");
        assert!(body.contains("&lt;script&gt;") && !body.contains("<script>"));
        assert!(body.contains(
            "<td>auth.web1.failed</td><td>12</td><td>5</td><td>10</td><td>WARN</td><td>ERROR</td>"
        ));
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let c = NotifyConfig {
            retry_min_secs: 5,
            retry_max_secs: 60,
            ..NotifyConfig::default()
        };
        let d: Vec<u64> = (1..=6).map(|a| c.retry_delay(a).as_secs()).collect();
        assert_eq!(d, vec![5, 10, 20, 40, 60, 60]);
    }
}
