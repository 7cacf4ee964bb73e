//! The store writer: the task between the engine and the store. Each of
//! the engine's steps arrives as one [`Changes`] on a bounded queue (its
//! backpressure), is committed in one transaction, and the notifications
//! it created go on to the outbox.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::check::{Changes, NotificationSink, Store};
use crate::stats::{Figure, Figures};

/// The writer's counters.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Steps the store failed to commit.
    pub commit_errors: AtomicU64,
}

impl Figures for WriterStats {
    fn figures(&self, out: &mut dyn FnMut(Figure<'_>)) {
        out(Figure::counter(
            "alert_store_errors_total",
            self.commit_errors.load(Relaxed),
        ));
    }
}

/// Commits the engine's changes, merging whatever is queued into one
/// transaction, and offers the notifications created that are due now to
/// `sink`. Runs until the engine drops its end of `rx`.
pub async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Changes>,
    sink: Arc<dyn NotificationSink>,
    stats: Arc<WriterStats>,
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
                    let id = n.id;
                    if !sink.offer(n) {
                        let s = store.clone();
                        let _ =
                            tokio::task::spawn_blocking(move || s.release_notification(id)).await;
                    }
                }
            }
            Ok(Err(e)) => {
                stats.commit_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "Committing alert state failed.");
            }
            Err(e) => tracing::error!(error = %e, "The store writer panicked."),
        }
    }
}
