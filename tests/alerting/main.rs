//! Inline alerting end to end: points sent through the proxy change check
//! states, alert rows are written only on real changes, and notifications
//! reach a real HTTP endpoint, a real SMTP server (Debian's aiosmtpd) and
//! a real Alertmanager (Debian's prometheus-alertmanager); state and the
//! outbox survive a restart.

#[path = "../common/mod.rs"]
mod common;
mod engine;
mod graphite_poll;
mod poller;
mod tags;

use std::time::Duration;

use carbonwatch::app::App;
use carbonwatch::check::AlertType;
use carbonwatch::config::Config;
use common::{send, wait_until, Hook, Sink};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn config(store: &std::path::Path, sink: &Sink, checks: &str) -> Config {
    let text = format!(
        "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"127.0.0.1:0\"\npickle_tcp = \"127.0.0.1:0\"\n\
         [admin]\nlisten = \"\"\n[stats]\nenabled = false\n\
         [alerting]\nstore = \"{}\"\ntick_ms = 50\n\
         [notify]\npoll_interval_ms = 50\nretry_min_secs = 1\nseyren_url = \"http://carbonwatch.test/\"\n\
         [[cluster]]\nname = \"out\"\ntype = \"forward\"\ndestinations = [\"{}\"]\n\
         [[route]]\nmatch = \"*\"\nto = [\"out\"]\n{checks}",
        store.display(),
        sink.addr
    );
    Config::parse(&text, std::path::Path::new("alerting.toml")).unwrap()
}

fn http_check(name: &str, target: &str, hook: &Hook, extra: &str) -> String {
    format!(
        "[[check]]\nname = \"{name}\"\ntarget = \"{target}\"\nwarn = 5\nerror = 10\n{extra}\n\
         [[check.subscription]]\ntype = \"HTTP\"\ntarget = \"http://{}/hook\"\n",
        hook.addr
    )
}

#[tokio::test]
async fn a_breach_on_a_connection_that_stays_open_notifies() {
    // A busy connection hands points to alerting in batches; when the
    // client pauses, what it gathered goes at once, without waiting for
    // the connection to close or for more lines.
    let dir = tempfile::tempdir().unwrap();
    let (sink, hook) = (Sink::start().await, Hook::start().await);
    let checks = http_check("denied", "fw.*.denied", &hook, "");
    let app = App::start(config(&dir.path().join("cw.db"), &sink, &checks))
        .await
        .unwrap();
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    s.write_all(b"fw.edge1.denied 50 1700000000\n")
        .await
        .unwrap();
    let bodies = hook.wait(1).await;
    assert_eq!(bodies[0]["alerts"][0]["target"], "fw.edge1.denied");
    drop(s);
    app.shutdown().await;
}

