//! The engine on its own: points offered through a tap, changes committed
//! by the store writer into a real SQLite store (in memory), and what the
//! engine queued read back from the outbox table. No outbox runs, so
//! nothing is delivered: the sink refuses every fresh notification and
//! the writer leaves it pending for inspection.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use carbonwatch::alert::engine::CHART_SERIES;
use carbonwatch::alert::{config_check_id, start, validate, AlertHandle, AlertingConfig, Clock};
use carbonwatch::check::{
    AlertType, Check, Notification, NotificationKind, NotificationSink, NotificationStatus, Store,
};
use carbonwatch::stats::Figures;
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
    /// Reads what the engine's clock reads (tokio's paused time).
    clock: Clock,
    store: Arc<SqliteStore>,
    token: CancellationToken,
}

async fn rig(c: Check) -> Rig {
    rig_with(c, AlertingConfig::default()).await
}

async fn rig_with(c: Check, cfg: AlertingConfig) -> Rig {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let token = CancellationToken::new();
    let cfg = AlertingConfig {
        store: String::new(),
        tick_ms: 1000,
        ..cfg
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
        vec![Arc::new(c)],
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
        clock: Clock::new(),
        store,
        token,
    }
}

impl Rig {
    /// One point stamped now.
    fn send(&self, name: &str, value: f64) {
        self.send_at(name, value, self.now_secs());
    }

    fn now_secs(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    /// Points with their own timestamps (epoch seconds), in one batch.
    fn send_points(&self, points: &[(&str, f64, i64)]) {
        let mut cache = self.handle.tap.cache();
        for &(name, value, ts) in points {
            cache.offer(name, None, value, ts);
        }
        cache.flush(carbonwatch::relay::tap::AlertFlush::All);
    }

    fn send_at(&self, name: &str, value: f64, ts: i64) {
        self.send_points(&[(name, value, ts)]);
    }

    /// Every alert row, oldest first by data time: (from, to, value,
    /// timestamp in seconds).
    fn history(&self) -> Vec<(AlertType, AlertType, Option<f64>, i64)> {
        let mut rows = self.store.alerts(None, 0, 1000).unwrap().0;
        rows.reverse();
        rows.iter()
            .map(|a| (a.from_type, a.to_type, a.value, a.timestamp / 1000))
            .collect()
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
    r.send("sec.web.failed", 50.0);
    r.settle(Duration::from_secs(29)).await;
    assert!(r.outbox().is_empty(), "held for 30 of 60 s");
    r.settle(Duration::from_secs(120)).await;
    assert!(
        r.outbox().is_empty(),
        "the clock alone does not say the breach lasted: only data does"
    );
    // Two minutes on in data time, the breach is still there.
    r.send("sec.web.failed", 50.0);
    r.settle(Duration::from_secs(1)).await;
    let out = r.outbox();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].1, vec![(AlertType::Ok, AlertType::Error)]);
    assert_eq!(r.store.alerts(None, 0, 0).unwrap().1, 1);
}

#[tokio::test(start_paused = true)]
async fn an_hour_of_backfill_in_one_burst_is_judged_in_data_time() {
    let r = rig(check(serde_json::json!({"for": "5m"}))).await;
    // An upstream relay replays an hour from its spool: one point a
    // minute, a 20-minute breach in the middle, all in one burst.
    let start = r.now_secs() - 3600;
    let points: Vec<(&str, f64, i64)> = (0..60)
        .map(|m| {
            let v = if (20..40).contains(&m) { 50.0 } else { 1.0 };
            ("sec.web.failed", v, start + m * 60)
        })
        .collect();
    r.send_points(&points);
    r.settle(Duration::from_secs(1)).await;
    assert_eq!(
        r.history(),
        [
            (AlertType::Ok, AlertType::Error, Some(50.0), start + 25 * 60),
            (AlertType::Error, AlertType::Ok, Some(1.0), start + 45 * 60),
        ],
        "the breach is found where it was, and dated by its data"
    );
    let (rows, _) = r.store.alerts(None, 0, 10).unwrap();
    let detected = rows[0].detected_timestamp.expect("detection time kept");
    assert!(
        detected >= (start + 3600) * 1000,
        "detected now, not an hour ago"
    );
}

#[tokio::test(start_paused = true)]
async fn a_late_point_does_not_override_a_newer_value() {
    let r = rig(check(serde_json::json!({}))).await;
    let now = r.now_secs();
    r.send_at("sec.late.failed", 1.0, now);
    r.send_at("sec.late.failed", 500.0, now - 30 * 60);
    r.send_at("sec.late.failed", 500.0, now - 60);
    r.settle(Duration::from_secs(2)).await;
    assert!(r.history().is_empty(), "{:?}", r.history());
    let stats = &r.handle.stats;
    assert_eq!(stats.points_too_late.load(Relaxed), 1, "30 minutes behind");
    assert_eq!(stats.points_late.load(Relaxed), 1, "a minute behind");
    let series = r.handle.series(&config_check_id("c")).await.unwrap();
    assert_eq!(series[0].1.value(), Some(1.0));
    assert_eq!(series[0].1.newest_ms, now * 1000);
}

