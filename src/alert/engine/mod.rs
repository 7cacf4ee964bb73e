//! The alert engine: one task that owns every live check's series states.
//!
//! It takes batches of points from the [`tap`](crate::relay::tap),
//! evaluates each against the checks whose glob matches the name
//! (`observe`), and every `tick_ms` advances time for `for`, `window`,
//! `noDataAfter` and `repeatEvery`. What one step changes (alert rows,
//! series and check states, notifications) leaves as one [`Changes`] on
//! the bounded queue the engine was given; whoever holds the other end (the
//! store writer) commits it in one transaction. If alerting falls behind,
//! the engine waits on that queue, the tap's queue fills, and the tap drops
//! and counts points; forwarding never waits.
//!
//! Polled checks get their values from the `poll` stage
//! through the command queue; `polled` applies them with the same series
//! state machine.

mod names;
mod observe;
mod polled;
mod series_map;
mod start;

pub use start::start;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::alert::eval::{check_state, Counts, EventTime, Transition};
use crate::alert::handle::{Command, EngineStats};
use crate::alert::{problem, AlertingConfig, CheckError};
use crate::check::{new_id, Alert, AlertType, Changes, Check, Degraded, NotificationKind, Store};
use crate::relay::tap::{AlertTap, Points};
use crate::route::index::{PatternIndex, Slot};
use names::NameCache;
use observe::queue_notifications;
use series_map::SeriesMap;

/// Milliseconds since the epoch from tokio's clock, so tests can pause and
/// advance time and the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_wall_ms: i64,
    base: tokio::time::Instant,
}

