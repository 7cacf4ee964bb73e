//! The admin port's guards: tokens, TLS, cross-site and rebinding checks,
//! body and nesting limits, connection caps and timeouts, and the test
//! endpoint's network policy.

use super::*;

#[tokio::test]
async fn a_token_guards_the_api_and_metrics_but_not_the_page() {
    let r = rig("auth_token = \"s3cret\"", "/api").await;
    let admin = r.app.admin.unwrap();
    let plain = reqwest::Client::new();
    let no = plain
        .get(format!("{}/checks", r.base))
        .send()
        .await
        .unwrap();
    assert_eq!(no.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(no.headers()["www-authenticate"], "Bearer");
    let wrong = plain
        .get(format!("{}/checks", r.base))
        .bearer_auth("s3cre7")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.get("/checks").await.0, StatusCode::OK);
    let page = plain.get(format!("http://{admin}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("const API = \"/api\";"),
        "the page is told the API's path"
    );
    // `/metrics` follows the token, as Prometheus exporters do (#11).
    let m = plain
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), StatusCode::UNAUTHORIZED);
    let m = plain
        .get(format!("http://{admin}/metrics"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), StatusCode::OK);
    r.app.shutdown().await;
}

#[test]
fn a_non_loopback_admin_port_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[admin]\nlisten = \"0.0.0.0:8080\"\n[alerting]\nstore = \"\"\n",
    )
    .unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("c.toml:2") && e.contains("admin.listen") && e.contains("token"),
        "{e}"
    );
    std::fs::write(
        &path,
        "[admin]\nlisten = \"0.0.0.0:8080\"\nauth_token = \"t\"\n[alerting]\nstore = \"\"\n",
    )
    .unwrap();
    assert!(Config::load(&path).is_ok());
}

#[tokio::test]
async fn the_admin_port_speaks_tls_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
    let r = rig(
        &format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
            c.display(),
            k.display()
        ),
        "/api",
    )
    .await;
    let port = r.app.admin.unwrap().port();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = client
        .get(format!("https://localhost:{port}/api/config"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.json::<Value>().await.unwrap()["baseUrl"].is_string());
    // Plain HTTP gets no API.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/api/config"))
        .await
        .map_or(true, |r| !r.status().is_success()));
    r.app.shutdown().await;
}

#[tokio::test]
async fn a_bad_certificate_stops_start_up_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("nope.pem");
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntls_cert_file = \"{0}\"\ntls_key_file = \"{0}\"\n[alerting]\nstore = \"\"\n",
        bad.display()
    );
    let e = App::start(Config::parse(&text, std::path::Path::new("t.toml")).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.pem"), "{e}");
}

/// Cross-site writes and DNS rebinding (#11): a page on another site can
/// send a POST with a text/plain body or a foreign Origin, and a rebinding
/// name carries a foreign Host; all are refused with a JSON message, and
/// the UI's own requests still work.
#[tokio::test]
async fn cross_site_writes_and_foreign_hosts_are_refused() {
    let r = rig("", "/api").await;
    let check = json!({"name": "x", "target": "a.b", "warn": "1", "error": "2", "enabled": true, "live": true}).to_string();
    let post = |ct: &str| {
        r.http
            .post(format!("{}/checks", r.base))
            .header("content-type", ct)
            .body(check.clone())
    };
    let text = post("text/plain").send().await.unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = text.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("JSON"), "{body}");
    let foreign = post("application/json")
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let rebound = post("application/json")
        .header("host", "evil.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    let read = r
        .http
        .get(format!("{}/checks", r.base))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.status(),
        StatusCode::FORBIDDEN,
        "reads too: rebinding leaks"
    );
    assert_eq!(
        r.get("/checks").await.1["values"],
        json!([]),
        "nothing was created"
    );
    // The UI: same origin, JSON.
    let admin = r.app.admin.unwrap();
    let ui = post("application/json")
        .header("origin", format!("http://{admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), StatusCode::CREATED);
    r.app.shutdown().await;
}

#[tokio::test]
async fn bodies_past_the_limit_get_a_json_413() {
    let r = rig("max_body_bytes = 4096", "/api").await;
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(10_000));
    let resp = r.send(reqwest::Method::POST, "/checks", &big).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].is_string(), "{body}");
    r.app.shutdown().await;
}

