//! Stage 4, **relay**: from routed metrics to destination sockets.
//!
//! * [`Dispatcher`]: owned by one connection (or the UDP loop); routes each
//!   metric and appends its line to a pending batch per destination, then
//!   flushes batches into the destination queues.
//! * [`queue`]: the bounded queue per destination; waiting on it is the
//!   backpressure that pauses reading from TCP clients.
//! * [`destination`]: writer tasks, reconnects, plaintext or pickle.
//! * [`spool`]: the disk spool a full queue or a down destination spills to.
//! * [`selfmetrics`]: carbon-style self-metrics sent through the router.
//! * [`tap`]: where each dispatched metric is offered to alerting; the
//!   dispatcher decides when its points are handed over, so listeners only
//!   see [`Dispatcher::lookahead`], [`Dispatcher::prepare`],
//!   [`Dispatcher::holds_back`] and [`Dispatcher::on_idle`].
//! * [`answers`]: the tap's per-name cache of match answers.
//! * [`aggregate`]: carbon-c-relay's aggregators, fed by every dispatcher,
//!   emptied by one expiry task whose output is routed like any metric.
//!
//! The routing [`Table`] is swapped atomically on reload; destinations whose
//! address and protocol did not change keep their queue and connections.

pub mod aggregate;
pub mod answers;
mod config;
pub mod destination;
pub mod queue;
pub mod selfmetrics;
pub mod spool;
pub mod tap;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use tokio_util::task::TaskTracker;

use crate::codec::Metric;
use crate::relay::aggregate::Aggregator;
use crate::relay::tap::{AlertFlush, AlertTap, Key, TapCache};
use crate::route::memo::RouteMemo;
use crate::route::{DestinationSpec, Router, Routes};
use crate::stats::{DropReason, Figure, Figures, Kind, LocalCounts, Stats};
pub use config::{RelayConfig, StatsConfig, WhenFull};
pub use destination::Destination;
pub use queue::{Batch, BatchQueue};

/// A pending batch is handed to its queue once it reaches this size, so a
/// large read does not build one huge batch.
const FLUSH_BATCH_BYTES: usize = 64 * 1024;

/// `validate ... else log`: carbon-c-relay logs every refused line; this
/// logs at most one a second, and the rest are counted as
/// `failed_validation` like every refused line.
fn log_refused(name: &str, data: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST_SECOND.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(%name, %data, "dropping metric due to validation error (one a second is logged)");
    }
}

/// A router together with the destinations its ids point at.
#[derive(Debug)]
pub struct Table {
    /// The rules and clusters.
    pub router: Router,
    /// `dests[id]` for every destination id the router returns.
    pub dests: Vec<Arc<Destination>>,
    /// `aggregators[i]` holds the buckets of `router.aggregates[i]`.
    pub aggregators: Vec<Arc<Aggregator>>,
}

/// The relay: the current table, every destination and their writers.
#[derive(Debug)]
pub struct Relay {
    table: ArcSwap<Table>,
    /// Shared counters.
    pub stats: Arc<Stats>,
    relay_cfg: Mutex<RelayConfig>,
    /// Destinations removed by a reload, still draining.
    retired: Mutex<Vec<Arc<Destination>>>,
    writers: TaskTracker,
    /// The destinations' spool syncers, stopped after the writers.
    syncers: TaskTracker,
    /// Where live checks see the stream, when alerting is on.
    tap: Option<Arc<AlertTap>>,
    /// Bytes in all destinations' spools, against `spool_max_total_bytes`.
    spool_total: Arc<std::sync::atomic::AtomicU64>,
    /// The keyed hash's seed for every connection's remembered routes.
    memo_seed: u64,
    /// Counts destination health changes (see `Destination`).
    health_epoch: Arc<std::sync::atomic::AtomicU64>,
    /// Aggregators a reload removed, for the expiry task's last pass.
    retired_aggregators: Mutex<Vec<Arc<Aggregator>>>,
    /// Aggregate series held, over every aggregator.
    aggregate_series: Arc<std::sync::atomic::AtomicUsize>,
}

