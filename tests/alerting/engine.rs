//! The engine on its own: points offered through a tap, changes committed
//! by the store writer into a real SQLite store (in memory), and what the
//! engine queued read back from the outbox table. No outbox runs, so
//! nothing is delivered: the sink refuses every fresh notification and
//! the writer leaves it pending for inspection.

use std::sync::Arc;
use std::time::Duration;

use carbonwatch::alert::engine::CHART_SERIES;
use carbonwatch::alert::{config_check_id, start, validate, AlertHandle, AlertingConfig, Clock};
use carbonwatch::check::{
    AlertType, Check, Notification, NotificationKind, NotificationSink, NotificationStatus, Store,
};
use carbonwatch::store::writer::{self, WriterStats};
use carbonwatch::store::SqliteStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A sink that takes nothing: notifications stay pending in the store.
struct Refuse;

impl NotificationSink for Refuse {
    fn offer(&self, _: Notification) -> bool {
        false
    }
}

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
    let c = Check {
        id: config_check_id(&c.name),
        ..c
    };
    let (changes, committed) = tokio::sync::mpsc::channel(cfg.store_queue_max_batches);
    let tasks = TaskTracker::new();
    tasks.spawn(writer::run(
        store.clone(),
        committed,
        Arc::new(Refuse),
        Arc::new(WriterStats::default()),
    ));
    let handle = start(
        store.clone(),
        vec![c],
        cfg,
        jiff::tz::TimeZone::UTC,
        changes,
        token.clone(),
        &tasks,
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
        cache.flush(carbonwatch::relay::tap::AlertFlush::All);
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
