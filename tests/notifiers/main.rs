//! Every notifier against a local stand-in for its service, checking the
//! exact request (method, path, headers, form or JSON body) for WARN,
//! ERROR and OK, and the failure paths: a non-2xx answer, no answer, a
//! refused connection. SNMP goes to Debian's real snmptrapd, IRCCAT to a
//! TCP line receiver.

#[path = "../common/mod.rs"]
mod common;
mod sockets;

use std::time::{Duration, Instant};

use base64_shim::encode as b64;
use carbonwatch::check::model::Threshold;
use carbonwatch::check::{
    Alert, AlertType, Check, NewNotification, NotificationKind, Subscription, SubscriptionType,
};
use carbonwatch::notify::{Notifiers, NotifyConfig, NotifyError, SmtpConfig};
use serde_json::{json, Value};

use common::{Receiver, Recorded};

/// Basic auth's base64, written out here so the test does not trust the
/// code it checks.
mod base64_shim {
    pub fn encode(s: &str) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = s.as_bytes();
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

pub const CHECK_URL: &str = "http://cw/#/checks/c1";

/// `[notify]` with every service at `base`.
pub fn cfg(base: &str) -> NotifyConfig {
    NotifyConfig {
        seyren_url: "http://cw".into(),
        graphite_url: "http://graphite".into(),
        timeout_secs: 1,
        slack_token: "xoxb-1".into(),
        slack_api_url: format!("{base}/api"),
        pagerduty_url: base.into(),
        hipchat_baseurl: base.into(),
        hipchat_authtoken: "hc-token".into(),
        hubot_url: base.into(),
        flowdock_api_url: base.into(),
        flowdock_tags: "security, ids".into(),
        flowdock_emojis: ":grey_question:,:white_check_mark:,:warning:,:rotating_light:".into(),
        pushover_api_url: base.into(),
        pushover_app_api_token: "po-app".into(),
        twilio_url: format!("{base}/2010-04-01/Accounts"),
        twilio_account_sid: "AC1".into(),
        twilio_auth_token: "tw-secret".into(),
        twilio_phone_number: "+15550001".into(),
        opsgenie_api_url: base.into(),
        opsgenie_teams: "ops,sec".into(),
        victorops_rest_endpoint: format!("{base}/integrations/generic/20131114/alert/VO-KEY/"),
        bigpanda_notification_url: format!("{base}/data/v2/alerts"),
        bigpanda_auth_bearer: "bp-bearer".into(),
        telegram_api_url: base.into(),
        telegram_bot_token: "123:abc".into(),
        alertmanager_url: base.into(),
        ..NotifyConfig::default()
    }
}

pub const PUSHOVER_USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";

/// A subscription target for `kind` whose service lives at `base`.
pub fn target(kind: SubscriptionType, base: &str) -> String {
    use SubscriptionType::*;
    match kind {
        Hipchat => "ops,dev team".into(),
        Hubot => "ops,dev".into(),
        Flowdock => "flow-token".into(),
        Http => format!("{base}/hook"),
        Pushover => PUSHOVER_USER.into(),
        Slack => "#ops!".into(),
        Twilio => "+15551234".into(),
        Victorops => "route-1".into(),
        Opsgenie => "og-key".into(),
        Bigpanda => "bp-app".into(),
        Pagerduty => "pd-key".into(),
        Telegram => "-100200".into(),
        Msteams => format!("{base}/teams"),
        Discord => format!("{base}/discord"),
        Mattermost => format!("{base}/mattermost"),
        Alertmanager => String::new(),
        Email | Irccat | Logger | Snmp => "unused".into(),
    }
}

/// A notification of check `ssh` reaching `state`, from WARN (or, for
/// WARN, from OK), with one alert for one series.
pub fn notification(kind: SubscriptionType, target: &str, state: AlertType) -> NewNotification {
    let mut check: Check = serde_json::from_value(json!({
        "id": "c1", "name": "ssh", "description": "failed logins", "target": "auth.*.failed",
        "warn": "5", "error": "10", "enabled": true, "live": true}))
    .unwrap();
    check.state = state;
    let subscription: Subscription = serde_json::from_value(
        json!({"id": "s1", "type": kind, "target": target, "enabled": true}),
    )
    .unwrap();
    let from = if state == AlertType::Warn {
        AlertType::Ok
    } else {
        AlertType::Warn
    };
    NewNotification {
        kind: NotificationKind::Change,
        check,
        subscription,
        alerts: vec![Alert {
            id: "a1".into(),
            check_id: "c1".into(),
            value: Some(12.0),
            target: "auth.web1.failed".into(),
            warn: Threshold::parse("5"),
            error: Threshold::parse("10"),
            from_type: from,
            to_type: state,
            timestamp: 1_700_000_000_000,
            detected_timestamp: Some(1_700_000_000_004),
        }],
        not_before_ms: 0,
    }
}

const STATES: [AlertType; 3] = [AlertType::Warn, AlertType::Error, AlertType::Ok];

/// Sends one notification of each state through `kind` and returns what
/// the service received for each.
async fn each_state(kind: SubscriptionType) -> Vec<(AlertType, Vec<Recorded>)> {
    let r = Receiver::start().await;
    // Slack's Web API and PagerDuty's v1 say in the body whether they
    // took the message.
    r.set_answer(r#"{"ok": true, "status": "success"}"#);
    let notifiers = Notifiers::new(&cfg(&r.url()), &SmtpConfig::default());
    let mut out = Vec::new();
    for state in STATES {
        let n = notification(kind, &target(kind, &r.url()), state);
        notifiers
            .send(&n)
            .await
            .unwrap_or_else(|e| panic!("{kind:?} {state}: {e}"));
        out.push((state, r.take()));
    }
    out
}

fn one(reqs: &[Recorded]) -> &Recorded {
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    &reqs[0]
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn is_form(r: &Recorded) {
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded"),
        "{r:?}"
    );
}

fn is_json(r: &Recorded) -> Value {
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    r.json()
}

#[tokio::test]
async fn hipchat_posts_one_form_per_room_in_seyrens_words() {
    for (state, reqs) in each_state(SubscriptionType::Hipchat).await {
        let color = match state {
            AlertType::Warn => "yellow",
            AlertType::Error => "red",
            _ => "green",
        };
        assert_eq!(reqs.len(), 2, "one per room");
        for (r, room) in reqs.iter().zip(["ops", "dev%20team"]) {
            assert_eq!(r.method, "POST");
            assert_eq!(
                r.target,
                format!("/v2/room/{room}/notification?auth_token=hc-token")
            );
            is_form(r);
            let message =
                format!("Check <a href={CHECK_URL}>ssh</a> has entered its {state} state.");
            assert_eq!(
                r.form(),
                form(&[
                    ("message", &message),
                    ("color", color),
                    ("message_format", "html"),
                    ("notify", "true")
                ])
            );
        }
    }
    let r = Receiver::start().await;
    let n = notification(SubscriptionType::Hipchat, "ops", AlertType::Unknown);
    Notifiers::new(&cfg(&r.url()), &SmtpConfig::default())
        .send(&n)
        .await
        .unwrap();
    assert!(r.requests().is_empty(), "UNKNOWN is not sent, as in Seyren");
}

#[tokio::test]
async fn hubot_gets_seyrens_json_with_the_rooms() {
    for (state, reqs) in each_state(SubscriptionType::Hubot).await {
        let r = one(&reqs);
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/seyren/alert")
        );
        let b = is_json(r);
        assert_eq!(b["rooms"], json!(["ops", "dev"]));
        assert_eq!(b["seyrenUrl"], "http://cw");
        assert_eq!(b["check"]["name"], "ssh");
        assert_eq!(b["check"]["state"], state.as_str());
        assert_eq!(b["check"]["warn"], "5", "a check's thresholds are strings");
        assert_eq!(b["subscription"]["type"], "HUBOT");
        assert_eq!(b["alerts"][0]["target"], "auth.web1.failed");
        assert_eq!(b["alerts"][0]["value"], 12.0);
        assert_eq!(b["alerts"][0]["toType"], state.as_str());
    }
}

#[tokio::test]
async fn flowdock_gets_content_tags_and_sender() {
    for (state, reqs) in each_state(SubscriptionType::Flowdock).await {
        let r = one(&reqs);
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/v1/messages/chat/flow-token")
        );
        assert_eq!(r.header("accept"), Some("application/json"));
        let b = is_json(r);
        let emoji = [
            ":grey_question:",
            ":white_check_mark:",
            ":warning:",
            ":rotating_light:",
        ][state as usize];
        assert_eq!(
            b["content"],
            format!("{emoji} ssh has entered its {state} state - [auth.web1.failed: 12] - 2023-11-14T22:13:20.000Z - {CHECK_URL}")
        );
        assert_eq!(b["external_user_name"], "Seyren");
        assert_eq!(b["tags"], json!([state.as_str(), "security", "ids"]));
    }
}

