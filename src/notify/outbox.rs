//! The delivery worker. New notifications arrive from the store writer right
//! after their commit and are sent at once; a poll every
//! `poll_interval_ms` picks up retries, deferred notifications whose window
//! has opened, and anything left over from before a restart. Deliveries run
//! concurrently up to `concurrency`, each with its own timeout.
//!
//! Each destination (a subscription's type and target) has a lane of its
//! own: at most `per_destination_concurrency` deliveries in flight and
//! `per_destination_queue` waiting. A delivery takes its lane's slot before
//! a global one, so a hanging endpoint holds only its own lane's share of
//! `concurrency`; what its full lane cannot take stays pending in the store
//! (deferred, counted) instead of queueing in memory.
//!
//! A notification deferred by a closed window or a mute is delivered only
//! for the series still in the state it reports; if none is, it is marked
//! superseded.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::check::{Notification, NotificationKind, NotificationSink, NotificationStatus, Store};
use crate::notify::{Notifiers, NotifyConfig};
use crate::stats::{Figure, Figures};

/// What became of deliveries, for `/metrics`.
#[derive(Debug, Default)]
pub struct OutboxStats {
    /// Delivered notifications.
    pub delivered: AtomicU64,
    /// Attempts that failed and will be retried.
    pub retried: AtomicU64,
    /// Notifications given up on.
    pub failed: AtomicU64,
    /// Deferred notifications no longer current when due.
    pub superseded: AtomicU64,
    /// Notifications left pending because their destination's lane was
    /// full.
    pub deferred_busy: AtomicU64,
}

impl Figures for OutboxStats {
    fn figures(&self, out: &mut dyn FnMut(Figure<'_>)) {
        for (outcome, n) in [
            ("delivered", &self.delivered),
            ("retried", &self.retried),
            ("failed", &self.failed),
            ("superseded", &self.superseded),
        ] {
            out(Figure::counter("notifications_total", n.load(Relaxed)).label("outcome", outcome));
        }
        out(Figure::counter(
            "notifications_deferred_busy_total",
            self.deferred_busy.load(Relaxed),
        ));
    }
}

/// The most a shutdown waits for deliveries in flight.
const SHUTDOWN_GRACE_SECS: u64 = 5;

/// One destination's share of the deliveries.
struct Lane {
    slots: Arc<Semaphore>,
    /// Deliveries in flight or waiting for a slot.
    queued: std::sync::atomic::AtomicUsize,
}

/// What a lane is keyed by: where the notification goes.
fn destination(n: &Notification) -> String {
    let s = &n.body.subscription;
    format!("{}\u{0}{}", s.kind_str(), s.target)
}

/// The outbox's front door: the store writer offers each notification it
/// committed here, for delivery without waiting for the next poll.
#[derive(Debug, Clone)]
pub struct Inbox(mpsc::Sender<Notification>);

impl Inbox {
    /// An inbox holding up to `capacity` notifications, and the end that
    /// [`Outbox::run`] reads.
    pub fn bounded(capacity: usize) -> (Inbox, mpsc::Receiver<Notification>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Inbox(tx), rx)
    }
}

impl NotificationSink for Inbox {
    fn offer(&self, n: Notification) -> bool {
        self.0.try_send(n).is_ok()
    }
}

/// The delivery worker: fresh notifications from its inbox, due ones
/// from the store's poll, each through its destination's lane.
pub struct Outbox {
    store: Arc<dyn Store>,
    notifiers: Arc<Notifiers>,
    cfg: NotifyConfig,
    /// What became of its deliveries.
    pub stats: Arc<OutboxStats>,
}

impl Outbox {
    /// A worker over `store`.
    pub fn new(store: Arc<dyn Store>, notifiers: Arc<Notifiers>, cfg: NotifyConfig) -> Self {
        Outbox {
            store,
            notifiers,
            cfg,
            stats: Arc::new(OutboxStats::default()),
        }
    }