#[tokio::test]
async fn a_breach_on_the_stream_notifies_with_seyrens_payload() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, hook) = (Sink::start().await, Hook::start().await);
    let checks = http_check(
        "ssh brute force",
        "auth.*.sshd.failed",
        &hook,
        "description = \"failed logins\"",
    );
    let app = App::start(config(&dir.path().join("cw.db"), &sink, &checks))
        .await
        .unwrap();
    send(
        &app,
        "auth.web1.sshd.failed 12 1700000000\nother.metric 99 1700000000\n",
    )
    .await;
    let bodies = hook.wait(1).await;
    let b = &bodies[0];
    assert_eq!(b["seyrenUrl"], "http://carbonwatch.test");
    assert_eq!(b["check"]["name"], "ssh brute force");
    assert_eq!(b["check"]["state"], "ERROR");
    assert_eq!(
        b["check"]["warn"], "5",
        "a check's thresholds are strings, as in Seyren"
    );
    assert_eq!(b["alerts"][0]["target"], "auth.web1.sshd.failed");
    assert_eq!(b["alerts"][0]["value"], 12.0);
    assert_eq!(
        b["alerts"][0]["warn"], 5.0,
        "an alert's thresholds are numbers"
    );
    assert_eq!(
        (
            b["alerts"][0]["fromType"].as_str(),
            b["alerts"][0]["toType"].as_str()
        ),
        (Some("OK"), Some("ERROR"))
    );
    assert!(b["preview"].as_str().unwrap().starts_with("<br />"));
    assert_eq!(b["subscription"]["type"], "HTTP");
    // Forwarding is unaffected.
    sink.wait_lines(2).await;
    let handle = app.alerts.clone().unwrap();
    assert_eq!(
        handle
            .engine
            .tap
            .points_sent
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "only the matching point reached the engine"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn alert_rows_only_on_real_changes_and_per_series_state() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, hook) = (Sink::start().await, Hook::start().await);
    let checks = http_check("fw denied", "fw.*.denied", &hook, "");
    let app = App::start(config(&dir.path().join("cw.db"), &sink, &checks))
        .await
        .unwrap();
    let alerts = app.alerts.clone().unwrap();
    send(&app, "fw.a.denied 20 -1\n").await;
    hook.wait(1).await;
    // ERROR -> ERROR on a, and a new series b in OK: no alert row, no call.
    send(&app, "fw.a.denied 30 -1\nfw.b.denied 1 -1\n").await;
    // b to WARN: one row, one call; the check is still ERROR (worst).
    send(&app, "fw.b.denied 6 -1\n").await;
    let bodies = hook.wait(2).await;
    assert_eq!(bodies[1]["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(bodies[1]["alerts"][0]["target"], "fw.b.denied");
    assert_eq!(bodies[1]["check"]["state"], "ERROR");
    // a recovers, then b: the check goes to OK.
    send(&app, "fw.a.denied 0 -1\n").await;
    hook.wait(3).await;
    send(&app, "fw.b.denied 0 -1\n").await;
    let bodies = hook.wait(4).await;
    assert_eq!(bodies[3]["check"]["state"], "OK");
    assert_eq!(bodies.len(), 4);
    let (rows, total) = alerts.store.alerts(None, 0, 0).unwrap();
    assert_eq!(total, 4, "{rows:?}");
    let checks = alerts.engine.checks().await.unwrap();
    assert_eq!(checks[0].state, AlertType::Ok);
    app.shutdown().await;
}

#[tokio::test]
async fn for_and_no_data_after_drive_state_without_new_points() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, hook) = (Sink::start().await, Hook::start().await);
    let checks = http_check("scan", "ids.*.portscan", &hook, "noDataAfter = \"1s\"");
    let app = App::start(config(&dir.path().join("cw.db"), &sink, &checks))
        .await
        .unwrap();
    send(&app, "ids.x.portscan 50 -1\n").await;
    hook.wait(1).await;
    // Silence: after noDataAfter the series turns UNKNOWN and says so.
    let bodies = hook.wait(2).await;
    assert_eq!(bodies[1]["alerts"][0]["toType"], "UNKNOWN");
    assert_eq!(bodies[1]["alerts"][0]["value"], serde_json::Value::Null);
    assert_eq!(bodies[1]["check"]["state"], "UNKNOWN");
    app.shutdown().await;
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_and_never_blocks_another() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, good, bad) = (
        Sink::start().await,
        Hook::start().await,
        Hook::start().await,
    );
    bad.status.store(503, std::sync::atomic::Ordering::Relaxed);
    let checks = format!(
        "{}[[check.subscription]]\ntype = \"HTTP\"\ntarget = \"http://{}/hook\"\n",
        http_check("two subscribers", "sec.*.virus", &good, ""),
        bad.addr
    );
    let app = App::start(config(&dir.path().join("cw.db"), &sink, &checks))
        .await
        .unwrap();
    send(&app, "sec.host1.virus 11 -1\n").await;
    good.wait(1).await;
    let handle = app.alerts.clone().unwrap();
    wait_until(Duration::from_secs(10), || {
        handle
            .outbox
            .retried
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    })
    .await;
    bad.status.store(200, std::sync::atomic::Ordering::Relaxed);
    let got = bad.wait(1).await;
    assert_eq!(got[0]["alerts"][0]["target"], "sec.host1.virus");
    assert_eq!(good.bodies().len(), 1, "the good endpoint got it once");
    app.shutdown().await;
}