impl Clock {
    /// A clock reading the wall time now and tokio's time after.
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

/// One charted series' values.
type History = std::collections::VecDeque<(i64, f64)>;

/// The charted series of a check, by name.
type Charted = Vec<(Box<str>, History)>;

/// Series per check whose recent values are kept for the UI's chart.
pub const CHART_SERIES: usize = 8;
/// Values kept per charted series.
const CHART_POINTS: usize = 240;

pub(crate) struct CheckRt {
    /// The check as defined; shared with the checks the engine publishes,
    /// so 100,000 checks are held once. What the engine changes is kept
    /// beside it.
    check: Arc<Check>,
    /// The check-level state last committed.
    committed: AlertType,
    /// When the check was last evaluated (epoch ms).
    last_check: Option<i64>,
    series: SeriesMap,
    counts: Counts,
    /// Why the last poll failed; the check is EXCEPTION while set.
    exception: Option<Box<str>>,
    /// Recent values of the first few series, for the UI's chart.
    /// Boxed: most checks never chart a series, and each pays for the
    /// place.
    recent: Option<Box<Charted>>,
    /// A polled check's state from its last run: the worst over the
    /// series that had data in it (Seyren's rule), not over every series
    /// ever seen.
    poll_state: Option<AlertType>,
    /// Points of new series refused by `max_series_per_check`.
    series_refused: u64,
}

impl CheckRt {
    fn new(check: Arc<Check>, committed: AlertType, last_check: Option<i64>) -> Self {
        CheckRt {
            committed,
            last_check,
            check,
            series: SeriesMap::default(),
            counts: [0; 5],
            exception: None,
            poll_state: None,
            recent: None,
            series_refused: 0,
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

    /// The check as the API and notifications show it: with its state
    /// and last evaluation.
    fn check_now(&self) -> Check {
        let mut c = (*self.check).clone();
        c.state = self.committed;
        c.last_check = self.last_check;
        c
    }

    fn needs_tick(&self, et: &EventTime) -> bool {
        let c = &self.check;
        et.max_disorder_ms > 0
            || c.for_.is_some()
            || c.window.is_some()
            || c.no_data_after.is_some()
            || c.repeat_every.is_some()
    }
}

fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

fn is_id(slots: &[Option<CheckRt>], slot: Slot, id: &str) -> bool {
    slots[slot as usize]
        .as_ref()
        .is_some_and(|rt| rt.check.id == id)
}

pub(crate) struct Engine {
    slots: Vec<Option<CheckRt>>,
    /// Empty entries of `slots`, reused before the vector grows; a scan
    /// for one made loading 100,000 checks quadratic.
    free_slots: Vec<Slot>,
    /// Slots by check id, the id read from the slot: a map keyed by a
    /// copy of each id cost 70 bytes a check.
    by_id: hashbrown::HashTable<Slot>,
    index: Arc<PatternIndex>,
    names: NameCache,
    tap: Arc<AlertTap>,
    store: Arc<dyn Store>,
    /// Where each step's changes go (the store writer).
    changes: mpsc::Sender<Changes>,
    clock: Clock,
    tz: TimeZone,
    cfg: AlertingConfig,
    stats: Arc<EngineStats>,
    batch: Changes,
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
    /// The changes of the series being evaluated (reused).
    transitions: Vec<Transition>,
    event_time: EventTime,
    /// `max_future_secs`, in milliseconds.
    max_future_ms: i64,
    /// Checks that refused a series this step, for `/metrics`.
    refusing: Vec<Slot>,
    /// The tap's drop count at the last tick, and when it last grew.
    drops_seen: u64,
    last_drop_ms: Option<i64>,
    checks_tx: watch::Sender<Arc<Vec<Arc<Check>>>>,
}

impl Engine {
    /// Every check as the API shows it: with its state and what alerting
    /// on it has had to leave out.
    fn list(&self) -> Vec<Check> {
        self.slots
            .iter()
            .flatten()
            .map(|rt| self.view(rt))
            .collect()
    }

    /// One check as the API shows it.
    fn view(&self, rt: &CheckRt) -> Check {
        let dropped = self.tap.points_dropped.load(Relaxed);
        let mut c = rt.check_now();
        let mut d = Degraded {
            series_refused: rt.series_refused,
            ..Degraded::default()
        };
        if c.live && c.enabled && dropped > 0 {
            d.points_dropped = dropped;
            d.last_drop_ms = self.last_drop_ms;
        }
        c.degraded = (!d.is_clear()).then(|| Box::new(d));
        c
    }

    /// Notes when the data path last dropped points for the engine.
    fn watch_drops(&mut self, now: i64) {
        let dropped = self.tap.points_dropped.load(Relaxed);
        if dropped > self.drops_seen {
            self.drops_seen = dropped;
            self.last_drop_ms = Some(now);
        }
    }

    /// The running check with `id`.
    fn rt(&self, id: &str) -> Option<&CheckRt> {
        self.slot_of(id)
            .and_then(|s| self.slots[s as usize].as_ref())
    }

    /// The slot of the check with `id`.
    fn slot_of(&self, id: &str) -> Option<Slot> {
        let slots = &self.slots;
        self.by_id
            .find(id_hash(id), |&s| is_id(slots, s, id))
            .copied()
    }

    /// Forgets the slot of the check with `id`, and returns it.
    fn unfile(&mut self, id: &str) -> Option<Slot> {
        let slots = &self.slots;
        let entry = self.by_id.find_entry(id_hash(id), |&s| is_id(slots, s, id));
        entry.ok().map(|e| e.remove().0)
    }

    fn insert(&mut self, mut check: Check) -> Slot {
        check.problem = problem(&check).map(Into::into);
        let (state, last_check) = (check.state, check.last_check);
        self.insert_shared(Arc::new(check), state, last_check)
    }

    /// Installs `check` with its committed state and last evaluation
    /// (kept beside it, so a copy shared with the config stays as the
    /// file has it).
    fn insert_shared(
        &mut self,
        check: Arc<Check>,
        state: AlertType,
        last_check: Option<i64>,
    ) -> Slot {
        if let Some(slot) = self.slot_of(&check.id) {
            let rt = self.slots[slot as usize]
                .as_mut()
                .expect("slot of a known id");
            let target_changed = rt.check.target != check.target;
            if target_changed || rt.check.name != check.name {
                self.stats.forget_refusals(&rt.check.name);
                rt.series_refused = 0;
            }
            rt.committed = state;
            rt.last_check = last_check;
            rt.check = check;
            if target_changed {
                self.stats.series.fetch_sub(rt.series.len() as u64, Relaxed);
                for name in rt.series.names() {
                    self.batch
                        .forget_series
                        .push((rt.check.id.clone(), name.to_string()));
                }
                rt.series.clear();
                rt.recent = None;
                rt.counts = [0; 5];
            }
            return slot;
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(CheckRt::new(check, state, last_check));
                slot
            }
            None => {
                self.slots
                    .push(Some(CheckRt::new(check, state, last_check)));
                (self.slots.len() - 1) as Slot
            }
        };
        let slots = &self.slots;
        let hash = id_hash(&slots[slot as usize].as_ref().expect("just filled").check.id);
        self.by_id.insert_unique(hash, slot, |&s| {
            id_hash(&slots[s as usize].as_ref().expect("filed slot").check.id)
        });
        slot
    }

    /// Whether the check in `slot` needs the clock's tick.
    fn ticks(&self, slot: Slot) -> bool {
        self.slots[slot as usize]
            .as_ref()
            .is_some_and(|rt| rt.check.evaluated() && rt.needs_tick(&self.event_time))
    }

    /// The live pattern of the check in `slot`, if it has one.
    fn live_target(&self, slot: Slot) -> Option<&str> {
        self.slots[slot as usize]
            .as_ref()
            .filter(|rt| rt.check.evaluated() && rt.check.live)
            .map(|rt| rt.check.target.as_str())
    }

    /// Takes in a change to the check in `slot` (added, changed, removed)
    /// at a cost in proportion to the change: the index is updated, not
    /// rebuilt, until the changes held beside its base call for a
    /// rebuild.
    fn reindex(&mut self, slot: Slot) {
        if self.index.wants_rebuild() {
            return self.rebuild_index();
        }
        self.ticking.retain(|&s| s != slot);
        if self.ticks(slot) {
            self.ticking.push(slot);
        }
        let generation = self.index.generation() + 1;
        let (index, errors) = self
            .index
            .update([(slot, self.live_target(slot))], generation);
        for (slot, e) in errors {
            tracing::warn!(slot, error = %e, "A live check's target is not a valid glob; it is skipped.");
        }
        self.install(index);
    }

    fn rebuild_index(&mut self) {
        self.ticking = (0..self.slots.len() as Slot)
            .filter(|&s| self.ticks(s))
            .collect();
        let generation = self.index.generation() + 1;
        let live = self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref()
                .filter(|rt| rt.check.evaluated() && rt.check.live)
                .map(|rt| (i as Slot, rt.check.target.as_str()))
        });
        let (index, errors) = PatternIndex::build(live, generation);
        for (slot, e) in errors {
            tracing::warn!(slot, error = %e, "A live check's target is not a valid glob; it is skipped.");
        }
        self.install(index);
    }

