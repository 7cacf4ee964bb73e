//! Wiring: binds every socket of a [`Config`], starts the stages, reloads on
//! request and shuts down in order (stop accepting, let connections flush,
//! drain destination queues within the grace period, report the rest).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::Alerting;
use crate::check::Store;
use crate::config::{Config, ConfigError, ConfigFormat};
use crate::listen::{
    ListenCtx, PickleTcpListener, PlaintextTcpListener, PlaintextUdpListener, PlaintextUnixListener,
};
use crate::notify::outbox::{Inbox, Outbox};
use crate::notify::Notifiers;
use crate::relay::{selfmetrics, Relay};
use crate::stats::Stats;
use crate::store::writer::WriterStats;
use crate::store::SqliteStore;

/// Why carbonwatch could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The alerting runtime's thread could not start.
    #[error("alerting runtime: {0}")]
    AlertRuntime(#[source] std::io::Error),
    /// The alert store could not be opened.
    #[error("alerting: cannot open the store {path}: {source}")]
    Store {
        /// `[alerting] store`.
        path: String,
        /// What the store said.
        #[source]
        source: crate::check::StoreError,
    },
    /// The engine could not start (its stored checks, its time zone).
    #[error("alerting: {0}")]
    Engine(#[source] crate::alert::CheckError),
    /// The admin port's certificate or key could not be loaded.
    #[error("[admin] TLS: cannot load {file} and its key: {source}")]
    Tls {
        /// `[admin] tls_cert_file`.
        file: String,
        /// What was wrong with it or its key.
        source: crate::api::server::TlsError,
    },
    /// A socket could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// The config key of the listener (`plaintext_tcp`, `admin`).
        what: &'static str,
        /// The address it asked for.
        addr: SocketAddr,
        /// Why the bind failed (in use, not permitted).
        source: std::io::Error,
    },
    /// The unix socket could not be bound.
    #[error("cannot listen on {} (plaintext_unix): {source}", .path.display())]
    BindUnix {
        /// `[listen] plaintext_unix`.
        path: std::path::PathBuf,
        /// Why the bind failed.
        source: std::io::Error,
    },
}

/// A running carbonwatch: the addresses it bound (port 0 resolved), the
/// relay and alerting for inspection, and what shutdown needs.
#[derive(Debug)]
pub struct App {
    /// Bound plaintext TCP address.
    pub plaintext_tcp: Option<SocketAddr>,
    /// Bound plaintext UDP address.
    pub plaintext_udp: Option<SocketAddr>,
    /// Bound pickle TCP address.
    pub pickle_tcp: Option<SocketAddr>,
    /// Bound admin HTTP address.
    pub admin: Option<SocketAddr>,
    /// The relay, for inspection.
    pub relay: Arc<Relay>,
    /// Alerting (the engine, its store and notifiers), when `[alerting]
    /// store` is set.
    pub alerts: Option<Alerting>,
    admin_stats: Option<Arc<crate::api::server::AdminStats>>,
    /// The running config without its checks, which are held once, in
    /// `file_checks`, shared with the engine.
    config: Config,
    /// The checks the config file defines, as last loaded: a reload
    /// upserts those that differ and deletes those that are gone.
    file_checks: Vec<Arc<crate::check::Check>>,
    listeners: CancellationToken,
    background: CancellationToken,
    tasks: TaskTracker,
    connections: TaskTracker,
    /// The aggregators' expiry task: stopped after the connections (so
    /// it sees their last points) and before the relay drains.
    aggregation: (CancellationToken, TaskTracker),
    _alert_runtime: Option<AlertRuntime>,
}

/// The alerting stages' own runtime: one worker thread, so that a
/// notification's hops (engine, store commit, delivery) are scheduled by
/// the OS beside the relay's workers instead of queueing behind their
/// reads. Under a saturating load this took the alert-latency p50 from
/// milliseconds back to its idle figure.
#[derive(Debug)]
struct AlertRuntime(Option<tokio::runtime::Runtime>);