/// One hung webhook delayed every other channel (#11): with 40
/// notifications to an endpoint that never answers and only 4 delivery
/// slots, a healthy subscription is still delivered, the hung one holds
/// only its lane's two slots, and what its lane cannot take waits in the
/// store, counted.
#[tokio::test]
async fn a_hung_endpoint_holds_only_its_own_lane() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, good) = (Sink::start().await, Hook::start().await);
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            held.push(s); // read nothing, answer nothing
        }
    });
    let mut checks = String::new();
    for i in 0..40 {
        checks.push_str(&format!(
            "[[check]]\nname = \"hung {i}\"\ntarget = \"hang.x\"\nwarn = 5\nerror = 10\n\
             [[check.subscription]]\ntype = \"HTTP\"\ntarget = \"http://{hung_addr}/hook\"\n"
        ));
    }
    checks.push_str(&http_check("healthy", "ok.x", &good, ""));
    let text = config(&dir.path().join("cw.db"), &sink, &checks);
    let mut text = text;
    text.notify.concurrency = 4;
    text.notify.per_destination_concurrency = 2;
    text.notify.per_destination_queue = 8;
    text.notify.timeout_secs = 600;
    let app = App::start(text).await.unwrap();
    send(&app, "hang.x 11 -1\n").await;
    let handle = app.alerts.clone().unwrap();
    wait_until(Duration::from_secs(30), || {
        handle
            .outbox
            .deferred_busy
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    })
    .await;
    send(&app, "ok.x 11 -1\n").await;
    let got = good.wait(1).await;
    assert_eq!(got[0]["check"]["name"], "healthy");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "the hung endpoint holds its lane's two slots and no more"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_restart_neither_repeats_nor_loses_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cw.db");
    let sink = Sink::start().await;
    // The endpoint is down at first: the notification stays in the outbox.
    let hook_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let checks = format!(
        "[[check]]\nname = \"logins\"\ntarget = \"ldap.*.failed\"\nwarn = 5\nerror = 10\n\
         [[check.subscription]]\ntype = \"HTTP\"\ntarget = \"http://{hook_addr}/hook\"\n"
    );
    let app = App::start(config(&db, &sink, &checks)).await.unwrap();
    send(&app, "ldap.dc1.failed 15 -1\n").await;
    let handle = app.alerts.clone().unwrap();
    wait_until(Duration::from_secs(10), || {
        handle
            .outbox
            .retried
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    })
    .await;
    app.shutdown().await;

    // Restart with the endpoint up: the pending notification is delivered
    // once, and the series' ERROR state was kept.
    let hook = Hook::start_at(hook_addr).await;
    let app = App::start(config(&db, &sink, &checks)).await.unwrap();
    let got = hook.wait(1).await;
    assert_eq!(got[0]["alerts"][0]["toType"], "ERROR");
    send(&app, "ldap.dc1.failed 20 -1\n").await; // still ERROR: nothing new
    send(&app, "ldap.dc1.failed 1 -1\n").await; // ERROR -> OK
    let got = hook.wait(2).await;
    assert_eq!(
        (
            got[1]["alerts"][0]["fromType"].as_str(),
            got[1]["alerts"][0]["toType"].as_str()
        ),
        (Some("ERROR"), Some("OK"))
    );
    app.shutdown().await;

    // A third start sends nothing more: everything was marked delivered.
    let app = App::start(config(&db, &sink, &checks)).await.unwrap();
    let handle = app.alerts.clone().unwrap();
    let counts = handle.store.notification_counts().unwrap();
    assert!(
        counts
            .iter()
            .any(|(s, n)| *s == carbonwatch::check::NotificationStatus::Delivered && *n == 2),
        "{counts:?}"
    );
    assert!(
        counts
            .iter()
            .any(|(s, n)| *s == carbonwatch::check::NotificationStatus::Pending && *n == 0),
        "{counts:?}"
    );
    app.shutdown().await;
    assert_eq!(hook.bodies().len(), 2);
}