    /// Runs until cancelled, then waits for deliveries in flight.
    pub async fn run(self, mut fresh: mpsc::Receiver<Notification>, token: CancellationToken) {
        let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let slots = Arc::new(Semaphore::new(self.cfg.concurrency.max(1)));
        let mut lanes: HashMap<String, Arc<Lane>> = HashMap::new();
        let lane_slots = self.cfg.per_destination_concurrency.max(1);
        let lane_max = lane_slots + self.cfg.per_destination_queue;
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let mut poll =
            tokio::time::interval(Duration::from_millis(self.cfg.poll_interval_ms.max(10)));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let me = Arc::new(self);
        loop {
            // Fresh notifications come claimed by their commit; polled
            // ones are claimed before sending.
            let (batch, claimed): (Vec<Notification>, bool) = tokio::select! {
                _ = token.cancelled() => break,
                n = fresh.recv() => match n {
                    Some(n) => (vec![n], true),
                    None => break,
                },
                _ = poll.tick() => {
                    lanes.retain(|_, l| l.queued.load(Relaxed) > 0);
                    let store = me.store.clone();
                    let due = tokio::task::spawn_blocking(move || store.due_notifications(crate::unix_now_ms(), 256)).await;
                    match due {
                        Ok(Ok(d)) => (d, false),
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "Reading the outbox failed.");
                            continue;
                        }
                        Err(_) => continue,
                    }
                }
            };
            for n in batch {
                let lane = lanes
                    .entry(destination(&n))
                    .or_insert_with(|| {
                        Arc::new(Lane {
                            slots: Arc::new(Semaphore::new(lane_slots)),
                            queued: Default::default(),
                        })
                    })
                    .clone();
                {
                    let mut set = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                    if set.contains(&n.id) {
                        continue;
                    }
                    if lane.queued.load(Relaxed) >= lane_max {
                        tasks.spawn(me.clone().defer_busy(n.id));
                        continue;
                    }
                    set.insert(n.id);
                }
                lane.queued.fetch_add(1, Relaxed);
                let (me, in_flight, slots) = (me.clone(), in_flight.clone(), slots.clone());
                let stop = stop.clone();
                tasks.spawn(async move {
                    // The lane's slot first, so a hung destination holds
                    // no more than its own share of the global ones.
                    let work = async {
                        let _own = lane.slots.acquire().await;
                        let _global = slots.acquire().await;
                        me.deliver(n.clone(), claimed).await;
                    };
                    // Cut off by shutdown, a claimed notification stays
                    // `sending`, which the store's start-up turns back to
                    // pending: sent again, at least once, as after a crash.
                    tokio::select! {
                        () = work => {}
                        _ = stop.cancelled() => {}
                    }
                    lane.queued.fetch_sub(1, Relaxed);
                    in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&n.id);
                });
            }
        }
        tasks.close();
        // Deliveries in flight get a short grace; a hung endpoint must not
        // hold the shutdown for its whole `timeout_secs`.
        let grace = Duration::from_secs(me.cfg.timeout_secs.clamp(1, SHUTDOWN_GRACE_SECS));
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!("Deliveries still in flight at shutdown were cut off; they are sent again at the next start.");
            stop.cancel();
            tasks.wait().await;
        }
    }

    /// Leaves a notification whose lane is full pending in the store, due
    /// again after a poll interval: a later poll picks it up.
    /// Spawned, so that a busy lane never holds up the loop that feeds
    /// the others.
    async fn defer_busy(self: Arc<Self>, id: i64) {
        self.stats.deferred_busy.fetch_add(1, Relaxed);
        let store = self.store.clone();
        let until = crate::unix_now_ms() + self.cfg.poll_interval_ms.max(10) as i64;
        let r = tokio::task::spawn_blocking(move || store.defer_notification(id, until)).await;
        if let Ok(Err(e)) = r {
            tracing::error!(error = %e, id, "Deferring a notification failed.");
        }
    }

    async fn deliver(&self, mut n: Notification, claimed: bool) {
        let id = n.id;
        // A polled row may be in a delivery already (or just finished);
        // only the delivery that claims it sends it.
        if !claimed {
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.claim_notification(id)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, id, "Claiming a notification failed.");
                    return;
                }
                Err(_) => return,
            }
        }
        if n.body.kind == NotificationKind::Change && n.body.not_before_ms > n.created_ms {
            let store = self.store.clone();
            let alerts = n.body.alerts.clone();
            let current = tokio::task::spawn_blocking(move || {
                alerts
                    .into_iter()
                    .filter(|a| {
                        let series = store.series_state(&a.check_id, &a.target).ok().flatten();
                        // A check-level alert (into or out of EXCEPTION)
                        // names the check's target, which is no series.
                        let current = series.or_else(|| {
                            let check = store.get_check(&a.check_id).ok().flatten()?;
                            (check.target == a.target).then_some(check.state)
                        });
                        current == Some(a.to_type)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            if current.is_empty() {
                self.stats.superseded.fetch_add(1, Relaxed);
                self.finish(id, NotificationStatus::Superseded, None, None)
                    .await;
                return;
            }
            n.body.alerts = current;
        }
        let timeout = Duration::from_secs(self.cfg.timeout_secs.max(1));
        let result = match tokio::time::timeout(timeout, self.notifiers.send(&n.body)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("timed out".to_string()),
        };
        let sub = &n.body.subscription;
        match result {
            Ok(()) => {
                self.stats.delivered.fetch_add(1, Relaxed);
                tracing::info!(check = %n.body.check.name, kind = sub.kind_str(), target = %sub.target, "Notification delivered.");
                self.finish(id, NotificationStatus::Delivered, None, None)
                    .await;
            }
            Err(e) if n.attempts + 1 < self.cfg.max_attempts => {
                self.stats.retried.fetch_add(1, Relaxed);
                let at =
                    crate::unix_now_ms() + self.cfg.retry_delay(n.attempts + 1).as_millis() as i64;
                tracing::warn!(check = %n.body.check.name, kind = sub.kind_str(), error = %e, attempt = n.attempts + 1, "Notification failed; will retry.");
                self.finish(id, NotificationStatus::Pending, Some(e), Some(at))
                    .await;
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Relaxed);
                tracing::error!(check = %n.body.check.name, kind = sub.kind_str(), error = %e, "Notification failed; giving up.");
                self.finish(id, NotificationStatus::Failed, Some(e), None)
                    .await;
            }
        }
    }

    async fn finish(
        &self,
        id: i64,
        status: NotificationStatus,
        error: Option<String>,
        retry_at: Option<i64>,
    ) {
        let store = self.store.clone();
        let r = tokio::task::spawn_blocking(move || {
            store.finish_notification(id, status, error.as_deref(), retry_at)
        })
        .await;
        if let Ok(Err(e)) = r {
            tracing::error!(error = %e, id, "Recording a notification outcome failed.");
        }
    }
}