    /// Makes `index` the one the tap and the engine match with, and
    /// publishes the checks for the poller.
    fn install(&mut self, index: PatternIndex) {
        self.index = Arc::new(index);
        self.names.clear();
        self.tap.publish(self.index.clone());
        // The checks as defined, shared with the slots: the poller needs
        // their definitions, not their states.
        let checks = self
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
        unsaved: Vec<Arc<Check>>,
    ) {
        // The file's new and changed checks are saved before anything
        // else the engine does: a command or a change that follows them
        // lands after them.
        if !unsaved.is_empty() {
            let store = self.store.clone();
            let saved = tokio::task::spawn_blocking(move || {
                store.put_checks(&unsaved.iter().map(|c| &**c).collect::<Vec<_>>())
            })
            .await;
            if let Ok(Err(e)) = saved {
                tracing::error!(error = %e, "Saving the config file's checks failed; they run, and are saved at the next start.");
            }
        }
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.tick_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                Some(batch) = points.recv() => {
                    let now = self.clock.now_ms();
                    for (name, value, ts) in batch.iter() {
                        self.evaluate(name, value, ts, now);
                    }
                    // Take whatever else is already queued in the same step.
                    while let Ok(batch) = points.try_recv() {
                        for (name, value, ts) in batch.iter() {
                            self.evaluate(name, value, ts, now);
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = self.clock.now_ms();
                    self.watch_drops(now);
                    self.tick(now);
                }
                Some(cmd) = commands.recv() => self.command(cmd).await,
            }
            self.finish_step().await;
        }
        self.release_held();
        self.finish_step().await;
    }

