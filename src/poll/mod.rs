//! Stage 6, **poll**: checks whose target is any Graphite expression
//! (`live = false`) are evaluated from the render API with Seyren's
//! semantics, and live checks are seeded from it at start-up.
//!
//! Better than Seyren's scheduler (`seyren.md` §2.1): each check has its
//! own interval (default `refresh_secs`, Seyren's `GRAPHITE_REFRESH`) on a
//! fixed-rate schedule whose phase is spread by check id, so ten thousand
//! checks do not fire in the same second; requests are bounded by
//! `max_concurrent_requests` and time out; a check never runs twice at once,
//! and a run that would overlap or that falls a whole interval behind is
//! skipped and counted, never queued. A Graphite failure reaches the
//! engine as such and sets the check to EXCEPTION.

pub mod render;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::{AlertHandle, PollFailure};
use crate::check::model::Check;
use crate::stats::{Figure, Figures};
pub use render::{RenderClient, RenderError};

/// `[graphite]`: the render API the poller reads. Seyren's `GRAPHITE_*`
/// variables override it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GraphiteConfig {
    /// Base URL, `scheme://host[:port][/path]` (`GRAPHITE_URL`); `""`
    /// turns polling off.
    pub url: String,
    /// HTTP Basic user, sent preemptively with `password`.
    pub username: String,
    /// HTTP Basic password.
    pub password: String,
    /// Default interval between two runs of a polled check
    /// (`GRAPHITE_REFRESH`, which Seyren gives in milliseconds).
    pub refresh_secs: u64,
    /// One render request's time limit, so a hung Graphite cannot hold a
    /// request slot (Seyren's default is to wait forever).
    pub timeout_secs: u64,
    /// Render requests in flight at once: protects Graphite from a burst
    /// (Seyren's `SEYREN_THREADS`).
    pub max_concurrent_requests: usize,
    /// Seed the series of live checks from the render API at start-up, so
    /// their state is right before the first point arrives.
    pub seed_live_checks: bool,
}

impl Default for GraphiteConfig {
    fn default() -> Self {
        GraphiteConfig {
            url: String::new(),
            username: String::new(),
            password: String::new(),
            refresh_secs: 60,
            timeout_secs: 10,
            max_concurrent_requests: 8,
            seed_live_checks: true,
        }
    }
}

/// Poller counters, for `/metrics` and the benchmark.
#[derive(Debug, Default)]
pub struct PollStats {
    /// Render requests made for polled checks.
    pub runs: AtomicU64,
    /// Of those, the ones that failed (the check went to EXCEPTION).
    pub errors: AtomicU64,
    /// Runs skipped because the previous one was still going or the
    /// schedule fell a whole interval behind.
    pub skipped: AtomicU64,
    /// Live checks seeded from the render API.
    pub seeded: AtomicU64,
    /// Polled checks scheduled now.
    pub scheduled: AtomicU64,
    /// Start delay after the scheduled time, in buckets of upper bounds
    /// [`LATENESS_BUCKETS_MS`] (the last is unbounded).
    pub lateness: [AtomicU64; 6],
    /// The largest start delay seen, in ms.
    pub lateness_max_ms: AtomicU64,
}

/// The lateness buckets' upper bounds as labels (the last is `+Inf`).
const LATENESS_LABELS: [&str; 6] = ["10", "100", "1000", "10000", "60000", "+Inf"];

impl Figures for PollStats {
    fn figures(&self, out: &mut dyn FnMut(Figure<'_>)) {
        let n = |c: &AtomicU64| c.load(Relaxed);
        out(Figure::counter("poll_runs_total", n(&self.runs)));
        out(Figure::counter("poll_errors_total", n(&self.errors)));
        out(Figure::counter("poll_skipped_total", n(&self.skipped)));
        out(Figure::counter("poll_seeded_total", n(&self.seeded)));
        out(Figure::gauge("poll_checks", n(&self.scheduled) as f64));
        out(Figure::gauge(
            "poll_start_lateness_max_ms",
            n(&self.lateness_max_ms) as f64,
        ));
        for (count, below) in self.lateness.iter().zip(LATENESS_LABELS) {
            out(Figure::counter("poll_start_lateness_ms", n(count)).label("below", below));
        }
    }
}

/// Upper bounds of the lateness buckets, in ms.
pub const LATENESS_BUCKETS_MS: [u64; 5] = [10, 100, 1000, 10_000, 60_000];

impl PollStats {
    fn record_lateness(&self, late: Duration) {
        let ms = late.as_millis() as u64;
        let i = LATENESS_BUCKETS_MS
            .iter()
            .position(|&b| ms < b)
            .unwrap_or(LATENESS_BUCKETS_MS.len());
        self.lateness[i].fetch_add(1, Relaxed);
        self.lateness_max_ms.fetch_max(ms, Relaxed);
    }
}

/// What the schedule keeps of a polled check.
struct Entry {
    check: Arc<Check>,
    interval: Duration,
    due: Instant,
    running: Arc<AtomicBool>,
}

/// Renders each enabled polled check at its interval, at most
/// `max_concurrent_requests` at once, and hands the results to the engine.
pub struct Poller {
    client: RenderClient,
    cfg: GraphiteConfig,
    alerts: AlertHandle,
    /// Runs, failures, skips and lateness, for `/metrics`.
    pub stats: Arc<PollStats>,
}

impl Poller {
    /// A poller feeding `alerts`.
    pub fn new(cfg: GraphiteConfig, alerts: AlertHandle) -> Self {
        Poller {
            client: RenderClient::new(&cfg),
            cfg,
            alerts,
            stats: Arc::new(PollStats::default()),
        }
    }

