//! Seyren's REST API on the admin port: every endpoint with its status
//! codes and JSON shapes, the error cases, the base path, bearer-token
//! auth and the UI page.

#[path = "../common/mod.rs"]
mod common;
mod guards;
mod import;
mod web_ui;

use std::sync::{Arc, Mutex};

use carbonwatch::app::App;
use carbonwatch::config::Config;
use common::{Hook, Sink};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

struct Rig {
    app: App,
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    _dir: tempfile::TempDir,
    _sink: Sink,
}

/// Test notifications may reach the loopback receivers of these tests;
/// `rig_with` sets the `[notify]` policy itself.
async fn rig(admin_extra: &str, base_path: &str) -> Rig {
    rig_with(
        admin_extra,
        base_path,
        "test_allow_networks = [\"127.0.0.0/8\"]",
    )
    .await
}

async fn rig_with(admin_extra: &str, base_path: &str, notify_extra: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let text = format!(
        "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\napi_base_path = \"{base_path}\"\n{admin_extra}\n\
         [stats]\nenabled = false\n[alerting]\nstore = \"{}\"\ntick_ms = 50\n\
         [notify]\npoll_interval_ms = 50\nseyren_url = \"http://cw.test/\"\n{notify_extra}\n\
         [[cluster]]\nname = \"out\"\ntype = \"forward\"\ndestinations = [\"{}\"]\n\
         [[route]]\nmatch = \"*\"\nto = [\"out\"]\n",
        dir.path().join("cw.db").display(),
        sink.addr
    );
    let config = Config::parse(&text, std::path::Path::new("api.toml")).unwrap();
    let token =
        (!config.admin_http.auth_token.is_empty()).then(|| config.admin_http.auth_token.clone());
    let app = App::start(config).await.unwrap();
    let base = format!("http://{}{base_path}", app.admin.unwrap());
    Rig {
        app,
        base,
        http: reqwest::Client::new(),
        token,
        _dir: dir,
        _sink: sink,
    }
}