impl AlertRuntime {
    fn new() -> std::io::Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("carbonwatch-alert")
            .enable_all()
            .build()
            .map(|rt| AlertRuntime(Some(rt)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("runtime until dropped").handle()
    }
}

impl Drop for AlertRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which async code may not do; its
        // tasks are finished or cancelled by now.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// What shutdown achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Lines neither delivered within the grace period nor spooled.
    pub undelivered: u64,
    /// Lines written to the disk spool for the next start.
    pub spooled: u64,
    /// Points in aggregation buckets still open at shutdown: never emitted
    /// (c-relay loses them too).
    pub aggregate_points_unemitted: u64,
}

fn bind_err(what: &'static str, addr: SocketAddr) -> impl FnOnce(std::io::Error) -> StartError {
    move |source| StartError::Bind { what, addr, source }
}

impl App {
    /// Binds and starts everything `config` enables.
    pub async fn start(mut config: Config) -> Result<App, StartError> {
        // Not `collect()`: that would reuse the checks' buffer, 49 times
        // the size the pointers need.
        let mut file_checks = Vec::with_capacity(config.checks.len());
        file_checks.extend(std::mem::take(&mut config.checks).into_iter().map(Arc::new));
        let stats = Arc::new(Stats::default());
        let (listeners, background) = (CancellationToken::new(), CancellationToken::new());
        let tasks = TaskTracker::new();
        let mut alert_runtime = None;
        let mut poll_stats = None;
        let alerts = if config.alerting.store.is_empty() {
            None
        } else {
            let rt = AlertRuntime::new().map_err(StartError::AlertRuntime)?;
            let alerting = start_alerting(
                &config,
                file_checks.clone(),
                &background,
                &tasks,
                rt.handle(),
            )
            .await?;
            let poller = crate::poll::Poller::new(config.graphite.clone(), alerting.engine.clone());
            poll_stats = Some(poller.stats.clone());
            tasks.spawn_on(poller.run(background.clone()), rt.handle());
            alert_runtime = Some(rt);
            Some(alerting)
        };
        let relay = Relay::start(
            &config.router,
            &config.relay,
            stats,
            alerts.as_ref().map(|a| a.engine.tap.clone()),
        );
        let ctx = ListenCtx::new(relay.clone(), config.listen.clone());
        let mut app = App {
            plaintext_tcp: None,
            plaintext_udp: None,
            pickle_tcp: None,
            admin: None,
            relay: relay.clone(),
            alerts,
            admin_stats: None,
            connections: ctx.tasks.clone(),
            config: config.clone(),
            file_checks,
            listeners: listeners.clone(),
            background: background.clone(),
            tasks: tasks.clone(),
            aggregation: (CancellationToken::new(), TaskTracker::new()),
            _alert_runtime: alert_runtime,
        };
        app.aggregation.1.spawn(crate::relay::aggregate::run(
            relay.clone(),
            app.aggregation.0.clone(),
        ));
        if let Some(addr) = config.plaintext_tcp {
            let l = PlaintextTcpListener::bind(addr, "plaintext_tcp")
                .await
                .map_err(bind_err("plaintext_tcp", addr))?;
            app.plaintext_tcp = l.local_addr().ok();
            tasks.spawn(l.run(ctx.clone(), listeners.clone()));
        }
        if let Some(addr) = config.plaintext_udp {
            let l = PlaintextUdpListener::bind(addr)
                .await
                .map_err(bind_err("plaintext_udp", addr))?;
            app.plaintext_udp = l.local_addr().ok();
            tasks.spawn(l.run(ctx.clone(), listeners.clone()));
        }
        if !config.listen.plaintext_unix.is_empty() {
            let path = std::path::PathBuf::from(&config.listen.plaintext_unix);
            let l = PlaintextUnixListener::bind(&path)
                .map_err(|source| StartError::BindUnix { path, source })?;
            tasks.spawn(l.run(ctx.clone(), listeners.clone()));
        }
        if let Some(addr) = config.pickle_tcp {
            let l = PickleTcpListener::bind(addr, "pickle_tcp")
                .await
                .map_err(bind_err("pickle_tcp", addr))?;
            app.pickle_tcp = l.local_addr().ok();
            tasks.spawn(l.run(ctx.clone(), listeners.clone()));
        }
        if let Some(addr) = config.admin {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(bind_err("admin", addr))?;
            app.admin = l.local_addr().ok();
            let ctx = crate::api::ApiContext::new(crate::api::Wiring {
                admin: &config.admin_http,
                listen: config.admin,
                graphite: &config.graphite,
                notify: &config.notify,
                pickle_enabled: config.pickle_tcp.is_some(),
                relay: relay.clone(),
                alerting: app.alerts.clone(),
                poll: poll_stats.clone(),
            });
            app.admin_stats = Some(ctx.admin_stats.clone());
            let tls = crate::api::server::tls_acceptor(&config.admin_http).map_err(|source| {
                StartError::Tls {
                    file: config.admin_http.tls_cert_file.clone(),
                    source,
                }
            })?;
            let admin = config.admin_http.clone();
            let token = background.clone();
            tasks.spawn(async move { crate::api::serve(l, ctx, tls, &admin, token).await });
        }
        if config.stats.enabled {
            tasks.spawn(selfmetrics::run(
                relay.clone(),
                config.stats.clone(),
                background.clone(),
            ));
        }
        Ok(app)
    }