#[tokio::test]
async fn pushover_gets_seyrens_form_and_refuses_a_bad_user_key() {
    for (state, reqs) in each_state(SubscriptionType::Pushover).await {
        let r = one(&reqs);
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/1/messages.json")
        );
        is_form(r);
        let (title, priority) = match state {
            AlertType::Warn => ("[WARN] ssh", "1"),
            AlertType::Error => ("[CRIT] ssh", "1"),
            _ => ("[OK] ssh", "0"),
        };
        let message = format!("Check details : {CHECK_URL}");
        assert_eq!(
            r.form(),
            form(&[
                ("token", "po-app"),
                ("user", PUSHOVER_USER),
                ("title", title),
                ("message", &message),
                ("priority", priority)
            ])
        );
    }
    let r = Receiver::start().await;
    let n = notification(SubscriptionType::Pushover, "short", AlertType::Error);
    let e = Notifiers::new(&cfg(&r.url()), &SmtpConfig::default())
        .send(&n)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("30-character"), "{e}");
    assert!(r.requests().is_empty());
}

#[tokio::test]
async fn twilio_sends_an_sms_with_basic_auth() {
    for (state, reqs) in each_state(SubscriptionType::Twilio).await {
        let r = one(&reqs);
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/2010-04-01/Accounts/AC1/Messages")
        );
        assert_eq!(
            r.header("authorization").unwrap(),
            format!("Basic {}", b64("AC1:tw-secret"))
        );
        is_form(r);
        let body = match state {
            AlertType::Warn => "WARN Check ssh has exceeded its threshold.",
            AlertType::Error => "ERROR Check ssh has exceeded its threshold.",
            _ => "OK Check ssh has been resolved.",
        };
        assert_eq!(
            r.form(),
            form(&[("To", "+15551234"), ("From", "+15550001"), ("Body", body)])
        );
    }
}

