//! The data path's view of alerting. A [`TapCache`] lives in each
//! connection's dispatcher and answers "does any live check match this
//! name?" from a per-name cache, so the usual cost per point is comparing
//! the name with the one guessed to come next (see [`AnswerCache`]), and
//! nothing at all while there are no live checks.
//! Matching points are batched and handed to the engine once per read with
//! `try_send`: forwarding never waits on alerting, and a full queue is
//! counted in `alert_points_dropped`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

pub use crate::relay::answers::{AnswerCache, Key};
use crate::route::index::PatternIndex;
use crate::stats::{Figure, Figures};

/// Points for the engine. Their names share one buffer, so a batch costs
/// two allocations rather than one per point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Points {
    names: String,
    /// Each point's name end in `names`, its value and its timestamp
    /// (epoch seconds).
    ends: Vec<(u32, f64, i64)>,
}

impl Points {
    /// Room for `points` points whose names take `name_bytes`.
    pub fn with_capacity(points: usize, name_bytes: usize) -> Self {
        Points {
            names: String::with_capacity(name_bytes),
            ends: Vec::with_capacity(points),
        }
    }

    /// Adds a point stamped `timestamp` (epoch seconds).
    pub fn push(&mut self, name: &str, value: f64, timestamp: i64) {
        self.names.push_str(name);
        // A batch holds at most TAP_BATCH_POINTS names of at most
        // max_line_bytes each, far below 4 GiB.
        self.ends.push((self.names.len() as u32, value, timestamp));
    }

    /// How many points.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each point's name, value and timestamp, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64, i64)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(end, value, ts)| {
            let name = &self.names[start..end as usize];
            start = end as usize;
            (name, value, ts)
        })
    }
}

/// Shared between the engine and every dispatcher.
#[derive(Debug)]
pub struct AlertTap {
    index: ArcSwap<PatternIndex>,
    tx: mpsc::Sender<Points>,
    /// Points handed to the engine.
    pub points_sent: AtomicU64,
    /// Points dropped because the engine's queue was full.
    pub points_dropped: AtomicU64,
    max_cached_names: usize,
    /// How long a busy connection's points may wait for their batch.
    batch_max_wait: std::time::Duration,
}

impl AlertTap {
    /// A tap feeding `tx`, whose caches keep about `max_cached_names`
    /// answers and whose busy connections hand points over at least every
    /// `batch_max_wait`.
    pub fn new(
        tx: mpsc::Sender<Points>,
        max_cached_names: usize,
        batch_max_wait: std::time::Duration,
    ) -> Self {
        AlertTap {
            index: ArcSwap::from_pointee(PatternIndex::default()),
            tx,
            points_sent: AtomicU64::new(0),
            points_dropped: AtomicU64::new(0),
            max_cached_names: max_cached_names.max(1),
            batch_max_wait,
        }
    }

    /// Publishes a new index; caches notice by its generation.
    pub fn publish(&self, index: Arc<PatternIndex>) {
        self.index.store(index);
    }

    /// The index the engine published last.
    pub fn index(&self) -> Arc<PatternIndex> {
        self.index.load_full()
    }

    /// A cache for one dispatcher.
    pub fn cache(self: &Arc<Self>) -> TapCache {
        TapCache {
            tap: self.clone(),
            index: self.index(),
            answers: AnswerCache::new(self.max_cached_names),
            pending: Points::default(),
            pending_since: None,
        }
    }
}

impl Figures for AlertTap {
    fn figures(&self, out: &mut dyn FnMut(Figure<'_>)) {
        out(Figure::counter(
            "alert_points_total",
            self.points_sent.load(Relaxed),
        ));
        out(Figure::counter(
            "alert_points_dropped_total",
            self.points_dropped.load(Relaxed),
        ));
    }
}

/// One dispatcher's cache and pending batch.
#[derive(Debug)]
pub struct TapCache {
    tap: Arc<AlertTap>,
    index: Arc<PatternIndex>,
    answers: AnswerCache,
    pending: Points,
    /// When the oldest pending point arrived.
    pending_since: Option<std::time::Instant>,
}

/// Points a TCP reader gathers before it hands them to the engine while
/// its client keeps sending (it hands them over at once when the client
/// pauses).
pub const TAP_BATCH_POINTS: usize = 1024;

/// When a flush hands the engine its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertFlush {
    /// Everything pending, whatever its size (a paused client, a
    /// closing connection, UDP).
    All,
    /// Once the batch is large or old enough: every hand-over may wake
    /// the engine's thread, and one wake-up per read cost more CPU than
    /// everything else alerting does on the data path.
    WhenDue,
}

