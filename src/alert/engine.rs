//! The alert engine: one task that owns every live check's series states.
//!
//! It takes batches of points from the [`tap`](crate::alert::tap), evaluates
//! each against the checks whose glob matches the name, and every
//! `tick_ms` advances time for `for`, `window`, `noDataAfter` and
//! `repeatEvery`. What one step changes (alert rows, series and check states,
//! notifications) goes to the store writer as one [`Batch`], committed in one
//! transaction; the writer then hands the new notifications to the outbox.
//! Both hand-offs are bounded queues. If alerting falls behind, the engine
//! waits on the store, the tap's queue fills, and the tap drops and counts
//! points; forwarding never waits.
//!
//! Polled checks get their values from the [`poll`](crate::poll) stage
//! through the command queue; [`polled`] applies them with the same series
//! state machine.

mod polled;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::eval::{check_state, SeriesState, Transition};
use crate::alert::index::{PatternIndex, Slot};
use crate::alert::model::{new_id, Alert, AlertType, Check};
use crate::alert::tap::{AlertTap, Points};
use crate::notify::outbox::Outbox;
use crate::notify::{schedule, Notifiers, NotifyConfig, SmtpConfig};
use crate::store::{Batch, NewNotification, Notification, NotificationKind, Store, StoreError};

/// `[alerting]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AlertingConfig {
    /// SQLite file for checks, states, history and the outbox; `""`
    /// disables alerting.
    pub store: String,
    /// Batches of matched points queued for the engine; beyond it points
    /// are dropped and counted, so alerting can never stall forwarding.
    pub queue_max_batches: usize,
    /// Engine batches queued for the store writer.
    pub store_queue_max_batches: usize,
    /// How often time-based rules are advanced.
    pub tick_ms: u64,
    /// Series tracked per check; protects memory from a glob that matches
    /// an exploding set of names. Further series are counted and ignored.
    pub max_series_per_check: usize,
    /// Names each connection remembers the match answer for.
    pub max_cached_names: usize,
    /// How long the matching points of a connection whose reads are
    /// always ready (its client sends faster than the relay reads) may wait
    /// to be handed to the engine in one batch. Each hand-over may wake
    /// the engine's thread, which under such a load cost more throughput
    /// than everything else alerting does. A connection whose reads catch
    /// up hands its points over at once, so this never delays an alert
    /// from a relay that keeps up.
    pub batch_max_wait_ms: u64,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            store: "carbonwatch.db".into(),
            queue_max_batches: 4096,
            store_queue_max_batches: 1024,
            tick_ms: 1000,
            max_series_per_check: 100_000,
            max_cached_names: 500_000,
            batch_max_wait_ms: 4,
        }
    }
}

/// Milliseconds since the epoch from tokio's clock, so tests can pause and
/// advance time and the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_wall_ms: i64,
    base: tokio::time::Instant,
}

impl Clock {
    /// Starts now.
    pub fn new() -> Self {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Clock {
            base_wall_ms: wall,
            base: tokio::time::Instant::now(),
        }
    }

    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.base_wall_ms + self.base.elapsed().as_millis() as i64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Engine counters.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Points evaluated (a point matching two checks counts twice).
    pub evaluations: AtomicU64,
    /// Committed series state changes.
    pub transitions: AtomicU64,
    /// Series tracked now.
    pub series: AtomicU64,
    /// New series refused by `max_series_per_check`.
    pub series_refused: AtomicU64,
    /// Batches the store failed to commit.
    pub store_errors: AtomicU64,
}

/// Why a check was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// It does not make sense.
    #[error("{0}")]
    Invalid(String),
    /// The store refused it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine has stopped.
    #[error("the alert engine has stopped")]
    Stopped,
}