impl Relay {
    /// Builds destinations for `router` and starts their writers. Every
    /// parsed metric is also offered to `tap`, if given.
    pub fn start(
        router: &Router,
        cfg: &RelayConfig,
        stats: Arc<Stats>,
        tap: Option<Arc<AlertTap>>,
    ) -> Arc<Relay> {
        let relay = Arc::new(Relay {
            table: ArcSwap::from_pointee(Table {
                router: Router::default(),
                dests: Vec::new(),
                aggregators: Vec::new(),
            }),
            stats,
            relay_cfg: Mutex::new(cfg.clone()),
            retired: Mutex::new(Vec::new()),
            writers: TaskTracker::new(),
            syncers: TaskTracker::new(),
            tap,
            spool_total: Arc::default(),
            memo_seed: RouteMemo::random_seed(),
            health_epoch: Arc::default(),
            retired_aggregators: Mutex::new(Vec::new()),
            aggregate_series: Arc::default(),
        });
        relay.reload(router, cfg);
        relay
    }

    /// The current table.
    pub fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// Every live destination.
    pub fn destinations(&self) -> Vec<Arc<Destination>> {
        self.table().dests.clone()
    }

    /// Installs `router`'s routes and clusters. Destinations that keep
    /// their address and protocol keep their queue and connections; new
    /// ones start; removed ones drain what they hold and stop.
    pub fn reload(&self, router: &Router, cfg: &RelayConfig) {
        let old = self.table();
        let mut by_spec: HashMap<DestinationSpec, Arc<Destination>> = old
            .dests
            .iter()
            .map(|d| (d.spec.clone(), d.clone()))
            .collect();
        *self.relay_cfg.lock().unwrap_or_else(|p| p.into_inner()) = cfg.clone();
        let mut dests = Vec::with_capacity(router.destinations.len());
        for spec in &router.destinations {
            let dest = match by_spec.remove(spec) {
                Some(d) => d,
                None => {
                    let d = Arc::new(Destination::new(
                        spec.clone(),
                        cfg,
                        &self.spool_total,
                        &self.health_epoch,
                    ));
                    d.spawn_spool_syncer(
                        &self.syncers,
                        Duration::from_millis(cfg.spool_fsync_interval_ms),
                    );
                    for _ in 0..cfg.connections_per_destination.max(1) {
                        self.writers.spawn(d.clone().run_writer(cfg.clone()));
                    }
                    d
                }
            };
            dests.push(dest);
        }
        let aggregators = self.aggregators_for(router, cfg, &old.aggregators);
        self.table.store(Arc::new(Table {
            router: router.clone(),
            dests,
            aggregators,
        }));
        for (_, gone) in by_spec {
            tracing::info!(destination = %gone.spec.address(), queued = gone.queue.lines(), "Destination removed; draining its queue.");
            gone.queue.close();
            self.retired
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(gone);
        }
    }

    /// The aggregators of `router`: a rule found again unchanged keeps its
    /// buckets (as c-relay does not: it emits what has ended and drops
    /// the rest); the old ones not found again are retired, and the
    /// expiry task gives them their last pass.
    fn aggregators_for(
        &self,
        router: &Router,
        cfg: &RelayConfig,
        old: &[Arc<Aggregator>],
    ) -> Vec<Arc<Aggregator>> {
        let mut old: Vec<Option<Arc<Aggregator>>> = old.iter().cloned().map(Some).collect();
        let limits = aggregate::Limits {
            max_series: cfg.aggregate_max_series,
            max_values: cfg.aggregate_max_values_per_bucket,
            series: self.aggregate_series.clone(),
        };
        let new = router
            .aggregates
            .iter()
            .map(|spec| {
                let found = old
                    .iter_mut()
                    .find(|a| a.as_ref().is_some_and(|a| a.spec.identity == spec.identity))
                    .and_then(Option::take);
                found.unwrap_or_else(|| Arc::new(Aggregator::new(spec.clone(), limits.clone())))
            })
            .collect();
        self.retired_aggregators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(old.into_iter().flatten());
        new
    }