impl TapCache {
    /// Whether any live check is watching.
    #[inline]
    pub fn live(&self) -> bool {
        !self.index.is_empty()
    }

    /// Whether the caller should look a few names ahead, through
    /// [`TapCache::prefetch`]: while the answers are not found in arrival
    /// order, each lookup is a cache miss, which loading early hides behind
    /// the parsing of the lines between.
    #[inline]
    pub fn reads_ahead(&self) -> bool {
        !self.index.is_empty() && !self.answers.predictable()
    }

    /// Unless the names come in a predictable order, hashes `name` and
    /// starts loading its table buckets, for a point the caller offers
    /// soon with the key returned. `None` while no live check is watching,
    /// and while the order is guessed right (a right guess needs no hash).
    #[inline]
    pub fn prefetch(&self, name: &str) -> Option<Key> {
        if self.index.is_empty() || self.answers.predictable() {
            return None;
        }
        let key = self.answers.key(name.as_bytes());
        self.answers.prefetch(key);
        Some(key)
    }

    /// Looks at one forwarded point stamped `timestamp` (epoch seconds);
    /// `key` is its name's, if [`TapCache::prefetch`] computed it.
    #[inline]
    pub fn offer(&mut self, name: &str, key: Option<Key>, value: f64, timestamp: i64) {
        if self.index.is_empty() {
            return;
        }
        let index = &self.index;
        if self.answers.answer(name, key, || index.is_match(name)) {
            if self.pending.is_empty() {
                self.pending_since = Some(std::time::Instant::now());
            }
            self.pending.push(name, value, timestamp);
        }
    }

    /// Whether points wait to be handed to the engine.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Hands pending points to the engine (all of them, or only once there
    /// are [`TAP_BATCH_POINTS`] or the oldest waited the tap's
    /// `batch_max_wait`) and picks up a new index.
    pub fn flush(&mut self, when: AlertFlush) {
        let due = when == AlertFlush::All
            || self.pending.len() >= TAP_BATCH_POINTS
            || self
                .pending_since
                .is_some_and(|t| t.elapsed() >= self.tap.batch_max_wait);
        if due && !self.pending.is_empty() {
            self.pending_since = None;
            // The next batch is likely the same size: allocate it once.
            let room = Points::with_capacity(self.pending.len(), self.pending.names.len());
            let batch = std::mem::replace(&mut self.pending, room);
            let n = batch.len() as u64;
            match self.tap.tx.try_send(batch) {
                Ok(()) => self.tap.points_sent.fetch_add(n, Relaxed),
                Err(_) => self.tap.points_dropped.fetch_add(n, Relaxed),
            };
        }
        let current = self.tap.index.load();
        if current.generation() != self.index.generation() {
            self.index = current.clone();
            self.answers.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::*;

    #[test]
    fn a_busy_reader_hands_points_over_in_batches() {
        let (tx, mut rx) = mpsc::channel(16);
        let tap = Arc::new(AlertTap::new(tx, 1000, std::time::Duration::from_millis(4)));
        tap.publish(Arc::new(PatternIndex::build([(0, "a.*")], 1).0));
        let mut c = tap.cache();
        c.flush(AlertFlush::WhenDue); // picks up the index
        c.offer("a.b", None, 1.0, 7);
        c.offer("x.y", None, 1.0, 7);
        c.flush(AlertFlush::WhenDue);
        assert!(rx.try_recv().is_err(), "one point waits for more");
        assert!(c.has_pending());
        for _ in 1..TAP_BATCH_POINTS {
            c.offer("a.b", None, 2.0, 7);
        }
        c.flush(AlertFlush::WhenDue);
        assert_eq!(
            rx.try_recv().unwrap().len(),
            TAP_BATCH_POINTS,
            "a full batch goes"
        );
        c.offer("a.c", None, 3.0, 8);
        c.flush(AlertFlush::All);
        let last = rx.try_recv().unwrap();
        assert_eq!(last.iter().collect::<Vec<_>>(), [("a.c", 3.0, 8)]);
        assert!(!c.has_pending());
    }

    #[test]
    fn points_give_back_each_name_and_value_in_order() {
        let mut p = Points::default();
        assert!(p.is_empty() && p.iter().next().is_none());
        let names = ["a.b", "", "ünï.cödé", "a.b"];
        for (i, n) in names.iter().enumerate() {
            p.push(n, i as f64, i as i64 - 1);
        }
        assert_eq!(p.len(), 4);
        let got: Vec<_> = p.iter().collect();
        assert_eq!(
            got,
            [
                ("a.b", 0.0, -1),
                ("", 1.0, 0),
                ("ünï.cödé", 2.0, 1),
                ("a.b", 3.0, 2)
            ]
        );
    }
}