/// Checks a check before it is stored.
pub fn validate(check: &Check) -> Result<(), CheckError> {
    let bad = |m: String| Err(CheckError::Invalid(m));
    if check.name.trim().is_empty() {
        return bad("name is required".into());
    }
    if check.target.trim().is_empty() {
        return bad("target is required".into());
    }
    if check.enabled && (check.warn.is_none() || check.error.is_none()) {
        return bad("an enabled check needs both warn and error".into());
    }
    if check.live {
        // Function calls are what make a target an expression; commas and
        // braces are ordinary glob syntax.
        if check
            .target
            .contains(|c: char| c == '(' || c == ')' || c.is_whitespace())
        {
            return bad(format!(
                "a live check's target must be a Graphite glob, not an expression: {:?}",
                check.target
            ));
        }
        crate::route::Glob::new(&check.target).map_err(|e| CheckError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// A stable id for a check defined in the config file, from its name.
pub fn config_check_id(name: &str) -> String {
    use md5::{Digest, Md5};
    let d = Md5::digest(name.as_bytes());
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

enum Command {
    Upsert(Box<Check>, oneshot::Sender<Result<Check, CheckError>>),
    Delete(String, oneshot::Sender<Result<bool, CheckError>>),
    List(oneshot::Sender<Vec<Check>>),
    Series(String, oneshot::Sender<Vec<(String, SeriesState)>>),
    Recent(String, oneshot::Sender<Recent>),
    Polled(String, Result<Vec<(String, Option<f64>)>, String>),
    Seed(String, Vec<(String, Option<f64>)>),
}

/// The handle the rest of carbonwatch holds.
#[derive(Clone)]
pub struct AlertHandle {
    /// For dispatchers.
    pub tap: Arc<AlertTap>,
    /// Engine counters.
    pub stats: Arc<EngineStats>,
    /// Outbox counters.
    pub outbox: Arc<crate::notify::outbox::OutboxStats>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The notifiers the outbox delivers with.
    pub notifiers: Arc<Notifiers>,
    /// The notifiers of the test endpoint, under `[notify]`'s network
    /// policy for test targets.
    pub test_notifiers: Arc<Notifiers>,
    /// `[notify] test_timeout_secs`.
    pub test_timeout: std::time::Duration,
    commands: mpsc::Sender<Command>,
    checks: watch::Receiver<Arc<Vec<Check>>>,
}

impl std::fmt::Debug for AlertHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertHandle").finish_non_exhaustive()
    }
}

impl AlertHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, CheckError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| CheckError::Stopped)?;
        rx.await.map_err(|_| CheckError::Stopped)
    }

    /// Creates or replaces a check (a new one gets an id).
    pub async fn upsert(&self, check: Check) -> Result<Check, CheckError> {
        self.ask(|tx| Command::Upsert(Box::new(check), tx)).await?
    }

    /// Deletes a check.
    pub async fn delete(&self, id: &str) -> Result<bool, CheckError> {
        self.ask(|tx| Command::Delete(id.to_string(), tx)).await?
    }

    /// Every check with its current state.
    pub async fn checks(&self) -> Result<Vec<Check>, CheckError> {
        self.ask(Command::List).await
    }

    /// A check's series and their states.
    pub async fn series(&self, id: &str) -> Result<Vec<(String, SeriesState)>, CheckError> {
        self.ask(|tx| Command::Series(id.to_string(), tx)).await
    }

    /// Recent values of a few of the check's series, `(epoch ms, value)`,
    /// oldest first: what the UI charts for a live check.
    pub async fn recent(&self, id: &str) -> Result<Recent, CheckError> {
        self.ask(|tx| Command::Recent(id.to_string(), tx)).await
    }

    /// Hands a polled check's render result to the engine: each series'
    /// last non-null value, or why Graphite could not be read.
    pub async fn polled(
        &self,
        id: &str,
        result: Result<Vec<(String, Option<f64>)>, String>,
    ) -> Result<(), CheckError> {
        self.commands
            .send(Command::Polled(id.to_string(), result))
            .await
            .map_err(|_| CheckError::Stopped)
    }

    /// Seeds a live check's series that the stream has not updated since
    /// start-up.
    pub async fn seed(
        &self,
        id: &str,
        values: Vec<(String, Option<f64>)>,
    ) -> Result<(), CheckError> {
        self.commands
            .send(Command::Seed(id.to_string(), values))
            .await
            .map_err(|_| CheckError::Stopped)
    }

    /// The checks, republished whenever they change.
    pub fn watch_checks(&self) -> watch::Receiver<Arc<Vec<Check>>> {
        self.checks.clone()
    }
}

/// Recent values per series, `(epoch ms, value)`, oldest first.
pub type Recent = Vec<(String, Vec<(i64, f64)>)>;
/// One charted series' values.
type History = std::collections::VecDeque<(i64, f64)>;

/// Series per check whose recent values are kept for the UI's chart.
const CHART_SERIES: usize = 8;
/// Values kept per charted series.
const CHART_POINTS: usize = 240;

struct CheckRt {
    check: Check,
    series: FxHashMap<Box<str>, SeriesState>,
    counts: [usize; 5],
    /// Why the last poll failed; the check is EXCEPTION while set.
    exception: Option<String>,
    /// Recent values of the first few series, for the UI's chart.
    recent: Vec<(Box<str>, History)>,
    /// A polled check's state from its last run: the worst over the
    /// series that had data in it (Seyren's rule), not over every series
    /// ever seen.
    poll_state: Option<AlertType>,
}

impl CheckRt {
    fn new(check: Check) -> Self {
        CheckRt {
            check,
            series: FxHashMap::default(),
            counts: [0; 5],
            exception: None,
            poll_state: None,
            recent: Vec::new(),
        }
    }