    /// Turns this step's changes into check states and notifications, and
    /// hands everything to the store writer.
    async fn finish_step(&mut self) {
        self.stats
            .evaluations
            .fetch_add(std::mem::take(&mut self.evaluations), Relaxed);
        if !self.refusing.is_empty() {
            let mut refusing = std::mem::take(&mut self.refusing);
            for &slot in &refusing {
                if let Some(rt) = self.slots[slot as usize].as_ref() {
                    self.stats.note_refusals(&rt.check.name, rt.series_refused);
                }
            }
            refusing.clear();
            self.refusing = refusing;
        }
        let touched = std::mem::take(&mut self.touched);
        if !touched.is_empty() {
            let now = self.clock.now_ms();
            for slot in touched {
                let in_changed = self.changed.iter().any(|(s, _)| *s == slot);
                let Some(rt) = self.slots[slot as usize].as_mut().filter(|_| !in_changed) else {
                    continue;
                };
                rt.committed = rt.state();
                self.batch
                    .check_states
                    .push((rt.check.id.clone(), rt.committed, now));
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
                rt.committed = state;
                rt.last_check = Some(now);
                self.batch
                    .check_states
                    .push((rt.check.id.clone(), state, now));
                let alerts: Vec<Alert> = group.iter().map(|(_, a)| a.clone()).collect();
                queue_notifications(
                    &rt.check_now(),
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
            if self.changes.send(batch).await.is_err() {
                tracing::error!("The store writer has stopped; alert state is not being saved.");
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Upsert(check, reply) => {
                let mut check = *check;
                let result = async {
                    check.problem = problem(&check).map(Into::into);
                    let had_problem = self
                        .rt(&check.id)
                        .is_some_and(|rt| rt.check.problem.is_some());
                    if check.problem.is_some() && check.enabled && !check.target.trim().is_empty() {
                        // Stored as Seyren would, and shown as broken.
                        check.state = AlertType::Exception;
                    } else if had_problem && check.state == AlertType::Exception {
                        // Fixed: evaluated from scratch, as a new check.
                        check.state = AlertType::Ok;
                    }
                    if check.id.is_empty() {
                        check.id = new_id();
                    }
                    for s in check.subscriptions.iter_mut().filter(|s| s.id.is_empty()) {
                        s.id = new_id();
                    }
                    if let Some(rt) = self.rt(&check.id) {
                        // State is the engine's to set, unless a client sets it.
                        if check.last_check.is_none() {
                            check.last_check = rt.last_check;
                        }
                    }
                    let store = self.store.clone();
                    let c = check.clone();
                    tokio::task::spawn_blocking(move || store.put_check(&c))
                        .await
                        .map_err(|_| CheckError::Stopped)??;
                    let slot = self.insert(check.clone());
                    self.reindex(slot);
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
                        if let Some(slot) = self.unfile(&id) {
                            if let Some(rt) = self.slots[slot as usize].take() {
                                self.stats.series.fetch_sub(rt.series.len() as u64, Relaxed);
                                self.stats.forget_refusals(&rt.check.name);
                            }
                            self.free_slots.push(slot);
                            self.reindex(slot);
                        }
                        Ok(found)
                    }
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Command::List(reply) => _ = reply.send(self.list()),
            Command::Get(id, reply) => _ = reply.send(self.rt(&id).map(|rt| self.view(rt))),
            Command::Polled(id, result) => self.apply_poll(&id, result),
            Command::Recent(id, reply) => {
                let recent = self
                    .rt(&id)
                    .map(|rt| {
                        rt.recent
                            .iter()
                            .flat_map(|r| r.iter())
                            .map(|(n, p)| {
                                // Charted in data time: late points go
                                // where their timestamps put them.
                                let mut points: Vec<(i64, f64)> = p.iter().copied().collect();
                                points.sort_by_key(|&(t, _)| t);
                                (n.to_string(), points)
                            })
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