#[tokio::test(start_paused = true)]
async fn a_point_from_the_future_is_counted_and_not_evaluated() {
    let r = rig(check(serde_json::json!({}))).await;
    let now = r.now_secs();
    r.send_at("sec.clock.failed", 500.0, now + 3600);
    r.send_at("sec.clock.failed", 1.0, now);
    r.settle(Duration::from_secs(1)).await;
    assert!(r.history().is_empty());
    assert_eq!(r.handle.stats.points_future.load(Relaxed), 1);
    r.send_at("sec.clock.failed", 500.0, now + 60);
    r.settle(Duration::from_secs(1)).await;
    assert_eq!(r.history().len(), 1, "a minute ahead is within bounds");
}

#[tokio::test(start_paused = true)]
async fn shuffled_within_the_disorder_bound_gives_the_in_order_transitions() {
    let c = check(serde_json::json!({"for": "2m", "window": {"fn": "avg", "duration": "3m"}}));
    let mut values = vec![
        1.0, 9.0, 30.0, 2.0, 40.0, 50.0, 45.0, 1.0, 0.0, 0.0, 0.0, 20.0,
    ];
    values.extend([0.0; 14]);
    // In order and in real time, one point every 30 s.
    let inorder = rig(c.clone()).await;
    let start = inorder.now_secs();
    for (i, &v) in values.iter().enumerate() {
        inorder.send_at("sec.a.failed", v, start + 30 * i as i64);
        inorder.settle(Duration::from_secs(30)).await;
    }
    let want = inorder.history();
    assert!(want.len() >= 2, "the data makes changes: {want:?}");
    let want: Vec<_> = want
        .into_iter()
        .map(|(f, t, v, ts)| (f, t, v, ts - start))
        .collect();

    // The same points an hour later, in one burst, each swapped with its
    // neighbour: never more than 30 s out of order, with 60 s allowed.
    let cfg = AlertingConfig {
        max_disorder_secs: 60,
        ..AlertingConfig::default()
    };
    let shuffled = rig_with(c, cfg).await;
    let base = shuffled.now_secs() - 3000;
    let mut points: Vec<(&str, f64, i64)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| ("sec.a.failed", v, base + 30 * i as i64))
        .collect();
    for pair in points.chunks_mut(2) {
        pair.reverse();
    }
    shuffled.send_points(&points);
    shuffled.settle(Duration::from_secs(61)).await;
    let got: Vec<_> = shuffled
        .history()
        .into_iter()
        .map(|(f, t, v, ts)| (f, t, v, ts - base))
        .collect();
    assert_eq!(got, want);
    assert_eq!(shuffled.handle.stats.points_late.load(Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_check_that_misses_points_says_so() {
    let cfg = AlertingConfig {
        max_series_per_check: 2,
        queue_max_batches: 1,
        ..AlertingConfig::default()
    };
    let r = rig_with(check(serde_json::json!({})), cfg).await;
    r.settle(Duration::from_secs(1)).await;
    let c = &r.handle.checks().await.unwrap()[0];
    assert!(c.degraded.is_none(), "{:?}", c.degraded);
    assert!(serde_json::to_value(c).unwrap().get("degraded").is_none());

    // Three series for a check that may track two.
    let now = r.now_secs();
    r.send_points(&[("sec.a.failed", 1.0, now), ("sec.b.failed", 1.0, now)]);
    r.settle(Duration::from_secs(1)).await;
    r.send("sec.c.failed", 1.0);
    r.settle(Duration::from_secs(1)).await;
    // The engine cannot run between these: the second batch finds its
    // queue full and is dropped.
    r.send("sec.a.failed", 20.0);
    r.send("sec.b.failed", 20.0);
    r.settle(Duration::from_secs(2)).await;

    let c = &r.handle.checks().await.unwrap()[0];
    let d = c.degraded.as_deref().expect("degraded");
    assert_eq!(d.series_refused, 1);
    assert_eq!(d.points_dropped, 1);
    assert!(d.last_drop_ms.is_some());
    let doc = serde_json::to_value(c).unwrap();
    assert_eq!(doc["degraded"]["seriesRefused"], 1, "{doc}");
    assert_eq!(doc["degraded"]["pointsDropped"], 1, "{doc}");

    let mut figures = Vec::new();
    r.handle.stats.figures(&mut |f| {
        figures.push((
            f.prometheus.unwrap_or(""),
            f.label.map(|l| l.1.to_string()),
            f.value,
        ))
    });
    assert!(
        figures.contains(&("alert_checks_at_series_limit", None, 1.0)),
        "{figures:?}"
    );
    assert!(
        figures.contains(&("alert_check_series_refused_total", Some("c".into()), 1.0)),
        "{figures:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_series_by_tag_check_selects_tagged_series() {
    let target = "seriesByTag('name=disk.used', 'dc=ams', 'host=~web.*', 'env!=dev')";
    let r = rig(check(serde_json::json!({ "target": target }))).await;
    let now = r.now_secs();
    r.send_points(&[
        ("disk.used;host=web1;dc=ams", 20.0, now),
        ("disk.used;dc=ams;host=web2;env=dev", 20.0, now),
        ("disk.used;host=db1;dc=ams", 20.0, now),
        ("disk.used;host=web3;dc=fra", 20.0, now),
        ("disk.free;host=web4;dc=ams", 20.0, now),
    ]);
    r.settle(Duration::from_secs(1)).await;
    let rows = r.store.alerts(None, 0, 10).unwrap().0;
    let series: Vec<&str> = rows.iter().map(|a| a.target.as_str()).collect();
    assert_eq!(series, ["disk.used;host=web1;dc=ams"]);
    assert!(validate(&check(
        serde_json::json!({ "target": "seriesByTag('env!=dev')" })
    ))
    .is_err());
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