    /// The check's state now.
    fn state(&self) -> AlertType {
        if self.exception.is_some() {
            AlertType::Exception
        } else if let Some(s) = self.poll_state {
            s
        } else {
            check_state(&self.counts, self.check.allow_no_data)
        }
    }

    fn needs_tick(&self) -> bool {
        let c = &self.check;
        c.for_.is_some()
            || c.window.is_some()
            || c.no_data_after.is_some()
            || c.repeat_every.is_some()
    }
}

struct Engine {
    slots: Vec<Option<CheckRt>>,
    /// Empty entries of `slots`, reused before the vector grows; a scan
    /// for one made loading 100,000 checks quadratic.
    free_slots: Vec<Slot>,
    by_id: HashMap<String, Slot>,
    index: Arc<PatternIndex>,
    names: FxHashMap<Box<str>, Box<[Slot]>>,
    tap: Arc<AlertTap>,
    store: Arc<dyn Store>,
    to_store: mpsc::Sender<Batch>,
    clock: Clock,
    tz: TimeZone,
    cfg: AlertingConfig,
    stats: Arc<EngineStats>,
    batch: Batch,
    changed: Vec<(Slot, Alert)>,
    /// Checks evaluated this step without a change, whose `lastCheck`
    /// and state are still saved.
    touched: Vec<Slot>,
    /// Slots of the enabled checks with time-based rules: the only ones a
    /// tick visits (scanning every check each second cost milliseconds
    /// and the cache's contents with 100,000 checks).
    ticking: Vec<Slot>,
    /// Evaluations not yet added to `stats` (once per step, not per point).
    evaluations: u64,
    /// The slots matching the name being evaluated (reused).
    matching: Vec<Slot>,
    checks_tx: watch::Sender<Arc<Vec<Check>>>,
}

/// Starts the engine, the store writer and the outbox on `rt`, tracked by
/// `tasks`. `config_checks` (with the ids [`crate::config::Config`] gave
/// them) are upserted first, so state saved by an earlier run is restored
/// for them too.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    store: Arc<dyn Store>,
    config_checks: Vec<Check>,
    cfg: AlertingConfig,
    notify: NotifyConfig,
    smtp: SmtpConfig,
    token: CancellationToken,
    tasks: &TaskTracker,
    rt: &tokio::runtime::Handle,
) -> Result<AlertHandle, CheckError> {
    let tz = TimeZone::get(&notify.timezone)
        .map_err(|e| CheckError::Invalid(format!("timezone {:?}: {e}", notify.timezone)))?;
    let s = store.clone();
    let (checks, series) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
        let stored: HashMap<String, Check> = s
            .load_checks()?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let mut upserts = Vec::with_capacity(config_checks.len());
        for mut c in config_checks {
            if let Some(old) = stored.get(&c.id) {
                c.state = old.state;
                c.last_check = old.last_check;
            }
            upserts.push(c);
        }
        s.put_checks(&upserts)?;
        Ok((s.load_checks()?, s.load_series()?))
    })
    .await
    .map_err(|_| CheckError::Stopped)??;

    let (points_tx, points_rx) = mpsc::channel(cfg.queue_max_batches.max(1));
    let (store_tx, store_rx) = mpsc::channel(cfg.store_queue_max_batches.max(1));
    let (fresh_tx, fresh_rx) = mpsc::channel(1024);
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (checks_tx, checks_rx) = watch::channel(Arc::new(Vec::new()));
    let tap = Arc::new(AlertTap::new(
        points_tx,
        cfg.max_cached_names,
        Duration::from_millis(cfg.batch_max_wait_ms),
    ));
    let stats = Arc::new(EngineStats::default());
    let clock = Clock::new();
    let mut engine = Engine {
        slots: Vec::new(),
        free_slots: Vec::new(),
        by_id: HashMap::new(),
        index: Arc::new(PatternIndex::default()),
        names: FxHashMap::default(),
        tap: tap.clone(),
        store: store.clone(),
        to_store: store_tx,
        clock,
        tz,
        cfg: cfg.clone(),
        stats: stats.clone(),
        batch: Batch::default(),
        changed: Vec::new(),
        touched: Vec::new(),
        ticking: Vec::new(),
        evaluations: 0,
        matching: Vec::new(),
        checks_tx,
    };
    let now = clock.now_ms();
    for c in checks {
        engine.insert(c);
    }
    for (check_id, name, mut state) in series {
        if let Some(&slot) = engine.by_id.get(&check_id) {
            let rt = engine.slots[slot as usize]
                .as_mut()
                .expect("slot of a known id");
            // Silence is measured from the restart, not from before it.
            state.last_seen_ms = now;
            rt.counts[state.state as usize] += 1;
            rt.series.insert(name.into(), state);
            stats.series.fetch_add(1, Relaxed);
        }
    }
    engine.rebuild_index();

    let notifiers = Arc::new(Notifiers::new(&notify, &smtp));
    let test_notifiers = Arc::new(Notifiers::for_tests(&notify, &smtp));
    let test_timeout_secs = notify.test_timeout_secs;
    let outbox = Outbox::new(store.clone(), notifiers.clone(), notify.clone());
    let outbox_stats = outbox.stats.clone();
    tasks.spawn_on(outbox.run(fresh_rx, token.clone()), rt);
    tasks.spawn_on(
        store_writer(store.clone(), store_rx, fresh_tx, stats.clone()),
        rt,
    );
    tasks.spawn_on(engine.run(points_rx, cmd_rx, token), rt);
    Ok(AlertHandle {
        tap,
        stats,
        outbox: outbox_stats,
        store,
        notifiers,
        test_notifiers,
        test_timeout: std::time::Duration::from_secs(test_timeout_secs.max(1)),
        commands: cmd_tx,
        checks: checks_rx,
    })
}

