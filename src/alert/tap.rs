//! The data path's view of alerting. A [`TapCache`] lives in each
//! connection's dispatcher and answers "does any live check match this
//! name?" from a per-name cache, so the usual cost per point is one hash
//! lookup, and nothing at all while there are no live checks. Matching
//! points are batched and handed to the engine once per read with
//! `try_send`: forwarding never waits on alerting, and a full queue is
//! counted in `alert_points_dropped`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use crate::alert::index::PatternIndex;

/// One point for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Metric name.
    pub name: Box<str>,
    /// Value.
    pub value: f64,
}

/// Shared between the engine and every dispatcher.
#[derive(Debug)]
pub struct AlertTap {
    index: ArcSwap<PatternIndex>,
    tx: mpsc::Sender<Vec<Point>>,
    /// Points handed to the engine.
    pub points_sent: AtomicU64,
    /// Points dropped because the engine's queue was full.
    pub points_dropped: AtomicU64,
    max_cached_names: usize,
}

impl AlertTap {
    /// A tap feeding `tx`.
    pub fn new(tx: mpsc::Sender<Vec<Point>>, max_cached_names: usize) -> Self {
        AlertTap {
            index: ArcSwap::from_pointee(PatternIndex::default()),
            tx,
            points_sent: AtomicU64::new(0),
            points_dropped: AtomicU64::new(0),
            max_cached_names: max_cached_names.max(1),
        }
    }

    /// Publishes a new index; caches notice by its generation.
    pub fn publish(&self, index: Arc<PatternIndex>) {
        self.index.store(index);
    }

    /// The current index.
    pub fn index(&self) -> Arc<PatternIndex> {
        self.index.load_full()
    }

    /// A cache for one dispatcher.
    pub fn cache(self: &Arc<Self>) -> TapCache {
        TapCache {
            tap: self.clone(),
            index: self.index(),
            names: FxHashMap::default(),
            pending: Vec::new(),
        }
    }
}

/// One dispatcher's cache and pending batch.
#[derive(Debug)]
pub struct TapCache {
    tap: Arc<AlertTap>,
    index: Arc<PatternIndex>,
    names: FxHashMap<Box<str>, bool>,
    pending: Vec<Point>,
}

impl TapCache {
    /// Looks at one forwarded point.
    #[inline]
    pub fn offer(&mut self, name: &str, value: f64) {
        if self.index.is_empty() {
            return;
        }
        let hit = match self.names.get(name) {
            Some(&hit) => hit,
            None => {
                let hit = self.index.is_match(name);
                if self.names.len() >= self.tap.max_cached_names {
                    self.names.clear();
                }
                self.names.insert(name.into(), hit);
                hit
            }
        };
        if hit {
            self.pending.push(Point {
                name: name.into(),
                value,
            });
        }
    }

    /// Hands pending points to the engine and picks up a new index.
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            let batch = std::mem::take(&mut self.pending);
            let n = batch.len() as u64;
            match self.tap.tx.try_send(batch) {
                Ok(()) => self.tap.points_sent.fetch_add(n, Relaxed),
                Err(_) => self.tap.points_dropped.fetch_add(n, Relaxed),
            };
        }
        let current = self.tap.index.load();
        if current.generation() != self.index.generation() {
            self.index = current.clone();
            self.names.clear();
        }
    }
}
