//! Start-up: the checks from the file merged with the stored ones, the
//! saved series states restored, and the engine task spawned.

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

/// A check as loaded, with the state and last evaluation stored for it.
type Loaded = (Arc<Check>, crate::check::AlertType, Option<i64>);

/// Starts the engine on `rt`, tracked by `tasks`, with its two ports: the
/// store it loads from and writes checks to, and `changes`, where each
/// step's changes go (the caller commits them: see
/// `store::writer`). `tz` is the zone subscription windows are
/// read in. `config_checks` (with the ids the config gave
/// them) are upserted first, so state saved by an earlier run is restored
/// for them too; the engine keeps the caller's copy of each unchanged one.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    store: Arc<dyn Store>,
    config_checks: Vec<Arc<Check>>,
    cfg: AlertingConfig,
    tz: TimeZone,
    changes: mpsc::Sender<Changes>,
    token: CancellationToken,
    tasks: &TaskTracker,
    rt: &tokio::runtime::Handle,
) -> Result<AlertHandle, CheckError> {
    let s = store.clone();
    let (checks, unsaved, series) =
        tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            // The stored checks in the store's order (insertion; an update
            // keeps its place), with the file's merged in: only those that
            // changed are written (by the engine, first thing, so the ports
            // need not wait for 100,000 inserts), so a restart with the same
            // file writes nothing, and nothing is read back. A file check the store
            // agrees with is held once, shared with the caller; a stored one
            // is dropped as soon as it is compared.
            let in_file: rustc_hash::FxHashMap<&str, usize> = config_checks
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id.as_str(), i))
                .collect();
            let mut seen = vec![false; config_checks.len()];
            let mut checks: Vec<Loaded> = Vec::with_capacity(config_checks.len());
            let mut changed: Vec<usize> = Vec::new();
            s.scan_checks(&mut |stored| {
                let (state, last) = (stored.state, stored.last_check);
                match in_file.get(stored.id.as_str()) {
                    Some(&i) if config_checks[i].same_definition(&stored) => {
                        seen[i] = true;
                        checks.push((config_checks[i].clone(), state, last));
                    }
                    Some(&i) => {
                        seen[i] = true;
                        let mut c = Check::clone(&config_checks[i]);
                        c.state = state;
                        c.last_check = last;
                        changed.push(checks.len());
                        checks.push((Arc::new(c), state, last));
                    }
                    None => checks.push((Arc::new(stored), state, last)),
                }
            })?;
            let first_added = checks.len();
            for (c, _) in config_checks.iter().zip(&seen).filter(|(_, &seen)| !seen) {
                checks.push((c.clone(), c.state, c.last_check));
            }
            let unsaved: Vec<Arc<Check>> = changed
                .iter()
                .copied()
                .chain(first_added..checks.len())
                .map(|i| checks[i].0.clone())
                .collect();
            Ok((checks, unsaved, s.load_series()?))
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
        by_id: hashbrown::HashTable::new(),
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
    engine.slots.reserve_exact(checks.len());
    engine
        .by_id
        .reserve(checks.len(), |_| unreachable!("empty"));
    for (c, state, last_check) in checks {
        engine.insert_shared(c, state, last_check);
    }
    for (check_id, name, state) in series {
        if let Some(slot) = engine.slot_of(&check_id) {
            let rt = engine.slots[slot as usize]
                .as_mut()
                .expect("slot of a known id");
            // Silence is measured from the restart, not from before it.
            let state = state.restored(now);
            rt.counts[state.state as usize] += 1;
            rt.series.insert(&name, state);
            stats.series.fetch_add(1, Relaxed);
        }
    }
    engine.rebuild_index();

    tasks.spawn_on(engine.run(points_rx, cmd_rx, token, unsaved), rt);
    Ok(AlertHandle {
        tap,
        stats,
        commands: cmd_tx,
        checks: checks_rx,
    })
}
