//! IRCCAT: one TCP connection to `IRCCAT_HOST:IRCCAT_PORT` per channel of
//! the comma-separated target, writing Seyren's line `"{channel} {message}\n"`:
//! `%RED[CRIT]%NORMAL {name} | Please check {link}.` for ERROR,
//! `%YELLOW[WARN]%NORMAL ...` for WARN, `%GREEN[OK]%NORMAL {name} | {link}`
//! for OK. Other states are not sent.

use tokio::io::AsyncWriteExt;

use crate::check::model::{AlertType, SubscriptionType};
use crate::check::NewNotification;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// What the irccat notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct IrccatConfig {
    /// irccat's host.
    pub host: String,
    /// irccat's port.
    pub port: u16,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for IrccatConfig {
    fn from(c: &NotifyConfig) -> Self {
        IrccatConfig {
            host: c.irccat_host.clone(),
            port: c.irccat_port,
            links: Links::from(c),
        }
    }
}

/// Delivers IRCCAT subscriptions.
#[derive(Debug, Clone)]
pub struct IrccatNotifier {
    cfg: IrccatConfig,
}

impl IrccatNotifier {
    /// From its config.
    pub fn new(cfg: IrccatConfig) -> Self {
        IrccatNotifier { cfg }
    }

    /// The lines to write, one per channel, each on its own connection.
    pub fn lines(&self, n: &NewNotification) -> Vec<String> {
        let c = &n.check;
        let url = self.cfg.links.check_url(&c.id);
        let message = match c.state {
            AlertType::Error => format!("%RED[CRIT]%NORMAL {} | Please check {url}.", c.name),
            AlertType::Warn => format!("%YELLOW[WARN]%NORMAL {} | Please check {url}.", c.name),
            AlertType::Ok => format!("%GREEN[OK]%NORMAL {} | {url}", c.name),
            AlertType::Unknown | AlertType::Exception => return Vec::new(),
        };
        n.subscription
            .target
            .split(',')
            .map(|channel| format!("{channel} {message}\n"))
            .collect()
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        for line in self.lines(n) {
            let mut s = tokio::net::TcpStream::connect((self.cfg.host.as_str(), self.cfg.port))
                .await
                .map_err(NotifyError::Io)?;
            s.write_all(line.as_bytes())
                .await
                .map_err(NotifyError::Io)?;
            s.shutdown().await.map_err(NotifyError::Io)?;
        }
        Ok(())
    }
}

impl Notifier for IrccatNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Irccat
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}