impl Rig {
    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(m, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.req(reqwest::Method::GET, path).send().await.unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn send(&self, m: reqwest::Method, path: &str, body: &str) -> reqwest::Response {
        self.req(m, path)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn create(&self, check: Value) -> String {
        let r = self
            .send(reqwest::Method::POST, "/checks", &check.to_string())
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        assert!(
            loc.starts_with(&format!("{}/checks/", self.base)),
            "absolute Location: {loc}"
        );
        loc.rsplit('/').next().unwrap().to_string()
    }

    async fn points(&self, lines: &str) {
        let mut s = tokio::net::TcpStream::connect(self.app.plaintext_tcp.unwrap())
            .await
            .unwrap();
        s.write_all(lines.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn checks_crud_with_seyrens_shapes_and_filters() {
    let r = rig("", "/api").await;
    let id = r
        .create(
            json!({"name": "fw denied", "target": "fw.*.denied", "warn": 5, "error": "10",
                       "enabled": true, "live": true, "totalMetric": 3, "description": "d"}),
        )
        .await;
    let (s, c) = r.get(&format!("/checks/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(c["warn"], "5", "a check's thresholds are strings");
    assert_eq!(c["error"], "10");
    assert_eq!(c["state"], "OK", "a missing state becomes OK on POST");
    assert_eq!(c["from"], Value::Null, "nulls are written");
    assert_eq!(c["subscriptions"], json!([]));
    assert_eq!(c["allowNoData"], false);
    r.create(json!({"name": "quiet", "target": "q.*", "warn": 1, "error": 2, "enabled": false, "state": "ERROR"}))
        .await;

    let (_, all) = r.get("/checks").await;
    assert_eq!(
        (
            all["total"].as_u64(),
            all["items"].as_u64(),
            all["start"].as_u64()
        ),
        (Some(2), Some(0), Some(0))
    );
    let (_, errs) = r.get("/checks?state=ERROR&state=WARN").await;
    assert_eq!(errs["values"][0]["name"], "quiet");
    assert_eq!(errs["total"], 1);
    let (_, on) = r.get("/checks?enabled=true").await;
    assert_eq!(on["values"][0]["name"], "fw denied");
    assert_eq!(on["total"], 1);
    let (_, re) = r.get("/checks?fields=target&regexes=%5Eq%5C.").await;
    assert_eq!(re["values"][0]["name"], "quiet");
    let (_, page) = r.get("/checks?start=1&items=1").await;
    assert_eq!(
        (page["values"][0]["name"].as_str(), page["total"].as_u64()),
        (Some("quiet"), Some(2))
    );

    // A subscription survives a PUT of the check, which keeps it.
    let sub = r
        .send(
            reqwest::Method::POST,
            &format!("/checks/{id}/subscriptions"),
            r#"{"type": "HTTP", "target": "http://127.0.0.1:9/x", "enabled": true}"#,
        )
        .await;
    assert_eq!(sub.status(), StatusCode::CREATED);
    assert!(sub.headers()["location"]
        .to_str()
        .unwrap()
        .contains(&format!("/checks/{id}/subscriptions/")));
    let put = r
        .send(reqwest::Method::PUT, &format!("/checks/{id}"),
              &json!({"id": "ignored", "name": "fw denied 2", "target": "fw.*.denied", "warn": 5, "error": 10, "enabled": true, "live": true}).to_string())
        .await;
    assert_eq!(put.status(), StatusCode::OK);
    let (_, c) = r.get(&format!("/checks/{id}")).await;
    assert_eq!(c["name"], "fw denied 2", "the path id selects the check");
    assert_eq!(c["subscriptions"].as_array().unwrap().len(), 1);

    let del = r
        .send(reqwest::Method::DELETE, &format!("/checks/{id}"), "")
        .await;
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.get(&format!("/checks/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let again = r
        .send(reqwest::Method::DELETE, &format!("/checks/{id}"), "")
        .await;
    assert_eq!(
        again.status(),
        StatusCode::NO_CONTENT,
        "DELETE is 204 always, as in Seyren"
    );
    r.app.shutdown().await;
}

/// What Seyren's own acceptance tests do: partial checks created, found by
/// `state` and by `fields`/`regexes`, subscriptions created from `{}`,
/// updated, tested and deleted by the id in their `Location`.
#[tokio::test]
async fn partial_checks_and_subscriptions_are_taken_as_seyren_takes_them() {
    let r = rig("", "/api").await;
    let created = |body: Value| {
        let r = &r;
        async move {
            let resp = r
                .send(reqwest::Method::POST, "/checks", &body.to_string())
                .await;
            assert_eq!(resp.status(), StatusCode::CREATED, "{body}");
            let loc = resp.headers()["location"].to_str().unwrap().to_string();
            let prefix = format!("http://{}/api/checks/", r.app.admin.unwrap());
            assert!(loc.starts_with(&prefix), "absolute: {loc}");
            loc[prefix.len()..].to_string()
        }
    };
    let empty = created(json!({})).await;
    let erroring = created(json!({"state": "ERROR"})).await;
    let named = created(json!({"name": "test", "warn": 1.0, "error": 2.0})).await;
    let broken =
        created(json!({"name": "no thresholds", "target": "a.b", "enabled": true, "live": true}))
            .await;
    let (_, c) = r.get(&format!("/checks/{empty}")).await;
    for key in [
        "name",
        "target",
        "description",
        "warn",
        "error",
        "from",
        "until",
        "lastCheck",
    ] {
        assert_eq!(c[key], Value::Null, "{key} of {{}}: {c}");
    }
    for key in ["enabled", "live", "allowNoData"] {
        assert_eq!(c[key], false, "{key}");
    }
    assert_eq!(
        (
            c["state"].as_str(),
            c["subscriptions"].as_array().map(Vec::len)
        ),
        (Some("OK"), Some(0))
    );
    assert!(
        c["problem"].as_str().unwrap().contains("no target"),
        "marked incomplete: {c}"
    );
    let (_, c) = r.get(&format!("/checks/{named}")).await;
    // Strings, as Seyren writes BigDecimals (serde_json reads 1.0 as the
    // number 1, so the text is "1" where Seyren writes "1.0").
    let number = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    assert_eq!(
        (number(&c["warn"]), number(&c["error"])),
        (Some(1.0), Some(2.0)),
        "{c}"
    );
    let (_, c) = r.get(&format!("/checks/{broken}")).await;
    assert_eq!(c["state"], "EXCEPTION", "reported, not refused: {c}");
    assert!(
        c["problem"].as_str().unwrap().contains("warn and error"),
        "{c}"
    );

    let ids = |doc: Value| -> Vec<String> {
        doc["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, doc) = r.get("/checks?state=ERROR").await;
    assert_eq!(ids(doc), std::slice::from_ref(&erroring));
    let (_, doc) = r.get("/checks?fields=name&regexes=^te").await;
    assert_eq!(ids(doc), std::slice::from_ref(&named));

    // A subscription from {}: Seyren's defaults, a string id.
    let resp = r
        .send(
            reqwest::Method::POST,
            &format!("/checks/{named}/subscriptions"),
            "{}",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    let prefix = format!(
        "http://{}/api/checks/{named}/subscriptions/",
        r.app.admin.unwrap()
    );
    assert!(loc.starts_with(&prefix), "{loc}");
    let sid = loc[prefix.len()..].to_string();
    let (_, c) = r.get(&format!("/checks/{named}")).await;
    let s = &c["subscriptions"][0];
    assert_eq!(s["id"], sid.as_str());
    for key in ["target", "type", "fromTime", "toTime"] {
        assert_eq!(s[key], Value::Null, "{key}: {s}");
    }
    for key in [
        "su",
        "mo",
        "tu",
        "we",
        "th",
        "fr",
        "sa",
        "ignoreWarn",
        "ignoreError",
        "ignoreOk",
        "enabled",
    ] {
        assert_eq!(s[key], false, "{key}: {s}");
    }
    let test = format!("/checks/{named}/subscriptions/{sid}/test");
    assert_eq!(
        r.send(reqwest::Method::PUT, &test, "").await.status(),
        StatusCode::NO_CONTENT,
        "no type: nothing to send"
    );
    let sub = json!({"type": "LOGGER", "enabled": true, "fromTime": "0800", "toTime": "x"});
    let resp = r
        .send(
            reqwest::Method::PUT,
            &format!("/checks/{named}/subscriptions/{sid}"),
            &sub.to_string(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (_, c) = r.get(&format!("/checks/{named}")).await;
    let s = &c["subscriptions"][0];
    assert_eq!(
        (s["type"].as_str(), s["fromTime"].as_str(), &s["toTime"]),
        (Some("LOGGER"), Some("0800"), &Value::Null),
        "not four characters is null: {s}"
    );
    assert_eq!(
        r.send(reqwest::Method::PUT, &test, "").await.status(),
        StatusCode::NO_CONTENT
    );

    // PUT is Seyren's $set: scalars from the body, subscriptions kept,
    // extensions kept unless named.
    let put = |body: Value| {
        let r = &r;
        let named = named.clone();
        async move {
            let resp = r
                .send(
                    reqwest::Method::PUT,
                    &format!("/checks/{named}"),
                    &body.to_string(),
                )
                .await;
            assert_eq!(resp.status(), StatusCode::OK, "{body}");
            r.get(&format!("/checks/{named}")).await.1
        }
    };
    let c = put(json!({"name": "test", "description": "d", "target": "a.*", "warn": 1, "error": 2, "enabled": true, "live": true, "for": "5m"})).await;
    assert_eq!(
        (
            c["description"].as_str(),
            c["for"].as_str(),
            c["state"].as_str()
        ),
        (Some("d"), Some("300s"), Some("OK")),
        "{c}"
    );
    assert_eq!(
        c["subscriptions"].as_array().unwrap().len(),
        1,
        "subscriptions untouched"
    );
    let c = put(json!({"name": "test", "target": "a.*", "warn": 1, "error": 2, "enabled": true, "live": true})).await;
    assert_eq!(
        (&c["description"], c["for"].as_str()),
        (&Value::Null, Some("300s")),
        "absent scalar is null, absent extension kept: {c}"
    );
    assert_eq!(c["subscriptions"][0]["id"], sid.as_str());

    assert_eq!(
        r.send(
            reqwest::Method::DELETE,
            &loc[loc.find("/checks/").unwrap()..],
            ""
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    let (_, c) = r.get(&format!("/checks/{named}")).await;
    assert_eq!(
        c["subscriptions"].as_array().unwrap().len(),
        0,
        "deleted by its Location id"
    );
    for id in [empty, erroring, named, broken] {
        assert_eq!(
            r.send(reqwest::Method::DELETE, &format!("/checks/{id}"), "")
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(r.get("/checks").await.1["total"], 0);
    r.app.shutdown().await;
}

/// `PUT .../subscriptions/{sid}/test` on every type answers 204 once the
/// channel took the message (the service stand-in, a TCP and a UDP
/// socket, Debian's aiosmtpd), and 500 with Seyren's `Notifying failed`
/// text when it did not.
#[tokio::test]
#[ignore = "needs Debian python3-aiosmtpd"]
async fn the_test_endpoint_sends_through_every_type() {
    use carbonwatch::check::SubscriptionType;
    let service = common::Receiver::start().await;
    service.set_answer(r#"{"ok": true, "status": "success", "data": []}"#);
    let irccat = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let irccat_port = irccat.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let got = lines.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = irccat.accept().await {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut s, &mut text).await;
            got.lock().unwrap().push(text);
        }
    });
    let snmp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let maildir = tempfile::tempdir().unwrap();
    let (_smtpd, smtp_port) = common::smtpd(&maildir.path().join("mail")).await;
    let base = service.url();
    let notify = format!(
        "test_allow_networks = [\"127.0.0.0/8\"]\nslack_token = \"t\"\nslack_api_url = \"{base}\"\n\
         pagerduty_url = \"{base}\"\nhipchat_baseurl = \"{base}\"\nhubot_url = \"{base}\"\n\
         flowdock_api_url = \"{base}\"\nirccat_host = \"127.0.0.1\"\nirccat_port = {irccat_port}\n\
         pushover_api_url = \"{base}\"\npushover_app_api_token = \"p\"\nsnmp_host = \"127.0.0.1\"\n\
         snmp_port = {}\ntwilio_url = \"{base}\"\ntwilio_account_sid = \"AC\"\n\
         opsgenie_api_url = \"{base}\"\nvictorops_rest_endpoint = \"{base}/vo/\"\n\
         bigpanda_notification_url = \"{base}/bp\"\nbigpanda_auth_bearer = \"b\"\n\
         telegram_api_url = \"{base}\"\ntelegram_bot_token = \"1:a\"\nalertmanager_url = \"{base}\"\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nfrom = \"cw@example.org\"",
        snmp.local_addr().unwrap().port()
    );
    let r = rig_with("", "/api", &notify).await;
    let id = r.create(json!({"name": "ssh", "target": "auth.*.failed", "warn": 5, "error": 10, "enabled": true, "live": true})).await;
    let target = |kind: SubscriptionType| match kind {
        SubscriptionType::Email => "ops@example.org".to_string(),
        SubscriptionType::Http => format!("{base}/hook"),
        SubscriptionType::Pushover => "u".repeat(30),
        SubscriptionType::Msteams | SubscriptionType::Discord | SubscriptionType::Mattermost => {
            format!("{base}/webhook")
        }
        SubscriptionType::Alertmanager => String::new(),
        _ => "ops".to_string(),
    };
    let mut sids = Vec::new();
    for kind in SubscriptionType::ALL {
        let sub = json!({"type": kind, "target": target(kind), "enabled": true});
        let resp = r
            .send(
                reqwest::Method::POST,
                &format!("/checks/{id}/subscriptions"),
                &sub.to_string(),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        sids.push((kind, loc.rsplit('/').next().unwrap().to_string()));
    }
    for (kind, sid) in &sids {
        let before = service.requests().len();
        let resp = r
            .send(
                reqwest::Method::PUT,
                &format!("/checks/{id}/subscriptions/{sid}/test"),
                "",
            )
            .await;
        let status = resp.status();
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "{kind:?}: {}",
            resp.text().await.unwrap()
        );
        let http = !matches!(
            kind,
            SubscriptionType::Email
                | SubscriptionType::Irccat
                | SubscriptionType::Logger
                | SubscriptionType::Snmp
        );
        if http {
            assert!(
                service.requests().len() > before,
                "{kind:?} reached its service"
            );
        }
    }
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("ops %RED[CRIT]%NORMAL ssh")),
        "irccat"
    );
    let mut trap = [0u8; 1500];
    let (n, _) = snmp.recv_from(&mut trap).await.unwrap();
    assert_eq!(trap[0], 0x30, "a BER sequence of {n} bytes");
    common::wait_until(std::time::Duration::from_secs(10), || {
        !common::maildir_messages(&maildir.path().join("mail")).is_empty()
    })
    .await;
    service.set_status(500);
    let (_, http_sid) = sids
        .iter()
        .find(|(k, _)| *k == SubscriptionType::Http)
        .unwrap();
    let resp = r
        .send(
            reqwest::Method::PUT,
            &format!("/checks/{id}/subscriptions/{http_sid}/test"),
            "",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(resp.text().await.unwrap(), "Notifying failed 'HTTP 500'");
    r.app.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_a_4xx_with_a_message() {
    let r = rig("", "/api").await;
    let id = r.create(json!({"name": "a", "target": "a.*", "warn": 1, "error": 2, "enabled": true, "live": true})).await;
    let cases: Vec<(reqwest::Method, String, &str, StatusCode)> = vec![
        (
            reqwest::Method::POST,
            "/checks".into(),
            "{not json",
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::POST,
            "/checks".into(),
            r#"{"name": "c", "target": "c", "warn": "lots", "error": 1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::POST,
            "/checks".into(),
            r#"{"name": "a", "target": "x", "warn": 1, "error": 2}"#,
            StatusCode::CONFLICT,
        ),
        (
            reqwest::Method::GET,
            "/checks/nope".into(),
            "",
            StatusCode::NOT_FOUND,
        ),
        (
            reqwest::Method::PUT,
            "/checks/nope".into(),
            "{}",
            StatusCode::NOT_FOUND,
        ),
        (
            reqwest::Method::GET,
            "/alerts?start=-1".into(),
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::GET,
            "/alerts?items=abc".into(),
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::GET,
            "/checks?state=BAD".into(),
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::GET,
            "/checks?fields=name&regexes=(".into(),
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::DELETE,
            format!("/checks/{id}/alerts?before=yesterday"),
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::POST,
            format!("/checks/{id}/subscriptions"),
            r#"{"type": "CARRIER_PIGEON"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::PUT,
            format!("/checks/{id}/subscriptions/nope/test"),
            "",
            StatusCode::NOT_FOUND,
        ),
        (
            reqwest::Method::PUT,
            format!("/checks/{id}/subscriptions/nope"),
            r#"{"type": "HTTP"}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            reqwest::Method::GET,
            "/no/such/thing".into(),
            "",
            StatusCode::NOT_FOUND,
        ),
    ];
    for (m, path, body, want) in cases {
        let resp = r.send(m.clone(), &path, body).await;
        let status = resp.status();
        let doc: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{m} {path} {body}: {doc}");
        assert!(
            doc["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{m} {path}: a message: {doc}"
        );
    }
    r.app.shutdown().await;
}

#[tokio::test]
async fn alerts_paging_subscription_test_and_config() {
    let r = rig("", "/seyren/api").await;
    let hook = Hook::start().await;
    let id = r.create(json!({"name": "ids", "target": "snort.*.hits", "warn": 5, "error": 10, "enabled": true, "live": true})).await;
    let sub = r
        .send(reqwest::Method::POST, &format!("/checks/{id}/subscriptions"),
              &json!({"type": "HTTP", "target": format!("http://{}/hook", hook.addr), "enabled": true,
                      "su": true, "mo": true, "tu": true, "we": true, "th": true, "fr": true, "sa": true,
                      "fromTime": "0000", "toTime": "2359"}).to_string())
        .await;
    let sid = sub.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    r.points("snort.a.hits 20 -1\nsnort.b.hits 7 -1\n").await;
    hook.wait(1).await;
    let (_, page) = r.get(&format!("/checks/{id}/alerts?items=1")).await;
    assert_eq!(
        (
            page["total"].as_u64(),
            page["items"].as_u64(),
            page["start"].as_u64()
        ),
        (Some(2), Some(1), Some(0))
    );
    assert_eq!(page["values"].as_array().unwrap().len(), 1);
    assert!(
        page["values"][0]["value"].is_number(),
        "an alert's value is a number"
    );
    let (_, all) = r.get("/alerts").await;
    assert_eq!(
        (all["total"].as_u64(), all["items"].as_u64()),
        (Some(2), Some(20))
    );
    let (_, series) = r.get(&format!("/checks/{id}/series")).await;
    assert_eq!(series["values"].as_array().unwrap().len(), 2);
    let (_, pts) = r.get(&format!("/checks/{id}/points")).await;
    assert_eq!(
        pts.as_array().unwrap().len(),
        2,
        "recent values of both series: {pts}"
    );

    let n_before = hook.bodies().len();
    let t = r
        .send(
            reqwest::Method::PUT,
            &format!("/checks/{id}/subscriptions/{sid}/test"),
            "",
        )
        .await;
    assert_eq!(t.status(), StatusCode::NO_CONTENT);
    let bodies = hook.wait(n_before + 1).await;
    let test = &bodies[n_before];
    assert_eq!(
        (
            test["alerts"][0]["fromType"].as_str(),
            test["alerts"][0]["toType"].as_str()
        ),
        (Some("OK"), Some("ERROR"))
    );
    assert_eq!(test["check"]["state"], "ERROR");

    let upd = r
        .send(
            reqwest::Method::PUT,
            &format!("/checks/{id}/subscriptions/{sid}"),
            &json!({"type": "HTTP", "target": "http://127.0.0.1:9/elsewhere", "enabled": false})
                .to_string(),
        )
        .await;
    assert_eq!(upd.status(), StatusCode::NO_CONTENT);
    let (_, c) = r.get(&format!("/checks/{id}")).await;
    assert_eq!(
        c["subscriptions"][0]["target"],
        "http://127.0.0.1:9/elsewhere"
    );
    let del = r
        .send(
            reqwest::Method::DELETE,
            &format!("/checks/{id}/subscriptions/{sid}"),
            "",
        )
        .await;
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.get(&format!("/checks/{id}")).await.1["subscriptions"],
        json!([])
    );

    let gone = r
        .send(
            reqwest::Method::DELETE,
            &format!("/checks/{id}/alerts?before=2000-01-01T00:00:00Z"),
            "",
        )
        .await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.get(&format!("/checks/{id}/alerts")).await.1["total"],
        2,
        "none was that old"
    );
    r.send(reqwest::Method::DELETE, &format!("/checks/{id}/alerts"), "")
        .await;
    assert_eq!(r.get(&format!("/checks/{id}/alerts")).await.1["total"], 0);

    let (_, cfg) = r.get("/config").await;
    assert_eq!(
        cfg,
        json!({"baseUrl": "http://cw.test", "graphsEnabled": true, "graphiteCarbonPickleEnabled": false})
    );
    // No Graphite configured: Seyren's answer for a failure is 0.
    let (_, total) = r.get("/metrics/a.b.c/total").await;
    assert_eq!(total, json!({"a.b.c": 0}));
    r.app.shutdown().await;
}