/// A live target of 20,000 nested braces overflowed the alerting thread's
/// stack (#11). Seyren would store it, so it is stored, shown as
/// EXCEPTION with the glob's complaint, and never evaluated; the process
/// carries on.
#[tokio::test]
async fn a_deeply_nested_target_is_reported_not_a_crash() {
    let r = rig("", "/api").await;
    let target = format!("{}a{}", "{".repeat(20_000), "}".repeat(20_000));
    let check = json!({"name": "deep", "target": target, "warn": "1", "error": "2", "enabled": true, "live": true});
    let resp = r
        .send(reqwest::Method::POST, "/checks", &check.to_string())
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    let id = loc.rsplit('/').next().unwrap();
    let (status, body) = r.get(&format!("/checks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "EXCEPTION", "{}", body["problem"]);
    assert!(
        body["problem"].as_str().unwrap().contains("glob"),
        "{}",
        body["problem"]
    );
    r.points("a 1 1700000000\n").await;
    assert_eq!(r.get("/checks").await.0, StatusCode::OK, "still serving");
    r.app.shutdown().await;
}

/// Slowloris, silent connections and a connection flood (#11): each is
/// closed or refused, and a real request still gets through.
#[tokio::test]
async fn the_admin_port_caps_connections_and_times_out_slow_ones() {
    use tokio::io::AsyncReadExt;
    let r = rig(
        "max_connections = 4\nheader_timeout_secs = 1\nidle_timeout_secs = 2",
        "/api",
    )
    .await;
    let admin = r.app.admin.unwrap();
    let stats = r.app.admin_stats().unwrap();
    // Headers that never end: closed by the header timeout.
    let mut slow = tokio::net::TcpStream::connect(admin).await.unwrap();
    slow.write_all(b"GET /api/checks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: b\r\n")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(admin).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(20), slow.read(&mut buf))
        .await
        .expect("closed by the header timeout")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    let n = tokio::time::timeout(std::time::Duration::from_secs(20), silent.read(&mut buf))
        .await
        .expect("closed by the idle timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(stats.timed_out.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    // Four idle connections fill the cap; a fifth is closed at once. The
    // port accepts in order, so the four hold their slots by then.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(admin).await.unwrap());
    }
    let mut fifth = tokio::net::TcpStream::connect(admin).await.unwrap();
    fifth
        .write_all(b"GET /api/checks HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .ok();
    let n = tokio::time::timeout(std::time::Duration::from_secs(1), fifth.read(&mut buf))
        .await
        .expect("refused at once, long before any timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    assert_eq!(stats.refused.load(std::sync::atomic::Ordering::Relaxed), 1);
    drop(held);
    let mut ok = false;
    for _ in 0..500 {
        let resp = r.http.get(format!("{}/checks", r.base)).send().await;
        if resp.is_ok_and(|x| x.status() == StatusCode::OK) {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(ok, "a real request gets through once the flood is gone");
    r.app.shutdown().await;
}

#[tokio::test]
async fn metrics_can_have_a_token_of_their_own() {
    let r = rig("metrics_auth_token = \"prom\"", "/api").await;
    let admin = r.app.admin.unwrap();
    let get = |t: Option<&str>| {
        let req = r.http.get(format!("http://{admin}/metrics"));
        match t {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    };
    assert_eq!(
        get(None).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(Some("prom")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        r.get("/checks").await.0,
        StatusCode::OK,
        "the API has no token"
    );
    r.app.shutdown().await;
}

/// The test endpoint as a way into internal services (#11): loopback and
/// link-local targets are refused by default, also behind a name; a
/// foreign answer is never echoed; a hanging target is given up on within
/// `test_timeout_secs`.
#[tokio::test]
async fn the_test_endpoint_cannot_read_internal_services() {
    let r = rig_with("", "/api", "test_timeout_secs = 1").await;
    let hook = Hook::start().await;
    let check = json!({"name": "t", "target": "a.b", "warn": "1", "error": "2", "enabled": true, "live": true});
    let id = r.create(check).await;
    let add = |target: String| {
        let r = &r;
        let id = id.clone();
        async move {
            let resp = r
                .send(
                    reqwest::Method::POST,
                    &format!("/checks/{id}/subscriptions"),
                    &json!({"type": "HTTP", "target": target, "enabled": true}).to_string(),
                )
                .await;
            assert_eq!(resp.status(), StatusCode::CREATED);
            let loc = resp.headers()["location"].to_str().unwrap().to_string();
            loc.rsplit('/').next().unwrap().to_string()
        }
    };
    let test = |sid: String| {
        let r = &r;
        let id = id.clone();
        async move {
            let resp = r
                .send(
                    reqwest::Method::PUT,
                    &format!("/checks/{id}/subscriptions/{sid}/test"),
                    "",
                )
                .await;
            let status = resp.status();
            // A refusal is JSON; a failed delivery is Seyren's text/plain.
            let text = resp.text().await.unwrap_or_default();
            let message = match serde_json::from_str::<Value>(&text) {
                Ok(body) => body["message"].as_str().unwrap_or_default().to_string(),
                Err(_) => text,
            };
            (status, message)
        }
    };
    let literal = add(format!("http://{}/hook", hook.addr)).await;
    let (status, message) = test(literal).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{message}");
    assert!(message.contains("test_deny_networks"), "{message}");
    let named = add(format!("http://localhost:{}/hook", hook.addr.port())).await;
    let (status, message) = test(named).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{message}");
    assert!(message.starts_with("Notifying failed '"), "{message}");
    assert!(
        hook.bodies().is_empty(),
        "nothing reached the loopback receiver"
    );
    r.app.shutdown().await;

    // Allowed, but the answer is a 500 with a secret, and another target
    // never answers.
    let r = rig_with(
        "",
        "/api",
        "test_timeout_secs = 1\ntest_allow_networks = [\"127.0.0.0/8\"]",
    )
    .await;
    let secret = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let secret_addr = secret.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = secret.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            let body = "internal-secret-token";
            let _ = s
                .write_all(format!("HTTP/1.1 500 Oops\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                .await;
        }
    });
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_addr = hang.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
        }
    });
    let id2 = r.create(json!({"name": "u", "target": "a.c", "warn": "1", "error": "2", "enabled": true, "live": true})).await;
    let mut sids = Vec::new();
    for target in [
        format!("http://{secret_addr}/"),
        format!("http://{hang_addr}/"),
    ] {
        let resp = r
            .send(
                reqwest::Method::POST,
                &format!("/checks/{id2}/subscriptions"),
                &json!({"type": "HTTP", "target": target, "enabled": true}).to_string(),
            )
            .await;
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        sids.push(loc.rsplit('/').next().unwrap().to_string());
    }
    let resp = r
        .send(
            reqwest::Method::PUT,
            &format!("/checks/{id2}/subscriptions/{}/test", sids[0]),
            "",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("HTTP 500") && !text.contains("internal-secret-token"),
        "{text}"
    );
    let started = std::time::Instant::now();
    let resp = r
        .send(
            reqwest::Method::PUT,
            &format!("/checks/{id2}/subscriptions/{}/test", sids[1]),
            "",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    r.app.shutdown().await;
}