    /// Aggregators a reload removed since the last call.
    pub fn take_retired_aggregators(&self) -> Vec<Arc<Aggregator>> {
        std::mem::take(
            &mut *self
                .retired_aggregators
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// A dispatcher for one input connection.
    pub fn dispatcher(self: &Arc<Self>) -> Dispatcher {
        let table = self.table();
        let (when_full, memo_names) = {
            let cfg = self.relay_cfg.lock().unwrap_or_else(|p| p.into_inner());
            (cfg.when_full, cfg.route_cache_max_names)
        };
        Dispatcher {
            memo: self.memo_for(&table.router, memo_names),
            memo_names,
            relay: self.clone(),
            pending: vec![(BytesMut::new(), 0); table.dests.len()],
            table,
            routes: Routes::default(),
            scratch: BytesMut::new(),
            when_full,
            counts: LocalCounts::default(),
            tap: self.tap.as_ref().map(AlertTap::cache),
        }
    }

    fn memo_for(&self, router: &Router, max_names: usize) -> Option<RouteMemo> {
        (max_names > 0 && router.worth_remembering())
            .then(|| RouteMemo::new(max_names, self.memo_seed))
    }

    /// Closes every queue and lets writers deliver for up to `grace`; then
    /// stops them and writes what is left to the destinations' spools.
    /// Returns `(undelivered, spooled)`: the lines neither delivered nor
    /// spooled (also counted as `shutdown_undelivered`), and the lines
    /// spooled for the next start.
    pub async fn shutdown(&self, grace: Duration) -> (u64, u64) {
        let table = self.table();
        let retired = self
            .retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let all: Vec<_> = table.dests.iter().chain(retired.iter()).cloned().collect();
        all.iter().for_each(|d| d.queue.close());
        // A destination that is down and whose data is all on disk has
        // nothing to deliver now: stop its writer rather than let it
        // retry a dead peer for the whole grace period. (One that fails
        // during the grace period stops itself the same way.)
        all.iter()
            .filter(|d| !d.is_healthy() && d.queue.is_empty())
            .for_each(|d| d.abort());
        self.writers.close();
        if tokio::time::timeout(grace, self.writers.wait())
            .await
            .is_err()
        {
            all.iter().for_each(|d| d.abort());
            self.writers.wait().await;
        }
        let mut spooled = 0;
        for d in &all {
            let n = d.spill(true);
            if n > 0 {
                tracing::info!(destination = %d.spec.address(), lines = n, "Spooled for the next start.");
            }
            spooled += n;
        }
        let mut undelivered = 0;
        for d in &all {
            let n = d.queue.clear();
            if n > 0 {
                d.stats
                    .dropped_lines
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(destination = %d.spec.address(), lines = n, "Undelivered at shutdown.");
            }
            undelivered += n;
        }
        self.stats
            .add_drop(DropReason::ShutdownUndelivered, undelivered);
        // The writers are done and what they left is spooled and synced:
        // the syncers have nothing more to do.
        all.iter().for_each(|d| d.abort());
        self.syncers.close();
        self.syncers.wait().await;
        (undelivered, spooled)
    }
}

/// The relay's own figures: the process-wide counters and carbon-c-relay's
/// sums over destinations. Each destination lists its own.
impl Figures for Relay {
    fn figures(&self, out: &mut dyn FnMut(Figure<'_>)) {
        self.stats.figures(out);
        self.table().aggregators.figures(out);
        let dests = self.destinations();
        let sent: u64 = dests
            .iter()
            .map(|d| {
                d.stats
                    .sent_lines
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum();
        let queued: usize = dests.iter().map(|d| d.queue.lines()).sum();
        let stalls: u64 = dests
            .iter()
            .map(|d| d.stats.stalls.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        out(Figure::carbon_only(
            "metricStalls",
            Kind::Counter,
            stalls as f64,
        ));
        out(Figure::carbon_only(
            "metricsSent",
            Kind::Counter,
            sent as f64,
        ));
        out(Figure::carbon_only(
            "metricsQueued",
            Kind::Gauge,
            queued as f64,
        ));
    }
}

/// Metrics a decoder holds before dispatch while alerting reads ahead.
const LOOKAHEAD: usize = 8;

/// What [`Dispatcher::prepare`] learnt about a name, for its dispatch.
#[derive(Debug, Clone, Copy)]
pub struct Prepared {
    tap: Option<Key>,
    route: Option<u64>,
}

/// Routes metrics and batches their lines per destination. One per
/// connection, so the hot path takes no lock.
#[derive(Debug)]
pub struct Dispatcher {
    relay: Arc<Relay>,
    table: Arc<Table>,
    /// Lines waiting for each destination of `table`, with their count.
    pending: Vec<(BytesMut, u32)>,
    routes: Routes,
    /// This connection's remembered routes, for the current table.
    memo: Option<RouteMemo>,
    memo_names: usize,
    scratch: BytesMut,
    when_full: WhenFull,
    /// Counts since the last flush.
    pub counts: LocalCounts,
    tap: Option<TapCache>,
}

impl Dispatcher {
    /// Whether any live check is watching the stream.
    #[inline]
    pub fn alerting_live(&self) -> bool {
        self.tap.as_ref().is_some_and(TapCache::live)
    }

    /// How many parsed metrics a decoder should hold, each passed to
    /// [`Dispatcher::prepare`], before it dispatches the first: more than
    /// one while alerting's cache would rather see names a few lines
    /// ahead (see `TapCache::reads_ahead`), so the memory they need loads
    /// meanwhile; one line ahead hid too little of a miss.
    #[inline]
    pub fn lookahead(&self) -> usize {
        if self.memo.is_some() || self.tap.as_ref().is_some_and(TapCache::reads_ahead) {
            LOOKAHEAD
        } else {
            1
        }
    }

    /// Announces a metric dispatched soon; pass what it returns to
    /// [`Dispatcher::dispatch_prepared`].
    #[inline]
    pub fn prepare(&self, name: &str) -> Prepared {
        Prepared {
            tap: self.tap.as_ref().and_then(|tap| tap.prefetch(name)),
            route: self.memo.as_ref().map(|memo| memo.prefetch(name)),
        }
    }

    /// Routes one metric. Returns true when a pending batch is large enough
    /// that the caller should flush.
    #[inline]
    pub fn dispatch(&mut self, m: &Metric<'_>) -> bool {
        self.dispatch_prepared(
            m,
            Prepared {
                tap: None,
                route: None,
            },
        )
    }

    /// [`Dispatcher::dispatch`] for a metric whose name was given to
    /// [`Dispatcher::prepare`], with what it returned.
    pub fn dispatch_prepared(&mut self, m: &Metric<'_>, prepared: Prepared) -> bool {
        if let Some(tap) = &mut self.tap {
            tap.offer(&m.name, prepared.tap, m.value, m.timestamp);
        }
        let table = &self.table;
        if table.router.validates {
            m.write_data(&mut self.routes.data);
        }
        let healthy = |d: usize| table.dests[d].is_healthy();
        match (&mut self.memo, prepared.route) {
            (Some(memo), Some(hash)) => {
                memo.route_hashed(&table.router, &m.name, hash, &healthy, &mut self.routes)
            }
            (Some(memo), None) => memo.route(&table.router, &m.name, &healthy, &mut self.routes),
            (None, _) => table.router.route(&m.name, &healthy, &mut self.routes),
        }
        if !self.routes.aggregated.is_empty() {
            self.aggregate(m);
        }
        if let Some(log) = self.routes.refused {
            if log {
                log_refused(&m.name, &self.routes.data);
            }
            if self.routes.targets.is_empty() {
                self.counts.dropped[DropReason::FailedValidation as usize] += 1;
                return false;
            }
        }
        self.deliver(m)
    }

    /// Routes an aggregate of the table's aggregation `aggregation` to
    /// that rule's clusters.
    pub fn dispatch_to(&mut self, m: &Metric<'_>, aggregation: usize) -> bool {
        // Live checks see aggregates like any metric (a sum of failed
        // logins over hosts, say).
        if let Some(tap) = &mut self.tap {
            tap.offer(&m.name, None, m.value, m.timestamp);
        }
        let table = &self.table;
        let healthy = |d: usize| table.dests[d].is_healthy();
        table
            .router
            .route_to(&m.name, aggregation, &healthy, &mut self.routes);
        self.deliver(m)
    }

    /// Routes an aggregate through every rule but the aggregation rules
    /// (carbon-aggregator's output), without the memo: its answers are
    /// for walks that meet them.
    pub fn dispatch_past_aggregates(&mut self, m: &Metric<'_>) -> bool {
        if let Some(tap) = &mut self.tap {
            tap.offer(&m.name, None, m.value, m.timestamp);
        }
        let table = &self.table;
        let healthy = |d: usize| table.dests[d].is_healthy();
        self.routes.skip_aggregates = true;
        table.router.route(&m.name, &healthy, &mut self.routes);
        self.routes.skip_aggregates = false;
        self.deliver(m)
    }

    /// Hands the metric to the aggregators its route named.
    fn aggregate(&mut self, m: &Metric<'_>) {
        let table = &self.table;
        // Read once, and only when a new series needs it.
        let now = std::cell::Cell::new(None);
        let clock = || match now.get() {
            Some(t) => t,
            None => {
                let t = crate::unix_now();
                now.set(Some(t));
                t
            }
        };
        for &(rule, name) in &self.routes.aggregated {
            let rule = &table.router.rules[rule];
            let Some(i) = rule.aggregate else { continue };
            let name = name.map_or(&*m.name, |n| self.routes.names[n].as_str());
            let regex = rule.matcher.regex_for(name);
            table.aggregators[i].put(regex, name, m.value, m.timestamp, &clock);
        }
    }

    /// Appends the metric's line for each target of `self.routes`.
    fn deliver(&mut self, m: &Metric<'_>) -> bool {
        if self.routes.targets.is_empty() {
            if !self.routes.aggregated.is_empty() {
                // An aggregator took it: c-relay counts it as sent on.
                return false;
            }
            let reason = if self.routes.blackholed {
                DropReason::Blackholed
            } else {
                DropReason::Unroutable
            };
            self.counts.dropped[reason as usize] += 1;
            return false;
        }
        let mut full = false;
        if let [(dest, None)] = self.routes.targets[..] {
            let (buf, n) = &mut self.pending[dest];
            m.write_line(buf);
            *n += 1;
            return buf.len() >= FLUSH_BATCH_BYTES;
        }
        // Several targets: format each distinct name once.
        let mut last_name: Option<Option<usize>> = None;
        for &(dest, name) in &self.routes.targets {
            if last_name != Some(name) {
                self.scratch.clear();
                match name {
                    None => m.write_line(&mut self.scratch),
                    Some(i) => m
                        .renamed(&self.routes.names[i])
                        .write_line(&mut self.scratch),
                }
                last_name = Some(name);
            }
            let (buf, n) = &mut self.pending[dest];
            buf.extend_from_slice(&self.scratch);
            *n += 1;
            full |= buf.len() >= FLUSH_BATCH_BYTES;
        }
        full
    }

    fn take_batches(&mut self) -> impl Iterator<Item = (usize, Batch)> + '_ {
        self.pending
            .iter_mut()
            .enumerate()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(i, (buf, n))| {
                let b = Batch {
                    data: buf.split().freeze(),
                    lines: *n,
                };
                *n = 0;
                (i, b)
            })
    }

    /// Hands pending batches to their queues, waiting for room under the
    /// `block` policy: the TCP reader calls this, so a full queue pauses it.
    pub async fn flush(&mut self) {
        let batches: Vec<_> = self.take_batches().collect();
        for (i, b) in batches {
            let dest = self.table.dests[i].clone();
            match self.when_full {
                // A full queue spills to the disk spool, if there is one
                // with room; only then does the reader wait.
                WhenFull::Block => {
                    if let Err(b) = self.offer(&dest, b) {
                        dest.stats
                            .stalls
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        dest.queue.push(b).await;
                    }
                }
                WhenFull::DropOldest => self.evict_into(&dest, b),
            }
        }
        self.finish_flush(AlertFlush::WhenDue);
    }

    /// Hands pending batches to their queues without waiting; a batch that
    /// finds no room is dropped and counted (the UDP listener's policy).
    pub fn flush_nowait(&mut self) {
        let batches: Vec<_> = self.take_batches().collect();
        for (i, b) in batches {
            let dest = self.table.dests[i].clone();
            match self.when_full {
                WhenFull::Block => {
                    if let Err(b) = self.offer(&dest, b) {
                        let n = u64::from(b.lines);
                        self.counts.dropped[DropReason::QueueFullUdp as usize] += n;
                        dest.stats
                            .dropped_lines
                            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                WhenFull::DropOldest => self.evict_into(&dest, b),
            }
        }
        self.finish_flush(AlertFlush::All);
    }

    /// The last flush of a closing connection: never waits, never drops
    /// (past a full queue it goes to the spool, or over the bound).
    pub fn flush_final(&mut self) {
        let batches: Vec<_> = self.take_batches().collect();
        for (i, b) in batches {
            let dest = self.table.dests[i].clone();
            if let Err(b) = self.offer(&dest, b) {
                dest.queue.push_overflow(b);
            }
        }
        self.finish_flush(AlertFlush::All);
    }

    /// Queues a batch if there is room, else spools it if the spool takes
    /// it (counting what a `drop_oldest` spool evicted); otherwise gives
    /// it back for the caller's policy.
    ///
    /// While the destination is down the spool comes first: data that
    /// reached it survives a SIGKILL, data in the memory queue would not.
    fn offer(&mut self, dest: &Destination, b: Batch) -> Result<(), Batch> {
        let up = dest.is_healthy();
        let b = if up {
            match dest.queue.try_push(b) {
                Ok(()) => return Ok(()),
                Err(b) => b,
            }
        } else {
            b
        };
        match dest.try_spool(b) {
            Ok(evicted) => {
                self.counts.dropped[DropReason::DropOldest as usize] += evicted;
                Ok(())
            }
            Err(b) if !up => dest.queue.try_push(b),
            Err(b) => Err(b),
        }
    }

    fn evict_into(&mut self, dest: &Destination, b: Batch) {
        let evicted = dest.queue.push_evicting(b);
        if evicted > 0 {
            self.counts.dropped[DropReason::DropOldest as usize] += evicted;
            dest.stats
                .dropped_lines
                .fetch_add(evicted, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Publishes counts and picks up a reloaded table.
    fn finish_flush(&mut self, alerts: AlertFlush) {
        self.counts.flush_into(&self.relay.stats);
        if let Some(tap) = &mut self.tap {
            tap.flush(alerts);
        }
        self.refresh();
    }

    /// Whether this dispatcher holds something back until its input
    /// pauses: a reader that sees this asks for more even with nothing
    /// ready yet, to call [`Dispatcher::on_idle`] when nothing comes.
    #[inline]
    pub fn holds_back(&self) -> bool {
        self.tap.as_ref().is_some_and(TapCache::has_pending)
    }

    /// The input paused (a read found nothing): hand over what was held
    /// back. [`Dispatcher::flush`] holds alerting's small batches back
    /// while reads keep coming, since each hand-over may wake the engine.
    pub fn on_idle(&mut self) {
        if let Some(tap) = &mut self.tap {
            tap.flush(AlertFlush::All);
        }
    }

    /// Switches to a reloaded table. Listeners call this before each read's
    /// lines, so a reload applies from the next read on; it only switches
    /// with nothing pending, since pending ids belong to the old table.
    pub fn refresh(&mut self) {
        let current = self.relay.table.load();
        if !Arc::ptr_eq(&current, &self.table) && self.pending.iter().all(|(_, n)| *n == 0) {
            self.table = current.clone();
            self.pending = vec![(BytesMut::new(), 0); self.table.dests.len()];
            // Remembered answers name the old table's destinations.
            self.memo = self.relay.memo_for(&self.table.router, self.memo_names);
        }
        // Once a read rather than once a metric: answers that followed a
        // destination's health are forgotten before the next read's lines.
        if let Some(memo) = &mut self.memo {
            memo.sync_health(
                self.relay
                    .health_epoch
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
        }
    }
}