/// Commits engine batches, merging whatever is queued into one transaction.
async fn store_writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Batch>,
    fresh: mpsc::Sender<Notification>,
    stats: Arc<EngineStats>,
) {
    while let Some(mut batch) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            batch.series.extend(more.series);
            batch.forget_series.extend(more.forget_series);
            batch.alerts.extend(more.alerts);
            batch.check_states.extend(more.check_states);
            batch.notifications.extend(more.notifications);
            if batch.alerts.len() + batch.series.len() > 10_000 {
                break;
            }
        }
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.commit(&batch)).await {
            Ok(Ok(created)) => {
                for n in created {
                    // A full queue only delays it: released, the outbox's
                    // poll finds it.
                    if let Err(e) = fresh.try_send(n) {
                        let (s, id) = (store.clone(), e.into_inner().id);
                        let _ =
                            tokio::task::spawn_blocking(move || s.release_notification(id)).await;
                    }
                }
            }
            Ok(Err(e)) => {
                stats.store_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "Committing alert state failed.");
            }
            Err(e) => tracing::error!(error = %e, "The store writer panicked."),
        }
    }
}

impl Engine {
    /// The running check with `id`.
    fn rt(&self, id: &str) -> Option<&CheckRt> {
        self.by_id
            .get(id)
            .and_then(|&s| self.slots[s as usize].as_ref())
    }

