//! LOGGER: Seyren's line at info level, under the log target `seyren`:
//! `Seyren notification '{name}' changed state to '{STATE}' @ '{link}' with
//! {n} alert(s)`.

use crate::check::model::SubscriptionType;
use crate::check::NewNotification;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig};

/// What the logger needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct LoggerConfig {
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for LoggerConfig {
    fn from(c: &NotifyConfig) -> Self {
        LoggerConfig {
            links: Links::from(c),
        }
    }
}

/// Delivers LOGGER subscriptions.
#[derive(Debug, Clone)]
pub struct LoggerNotifier {
    cfg: LoggerConfig,
}

impl LoggerNotifier {
    /// From its config.
    pub fn new(cfg: LoggerConfig) -> Self {
        LoggerNotifier { cfg }
    }

    /// Seyren's line.
    pub fn line(&self, n: &NewNotification) -> String {
        format!(
            "Seyren notification '{}' changed state to '{}' @ '{}' with {} alert(s)",
            n.check.name,
            n.check.state,
            self.cfg.links.check_url(&n.check.id),
            n.alerts.len()
        )
    }
}

impl Notifier for LoggerNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Logger
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        let line = self.line(n);
        Box::pin(async move {
            tracing::info!(target: "seyren", "{line}");
            Ok(())
        })
    }
}
