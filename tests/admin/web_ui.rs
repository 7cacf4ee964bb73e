//! The web UI in a real browser: Debian's headless chromium, driven over
//! the DevTools protocol. A check is created through the UI's form,
//! breaching points are sent to the proxy, and the check page shows the
//! state change (and a chart of the values) without a reload.

use std::time::Duration;

use crate::common::Sink;
use carbonwatch::app::App;
use carbonwatch::config::Config;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless chromium with one page, killed when dropped.
struct Browser {
    _child: crate::common::Child,
    _profile: tempfile::TempDir,
    ws: Ws,
    next_id: u64,
}

impl Browser {
    async fn open(url: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--remote-debugging-port=0")
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromium (Debian)");
        let child = crate::common::Child(child);
        // Chromium writes its DevTools port here once it listens.
        let port_file = profile.path().join("DevToolsActivePort");
        let mut port = None;
        for _ in 0..1200 {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next()?.parse::<u16>().ok())
            {
                port = Some(p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let port = port.expect("chromium did not open its DevTools port");
        let mut page_ws = None;
        for _ in 0..600 {
            let list: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            page_ws = list.as_array().unwrap().iter().find_map(|t| {
                (t["type"] == "page"
                    && t["url"]
                        .as_str()
                        .is_some_and(|u| u.starts_with(url.split('#').next().unwrap())))
                .then(|| t["webSocketDebuggerUrl"].as_str().unwrap().to_string())
            });
            if page_ws.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (ws, _) = tokio_tungstenite::connect_async(page_ws.expect("the page target"))
            .await
            .unwrap();
        Browser {
            _child: child,
            _profile: profile,
            ws,
            next_id: 1,
        }
    }

    /// Evaluates JavaScript in the page and returns its value.
    async fn eval(&mut self, expr: &str) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": "Runtime.evaluate",
                         "params": {"expression": expr, "returnByValue": true, "awaitPromise": true}});
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        while let Some(m) = self.ws.next().await {
            if let Message::Text(t) = m.unwrap() {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == id {
                    assert!(v["result"]["exceptionDetails"].is_null(), "{expr}: {v}");
                    return v["result"]["result"]["value"].clone();
                }
            }
        }
        panic!("the DevTools connection closed");
    }

    /// Waits until `expr` is true in the page.
    async fn wait_for(&mut self, expr: &str) {
        for _ in 0..600 {
            if self.eval(expr).await == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.eval("document.body.innerText").await;
        panic!("not true within 60 s: {expr}\npage: {page}");
    }
}

#[tokio::test]
#[ignore = "needs Debian's chromium (scripts/test.sh)"]
async fn a_check_created_in_the_ui_turns_red_on_breaching_points() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let text = format!(
        "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[stats]\nenabled = false\n\
         [alerting]\nstore = \"{}\"\ntick_ms = 50\n\
         [[cluster]]\nname = \"out\"\ntype = \"forward\"\ndestinations = [\"{}\"]\n\
         [[route]]\nmatch = \"*\"\nto = [\"out\"]\n",
        dir.path().join("cw.db").display(),
        sink.addr
    );
    let app = App::start(Config::parse(&text, std::path::Path::new("ui.toml")).unwrap())
        .await
        .unwrap();
    let admin = app.admin.unwrap();
    let mut b = Browser::open(&format!("http://{admin}/#/new")).await;

    b.wait_for("document.querySelector('#edit-form') !== null")
        .await;
    b.eval(
        "(() => { const f = document.querySelector('#edit-form');
           f.name.value = 'web errors'; f.target.value = 'web.*.errors';
           f.warn.value = '5'; f.error.value = '10';
           document.querySelector('#save').click(); return true; })()",
    )
    .await;
    // The UI goes to the new check's page, in OK.
    b.wait_for("location.hash.startsWith('#/checks/') && document.querySelector('#check-state')?.textContent.trim() === 'OK'")
        .await;
    let checks = app.alerts.as_ref().unwrap().engine.checks().await.unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(
        (
            checks[0].name.as_str(),
            checks[0].target.as_str(),
            checks[0].live
        ),
        ("web errors", "web.*.errors", true)
    );

    let mut s = tokio::net::TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    s.write_all(b"web.a.errors 3 1700000000\nweb.a.errors 42 1700000001\n")
        .await
        .unwrap();
    s.shutdown().await.unwrap();

    // The page refreshes itself and shows the new state, the series, the
    // alert and a chart with the values.
    b.wait_for("document.querySelector('#check-state')?.textContent.trim() === 'ERROR'")
        .await;
    b.wait_for("document.querySelector('#series').innerText.includes('web.a.errors')")
        .await;
    b.wait_for("document.querySelector('#alerts').innerText.includes('ERROR')")
        .await;
    b.wait_for("document.querySelectorAll('#chart polyline').length === 1")
        .await;

    // The list shows it too.
    b.eval("location.hash = '#/checks'; true").await;
    b.wait_for("document.querySelector('#checks')?.innerText.includes('web errors') && document.querySelector('#checks').innerText.includes('ERROR')").await;

    // A check stored as Seyren would store it, without a target, is
    // marked as not evaluated in the list and says why on its page.
    let resp = reqwest::Client::new()
        .post(format!("http://{admin}/api/checks"))
        .header("content-type", "application/json")
        .body(r#"{"name": "half done", "warn": 1, "error": 2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    let id = loc.rsplit('/').next().unwrap();
    b.eval("location.hash = '#/checks?'; location.hash = '#/checks'; true")
        .await;
    b.wait_for("[...document.querySelectorAll('#checks tr')].some(r => r.innerText.includes('half done') && r.innerText.includes('not evaluated'))").await;
    b.eval(&format!("location.hash = '#/checks/{id}'; true"))
        .await;
    b.wait_for("document.querySelector('#problem')?.innerText.includes('no target')")
        .await;
    app.shutdown().await;
}
