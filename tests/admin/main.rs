//! Seyren's REST API on the admin port: every endpoint with its status
//! codes and JSON shapes, the error cases, the base path, bearer-token
//! auth and the UI page.

#[path = "../common/mod.rs"]
mod common;
mod guards;
mod web_ui;

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
            r#"{"name": "b", "target": "b", "enabled": true}"#,
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
            reqwest::Method::POST,
            "/checks".into(),
            r#"{"name": "d", "target": "sum(x", "warn": 1, "error": 2, "live": true}"#,
            StatusCode::BAD_REQUEST,
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
