//! Running under systemd (`Type=notify`): `READY=1` once every port is
//! bound and the spools are open, a status line (metrics/s, queued,
//! bytes spooled) and the watchdog kept fed from the runtime, `RELOADING=1` and
//! `READY=1` around a SIGHUP reload, `STOPPING=1` at shutdown. Without
//! `NOTIFY_SOCKET` every call is a no-op.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::relay::Relay;

/// How often the status line is refreshed when no watchdog asks for more.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// The service manager, if one is listening.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// Half the watchdog interval, when systemd set one.
    feed_every: Option<Duration>,
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "Telling systemd failed.");
    }
}

impl Service {
    /// From the environment systemd sets (`NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    pub fn from_env() -> Service {
        Service {
            feed_every: sd_notify::watchdog_enabled().map(|d| d / 2),
        }
    }

    /// Startup is done: ports bound, spools open.
    pub fn ready(&self) {
        send(&[NotifyState::Ready, NotifyState::Status("started")]);
    }

    /// A reload begins.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    /// A reload ended, applied or refused.
    pub fn reloaded(&self, outcome: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(outcome)]);
    }

    /// Shutdown begins.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// Feeds the watchdog and refreshes the status line until cancelled.
    /// It runs on the runtime, so a runtime that stops making progress
    /// stops feeding the watchdog, and systemd restarts the service.
    pub async fn run(self, relay: Arc<Relay>, token: CancellationToken) {
        let every = self
            .feed_every
            .map_or(STATUS_EVERY, |d| d.min(STATUS_EVERY));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = (Instant::now(), relay.stats.received.load(Relaxed));
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = (Instant::now(), relay.stats.received.load(Relaxed));
            let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-3);
            let rate = now.1.saturating_sub(last.1) as f64 / secs;
            last = now;
            let status = status_line(&relay, rate);
            if self.feed_every.is_some() {
                send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
            } else {
                send(&[NotifyState::Status(&status)]);
            }
        }
    }
}

/// `"12345 metrics/s, 10 queued, 0 B spooled"`: lines queued in memory and
/// bytes waiting in the disk spools, over every destination.
fn status_line(relay: &Relay, rate: f64) -> String {
    let (mut queued, mut spooled) = (0.0, 0.0);
    for (name, value) in crate::relay::selfmetrics::snapshot(relay, "") {
        if name == ".metricsQueued" {
            queued += value;
        } else if name.ends_with(".spool.bytes") {
            spooled += value;
        }
    }
    format!("{rate:.0} metrics/s, {queued:.0} queued, {spooled:.0} B spooled")
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable: coloured on a terminal, plain otherwise, and under
    /// journald without the timestamp journald adds itself and with a
    /// `<N>` priority prefix it reads as the level.
    Text,
    /// One JSON object a line, for log shippers.
    Json,
}

/// Whether stderr is the journal stream systemd connected (`JOURNAL_STREAM`
/// names its device and inode).
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()),
        Err(_) => false,
    }
}

/// Prefixes each line with its syslog priority, `<3>` for errors to `<7>`
/// for debug, which journald takes as the entry's level.
struct Priority<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Priority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let p = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{p}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Installs the log subscriber on stderr, filtered by `RUST_LOG` (`info`
/// by default).
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text if stderr_is_journal() => {
            let plain = tracing_subscriber::fmt::format()
                .without_time()
                .with_ansi(false);
            builder
                .with_ansi(false)
                .event_format(Priority(plain))
                .init();
        }
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