    /// Re-reads the config file and installs its routes, clusters and
    /// checks. Checks added or changed in the file are upserted with their
    /// current state kept; checks removed from the file are deleted.
    /// Listener addresses and limits need a restart; a change to them is
    /// logged and otherwise ignored.
    pub async fn reload(&mut self, path: &Path) -> Result<(), ConfigError> {
        let mut new = Config::load_as(path, self.config.format)?;
        let checks = std::mem::take(&mut new.checks);
        let moved = new.plaintext_tcp != self.config.plaintext_tcp
            || new.plaintext_udp != self.config.plaintext_udp
            || new.pickle_tcp != self.config.pickle_tcp
            || new.admin != self.config.admin;
        if moved {
            tracing::warn!("Listener addresses changed; they take effect at the next restart.");
        }
        self.relay.reload(&new.router, &new.relay);
        let count = checks.len();
        self.reload_checks(checks).await;
        tracing::info!(
            rules = new.router.rules.len(),
            destinations = new.router.destinations.len(),
            checks = count,
            "Config reloaded."
        );
        self.config = new;
        Ok(())
    }

    /// Installs the file's `checks` in place of the last loaded ones, at
    /// a cost in proportion to what changed: unchanged checks keep the
    /// copy the engine already holds, and only changed ones are looked up
    /// (for the state they keep) and upserted.
    async fn reload_checks(&mut self, checks: Vec<crate::check::Check>) {
        let mut old: std::collections::HashMap<&str, &Arc<crate::check::Check>> = self
            .file_checks
            .iter()
            .map(|c| (c.id.as_str(), c))
            .collect();
        let mut kept = Vec::with_capacity(checks.len());
        let mut upserts = Vec::new();
        for c in checks {
            match old.remove(c.id.as_str()) {
                Some(o) if o.same_definition(&c) => kept.push(o.clone()),
                o => upserts.push((c, o.cloned())),
            }
        }
        let removed: Vec<String> = old.into_keys().map(str::to_string).collect();
        let Some(alerts) = &self.alerts else {
            kept.extend(upserts.into_iter().map(|(c, _)| Arc::new(c)));
            self.file_checks = kept;
            return;
        };
        let engine = &alerts.engine;
        for id in removed {
            if let Err(e) = engine.delete(&id).await {
                tracing::error!(check = %id, error = %e, "Removing a check failed.");
            }
        }
        for (mut c, before) in upserts {
            match engine.check(&c.id).await {
                Ok(Some(live)) => {
                    c.state = live.state;
                    c.last_check = live.last_check;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(check = %c.name, error = %e, "Reloading checks failed.");
                    kept.extend(before);
                    continue;
                }
            }
            match engine.upsert(c.clone()).await {
                Ok(_) => kept.push(Arc::new(c)),
                Err(e) => {
                    tracing::error!(check = %c.name, error = %e, "Updating a check failed.");
                    // The engine still runs the version before.
                    kept.extend(before);
                }
            }
        }
        self.file_checks = kept;
    }

    /// The admin port's connection counters, when it is enabled.
    pub fn admin_stats(&self) -> Option<Arc<crate::api::server::AdminStats>> {
        self.admin_stats.clone()
    }