#[tokio::test]
#[ignore = "needs Debian python3-aiosmtpd"]
async fn email_reaches_a_real_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let (_smtpd, port) = common::smtpd(&maildir).await;
    let sink = Sink::start().await;
    let checks = "[[check]]\nname = \"radius rejects\"\ntarget = \"radius.*.rejects\"\nwarn = 5\nerror = 10\n\
                  [[check.subscription]]\ntype = \"EMAIL\"\ntarget = \"secops@example.org\"\n";
    let mut cfg = config(&dir.path().join("cw.db"), &sink, checks);
    cfg.smtp.host = "127.0.0.1".into();
    cfg.smtp.port = port;
    cfg.smtp.from = "carbonwatch@example.org".into();
    let app = App::start(cfg).await.unwrap();
    send(&app, "radius.nas1.rejects 42 -1\n").await;
    wait_until(Duration::from_secs(30), || {
        !common::maildir_messages(&maildir).is_empty()
    })
    .await;
    let mail = &common::maildir_messages(&maildir)[0];
    assert!(mail.contains("To: secops@example.org"), "{mail}");
    assert!(
        mail.contains("Subject: carbonwatch alert: radius rejects is ERROR"),
        "{mail}"
    );
    assert!(mail.contains("radius.nas1.rejects"), "{mail}");
    app.shutdown().await;
}

#[tokio::test]
#[ignore = "needs Debian prometheus-alertmanager"]
async fn alerts_reach_a_real_alertmanager_and_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let (_am, port) = common::alertmanager(dir.path()).await;
    let sink = Sink::start().await;
    let checks = format!(
        "[[check]]\nname = \"snort hits\"\ntarget = \"snort.*.hits\"\nwarn = 5\nerror = 10\n\
         [[check.subscription]]\ntype = \"ALERTMANAGER\"\ntarget = \"http://127.0.0.1:{port}\"\n"
    );
    let app = App::start(config(&dir.path().join("cw.db"), &sink, &checks))
        .await
        .unwrap();
    send(&app, "snort.sensor1.hits 7 -1\n").await;
    let am: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut body = String::new();
    for _ in 0..400 {
        body = common::http_get(am, "/api/v2/alerts")
            .await
            .unwrap_or_default();
        if body.contains("snort.sensor1.hits") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(body.contains("\"alertname\":\"snort hits\""), "{body}");
    assert!(body.contains("\"severity\":\"warning\""), "{body}");
    assert!(body.contains("\"state\":\"active\""), "{body}");
    // Recovery resolves it: Alertmanager no longer lists it as active.
    send(&app, "snort.sensor1.hits 0 -1\n").await;
    let mut resolved = false;
    for _ in 0..400 {
        let b = common::http_get(am, "/api/v2/alerts?active=true")
            .await
            .unwrap_or_default();
        if b.contains("HTTP/1.1 200") && !b.contains("snort.sensor1.hits") {
            resolved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let last = common::http_get(am, "/api/v2/alerts")
        .await
        .unwrap_or_default();
    assert!(resolved, "the alert must resolve in Alertmanager: {last}");
    app.shutdown().await;
}

/// Writes a config to `path` that forwards everything to `sink`, keeps its
/// store in `dir`, and defines `checks`: the file the reload tests edit.
fn write_reloadable(path: &std::path::Path, dir: &std::path::Path, sink: &Sink, checks: &str) {
    std::fs::write(
        path,
        format!(
            "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\n[admin]\nlisten = \"\"\n\
             [stats]\nenabled = false\n[alerting]\nstore = \"{}\"\ntick_ms = 50\n[notify]\npoll_interval_ms = 50\n\
             [[cluster]]\nname = \"out\"\ntype = \"forward\"\ndestinations = [\"{}\"]\n[[route]]\nmatch = \"*\"\nto = [\"out\"]\n{checks}",
            dir.join("cw.db").display(),
            sink.addr
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn reload_adds_changes_and_removes_checks_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, hook) = (Sink::start().await, Hook::start().await);
    let path = dir.path().join("c.toml");
    let write = |checks: &str| write_reloadable(&path, dir.path(), &sink, checks);
    write(&http_check("old", "old.*", &hook, ""));
    let mut app = App::start(Config::load(&path).unwrap()).await.unwrap();
    send(&app, "old.a 20 -1\n").await;
    assert_eq!(hook.wait(1).await[0]["check"]["name"], "old");
    // Replace "old" with "new", whose thresholds are lower.
    write(
        &http_check("new", "new.*", &hook, "")
            .replace("warn = 5\nerror = 10", "warn = 1\nerror = 2"),
    );
    app.reload(&path).await.unwrap();
    let handle = app.alerts.clone().unwrap();
    let names: Vec<String> = handle
        .engine
        .checks()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["new"]);
    send(&app, "old.a 0 -1\nnew.a 3 -1\n").await;
    let bodies = hook.wait(2).await;
    assert_eq!(bodies[1]["check"]["name"], "new");
    assert_eq!(bodies[1]["alerts"][0]["toType"], "ERROR");
    assert_eq!(
        handle.store.load_checks().unwrap().len(),
        1,
        "the removed check is gone from the store"
    );
    app.shutdown().await;
    assert_eq!(hook.bodies().len(), 2, "nothing from the removed check");
}

/// A reload changes only what the file changed: a check whose thresholds
/// changed keeps its state (no second notification for the same breach),
/// one that did not change keeps its state and its subscription's id,
/// and a check given over the API stays.
#[tokio::test]
async fn reload_keeps_the_state_of_changed_and_unchanged_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, hook) = (Sink::start().await, Hook::start().await);
    let path = dir.path().join("c.toml");
    let write = |checks: &str| write_reloadable(&path, dir.path(), &sink, checks);
    let both = |changed: &str| {
        format!(
            "{}{}",
            http_check("changed", "changed.*", &hook, "").replace("warn = 5", changed),
            http_check("same", "same.*", &hook, "")
        )
    };
    write(&both("warn = 5"));
    let mut app = App::start(Config::load(&path).unwrap()).await.unwrap();
    let handle = app.alerts.clone().unwrap();
    let api = carbonwatch::check::Check {
        name: "from the api".into(),
        target: "api.*".into(),
        warn: carbonwatch::check::model::Threshold::parse("5"),
        error: carbonwatch::check::model::Threshold::parse("10"),
        enabled: true,
        live: true,
        ..serde_json::from_str("{}").unwrap()
    };
    let api = handle.engine.upsert(api).await.unwrap();
    send(&app, "changed.a 20 -1\nsame.a 20 -1\n").await;
    assert_eq!(hook.wait(2).await.len(), 2);
    let before = handle.engine.checks().await.unwrap();
    let same_before = before.iter().find(|c| c.name == "same").unwrap().clone();
    assert!(!same_before.subscriptions[0].id.is_empty());

    write(&both("warn = 6"));
    app.reload(&path).await.unwrap();
    let after = handle.engine.checks().await.unwrap();
    let find = |n: &str| after.iter().find(|c| c.name == n).unwrap().clone();
    let changed = find("changed");
    assert_eq!(changed.warn.as_ref().unwrap().text, "6");
    assert_eq!(changed.state, carbonwatch::check::AlertType::Error);
    assert_eq!(
        find("same"),
        same_before,
        "an unchanged check is left as it was"
    );
    assert!(handle.engine.check(&api.id).await.unwrap().is_some());

    send(&app, "changed.a 20 -1\nsame.a 20 -1\n").await;
    send(&app, "api.a 1 -1\n").await;
    app.shutdown().await;
    assert_eq!(
        hook.bodies().len(),
        2,
        "no second notification for the same breach"
    );
}