#[tokio::test]
async fn victorops_resolves_the_routing_key_and_maps_states() {
    for (state, reqs) in each_state(SubscriptionType::Victorops).await {
        let r = one(&reqs);
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            (
                "POST",
                "/integrations/generic/20131114/alert/VO-KEY/route-1"
            )
        );
        let b = is_json(r);
        let kind = match state {
            AlertType::Warn => "WARNING",
            AlertType::Error => "CRITICAL",
            _ => "RECOVERY",
        };
        assert_eq!(b["entity_id"], "c1");
        assert_eq!(b["entity_display_name"], "ssh");
        assert_eq!(b["message_type"], kind);
        assert_eq!(b["monitoring_tool"], "Seyren");
        let m = b["state_message"].as_str().unwrap();
        let lines: Vec<&str> = m.split('\n').collect();
        assert_eq!(lines[0], "Check: failed logins");
        assert_eq!(lines[1], "Query: auth.*.failed");
        let alert: Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(
            (&alert["check_id"], &alert["to_type"], &alert["timestamp"]),
            (
                &json!("c1"),
                &json!(state.as_str()),
                &json!("2023-11-14T22:13:20.000Z")
            )
        );
        assert_eq!(lines[3], CHECK_URL);
    }
}

#[tokio::test]
async fn opsgenie_creates_on_breach_and_closes_the_checks_open_alerts_on_ok() {
    let r = Receiver::start().await;
    let notifiers = Notifiers::new(&cfg(&r.url()), &SmtpConfig::default());
    for state in [AlertType::Warn, AlertType::Error] {
        let n = notification(SubscriptionType::Opsgenie, "og-key", state);
        notifiers.send(&n).await.unwrap();
        let reqs = r.take();
        let req = one(&reqs);
        assert_eq!(
            (req.method.as_str(), req.target.as_str()),
            ("POST", "/v2/alerts")
        );
        assert_eq!(req.header("authorization"), Some("GenieKey og-key"));
        let b = is_json(req);
        assert_eq!(b["message"], "Check ssh");
        assert_eq!(b["source"], "Seyren");
        assert_eq!(b["description"], "failed logins");
        assert_eq!(
            b["details"],
            json!({"Check State": state.as_str(), "Target": "auth.*.failed"})
        );
        assert_eq!(
            b["responders"],
            json!([{"name": "ops", "type": "team"}, {"name": "sec", "type": "team"}])
        );
    }
    r.set_answer(
        r#"{"data": [{"id": "A1", "message": "Check ssh", "status": "open"},
                     {"id": "A2", "message": "Check other", "status": "open"},
                     {"id": "A3", "message": "Check ssh", "status": "open"}]}"#,
    );
    let n = notification(SubscriptionType::Opsgenie, "og-key", AlertType::Ok);
    notifiers.send(&n).await.unwrap();
    let reqs = r.take();
    let seen: Vec<(&str, &str)> = reqs
        .iter()
        .map(|q| (q.method.as_str(), q.target.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/v2/alerts?query=status%3Aopen&limit=100"),
            ("POST", "/v2/alerts/A1/close"),
            ("POST", "/v2/alerts/A3/close")
        ]
    );
    assert!(reqs
        .iter()
        .all(|q| q.header("authorization") == Some("GenieKey og-key")));
}