    /// Stops accepting, lets connections flush, drains queues for up to
    /// `shutdown_timeout_secs`, and reports what could not be delivered.
    pub async fn shutdown(self) -> ShutdownReport {
        self.listeners.cancel();
        self.connections.close();
        self.connections.wait().await;
        self.aggregation.0.cancel();
        self.aggregation.1.close();
        self.aggregation.1.wait().await;
        let aggregate_points_unemitted: u64 = self
            .relay
            .table()
            .aggregators
            .iter()
            .map(|a| a.stats.unemitted.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        let grace = Duration::from_secs(self.config.relay.shutdown_timeout_secs);
        let (undelivered, spooled) = self.relay.shutdown(grace).await;
        self.background.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if undelivered > 0 {
            tracing::error!(undelivered, spooled, "Shut down with undelivered metrics.");
        } else if spooled > 0 {
            tracing::info!(
                spooled,
                "Shut down; what could not be delivered is spooled for the next start."
            );
        } else {
            tracing::info!("Shut down; every queued metric was delivered.");
        }
        ShutdownReport {
            undelivered,
            spooled,
            aggregate_points_unemitted,
        }
    }
}

/// Opens the store and starts the alerting stages on `rt`, each given its
/// ports: the engine writes its changes to a bounded queue that the store
/// writer commits, and the writer offers what it committed to the outbox,
/// which delivers with the notifiers.
async fn start_alerting(
    config: &Config,
    checks: Vec<Arc<crate::check::Check>>,
    token: &CancellationToken,
    tasks: &TaskTracker,
    rt: &tokio::runtime::Handle,
) -> Result<Alerting, StartError> {
    let path = &config.alerting.store;
    let store: Arc<dyn Store> =
        Arc::new(
            SqliteStore::open(Path::new(path)).map_err(|source| StartError::Store {
                path: path.clone(),
                source,
            })?,
        );
    let tz = jiff::tz::TimeZone::get(&config.notify.timezone).map_err(|e| {
        StartError::Engine(crate::alert::CheckError::Invalid(format!(
            "timezone {:?}: {e}",
            config.notify.timezone
        )))
    })?;
    let (changes_tx, changes_rx) = mpsc::channel(config.alerting.store_queue_max_batches.max(1));
    let engine = crate::alert::start(
        store.clone(),
        checks,
        config.alerting.clone(),
        tz,
        changes_tx,
        token.clone(),
        tasks,
        rt,
    )
    .await
    .map_err(StartError::Engine)?;
    let notifiers = Arc::new(Notifiers::new(&config.notify, &config.smtp));
    let outbox = Outbox::new(store.clone(), notifiers.clone(), config.notify.clone());
    let outbox_stats = outbox.stats.clone();
    let (inbox, fresh) = Inbox::bounded(OUTBOX_INBOX_NOTIFICATIONS);
    let writer = Arc::new(WriterStats::default());
    tasks.spawn_on(outbox.run(fresh, token.clone()), rt);
    tasks.spawn_on(
        crate::store::writer::run(store.clone(), changes_rx, Arc::new(inbox), writer.clone()),
        rt,
    );
    Ok(Alerting {
        engine,
        store,
        notifiers,
        test_notifiers: Arc::new(Notifiers::for_tests(&config.notify, &config.smtp)),
        test_timeout: Duration::from_secs(config.notify.test_timeout_secs.max(1)),
        outbox: outbox_stats,
        writer,
    })
}

/// Fresh notifications the outbox holds for delivery; past it they wait
/// in the store for its next poll.
const OUTBOX_INBOX_NOTIFICATIONS: usize = 1024;

/// Runs until SIGTERM or SIGINT; SIGHUP reloads `path`.
pub async fn run(path: &Path, format: ConfigFormat) -> Result<ShutdownReport, StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let config = Config::load_as(path, format)?;
    let mut app = App::start(config).await?;
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    // Ports are bound and spools open: tell systemd, and keep its watchdog
    // fed from this runtime.
    let service = crate::service::Service::from_env();
    service.ready();
    let watchdog = CancellationToken::new();
    let feeding = tokio::spawn(service.run(app.relay.clone(), watchdog.clone()));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                service.reloading();
                match app.reload(path).await {
                    Ok(()) => service.reloaded("reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "Reload refused; keeping the running config.");
                        service.reloaded("reload refused; running the previous config");
                    }
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("Shutting down.");
    service.stopping();
    let report = app.shutdown().await;
    watchdog.cancel();
    let _ = feeding.await;
    Ok(report)
}