    fn insert(&mut self, check: Check) -> Slot {
        if let Some(&slot) = self.by_id.get(&check.id) {
            let rt = self.slots[slot as usize]
                .as_mut()
                .expect("slot of a known id");
            let target_changed = rt.check.target != check.target;
            rt.check = check;
            if target_changed {
                self.stats.series.fetch_sub(rt.series.len() as u64, Relaxed);
                for name in rt.series.keys() {
                    self.batch
                        .forget_series
                        .push((rt.check.id.clone(), name.to_string()));
                }
                rt.series.clear();
                rt.recent.clear();
                rt.counts = [0; 5];
            }
            return slot;
        }
        let id = check.id.clone();
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(CheckRt::new(check));
                slot
            }
            None => {
                self.slots.push(Some(CheckRt::new(check)));
                (self.slots.len() - 1) as Slot
            }
        };
        self.by_id.insert(id, slot);
        slot
    }

    fn rebuild_index(&mut self) {
        self.ticking = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.as_ref()
                    .is_some_and(|rt| rt.check.enabled && rt.needs_tick())
            })
            .map(|(i, _)| i as Slot)
            .collect();
        let generation = self.index.generation() + 1;
        let live = self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref()
                .filter(|rt| rt.check.enabled && rt.check.live)
                .map(|rt| (i as Slot, rt.check.target.as_str()))
        });
        let (index, errors) = PatternIndex::build(live, generation);
        for (slot, e) in errors {
            tracing::warn!(slot, error = %e, "A live check's target is not a valid glob; it is skipped.");
        }
        self.index = Arc::new(index);
        self.names.clear();
        self.tap.publish(self.index.clone());
        let checks: Vec<Check> = self
            .slots
            .iter()
            .flatten()
            .map(|rt| rt.check.clone())
            .collect();
        self.checks_tx.send_replace(Arc::new(checks));
    }

    async fn run(
        mut self,
        mut points: mpsc::Receiver<Points>,
        mut commands: mpsc::Receiver<Command>,
        token: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.tick_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                Some(batch) = points.recv() => {
                    let now = self.clock.now_ms();
                    for (name, value) in batch.iter() {
                        self.evaluate(name, value, now);
                    }
                    // Take whatever else is already queued in the same step.
                    while let Ok(batch) = points.try_recv() {
                        for (name, value) in batch.iter() {
                            self.evaluate(name, value, now);
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = self.clock.now_ms();
                    self.tick(now);
                }
                Some(cmd) = commands.recv() => self.command(cmd).await,
            }
            self.finish_step().await;
        }
        self.finish_step().await;
    }

    fn evaluate(&mut self, name: &str, value: f64, now: i64) {
        let mut matching = std::mem::take(&mut self.matching);
        matching.clear();
        match self.names.get(name) {
            Some(s) => matching.extend_from_slice(s),
            None => {
                self.index.matches(name, &mut matching);
                if self.names.len() >= self.cfg.max_cached_names {
                    self.names.clear();
                }
                self.names.insert(name.into(), matching.as_slice().into());
            }
        }
        for &slot in &matching {
            self.observe(slot, name, value, now, true);
        }
        self.matching = matching;
    }

    /// One value for one series of the check in `slot`. `live` marks the
    /// series as updated by the stream. Returns the series' state after.
    fn observe(
        &mut self,
        slot: Slot,
        name: &str,
        value: f64,
        now: i64,
        live: bool,
    ) -> Option<AlertType> {
        let rt = self.slots.get_mut(slot as usize).and_then(Option::as_mut)?;
        self.evaluations += 1;
        rt.check.last_check = Some(now);
        let series = match rt.series.get_mut(name) {
            Some(series) => series,
            None => {
                if rt.series.len() >= self.cfg.max_series_per_check {
                    self.stats.series_refused.fetch_add(1, Relaxed);
                    return None;
                }
                rt.counts[AlertType::Ok as usize] += 1;
                self.stats.series.fetch_add(1, Relaxed);
                rt.series
                    .entry(name.into())
                    .or_insert(SeriesState::new(now))
            }
        };
        // The first few series seen are charted (their slot is kept on the
        // series, so the rest cost no search).
        if series.chart.is_none() && rt.recent.len() < CHART_SERIES {
            series.chart = Some(rt.recent.len() as u8);
            rt.recent.push((name.into(), History::default()));
        }
        if let Some(i) = series.chart {
            let points = &mut rt.recent[i as usize].1;
            if points.len() == CHART_POINTS {
                points.pop_front();
            }
            points.push_back((now, value));
        }
        series.live_seen |= live;
        let changed = series.observe(&rt.check, value, now);
        let state = series.state;
        if let Some(t) = changed {
            series.last_notified_ms = Some(now);
            let saved = series.clone();
            Self::transition(
                rt,
                name,
                t,
                now,
                saved,
                &mut self.batch,
                &mut self.changed,
                slot,
            );
            self.stats.transitions.fetch_add(1, Relaxed);
        }
        Some(state)
    }

    #[allow(clippy::too_many_arguments)]
    fn transition(
        rt: &mut CheckRt,
        name: &str,
        t: Transition,
        now: i64,
        saved: SeriesState,
        batch: &mut Batch,
        changed: &mut Vec<(Slot, Alert)>,
        slot: Slot,
    ) {
        rt.counts[t.from as usize] -= 1;
        rt.counts[t.to as usize] += 1;
        let alert = alert(&rt.check, name, t, now);
        batch
            .series
            .push((rt.check.id.clone(), name.to_string(), saved));
        batch.alerts.push(alert.clone());
        changed.push((slot, alert));
    }

    fn tick(&mut self, now: i64) {
        for &slot in &self.ticking {
            let Some(rt) = self.slots[slot as usize].as_mut() else {
                continue;
            };
            let names: Vec<Box<str>> = rt.series.keys().cloned().collect();
            for name in names {
                let series = rt.series.get_mut(&name).expect("key from the map");
                if let Some(t) = series.tick(&rt.check, now) {
                    series.last_notified_ms = Some(now);
                    let saved = series.clone();
                    Self::transition(
                        rt,
                        &name,
                        t,
                        now,
                        saved,
                        &mut self.batch,
                        &mut self.changed,
                        slot,
                    );
                    self.stats.transitions.fetch_add(1, Relaxed);
                } else if series.reminder_due(&rt.check, now) {
                    let saved = series.clone();
                    self.batch
                        .series
                        .push((rt.check.id.clone(), name.to_string(), saved.clone()));
                    // A reminder reports the unchanged state: from == to.
                    let still = Transition {
                        from: saved.state,
                        to: saved.state,
                        value: saved.value,
                    };
                    let reminder = alert(&rt.check, &name, still, now);
                    queue_notifications(
                        &rt.check,
                        &[reminder],
                        NotificationKind::Reminder,
                        now,
                        &self.tz,
                        &mut self.batch,
                    );
                }
            }
        }
    }

    /// Turns this step's changes into check states and notifications, and
    /// hands everything to the store writer.
    async fn finish_step(&mut self) {
        self.stats
            .evaluations
            .fetch_add(std::mem::take(&mut self.evaluations), Relaxed);
        let touched = std::mem::take(&mut self.touched);
        if !touched.is_empty() {
            let now = self.clock.now_ms();
            for slot in touched {
                let in_changed = self.changed.iter().any(|(s, _)| *s == slot);
                let Some(rt) = self.slots[slot as usize].as_mut().filter(|_| !in_changed) else {
                    continue;
                };
                rt.check.state = rt.state();
                self.batch
                    .check_states
                    .push((rt.check.id.clone(), rt.check.state, now));
            }
        }
        if !self.changed.is_empty() {
            let now = self.clock.now_ms();
            let mut changed = std::mem::take(&mut self.changed);
            changed.sort_by_key(|(slot, _)| *slot);
            for group in changed.chunk_by(|a, b| a.0 == b.0) {
                let Some(rt) = self.slots[group[0].0 as usize].as_mut() else {
                    continue;
                };
                let state = rt.state();
                rt.check.state = state;
                rt.check.last_check = Some(now);
                self.batch
                    .check_states
                    .push((rt.check.id.clone(), state, now));
                let alerts: Vec<Alert> = group.iter().map(|(_, a)| a.clone()).collect();
                queue_notifications(
                    &rt.check,
                    &alerts,
                    NotificationKind::Change,
                    now,
                    &self.tz,
                    &mut self.batch,
                );
            }
        }
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            // Waiting here is the engine's backpressure; the data path
            // only ever try_sends to the engine.
            if self.to_store.send(batch).await.is_err() {
                tracing::error!("The store writer has stopped; alert state is not being saved.");
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Upsert(check, reply) => {
                let mut check = *check;
                let result = async {
                    validate(&check)?;
                    if check.id.is_empty() {
                        check.id = new_id();
                    }
                    for s in check.subscriptions.iter_mut().filter(|s| s.id.is_empty()) {
                        s.id = new_id();
                    }
                    if let Some(rt) = self.rt(&check.id) {
                        // State is the engine's to set, unless a client sets it.
                        if check.last_check.is_none() {
                            check.last_check = rt.check.last_check;
                        }
                    }
                    let store = self.store.clone();
                    let c = check.clone();
                    tokio::task::spawn_blocking(move || store.put_check(&c))
                        .await
                        .map_err(|_| CheckError::Stopped)??;
                    self.insert(check.clone());
                    self.rebuild_index();
                    Ok(check)
                }
                .await;
                let _ = reply.send(result);
            }
            Command::Delete(id, reply) => {
                let store = self.store.clone();
                let i = id.clone();
                let result = tokio::task::spawn_blocking(move || store.delete_check(&i))
                    .await
                    .map_err(|_| CheckError::Stopped);
                let result = match result {
                    Ok(Ok(found)) => {
                        if let Some(slot) = self.by_id.remove(&id) {
                            if let Some(rt) = self.slots[slot as usize].take() {
                                self.stats.series.fetch_sub(rt.series.len() as u64, Relaxed);
                            }
                            self.free_slots.push(slot);
                            self.rebuild_index();
                        }
                        Ok(found)
                    }
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Command::List(reply) => {
                let _ = reply.send(
                    self.slots
                        .iter()
                        .flatten()
                        .map(|rt| rt.check.clone())
                        .collect(),
                );
            }
            Command::Polled(id, result) => self.apply_poll(&id, result),
            Command::Recent(id, reply) => {
                let recent = self
                    .rt(&id)
                    .map(|rt| {
                        rt.recent
                            .iter()
                            .map(|(n, p)| (n.to_string(), p.iter().copied().collect()))
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = reply.send(recent);
            }
            Command::Seed(id, values) => self.apply_seed(&id, values),
            Command::Series(id, reply) => {
                let series = self
                    .rt(&id)
                    .map(|rt| {
                        rt.series
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = reply.send(series);
            }
        }
    }
}

/// The alert record of one series' change, with the check's thresholds
/// of the moment.
fn alert(check: &Check, series: &str, t: Transition, now: i64) -> Alert {
    Alert {
        id: new_id(),
        check_id: check.id.clone(),
        value: t.value,
        target: series.to_string(),
        warn: check.warn.clone(),
        error: check.error.clone(),
        from_type: t.from,
        to_type: t.to,
        timestamp: now,
    }
}

/// Queues one notification per subscription that wants any of `alerts`,
/// deferred to the next open window and past any mute.
fn queue_notifications(
    check: &Check,
    alerts: &[Alert],
    kind: NotificationKind,
    now: i64,
    tz: &TimeZone,
    batch: &mut Batch,
) {
    for sub in &check.subscriptions {
        let wanted = schedule::filter(sub, alerts);
        if wanted.is_empty() {
            continue;
        }
        let earliest = check.muted_until.map_or(now, |m| m.max(now));
        let Some(not_before_ms) = schedule::next_open(sub, earliest, tz) else {
            tracing::warn!(check = %check.name, subscription = %sub.id, "Subscription has no open day or time; nothing sent.");
            continue;
        };
        batch.notifications.push(NewNotification {
            kind,
            check: check.clone(),
            subscription: sub.clone(),
            alerts: wanted,
            not_before_ms,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NotificationStatus, SqliteStore};

    fn check(extra: serde_json::Value) -> Check {
        let mut base = serde_json::json!({
            "name": "c", "target": "sec.*.failed", "warn": 5, "error": 10, "enabled": true, "live": true,
            "subscriptions": [{"type": "HTTP", "target": "http://127.0.0.1:9/none", "enabled": true,
                "su": true, "mo": true, "tu": true, "we": true, "th": true, "fr": true, "sa": true}]
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    struct Rig {
        handle: AlertHandle,
        store: Arc<SqliteStore>,
        token: CancellationToken,
    }

    async fn rig(c: Check) -> Rig {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let token = CancellationToken::new();
        let cfg = AlertingConfig {
            store: String::new(),
            tick_ms: 1000,
            ..AlertingConfig::default()
        };
        // A long poll keeps the outbox from delivering during the test: we
        // inspect what the engine queued.
        let notify = NotifyConfig {
            poll_interval_ms: 3_600_000,
            ..NotifyConfig::default()
        };
        let c = Check {
            id: config_check_id(&c.name),
            ..c
        };
        let handle = start(
            store.clone(),
            vec![c],
            cfg,
            notify,
            SmtpConfig::default(),
            token.clone(),
            &TaskTracker::new(),
            &tokio::runtime::Handle::current(),
        )
        .await
        .unwrap();
        Rig {
            handle,
            store,
            token,
        }
    }

    impl Rig {
        fn send(&self, name: &str, value: f64) {
            let mut cache = self.handle.tap.cache();
            cache.offer(name, None, value);
            cache.flush(crate::alert::tap::AlertFlush::All);
        }

        /// Lets the engine and the store writer run, advancing virtual time.
        async fn settle(&self, d: Duration) {
            let step = Duration::from_millis(100);
            let mut left = d;
            while !left.is_zero() {
                let s = step.min(left);
                tokio::time::sleep(s).await;
                left -= s;
            }
            for _ in 0..20 {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }

        #[allow(clippy::type_complexity)]
        fn outbox(&self) -> Vec<(NotificationKind, Vec<(AlertType, AlertType)>, i64)> {
            let rows = self.store.due_notifications(i64::MAX, 100).unwrap();
            rows.into_iter()
                .map(|n| {
                    (
                        n.body.kind,
                        n.body
                            .alerts
                            .iter()
                            .map(|a| (a.from_type, a.to_type))
                            .collect(),
                        n.body.not_before_ms,
                    )
                })
                .collect()
        }
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            self.token.cancel();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn for_commits_only_after_the_breach_has_lasted() {
        let r = rig(check(serde_json::json!({"for": "60s"}))).await;
        r.send("sec.web.failed", 50.0);
        r.settle(Duration::from_secs(30)).await;
        assert!(r.outbox().is_empty(), "held for 30 of 60 s");
        r.send("sec.web.failed", 50.0);
        r.settle(Duration::from_secs(31)).await;
        let out = r.outbox();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].1, vec![(AlertType::Ok, AlertType::Error)]);
        assert_eq!(r.store.alerts(None, 0, 0).unwrap().1, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn repeat_every_reminds_while_bad() {
        let r = rig(check(serde_json::json!({"repeatEvery": "5m"}))).await;
        r.send("sec.db.failed", 11.0);
        r.settle(Duration::from_secs(1)).await;
        assert_eq!(r.outbox().len(), 1);
        r.settle(Duration::from_secs(301)).await;
        let out = r.outbox();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            (out[1].0, out[1].1.clone()),
            (
                NotificationKind::Reminder,
                vec![(AlertType::Error, AlertType::Error)]
            )
        );
        // Reminders are not alert rows: history holds real changes only.
        assert_eq!(r.store.alerts(None, 0, 0).unwrap().1, 1);
        r.send("sec.db.failed", 0.0);
        r.settle(Duration::from_secs(700)).await;
        assert_eq!(r.outbox().len(), 3, "the recovery, then no more reminders");
    }

    #[tokio::test(start_paused = true)]
    async fn mute_and_closed_windows_defer_delivery() {
        let now = Clock::new().now_ms();
        let muted = now + 3_600_000;
        let r = rig(check(serde_json::json!({"mutedUntil": muted}))).await;
        r.send("sec.vpn.failed", 20.0);
        r.settle(Duration::from_secs(1)).await;
        let rows = r.store.due_notifications(i64::MAX, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0].body.not_before_ms >= muted,
            "deferred to the end of the mute"
        );
        assert!(
            r.store
                .due_notifications(now + 60_000, 10)
                .unwrap()
                .is_empty(),
            "not due while muted"
        );
        let counts = r.store.notification_counts().unwrap();
        assert!(counts.contains(&(NotificationStatus::Pending, 1)));
        drop(r);

        // A window that opens two hours from now defers to its opening.
        let hour = (now / 3_600_000 + 2) % 24;
        let sub = serde_json::json!([{"type": "HTTP", "target": "http://127.0.0.1:9/none", "enabled": true,
            "su": true, "mo": true, "tu": true, "we": true, "th": true, "fr": true, "sa": true,
            "fromTime": format!("{hour:02}00"), "toTime": format!("{hour:02}30")}]);
        let r = rig(check(serde_json::json!({"subscriptions": sub}))).await;
        r.send("sec.vpn.failed", 20.0);
        r.settle(Duration::from_secs(1)).await;
        let rows = r.store.due_notifications(i64::MAX, 10).unwrap();
        let opens = (now / 3_600_000 + 2) * 3_600_000;
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].body.not_before_ms, opens,
            "deferred to the window's first minute"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_target_forgets_old_series_and_disabled_checks_are_not_indexed() {
        let r = rig(check(serde_json::json!({}))).await;
        r.send("sec.a.failed", 20.0);
        r.settle(Duration::from_secs(1)).await;
        assert_eq!(
            r.handle.series(&config_check_id("c")).await.unwrap().len(),
            1
        );
        // The first CHART_SERIES series are charted, and only they.
        for i in 0..CHART_SERIES + 2 {
            r.send(&format!("sec.s{i}.failed"), i as f64);
            r.send("sec.a.failed", 21.0);
        }
        r.settle(Duration::from_secs(1)).await;
        let id = config_check_id("c");
        let recent = r.handle.recent(&id).await.unwrap();
        assert_eq!(recent.len(), CHART_SERIES);
        assert_eq!(recent[0].0, "sec.a.failed");
        assert_eq!(recent[0].1.len(), 1 + CHART_SERIES + 2);
        assert_eq!(recent[1].0, "sec.s0.failed");
        assert_eq!(recent[1].1.iter().map(|p| p.1).collect::<Vec<_>>(), [0.0]);
        let mut c = r.handle.checks().await.unwrap().remove(0);
        c.target = "other.*".into();
        r.handle.upsert(c.clone()).await.unwrap();
        assert!(r.handle.series(&c.id).await.unwrap().is_empty());
        assert!(
            r.handle.recent(&c.id).await.unwrap().is_empty(),
            "the chart too"
        );
        assert!(r.handle.tap.index().is_match("other.x"));
        c.enabled = false;
        r.handle.upsert(c).await.unwrap();
        assert!(r.handle.tap.index().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_deleted_checks_slot_is_reused_without_touching_the_others() {
        let r = rig(check(serde_json::json!({}))).await;
        let mut second = check(serde_json::json!({"name": "second", "target": "net.*.denied"}));
        second.id = "second".into();
        let mut third = check(serde_json::json!({"name": "third", "target": "av.*.hits"}));
        third.id = "third".into();
        r.handle.upsert(second).await.unwrap();
        assert!(r.handle.delete("second").await.unwrap());
        r.handle.upsert(third).await.unwrap();
        let mut names: Vec<String> = r
            .handle
            .checks()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        names.sort();
        assert_eq!(names, ["c", "third"]);
        let index = r.handle.tap.index();
        assert!(index.is_match("sec.a.failed") && index.is_match("av.x.hits"));
        assert!(!index.is_match("net.x.denied"), "the deleted check is gone");
        r.send("av.x.hits", 20.0);
        r.send("sec.a.failed", 20.0);
        r.settle(Duration::from_secs(1)).await;
        assert_eq!(r.handle.series("third").await.unwrap().len(), 1);
        assert_eq!(
            r.handle.series(&config_check_id("c")).await.unwrap().len(),
            1
        );
    }

    #[test]
    fn validation_refuses_what_cannot_be_evaluated() {
        assert!(
            validate(&check(serde_json::json!({"target": "sumSeries(a.*)"}))).is_err(),
            "expressions are not live"
        );
        assert!(validate(&check(
            serde_json::json!({"target": "sumSeries(a.*)", "live": false})
        ))
        .is_ok());
        assert!(validate(&check(serde_json::json!({"name": ""}))).is_err());
        assert!(validate(&check(serde_json::json!({"error": null}))).is_err());
        assert!(validate(&check(serde_json::json!({"error": null, "enabled": false}))).is_ok());
    }
}