#[tokio::test]
async fn bigpanda_posts_one_alert_per_series_with_a_bearer() {
    for (state, reqs) in each_state(SubscriptionType::Bigpanda).await {
        let r = one(&reqs);
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/data/v2/alerts")
        );
        assert_eq!(r.header("authorization"), Some("Bearer bp-bearer"));
        let b = is_json(r);
        let status = match state {
            AlertType::Warn => "warning",
            AlertType::Error => "critical",
            _ => "ok",
        };
        assert_eq!(b["app_key"], "bp-app");
        assert_eq!(b["status"], status);
        assert_eq!(b["service"], "ssh");
        assert_eq!(b["check"], "auth.web1.failed");
        assert_eq!(b["description"], "failed logins");
        assert_eq!(b["timestamp"], 1_700_000_000);
        assert_eq!(b["seyrenCheckUrl"], CHECK_URL);
        assert_eq!(
            (
                &b["currentValue"],
                &b["thresholdWarning"],
                &b["thresholdCritical"]
            ),
            (&json!(12.0), &json!(5.0), &json!(10.0))
        );
        assert!(b["previewGraph"]
            .as_str()
            .unwrap()
            .starts_with("http://graphite/render/?target=auth.*.failed&from=-1h&"));
    }
}

#[tokio::test]
async fn slack_with_a_token_uses_chat_post_message_and_reads_its_answer() {
    for (state, reqs) in each_state(SubscriptionType::Slack).await {
        let r = one(&reqs);
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/api/chat.postMessage")
        );
        assert_eq!(r.header("accept"), Some("application/json"));
        is_form(r);
        let text = format!(
            "*{state}* ssh [{CHECK_URL}]\n> failed logins\n```\nauth.web1.failed = 12 ({} to {state})\n```\n#{} <!channel>",
            if state == AlertType::Warn { "OK" } else { "WARN" },
            state.as_str().to_lowercase()
        );
        assert_eq!(
            r.form(),
            form(&[
                ("token", "xoxb-1"),
                ("channel", "#ops"),
                ("text", &text),
                ("username", "carbonwatch"),
                ("icon_url", "")
            ])
        );
    }
    let r = Receiver::start().await;
    r.set_answer(r#"{"ok": false, "error": "channel_not_found"}"#);
    let n = notification(SubscriptionType::Slack, "#nope", AlertType::Error);
    let e = Notifiers::new(&cfg(&r.url()), &SmtpConfig::default())
        .send(&n)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("channel_not_found"), "{e}");
}

#[tokio::test]
async fn pagerduty_speaks_seyrens_v1_and_reads_its_answer() {
    for (state, reqs) in each_state(SubscriptionType::Pagerduty).await {
        let r = one(&reqs);
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/generic/2010-04-15/create_event.json")
        );
        let b = is_json(r);
        let (event, description) = match state {
            AlertType::Ok => ("resolve", "Check 'ssh' has been resolved."),
            _ => ("trigger", "Check 'ssh' has exceeded its threshold."),
        };
        assert_eq!(
            (&b["service_key"], &b["event_type"], &b["description"]),
            (&json!("pd-key"), &json!(event), &json!(description))
        );
        assert_eq!(b["incident_key"], "MonitoringAlerts_c1");
        assert_eq!(
            (&b["client"], &b["client_url"]),
            (&json!("Seyren"), &json!(CHECK_URL))
        );
        assert_eq!(b["details"]["STATE"], state.as_str());
    }
    let r = Receiver::start().await;
    r.set_answer(r#"{"status": "invalid event", "message": "Event object is invalid"}"#);
    let n = notification(SubscriptionType::Pagerduty, "pd-key", AlertType::Error);
    let e = Notifiers::new(&cfg(&r.url()), &SmtpConfig::default())
        .send(&n)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Event object is invalid"), "{e}");
}

