//! The handle the rest of carbonwatch holds on the engine: requests go in
//! over a bounded command queue and come back on a oneshot, so the engine
//! task stays the only owner of its state.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use crate::check::{Check, Sample, SeriesState, StoreError};
use crate::relay::tap::AlertTap;
use crate::stats::{Figure, Figures};

/// What the engine has done, for `/metrics`.
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
    /// Points behind their series' newest: they joined the window they
    /// fall in, if any, and replaced no newer value.
    pub points_late: AtomicU64,
    /// Points older than their series' newest by more than the window
    /// plus `max_lateness_secs`: they changed nothing.
    pub points_too_late: AtomicU64,
    /// Points stamped more than `max_future_secs` ahead of the clock: not
    /// evaluated (still forwarded).
    pub points_future: AtomicU64,
    /// Per check name, the points of new series it refused: the checks
    /// whose alerting is incomplete.
    refused_by_check: Mutex<BTreeMap<String, u64>>,
}

impl EngineStats {
    pub(crate) fn note_refusals(&self, check: &str, points: u64) {
        let mut map = self
            .refused_by_check
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match map.get_mut(check) {
            Some(n) => *n = points,
            None => _ = map.insert(check.to_string(), points),
        }
    }

    pub(crate) fn forget_refusals(&self, check: &str) {
        let mut map = self
            .refused_by_check
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.remove(check);
    }
}

impl Figures for EngineStats {
    fn figures(&self, out: &mut dyn FnMut(Figure<'_>)) {
        let n = |c: &AtomicU64| c.load(Relaxed);
        out(Figure::counter(
            "alert_evaluations_total",
            n(&self.evaluations),
        ));
        out(Figure::counter(
            "alert_transitions_total",
            n(&self.transitions),
        ));
        out(Figure::gauge("alert_series", n(&self.series) as f64));
        out(Figure::counter(
            "alert_series_refused_total",
            n(&self.series_refused),
        ));
        out(Figure::counter(
            "alert_points_late_total",
            n(&self.points_late),
        ));
        out(Figure::counter(
            "alert_points_too_late_total",
            n(&self.points_too_late),
        ));
        out(Figure::counter(
            "alert_points_future_total",
            n(&self.points_future),
        ));
        let map = self
            .refused_by_check
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        out(Figure::gauge(
            "alert_checks_at_series_limit",
            map.len() as f64,
        ));
        for (check, &points) in map.iter() {
            out(Figure::counter("alert_check_series_refused_total", points).label("check", check));
        }
    }
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

/// Why a polled check's run has no values (Graphite's answer or its
/// absence); the check is EXCEPTION with this message until a run works.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PollFailure {
    /// What went wrong, as the check page shows it.
    pub message: String,
}

pub(crate) enum Command {
    Upsert(Box<Check>, oneshot::Sender<Result<Check, CheckError>>),
    Delete(String, oneshot::Sender<Result<bool, CheckError>>),
    List(oneshot::Sender<Vec<Check>>),
    Get(String, oneshot::Sender<Option<Check>>),
    Series(String, oneshot::Sender<Vec<(String, SeriesState)>>),
    Recent(String, oneshot::Sender<Recent>),
    Polled(String, Result<Vec<(String, Option<Sample>)>, PollFailure>),
    Seed(String, Vec<(String, Option<Sample>)>),
}

/// The handle the rest of carbonwatch holds.
#[derive(Clone)]
pub struct AlertHandle {
    /// Where the relay's dispatchers offer points; the engine reads it.
    pub tap: Arc<AlertTap>,
    /// What the engine has done.
    pub stats: Arc<EngineStats>,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) checks: watch::Receiver<Arc<Vec<Arc<Check>>>>,
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

    /// One check with its current state, without copying the others.
    pub async fn check(&self, id: &str) -> Result<Option<Check>, CheckError> {
        self.ask(|tx| Command::Get(id.to_string(), tx)).await
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
        result: Result<Vec<(String, Option<Sample>)>, PollFailure>,
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
        values: Vec<(String, Option<Sample>)>,
    ) -> Result<(), CheckError> {
        self.commands
            .send(Command::Seed(id.to_string(), values))
            .await
            .map_err(|_| CheckError::Stopped)
    }

    /// The checks, republished whenever they change.
    pub fn watch_checks(&self) -> watch::Receiver<Arc<Vec<Arc<Check>>>> {
        self.checks.clone()
    }
}

/// Recent values per series, `(epoch ms, value)`, oldest first.
pub type Recent = Vec<(String, Vec<(i64, f64)>)>;