    /// Runs until cancelled; runs in flight are abandoned at cancellation.
    pub async fn run(self, token: CancellationToken) {
        let me = Arc::new(self);
        let mut checks = me.alerts.watch_checks();
        let slots = Arc::new(Semaphore::new(me.cfg.max_concurrent_requests.max(1)));
        let tasks = TaskTracker::new();
        let mut entries: HashMap<String, Entry> = HashMap::new();
        let mut queue: BTreeSet<(Instant, String)> = BTreeSet::new();
        let mut seeded: HashSet<(String, String)> = HashSet::new();
        if !me.client.is_configured() {
            tracing::info!("No [graphite] url: polled checks are not evaluated.");
        }
        let mut resync = true;
        loop {
            if resync {
                resync = false;
                let current = checks.borrow_and_update().clone();
                me.resync(&current, &mut entries, &mut queue);
                me.seed_new_live_checks(&current, &mut seeded, &tasks, &token);
            }
            let next = queue.first().map(|(t, _)| *t);
            tokio::select! {
                _ = token.cancelled() => break,
                changed = checks.changed() => match changed {
                    Ok(()) => resync = true,
                    Err(_) => break,
                },
                _ = sleep_until(next) => {
                    let now = Instant::now();
                    while let Some((due, id)) = queue.first().cloned().filter(|(t, _)| *t <= now) {
                        queue.pop_first();
                        let Some(e) = entries.get_mut(&id) else { continue };
                        e.due = next_due(due, e.interval, now, &me.stats);
                        queue.insert((e.due, id));
                        if e.running.swap(true, Relaxed) {
                            me.stats.skipped.fetch_add(1, Relaxed);
                            continue;
                        }
                        let (me, slots, check, running, token) =
                            (me.clone(), slots.clone(), e.check.clone(), e.running.clone(), token.clone());
                        tasks.spawn(async move {
                            tokio::select! {
                                _ = token.cancelled() => {}
                                _ = me.poll_one(&check, due, &slots) => {}
                            }
                            running.store(false, Relaxed);
                        });
                    }
                }
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    /// Brings the schedule in line with the engine's checks: new or
    /// changed polled checks get a first run spread over their interval,
    /// unchanged ones keep their slot, removed ones leave.
    fn resync(
        &self,
        checks: &[Arc<Check>],
        entries: &mut HashMap<String, Entry>,
        queue: &mut BTreeSet<(Instant, String)>,
    ) {
        let now = Instant::now();
        let mut keep = HashSet::new();
        for c in checks.iter().filter(|c| c.evaluated() && !c.live) {
            keep.insert(c.id.clone());
            let interval = c
                .interval
                .map_or(Duration::from_secs(self.cfg.refresh_secs.max(1)), |s| s.0)
                .max(Duration::from_secs(1));
            match entries.get_mut(&c.id) {
                Some(e) if e.interval == interval => e.check = c.clone(),
                _ => {
                    if let Some(old) = entries.remove(&c.id) {
                        queue.remove(&(old.due, c.id.clone()));
                    }
                    let due = now + phase(&c.id, interval);
                    queue.insert((due, c.id.clone()));
                    entries.insert(
                        c.id.clone(),
                        Entry {
                            check: c.clone(),
                            interval,
                            due,
                            running: Arc::default(),
                        },
                    );
                }
            }
        }
        entries.retain(|id, e| {
            let k = keep.contains(id);
            if !k {
                queue.remove(&(e.due, id.clone()));
            }
            k
        });
        self.stats.scheduled.store(entries.len() as u64, Relaxed);
    }

    /// One run: render, then hand the values (or the failure) to the engine.
    async fn poll_one(&self, check: &Check, due: Instant, slots: &Semaphore) {
        let Ok(_permit) = slots.acquire().await else {
            return;
        };
        self.stats
            .record_lateness(Instant::now().saturating_duration_since(due));
        self.stats.runs.fetch_add(1, Relaxed);
        let result = self
            .client
            .last_values(&check.target, check.from.as_deref(), check.until.as_deref())
            .await
            .map_err(|e| {
                self.stats.errors.fetch_add(1, Relaxed);
                tracing::warn!(check = %check.name, error = %e, "Polling Graphite failed.");
                PollFailure {
                    message: e.to_string(),
                }
            });
        if self.alerts.polled(&check.id, result).await.is_err() {
            tracing::debug!("The engine has stopped; dropping a poll result.");
        }
    }

    /// Live checks not seeded yet (new, or with a new target) are rendered
    /// once; the engine applies the values to series the stream has not
    /// updated since start-up.
    fn seed_new_live_checks(
        self: &Arc<Self>,
        checks: &[Arc<Check>],
        seeded: &mut HashSet<(String, String)>,
        tasks: &TaskTracker,
        token: &CancellationToken,
    ) {
        if !self.cfg.seed_live_checks || !self.client.is_configured() {
            return;
        }
        for c in checks.iter().filter(|c| c.evaluated() && c.live) {
            if !seeded.insert((c.id.clone(), c.target.clone())) {
                continue;
            }
            let (me, check, token) = (self.clone(), c.clone(), token.clone());
            tasks.spawn(async move {
                let run = async {
                    match me.client.last_values(&check.target, None, None).await {
                        Ok(values) => {
                            me.stats.seeded.fetch_add(1, Relaxed);
                            let _ = me.alerts.seed(&check.id, values).await;
                        }
                        Err(e) => {
                            tracing::warn!(check = %check.name, error = %e, "Seeding a live check from Graphite failed.");
                        }
                    }
                };
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = run => {}
                }
            });
        }
    }
}

/// The next run after one due at `due`: a fixed rate, so no drift; when
/// the schedule has fallen a whole interval behind, the missed runs are
/// skipped and counted instead of run back to back.
fn next_due(due: Instant, interval: Duration, now: Instant, stats: &PollStats) -> Instant {
    let mut next = due + interval;
    if next <= now {
        let behind = now.duration_since(next);
        let missed = (behind.as_nanos() / interval.as_nanos()) as u32 + 1;
        stats.skipped.fetch_add(u64::from(missed), Relaxed);
        next += interval * missed;
    }
    next
}

/// A stable offset within `interval` from the check's id.
fn phase(id: &str, interval: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    id.hash(&mut h);
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h.finish() % ms)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_that_fell_behind_skips_instead_of_piling_up() {
        let stats = PollStats::default();
        let t0 = Instant::now();
        let i = Duration::from_secs(60);
        assert_eq!(next_due(t0, i, t0 + Duration::from_secs(1), &stats), t0 + i);
        assert_eq!(stats.skipped.load(Relaxed), 0);
        // Three and a half intervals late: the runs at 60, 120 and 180 s
        // are gone, the next is at 240 s.
        let next = next_due(t0, i, t0 + Duration::from_secs(210), &stats);
        assert_eq!(next, t0 + Duration::from_secs(240));
        assert_eq!(stats.skipped.load(Relaxed), 3);
    }

    #[test]
    fn phases_spread_within_the_interval() {
        let i = Duration::from_secs(60);
        let phases: HashSet<u64> = (0..1000)
            .map(|n| phase(&format!("check{n}"), i).as_secs())
            .collect();
        assert!(phases.iter().all(|&s| s < 60));
        assert!(
            phases.len() > 50,
            "spread over the minute: {}",
            phases.len()
        );
    }
}

#[cfg(test)]
mod figure_tests {
    use super::*;

    #[test]
    fn lateness_labels_name_the_buckets() {
        for (label, bound) in LATENESS_LABELS.iter().zip(LATENESS_BUCKETS_MS) {
            assert_eq!(*label, bound.to_string());
        }
        assert_eq!(LATENESS_LABELS.len(), LATENESS_BUCKETS_MS.len() + 1);
        assert_eq!(LATENESS_LABELS[LATENESS_BUCKETS_MS.len()], "+Inf");
    }
}