#[tokio::test]
async fn telegram_sends_the_check_series_values_and_link() {
    for (state, reqs) in each_state(SubscriptionType::Telegram).await {
        let r = one(&reqs);
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/bot123:abc/sendMessage")
        );
        let b = is_json(r);
        assert_eq!(b["chat_id"], "-100200");
        let from = if state == AlertType::Warn {
            "OK"
        } else {
            "WARN"
        };
        assert_eq!(
            b["text"],
            format!("{state}: ssh\nauth.web1.failed: {from} → {state}, value 12 (warn 5, error 10)\n{CHECK_URL}")
        );
    }
}

#[tokio::test]
async fn teams_discord_and_mattermost_get_their_webhook_shapes() {
    for (state, reqs) in each_state(SubscriptionType::Msteams).await {
        let r = one(&reqs);
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/teams"));
        let b = is_json(r);
        assert_eq!(b["@type"], "MessageCard");
        assert_eq!(b["title"], format!("{state}: ssh"));
        assert_eq!(b["sections"][0]["facts"][0]["name"], "auth.web1.failed");
        assert!(b["sections"][0]["facts"][0]["value"]
            .as_str()
            .unwrap()
            .contains("value 12 (warn 5, error 10)"));
        assert_eq!(b["potentialAction"][0]["targets"][0]["uri"], CHECK_URL);
    }
    for (state, reqs) in each_state(SubscriptionType::Discord).await {
        let r = one(&reqs);
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/discord"));
        let b = is_json(r);
        assert_eq!(b["content"], format!("{state}: ssh"));
        let e = &b["embeds"][0];
        assert_eq!((&e["title"], &e["url"]), (&json!("ssh"), &json!(CHECK_URL)));
        let colour = match state {
            AlertType::Warn => 0xf2a900,
            AlertType::Error => 0xd93025,
            _ => 0x2ea043,
        };
        assert_eq!(e["color"], colour);
        assert_eq!(e["fields"][0]["name"], "auth.web1.failed");
    }
    for (state, reqs) in each_state(SubscriptionType::Mattermost).await {
        let r = one(&reqs);
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/mattermost")
        );
        let text = is_json(r)["text"].as_str().unwrap().to_string();
        assert!(
            text.starts_with(&format!("**{state}: ssh**\n```\nauth.web1.failed: ")),
            "{text}"
        );
        assert!(text.ends_with(CHECK_URL), "{text}");
    }
}

/// Every type that speaks HTTP, its failures: a non-2xx answer, no answer
/// within the timeout, a refused connection. Each is an error (so the
/// outbox retries it), and none takes longer than the timeout.
#[tokio::test]
async fn every_http_notifier_fails_cleanly_on_5xx_silence_and_refusal() {
    use SubscriptionType::*;
    let kinds = [
        Pagerduty,
        Hipchat,
        Hubot,
        Flowdock,
        Http,
        Pushover,
        Slack,
        Twilio,
        Victorops,
        Opsgenie,
        Bigpanda,
        Alertmanager,
        Telegram,
        Msteams,
        Discord,
        Mattermost,
    ];
    let failing = Receiver::start().await;
    failing.set_status(500);
    let silent = Receiver::start().await;
    silent.set_hang(true);
    let (_closed, closed_port) = common::down_port();
    let closed = format!("http://127.0.0.1:{closed_port}");
    // The kinds run side by side: each silent endpoint costs a timeout.
    let mut all = tokio::task::JoinSet::new();
    for kind in kinds {
        for (what, base) in [
            ("5xx", failing.url()),
            ("silence", silent.url()),
            ("refused", closed.clone()),
        ] {
            all.spawn(async move {
                let n = notification(kind, &target(kind, &base), AlertType::Error);
                let started = Instant::now();
                let result = Notifiers::new(&cfg(&base), &SmtpConfig::default())
                    .send(&n)
                    .await;
                let e = result.expect_err(&format!("{kind:?} on {what}"));
                if what == "5xx" {
                    assert!(
                        matches!(e, NotifyError::Status { status: 500, .. }),
                        "{kind:?}: {e}"
                    );
                }
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "{kind:?} on {what}: {:?}",
                    started.elapsed()
                );
            });
        }
    }
    while let Some(done) = all.join_next().await {
        done.unwrap();
    }
}