/// Security teams' use: an aggregate rule sums failed logins over every
/// host, and a live check alerts on the sum, which no single host's
/// series reaches.
#[tokio::test]
async fn a_check_on_an_aggregate_alerts_on_the_sum_over_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, hook) = (Sink::start().await, Hook::start().await);
    let checks = format!(
        "[[aggregate]]\nregex = '^auth\\.[^.]+\\.sshd\\.failed$'\nevery_secs = 1\nexpire_secs = 2\n\
         compute = [{{ function = \"sum\", write_to = \"auth.all.sshd.failed\" }}]\nsend_to = [\"out\"]\n{}",
        http_check("logins", "auth.all.sshd.failed", &hook, "")
    );
    let app = App::start(config(&dir.path().join("cw.db"), &sink, &checks))
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // 4 failures on each of 3 hosts: each below warn = 5, the sum 12.
    let mut lines = String::new();
    for h in 1..=3 {
        for _ in 0..4 {
            lines += &format!("auth.web{h}.sshd.failed 1 {now}\n");
        }
    }
    send(&app, &lines).await;
    let bodies = hook.wait(1).await;
    let alert = &bodies[0]["alerts"][0];
    assert_eq!(alert["target"], "auth.all.sshd.failed");
    assert_eq!(alert["value"], 12.0);
    assert_eq!(alert["toType"], "ERROR");
    app.shutdown().await;
}
