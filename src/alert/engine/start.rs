//! Start-up: the checks from the file merged with the stored ones, the
//! saved series states restored, and the engine task spawned.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::NameCache;
use jiff::tz::TimeZone;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Clock, Engine};
use crate::alert::{AlertHandle, AlertingConfig, CheckError, EngineStats};
use crate::check::{Changes, Check, Store, StoreError};
use crate::relay::tap::AlertTap;
use crate::route::index::PatternIndex;

/// Starts the engine on `rt`, tracked by `tasks`, with its two ports: the
/// store it loads from and writes checks to, and `changes`, where each
/// step's changes go (the caller commits them: see
/// `store::writer`). `tz` is the zone subscription windows are
/// read in. `config_checks` (with the ids the config gave
/// them) are upserted first, so state saved by an earlier run is restored
/// for them too.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    store: Arc<dyn Store>,
    config_checks: Vec<Check>,
    cfg: AlertingConfig,
    tz: TimeZone,
    changes: mpsc::Sender<Changes>,
    token: CancellationToken,
    tasks: &TaskTracker,
    rt: &tokio::runtime::Handle,
) -> Result<AlertHandle, CheckError> {
    let s = store.clone();
    let (checks, series) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
        // The stored checks in the store's order (insertion; an update
        // keeps its place), with the file's merged in: only those that
        // changed are written, so a restart with the same file writes
        // nothing, and nothing is read back.
        let mut checks = s.load_checks()?;
        let at: HashMap<String, usize> = checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let mut changed = Vec::new();
        for mut c in config_checks {
            if let Some(&i) = at.get(&c.id) {
                let old = &checks[i];
                c.state = old.state;
                c.last_check = old.last_check;
                if *old == c {
                    continue;
                }
            }
            changed.push(c);
        }
        s.put_checks(&changed)?;
        for c in changed {
            match at.get(&c.id) {
                Some(&i) => checks[i] = c,
                None => checks.push(c),
            }
        }
        Ok((checks, s.load_series()?))
    })
    .await
    .map_err(|_| CheckError::Stopped)??;

    let (points_tx, points_rx) = mpsc::channel(cfg.queue_max_batches.max(1));
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (checks_tx, checks_rx) = watch::channel(Arc::new(Vec::<Arc<Check>>::new()));
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
        names: NameCache::new(cfg.max_cached_names),
        tap: tap.clone(),
        store: store.clone(),
        changes,
        clock,
        tz,
        cfg: cfg.clone(),
        stats: stats.clone(),
        batch: Changes::default(),
        changed: Vec::new(),
        touched: Vec::new(),
        ticking: Vec::new(),
        evaluations: 0,
        matching: Vec::new(),
        transitions: Vec::new(),
        event_time: cfg.event_time(),
        max_future_ms: (cfg.max_future_secs as i64).saturating_mul(1000),
        refusing: Vec::new(),
        drops_seen: 0,
        last_drop_ms: None,
        checks_tx,
    };
    let now = clock.now_ms();
    for c in checks {
        engine.insert(c);
    }
    for (check_id, name, state) in series {
        if let Some(&slot) = engine.by_id.get(&check_id) {
            let rt = engine.slots[slot as usize]
                .as_mut()
                .expect("slot of a known id");
            // Silence is measured from the restart, not from before it.
            let state = state.restored(now);
            rt.counts[state.state as usize] += 1;
            rt.series.insert(name.into(), state);
            stats.series.fetch_add(1, Relaxed);
        }
    }
    engine.rebuild_index();

    tasks.spawn_on(engine.run(points_rx, cmd_rx, token), rt);
    Ok(AlertHandle {
        tap,
        stats,
        commands: cmd_tx,
        checks: checks_rx,
    })
}
