//! EMAIL through SMTP (lettre): one message per notification to the
//! subscription's address, HTML with a table of the changes as in Seyren's
//! template. `protocol = "smtp"` upgrades with STARTTLS when the server
//! offers it (required on port 587, as Seyren does); `"smtps"` speaks TLS
//! from the start. Login only when a username is set.

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::check::model::SubscriptionType;
use crate::check::NewNotification;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError, SmtpConfig};

/// What the email notifier needs: `[smtp]` and a little of `[notify]`.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The mail server.
    pub smtp: SmtpConfig,
    /// One delivery attempt's time limit.
    pub timeout_secs: u64,
    /// Links back to the UI.
    pub links: Links,
}

impl EmailConfig {
    /// From `[notify]` and `[smtp]`.
    pub fn new(c: &NotifyConfig, smtp: &SmtpConfig) -> Self {
        EmailConfig {
            smtp: smtp.clone(),
            timeout_secs: c.timeout_secs,
            links: Links::from(c),
        }
    }
}

/// Delivers EMAIL subscriptions (see the module comment for the payload).
#[derive(Debug, Clone)]
pub struct EmailNotifier {
    cfg: EmailConfig,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl EmailNotifier {
    /// From its config.
    pub fn new(cfg: EmailConfig) -> Self {
        EmailNotifier { cfg }
    }

    /// Subject and HTML body.
    pub fn render(&self, n: &NewNotification) -> (String, String) {
        let c = &n.check;
        let subject = format!("carbonwatch alert: {} is {}", c.name, c.state);
        let mut rows = String::new();
        for a in &n.alerts {
            let when = jiff::Timestamp::from_millisecond(a.timestamp)
                .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            let th = |t: &Option<crate::check::model::Threshold>| {
                t.as_ref().map_or(String::new(), |t| t.text.clone())
            };
            rows.push_str(&format!(
                "<tr><td>{when}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                escape(&a.target),
                a.value.map_or("no data".into(), |v| v.to_string()),
                th(&a.warn),
                th(&a.error),
                a.from_type,
                a.to_type
            ));
        }
        let body = format!(
            "<html><body><h2><a href=\"{url}\">{name}</a> is {state}</h2><p>{desc}</p>\
             <table border=\"1\"><tr><th>Timestamp</th><th>Target</th><th>Value</th><th>Warn</th><th>Error</th><th>From</th><th>To</th></tr>\n{rows}</table></body></html>",
            url = escape(&self.cfg.links.check_url(&c.id)),
            name = escape(&c.name),
            state = c.state,
            desc = escape(c.description.as_deref().unwrap_or("")),
        );
        (subject, body)
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, NotifyError> {
        let s = &self.cfg.smtp;
        let tls_params = || TlsParameters::new(s.host.clone()).map_err(NotifyError::Smtp);
        let tls = match (s.protocol.as_str(), s.port) {
            ("smtps", _) => Tls::Wrapper(tls_params()?),
            (_, 587) => Tls::Required(tls_params()?),
            _ => Tls::Opportunistic(tls_params()?),
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(
                self.cfg.timeout_secs.max(1),
            )));
        if !s.username.is_empty() {
            b = b.credentials(Credentials::new(s.username.clone(), s.password.clone()));
        }
        Ok(b.build())
    }
}

impl EmailNotifier {
    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        if self.cfg.smtp.host.is_empty() {
            return Err(NotifyError::NotConfigured("no SMTP host"));
        }
        let address = |what| move |source| NotifyError::Address { what, source };
        let from: Mailbox = self.cfg.smtp.from.parse().map_err(address("SMTP from"))?;
        let to: Mailbox = n
            .subscription
            .target
            .parse()
            .map_err(address("recipient"))?;
        let (subject, body) = self.render(n);
        let msg = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_HTML)
            .body(body)?;
        self.transport()?.send(msg).await?;
        Ok(())
    }
}

impl Notifier for EmailNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Email
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
